"""Pieces shared by the NoC routers and meshes: link signatures, routing functions, arbiters,
parameter checks."""

from amaranth.hdl import Cat, Const, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from tilelab.checks import check_int
from tilelab.hdl.formats.noc import MAX_MESH, Direction

__all__ = [
    "LinkSignature", "LocalSignature", "DIRS", "OPPOSITE", "STEP",
    "check_mesh", "xy_route", "next_hop_route", "round_robin", "neighbour",
    "QueueBank", "FifoView",
]

#: The four mesh directions, in :class:`Direction` order.
DIRS = (Direction.N, Direction.E, Direction.S, Direction.W)
#: The port a flit arrives on at the neighbour, for each output direction.
OPPOSITE = {Direction.N: Direction.S, Direction.S: Direction.N,
            Direction.E: Direction.W, Direction.W: Direction.E}
#: (dx, dy) of one hop in each direction.
STEP = {Direction.N: (0, -1), Direction.S: (0, 1), Direction.E: (1, 0), Direction.W: (-1, 0)}






def check_mesh(rows, cols):
    """Validate mesh dimensions (1..16 each)."""
    check_int("mesh rows", rows, 1, MAX_MESH)
    check_int("mesh cols", cols, 1, MAX_MESH)


def neighbour(x, y, direction):
    """Coordinates of the neighbour of ``(x, y)`` in ``direction``."""
    dx, dy = STEP[direction]
    return x + dx, y + dy


class LinkSignature(wiring.Signature):
    """One direction of a router-to-router channel with credit flow control.

    The sender drives ``valid``, ``flit`` and ``route`` (the output the flit will take at the
    receiver, computed one hop ahead; one flit per cycle at most, sent only while the sender holds
    a credit for the buffer the flit will land in); the receiver pulses ``credit[q]`` for
    one cycle each time it frees a slot of its buffer ``q``.  Flits are therefore never dropped
    and never refused: the receiver must accept every valid flit.

    Members
    -------
    valid : Out(1)
    flit : Out(layout)
    route : Out(Direction)
    credit : In(credits)
    """

    def __init__(self, layout, credits):
        super().__init__({"valid": Out(1), "flit": Out(layout), "route": Out(Direction),
                          "credit": In(credits)})


class LocalSignature(wiring.Signature):
    """A node's local port on one network plane, seen from the network.

    Members
    -------
    i : In(stream.Signature(layout))
        Flits into the network (the node sends).
    o : Out(stream.Signature(layout))
        Flits out of the network (the node receives).
    """

    def __init__(self, layout):
        super().__init__({"i": In(stream.Signature(layout)), "o": Out(stream.Signature(layout))})


def router_members(layout, credit_width, link_port_name):
    """Signature members shared by the unicast and multicast routers.

    Four link ports in and out (``credit_width``-bit credits), the local port, and the counters
    (``dropped``, per-output ``flits`` and ``stalls``, per-input ``held``, ``moved``).
    """
    members = {}
    for d in DIRS:
        members[link_port_name("in", d)] = In(LinkSignature(layout, credit_width))
        members[link_port_name("out", d)] = Out(LinkSignature(layout, credit_width))
    members.update({
        "local": Out(LocalSignature(layout)),
        "dropped": Out(16),
        "flits": Out(32).array(5),
        "stalls": Out(32).array(5),
        "held": Out(8).array(6),
        "moved": Out(1),
    })
    return members


def xy_route(m, x, y, dst, *, name="route"):
    """Dimension-ordered (X first) output port at router ``(x, y)`` for destination ``dst``.

    Returns a ``Signal(Direction)`` driven combinationally in ``m``.
    """
    out = Signal(Direction, name=name)
    with m.If(dst.x > x):
        m.d.comb += out.eq(Direction.E)
    with m.Elif(dst.x < x):
        m.d.comb += out.eq(Direction.W)
    with m.Elif(dst.y > y):
        m.d.comb += out.eq(Direction.S)
    with m.Elif(dst.y < y):
        m.d.comb += out.eq(Direction.N)
    with m.Else():
        m.d.comb += out.eq(Direction.L)
    return out


def next_hop_route(m, x, y, route, dst, *, name):
    """Output that a flit leaving router ``(x, y)`` by ``route`` will take at the next router
    (look-ahead XY routing); ``Direction.L`` when ``route`` is ``L``."""
    nx = Signal(range(-1, MAX_MESH + 1), name=f"{name}_nx")
    ny = Signal(range(-1, MAX_MESH + 1), name=f"{name}_ny")
    m.d.comb += [
        nx.eq(x + (route == Direction.E) - (route == Direction.W)),
        ny.eq(y + (route == Direction.S) - (route == Direction.N)),
    ]
    ahead = xy_route(m, nx, ny, dst, name=f"{name}_ahead")
    out = Signal(Direction, name=name)
    with m.If(route == Direction.L):
        m.d.comb += out.eq(Direction.L)
    with m.Else():
        m.d.comb += out.eq(ahead)
    return out


