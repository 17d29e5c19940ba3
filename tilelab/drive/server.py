"""One simulator process that runs many memory images on a unit: no process start per layer.

:func:`tilelab.drive.run.run_image` starts a simulator process per run; the process start (the
Verilated model, the embedded Python, cocotb, the imports) costs about a second, more than most
layers of a network simulate. A :class:`SimServer` starts the process once; for each run the host
writes the memory images to the same files and sends a request line on the process's standard
input; the bench (:func:`tilelab.drive.bench.serve_bench`) pulses the unit's reload port (every
memory cleared and reloaded from its file), resets the unit, starts it, waits for done with the
unit's watchdog, dumps the requested words and answers on a pipe. Python still sleeps while the
RTL runs.

Use it through any layer call's ``server=`` argument (``api.conv2d``, ``api.ops.*``), or
:func:`~tilelab.drive.run.run_image` with ``server=``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tilelab.sim import SimResult, SimulationError, SimulationStalled, SimulationTimeout
from tilelab.sim.memimage import read_hex, write_hex

from .run import Run
from .unit import Unit

__all__ = ["SimServer", "build_unit"]

_RAISE = {"SimulationStalled": SimulationStalled, "SimulationTimeout": SimulationTimeout, "ValueError": ValueError}


def build_unit(unit: Unit, sim: str = "verilator"):
    """Build (or find in the cache) the simulator a :class:`SimServer` of ``unit`` runs.

    Parameters
    ----------
    unit : Unit
        The unit.
    sim : {"verilator", "icarus"}
        The simulator.

    Returns
    -------
    (Design, Path, bool)
        The clocked design, the simulator executable (Verilator) or ``.vvp`` file (Icarus), and
        whether the build came from the cache.
    """
    from tilelab.sim.builders import build_icarus, build_verilator
    from tilelab.sim.verilog import clocked_wrapper

    design = clocked_wrapper(unit.design(), period_ns=10)
    label = f"{unit.name} {unit.key}"
    if sim == "verilator":
        exe, cached = build_verilator(design, visibility="ports", waves=None, timing=True, label=label)
    else:
        exe, cached = build_icarus(design, waves=False, label=label)
    return design, exe, cached


class SimServer:
    """A long-lived simulator process of one unit that runs memory images on request.

    Parameters
    ----------
    unit : Unit
        The unit (it needs a reload port).
    sim : {"verilator", "icarus"}
        Simulator.
    workdir : path, optional
        Folder for the memory images and the log (a temporary one, removed on close, if None).

    Attributes
    ----------
    build_cached : bool or None
        Whether the simulator build came from the cache (None until the process starts).
    start_seconds : float
        Wall seconds the process start took (build included).
    runs : int
        Runs served so far.

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, unit: Unit, *, sim: str = "verilator", workdir=None):
        if not isinstance(unit, Unit):
            raise TypeError(f"unit must be a tilelab.drive.Unit, not {unit!r}")
        if unit.reload is None:
            raise ValueError(f"the {unit.name} has no reload port: a simulator server cannot rerun it")
        if sim not in ("verilator", "icarus") or sim not in unit.sims:
            raise ValueError(f"a simulator server of the {unit.name} runs on 'verilator' or 'icarus', not {sim!r}")
        self.unit = unit
        self.sim = sim
        self._own = workdir is None
        self.work = Path(tempfile.mkdtemp(prefix="tilelab-server-")) if workdir is None else Path(workdir)
        self.work.mkdir(parents=True, exist_ok=True)
        self._proc = None
        self.build_cached = None
        self.start_seconds = 0.0
        self.runs = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _init_file(self, name: str) -> Path:
        return self.work / f"{name}.hex"

    def _start(self):
        from tilelab.sim.runner import icarus_vpi
        from tilelab.sim.toolchain import cocotb_run_env

        t0 = time.perf_counter()
        design, exe, self.build_cached = build_unit(self.unit, self.sim)
        cmd = [str(exe)] if self.sim == "verilator" else ["vvp", "-m", icarus_vpi(), str(exe)]
        w = self.work
        for mem in self.unit.memories:
            # Every memory loads its init file at time 0 too: start with empty ones.
            self._init_file(mem.name).write_text("0\n")
            cmd += [f"+{mem.name}_init={self._init_file(mem.name)}", f"+{mem.name}_dump={w / f'{mem.name}_dump.hex'}",
                    f"+{mem.name}_dump_range={w / f'{mem.name}.range'}"]
        read_fd, write_fd = os.pipe()
        job = {"bench": "tilelab.drive.bench:serve_bench", "backend": self.sim, "workdir": str(w),
               "result": str(w / "result.json"), "clock_period_ns": 10, "internal_clock": True,
               "args": {"plan": self.unit.plan(), "response_fd": write_fd, "range_dir": str(w)}}
        (w / "job.json").write_text(json.dumps(job))
        env = cocotb_run_env(toplevel=design.top, test_module="tilelab.sim._cocotb_entry",
                             extra={"TILELAB_JOB": str(w / "job.json"), "COCOTB_RESULTS_FILE": str(w / "results.xml")})
        self._log = open(w / "sim.log", "w")
        self._proc = subprocess.Popen(cmd, cwd=w, env=env, stdin=subprocess.PIPE, stdout=self._log,
                                      stderr=subprocess.STDOUT, pass_fds=(write_fd,), text=True)
        os.close(write_fd)
        self._responses = os.fdopen(read_fd, "r")
        self.start_seconds = time.perf_counter() - t0

    def run_image(self, unit: Unit, images: dict, dumps: dict, *, inputs: dict | None = None,
                  stall_cycles: int = 20_000) -> Run:
        """Load ``images``, run, and read back ``dumps`` (as :func:`tilelab.drive.run.run_image`).

        The returned result's ``total_seconds`` covers this run and, for the first one, the
        process start (also in :attr:`start_seconds`).
        """
        if unit.key != self.unit.key or unit.name != self.unit.name:
            raise ValueError(f"this server simulates the {self.unit.name} {self.unit.key}, not the {unit.name} "
                             f"{unit.key}")
        t0 = time.perf_counter()
        if self._proc is None:
            self._start()
        for mem in self.unit.memories:
            if mem.name in images:
                write_hex(self._init_file(mem.name), images[mem.name], mem.word_bytes)
            else:
                self._init_file(mem.name).write_text("0\n")
            if mem.name not in dumps:   # a memory not read back dumps one word
                (self.work / f"{mem.name}.range").write_text("0 0\n")
        request = {"cmd": "run", "dumps": {k: list(v) for k, v in dumps.items()}, "inputs": dict(inputs or {}),
                   "stall_cycles": stall_cycles}
        try:
            self._proc.stdin.write(json.dumps(request) + "\n")
            self._proc.stdin.flush()
        except BrokenPipeError:
            pass
        line = self._responses.readline()
        if not line:
            tail = "\n".join((self.work / "sim.log").read_text(errors="replace").splitlines()[-30:])
            raise SimulationError(f"the {self.unit.name}'s simulator server process ended (exit status "
                                  f"{self._proc.poll()}); log tail:\n{tail}")
        answer = json.loads(line)
        if not answer["ok"]:
            exc_type = _RAISE.get(answer["type"])
            if exc_type is not None:
                raise exc_type(answer["message"])
            raise SimulationError(f"simulator server: {answer['type']}: {answer['message']}")
        counters = dict(answer["value"])
        run_seconds = float(counters.pop("run_seconds"))
        out = {name: read_hex(self.work / f"{name}_dump.hex", self.unit.memory(name).word_bytes) for name in dumps}
        self.runs += 1
        res = SimResult(dict(counters), int(counters.get("cycles", 0)), run_seconds, time.perf_counter() - t0,
                        self.sim, self.build_cached if self.runs == 1 else True, self.work)
        return Run(out, counters, res, run_seconds)

    def close(self):
        """End the simulator process (and remove the temporary folder)."""
        if self._proc is not None:
            try:
                self._proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                self._proc.stdin.close()
            except (BrokenPipeError, ValueError):
                pass
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._responses.close()
            self._log.close()
            self._proc = None
        if self._own:
            shutil.rmtree(self.work, ignore_errors=True)
