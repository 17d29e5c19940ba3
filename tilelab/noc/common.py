"""Pieces shared by the NoC routers and meshes: link signatures, routing functions, arbiters,
parameter checks."""

from amaranth.hdl import Cat, Const, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from tilelab.hdl.formats.noc import MAX_MESH, Direction

__all__ = [
    "LinkSignature", "LocalSignature", "DIRS", "OPPOSITE", "STEP",
    "check_int", "check_mesh", "xy_route", "round_robin", "neighbour",
]

#: The four mesh directions, in :class:`Direction` order.
DIRS = (Direction.N, Direction.E, Direction.S, Direction.W)
#: The port a flit arrives on at the neighbour, for each output direction.
OPPOSITE = {Direction.N: Direction.S, Direction.S: Direction.N,
            Direction.E: Direction.W, Direction.W: Direction.E}
#: (dx, dy) of one hop in each direction.
STEP = {Direction.N: (0, -1), Direction.S: (0, 1), Direction.E: (1, 0), Direction.W: (-1, 0)}


def check_int(what, value, lo, hi=None):
    """Return ``value`` if it is an ``int`` in ``lo..hi``; raise a ``ValueError`` naming it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < lo or (hi is not None and value > hi):
        limit = f"at least {lo}" if hi is None else f"in {lo}..{hi}"
        raise ValueError(f"{what} must be an integer {limit}, not {value!r}")
    return value


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

    The sender drives ``valid`` and ``flit`` (one flit per cycle at most, sent only while it
    holds a credit for the buffer the flit will land in); the receiver pulses ``credit[q]`` for
    one cycle each time it frees a slot of its buffer ``q``.  Flits are therefore never dropped
    and never refused: the receiver must accept every valid flit.

    Members
    -------
    valid : Out(1)
    flit : Out(layout)
    credit : In(credits)
    """

    def __init__(self, layout, credits):
        super().__init__({"valid": Out(1), "flit": Out(layout), "credit": In(credits)})


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
    with m.Switch(ptr):
        for p in range(n):
            with m.Case(p):
                order = [(p + k) % n for k in range(n)]
                for k, i in enumerate(order):
                    cond = m.If if k == 0 else m.Elif
                    with cond(requests[i]):
                        m.d.comb += [grant[i].eq(1), index.eq(i)]
    with m.If(advance):
        m.d.sync += ptr.eq(Mux(index == n - 1, 0, index + 1))
    return grant, index, advance


def any_of(values):
    """OR of a list of 1-bit values (``0`` for an empty list)."""
    return Cat(*values).any() if values else Const(0)
