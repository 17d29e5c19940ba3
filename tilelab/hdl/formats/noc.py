"""Bit formats of the mesh network-on-chip: the single definition of every NoC flit and header.

Host code packs with ``Layout.const({...}).as_bits()`` and unpacks with ``Layout.from_bits(...)``;
the routers, the network interfaces and the RTL traffic generators use the same layouts, so a
field is never written down twice.

Coordinates are ``(x, y)``: ``x`` is the column (``0`` at the west edge), ``y`` the row (``0`` at
the north edge).  Four bits each, so a mesh is at most 16 × 16; a coordinate outside the
generated mesh is representable (and dropped by the network with an error count).

Every flit of a packet carries the packet's header (a sideband next to the data), and ``last``
marks the final flit.  Routers route a packet on its first flit and keep the path until ``last``
(wormhole); because the header travels with each flit, a packet can be cut into shorter packets
without losing its routing, and a receiver can act on any flit alone (for instance write it at
``hdr.addr`` and bump semaphore ``hdr.sem`` on ``last``).
"""


from amaranth.hdl import signed
from amaranth.lib import data, enum

__all__ = [
    "COORD_BITS", "MAX_MESH",
    "Direction", "Opcode", "ReduceOp", "TrafficPattern",
    "Coord", "Header", "CollectiveHeader", "TrafficPayload", "TrafficConfig",
    "MulticastConfig", "ReduceConfig",
    "flit_layout", "collective_flit_layout",
]

#: Bits of one coordinate.
COORD_BITS = 4
#: Largest mesh side a coordinate can address.
MAX_MESH = 1 << COORD_BITS


class Direction(enum.Enum, shape=3):
    """Router ports.  ``N`` is toward row ``y - 1``, ``S`` toward ``y + 1``, ``E`` toward
    ``x + 1``, ``W`` toward ``x - 1``; ``L`` is the local (network-interface) port."""
    N = 0
    E = 1
    S = 2
    W = 3
    L = 4


class Opcode(enum.Enum, shape=4):
    """What a unicast or multicast packet asks of its receiver.

    ``WRITE``: store the data at ``hdr.addr`` (+ flit index); ``WRITE_SEM``: the same and
    increment semaphore ``hdr.sem`` after the last flit; ``SEM_INC``: only increment the
    semaphore; ``READ``: request ``hdr.addr`` (the response goes to ``hdr.src`` on the response
    plane); ``RESPONSE``: read data coming back; ``ACK``: write acknowledgement; ``TEST``: traffic
    generator payload (:class:`TrafficPayload` in the data).
    """
    WRITE = 0
    WRITE_SEM = 1
    SEM_INC = 2
    READ = 3
    RESPONSE = 4
    ACK = 5
    TEST = 6


class ReduceOp(enum.Enum, shape=1):
    """Lane-wise reduction of int32 lanes: wrapping sum or signed maximum."""
    SUM = 0
    MAX = 1


class TrafficPattern(enum.Enum, shape=3):
    """Synthetic traffic patterns (Dally & Towles, ch. 3) of the RTL traffic generators.

    ``UNIFORM``: random destination (self included); ``TRANSPOSE``: (x, y) → (y, x);
    ``BITCOMP``: (x, y) → (C-1-x, R-1-y); ``BITREV``: node index bit-reversed;
    ``SHUFFLE``: node index rotated left by one bit; ``TORNADO``: each coordinate advanced by
    ⌈k/2⌉ - 1 (mod k); ``NEIGHBOR``: (x+1 mod C, y+1 mod R); ``HOTSPOT``: a fraction of the
    packets to the hot node, the rest uniform.
    """
    UNIFORM = 0
    TRANSPOSE = 1
    BITCOMP = 2
    BITREV = 3
    SHUFFLE = 4
    TORNADO = 5
    NEIGHBOR = 6
    HOTSPOT = 7


class Coord(data.Struct):
    """A node of the mesh."""
    x: COORD_BITS
    y: COORD_BITS


