"""Cached simulator builds: Verilator (fast ports-only or full visibility) and Icarus."""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from pathlib import Path

from .cache import BuildCache
from .toolchain import (
    ToolchainError,
    icarus_available,
    icarus_version,
    verilator_env,
    verilator_root,
    verilator_version,
)
from .verilog import Design

__all__ = ["BuildError", "build_verilator", "build_icarus", "VERILATOR_OPT_FLAGS"]

log = logging.getLogger(__name__)

#: Optimisation flags of every Verilator build (part of the cache key).
VERILATOR_OPT_FLAGS = ("-O3", "--x-assign", "fast", "--x-initial", "fast", "--noassert")
#: Warnings Amaranth-generated code trips that are not errors for simulation.
VERILATOR_WNO = ("-Wno-fatal", "-Wno-lint", "-Wno-style", "-Wno-MULTIDRIVEN", "-Wno-UNOPTFLAT")


class BuildError(RuntimeError):
    """A simulator build failed; the message carries the tool's output."""


def _run(cmd: list[str], *, env=None, cwd=None, what: str):
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-60:])
        raise BuildError(f"{what} failed with exit status {proc.returncode}:\n$ {' '.join(cmd)}\n{tail}")
    return proc


def _vlt_ports(design: Design) -> str:
    lines = ["`verilator_config", "// only the top-level ports are visible to cocotb (fast path)"]
    for port, _width in design.ports:
        lines.append(f'public_flat_rw -module "{design.top}" -var "{port}"')
    return "\n".join(lines) + "\n"


def build_verilator(design: Design, *, visibility: str = "ports", waves: str | None = None, jobs: int = 2,
                    cache: BuildCache | None = None) -> tuple[Path, bool]:
    """Build a cocotb-enabled Verilator simulator of ``design`` (cached).

    Parameters
    ----------
    design : Design
        The Verilog to build.
    visibility : {"ports", "all"}
        ``"ports"`` makes only the top-level ports visible to cocotb (the fast path); ``"all"`` is
        cocotb's default ``--public-flat-rw`` (every signal reachable, 4–5× slower).
    waves : {None, "fst", "vcd"}
        Build with waveform tracing support in this format (FST needs the lz4 headers,
        Debian package ``liblz4-dev``).
    jobs : int
        Parallel compile jobs for make.

    Returns
    -------
    (Path, bool)
        The simulator executable and whether it came from the cache.
    """
    if visibility not in ("ports", "all"):
        raise ValueError(f"visibility must be 'ports' or 'all', not {visibility!r}")
    if waves not in (None, "fst", "vcd"):
        raise ValueError(f"waves must be None, 'fst' or 'vcd', not {waves!r}")
    if waves == "fst" and not _have_header("lz4.h"):
        raise ToolchainError("FST waveforms need the lz4 headers (apt-get install liblz4-dev); "
                             "or ask for a .vcd file instead")
    import cocotb_tools.config

    cache = cache or BuildCache()
    flags = list(VERILATOR_OPT_FLAGS) + list(VERILATOR_WNO) + ["--timescale", "1ns/1ps"]
    if waves == "fst":
        flags += ["--trace-fst", "--trace-structs"]
    elif waves == "vcd":
        flags += ["--trace", "--trace-structs"]
    key = cache.key(
        "verilator",
        {
            "top": design.top,
            "src": design.sources_text(),
            "flags": flags,
            "visibility": visibility,
            "verilator": verilator_version(),
            "cocotb": _cocotb_version(),
            "ports": design.ports,
        },
    )

    def build(tmp: Path):
        (tmp / f"{design.top}.v").write_text(design.verilog)
        sources = [str(tmp / f"{design.top}.v")]
        for i, src in enumerate(design.extra_sources):
            dst = tmp / f"extra{i}_{Path(src).name}"
            shutil.copy(src, dst)
            sources.append(str(dst))
        vis = []
        if visibility == "ports":
            (tmp / "ports.vlt").write_text(_vlt_ports(design))
            vis = [str(tmp / "ports.vlt")]
        else:
            vis = ["--public-flat-rw"]
        libs = cocotb_tools.config.libs_dir
        cmd = [
            str(verilator_root() / "bin" / "verilator"),
            "-cc", "--exe", "-Mdir", str(tmp / "obj"), "--top-module", design.top, "--vpi",
            "--prefix", "Vtop", "-o", "sim",
            "-LDFLAGS", f"-Wl,-rpath,{libs} -L{libs} -lcocotbvpi_verilator",
            *flags, *vis,
            str(cocotb_tools.config.share_dir / "lib" / "verilator" / "verilator.cpp"),
            *sources,
        ]
        env = verilator_env()
        _run(cmd, env=env, what=f"verilator ({design.top})")
        _run(["make", "-s", "-j", str(jobs), "-C", str(tmp / "obj"), "-f", "Vtop.mk", "OPT_FAST=-O2",
              f"VM_TRACE={int(waves is not None)}"], env=env, what=f"make of the Verilator model ({design.top})")
        exe = tmp / "obj" / "sim"
        shutil.move(str(exe), str(tmp / "sim"))
        # The object files are not needed to run; keep the cache small.
        shutil.rmtree(tmp / "obj", ignore_errors=True)

    folder, hit = cache.get_or_build(key, build)
    log.info("verilator build of %s: %s (%s)", design.top, "cache hit" if hit else "built", folder)
    return folder / "sim", hit


