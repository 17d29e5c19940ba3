"""The cocotb test module that runs a tilelab bench inside a simulator process.

The parent process (:func:`tilelab.sim.simulate`) writes a job file and points
``TILELAB_JOB`` at it; this module imports the bench, runs it against the design through
:class:`~tilelab.sim.io.CocotbIO`, and writes the bench's return value (or its error) as JSON.
"""

from __future__ import annotations

import importlib
import json
import os
import time
import traceback
from pathlib import Path

import cocotb
from cocotb.clock import Clock

from .io import CocotbIO


def _load(ref: str):
    module, _, qualname = ref.partition(":")
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


@cocotb.test()
async def tilelab_bench(dut):
    """Run the bench named in the job file."""
    job_path = Path(os.environ["TILELAB_JOB"])
    job = json.loads(job_path.read_text())
    out = Path(job["result"])
    period = int(job.get("clock_period_ns", 10))
    io = CocotbIO(dut, clock_period_ns=period, backend=job["backend"], workdir=Path(job["workdir"]))
    if not job.get("internal_clock"):
        Clock(dut.clk, period, unit="ns").start()
    if io.has("rst"):
        io.set("rst", 0)
    result = {"ok": True}
    t0 = time.perf_counter()
    try:
        await io.start()
        bench = _load(job["bench"])
        value = await bench(io, **job.get("args", {}))
        result["value"] = value
    except Exception as exc:  # reported to the parent, which re-raises
        result = {"ok": False, "type": type(exc).__name__, "module": type(exc).__module__,
                  "message": str(exc), "traceback": traceback.format_exc()}
    result["wall_seconds"] = time.perf_counter() - t0
    try:
        result["cycles"] = io.cycle
    except Exception:
        pass
    out.write_text(json.dumps(result))
