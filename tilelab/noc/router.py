"""The unicast router of the request and response planes.

A 5-port (N, E, S, W, local) input-queued router with virtual output queues, XY
dimension-ordered routing, wormhole switching and credit flow control.

Pipeline (one cycle per hop): a flit that arrives on a link is routed on arrival and written
into the virtual output queue (VOQ) of its input port for the output it will leave by; the next
cycle each output's round-robin arbiter picks one VOQ head that holds a credit for the queue the
flit will land in at the neighbour (look-ahead routing), and the flit crosses the switch and the
link into that queue.  A VOQ per (input, output) pair removes head-of-line blocking; with XY
routing an input only ever feeds the outputs that the routing function allows (17 queues per
router), and every output keeps a packet's path until its ``last`` flit (wormhole).  XY routing
has no cyclic channel dependency, so the plane is deadlock-free.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from tilelab.hdl.formats.noc import Direction, flit_layout
from tilelab.noc.common import (
    DIRS,
    OPPOSITE,
    LinkSignature,
    LocalSignature,
    any_of,
    check_int,
    check_mesh,
    neighbour,
    round_robin,
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
    x, y : int
        This router's coordinates.
    rows, cols : int
        Mesh size (1..16 each); a packet injected here for a node outside the mesh is dropped
        and counted in :attr:`dropped`.
    data_width : int
        Payload bits per flit.
    depth : int
        Flits per virtual output queue (at least 2 for one flit per cycle per queue).
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

    def __init__(self, *, x, y, rows, cols, data_width=32, depth=4, eject_depth=4):
        check_mesh(rows, cols)
        check_int("router x", x, 0, cols - 1)
        check_int("router y", y, 0, rows - 1)
        check_int("router data_width", data_width, 1)
        check_int("router depth", depth, 1, 64)
        check_int("router eject_depth", eject_depth, 1, 64)
        self.x, self.y, self.rows, self.cols = x, y, rows, cols
        self.depth, self.eject_depth = depth, eject_depth
        self.layout = flit_layout(data_width)
        members = {}
        for d in DIRS:
            members[link_port_name("in", d)] = In(LinkSignature(self.layout, 5))
            members[link_port_name("out", d)] = Out(LinkSignature(self.layout, 5))
        members.update({
            "local": Out(LocalSignature(self.layout)),
            "dropped": Out(16),
            "flits": Out(32).array(5),
            "stalls": Out(32).array(5),
            "held": Out(8).array(6),
            "moved": Out(1),
        })
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        layout, x, y = self.layout, self.x, self.y

        voq = {}
        for i, outs in ALLOWED_TURNS.items():
            for o in outs:
                fifo = SyncFIFO(width=layout.size, depth=self.depth)
                m.submodules[f"voq_{i.name}_{o.name}"] = fifo
                voq[i, o] = fifo
        eject = SyncFIFO(width=layout.size, depth=self.eject_depth)
        m.submodules.eject = eject

        # ---- input side: route on arrival, write into the VOQ, return credits on pop
        for d in DIRS:
            link = getattr(self, link_port_name("in", d))
            route = xy_route(m, x, y, link.flit.hdr.dst, name=f"route_{d.name}")
            for o in ALLOWED_TURNS[d]:
                m.d.comb += [
                    voq[d, o].w_en.eq(link.valid & (route == o)),
                    voq[d, o].w_data.eq(link.flit),
                    link.credit[o.value].eq(voq[d, o].r_en),
                ]

        inj = self.local.i
        inj_route = xy_route(m, x, y, inj.payload.hdr.dst, name="route_L")
        outside = (inj.payload.hdr.dst.x >= self.cols) | (inj.payload.hdr.dst.y >= self.rows)
        space = Signal()
        for o in ALLOWED_TURNS[Direction.L]:
            with m.If(inj_route == o):
                m.d.comb += space.eq(voq[Direction.L, o].w_rdy)
            m.d.comb += [
                voq[Direction.L, o].w_en.eq(inj.valid & ~outside & (inj_route == o)),
                voq[Direction.L, o].w_data.eq(inj.payload),
            ]
        m.d.comb += inj.ready.eq(outside | space)
        with m.If(inj.valid & outside & inj.payload.last):
            m.d.sync += self.dropped.eq(self.dropped + 1)

        # ---- output side: per output a round-robin arbiter over the VOQs feeding it
        moved = []
        for o in (*DIRS, Direction.L):
            inputs = [i for i, outs in ALLOWED_TURNS.items() if o in outs]
            locked = Signal(name=f"locked_{o.name}")
            owner = Signal(range(len(inputs)), name=f"owner_{o.name}")
            if o is Direction.L:
                credit_counters = None
            else:
                nx, ny = neighbour(x, y, o)
                downstream = ALLOWED_TURNS[OPPOSITE[o]]
                credit_counters = {q: Signal(range(self.depth + 1), init=self.depth,
                                             name=f"credit_{o.name}_{q.name}") for q in downstream}
            requests, heads, lookahead = [], [], []
            for k, i in enumerate(inputs):
                head = layout(voq[i, o].r_data)
                heads.append(head)
                if credit_counters is None:
                    credit_ok = eject.w_rdy
                    la = None
                else:
                    la = xy_route(m, nx, ny, head.hdr.dst, name=f"la_{i.name}_{o.name}")
                    credit_ok = any_of([(la == q) & (cnt != 0) for q, cnt in credit_counters.items()])
                lookahead.append(la)
                req = Signal(name=f"req_{i.name}_{o.name}")
                m.d.comb += req.eq(voq[i, o].r_rdy & credit_ok & (~locked | (owner == k)))
                requests.append(req)
            grant, index, advance = round_robin(m, requests, name=f"arb_{o.name}")
            send = any_of(grant)
            m.d.comb += advance.eq(send)
            flit = layout(Signal(layout.size, name=f"xbar_{o.name}"))
            sent_la = Signal(Direction, name=f"sent_la_{o.name}")
            for k, i in enumerate(inputs):
                m.d.comb += voq[i, o].r_en.eq(grant[k])
                with m.If(grant[k]):
                    m.d.comb += flit.eq(heads[k])
                    if lookahead[k] is not None:
                        m.d.comb += sent_la.eq(lookahead[k])
            with m.If(send):
                m.d.sync += [locked.eq(~flit.last), owner.eq(index)]
            if o is Direction.L:
                m.d.comb += [eject.w_en.eq(send), eject.w_data.eq(flit)]
            else:
                link = getattr(self, link_port_name("out", o))
                m.d.comb += [link.valid.eq(send), link.flit.eq(flit)]
                for q, cnt in credit_counters.items():
                    dec = send & (sent_la == q)
                    inc = link.credit[q.value]
                    with m.If(dec & ~inc):
                        m.d.sync += cnt.eq(cnt - 1)
                    with m.Elif(inc & ~dec):
                        m.d.sync += cnt.eq(cnt + 1)
            waiting = any_of([voq[i, o].r_rdy for i in inputs])
            m.d.sync += self.flits[o.value].eq(self.flits[o.value] + send)
            with m.If(waiting & ~send):
                m.d.sync += self.stalls[o.value].eq(self.stalls[o.value] + 1)
            moved.append(send)

        # ---- local output
        deliver = self.local.o
        m.d.comb += [
            deliver.valid.eq(eject.r_rdy),
            deliver.payload.eq(eject.r_data),
            eject.r_en.eq(deliver.ready),
        ]
        moved.append(deliver.valid & deliver.ready)
        m.d.comb += self.moved.eq(any_of(moved))

        for i in ALLOWED_TURNS:
            total = sum(voq[i, o].level for o in ALLOWED_TURNS[i])
            m.d.comb += self.held[i.value].eq(total)
        m.d.comb += self.held[5].eq(eject.level)
        return m
