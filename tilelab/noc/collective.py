"""Collective plane: all-reduce (sum / max of int32 lanes) computed inside the routers.

Every participant of a rectangle sends its contribution (a packet of one or more flits, each a
vector of int32 lanes, all with the same :class:`~tilelab.hdl.formats.noc.CollectiveHeader`) into
its local port.  The routers reduce along each row toward the root's column, then along that
column to the root; the root's totals are broadcast back along the column and out along the
rows, and every participant's local port delivers the totals.  The arithmetic happens in the
routers, one flit per cycle, pipelined: flit ``k`` of the totals reaches every node about
``2 * (tree depth) + a few`` cycles after flit ``k`` of the last contribution.

Each neighbour pair is joined by two streams per direction: an *up* stream (partials toward
the root) and a *down* stream (totals away from it), so the reduction and the broadcast never
wait on each other.  A node's role (which neighbours are its children, which is its parent) is
computed from the header, so consecutive collectives may use different rectangles and roots.
One :class:`CollectiveMesh` runs one collective at a time per node in the order they are
injected; use several meshes (contexts) for collectives that overlap in time.
"""

from amaranth.hdl import Cat, Const, DomainRenamer, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from tilelab.checks import check_int
from tilelab.hdl.clockgate import gated_domain
from tilelab.hdl.formats.noc import Coord, Direction, ReduceOp, collective_flit_layout
from tilelab.noc.common import DIRS, OPPOSITE, LocalSignature, any_of, check_mesh, neighbour

__all__ = ["CollectiveRouter", "CollectiveMesh"]

PORTS = (*DIRS, Direction.L)


def _name(kind, d):
    return f"{kind}_{d.name.lower()}"


