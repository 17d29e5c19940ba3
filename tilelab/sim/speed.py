"""Simulator speed: the R×C MAC array under every backend, against a plain C++ Verilator loop.

The design under measurement (:class:`MacArrayLoad`) is autonomous: LFSRs feed the MAC array a
new reduction step every cycle and a checksum register folds every output row, so no simulator can
optimise the array away and Python has nothing to do while it runs. Each method reports cycles per
second of wall time; MAC/s = cycles/s × rows × cols.

The ceiling (``cpp-ceiling``) is the same Verilator model as the fast path's (``tilelab-fast``):
the same Verilog, Verilator flags, port visibility and C++ optimisation; only its ``main`` differs,
a plain C++ loop that toggles the clock instead of cocotb's scheduler. Both run the same number of
cycles, best of :data:`REPEATS` rounds, so the fast path's ratio to the ceiling is the harness's
overhead and nothing else.
"""


import os
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from tilelab.checks import check_choice
from tilelab.hdl.mac import MACArray

from .builders import OPT_SLOW, VERILATOR_OPT_FLAGS, _run, make_vars, model_flags, opt_fast, ports_config
from .cache import BuildCache
from .runner import simulate
from .toolchain import icarus_available, verilator_env, verilator_root, verilator_version
from .verilog import Design, to_verilog

__all__ = ["METHODS", "MacArrayLoad", "SpeedRecord", "measure", "run_speed_benchmark"]

#: Measurement methods, slowest first.
METHODS = ("amaranth", "icarus", "cocotb-runner", "tilelab-fast", "cpp-ceiling")

#: Reduction steps per block (at least the array's rows, so the drain overlaps accumulation).
BLOCK_K = 64
#: Timed rounds per measurement; the fastest counts (the others absorb a busy machine's noise).
REPEATS = 3


class MacArrayLoad(wiring.Component):
    """A MAC array kept busy by on-chip LFSR operands, for speed measurement.

    Parameters
    ----------
    rows, cols : int
        Array shape.

    Attributes
    ----------
    run : In(1)
        Feed a step every cycle while high.
    checksum : Out(32)
        XOR fold of every output row (keeps the array observable).
    cycles : Out(48)
        Cycles with ``run`` high.
    macs : Out(48)
        MACs the array performed.
    """

    run: In(1)
    checksum: Out(32)
    cycles: Out(48)
    macs: Out(48)

    def __init__(self, *, rows: int = 8, cols: int = 8):
        self.rows, self.cols = rows, cols
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.array = array = MACArray(rows=self.rows, cols=self.cols)
        n_bits = 8 * (self.rows + self.cols)
        # A 64-bit xorshift generator per 64 operand bits: cheap, and every bit changes.
        words = (n_bits + 63) // 64
        state = [Signal(64, init=((0x9E3779B97F4A7C15 ^ (i * 0x632BE59BD9B4E019)) & (2**64 - 1)) or 1, name=f"rng{i}")
                 for i in range(words)]
        with m.If(self.run):
            for s in state:
                x1 = s ^ (s << 13)[:64]
                x2 = x1 ^ (x1 >> 7)
                x3 = x2 ^ (x2 << 17)[:64]
                m.d.sync += s.eq(x3)
        bits = Cat(*state)
        K = max(BLOCK_K, self.rows)
        k = Signal(range(K))
        m.d.comb += [
            array.i.valid.eq(self.run),
            array.i.payload.a.eq(bits[: 8 * self.rows]),
            array.i.payload.b.eq(bits[8 * self.rows: n_bits]),
            array.i.payload.first.eq(k == 0),
            array.i.payload.last.eq(k == K - 1),
            array.o.ready.eq(1),
            self.macs.eq(array.macs),
        ]
        with m.If(array.i.valid & array.i.ready):
            m.d.sync += k.eq(k + 1)
            with m.If(k == K - 1):
                m.d.sync += k.eq(0)
        with m.If(self.run):
            m.d.sync += self.cycles.eq(self.cycles + 1)
        fold = 0
        for c in range(self.cols):
            fold = fold ^ array.o.payload.row[c].as_unsigned()
        with m.If(array.o.valid):
            m.d.sync += self.checksum.eq(Cat(self.checksum[1:], self.checksum[0]) ^ fold)
        return m


async def speed_bench(io, *, cycles: int, repeats: int = 1):
    """Let the load run ``repeats`` rounds of ``cycles`` cycles with Python asleep.

    Returns the fastest round's wall time (``wall``), every round's (``walls``) and the load's
    counters after the last round (``cycles`` counts all rounds).
    """
    await io.reset()
    walls = []
    for _ in range(repeats):
        io.set("run", 1)
        t0 = time.perf_counter()
        await io.tick(cycles)
        walls.append(time.perf_counter() - t0)
        io.set("run", 0)
        await io.tick(2)
    return {"wall": min(walls), "walls": walls, "cycles": io.get("cycles"), "macs": io.get("macs"),
            "checksum": io.get("checksum")}


