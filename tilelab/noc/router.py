"""The unicast router of the request and response planes.

A 5-port (N, E, S, W, local) input-queued router with virtual output queues, XY
dimension-ordered routing, wormhole switching and credit flow control.

Pipeline (one cycle per hop): a flit arrives on a link together with the output it will take
here (computed one hop ahead by the sender) and is written into the virtual output queue (VOQ)
of its input port for that output, with the output it will take at the *next* router; the next
cycle each output's round-robin arbiter picks one VOQ head that holds a credit for the queue the
flit will land in at the neighbour, and the flit crosses the switch and the link into that
queue.  The queues of one input port share one storage array with a read port per queue, so
an input can feed several outputs in the same cycle (no input-side conflicts: the switch
behaves like an output-queued one).  A VOQ per (input, output) pair removes head-of-line blocking; with XY
routing an input only ever feeds the outputs that the routing function allows (17 queues per
router), and every output keeps a packet's path until its ``last`` flit (wormhole).  XY routing
has no cyclic channel dependency, so the plane is deadlock-free.
"""

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from tilelab.checks import check_int, check_pow2
from tilelab.hdl.formats.noc import Coord, Direction, flit_layout
from tilelab.noc.common import (
    DIRS,
    OPPOSITE,
    QueueBank,
    any_of,
    check_mesh,
    next_hop_route,
    round_robin,
    router_members,
    xy_route,
)

__all__ = ["UnicastRouter", "ALLOWED_TURNS", "link_port_name"]

#: Outputs a flit may take at a router, by the input port it arrived on (XY routing: a flit
#: travelling in Y never turns back into X, and nothing makes a U-turn).
ALLOWED_TURNS = {
    Direction.L: (Direction.N, Direction.E, Direction.S, Direction.W, Direction.L),
    Direction.W: (Direction.N, Direction.E, Direction.S, Direction.L),
    Direction.E: (Direction.N, Direction.S, Direction.W, Direction.L),
    Direction.N: (Direction.S, Direction.L),
    Direction.S: (Direction.N, Direction.L),
}


def link_port_name(kind, direction):
    """Name of a router's link member: ``link_port_name("in", Direction.E) == "in_e"``."""
    return f"{kind}_{direction.name.lower()}"