def round_robin(m, requests, *, name="rr"):
    """A round-robin arbiter over ``requests`` (a list of 1-bit values).

    Returns ``(grant, index, advance)``: ``grant`` is a one-hot list of comb signals (at most one
    set, and only where a request is), ``index`` the granted position, and ``advance`` a 1-bit
    signal the caller drives high to move the priority past the granted requester (usually "the
    grant was used").  With a single requester the arbiter is a wire.
    """
    n = len(requests)
    grant = [Signal(name=f"{name}_grant{i}") for i in range(n)]
    index = Signal(range(max(n, 2)), name=f"{name}_index")
    advance = Signal(name=f"{name}_advance")
    if n == 1:
        m.d.comb += [grant[0].eq(requests[0]), index.eq(0)]
        return grant, index, advance
    ptr = Signal(range(n), name=f"{name}_ptr")
    # requests at or after the pointer win; if there are none, the lowest request wins
    masked = [Signal(name=f"{name}_masked{i}") for i in range(n)]
    for i in range(n):
        # ``ptr <= i`` holds for every pointer value from the widest one on: no constant comparison
        at_or_after = (ptr <= i) if i < (1 << len(ptr)) - 1 else 1
        m.d.comb += masked[i].eq(requests[i] & at_or_after)
    upper = Signal(name=f"{name}_upper")
    m.d.comb += upper.eq(Cat(*masked).any())
    for i in range(n):
        cond = m.If if i == 0 else m.Elif
        with cond(Mux(upper, masked[i], requests[i])):
            m.d.comb += [grant[i].eq(1), index.eq(i)]
    with m.If(advance):
        m.d.sync += ptr.eq(Mux(index == n - 1, 0, index + 1))
    return grant, index, advance


def any_of(values):
    """OR of a list of 1-bit values (``0`` for an empty list)."""
    return Cat(*values).any() if values else Const(0)


class QueueBank(wiring.Component):
    """``queues`` FIFOs of ``depth`` entries sharing one storage array, with one write port (one
    entry per cycle into queue ``w_sel``) and a first-word-fall-through read port per queue.

    An entry written in one cycle can be read in the next.  Writing into a full queue is
    ignored (senders use ``w_rdy`` or credits).  One shared array keeps the generated model
    small: a router's input port holds a queue per output it can feed.

    Parameters
    ----------
    width : int
        Bits per entry.
    queues : int
        Number of queues.
    depth : int
        Entries per queue, a power of two.

    Members
    -------
    w_en : In(1), w_sel : In(range(queues)), w_data : In(width)
    w_rdy : Out(queues)
        Queue ``k`` has room.
    r_rdy : Out(queues), r_en : In(queues)
        Queue ``k`` has an entry; pop it.
    r_data : Out(width).array(queues)
        Head entry of each queue.
    level : Out(range(queues * depth + 1))
        Entries held in all queues.
    """

    def __init__(self, *, width, queues, depth):
        check_int("queue width", width, 1)
        check_int("queue count", queues, 1, 64)
        if not isinstance(depth, int) or isinstance(depth, bool) or depth < 1 or depth & (depth - 1):
            raise ValueError(f"queue depth must be a power of two, not {depth!r}")
        self.width, self.queues, self.depth = width, queues, depth
        super().__init__({
            "w_en": In(1),
            "w_sel": In(range(max(queues, 2))),
            "w_data": In(width),
            "w_rdy": Out(queues),
            "r_rdy": Out(queues),
            "r_en": In(queues),
            "r_data": Out(width).array(queues),
            "level": Out(range(queues * depth + 1)),
        })

    def elaborate(self, platform):
        from amaranth.hdl import Module
        from amaranth.lib.memory import Memory

        m = Module()
        bits = (self.depth - 1).bit_length()
        m.submodules.storage = storage = Memory(shape=self.width, depth=self.queues * self.depth, init=[])
        wp = storage.write_port()
        w_addr = Signal(range(self.queues * self.depth))
        levels = []
        for k in range(self.queues):
            wptr = Signal(bits + 1, name=f"wptr{k}")
            rptr = Signal(bits + 1, name=f"rptr{k}")
            level = Signal(bits + 1, name=f"level{k}")
            m.d.comb += level.eq(wptr - rptr)
            levels.append(level)
            full = level == self.depth
            m.d.comb += [self.w_rdy[k].eq(~full), self.r_rdy[k].eq(level != 0)]
            write = self.w_en & (self.w_sel == k) & ~full
            with m.If(write):
                m.d.sync += wptr.eq(wptr + 1)
                m.d.comb += w_addr.eq(k * self.depth + wptr[:bits] if bits else k)
            with m.If(self.r_en[k] & (level != 0)):
                m.d.sync += rptr.eq(rptr + 1)
            rp = storage.read_port(domain="comb")
            m.d.comb += [rp.addr.eq(k * self.depth + rptr[:bits] if bits else k),
                         self.r_data[k].eq(rp.data)]
        m.d.comb += [
            wp.addr.eq(w_addr),
            wp.data.eq(self.w_data),
            wp.en.eq(self.w_en & (self.w_rdy >> self.w_sel)[0]),
            self.level.eq(sum(levels)),
        ]
        return m


class FifoView:
    """A one-queue :class:`QueueBank` seen with the names of a FIFO (``w_en``, ``w_data``,
    ``w_rdy``, ``r_en``, ``r_data``, ``r_rdy``, ``level``)."""

    def __init__(self, bank):
        self.w_en, self.w_data, self.level = bank.w_en, bank.w_data, bank.level
        self.w_rdy, self.r_rdy, self.r_en, self.r_data = bank.w_rdy[0], bank.r_rdy[0], bank.r_en[0], bank.r_data[0]
