"""The simulation layer: one bench on every backend, the build cache, the watchdog, waveforms."""

import json
import multiprocessing
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ALL_BACKENDS, requires_icarus
from tests.sim import benches
from tests.sim.designs import Counter, Fifo
from tilelab.sim import (
    BuildCache,
    SimulationStalled,
    SimulationTimeout,
    run_cocotb_tests,
    simulate,
    to_verilog,
)
from tilelab.sim.builders import _have_header, build_verilator, icarus_time0_fix


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_same_bench_same_cycles_on_every_backend(backend):
    r = simulate(Counter(), benches.count_to, backend=backend, args={"limit": 300})
    assert r.value == {"cycles": r.value["cycles"], "count": 300}
    # The counter needs exactly `limit` enabled cycles; the watchdog checks in chunks, so done is
    # seen at most one check interval (64 cycles) later.
    assert 300 <= r.value["cycles"] <= 300 + 64


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_watchdog_names_what_stalled(backend):
    with pytest.raises(SimulationStalled, match=r"no progress for \d+ cycles \(watchdog limit 200\) at cycle \d+: "
                                                r"counter held at 50 of 1000 with en=0"):
        simulate(Counter(), benches.count_to, backend=backend, args={"limit": 1000, "stall_at": 50})


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_wait_until_timeout_names_port(backend):
    with pytest.raises(SimulationTimeout, match=re.escape("port 'done' did not become 1 within 40 cycles")):
        simulate(Counter(), benches.wait_for_done, backend=backend, args={"limit": 100, "max_cycles": 40})
    r = simulate(Counter(), benches.wait_for_done, backend=backend, args={"limit": 30, "max_cycles": 40})
    assert r.value["count"] == 30 and 30 <= r.value["waited"] <= 32


@pytest.mark.parametrize("backend", ["amaranth", "verilator"])
def test_bench_assertion_reaches_the_host(backend):
    with pytest.raises(AssertionError, match="count is 0, not 99"):
        simulate(Counter(), benches.fail_assert, backend=backend)


def test_bad_arguments():
    with pytest.raises(ValueError, match=re.escape("backend must be one of 'verilator', 'icarus', 'amaranth', "
                                                   "not 'modelsim'")):
        simulate(Counter(), benches.count_to, backend="modelsim")
    with pytest.raises(ValueError, match=re.escape("bench must be 'module:function', not 'count_to'")):
        simulate(Counter(), "count_to")

    async def local_bench(io):
        return None

    with pytest.raises(ValueError, match="must be a module-level function"):
        simulate(Counter(), local_bench)
    with pytest.raises(ValueError, match=re.escape("visibility must be 'ports' or 'all', not 'some'")):
        build_verilator(to_verilog(Counter()), visibility="some")
    with pytest.raises(ValueError, match=re.escape("clock_period_ns must be an even integer >= 2, not 5")):
        simulate(Counter(), benches.count_to, clock_period_ns=5)


def test_cache_hit_on_second_build(tmp_path):
    cache = BuildCache(tmp_path / "cache")
    design = to_verilog(Counter(tag=random.randrange(1, 1 << 15)))
    exe1, hit1 = build_verilator(design, cache=cache)
    exe2, hit2 = build_verilator(design, cache=cache)
    assert (hit1, hit2) == (False, True)
    assert exe1 == exe2 and exe1.exists()
    # A different flag set is a different build.
    assert cache.key("verilator", {"a": 1}) != cache.key("verilator", {"a": 2})


def _build_in_child(args):
    cache_dir, tag = args
    from tests.sim.designs import Counter
    from tilelab.sim import BuildCache, to_verilog
    from tilelab.sim.builders import build_verilator

    exe, hit = build_verilator(to_verilog(Counter(tag=tag)), cache=BuildCache(cache_dir))
    return str(exe), hit


def test_concurrent_builds_of_one_design_build_once(tmp_path):
    tag = random.randrange(1, 1 << 15)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        results = pool.map(_build_in_child, [(str(tmp_path), tag)] * 2)
    assert results[0][0] == results[1][0]
    assert sorted(hit for _, hit in results) == [False, True]
    # Nothing half-built was left behind.
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_verilator_fast_path_exposes_only_ports(tmp_path):
    # The ports-only build cannot reach internal signals; the full-visibility build can.
    r = simulate(Counter(), benches.count_to, args={"limit": 20}, visibility="all")
    assert r.value["count"] == 20
    exe, _ = build_verilator(to_verilog(Counter()), visibility="ports")
    vlt = (exe.parent / "ports.vlt").read_text()
    assert 'public_flat_rw -module "top" -var "count"' in vlt
    assert 'public_flat_rw -module "top" -var "clk"' in vlt


def test_waveforms_verilator_vcd_and_amaranth(tmp_path):
    vcd = tmp_path / "v.vcd"
    simulate(Counter(), benches.count_to, args={"limit": 10}, waves=vcd)
    assert "$enddefinitions" in vcd.read_text()
    vcd = tmp_path / "w.vcd"
    simulate(Counter(), benches.count_to, backend="amaranth", args={"limit": 10}, waves=vcd)
    assert "$enddefinitions" in vcd.read_text()


@pytest.mark.skipif(not _have_header("lz4.h"), reason="FST needs the lz4 headers: apt-get install liblz4-dev")
def test_waveforms_verilator_fst(tmp_path):
    fst = tmp_path / "w.fst"
    simulate(Counter(), benches.count_to, args={"limit": 10}, waves=fst)
    assert fst.read_bytes()[:1] == b"\x00"  # FST header block


