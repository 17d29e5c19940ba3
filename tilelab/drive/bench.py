"""The one bench every unit runs under: start, let the RTL run, dump, read the counters.

A bench works from a unit's plan (:meth:`tilelab.drive.unit.Unit.plan`, JSON-able, so it reaches
the simulator process): Python sets the unit's inputs, resets it, pulses ``start`` and then sleeps,
waking every ``check_every`` cycles to look at the plan's progress counters (the watchdog), until
``done``; then it pulses the dump port, has each dumped memory write its file and reads the
counters back. :func:`run_bench` does that once; :func:`serve_bench` does it for every request a
long-lived simulator process (:class:`tilelab.drive.server.SimServer`) receives on its standard
input, reloading the memories before each.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
from pathlib import Path

__all__ = ["run_bench", "run_once", "serve_bench"]


def _load(ref: str):
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


async def _pulse(io, port: str) -> None:
    io.set(port, 1)
    await io.tick()
    io.set(port, 0)


async def run_once(io, plan: dict, *, dumps=(), inputs=None, reload: bool = False, stall_cycles: int = 20_000,
                   max_cycles: int | None = None, check_every: int = 4096) -> dict:
    """One run of the unit: inputs, (reload,) reset, start, watchdog until done, dump, counters.

    Parameters
    ----------
    io : tilelab.sim.IO
        The design's ports.
    plan : dict
        :meth:`tilelab.drive.unit.Unit.plan`.
    dumps : sequence of str
        Memories whose dump files to write.
    inputs : dict, optional
        Input ports held at these values during the run (e.g. a harness's ``flits``).
    reload : bool
        Pulse the plan's reload port first (memories cleared and reloaded from their files).
    stall_cycles, max_cycles, check_every
        The watchdog (:meth:`tilelab.sim.IO.run_until`).

    Returns
    -------
    dict
        The counters, plus ``run_seconds``: wall seconds from start to done.

    Raises
    ------
    SimulationStalled, SimulationTimeout
        The message ends with the unit's diagnosis.
    """
    args = plan["args"]
    for port in plan["idle"]:
        io.set(port, 0)
    for port, value in (inputs or {}).items():
        io.set(port, value)
    if reload:
        await _pulse(io, plan["reload"])
    await io.reset()
    t0 = time.perf_counter()
    await _pulse(io, "start")
    diagnose = _load(plan["diagnose"])
    await io.run_until("done", progress=plan["progress"], stall_cycles=stall_cycles, max_cycles=max_cycles,
                       check_every=check_every, diagnose=lambda io: diagnose(io, **args))
    run_seconds = time.perf_counter() - t0
    await _pulse(io, plan["dump"])
    for name in dumps:
        io.dump_memory(name)
    await io.tick()
    if plan["read"]:
        value = await _load(plan["read"])(io, **args)
    else:
        value = {name: io.get(name) for name in plan["counters"]}
    value["run_seconds"] = run_seconds
    return value


async def run_bench(io, *, plan, dumps=(), inputs=None, stall_cycles=20_000, max_cycles=None, check_every=4096):
    """:func:`run_once` as a bench of :func:`tilelab.sim.simulate` (memories loaded at time 0)."""
    return await run_once(io, plan, dumps=dumps, inputs=inputs, stall_cycles=stall_cycles, max_cycles=max_cycles,
                          check_every=check_every)


async def serve_bench(io, *, plan, response_fd, range_dir, check_every=4096):
    """Serve run requests from standard input until ``{"cmd": "quit"}`` or end of input.

    A request is ``{"cmd": "run", "dumps": {memory: [lo, hi]}, "inputs": {...}, "stall_cycles": N}``;
    each dumped memory's word range is written to ``<range_dir>/<memory>.range`` (its
    ``+<memory>_dump_range`` file) before the dump. The answer, one JSON line on ``response_fd``,
    is ``{"ok": true, "value": counters}`` or ``{"ok": false, "type": ..., "message": ...}``: a
    failed run is reported to the host and the next request starts from a reset.
    """
    out = os.fdopen(response_fd, "w", buffering=1)
    served = 0
    while True:
        line = sys.stdin.readline()  # blocks: simulated time stands still meanwhile
        if not line:
            break
        request = json.loads(line)
        if request.get("cmd") != "run":
            break
        try:
            dumps = request.get("dumps", {})
            for name, (lo, hi) in dumps.items():
                Path(range_dir, f"{name}.range").write_text(f"{lo} {hi}\n")
            value = await run_once(io, plan, dumps=list(dumps), inputs=request.get("inputs"), reload=True,
                                   stall_cycles=request.get("stall_cycles", 20_000), check_every=check_every)
            answer = {"ok": True, "value": value}
        except Exception as exc:  # reported to the host, which raises it; the next request resets
            answer = {"ok": False, "type": type(exc).__name__, "message": str(exc)}
        out.write(json.dumps(answer) + "\n")
        served += 1
    out.close()
    return {"served": served}