def build_icarus(design: Design, *, waves: bool = False, cache: BuildCache | None = None) -> tuple[Path, bool]:
    """Compile ``design`` with Icarus Verilog (cached); return ``(vvp file, hit)``."""
    if not icarus_available():
        raise ToolchainError("Icarus Verilog is not installed: apt-get install iverilog")
    cache = cache or BuildCache()
    key = cache.key("icarus", {"top": design.top, "src": design.sources_text(), "waves": waves, "fix": 1,
                               "iverilog": icarus_version()})

    def build(tmp: Path):
        (tmp / f"{design.top}.v").write_text(icarus_time0_fix(design.verilog))
        sources = [str(tmp / f"{design.top}.v")]
        for i, src in enumerate(design.extra_sources):
            dst = tmp / f"extra{i}_{Path(src).name}"
            shutil.copy(src, dst)
            sources.append(str(dst))
        (tmp / "cmds.f").write_text("+timescale+1ns/1ps\n")
        tops = ["-s", design.top]
        if waves:
            (tmp / "dump.v").write_text(
                "module tilelab_iverilog_dump();\n"
                "  reg [8*1024-1:0] f;\n"
                "  initial begin\n"
                '    if ($value$plusargs("waves=%s", f)) begin $dumpfile(f); '
                f"$dumpvars(0, {design.top}); end\n"
                "  end\nendmodule\n"
            )
            sources.append(str(tmp / "dump.v"))
            tops += ["-s", "tilelab_iverilog_dump"]
        _run(["iverilog", "-g2012", "-f", str(tmp / "cmds.f"), "-o", str(tmp / "sim.vvp"), *tops, *sources],
             what=f"iverilog ({design.top})")

    folder, hit = cache.get_or_build(key, build)
    return folder / "sim.vvp", hit


_TRIGGER = re.compile(r"^(\s*)reg (\\\$auto\$verilog_backend\.cc:\d+:dump_module\$\d+ ) = 0;$", re.M)


def icarus_time0_fix(verilog: str) -> str:
    """Make Icarus evaluate every combinational block at time 0.

    Yosys's Verilog back end makes each ``always @*`` block read a register initialised to 0, so
    that simulators run the block once at time 0. Icarus applies the declaration's initial value
    before the blocks start waiting, so the blocks do not run and their outputs stay X until an
    input changes (a constant-driven block never runs). Toggling the register at ``#0`` wakes
    them all once.
    """
    return _TRIGGER.sub(lambda mt: f"{mt.group(1)}reg {mt.group(2)}= 0;\n{mt.group(1)}initial #0 {mt.group(2)}= 1'b1;",
                        verilog)


def _have_header(name: str) -> bool:
    return any(Path(d, name).exists() for d in ("/usr/include", "/usr/local/include"))


def _cocotb_version() -> str:
    from importlib.metadata import version

    return version("cocotb")
