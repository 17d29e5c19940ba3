"""Bit formats of the mesh of tiles: data-mover descriptors and NoC read requests.

These are the only definitions: the RTL decodes them with ``View``s, the host packs them with
``Struct.const({...}).as_bits()``.

A node's data mover (:class:`~tilelab.pe_models.mesh.DataMover`) runs a list of
:class:`MoveDesc` slots (:data:`MOVE_DESC_BYTES` each) from its node memory, starting at byte 0.
Addresses in descriptors and NoC headers are *word* addresses (one word = one flit's payload =
the tile's external-port width W bytes); tile programs see byte addresses.

A read over the NoC is one request flit (:attr:`~tilelab.hdl.formats.noc.Opcode.READ`, ``hdr.addr``
= the first word to read, data = :class:`ReadRequest`); the node that owns the memory answers
with ``words`` data flits, each carrying its destination word address in its header, the last
one with :attr:`~tilelab.hdl.formats.noc.Opcode.WRITE_SEM` so the receiver's semaphore
``sem`` counts completed reads. With ``mcast`` set the answer goes on the multicast plane to
every node of ``rect0``..``rect1`` instead of back to the requester.
"""

from amaranth.lib import data, enum

from . import field_max
from .noc import Coord

__all__ = ["MoverState", "MAX_MOVE_ROWS", "MAX_MOVE_WORDS", "MOVE_DESC_BYTES", "MoveOp", "MoveDesc", "ReadRequest",
           "NODE_COUNTERS", "PORT_COUNTERS", "SEMAPHORES", "WORD_ADDR_BITS"]

#: Bytes of one data-mover descriptor slot.
MOVE_DESC_BYTES = 32
#: Semaphores per node (the NoC header's ``sem`` field is 4 bits).
SEMAPHORES = 16
#: Bits of a word address (the NoC header's ``addr`` field).
WORD_ADDR_BITS = 20


class MoveOp(enum.Enum, shape=4):
    """What a :class:`MoveDesc` does.

    Every transfer increments semaphore ``sem`` of each receiver once, when all its data has
    arrived (the NoC delivers one sender's flits in order, so the last flit is the signal).

    ``GET``: for each of ``rows`` rows, send a read request for ``words`` words at
    ``remote + r·remote_stride`` of node ``node``, answered into this node's memory at
    ``local + r·local_stride`` (does not wait: a later ``WAIT`` does).
    ``GET_MCAST``: the same, but node ``node`` multicasts the answers to every node of the
    rectangle ``rect0``..``rect1``, each of which receives them at ``local + r·local_stride``.
    ``PUT``: write ``rows`` rows of ``words`` local words at ``local + r·local_stride`` to
    ``remote + r·remote_stride`` of node ``node`` (``mcast``: of every node of ``rect0``..``rect1``).
    ``WAIT``: wait until semaphore ``sem`` ≥ ``count``, then subtract ``count``.
    ``SIGNAL``: increment semaphore ``sem`` of node ``node``.
    ``RUN``: reset the tile, start its program at byte ``tile_base`` of node memory (the tile sees
    that byte as its address 0) and wait for it to finish.
    ``END``: stop; the node is done.
    ``ELT``: as ``RUN``, for the node's element-wise unit (meshes built with ``eltwise=True``):
    reset it, start its descriptor list at byte ``tile_base`` and wait for it to finish.
    ``REDUCE``: one all-reduce (sum of int32 lanes, a word = ``W / 4`` lanes) over the collective
    plane of a mesh built with ``eltwise=True``: stream ``words`` words from ``local`` into the
    plane as this node's contribution and write the ``words`` total words that come back at
    ``remote`` (word ``k`` of the totals is the wrapping int32 sum, lane by lane, of word ``k`` of
    every participant's contribution). The participants are the tile nodes of the rectangle
    ``rect0``..``rect1``, the totals meet at ``node`` (the root; all NoC coordinates); every
    participant must run a ``REDUCE`` with the same ``words``, rectangle and root. Finishes when
    all totals are written (no semaphore). On a mesh without the plane it finishes at once.
    """

    GET = 0
    GET_MCAST = 1
    PUT = 2
    WAIT = 3
    SIGNAL = 4
    RUN = 5
    END = 6
    ELT = 7
    REDUCE = 8


class MoveDesc(data.Struct):
    """One data-mover descriptor (see :class:`MoveOp` for the meaning of each field)."""

    op: MoveOp
    sem: 4
    mcast: 1
    _pad0: 7
    count: 16
    node: Coord
    rect0: Coord
    rect1: Coord
    _pad1: 8
    rows: 16
    words: 16
    local: 32
    remote: 32
    local_stride: 32
    remote_stride: 32
    tile_base: 32


#: Most rows, and words per row, one data-mover descriptor moves.
MAX_MOVE_ROWS = field_max(MoveDesc, "rows")
MAX_MOVE_WORDS = field_max(MoveDesc, "words")


class ReadRequest(data.Struct):
    """Payload of a READ request flit."""

    words: 16
    dst: WORD_ADDR_BITS
    sem: 4
    signal: 1   #: the answer's last flit increments semaphore ``sem`` (set on a GET's last row)
    mcast: 1
    rect0: Coord
    rect1: Coord


#: Counters of a tile node, beyond its tile's (48 bits each, read after the run).
NODE_COUNTERS = (
    "cycles",             # cycles from start to the node's END
    "tile_cycles",        # cycles the tile ran (sum over RUN descriptors)
    "runs",               # RUN descriptors executed
    "elt_runs",           # ELT descriptors executed
    "wait_cycles",        # cycles the data mover waited on a semaphore
    "flits_sent",         # flits the data mover injected (requests and writes)
    "flits_received",     # flits written into node memory from the NoC
    "words_get",          # words requested by GET / GET_MCAST
    "words_put",          # words written by PUT (counted once per PUT, not per receiver)
    "reduces",            # REDUCE descriptors executed
    "reduce_cycles",      # cycles spent in REDUCE descriptors (contribution to last total written)
    "reduce_flits_sent",  # words contributed to the collective plane
    "reduce_flits_received",  # total words the collective plane delivered (written to node memory)
)

#: Counters of an edge memory port.
PORT_COUNTERS = (
    "bytes_read",         # bytes read from the memory to answer requests (once per multicast)
    "bytes_written",      # bytes written into the memory from the NoC
    "requests",           # read requests served
)


class MoverState(enum.Enum, shape=3):
    """What a :class:`~tilelab.pe_models.mover.DataMover` is doing (exported for the watchdog's diagnosis)."""

    IDLE = 0
    FETCH = 1
    MOVE = 2    #: issuing a GET / PUT / SIGNAL
    WAIT = 3    #: waiting on a semaphore
    RUN = 4     #: the tile runs
    DONE = 5
    REDUCE = 6  #: an all-reduce on the collective plane: contributing, waiting for the totals