@dataclass
class SpeedRecord:
    """One measurement: ``method`` on a ``rows``×``cols`` array."""

    method: str
    rows: int
    cols: int
    cycles: int
    wall_seconds: float
    cycles_per_second: float
    macs_per_second: float
    ratio_to_ceiling: float | None = None
    build_cached: bool | None = None

    def as_dict(self):
        return asdict(self)


_CPP_MAIN = r"""
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include "Vtop.h"
#include "verilated.h"
static void cycle(Vtop *top) { top->clk = 1; top->eval(); top->clk = 0; top->eval(); }
int main(int argc, char **argv) {
    Verilated::commandArgs(argc, argv);
    unsigned long long n = argc > 1 ? strtoull(argv[1], 0, 10) : 1000000ULL;
    int repeats = argc > 2 ? atoi(argv[2]) : 1;
    Vtop *top = new Vtop;
    top->clk = 0; top->rst = 1; top->run = 0; top->eval();
    for (int i = 0; i < 4; i++) cycle(top);
    top->rst = 0; top->eval();
    double best = 1e300;
    for (int r = 0; r < repeats; r++) {
        top->run = 1;
        auto t0 = std::chrono::steady_clock::now();
        for (unsigned long long i = 0; i < n; i++) cycle(top);
        auto t1 = std::chrono::steady_clock::now();
        double s = std::chrono::duration<double>(t1 - t0).count();
        if (s < best) best = s;
        top->run = 0;
        cycle(top); cycle(top);
    }
    printf("%llu %.9f %llu %u\n", (unsigned long long)top->cycles, best, (unsigned long long)top->macs,
           (unsigned)top->checksum);
    delete top;
    return 0;
}
"""


def _build_cpp(design: Design, cache: BuildCache | None = None) -> Path:
    """The fast path's Verilator model of ``design`` with a plain C++ ``main`` (cached)."""
    cache = cache or BuildCache()
    flags = model_flags()
    fast = opt_fast()
    key = cache.key("cpp-loop", {"src": design.verilog, "main": _CPP_MAIN, "flags": flags, "opt_fast": fast,
                                 "opt_slow": OPT_SLOW, "ports": design.ports, "verilator": verilator_version()})

    def build(tmp: Path):
        (tmp / "top.v").write_text(design.verilog)
        (tmp / "main.cpp").write_text(_CPP_MAIN)
        (tmp / "ports.vlt").write_text(ports_config(design))
        env = verilator_env()
        _run([str(verilator_root() / "bin" / "verilator"), "-cc", "--exe", "-Mdir", str(tmp / "obj"),
              "--top-module", design.top, "--vpi", "--prefix", "Vtop", "-o", "sim", *flags,
              str(tmp / "ports.vlt"), str(tmp / "main.cpp"), str(tmp / "top.v")], env=env,
             what="verilator (C++ loop)")
        _run(["make", "-s", "-j2", "-C", str(tmp / "obj"), "-f", "Vtop.mk", *make_vars(fast)], env=env,
             what="make (C++ loop)")
        os.replace(tmp / "obj" / "sim", tmp / "sim")

    folder, _ = cache.get_or_build(key, build)
    return folder / "sim"


def _runner_path(design: Design, cycles: int, workdir: Path) -> dict:
    """Build and run through cocotb's own runner (``--public-flat-rw``), as a cocotb user would."""
    import json

    from cocotb_tools.runner import get_runner

    src = workdir / "top.v"
    src.write_text(design.verilog)
    env = verilator_env()
    saved = {k: os.environ.get(k) for k in ("PATH", "VERILATOR_ROOT", "MAKEFLAGS")}
    os.environ.update({k: env[k] for k in saved})
    try:
        runner = get_runner("verilator")
        runner.build(sources=[src], hdl_toplevel=design.top, build_dir=workdir / "build",
                     timescale=("1ns", "1ps"), build_args=list(VERILATOR_OPT_FLAGS) + ["-Wno-fatal"],
                     log_file=workdir / "build.log")
        job = {"bench": "tilelab.sim.speed:speed_bench", "args": {"cycles": cycles}, "backend": "verilator",
               "workdir": str(workdir), "result": str(workdir / "result.json"), "clock_period_ns": 10}
        (workdir / "job.json").write_text(json.dumps(job))
        runner.test(test_module="tilelab.sim._cocotb_entry", hdl_toplevel=design.top, build_dir=workdir / "build",
                    extra_env={"TILELAB_JOB": str(workdir / "job.json"), "COCOTB_ANSI_OUTPUT": "0"},
                    log_file=workdir / "test.log")
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    res = json.loads((workdir / "result.json").read_text())
    if not res["ok"]:
        raise RuntimeError(res["message"])
    return res["value"]