class UnicastRouter(wiring.Component):
    """XY wormhole router with virtual output queues and credit flow control.

    Parameters
    ----------
    x, y : int or None
        This router's coordinates; ``None`` for both gives the router an input port ``at``
        (:class:`~tilelab.hdl.formats.noc.Coord`) instead, so that one Verilog module serves every
        router of a mesh (:class:`tilelab.hdl.shared.SharedModules`).
    rows, cols : int
        Mesh size (1..16 each); a packet injected here for a node outside the mesh is dropped
        and counted in :attr:`dropped`.
    data_width : int
        Payload bits per flit.
    depth : int
        Flits per virtual output queue, a power of two (2 already sustains one flit per cycle per
        queue; 8, the mesh default, reaches 0.46 flits/node/cycle on uniform 8 × 8 traffic).
    eject_depth : int
        Flits of the buffer in front of the local output.

    Members
    -------
    in_n, in_e, in_s, in_w : In(LinkSignature(flit, 5))
        Links from the neighbours; ``credit[q]`` returns a slot of the queue for output ``q``.
    out_n, out_e, out_s, out_w : Out(LinkSignature(flit, 5))
        Links to the neighbours.
    local : Out(LocalSignature(flit))
        ``local.i`` injects flits (its ``ready`` depends on the payload's route), ``local.o``
        delivers them.
    dropped : Out(16)
        Packets injected for a destination outside the mesh (counted on their last flit).
    flits, stalls : Out(32).array(5)
        Per output port (:class:`Direction` order): flits sent, and cycles a flit waited for
        that output without being sent.
    held : Out(8).array(6)
        Flits buffered per input port (:class:`Direction` order), then in the ejection buffer.
    moved : Out(1)
        A flit moved (was switched or delivered) this cycle.
    """

    def __init__(self, *, x=None, y=None, rows, cols, data_width=32, depth=4, eject_depth=4):
        check_mesh(rows, cols)
        self.coord_ports = x is None and y is None
        if not self.coord_ports:
            check_int("router x", x, 0, cols - 1)
            check_int("router y", y, 0, rows - 1)
        check_int("router data_width", data_width, 1)
        check_pow2("router depth", depth, 1, 64)
        check_pow2("router eject_depth", eject_depth, 1, 64)
        self.x, self.y, self.rows, self.cols = x, y, rows, cols
        self.depth, self.eject_depth = depth, eject_depth
        self.layout = flit_layout(data_width)
        members = router_members(self.layout, 5, link_port_name)
        if self.coord_ports:
            members["at"] = In(Coord)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        layout = self.layout
        x, y = (self.at.x, self.at.y) if self.coord_ports else (self.x, self.y)
        size = layout.size

        # one queue bank per input port: a queue per output that port may feed; an entry is the
        # flit and the output it will take at the next router (look-ahead route)
        bank = {}
        for i, outs in ALLOWED_TURNS.items():
            bank[i] = m.submodules[f"voq_{i.name}"] = QueueBank(width=size + 3, queues=len(outs),
                                                              depth=self.depth)
        eject = m.submodules.eject = QueueBank(width=size, queues=1, depth=self.eject_depth)

        def slot(i, o):
            return ALLOWED_TURNS[i].index(o)

        def write(i, valid, flit, route):
            ahead = next_hop_route(m, x, y, route, flit.hdr.dst, name=f"ahead_{i.name}")
            m.d.comb += [bank[i].w_en.eq(valid), bank[i].w_data.eq(Cat(flit.as_value(), ahead))]
            with m.Switch(route):
                for o in ALLOWED_TURNS[i]:
                    with m.Case(o):
                        m.d.comb += bank[i].w_sel.eq(slot(i, o))

        # ---- input side: the route came with the flit; return a credit on every pop
        for d in DIRS:
            link = getattr(self, link_port_name("in", d))
            write(d, link.valid, link.flit, link.route)
            for o in ALLOWED_TURNS[d]:
                m.d.comb += link.credit[o.value].eq(bank[d].r_en[slot(d, o)])

        inj = self.local.i
        inj_route = xy_route(m, x, y, inj.payload.hdr.dst, name="route_L")
        outside = (inj.payload.hdr.dst.x >= self.cols) | (inj.payload.hdr.dst.y >= self.rows)
        write(Direction.L, inj.valid & ~outside, inj.payload, inj_route)
        space = Signal()
        with m.Switch(inj_route):
            for o in ALLOWED_TURNS[Direction.L]:
                with m.Case(o):
                    m.d.comb += space.eq(bank[Direction.L].w_rdy[slot(Direction.L, o)])
        m.d.comb += inj.ready.eq(outside | space)
        with m.If(inj.valid & outside & inj.payload.last):
            m.d.sync += self.dropped.eq(self.dropped + 1)

        # ---- output side: per output a round-robin arbiter over the queues feeding it
        moved = []
        for o in (*DIRS, Direction.L):
            inputs = [i for i, outs in ALLOWED_TURNS.items() if o in outs]
            locked = Signal(name=f"locked_{o.name}")
            owner = Signal(range(len(inputs)), name=f"owner_{o.name}")
            if o is Direction.L:
                has_credit = None
            else:
                downstream = ALLOWED_TURNS[OPPOSITE[o]]
                counters = {q: Signal(range(self.depth + 1), init=self.depth, name=f"credit_{o.name}_{q.name}")
                            for q in downstream}
                has_credit = Signal(5, name=f"has_credit_{o.name}")
                m.d.comb += has_credit.eq(Cat(*((counters[q] != 0) if q in counters else Const(0)
                                                for q in Direction)))
            requests, entries = [], []
            for k, i in enumerate(inputs):
                entry = bank[i].r_data[slot(i, o)]
                entries.append(entry)
                credit_ok = eject.w_rdy[0] if has_credit is None else has_credit.bit_select(entry[size:], 1)
                req = Signal(name=f"req_{i.name}_{o.name}")
                m.d.comb += req.eq(bank[i].r_rdy[slot(i, o)] & credit_ok & (~locked | (owner == k)))
                requests.append(req)
            grant, index, advance = round_robin(m, requests, name=f"arb_{o.name}")
            send = Signal(name=f"send_{o.name}")
            m.d.comb += [send.eq(any_of(grant)), advance.eq(send)]
            chosen = Signal(size + 3, name=f"xbar_{o.name}")
            for k, i in enumerate(inputs):
                m.d.comb += bank[i].r_en[slot(i, o)].eq(grant[k])
                with m.If(grant[k]):
                    m.d.comb += chosen.eq(entries[k])
            flit = layout(chosen[:size])
            with m.If(send):
                m.d.sync += [locked.eq(~flit.last), owner.eq(index)]
            if o is Direction.L:
                m.d.comb += [eject.w_en.eq(send), eject.w_sel.eq(0), eject.w_data.eq(flit)]
            else:
                link = getattr(self, link_port_name("out", o))
                route = chosen[size:]
                m.d.comb += [link.valid.eq(send), link.flit.eq(flit), link.route.eq(route)]
                for q, cnt in counters.items():
                    dec = send & (route == q)
                    inc = link.credit[q.value]
                    with m.If(dec & ~inc):
                        m.d.sync += cnt.eq(cnt - 1)
                    with m.Elif(inc & ~dec):
                        m.d.sync += cnt.eq(cnt + 1)
            waiting = any_of([bank[i].r_rdy[slot(i, o)] for i in inputs])
            m.d.sync += self.flits[o.value].eq(self.flits[o.value] + send)
            with m.If(waiting & ~send):
                m.d.sync += self.stalls[o.value].eq(self.stalls[o.value] + 1)
            moved.append(send)

        # ---- local output
        deliver = self.local.o
        m.d.comb += [
            deliver.valid.eq(eject.r_rdy[0]),
            deliver.payload.eq(eject.r_data[0]),
            eject.r_en[0].eq(deliver.ready),
        ]
        moved.append(deliver.valid & deliver.ready)
        m.d.comb += self.moved.eq(any_of(moved))
        for i in ALLOWED_TURNS:
            m.d.comb += self.held[i.value].eq(bank[i].level)
        m.d.comb += self.held[5].eq(eject.level)
        return m