class CollectiveRouter(wiring.Component):
    """One node of the collective plane.

    Parameters
    ----------
    x, y : int, optional
        Coordinates; both left out, they come in on the ``at`` port (one module for every node,
        see :class:`~tilelab.hdl.shared.SharedModules`).
    rows, cols : int
        Mesh size (1..16 each).
    lanes : int
        int32 lanes per flit.
    depth : int
        Flits per input buffer (2 keeps one flit per cycle flowing).

    Members
    -------
    up_in_{n,e,s,w} : In(stream.Signature(cflit))
        Partials from the child on that side.
    up_out_{n,e,s,w} : Out(stream.Signature(cflit))
        Partials to the parent on that side.
    dn_in_{n,e,s,w} : In(stream.Signature(cflit))
        Totals from the parent on that side.
    dn_out_{n,e,s,w} : Out(stream.Signature(cflit))
        Totals to the child on that side.
    local : Out(LocalSignature(cflit))
        ``local.i`` takes this node's contributions, ``local.o`` gives the totals.
    held : Out(8)
        Flits buffered in this node.
    moved : Out(1)
        A flit moved this cycle.
    at : In(Coord)
        This node's coordinates (only when ``x`` and ``y`` are left out).
    """

    def __init__(self, *, x=None, y=None, rows, cols, lanes=4, depth=2):
        check_mesh(rows, cols)
        self.coord_ports = x is None and y is None
        if not self.coord_ports:
            check_int("collective router x", x, 0, cols - 1)
            check_int("collective router y", y, 0, rows - 1)
        check_int("collective lanes", lanes, 1, 64)
        check_int("collective router depth", depth, 1, 64)
        self.x, self.y, self.rows, self.cols = x, y, rows, cols
        self.lanes, self.depth = lanes, depth
        self.layout = collective_flit_layout(lanes)
        members = {}
        for d in DIRS:
            members[_name("up_in", d)] = In(stream.Signature(self.layout))
            members[_name("up_out", d)] = Out(stream.Signature(self.layout))
            members[_name("dn_in", d)] = In(stream.Signature(self.layout))
            members[_name("dn_out", d)] = Out(stream.Signature(self.layout))
        members.update({"local": Out(LocalSignature(self.layout)), "held": Out(8), "moved": Out(1)})
        if self.coord_ports:
            members["at"] = In(Coord)
        super().__init__(members)

    def _fifo(self, m, name, port, depth):
        fifo = m.submodules[name] = SyncFIFO(width=self.layout.size, depth=depth)
        m.d.comb += [
            fifo.w_en.eq(port.valid),
            fifo.w_data.eq(port.payload),
            port.ready.eq(fifo.w_rdy),
        ]
        return fifo

    def elaborate(self, platform):
        m = Module()
        layout = self.layout
        x, y = (self.at.x, self.at.y) if self.coord_ports else (self.x, self.y)
        moved = []

        local_in = self._fifo(m, "local_in", self.local.i, self.depth)
        up_in = {d: self._fifo(m, f"up_in_{d.name}", getattr(self, _name("up_in", d)), self.depth)
                 for d in DIRS}
        dn_in = {d: self._fifo(m, f"dn_in_{d.name}", getattr(self, _name("dn_in", d)), self.depth)
                 for d in DIRS}
        totals = m.submodules.totals = SyncFIFO(width=layout.size, depth=self.depth)

        # ---- reduce: local contribution + partials of the children -> parent (or totals)
        mine = layout(local_in.r_data)
        h = mine.hdr
        rx, ry = h.root.x, h.root.y
        x0, y0, x1, y1 = h.rect0.x, h.rect0.y, h.rect1.x, h.rect1.y
        child = {
            Direction.W: (x0 < x) & (x <= rx),
            Direction.E: (rx <= x) & (x < x1),
            Direction.N: (x == rx) & (y0 < y) & (y <= ry),
            Direction.S: (x == rx) & (ry <= y) & (y < y1),
        }
        parent = {
            Direction.E: x < rx,
            Direction.W: x > rx,
            Direction.S: (x == rx) & (y < ry),
            Direction.N: (x == rx) & (y > ry),
        }
        is_root = (x == rx) & (y == ry)
        ready_all = Signal()
        m.d.comb += ready_all.eq(local_in.r_rdy & Cat(*(~child[d] | up_in[d].r_rdy for d in DIRS)).all())

        result = layout(Signal(layout.size, name="result"))
        m.d.comb += [result.hdr.eq(mine.hdr), result.last.eq(mine.last)]
        for lane in range(self.lanes):
            acc = mine.data[lane]
            for d in DIRS:
                other = layout(up_in[d].r_data).data[lane]
                summed = (acc + Mux(child[d], other, 0))[:32].as_signed()
                bigger = Mux(child[d] & (other > acc), other, acc)
                step = Signal(signed(32), name=f"acc_{lane}_{d.name}")
                m.d.comb += step.eq(Mux(h.op == ReduceOp.SUM, summed, bigger))
                acc = step
            m.d.comb += result.data[lane].eq(acc)

        taken = Signal()
        for d in DIRS:
            out = getattr(self, _name("up_out", d))
            m.d.comb += [out.valid.eq(ready_all & parent[d]), out.payload.eq(result)]
            with m.If(out.valid & out.ready):
                m.d.comb += taken.eq(1)
        m.d.comb += [totals.w_en.eq(ready_all & is_root), totals.w_data.eq(result)]
        with m.If(totals.w_en & totals.w_rdy):
            m.d.comb += taken.eq(1)
        m.d.comb += local_in.r_en.eq(taken)
        for d in DIRS:
            m.d.comb += up_in[d].r_en.eq(taken & child[d])
        moved.append(taken)

        # ---- broadcast: totals from the root (our own, or from a parent) -> children + local
        sources = [(Direction.L, totals)] + [(d, dn_in[d]) for d in DIRS]
        busy = Signal()
        sel = Signal(range(len(sources)))
        pick = Signal(range(len(sources)))
        for k in reversed(range(len(sources))):
            with m.If(sources[k][1].r_rdy):
                m.d.comb += pick.eq(k)
        cur = Signal(range(len(sources)))
        m.d.comb += cur.eq(Mux(busy, sel, pick))
        src_valid = Signal()
        flit = layout(Signal(layout.size, name="bcast"))
        arrived = Signal(5)
        for k, (d, fifo) in enumerate(sources):
            with m.If(cur == k):
                m.d.comb += [src_valid.eq(fifo.r_rdy), flit.eq(fifo.r_data), arrived.eq(1 << d.value)]
        bh = flit.hdr
        bx0, by0, bx1, by1 = bh.rect0.x, bh.rect0.y, bh.rect1.x, bh.rect1.y
        came = {d: arrived[d.value] for d in PORTS}
        column_phase = came[Direction.L] | came[Direction.N] | came[Direction.S]
        need = {
            Direction.N: (came[Direction.L] | came[Direction.S]) & (y > by0),
            Direction.S: (came[Direction.L] | came[Direction.N]) & (y < by1),
            Direction.W: (column_phase | came[Direction.E]) & (x > bx0),
            Direction.E: (column_phase | came[Direction.W]) & (x < bx1),
            Direction.L: Const(1),
        }
        outs = {d: getattr(self, _name("dn_out", d)) for d in DIRS}
        outs[Direction.L] = self.local.o
        sent = Signal(5)
        finished = []
        for d in PORTS:
            out = outs[d]
            want = src_valid & need[d] & ~sent[d.value]
            m.d.comb += [out.valid.eq(want), out.payload.eq(flit)]
            finished.append(~need[d] | sent[d.value] | out.ready)
        complete = Signal()
        m.d.comb += complete.eq(src_valid & Cat(*finished).all())
        with m.If(complete):
            m.d.sync += sent.eq(0)
            m.d.sync += [busy.eq(~flit.last), sel.eq(cur)]
        with m.Elif(src_valid):
            m.d.sync += sent.eq(sent | Cat(*(outs[d].valid & outs[d].ready for d in PORTS)))
        for k, (_, fifo) in enumerate(sources):
            m.d.comb += fifo.r_en.eq(complete & (cur == k))
        moved.append(any_of([outs[d].valid & outs[d].ready for d in PORTS]))

        fifos = [local_in, totals, *up_in.values(), *dn_in.values()]
        m.d.comb += [self.held.eq(sum(f.level for f in fifos)), self.moved.eq(any_of(moved))]
        return m


