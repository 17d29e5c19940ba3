"""All-reduce of host data on the collective plane: per-node memories loaded in bulk, totals read back.

:class:`BulkReduceHarness` puts a memory beside every node of a
:class:`~tilelab.noc.collective.CollectiveMesh`. The host loads node ``(x, y)``'s contribution —
``flits`` words of ``lanes`` int32 lanes — into words ``0 .. flits-1`` of its memory (the
:class:`~tilelab.hdl.memories.ExtMemory` model named :func:`~tilelab.hdl.memories.node_memory_name`
``(y, x)``: ``+node_<y>_<x>_init=FILE``, or ``init``). After
``start`` each node's feeder streams its words into its local port as one collective packet
(sum over the whole mesh, root in the centre), and each node's receiver writes the totals that
come back into words ``flits .. 2·flits-1`` of the same memory, which the host dumps
(``+node_<y>_<x>_dump=FILE``). ``done`` rises when every node has received all its totals.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from tilelab.checks import check_int
from tilelab.hdl.formats.noc import CollectiveHeader, ReduceOp
from tilelab.hdl.memories import ExtMemory, node_memory_name
from tilelab.noc.collective import CollectiveMesh
from tilelab.noc.common import check_mesh

__all__ = ["BulkReduceHarness"]



class BulkReduceHarness(wiring.Component):
    """A collective mesh whose contributions come from, and totals go to, per-node memories.

    Parameters
    ----------
    rows, cols : int
        Mesh size, 1..16 each.
    lanes : int
        int32 lanes per flit, 1, 2, 4, 8 or 16 (a memory word is one flit: ``4 · lanes`` bytes).
    depth : int
        Words per node memory; a run of ``flits`` flits needs ``2 · flits <= depth``.
    mem_impl : {"verilog", "amaranth"}
        Memory model.
    init : dict, optional
        Amaranth model only: ``{memory name: [word, ...]}`` initial contents.

    Members
    -------
    start : In(1)
        Pulse once after reset.
    flits : In(16)
        Flits each node contributes (held during the run).
    done : Out(1)
        Every node has written all totals (sticky).
    cycles, sent, received : Out(32)
        Cycles from start to done; flits injected and delivered, over all nodes.
    stuck : Out(1)
        The mesh's watchdog fired.
    dump : In(1)
        Verilog model: a cycle with it high dumps every node memory to its file.
    """

    def __init__(self, *, rows, cols, lanes=8, depth=1024, mem_impl="verilog", init=None):
        check_mesh(rows, cols)
        if lanes not in (1, 2, 4, 8, 16):
            raise ValueError(f"bulk reduce lanes must be 1, 2, 4, 8 or 16, not {lanes!r}")
        check_int("bulk reduce depth", depth, 2, 1 << 20)
        self.rows, self.cols, self.lanes, self.depth, self.mem_impl = rows, cols, lanes, depth, mem_impl
        self._init = init or {}
        self.memories = {}
        super().__init__({
            "start": In(1), "flits": In(16), "done": Out(1), "cycles": Out(32), "sent": Out(32),
            "received": Out(32), "stuck": Out(1), "dump": In(1),
        })

    @property
    def sim_memories(self):
        """Node memories a testbench may dump (Amaranth model)."""
        return {name: mem.data for name, mem in self.memories.items() if mem.data is not None}

    def elaborate(self, platform):
        m = Module()
        rows, cols = self.rows, self.cols
        word_bytes = 4 * self.lanes
        m.submodules.mesh = mesh = CollectiveMesh(rows=rows, cols=cols, lanes=self.lanes)
        hdr = CollectiveHeader.const({
            "op": ReduceOp.SUM, "root": {"x": (cols - 1) // 2, "y": (rows - 1) // 2},
            "rect0": {"x": 0, "y": 0}, "rect1": {"x": cols - 1, "y": rows - 1}})
        running = Signal()
        done = Signal()
        with m.If(self.start):
            m.d.sync += running.eq(1)
        with m.If(running & ~done):
            m.d.sync += self.cycles.eq(self.cycles + 1)
        m.d.comb += [self.done.eq(done), self.stuck.eq(mesh.stuck)]

        finished = []
        sent_now, received_now = [], []
        for y in range(rows):
            for x in range(cols):
                name = node_memory_name(y, x)
                mem = ExtMemory(width_bytes=word_bytes, depth=self.depth, impl=self.mem_impl, name=name,
                                init=self._init.get(name) if self.mem_impl == "amaranth" else None)
                m.submodules[name] = mem
                self.memories[name] = mem
                port = mesh.local(x, y)
                k = Signal(16, name=f"k_{x}_{y}")          # flits sent
                r = Signal(16, name=f"r_{x}_{y}")          # totals received
                pending = Signal(name=f"pending_{x}_{y}")  # word k read, waiting to be sent
                m.d.comb += mem.dump.eq(self.dump)
                # feeder: read word k, offer it until the mesh takes it
                with m.If(running & ~pending & (k < self.flits)):
                    m.d.comb += [mem.ra_en.eq(1), mem.ra_addr.eq(k * word_bytes)]
                    m.d.sync += pending.eq(1)
                m.d.comb += [
                    port.i.valid.eq(pending),
                    port.i.payload.hdr.eq(hdr),
                    port.i.payload.last.eq(k + 1 == self.flits),
                    port.i.payload.data.as_value().eq(mem.ra_data[:32 * self.lanes]),
                ]
                with m.If(port.i.valid & port.i.ready):
                    m.d.sync += [pending.eq(0), k.eq(k + 1)]
                sent_now.append(port.i.valid & port.i.ready)
                # receiver: totals to words flits + r
                m.d.comb += port.o.ready.eq(1)
                with m.If(port.o.valid):
                    m.d.comb += [mem.wr_en.eq(1), mem.wr_addr.eq((self.flits + r) * word_bytes),
                                 mem.wr_data.eq(port.o.payload.data.as_value()),
                                 mem.wr_mask.eq((1 << word_bytes) - 1)]
                    m.d.sync += r.eq(r + 1)
                received_now.append(port.o.valid)
                finished.append(r == self.flits)
        all_done = finished[0]
        for f in finished[1:]:
            all_done = all_done & f
        with m.If(running & all_done):
            m.d.sync += done.eq(1)
        m.d.sync += [self.sent.eq(self.sent + sum(sent_now)), self.received.eq(self.received + sum(received_now))]
        return m
