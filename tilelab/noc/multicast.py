"""The multicast router: rectangle multicast forked inside the routers.

A packet addressed to the rectangle ``hdr.dst``..``hdr.dst_end`` travels an XY tree: along the
source's row toward the rectangle's columns, and in every column of the rectangle it forks
north and south (and keeps going east / west along the source row), delivering once to every
node of the rectangle.  The source may be inside or outside the rectangle; a unicast packet is
the 1 × 1 rectangle.

Each input port has one FIFO.  A packet's first flit asks for every output of its branch set at
once; the set is granted all-or-nothing, and only when every output has credit for a whole
packet at the next router (virtual cut-through reservation; a one-flit packet needs one
credit).  Granted outputs stay with the packet until its ``last`` flit and every flit goes to
all of them in the same cycle.  Because a packet that holds an output always has room to finish,
and the tree's channel dependencies follow XY order, overlapping multicasts cannot deadlock.
Packets longer than ``max_packet`` flits are cut into ``max_packet``-flit packets at injection
(each flit carries the header, so the pieces route identically and stay in order).
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from tilelab.checks import check_int, check_pow2
from tilelab.hdl.formats.noc import Coord, Direction, flit_layout
from tilelab.noc.common import DIRS, FifoView, QueueBank, any_of, check_mesh, router_members
from tilelab.noc.router import link_port_name

__all__ = ["MulticastRouter", "rect_valid"]

PORTS = (*DIRS, Direction.L)


def rect_valid(hdr, rows, cols):
    """1-bit value: the rectangle of ``hdr`` is non-empty, not inverted and inside the mesh."""
    lo, hi = hdr.dst, hdr.dst_end
    return (lo.x <= hi.x) & (lo.y <= hi.y) & (hi.x < cols) & (hi.y < rows)


def multicast_branches(m, x, y, hdr, in_port, *, name):
    """Outputs (a 5-bit mask, :class:`Direction` order) of a multicast flit at router ``(x, y)``
    that arrived on ``in_port``."""
    x0, y0, x1, y1 = hdr.dst.x, hdr.dst.y, hdr.dst_end.x, hdr.dst_end.y
    mask = Signal(5, name=name)
    in_cols = (x0 <= x) & (x <= x1)
    in_rows = (y0 <= y) & (y <= y1)
    branch = {o: Const(0) for o in PORTS}
    if in_port in (Direction.L, Direction.W, Direction.E):
        if in_port in (Direction.L, Direction.W):
            branch[Direction.E] = x < x1
        if in_port in (Direction.L, Direction.E):
            branch[Direction.W] = x > x0
        branch[Direction.S] = in_cols & (y < y1)
        branch[Direction.N] = in_cols & (y > y0)
        branch[Direction.L] = in_cols & in_rows
    elif in_port is Direction.N:          # arrived from the north: travelling south
        branch[Direction.S] = y < y1
        branch[Direction.L] = in_rows
    else:                                 # arrived from the south: travelling north
        branch[Direction.N] = y > y0
        branch[Direction.L] = in_rows
    m.d.comb += mask.eq(Cat(*(branch[o] for o in PORTS)))
    return mask


class MulticastRouter(wiring.Component):
    """Rectangle-multicast router with all-or-nothing forking and packet-sized reservations.

    Parameters
    ----------
    x, y : int or None
        This router's coordinates; ``None`` for both gives the router an input port ``at``
        (:class:`~tilelab.hdl.formats.noc.Coord`) instead, so that one Verilog module serves every
        router of a mesh (:class:`tilelab.hdl.shared.SharedModules`).
    rows, cols : int
        Mesh size (1..16 each).  A packet injected here whose rectangle is inverted or leaves
        the mesh is dropped and counted in :attr:`dropped`.
    data_width : int
        Payload bits per flit.
    depth : int
        Flits per input FIFO (at least ``max_packet``; ``max_packet + 2`` keeps one flit per
        cycle flowing).
    max_packet : int
        Longest packet, in flits; longer injected packets are cut.

    Members
    -------
    in_n, in_e, in_s, in_w : In(LinkSignature(flit, 1))
    out_n, out_e, out_s, out_w : Out(LinkSignature(flit, 1))
    local : Out(LocalSignature(flit))
    dropped, flits, stalls, held, moved
        As in :class:`~tilelab.noc.router.UnicastRouter`.
    """

    def __init__(self, *, x=None, y=None, rows, cols, data_width=32, depth=8, max_packet=4):
        check_mesh(rows, cols)
        self.coord_ports = x is None and y is None
        if not self.coord_ports:
            check_int("router x", x, 0, cols - 1)
            check_int("router y", y, 0, rows - 1)
        check_int("router data_width", data_width, 1)
        check_int("multicast max_packet", max_packet, 1, 64)
        check_pow2("multicast router depth", depth, 1, 64)
        if depth < max_packet:
            raise ValueError(f"multicast router depth must be at least max_packet ({max_packet}), "
                             f"not {depth!r}")
        self.x, self.y, self.rows, self.cols = x, y, rows, cols
        self.depth, self.max_packet = depth, max_packet
        self.layout = flit_layout(data_width)
        members = router_members(self.layout, 1, link_port_name)
        if self.coord_ports:
            members["at"] = In(Coord)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        layout = self.layout
        x, y = (self.at.x, self.at.y) if self.coord_ports else (self.x, self.y)
        n = len(PORTS)

        size = layout.size
        bank = {p: QueueBank(width=size, queues=1, depth=self.depth) for p in PORTS}
        for p in PORTS:
            m.submodules[f"in_{p.name}"] = bank[p]
        eject = m.submodules.eject = QueueBank(width=size, queues=1, depth=self.depth)
        fifo = {p: FifoView(bank[p]) for p in PORTS}
        eject_fifo = FifoView(eject)

        # ---- inputs
        for d in DIRS:
            link = getattr(self, link_port_name("in", d))
            m.d.comb += [
                fifo[d].w_en.eq(link.valid),
                fifo[d].w_data.eq(link.flit),
                link.credit.eq(fifo[d].r_en),
            ]
        inj = self.local.i
        valid_rect = rect_valid(inj.payload.hdr, self.rows, self.cols)
        count = Signal(range(self.max_packet), name="inj_count")
        cut = layout(Signal(layout.size, name="inj_flit"))
        m.d.comb += [
            cut.eq(inj.payload),
            cut.last.eq(inj.payload.last | (count == self.max_packet - 1)),
            fifo[Direction.L].w_en.eq(inj.valid & valid_rect),
            fifo[Direction.L].w_data.eq(cut),
            inj.ready.eq(~valid_rect | fifo[Direction.L].w_rdy),
        ]
        with m.If(inj.valid & inj.ready & valid_rect):
            m.d.sync += count.eq(Mux(cut.last, 0, count + 1))
        with m.If(inj.valid & ~valid_rect & inj.payload.last):
            m.d.sync += self.dropped.eq(self.dropped + 1)

        # ---- credits: free slots at the next router (or in the ejection buffer)
        credits = {}
        for o in DIRS:
            credits[o] = Signal(range(self.depth + 1), init=self.depth, name=f"credit_{o.name}")
        credits[Direction.L] = Signal(range(self.depth + 1), name="credit_L")
        m.d.comb += credits[Direction.L].eq(self.depth - eject.level)
        eject = eject_fifo

        # ---- allocation
        in_pkt = [Signal(name=f"in_pkt_{p.name}") for p in PORTS]
        held = [Signal(5, name=f"held_{p.name}") for p in PORTS]
        busy = Signal(5)
        m.d.comb += busy.eq(_or_masks([Mux(in_pkt[i], held[i], 0) for i in range(n)]))
        one = Cat(*(credits[o] != 0 for o in PORTS))
        whole = Cat(*(credits[o] >= self.max_packet for o in PORTS))

        heads, need, body_go, head_req, head_ok, head_room = [], [], [], [], [], []
        for i, p in enumerate(PORTS):
            head = layout(fifo[p].r_data)
            heads.append(head)
            need.append(multicast_branches(m, x, y, head.hdr, p, name=f"need_{p.name}"))
            go = Signal(name=f"body_go_{p.name}")
            m.d.comb += go.eq(in_pkt[i] & fifo[p].r_rdy & ((held[i] & ~one) == 0))
            body_go.append(go)
            req = Signal(name=f"head_req_{p.name}")
            m.d.comb += req.eq(~in_pkt[i] & fifo[p].r_rdy)
            head_req.append(req)
            ok = Signal(name=f"head_ok_{p.name}")
            room = Signal(name=f"head_room_{p.name}")
            m.d.comb += room.eq((need[i] & ~Mux(head.last, one, whole)) == 0)
            m.d.comb += ok.eq(room & ((need[i] & busy) == 0))
            head_ok.append(ok)
            head_room.append(room)

        ptr = Signal(range(n), name="prio")
        grant = [Signal(name=f"grant_{p.name}") for p in PORTS]
        with m.Switch(ptr):
            for first in range(n):
                with m.Case(first):
                    claimed = Const(0, 5)
                    for k in range(n):
                        i = (first + k) % n
                        can = head_req[i] & head_ok[i] & ((need[i] & claimed) == 0)
                        m.d.comb += grant[i].eq(can)
                        # The input with priority reserves its outputs while it waits for packets
                        # that hold them to finish, but not while it waits for credits: waiting
                        # for credits while holding could close a cycle through two routers.
                        claims = (can | (head_req[i] & head_room[i])) if k == 0 else can
                        nxt = Signal(5, name=f"claimed_{first}_{k}")
                        m.d.comb += nxt.eq(claimed | Mux(claims, need[i], 0))
                        claimed = nxt
        pointer_moves = Signal()
        with m.Switch(ptr):
            for first in range(n):
                with m.Case(first):
                    m.d.comb += pointer_moves.eq(~head_req[first] | grant[first])
        with m.If(pointer_moves):
            m.d.sync += ptr.eq(Mux(ptr == n - 1, 0, ptr + 1))

        for i, p in enumerate(PORTS):
            m.d.comb += fifo[p].r_en.eq(body_go[i] | grant[i])
            with m.If(grant[i] & ~heads[i].last):
                m.d.sync += [in_pkt[i].eq(1), held[i].eq(need[i])]
            with m.If(body_go[i] & heads[i].last):
                m.d.sync += in_pkt[i].eq(0)

        # ---- switch: every output sends from the (single) input that drives it this cycle
        moved = []
        for oi, o in enumerate(PORTS):
            drivers = [(body_go[i] & held[i][oi]) | (grant[i] & need[i][oi]) for i in range(n)]
            send = Signal(name=f"send_{o.name}")
            m.d.comb += send.eq(any_of(drivers))
            flit = layout(Signal(layout.size, name=f"xbar_{o.name}"))
            for i in range(n):
                with m.If(drivers[i]):
                    m.d.comb += flit.eq(heads[i])
            if o is Direction.L:
                m.d.comb += [eject.w_en.eq(send), eject.w_data.eq(flit)]
            else:
                link = getattr(self, link_port_name("out", o))
                m.d.comb += [link.valid.eq(send), link.flit.eq(flit)]
                cnt = credits[o]
                with m.If(send & ~link.credit):
                    m.d.sync += cnt.eq(cnt - 1)
                with m.Elif(~send & link.credit):
                    m.d.sync += cnt.eq(cnt + 1)
            waiting = any_of([head_req[i] & need[i][oi] for i in range(n)]
                             + [in_pkt[i] & held[i][oi] for i in range(n)])
            m.d.sync += self.flits[oi].eq(self.flits[oi] + send)
            with m.If(waiting & ~send):
                m.d.sync += self.stalls[oi].eq(self.stalls[oi] + 1)
            moved.append(send)

        deliver = self.local.o
        m.d.comb += [
            deliver.valid.eq(eject.r_rdy),
            deliver.payload.eq(eject.r_data),
            eject.r_en.eq(deliver.ready),
        ]
        moved.append(deliver.valid & deliver.ready)
        m.d.comb += self.moved.eq(any_of(moved))
        for i, p in enumerate(PORTS):
            m.d.comb += self.held[i].eq(fifo[p].level)
        m.d.comb += self.held[5].eq(eject.level)
        return m


def _or_masks(masks):
    out = Const(0, 5)
    for mask in masks:
        out = out | mask
    return out

