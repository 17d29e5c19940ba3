"""Shared test helpers for the NoC tests (Amaranth-simulator testbenches)."""

import random

from amaranth.sim import Simulator


def sink_forever(stream, into, *, stall=0.0, seed=0, stop):
    """A background testbench taking every flit of ``stream`` into list ``into``, with random
    backpressure; it ends when ``stop["flag"]`` is set (so no coroutine is left suspended)."""
    rng = random.Random(seed)

    async def tb(ctx):
        while not stop["flag"]:
            ready = rng.random() >= stall
            ctx.set(stream.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(stream.valid, stream.payload)
            if valid and ready:
                into.append(payload)
        ctx.set(stream.ready, 0)
    return tb


def source(stream, flits, *, idle=0.0, seed=0, done=None):
    """A testbench sending ``flits`` (constants) on ``stream`` with random idle cycles."""
    rng = random.Random(seed)

    async def tb(ctx):
        for flit in flits:
            while rng.random() < idle:
                await ctx.tick()
            ctx.set(stream.valid, 1)
            ctx.set(stream.payload, flit)
            await ctx.tick().until(stream.ready)
            ctx.set(stream.valid, 0)
        if done is not None:
            done.append(1)
    return tb


def run(dut, sources, sinks, until, *, limit=50_000, settle=40, final=None):
    """Simulate ``dut``: ``sources`` and ``sinks`` are testbench functions; ``until()`` says when
    everything expected has arrived.  Returns ``(cycles, finished, extra)``; afterwards it lets the
    design settle ``settle`` cycles (so late extra flits are caught), calls ``final(ctx)`` (its
    return value is ``extra``) and stops the sinks."""
    stop = {"flag": False}
    state = {}

    async def checker(ctx):
        cycles = 0
        while cycles < limit and not until():
            await ctx.tick()
            cycles += 1
        state["cycles"] = cycles
        state["finished"] = until()
        await ctx.tick().repeat(settle)
        state["extra"] = final(ctx) if final is not None else None
        stop["flag"] = True
        await ctx.tick().repeat(2)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for tb in sources:
        sim.add_testbench(tb, background=True)
    for make in sinks:
        sim.add_testbench(make(stop))
    sim.add_testbench(checker)
    sim.run()
    return state["cycles"], state["finished"], state["extra"]
