"""A user-style cocotb test module using tilelab's cocotb stream helpers."""

import cocotb
from cocotb.triggers import ClockCycles

from tilelab.sim.cocotb_streams import StreamMonitor, StreamSink, StreamSource, bernoulli, start_clock_and_reset


@cocotb.test()
async def fifo_passes_everything_in_order(dut):
    await start_clock_and_reset(dut)
    src = StreamSource(dut, "i", idle=bernoulli(0.3, seed=1))
    sink = StreamSink(dut, "o", backpressure=bernoulli(0.4, seed=2))
    mon = StreamMonitor(dut, "i")
    items = [(x * 7919) & 0xFFFF for x in range(200)]
    for x in items:
        src.send_nowait(x)
    got = [await sink.recv() for _ in items]
    assert got == items
    await src.wait()
    await ClockCycles(dut.clk, 20)
    assert sink.empty(), "the FIFO delivered more than it was given"
    assert src.empty()
    assert list(mon.transfers) == items
