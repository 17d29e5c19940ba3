# amaranth: UnusedElaboratable=no
"""Verilator lint of every tilelab.hdl block (-Wall with the waivers, and ``tilelab verilog``'s output with
the default warnings), and of the lint helpers themselves."""

import re
import subprocess

import pytest
from amaranth.back import verilog
from amaranth.hdl import Module
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from tests.conftest import requires_icarus
from tilelab.cli import main
from tilelab.hdl import registry
from tilelab.hdl.addrgen import AffineAddressGenerator
from tilelab.hdl.cbuf import CircularBufferController
from tilelab.hdl.lint import (
    LINT_WAIVERS,
    LintError,
    Waiver,
    control_file,
    lint_component,
    lint_verilog,
    verilator_executable,
    waive_in_file,
)
from tilelab.hdl.mac import MACArray, MACUnit
from tilelab.hdl.memories import SRAM
from tilelab.hdl.reduce import ReductionTree
from tilelab.hdl.sram import BankedMemory, SRAMBank
from tilelab.hdl.streams import RoundRobinArbiter, SkidBuffer, StreamFIFO, StreamFork, StreamJoin
from tilelab.sim.verilog import to_verilog

pytestmark = pytest.mark.verilator

PACKET = data.StructLayout({"data": 32, "last": 1})

# Parameter sets other than the ones each block's own test file lints: edge sizes and odd shapes.
BLOCKS = {
    "skid_struct": lambda: SkidBuffer(shape=PACKET),
    "fifo_unbuffered": lambda: StreamFIFO(shape=PACKET, depth=3, buffered=False),
    "fifo_depth1": lambda: StreamFIFO(shape=1, depth=1),
    "fifo_depth2": lambda: StreamFIFO(shape=8, depth=2),                # zero-width inner FIFO pointers
    "arbiter_single": lambda: RoundRobinArbiter(shape=8, n=1),
    "arbiter_wide": lambda: RoundRobinArbiter(shape=16, n=5),
    "fork_single": lambda: StreamFork(shape=PACKET, n=1),
    "join_one": lambda: StreamJoin(shapes=[5]),
    "reduce_max_unsigned": lambda: ReductionTree(width=8, fan_in=7, op="max", signed=False),
    "reduce_sum_one": lambda: ReductionTree(width=32, fan_in=1, pipeline=True),
    "reduce_sum_64": lambda: ReductionTree(width=32, fan_in=64, pipeline=True),
    "sram_whole_word": lambda: SRAMBank(width=16, depth=3, granularity=16),
    "banked_one_bank": lambda: BankedMemory(width=8, depth=8, banks=1, read_ports=1, write_ports=1),
    "banked_tile_l1": lambda: BankedMemory(width=64, depth=1024, banks=8, read_ports=3, write_ports=2),
    "cbuf_one_page": lambda: CircularBufferController(pages=1),
    "cbuf_pow2": lambda: CircularBufferController(pages=16),
    "addrgen_one_loop": lambda: AffineAddressGenerator(addr_width=10, loops=1, count_width=3),
    "addrgen_narrow_stride": lambda: AffineAddressGenerator(addr_width=20, loops=4, stride_width=9),
    "mac_unit": lambda: MACUnit(),
    "mac_array_depthwise": lambda: MACArray(rows=3, cols=4, depthwise=True),
    "mac_array_one_row": lambda: MACArray(rows=1, cols=3),             # zero-width drain row counter
    "mac_array_two_row_drain": lambda: MACArray(rows=4, cols=2, depthwise=True, drain_rows=2),
    "mac_array_unsigned_wide": lambda: MACArray(rows=2, cols=2, a_width=16, b_width=4, acc_width=24, signed_=False),
    "sram_amaranth_model": lambda: SRAM(width_bytes=4, depth=16, impl="amaranth"),
}


@pytest.mark.parametrize("name", BLOCKS)
def test_block_is_lint_clean(name):
    lint_component(BLOCKS[name](), name)


class _IgnoresInput(wiring.Component):
    a: In(8)
    b: In(8)
    o: Out(8)

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.o.eq(self.a)
        return m


def test_unread_input_is_reported():
    text = verilog.convert(_IgnoresInput(), name="ignores")
    with pytest.raises(LintError, match=re.escape("input ports never read: ['b']")):
        lint_verilog(text, "ignores")


def test_verilator_warnings_are_reported():
    text = """
module bad(input wire [7:0] a, output wire [3:0] o);
  wire [7:0] unused_but_waived;
  assign o = a + 8'd1;
endmodule
"""
    with pytest.raises(LintError, match=r"WIDTHTRUNC"):
        lint_verilog(text, "bad")


def test_every_waiver_is_justified():
    lines = control_file().splitlines()
    assert lines[0] == "`verilator_config"
    rules = [line.split()[2] for line in lines if line.startswith("lint_off")]
    assert rules == [w.rule for w in LINT_WAIVERS]
    for k, line in enumerate(lines):
        if line.startswith("lint_off"):
            assert lines[k - 1].startswith("//"), f"waiver without a justification: {line}"


def test_waiver_needs_a_justification():
    with pytest.raises(ValueError, match="needs a justification"):
        Waiver("WIDTHEXPAND", " ")


def _default_lint(path):
    """``verilator --lint-only path``: default warnings, no control file. Returns (exit code, output)."""
    exe, env = verilator_executable()
    result = subprocess.run([str(exe), "--lint-only", str(path)], env=env, cwd=path.parent,
                            capture_output=True, text=True, check=False)
    return result.returncode, result.stdout + result.stderr


