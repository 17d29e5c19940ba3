# amaranth: UnusedElaboratable=no
"""The SRAM of tilelab.hdl.memories through its read and write port interfaces."""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from tilelab.hdl.memories import SRAM, sram_read_signature, sram_write_signature
from tilelab.sim.testbench import run_simulation


class _ViaPorts(wiring.Component):
    """An SRAM reached only through ``read_port`` / ``write_port``."""

    def __init__(self):
        super().__init__({"read": In(sram_read_signature(addr_width=3, width_bytes=2)),
                          "write": In(sram_write_signature(addr_width=3, width_bytes=2))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.bank = bank = SRAM(width_bytes=2, depth=8, impl="amaranth")
        wiring.connect(m, wiring.flipped(self.read), bank.read_port)
        wiring.connect(m, wiring.flipped(self.write), bank.write_port)
        return m


def test_sram_port_interfaces():
    dut = _ViaPorts()
    rd, wr = dut.read, dut.write

    async def tb(ctx):
        ctx.set(wr.en, 1)
        ctx.set(wr.addr, 5)
        ctx.set(wr.data, 0xBEEF)
        ctx.set(wr.mask, 0b11)
        await ctx.tick()
        ctx.set(wr.data, 0x1234)
        ctx.set(wr.mask, 0b10)           # high byte only
        ctx.set(rd.en, 1)
        ctx.set(rd.addr, 5)              # read-before-write: the old word
        await ctx.tick()
        ctx.set(wr.en, 0)
        assert ctx.get(rd.data) == 0xBEEF
        await ctx.tick()
        ctx.set(rd.en, 0)
        assert ctx.get(rd.data) == 0x12EF
        await ctx.tick()
        assert ctx.get(rd.data) == 0x12EF  # held while en is low

    run_simulation(dut, tb)
