"""One entry point to simulate a component on any backend: :func:`simulate`."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from amaranth.lib import wiring

from tilelab.checks import check_choice

from . import io as _io
from .builders import build_icarus, build_verilator
from .cache import BuildCache
from .toolchain import cocotb_run_env
from .verilog import Design, clocked_wrapper, port_names, to_verilog

__all__ = ["BACKENDS", "CocotbOutcome", "SimResult", "SimulationError", "icarus_vpi", "run_cocotb_tests", "simulate"]

#: The simulation backends, fastest first.
BACKENDS = ("verilator", "icarus", "amaranth")

#: Exceptions a bench may raise that are re-raised as themselves in the host process.
_PASSTHROUGH = {
    "SimulationStalled": _io.SimulationStalled,
    "SimulationTimeout": _io.SimulationTimeout,
    "AssertionError": AssertionError,
    "ValueError": ValueError,
}


class SimulationError(RuntimeError):
    """The simulator process failed, or the bench raised an unexpected exception."""


@dataclass
class SimResult:
    """What a simulation returned.

    Attributes
    ----------
    value : object
        The bench's return value (JSON round-tripped on cocotb backends).
    cycles : int
        Clock cycles from the bench's start to its end.
    wall_seconds : float
        Wall time of the bench alone (no build, no process start).
    total_seconds : float
        Wall time of the whole call, including any build.
    backend : str
        The backend used.
    build_cached : bool or None
        Whether the simulator build came from the cache (None for Amaranth).
    workdir : Path
        Folder the bench could write files to.
    """

    value: object
    cycles: int
    wall_seconds: float
    total_seconds: float
    backend: str
    build_cached: bool | None
    workdir: Path


def _bench_ref(bench) -> str:
    if isinstance(bench, str):
        if ":" not in bench:
            raise ValueError(f"bench must be 'module:function', not {bench!r}")
        return bench
    if callable(bench):
        if "<locals>" in bench.__qualname__:
            raise ValueError(f"bench {bench.__qualname__!r} must be a module-level function so a simulator "
                             "process can import it")
        return f"{bench.__module__}:{bench.__qualname__}"
    raise TypeError(f"bench must be a coroutine function or 'module:function', not {bench!r}")


def _load(ref: str):
    module, _, qualname = ref.partition(":")
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def simulate(design: wiring.Component | Design, bench: Callable | str, *, backend: str = "verilator",
             args: dict | None = None, waves: str | os.PathLike | None = None, visibility: str = "ports",
             name: str = "top", clock_period_ns: int = 10, workdir: str | os.PathLike | None = None,
             timeout_seconds: float | None = None, cache: BuildCache | None = None,
             plusargs: dict[str, str] | None = None, clock: str = "internal") -> SimResult:
    """Simulate ``design`` with ``bench`` on ``backend``.

    Parameters
    ----------
    design : wiring.Component or Design
        The component (required for ``backend="amaranth"``), or its converted Verilog.
    bench : coroutine function or str
        ``async def bench(io, **args)``, module-level (so a simulator process can import it),
        or its ``"module:function"`` name. It drives the design through a
        :class:`tilelab.sim.io.IO` and returns a JSON-able value.
    backend : {"verilator", "icarus", "amaranth"}
        Verilator (the default, built with only the top-level ports visible unless
        ``visibility="all"``), Icarus Verilog, or Amaranth's own simulator.
    args : dict, optional
        Keyword arguments for the bench (JSON-able).
    waves : path, optional
        Write a waveform: on Verilator FST (or VCD when the name ends in ``.vcd``); VCD on Icarus
        and Amaranth.
    visibility : {"ports", "all"}
        Verilator only: which signals cocotb can reach.
    name : str
        Top-level module name.
    clock_period_ns : int
        Clock period (only affects waveform time stamps).
    workdir : path, optional
        Folder for the run's files; a temporary one when omitted.
    timeout_seconds : float, optional
        Wall-clock limit on the simulator process.
    plusargs : dict, optional
        ``+name=value`` arguments for the Verilog simulators (e.g. memory image files).
    clock : {"internal", "cocotb"}
        Verilog simulators: ``"internal"`` generates the clock inside the simulated Verilog (a
        wrapper module, ``--timing`` on Verilator), so no callback runs per edge while the bench
        sleeps; ``"cocotb"`` drives it from cocotb's clock driver, as cocotb's own runner does.

    Returns
    -------
    SimResult
    """
    check_choice("backend", backend, BACKENDS)
    if not isinstance(clock_period_ns, int) or clock_period_ns < 2 or clock_period_ns % 2:
        raise ValueError(f"clock_period_ns must be an even integer >= 2, not {clock_period_ns!r}")
    ref = _bench_ref(bench)
    args = dict(args or {})
    t_start = time.perf_counter()
    work = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="tilelab-sim-"))
    work.mkdir(parents=True, exist_ok=True)

    if backend == "amaranth":
        if not isinstance(design, wiring.Component):
            raise TypeError("the amaranth backend needs the component itself, not its Verilog")
        value, cycles, wall = _simulate_amaranth(design, ref, args, waves, clock_period_ns, work, plusargs or {})
        return SimResult(value, cycles, wall, time.perf_counter() - t_start, backend, None, work)

    if clock not in ("internal", "cocotb"):
        raise ValueError(f"clock must be 'internal' or 'cocotb', not {clock!r}")
    if isinstance(design, wiring.Component):
        design = to_verilog(design, name=name)
    label = design.top
    if clock == "internal":
        design = clocked_wrapper(design, period_ns=clock_period_ns)
    if backend == "verilator":
        exe, hit = build_verilator(design, visibility=visibility, waves=_wave_format(waves), cache=cache,
                                   timing=clock == "internal", label=label)
        cmd = [str(exe)]
        if waves is not None:
            cmd += ["--trace", "--trace-file", str(Path(waves).resolve())]
    else:
        vvp, hit = build_icarus(design, waves=waves is not None, cache=cache, label=label)
        cmd = ["vvp", "-m", icarus_vpi(), str(vvp)]
        if waves is not None:
            cmd += [f"+waves={Path(waves).resolve()}"]
    cmd += [f"+{k}={v}" for k, v in (plusargs or {}).items()]
    job = {
        "bench": ref, "args": args, "backend": backend, "workdir": str(work),
        "result": str(work / "result.json"), "clock_period_ns": clock_period_ns,
        "internal_clock": clock == "internal",
    }
    (work / "job.json").write_text(json.dumps(job))
    if (work / "result.json").exists():
        (work / "result.json").unlink()
    env = cocotb_run_env(toplevel=design.top, test_module="tilelab.sim._cocotb_entry",
                         extra={"TILELAB_JOB": str(work / "job.json"),
                                "COCOTB_RESULTS_FILE": str(work / "results.xml")})
    with open(work / "sim.log", "w") as log:
        try:
            proc = subprocess.run(cmd, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT,
                                  timeout=timeout_seconds)
        except subprocess.TimeoutExpired as exc:
            raise SimulationError(f"{backend} simulation exceeded {timeout_seconds} s wall clock; "
                                  f"log: {work / 'sim.log'}") from exc
    result_file = work / "result.json"
    if not result_file.exists():
        tail = "\n".join((work / "sim.log").read_text(errors="replace").splitlines()[-40:])
        raise SimulationError(f"{backend} simulation ended (exit status {proc.returncode}) without a result; "
                              f"log tail:\n{tail}")
    res = json.loads(result_file.read_text())
    if not res["ok"]:
        exc_type = _PASSTHROUGH.get(res["type"])
        if exc_type is not None:
            raise exc_type(res["message"])
        raise SimulationError(f"bench {ref} raised {res['type']}: {res['message']}\n{res['traceback']}")
    return SimResult(res.get("value"), int(res.get("cycles", 0)), float(res["wall_seconds"]),
                     time.perf_counter() - t_start, backend, hit, work)


def _wave_format(waves) -> str | None:
    """Verilator waveform format from the file name: ``.vcd`` is VCD, anything else FST."""
    if waves is None:
        return None
    return "vcd" if str(waves).endswith(".vcd") else "fst"


def icarus_vpi() -> str:
    """Path of cocotb's VPI module for Icarus (``vvp -m``)."""
    import cocotb_tools.config

    return str(cocotb_tools.config.lib_entry("vpi", "icarus"))