@requires_icarus
def test_icarus_waveform(tmp_path):
    vcd = tmp_path / "w.vcd"
    simulate(Counter(), benches.count_to, backend="icarus", args={"limit": 10}, waves=vcd)
    assert "$enddefinitions" in vcd.read_text()


@pytest.mark.parametrize("backend", ["verilator", pytest.param("icarus", marks=requires_icarus)])
def test_users_cocotb_testbench_with_stream_helpers(backend, tmp_path):
    outcome = run_cocotb_tests(Fifo(), "tests.sim.cocotb_fifo_tests", backend=backend, workdir=tmp_path)
    assert outcome == {"fifo_passes_everything_in_order": "pass"}


def test_verilog_carries_ports_and_top_name():
    d = to_verilog(Fifo(), name="my_fifo")
    assert "module my_fifo" in d.verilog
    assert ("i__payload", 16) in d.ports and ("clk", 1) in d.ports and ("rst", 1) in d.ports
    with pytest.raises(ValueError, match=re.escape("top module name must be a Verilog identifier, not 'my-fifo'")):
        to_verilog(Fifo(), name="my-fifo")


def test_icarus_time0_fix_wakes_every_combinational_block():
    # The MAC array's drain index is a register copied into a slice of the output payload by a
    # one-statement block without Yosys's time-0 trigger: Icarus left it X until the first drain.
    from tilelab.hdl.mac import MACArray

    verilog = to_verilog(MACArray(rows=4, cols=4, drain_rows=2, b_groups=2), name="arr").verilog
    bare = re.findall(r"^\s*always @\*\n\s*(?!begin\b)([^\n;]+;)$", verilog, re.M)
    assert any("row" in stmt for stmt in bare), "the pattern this fix is for is gone; re-check the fix"
    fixed = icarus_time0_fix(verilog)
    for stmt in bare:
        assert f"initial #0 {stmt}" in fixed
    triggers = re.findall(r"reg (\\\$auto\$verilog_backend\.cc:\d+:dump_module\$\d+ ) = 0;", verilog)
    assert triggers and all(f"initial #0 {t}= 1'b1;" in fixed for t in triggers)


def test_cli_reports_a_stalled_simulation_in_one_line(monkeypatch):
    from click.testing import CliRunner

    import tilelab.api.conv
    from tilelab.cli import main

    def stalls(*args, **kwargs):
        raise SimulationStalled("no progress for 20480 cycles at cycle 24580: writer waits on CB 'out' (empty)")

    monkeypatch.setattr(tilelab.api.conv, "conv2d", stalls)
    res = CliRunner().invoke(main, ["conv", "--shape", "1,4,4,4", "--out-channels", "4", "--kernel", "1"])
    assert res.exit_code == 1, res.output
    assert "Error: SimulationStalled: no progress for 20480 cycles" in res.output
    assert "writer waits on CB 'out'" in res.output and "Traceback" not in res.output


def test_cli_help_everywhere():
    from click.testing import CliRunner

    from tilelab.cli import main

    runner = CliRunner()

    def walk(cmd, path):
        res = runner.invoke(main, [*path, "--help"])
        assert res.exit_code == 0, (path, res.output)
        assert "Usage:" in res.output
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, [*path, name])

    walk(main, [])


def test_cli_verilog_mac_array(tmp_path):
    out = tmp_path / "mac.v"
    proc = subprocess.run([sys.executable, "-m", "tilelab", "verilog", "mac-array", "--rows", "3", "--cols", "5",
                           "-o", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert "module mac_array" in text and "acc_2_4" in text and "acc_3_0" not in text
    bad = subprocess.run([sys.executable, "-m", "tilelab", "verilog", "mac-array", "--rows", "0"],
                         capture_output=True, text=True)
    assert bad.returncode != 0
    assert "rows must be an integer in [1, 256], not 0" in bad.stderr


def test_env_has_no_stray_results():
    # The cocotb result JSON is private to the run folder; simulate returns plain values.
    r = simulate(Counter(), benches.count_to, backend="amaranth", args={"limit": 5})
    json.dumps(r.value)
    assert Path(r.workdir).is_dir()
    assert os.environ.get("TILELAB_JOB") is None


def test_simulator_processes_find_this_installations_cocotb_libraries():
    """A cached Verilator binary built by another installation (its rpath elsewhere) still runs here."""
    import os

    import cocotb_tools.config

    from tilelab.sim.toolchain import cocotb_run_env

    env = cocotb_run_env(toplevel="top", test_module="m")
    assert env["LD_LIBRARY_PATH"].split(os.pathsep)[0] == str(cocotb_tools.config.libs_dir)


def test_design_cache_is_not_used_when_sources_changed_after_import(tmp_path, monkeypatch):
    """A hardware source edited while a process runs: the process converts its Verilog from the
    code in memory and neither reads nor writes the design cache (whose key is the files on disk)."""
    import tilelab
    from tilelab.drive.designs import cached_design
    from tilelab.hdl.mac import MACArray

    monkeypatch.setenv("TILELAB_CACHE_DIR", str(tmp_path))
    design = cached_design("mac", "k", lambda: MACArray(rows=2, cols=2), "mac_top")
    assert "module mac_top" in design.verilog and (tmp_path / "verilog").exists()
    written = sorted((tmp_path / "verilog").iterdir())
    monkeypatch.setattr(tilelab, "LOADED_AT", 0.0)      # every source is newer than the process
    for p in written:
        p.write_text("stale")
    again = cached_design("mac", "k", lambda: MACArray(rows=2, cols=2), "mac_top")
    assert again.verilog == design.verilog              # converted, not the stale entry
    assert sorted((tmp_path / "verilog").iterdir()) == written
