"""RTL harnesses for multicast and collective runs: data sources and hashing receivers in the
hardware, so a host only configures, starts, waits and reads per-node results."""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from tilelab.checks import check_int
from tilelab.hdl.formats.noc import MulticastConfig, Opcode, ReduceConfig
from tilelab.noc.collective import CollectiveMesh
from tilelab.noc.common import any_of, check_mesh
from tilelab.noc.mesh import Mesh

__all__ = ["MulticastHarness", "CollectiveHarness", "FNV_OFFSET", "FNV_PRIME"]

FNV_OFFSET, FNV_PRIME = 0x811C9DC5, 0x01000193
MC_MUL, MC_STEP = 0x9E3779B1, 0x85EBCA6B
LCG_A, LCG_C = 1664525, 1013904223


def _fnv(h, word):
    return ((h ^ word) * FNV_PRIME)[:32]


class MulticastHarness(wiring.Component):
    """A multicast-plane mesh with one configurable source and a hashing receiver per node.

    After ``go`` the node ``cfg.src`` sends ``cfg.flits`` flits (word ``k`` is
    ``seed * 0x9E3779B1 + k * 0x85EBCA6B``) to the rectangle, in packets of ``max_packet`` flits.
    Every node counts and FNV-hashes what it receives and notes the cycles of its first and last
    flit; ``node`` selects which node ``node_*`` show.

    Parameters
    ----------
    rows, cols : int
    max_packet, depth : int
        Multicast router parameters.
    watchdog : int
    """

    def __init__(self, *, rows, cols, max_packet=4, depth=8, watchdog=1024):
        check_mesh(rows, cols)
        self.rows, self.cols, self.max_packet = rows, cols, max_packet
        self.mesh = Mesh(rows=rows, cols=cols, plane="multicast", data_width=32, depth=depth,
                         max_packet=max_packet, watchdog=watchdog)
        super().__init__({
            "cfg": In(MulticastConfig),
            "go": In(1),
            "node": In(8),
            "node_flits": Out(32),
            "node_hash": Out(32),
            "node_first": Out(32),
            "node_last": Out(32),
            "cycles": Out(32),
            "done": Out(1),
            "stuck": Out(1),
            "finished": Out(1),
            "dropped": Out(32),
            "cnt_addr": In(16),
            "cnt_data": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.mesh = mesh = self.mesh
        cfg = self.cfg
        m.d.comb += [mesh.cnt_addr.eq(self.cnt_addr), self.cnt_data.eq(mesh.cnt_data),
                     self.dropped.eq(mesh.dropped)]
        running = Signal()
        t = Signal(32)
        with m.If(self.go):
            m.d.sync += running.eq(1)
        with m.If(running):
            m.d.sync += t.eq(t + 1)

        # ---- the source
        sent = Signal(16)
        word = Signal(32)
        in_pkt = Signal(range(self.max_packet))
        primed = Signal()
        with m.If(running & ~primed):
            m.d.sync += [word.eq((cfg.seed * MC_MUL)[:32]), primed.eq(1)]
        flit = self.mesh.layout(Signal(self.mesh.layout.size))
        valid = running & primed & (sent != cfg.flits)
        last = (sent == cfg.flits - 1) | (in_pkt == self.max_packet - 1)
        m.d.comb += [
            flit.hdr.op.eq(Opcode.WRITE),
            flit.hdr.src.eq(cfg.src),
            flit.hdr.dst.eq(cfg.rect0),
            flit.hdr.dst_end.eq(cfg.rect1),
            flit.last.eq(last),
            flit.data.eq(word),
        ]
        ready = Signal()
        for (x, y) in mesh.routers:
            port = mesh.local(x, y).i
            here = (cfg.src.x == x) & (cfg.src.y == y)
            m.d.comb += [port.valid.eq(valid & here), port.payload.eq(flit)]
            with m.If(here):
                m.d.comb += ready.eq(port.ready)
        with m.If(valid & ready):
            m.d.sync += [sent.eq(sent + 1), word.eq(word + MC_STEP),
                         in_pkt.eq(Mux(last, 0, in_pkt + 1))]

        # ---- receivers
        last_any = Signal(32)
        results = []
        for (x, y) in mesh.routers:
            port = mesh.local(x, y).o
            count = Signal(32, name=f"count_{x}_{y}")
            h = Signal(32, init=FNV_OFFSET, name=f"hash_{x}_{y}")
            first = Signal(32, name=f"first_{x}_{y}")
            lastc = Signal(32, name=f"last_{x}_{y}")
            got = self.mesh.layout(port.payload)
            m.d.comb += port.ready.eq(1)
            with m.If(port.valid):
                m.d.sync += [count.eq(count + 1), h.eq(_fnv(h, got.data)), lastc.eq(t)]
                with m.If(count == 0):
                    m.d.sync += first.eq(t)
            results.append((y * self.cols + x, count, h, first, lastc))
        any_delivery = any_of([mesh.local(x, y).o.valid for (x, y) in mesh.routers])
        with m.If(any_delivery):
            m.d.sync += last_any.eq(t + 1)
        with m.Switch(self.node):
            for n, count, h, first, lastc in results:
                with m.Case(n):
                    m.d.comb += [self.node_flits.eq(count), self.node_hash.eq(h),
                                 self.node_first.eq(first), self.node_last.eq(lastc)]
        done = Signal()
        with m.If(running & primed & (sent == cfg.flits) & mesh.idle):
            m.d.sync += done.eq(1)
        m.d.comb += [self.done.eq(done), self.cycles.eq(last_any), self.stuck.eq(mesh.stuck),
                     self.finished.eq(done | mesh.stuck)]
        return m


class CollectiveHarness(wiring.Component):
    """Collective planes (``contexts`` of them) with RTL contribution generators and hashing
    receivers on every node.

    Context ``k`` is configured by ``cfg{k}`` (a :class:`ReduceConfig`); when enabled, every node
    of its rectangle contributes ``flits`` flits whose lane ``l`` starts at
    ``seed ^ (node * 0x9E3779B1 + l * 0x7F4A7C15)`` and steps by the LCG
    ``v * 1664525 + 1013904223``.  ``node`` selects which node ``node_*{k}`` show.

    Parameters
    ----------
    rows, cols : int
    lanes : int
        int32 lanes per flit.
    contexts : int
        Independent collective planes.
    watchdog : int
    """

    def __init__(self, *, rows, cols, lanes=4, contexts=2, watchdog=1024):
        check_mesh(rows, cols)
        check_int("collective contexts", contexts, 1, 4)
        self.rows, self.cols, self.lanes, self.contexts = rows, cols, lanes, contexts
        self.meshes = [CollectiveMesh(rows=rows, cols=cols, lanes=lanes, watchdog=watchdog)
                       for _ in range(contexts)]
        members = {"go": In(1), "node": In(8), "done": Out(1), "stuck": Out(1), "finished": Out(1)}
        for k in range(contexts):
            members.update({
                f"cfg{k}": In(ReduceConfig),
                f"node_flits{k}": Out(32),
                f"node_hash{k}": Out(32),
                f"node_last{k}": Out(32),
                f"cycles{k}": Out(32),
            })
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        running = Signal()
        t = Signal(32)
        with m.If(self.go):
            m.d.sync += running.eq(1)
        with m.If(running):
            m.d.sync += t.eq(t + 1)
        dones, stucks = [], []
        for k, mesh in enumerate(self.meshes):
            m.submodules[f"coll{k}"] = mesh
            cfg = getattr(self, f"cfg{k}")
            layout = mesh.layout
            last_any = Signal(32, name=f"last_any{k}")
            results, finished = [], []
            for (x, y) in mesh.routers:
                n = y * self.cols + x
                inside = (cfg.rect0.x <= x) & (x <= cfg.rect1.x) & (cfg.rect0.y <= y) & (y <= cfg.rect1.y)
                active = cfg.enable & inside
                # contribution generator
                sent = Signal(16, name=f"sent{k}_{x}_{y}")
                primed = Signal(name=f"primed{k}_{x}_{y}")
                lanes = [Signal(32, name=f"lane{k}_{x}_{y}_{i}") for i in range(self.lanes)]
                with m.If(running & ~primed):
                    m.d.sync += primed.eq(1)
                    for i, v in enumerate(lanes):
                        m.d.sync += v.eq(cfg.seed ^ ((n * 0x9E3779B1 + i * 0x7F4A7C15) & 0xFFFFFFFF))
                port = mesh.local(x, y).i
                flit = layout(port.payload)
                m.d.comb += [
                    port.valid.eq(running & primed & active & (sent != cfg.flits)),
                    flit.hdr.op.eq(cfg.op),
                    flit.hdr.root.eq(cfg.root),
                    flit.hdr.rect0.eq(cfg.rect0),
                    flit.hdr.rect1.eq(cfg.rect1),
                    flit.last.eq(sent == cfg.flits - 1),
                ]
                for i, v in enumerate(lanes):
                    m.d.comb += flit.data[i].eq(v)
                with m.If(port.valid & port.ready):
                    m.d.sync += sent.eq(sent + 1)
                    for v in lanes:
                        m.d.sync += v.eq((v * LCG_A + LCG_C)[:32])
                # receiver
                out = mesh.local(x, y).o
                got = layout(out.payload)
                count = Signal(32, name=f"count{k}_{x}_{y}")
                h = Signal(32, init=FNV_OFFSET, name=f"hash{k}_{x}_{y}")
                lastc = Signal(32, name=f"last{k}_{x}_{y}")
                m.d.comb += out.ready.eq(1)
                hv = h
                for i in range(self.lanes):
                    step = Signal(32, name=f"fnv{k}_{x}_{y}_{i}")
                    m.d.comb += step.eq(_fnv(hv, got.data[i].as_unsigned()))
                    hv = step
                with m.If(out.valid):
                    m.d.sync += [count.eq(count + 1), h.eq(hv), lastc.eq(t)]
                results.append((n, count, h, lastc))
                finished.append(count == Mux(active, cfg.flits, 0))
            with m.If(any_of([mesh.local(x, y).o.valid for (x, y) in mesh.routers])):
                m.d.sync += last_any.eq(t + 1)
            with m.Switch(self.node):
                for n, count, h, lastc in results:
                    with m.Case(n):
                        m.d.comb += [getattr(self, f"node_flits{k}").eq(count),
                                     getattr(self, f"node_hash{k}").eq(h),
                                     getattr(self, f"node_last{k}").eq(lastc)]
            m.d.comb += getattr(self, f"cycles{k}").eq(last_any)
            dones.append(Cat(*finished).all() & mesh.idle)
            stucks.append(mesh.stuck)
        done = Signal()
        with m.If(running & Cat(*dones).all()):
            m.d.sync += done.eq(1)
        m.d.comb += [self.done.eq(done), self.stuck.eq(any_of(stucks)),
                     self.finished.eq(done | self.stuck)]
        return m