def measure(method: str, rows: int, cols: int, *, cycles: int | None = None, repeats: int = REPEATS) -> SpeedRecord:
    """Measure one ``method`` (see :data:`METHODS`) on a ``rows``×``cols`` array.

    Parameters
    ----------
    method : str
        One of :data:`METHODS`.
    rows, cols : int
        The MAC array's shape.
    cycles : int, optional
        Cycles per timed round (default: about a second of the method's speed; the fast path and
        the ceiling run the same number).
    repeats : int
        Timed rounds in one simulation (Verilator methods); the fastest counts.
    """
    check_choice("method", method, METHODS)
    macs_per_cycle = rows * cols
    # Aim at about a second of wall time per round.
    default = {"amaranth": 1_000_000, "icarus": 300_000, "cocotb-runner": 20_000_000,
               "tilelab-fast": 120_000_000, "cpp-ceiling": 120_000_000}[method]
    n = cycles or max(200, default // macs_per_cycle)
    rounds = repeats if method in ("tilelab-fast", "cpp-ceiling") else 1
    comp = MacArrayLoad(rows=rows, cols=cols)
    cached = None
    if method == "cpp-ceiling":
        exe = _build_cpp(to_verilog(comp, name="top"))
        out = subprocess.run([str(exe), str(n), str(rounds)], capture_output=True, text=True,
                             check=True).stdout.split()
        got, wall, macs = int(out[0]), float(out[1]), int(out[2])
        if macs != got * macs_per_cycle:
            raise AssertionError(f"C++ loop: {macs} MACs in {got} cycles, expected {got * macs_per_cycle}")
        got //= rounds
    elif method == "cocotb-runner":
        with tempfile.TemporaryDirectory(prefix="tilelab-runner-") as tmp:
            v = _runner_path(to_verilog(comp, name="top"), n, Path(tmp))
        got, wall = v["cycles"], v["wall"]
    else:
        if method == "icarus" and not icarus_available():
            raise RuntimeError("Icarus Verilog is not installed (apt-get install iverilog)")
        backend = {"amaranth": "amaranth", "icarus": "icarus", "tilelab-fast": "verilator"}[method]
        r = simulate(comp, speed_bench, backend=backend, args={"cycles": n, "repeats": rounds})
        got, wall, cached = r.value["cycles"] // rounds, r.value["wall"], r.build_cached
    if got < n:
        raise AssertionError(f"{method}: ran {got} cycles, expected at least {n}")
    cps = got / wall
    return SpeedRecord(method, rows, cols, got, wall, cps, cps * macs_per_cycle, build_cached=cached)


def run_speed_benchmark(sizes=((8, 8), (32, 32)), methods=METHODS, *, log=print) -> list[SpeedRecord]:
    """Measure every method on every size; fill ``ratio_to_ceiling``; return the records."""
    records = []
    for rows, cols in sizes:
        group = []
        for method in methods:
            if method == "icarus" and not icarus_available():
                log("skipping icarus: Icarus Verilog is not installed")
                continue
            t = time.perf_counter()
            rec = measure(method, rows, cols)
            log(f"  {rows}x{cols} {method:14s} {rec.macs_per_second / 1e6:10.2f} M MAC/s "
                f"({time.perf_counter() - t:.1f} s with build)")
            group.append(rec)
        ceiling = next((r for r in group if r.method == "cpp-ceiling"), None)
        for rec in group:
            if ceiling is not None:
                rec.ratio_to_ceiling = rec.macs_per_second / ceiling.macs_per_second
        records.extend(group)
    return records


def format_table(records: list[SpeedRecord]) -> str:
    """Return the records as a fixed-width table."""
    lines = [f"{'method':15s} {'size':>7s} {'cycles/s':>14s} {'MAC/s':>14s} {'vs ceiling':>10s}"]
    for r in records:
        ratio = f"{100 * r.ratio_to_ceiling:9.1f}%" if r.ratio_to_ceiling is not None else "        -"
        lines.append(f"{r.method:15s} {f'{r.rows}x{r.cols}':>7s} {r.cycles_per_second:14,.0f} "
                     f"{r.macs_per_second:14,.0f} {ratio:>10s}")
    return "\n".join(lines)
