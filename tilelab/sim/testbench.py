"""Async testbench helpers for Amaranth's simulator.

These are the Amaranth-simulator counterparts of the cocotb stream Source / Sink in
:mod:`tilelab.sim.cocotb_streams`: they obey the four transfer rules of
:mod:`amaranth.lib.stream` (valid never waits for ready; the payload is held until the
transfer) and can insert random idle cycles (producer side) or random backpressure
(consumer side).

Examples
--------
>>> async def producer(ctx):                                   # doctest: +SKIP
...     for item in items:
...         await stream_put(ctx, dut.i, item, idle=rng)
>>> async def consumer(ctx):                                   # doctest: +SKIP
...     got = [await stream_get(ctx, dut.o, stall=rng) for _ in items]
"""

from __future__ import annotations

import random

from amaranth.hdl import ClockDomain, Module, Value
from amaranth.sim import Simulator

__all__ = ["QUIET_CYCLES", "Stall", "expect_quiet", "run_simulation", "stream_get", "stream_monitor", "stream_put",
           "with_clock"]

#: Cycles :func:`expect_quiet` watches for stray items.
QUIET_CYCLES = 8


class Stall:
    """Random idle / backpressure generator.

    Parameters
    ----------
    probability : float
        Chance, each time a transfer is attempted, of first waiting for some cycles.
    max_cycles : int
        The longest wait, in cycles (uniform in ``1..max_cycles``).
    seed : int
        Seed of the private random generator, so a run can be repeated.
    """

    def __init__(self, probability: float = 0.3, max_cycles: int = 3, seed: int = 0):
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"stall probability must be within [0, 1], not {probability!r}")
        if max_cycles < 1:
            raise ValueError(f"stall max_cycles must be at least 1, not {max_cycles!r}")
        self.probability = probability
        self.max_cycles = max_cycles
        self._rng = random.Random(seed)

    def cycles(self) -> int:
        """Return how many cycles to wait before the next transfer (often 0)."""
        if self._rng.random() < self.probability:
            return self._rng.randint(1, self.max_cycles)
        return 0


async def stream_put(ctx, stream, payload, *, idle: Stall | None = None):
    """Send one payload on ``stream`` (an ``In``/flipped stream interface of the DUT).

    ``idle`` inserts random cycles with ``valid`` low before the transfer.
    """
    if idle is not None:
        n = idle.cycles()
        if n:
            await ctx.tick().repeat(n)
    ctx.set(stream.valid, 1)
    ctx.set(stream.payload, payload)
    await ctx.tick().until(stream.ready)
    ctx.set(stream.valid, 0)


async def stream_get(ctx, stream, *, stall: Stall | None = None):
    """Receive one payload from ``stream`` (an ``Out`` stream interface of the DUT).

    ``stall`` holds ``ready`` low for random cycles before accepting.
    """
    if stall is not None:
        n = stall.cycles()
        if n:
            await ctx.tick().repeat(n)
    ctx.set(stream.ready, 1)
    (payload,) = await ctx.tick().sample(stream.payload).until(stream.valid)
    ctx.set(stream.ready, 0)
    return payload


def run_simulation(dut, *testbenches, processes=(), vcd: str | None = None, clock_period: float = 1e-8,
                   deadline: float | None = None):
    """Simulate ``dut`` with a ``sync`` clock and the given async testbenches.

    Parameters
    ----------
    dut : amaranth.Elaboratable
        The design under test.
    *testbenches : coroutine functions
        ``async def tb(ctx)`` functions, added with ``add_testbench``.
    processes : sequence of coroutine functions
        Added with ``add_process`` (background helpers that never finish on their own).
    vcd : str, optional
        Write a VCD waveform to this path.
    clock_period : float
        Clock period in seconds.
    deadline : float, optional
        Stop at this simulated time (seconds) even if testbenches have not finished; the
        caller's asserts then show what did not complete.
    """
    sim = Simulator(dut)
    sim.add_clock(clock_period)
    for tb in testbenches:
        sim.add_testbench(tb)
    for proc in processes:
        sim.add_process(proc)
    if vcd is not None:
        with sim.write_vcd(vcd):
            _run(sim, deadline)
    else:
        _run(sim, deadline)


def _run(sim, deadline):
    if deadline is None:
        sim.run()
    else:
        sim.run_until(deadline)


def stream_monitor(stream, log=None, *, with_cycle=False):
    """Return a background process asserting the stream rules on ``stream``.

    Once ``valid`` is high it must stay high, with the payload unchanged, until the transfer.
    Transfers are appended to ``log`` when given (as ``(cycle, payload)`` with ``with_cycle``).
    Add it with ``processes=[...]``.
    """
    payload = Value.cast(stream.payload)

    async def monitor(ctx):
        held = None
        cycle = 0
        async for _, _, valid, ready, value in ctx.tick().sample(stream.valid, stream.ready, payload):
            if held is not None:
                assert valid, "valid dropped before the transfer"
                assert value == held, f"payload changed from {held:#x} to {value:#x} before the transfer"
            held = value if valid and not ready else None
            if log is not None and valid and ready:
                log.append((cycle, value) if with_cycle else value)
            cycle += 1

    return monitor


def with_clock(dut):
    """Wrap a purely combinational ``dut`` so the simulator has a ``sync`` clock to drive."""
    m = Module()
    m.domains.sync = ClockDomain()
    m.submodules.dut = dut
    return m


async def expect_quiet(ctx, stream, cycles=QUIET_CYCLES):
    """Offer ``ready`` for ``cycles`` cycles and assert nothing more arrives (nothing left over)."""
    ctx.set(stream.ready, 1)
    for _ in range(cycles):
        _, _, valid = await ctx.tick().sample(stream.valid)
        assert not valid, "an extra item arrived"
    ctx.set(stream.ready, 0)