def _simulate_amaranth(component, ref, args, waves, clock_period_ns, work, plusargs):
    from amaranth.sim import Simulator

    bench = _load(ref)
    ports = port_names(component)
    sim = Simulator(component)
    sim.add_clock(clock_period_ns * 1e-9)
    box = {}

    async def tb(ctx):
        io = _io.AmaranthIO(ctx, ports, work, component=component, plusargs=plusargs)
        t0 = time.perf_counter()
        try:
            box["value"] = await bench(io, **args)
        finally:
            box["wall"] = time.perf_counter() - t0
            box["cycles"] = io.cycle

    sim.add_testbench(tb)
    if waves is not None:
        with sim.write_vcd(str(waves)):
            sim.run()
    else:
        sim.run()
    # JSON round trip, so every backend returns the same kinds of values.
    value = json.loads(json.dumps(box.get("value")))
    return value, box["cycles"], box["wall"]




class CocotbOutcome(dict):
    """What :func:`run_cocotb_tests` returns: ``{test name: "pass" | "fail" | "skip"}``.

    Attributes
    ----------
    workdir : Path or None
        The run's folder (``results.xml``, ``sim.log``, waveforms written there); None once a
        temporary folder has been removed.
    log : str
        The simulator's whole output (cocotb's log included).
    """

    def __init__(self, outcome: dict, workdir: Path | None, log: str):
        super().__init__(outcome)
        self.workdir = workdir
        self.log = log