class CollectiveMesh(wiring.Component):
    """An R × C collective plane (one context).

    Parameters
    ----------
    rows, cols : int
        Mesh size, 1..16 each.
    lanes : int
        int32 lanes per flit.
    depth : int
        Flits per router input buffer.
    watchdog : int
        Cycles without progress, while flits are buffered, before :attr:`stuck` rises.
    shared : SharedModules, optional
        Elaborate one router module for the whole plane (coordinates on an input port) and
        instantiate it at every node (Verilog simulators only), as
        :class:`~tilelab.noc.mesh.Mesh` does.

    Members
    -------
    local_{x}_{y} : Out(LocalSignature(cflit))
        ``.i`` takes node ``(x, y)``'s contributions, ``.o`` returns the totals.
    idle, stuck : Out(1)
        As in :class:`~tilelab.noc.mesh.Mesh`.
    """

    def __init__(self, *, rows, cols, lanes=4, depth=2, watchdog=1024, shared=None):
        check_mesh(rows, cols)
        check_int("collective watchdog", watchdog, 1)
        self.rows, self.cols, self.lanes, self.watchdog = rows, cols, lanes, watchdog
        self.depth, self.shared = depth, shared
        self.routers = {}
        for y in range(rows):
            for x in range(cols):
                at = {} if shared is not None else {"x": x, "y": y}
                self.routers[x, y] = CollectiveRouter(**at, rows=rows, cols=cols, lanes=lanes, depth=depth)
        self.layout = collective_flit_layout(lanes)
        members = {f"local_{x}_{y}": Out(LocalSignature(self.layout))
                   for y in range(rows) for x in range(cols)}
        members.update({"idle": Out(1), "stuck": Out(1)})
        super().__init__(members)

    def local(self, x, y):
        """The local-port interface of node ``(x, y)``."""
        return getattr(self, f"local_{x}_{y}")

    def elaborate(self, platform):
        m = Module()
        key = f"{self.rows},{self.cols},{self.lanes},{self.depth}"
        for (x, y), r in self.routers.items():
            # a gated clock: the router ticks only while it buffers a flit or one arrives
            clock = f"coll_router_{x}_{y}"
            arriving = [getattr(r, _name(kind, d)).valid for kind in ("up_in", "dn_in") for d in DIRS]
            gated_domain(m, clock, any_of([r.held != 0, r.local.i.valid, *arriving]))
            if self.shared is None:
                m.submodules[f"router_{x}_{y}"] = DomainRenamer(clock)(r)
            else:
                m.submodules[f"router_{x}_{y}"] = self.shared.instance(r, kind="tilelab_collective_router", key=key,
                                                                       domain=clock)
                m.d.comb += r.at.eq(Coord.const({"x": x, "y": y}))
            wiring.connect(m, wiring.flipped(self.local(x, y)), r.local)
            for d in DIRS:
                nb = neighbour(x, y, d)
                if nb in self.routers:
                    other = self.routers[nb]
                    wiring.connect(m, getattr(r, _name("up_out", d)), getattr(other, _name("up_in", OPPOSITE[d])))
                    wiring.connect(m, getattr(r, _name("dn_out", d)), getattr(other, _name("dn_in", OPPOSITE[d])))
        routers = list(self.routers.values())
        busy = any_of([r.held != 0 for r in routers])
        moved = any_of([r.moved for r in routers])
        m.d.comb += self.idle.eq(~busy)
        quiet = Signal(range(self.watchdog + 1))
        with m.If(moved | ~busy):
            m.d.sync += quiet.eq(0)
        with m.Elif(quiet != self.watchdog):
            m.d.sync += quiet.eq(quiet + 1)
        m.d.comb += self.stuck.eq(quiet == self.watchdog)
        return m