def _warnings(output):
    """``[(rule, line)]`` of every Verilator warning in ``output``."""
    return [(rule, int(line)) for rule, line in re.findall(r"^%Warning-(\w+): [^:\n]+:(\d+):", output, re.M)]


# Every block at its defaults, and offered sizes that need the statement-level waivers (zero-width
# signals of a one-row array or a depth-2 buffered FIFO) or are large.
_OFFERED = [pytest.param(name, {}, id=name) for name in registry.BLOCKS] + [
    pytest.param("mac-array", dict(rows=1, cols=1), id="mac-array-1x1"),
    pytest.param("mac-array", dict(rows=4, cols=4, depthwise=True), id="mac-array-4x4-depthwise"),
    pytest.param("mac-array", dict(rows=16, cols=16), id="mac-array-16x16"),
    pytest.param("stream-fifo", dict(depth=2), id="stream-fifo-depth2"),
    pytest.param("stream-fifo", dict(depth=1, buffered=False), id="stream-fifo-depth1-unbuffered"),
]


@pytest.mark.parametrize(("name", "params"), _OFFERED)
def test_tilelab_verilog_passes_default_lint(name, params, tmp_path):
    """What ``tilelab verilog NAME`` writes lints clean with Verilator's default warnings."""
    top = name.replace("-", "_")
    design = to_verilog(registry.BLOCKS[name].build(**params), name=top)
    assert design.extra_sources == ()                   # the one file is the whole design
    path = tmp_path / f"{top}.v"
    path.write_text(design.verilog)
    code, output = _default_lint(path)
    assert code == 0, output
    assert "%Warning" not in output and "%Error" not in output, output
    lint_verilog(design.verilog, top)                   # and -Wall with the waivers, as before


def test_cli_mac_array_passes_default_lint(tmp_path):
    from click.testing import CliRunner

    path = tmp_path / "mac.v"
    result = CliRunner().invoke(main, ["verilog", "mac-array", "--rows", "4", "--cols", "4", "-o", str(path)])
    assert result.exit_code == 0, result.output
    code, output = _default_lint(path)
    assert code == 0, output
    assert "%Warning" not in output and "%Error" not in output, output


@requires_icarus
@pytest.mark.parametrize("name", registry.BLOCKS)
def test_tilelab_verilog_compiles_with_icarus(name, tmp_path):
    path = tmp_path / "block.v"
    path.write_text(to_verilog(registry.BLOCKS[name].build(), name="block").verilog)
    result = subprocess.run(["iverilog", "-g2012", "-o", str(tmp_path / "block.vvp"), str(path)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout + result.stderr == ""


class _PartSelects(wiring.Component):
    """Part-selects at variable offsets, which Yosys writes as shifts into narrower wires."""

    a: In(32)
    i: In(2)
    j: In(5)
    octet: Out(8)
    flag: Out(1)

    def elaborate(self, platform):
        m = Module()
        m.d.comb += [self.octet.eq(self.a.word_select(self.i, 8)), self.flag.eq(self.a.bit_select(self.j, 1))]
        return m


def test_variable_part_selects_pass_wall_lint():
    lint_component(_PartSelects(), "parts")


def test_variable_part_selects_pass_default_lint(tmp_path):
    design = to_verilog(_PartSelects(), name="parts")
    assert re.search(r"^\s*assign octet = a >> ", verilog.convert(_PartSelects(), name="parts"), re.M)
    path = tmp_path / "parts.v"
    path.write_text(design.verilog)
    code, output = _default_lint(path)
    assert code == 0, output
    assert "%Warning" not in output and "%Error" not in output, output
    lint_verilog(design.verilog, "parts")


_NARROW = """\
module waived(input wire [1:0] x, input wire [3:0] y, output wire lt, output wire zero, output wire [1:0] low);
  assign lt = x < y;
  assign zero = ! y;
  assign low = y;
endmodule
"""

_AFTER = """\
module after(input wire [1:0] x, input wire [3:0] y, output wire gt);
  assign gt = y > x;
endmodule
module both(input wire [1:0] x, input wire [3:0] y, output wire [4:0] o);
  waived u0(.x(x), .y(y), .lt(o[0]), .zero(o[1]), .low(o[3:2]));
  after u1(.x(x), .y(y), .gt(o[4]));
endmodule
"""


def test_in_file_waivers_are_narrow(tmp_path):
    """The in-file waivers cover WIDTHTRUNC on `!x` statements only, and nothing after the design."""
    text = waive_in_file(_NARROW) + _AFTER
    path = tmp_path / "narrow.v"
    path.write_text(text)
    code, output = _default_lint(path)
    lines = text.splitlines()
    found = sorted((rule, lines[n - 1].strip()) for rule, n in _warnings(output))
    assert code != 0
    assert found == [("WIDTHEXPAND", "assign gt = y > x;"), ("WIDTHTRUNC", "assign low = y;")], output


def test_in_file_waivers_add_only_comments():
    text = to_verilog(registry.BLOCKS["circular-buffer"].build(), name="cbuf").verilog
    original = verilog.convert(registry.BLOCKS["circular-buffer"].build(), name="cbuf", emit_src=False)
    assert "! occupancy" in original                     # a statement that the WIDTHTRUNC waiver wraps
    assert text.startswith("// ")
    stripped = re.sub(r"/\* verilator [^*]*\*/ ?", "", text)
    kept = [line.rstrip() for line in stripped.splitlines() if line.strip() and not line.startswith("//")]
    assert kept == [line.rstrip() for line in original.splitlines() if line.strip()]