def run_cocotb_tests(design: wiring.Component | Design, test_module: str, *, backend: str = "verilator",
                     name: str = "top", waves: str | os.PathLike | None = None, visibility: str = "ports",
                     workdir: str | os.PathLike | None = None, testcase: str | None = None,
                     timeout_seconds: float | None = None, build_args: tuple[str, ...] | list[str] = (),
                     plusargs: dict[str, str] | None = None, extra_env: dict[str, str] | None = None,
                     seed: int | None = None, keep: bool = False) -> CocotbOutcome:
    """Run a user's own cocotb test module (``@cocotb.test()`` functions) against ``design``.

    The design is built the same way as for :func:`simulate` (cached under ``~/.cache/tilelab``;
    on Verilator only the top-level ports are visible to cocotb unless ``visibility="all"``) and
    cocotb drives its clock (``cocotb.clock.Clock`` on ``dut.clk``), as under cocotb's own runner.

    Parameters
    ----------
    design : wiring.Component or Design
        The component, or its Verilog (``tilelab.drive.export`` / ``tilelab verilog`` units).
    test_module : str
        Importable module name of the tests (``"my_tests"``, found on ``sys.path``).
    backend : {"verilator", "icarus"}
        The simulator.
    name : str
        Top-level module name when ``design`` is a component (``dut`` is this module).
    waves : path, optional
        Write a waveform here: FST on Verilator (VCD when the name ends in ``.vcd``), VCD on Icarus.
    visibility : {"ports", "all"}
        Verilator: ``"ports"`` makes only the top-level ports reachable from cocotb (``dut.x``
        for a port ``x``); ``"all"`` every signal (``dut.sub.sig``), as cocotb's runner builds,
        which simulates slower on designs whose own evaluation dominates (large arrays; a bench
        whose Python runs every cycle is bound by the Python instead and gains nothing).
    workdir : path, optional
        Folder for the run's files (``results.xml``, ``sim.log``); kept. Without it a temporary
        folder is used and removed after a passing run unless ``keep`` is true; after a failure
        it is kept and its log path is in the message.
    testcase : str, optional
        Run only the tests whose name matches this regular expression (``COCOTB_TEST_FILTER``).
    timeout_seconds : float, optional
        Wall-clock limit on the simulator process.
    build_args : sequence of str
        More simulator build arguments (Verilator or ``iverilog``: ``-DNAME=VALUE``, ...); part
        of the build's cache key.
    plusargs : dict, optional
        ``+name=value`` arguments of the simulation (``cocotb.plusargs`` in the tests; memory
        images such as ``{"extmem_init": "image.hex"}``).
    extra_env : dict, optional
        More environment variables for the simulator process (read with ``os.environ`` in the
        tests).
    seed : int, optional
        cocotb's random seed (``COCOTB_RANDOM_SEED``); cocotb picks one and logs it when omitted.
    keep : bool
        Keep the temporary folder after a passing run too.

    Returns
    -------
    CocotbOutcome
        ``{test name: "pass" / "fail" / "skip"}``, with the run's ``workdir`` and ``log``.

    Raises
    ------
    SimulationError
        When a test fails or none ran: the message names the failed tests, holds the log's last
        lines and the path of the whole log.
    """
    import shutil
    import sys
    import xml.etree.ElementTree as ET

    check_choice("backend", backend, ("verilator", "icarus"))
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
        raise ValueError(f"seed must be a non-negative integer, not {seed!r}")
    temporary = workdir is None
    work = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="tilelab-cocotb-"))
    work.mkdir(parents=True, exist_ok=True)
    if isinstance(design, wiring.Component):
        design = to_verilog(design, name=name)
    build_args = tuple(str(a) for a in build_args)
    if backend == "verilator":
        exe, _hit = build_verilator(design, visibility=visibility, waves=_wave_format(waves), extra_args=build_args)
        cmd = [str(exe)] + (["--trace", "--trace-file", str(Path(waves).resolve())] if waves else [])
    else:
        vvp, _hit = build_icarus(design, waves=waves is not None, extra_args=build_args)
        cmd = ["vvp", "-m", icarus_vpi(), str(vvp)] + ([f"+waves={Path(waves).resolve()}"] if waves else [])
    cmd += [f"+{k}={v}" for k, v in (plusargs or {}).items()]
    extra = dict(extra_env or {})
    extra["COCOTB_RESULTS_FILE"] = str(work / "results.xml")
    if testcase:
        extra["COCOTB_TEST_FILTER"] = testcase
    if seed is not None:
        extra["COCOTB_RANDOM_SEED"] = str(seed)
    env = cocotb_run_env(toplevel=design.top, test_module=test_module, extra=extra)
    results = work / "results.xml"
    if results.exists():
        results.unlink()
    log_path = work / "sim.log"
    with open(log_path, "w") as log:
        try:
            subprocess.run(cmd, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=timeout_seconds)
        except subprocess.TimeoutExpired as exc:
            raise SimulationError(f"cocotb run of {test_module} exceeded {timeout_seconds} s wall clock; "
                                  f"log: {log_path}") from exc
    text = log_path.read_text(errors="replace")
    if not results.exists():
        tail = "\n".join(text.splitlines()[-40:])
        raise SimulationError(f"cocotb run of {test_module} produced no results; log tail:\n{tail}\n"
                              f"whole log: {log_path}")
    outcome = {}
    for case in ET.parse(results).iter("testcase"):
        status = "pass"
        if case.find("failure") is not None or case.find("error") is not None:
            status = "fail"
        elif case.find("skipped") is not None:
            status = "skip"
        outcome[case.get("name")] = status
    failed = [k for k, v in outcome.items() if v == "fail"]
    if failed or not outcome:
        tail = "\n".join(text.splitlines()[-60:])
        print(f"cocotb tests of {test_module} failed; simulator log: {log_path}", file=sys.stderr)
        raise SimulationError(f"cocotb tests failed: {failed or 'no test ran'}\n{tail}\nwhole log: {log_path}")
    if temporary and not keep:
        shutil.rmtree(work, ignore_errors=True)
        return CocotbOutcome(outcome, None, text)
    return CocotbOutcome(outcome, work, text)
