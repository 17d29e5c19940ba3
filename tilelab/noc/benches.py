"""Benches of the NoC harnesses, for :func:`tilelab.sim.simulate` (module level, so a simulator
process can import them).  Each configures the RTL through ports, starts it, waits for it to
finish and reads counters: Python is never in the per-cycle loop.
"""

from tilelab.hdl.formats.noc import Direction
from tilelab.noc.mesh import CounterKind, counter_address
from tilelab.noc.traffic import HIST_BUCKETS, TrafficCounter
from tilelab.sim.io import SimulationStalled, SimulationTimeout

__all__ = ["traffic_bench", "multicast_bench", "reduce_bench", "describe_held", "link_counters"]

_SLOT_NAMES = {**{d.value: d.name for d in Direction}, 5: "local output buffer"}


async def _read(io, addr_port, data_port, addr):
    io.set(addr_port, addr)
    await io.tick()
    return io.get(data_port)


async def describe_held(io, rows, cols, *, addr_port="cnt_addr", data_port="cnt_data"):
    """Text naming every router port that holds flits (read through the counter port)."""
    parts = []
    for y in range(rows):
        for x in range(cols):
            for slot in range(6):
                n = await _read(io, addr_port, data_port, counter_address(cols, x, y, slot, CounterKind.HELD))
                if n:
                    where = _SLOT_NAMES[slot] if slot == 5 else f"input port {_SLOT_NAMES[slot]}"
                    parts.append(f"router ({x},{y}) {where} holds {n} flit{'s' if n != 1 else ''}")
    return "; ".join(parts) if parts else "no flits are buffered"


async def link_counters(io, rows, cols):
    """``[x, y, port, flits, stall_cycles]`` of every router output port."""
    out = []
    for y in range(rows):
        for x in range(cols):
            for d in Direction:
                flits = await _read(io, "cnt_addr", "cnt_data", counter_address(cols, x, y, d, CounterKind.FLITS))
                stalls = await _read(io, "cnt_addr", "cnt_data", counter_address(cols, x, y, d, CounterKind.STALLS))
                out.append([x, y, d.name, flits, stalls])
    return out


async def traffic_bench(io, *, rows, cols, cfg, warmup, measure, max_cycles, watchdog, links=False):
    """Run the :class:`~tilelab.noc.traffic.TrafficHarness` once and return its counters."""
    # every input gets a value: a Verilog simulator starts undriven inputs at X, and an X on
    # ``readout`` would poison the latency histograms
    for port in ("readout", "rd_addr", "cnt_addr", "go"):
        io.set(port, 0)
    await io.reset()
    io.set("cfg", cfg)
    io.set("warmup", warmup)
    io.set("measure", measure)
    io.set("go", 1)
    timed_out = False
    try:
        await io.wait_until("finished", 1, max_cycles=max_cycles)
    except SimulationTimeout:
        timed_out = True
    if io.get("stuck"):
        held = await describe_held(io, rows, cols)
        raise SimulationStalled(f"NoC watchdog: no flit moved for {watchdog} cycles while flits were in "
                                f"flight at cycle {io.cycle}: {held}")
    out = {"timed_out": timed_out, "cycle": io.get("cycle")}
    for c in TrafficCounter:
        if c is not TrafficCounter.HIST:
            out[c.name.lower()] = await _read(io, "rd_addr", "rd_data", c.value)
    io.set("readout", 1)
    out["hist"] = [await _read(io, "rd_addr", "rd_data", TrafficCounter.HIST.value + b)
                   for b in range(HIST_BUCKETS)]
    if links:
        out["links"] = await link_counters(io, rows, cols)
    return out


async def multicast_bench(io, *, rows, cols, cfg, max_cycles, watchdog):
    """Run the multicast harness once; return cycles and per-node flit counts and hashes."""
    for port in ("node", "cnt_addr", "go"):
        io.set(port, 0)
    await io.reset()
    io.set("cfg", cfg)
    io.set("go", 1)
    try:
        await io.wait_until("finished", 1, max_cycles=max_cycles)
    except SimulationTimeout:
        pass
    if io.get("stuck"):
        held = await describe_held(io, rows, cols)
        raise SimulationStalled(f"NoC watchdog: no flit moved for {watchdog} cycles while flits were in "
                                f"flight at cycle {io.cycle}: {held}")
    nodes = []
    for n in range(rows * cols):
        io.set("node", n)
        await io.tick()
        nodes.append({"flits": io.get("node_flits"), "hash": io.get("node_hash"),
                      "first_cycle": io.get("node_first"), "last_cycle": io.get("node_last")})
    return {"done": io.get("done"), "cycles": io.get("cycles"), "dropped": io.get("dropped"), "nodes": nodes}


async def multicast_sweep_bench(io, *, rows, cols, cfgs, max_cycles, watchdog):
    """Run several multicasts one after the other (reset between them); return each result."""
    results = []
    for cfg in cfgs:
        results.append(await multicast_bench(io, rows=rows, cols=cols, cfg=cfg, max_cycles=max_cycles,
                                             watchdog=watchdog))
    return results


async def reduce_bench(io, *, rows, cols, cfgs, max_cycles):
    """Run the collective harness: one or more collectives at once (``cfgs`` per context)."""
    for port in ("node", "go"):
        io.set(port, 0)
    await io.reset()
    for k, cfg in enumerate(cfgs):
        io.set(f"cfg{k}", cfg)
    io.set("go", 1)
    try:
        await io.wait_until("finished", 1, max_cycles=max_cycles)
    except SimulationTimeout:
        pass
    out = {"done": io.get("done"), "stuck": io.get("stuck"), "contexts": []}
    for k in range(len(cfgs)):
        nodes = []
        for n in range(rows * cols):
            io.set("node", n)
            await io.tick()
            nodes.append({"flits": io.get(f"node_flits{k}"), "hash": io.get(f"node_hash{k}"),
                          "last_cycle": io.get(f"node_last{k}")})
        out["contexts"].append({"cycles": io.get(f"cycles{k}"), "nodes": nodes})
    return out


async def reduce_many_bench(io, *, rows, cols, runs, max_cycles):
    """Several :func:`reduce_bench` runs (each a list of per-context configurations) in one process."""
    return [await reduce_bench(io, rows=rows, cols=cols, cfgs=cfgs, max_cycles=max_cycles) for cfgs in runs]
