"""The faster combinational-cycle check finds every cycle Amaranth's own check finds."""

import pytest
from amaranth.hdl import Module, Signal
from amaranth.hdl._nir import CombinationalCycle
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from tilelab.sim.netcheck import _supported
from tilelab.sim.verilog import to_verilog

pytestmark = pytest.mark.skipif(not _supported(), reason="the check replaces Amaranth 0.5's only")


class Loop(wiring.Component):
    """``y`` feeds back into itself through an adder (bit-independent), a bitwise op, or a slice."""

    a: In(8)
    y: Out(8)

    def __init__(self, kind):
        self.kind = kind
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        t = Signal(8)
        if self.kind == "add":
            m.d.comb += [t.eq(self.y + 1), self.y.eq(t ^ self.a)]
        elif self.kind == "bitwise":
            m.d.comb += [t.eq(self.y & self.a), self.y.eq(t | 1)]
        elif self.kind == "shifted":            # bit i depends on bit i-1 only: no cycle... unless rotated
            m.d.comb += [t.eq(self.y.rotate_left(1)), self.y.eq(t ^ self.a)]
        elif self.kind == "registered":         # the same adder loop through a register: no cycle
            m.d.sync += t.eq(self.y + 1)
            m.d.comb += self.y.eq(t ^ self.a)
        elif self.kind == "wide":               # many adders sharing inputs, acyclic
            acc = self.a
            for i in range(20):
                acc = (acc + self.a * i)[:8]
            m.d.comb += self.y.eq(acc)
        return m


@pytest.mark.parametrize("kind", ["add", "bitwise", "shifted"])
def test_cycle_found(kind):
    with pytest.raises(CombinationalCycle, match="Combinational cycle detected"):
        to_verilog(Loop(kind), name="loop")


@pytest.mark.parametrize("kind", ["registered", "wide"])
def test_no_false_cycle(kind):
    assert "module loop" in to_verilog(Loop(kind), name="loop").verilog


def test_partial_bit_dependence_is_not_a_cycle():
    """Bit 1 of ``y`` depends on bit 0 through a slice: the per-cell shortcut must not see a cycle."""

    class Chain(wiring.Component):
        a: In(1)
        y: Out(2)

        def elaborate(self, platform):
            m = Module()
            m.d.comb += [self.y[0].eq(self.a), self.y[1].eq(self.y[0])]
            return m

    assert "module chain" in to_verilog(Chain(), name="chain").verilog
