"""One simulator process that runs many programs on the tile: no process start per layer.

:func:`tilelab.api.conv.run_program` starts a simulator process per layer; the process start
(the Verilated model, the embedded Python, cocotb, the imports) costs about a second, more than
most layers of a network simulate. A :class:`TileServer` starts the process once; for each
program the host writes the memory image to the same file and sends a request line on the
process's standard input; the bench (:func:`tile_server_bench`) pulses the external memory's
``load`` (clear + ``$readmemh``), resets the tile, starts it, waits for done with the same
watchdog as :func:`~tilelab.drive.tile_bench.tile_run_bench`, dumps the output words and answers
on a pipe. Python still sleeps while the RTL runs.

Use it through :func:`tilelab.api.conv.conv2d` / ``linear`` with ``runner=server.run_program``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from tilelab.pe_models.config import TileConfig
from tilelab.sim import SimResult, SimulationError, SimulationStalled
from tilelab.sim.memimage import read_hex, write_hex

__all__ = ["EltwiseServer", "SimServer", "TileServer", "tile_server_bench"]


def _load(ref: str):
    import importlib

    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


async def tile_server_bench(io, *, response_fd, range_file, counters=(), progress=None, diagnose=None,
                            stall_cycles=20_000, check_every=4096):
    """Serve run requests from standard input until ``{"cmd": "quit"}`` or end of input.

    ``progress`` names the watchdog's progress counters, ``diagnose`` is the ``"module:function"``
    that explains a stall (defaults: the compute tile's).
    """
    import sys

    if progress is None:
        from tilelab.drive.tile_bench import PROGRESS as progress
    diagnose = _load(diagnose or "tilelab.drive.tile_bench:diagnose_tile")

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
            io.set("ext_load", 1)
            await io.tick()
            io.set("ext_load", 0)
            await io.reset()
            t0 = time.perf_counter()
            io.set("start", 1)
            await io.tick()
            io.set("start", 0)
            await io.run_until("done", progress=list(progress), stall_cycles=request.get("stall_cycles", stall_cycles),
                               check_every=check_every, diagnose=diagnose)
            run_seconds = time.perf_counter() - t0
            Path(range_file).write_text(f"{request['lo']} {request['hi']}\n")
            io.set("ext_dump", 1)
            await io.tick()
            io.set("ext_dump", 0)
            io.dump_memory("extmem")
            await io.tick()
            value = {name: io.get(name) for name in counters}
            value["run_seconds"] = run_seconds
            answer = {"ok": True, "value": value}
        except Exception as exc:  # reported to the host, which raises it; the next request resets
            answer = {"ok": False, "type": type(exc).__name__, "message": str(exc)}
        out.write(json.dumps(answer) + "\n")
        served += 1
    out.close()
    return {"served": served}


class SimServer:
    """A simulator process for one design (a unit joined to its external memory) that runs
    memory images on request.

    Subclasses say which design (:meth:`_design`), which counters to read back
    (:meth:`_counters`) and how the watchdog watches (:meth:`_watchdog`).

    Parameters
    ----------
    config : object
        The unit's frozen configuration (``ext_bytes`` its memory word width).
    sim : {"verilator", "icarus"}
        Simulator.
    workdir : path, optional
        Folder for the memory images and the log (a temporary one, removed on close, if None).

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, config, *, sim: str = "verilator", workdir=None):
        if sim not in ("verilator", "icarus"):
            raise ValueError(f"a tile server runs on 'verilator' or 'icarus', not {sim!r}")
        self.config = config
        self.sim = sim
        self._own = workdir is None
        self.work = Path(tempfile.mkdtemp(prefix="tilelab-server-")) if workdir is None else Path(workdir)
        self.work.mkdir(parents=True, exist_ok=True)
        self._proc = None
        self.build_cached = None
        self.start_seconds = 0.0
        self.programs = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _design(self):
        raise NotImplementedError

    def _counters(self) -> list[str]:
        raise NotImplementedError

    def _watchdog(self) -> dict:
        return {}

    def _start(self):
        from tilelab.sim.builders import build_icarus, build_verilator
        from tilelab.sim.runner import _icarus_vpi
        from tilelab.sim.toolchain import cocotb_run_env
        from tilelab.sim.verilog import clocked_wrapper

        t0 = time.perf_counter()
        design = clocked_wrapper(self._design(), period_ns=10)
        if self.sim == "verilator":
            exe, self.build_cached = build_verilator(design, visibility="ports", waves=None, timing=True)
            cmd = [str(exe)]
        else:
            vvp, self.build_cached = build_icarus(design, waves=False)
            cmd = ["vvp", "-m", _icarus_vpi(), str(vvp)]
        w = self.work
        cmd += [f"+extmem_init={w / 'extmem_init.hex'}", f"+extmem_dump={w / 'extmem_dump.hex'}",
                f"+extmem_dump_range={w / 'dump_range.txt'}"]
        # The memory model loads its init file at time 0 too: start with an empty one.
        (w / "extmem_init.hex").write_text("0\n")
        read_fd, write_fd = os.pipe()
        job = {"bench": "tilelab.drive.server:tile_server_bench", "backend": self.sim, "workdir": str(w),
               "result": str(w / "result.json"), "clock_period_ns": 10, "internal_clock": True,
               "args": {"response_fd": write_fd, "counters": self._counters(),
                        "range_file": str(w / "dump_range.txt"), **self._watchdog()}}
        (w / "job.json").write_text(json.dumps(job))
        env = cocotb_run_env(toplevel=design.top, test_module="tilelab.sim._cocotb_entry",
                             extra={"TILELAB_JOB": str(w / "job.json"), "COCOTB_RESULTS_FILE": str(w / "results.xml")})
        self._log = open(w / "sim.log", "w")
        self._proc = subprocess.Popen(cmd, cwd=w, env=env, stdin=subprocess.PIPE, stdout=self._log,
                                      stderr=subprocess.STDOUT, pass_fds=(write_fd,), text=True)
        os.close(write_fd)
        self._responses = os.fdopen(read_fd, "r")
        self.start_seconds = time.perf_counter() - t0

    def run_image(self, image, lo: int, hi: int, *, stall_cycles: int = 20_000):
        """Load ``image`` (bytes from address 0), run, and read back words ``lo .. hi``.

        Returns
        -------
        (bytes, dict, SimResult, float)
            The memory from word ``lo``, the counters, the run's ``SimResult`` (its
            ``total_seconds`` covers this image, and for the first one the process start, also
            in :attr:`start_seconds`) and the start-to-done wall seconds.
        """
        t0 = time.perf_counter()
        if self._proc is None:
            self._start()
        W = self.config.ext_bytes
        write_hex(self.work / "extmem_init.hex", image, W)
        try:
            self._proc.stdin.write(json.dumps({"cmd": "run", "lo": lo, "hi": hi, "stall_cycles": stall_cycles}) + "\n")
            self._proc.stdin.flush()
        except BrokenPipeError:
            pass
        line = self._responses.readline()
        if not line:
            tail = "\n".join((self.work / "sim.log").read_text(errors="replace").splitlines()[-30:])
            raise SimulationError(f"the simulator server process ended (exit status {self._proc.poll()}); "
                                  f"log tail:\n{tail}")
        answer = json.loads(line)
        if not answer["ok"]:
            if answer["type"] == "SimulationStalled":
                raise SimulationStalled(answer["message"])
            raise SimulationError(f"simulator server: {answer['type']}: {answer['message']}")
        counters = dict(answer["value"])
        run_seconds = counters["run_seconds"]
        memory = read_hex(self.work / "extmem_dump.hex", W)
        self.programs += 1
        first = self.programs == 1
        res = SimResult(dict(counters), int(counters.get("cycles", 0)), run_seconds, time.perf_counter() - t0,
                        self.sim, self.build_cached if first else True, self.work)
        return memory, counters, res, run_seconds

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


