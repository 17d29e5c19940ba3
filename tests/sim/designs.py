"""Tiny designs for the simulation-layer tests."""

from amaranth.hdl import Module
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out


class Counter(wiring.Component):
    """Counts while ``en`` is high, up to ``limit``; ``done`` when it gets there."""

    en: In(1)
    limit: In(16)
    count: Out(16)
    done: Out(1)

    def __init__(self, tag: int = 0):
        self.tag = tag  # distinct tags give distinct Verilog (distinct cache keys)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        with m.If(self.en & (self.count != self.limit)):
            m.d.sync += self.count.eq(self.count + 1 + 0 * self.tag)
        m.d.comb += self.done.eq((self.count == self.limit) & (self.limit != 0) & (self.tag == self.tag))
        if self.tag:
            # A harmless constant register keeps each tag's Verilog unique.
            from amaranth.hdl import Signal

            keep = Signal(16, init=self.tag, name=f"tag_{self.tag}")
            m.d.sync += keep.eq(keep)
        return m


class Fifo(wiring.Component):
    """A stream FIFO: ``i`` in, ``o`` out (for the cocotb stream helper tests)."""

    def __init__(self, width=16, depth=4):
        self.width, self.depth = width, depth
        super().__init__({"i": In(stream.Signature(width)), "o": Out(stream.Signature(width))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.f = f = fifo.SyncFIFOBuffered(width=self.width, depth=self.depth)
        m.d.comb += [
            f.w_data.eq(self.i.payload), f.w_en.eq(self.i.valid), self.i.ready.eq(f.w_rdy),
            self.o.payload.eq(f.r_data), self.o.valid.eq(f.r_rdy), f.r_en.eq(self.o.ready),
        ]
        return m