class Header(data.Struct):
    """Header of a unicast (request / response plane) or multicast packet.

    A unicast packet goes to ``dst``; a multicast packet to every node of the rectangle
    ``dst``..``dst_end`` (corners included).  Unicast routers ignore ``dst_end``.
    """
    op: Opcode
    src: Coord
    dst: Coord
    dst_end: Coord
    sem: 4
    addr: 20


class CollectiveHeader(data.Struct):
    """Header of a collective (reduce + broadcast) packet.

    Every participant of rectangle ``rect0``..``rect1`` contributes a packet with the same
    header; lanes are reduced along each row toward the root's column, down that column to
    ``root``, and the total is broadcast back along the column and the rows.
    """
    op: ReduceOp
    root: Coord
    rect0: Coord
    rect1: Coord


class TrafficPayload(data.Struct):
    """Data of a traffic-generator packet (:attr:`Opcode.TEST`), checked by the RTL sinks.

    ``seq`` counts packets of one source → destination flow; ``stamp`` is the cycle (mod 2**16)
    the packet was created at the source; ``measured`` marks packets created inside the
    measurement window; ``check`` is a function of source, sequence and flit index.
    """
    seq: 16
    stamp: 16
    measured: 1
    check: 15


def flit_layout(data_width):
    """Layout of a unicast / multicast flit: ``hdr`` (:class:`Header`), ``last``, ``data``.

    Parameters
    ----------
    data_width : int
        Bits of payload per flit (at least 1).
    """
    if not isinstance(data_width, int) or data_width < 1:
        raise ValueError(f"flit data_width must be a positive integer, not {data_width!r}")
    return data.StructLayout({"hdr": Header, "last": 1, "data": data_width})


def collective_flit_layout(lanes):
    """Layout of a collective flit: ``hdr`` (:class:`CollectiveHeader`), ``last`` and ``data``,
    ``lanes`` int32 lanes (lane ``i`` in bits ``32*i .. 32*i+31``).

    Parameters
    ----------
    lanes : int
        Number of int32 lanes per flit (at least 1).
    """
    if not isinstance(lanes, int) or lanes < 1:
        raise ValueError(f"collective lanes must be a positive integer, not {lanes!r}")
    return data.StructLayout({
        "hdr": CollectiveHeader, "last": 1, "data": data.ArrayLayout(signed(32), lanes)})


class TrafficConfig(data.Struct):
    """Run-time configuration of the RTL traffic generators and sinks (one port of the traffic
    harness).  Probabilities are thresholds out of 65536 (``65536`` = always).

    ``rate``: Bernoulli packet-creation probability per node and cycle; ``pattern``:
    :class:`TrafficPattern`; ``seed``: random seed; ``packets``: packets each node creates
    (0: create until the generation window closes); ``pkt_len``: flits per packet (1..15);
    ``src_stall``: probability a source holds back a flit for a cycle; ``sink_stall``: probability
    a sink refuses a flit for a cycle; ``hot_node``: index ``y * cols + x`` of the hotspot;
    ``hot_rate``: fraction of hotspot-pattern packets sent to it.
    """
    rate: 17
    pattern: TrafficPattern
    seed: 32
    packets: 32
    pkt_len: 4
    src_stall: 17
    sink_stall: 17
    hot_x: COORD_BITS
    hot_y: COORD_BITS
    hot_rate: 17


class MulticastConfig(data.Struct):
    """Run-time configuration of the multicast harness: node ``src`` sends ``flits`` flits
    (data generated from ``seed``) to the rectangle ``rect0``..``rect1``."""
    src: Coord
    rect0: Coord
    rect1: Coord
    flits: 16
    seed: 32


class ReduceConfig(data.Struct):
    """Run-time configuration of one context of the collective harness: when ``enable``, every
    node of ``rect0``..``rect1`` contributes ``flits`` flits generated from ``seed`` to an
    all-reduce ``op`` rooted at ``root``."""
    enable: 1
    op: ReduceOp
    root: Coord
    rect0: Coord
    rect1: Coord
    flits: 16
    seed: 32