class TileServer(SimServer):
    """A :class:`SimServer` of the compute tile (:class:`~tilelab.pe_models.tile.TileTop`).

    Parameters
    ----------
    config : TileConfig
        The tile (Verilog memory models).
    sim, workdir
        As :class:`SimServer`.
    """

    def __init__(self, config: TileConfig, *, sim: str = "verilator", workdir=None):
        if not isinstance(config, TileConfig):
            raise TypeError(f"config must be a TileConfig, not {config!r}")
        super().__init__(config, sim=sim, workdir=workdir)

    def _design(self):
        from tilelab.api.conv import tile_design

        return tile_design(self.config)

    def _counters(self):
        from tilelab.pe_models.tile import TILE_COUNTERS, TILE_STATUS

        return list(TILE_COUNTERS) + list(TILE_STATUS)

    def run_program(self, program, config: TileConfig | None = None, *, stall_cycles: int = 20_000, **_ignored):
        """Run a compiled :class:`~tilelab.compile.tile.TileProgram`.

        Returns ``(output, counters, SimResult, run_seconds)`` like
        :func:`tilelab.api.conv.run_program`. Its other keyword arguments (``sim``,
        ``waves``, ``workdir``) are ignored: the server has its own.
        """
        if config is not None and config != self.config:
            raise ValueError(f"this server simulates {self.config.key()}, not {config.key()}")
        W = self.config.ext_bytes
        lo = program.out_addr // W
        hi = (program.out_addr + program.out_bytes - 1) // W
        memory, counters, res, run_seconds = self.run_image(program.image, lo, hi, stall_cycles=stall_cycles)
        counters.pop("run_seconds")
        return program.extract_output(memory, base=lo * W), counters, res, run_seconds


class EltwiseServer(SimServer):
    """A :class:`SimServer` of the element-wise unit (:class:`~tilelab.pe_models.eltwise.EltwiseTop`).

    :meth:`run_image` has the signature ``tilelab.api.ops`` runs its programs with; use it as
    ``with ops.image_runner(server.run_ops_image): ...``.
    """

    def _design(self):
        from tilelab.api.ops import eltwise_design

        return eltwise_design(self.config)

    def _counters(self):
        from tilelab.pe_models.eltwise import ELTWISE_COUNTERS, ELTWISE_STATUS

        return list(ELTWISE_COUNTERS) + list(ELTWISE_STATUS)

    def _watchdog(self):
        from tilelab.api.ops import PROGRESS

        return {"progress": list(PROGRESS), "diagnose": "tilelab.api.ops:_diagnose"}

    def run_ops_image(self, image, out_lo: int, out_bytes: int, config, *, stall_cycles: int = 20_000):
        """Run one element-wise program: ``(memory bytes from out_lo, counters, SimResult)``."""
        if config != self.config:
            raise ValueError(f"this server simulates {self.config.key()}, not {config.key()}")
        W = self.config.ext_bytes
        lo, hi = out_lo // W, (out_lo + max(out_bytes, 1) - 1) // W
        memory, counters, res, _ = self.run_image(image, lo, hi, stall_cycles=stall_cycles)
        offset = out_lo - lo * W
        return np.frombuffer(memory, np.uint8)[offset:offset + out_bytes], counters, res
