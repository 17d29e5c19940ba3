# amaranth: UnusedElaboratable=no
"""A gated clock domain ticks exactly on the cycles its enable was high, and while reset is asserted."""

from amaranth.hdl import ClockDomain, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from tilelab.hdl.clockgate import gated_domain
from tilelab.sim.testbench import run_simulation


class GatedCounter(wiring.Component):
    """``ticks`` counts the gated domain's clock edges; ``free`` counts every cycle.

    The enable is a register (as the gating cell requires): ``want`` asks for the next cycle.
    """

    want: In(1)
    ticks: Out(16)
    free: Out(16)

    def elaborate(self, platform):
        m = Module()
        enable = Signal()
        m.d.sync += [enable.eq(self.want), self.free.eq(self.free + 1)]
        gated_domain(m, "gated", enable)
        m.d.gated += self.ticks.eq(self.ticks + 1)
        return m


def test_gated_domain_ticks_only_while_enabled():
    dut = GatedCounter()
    pattern = [1, 1, 0, 0, 0, 1, 0, 1, 1, 1, 0, 0, 1, 0, 0, 0]

    async def tb(ctx):
        await ctx.tick()            # the first edge always ticks (the cell powers up enabled)
        assert ctx.get(dut.ticks) == 1
        for want in pattern:
            ctx.set(dut.want, want)
            await ctx.tick()        # enable takes `want` at this edge
        ctx.set(dut.want, 0)
        before = ctx.get(dut.ticks)
        for _ in range(5):
            await ctx.tick()
        # the last `want` ticks once more (its enable was registered), then the count holds
        assert ctx.get(dut.ticks) == before + pattern[-1]
        assert ctx.get(dut.ticks) == 1 + sum(pattern)
        assert ctx.get(dut.free) == len(pattern) + 6

    run_simulation(dut, tb)


class GatedWithReset(wiring.Component):
    """A gated counter whose enable stays low: only the domain's reset clocks it (and clears it)."""

    ticks: Out(16)

    def elaborate(self, platform):
        m = Module()
        gated_domain(m, "gated", 0)
        m.d.gated += self.ticks.eq(self.ticks + 1)
        return m


def test_reset_clocks_a_gated_domain():
    dut = GatedWithReset()
    top = Module()
    top.domains.sync = sync = ClockDomain()
    top.submodules.dut = dut

    async def tb(ctx):
        await ctx.tick()
        assert ctx.get(dut.ticks) == 1          # the power-on edge
        for _ in range(3):
            await ctx.tick()
        assert ctx.get(dut.ticks) == 1          # never enabled: holds
        ctx.set(sync.rst, 1)
        await ctx.tick()
        await ctx.tick()
        ctx.set(sync.rst, 0)
        assert ctx.get(dut.ticks) == 0          # reset reached the gated registers

    run_simulation(top, tb)
