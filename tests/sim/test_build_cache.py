"""Builds say what they are doing, reuse Verilator's run-time objects, and the cache can be listed and cleared."""

import io
import json
import random

from click.testing import CliRunner

from tests.sim import benches
from tests.sim.designs import Counter
from tilelab.cli import main
from tilelab.sim import BuildCache, simulate
from tilelab.sim.cache import clear_cache, list_cache
from tilelab.sim.progress import BuildProgress


def test_progress_lines_without_a_terminal():
    out = io.StringIO()
    with BuildProgress("tile (Verilator)", stream=out, enabled=True) as progress:
        progress.phase("Verilator (Verilog to C++)")
        progress.phase("C++ compile (make -j2)")
    lines = out.getvalue().splitlines()
    assert lines[0] == "tilelab: building tile (Verilator): Verilator (Verilog to C++) ..."
    assert lines[1] == "tilelab: building tile (Verilator): C++ compile (make -j2) ..."
    assert lines[2].startswith("tilelab: built tile (Verilator) in ")
    assert "Verilator (Verilog to C++) 0 s, C++ compile (make -j2) 0 s" in lines[2]
    assert set(progress.seconds) == {"Verilator (Verilog to C++)", "C++ compile (make -j2)"}


def test_progress_silenced(monkeypatch):
    monkeypatch.setenv("TILELAB_BUILD_PROGRESS", "0")
    out = io.StringIO()
    with BuildProgress("x", stream=out) as progress:
        progress.phase("a")
    assert out.getvalue() == ""


def test_failed_build_says_so():
    out = io.StringIO()
    try:
        with BuildProgress("x", stream=out, enabled=True) as progress:
            progress.phase("a")
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert out.getvalue().splitlines()[-1].startswith("tilelab: failed to build x in ")


def test_second_design_reuses_runtime_objects_and_runs(tmp_path, capfd):
    """Two different designs in a fresh cache: the first stores Verilator's run-time objects, the
    second build restores them and its simulator runs correctly."""
    cache = BuildCache(tmp_path)
    tag = random.randrange(1, 1 << 14)
    first = simulate(Counter(tag=tag), benches.count_to, backend="verilator", args={"limit": 50}, cache=cache)
    assert first.value["count"] == 50 and not first.build_cached
    runtime = [e for e in list_cache(tmp_path) if e.kind == "verilator-runtime"]
    assert len(runtime) == 1
    stored = sorted(p.name for p in runtime[0].path.glob("*.o"))
    assert "verilated.o" in stored and "verilated_vpi.o" in stored
    r = simulate(Counter(tag=tag + 1), benches.count_to, backend="verilator", args={"limit": 100}, cache=cache)
    assert r.value["count"] == 100 and not r.build_cached
    assert len([e for e in list_cache(tmp_path) if e.kind == "verilator-runtime"]) == 1
    err = capfd.readouterr().err
    assert "tilelab: building counter" in err or "tilelab: building top" in err
    info = [json.loads((e.path / "info.json").read_text()) for e in list_cache(tmp_path) if e.kind == "verilator"]
    assert all(set(i["phase_seconds"]) == {"Verilator (Verilog to C++)", "C++ compile (make -j2)"} for i in info)


def test_cache_ls_and_clear(tmp_path, monkeypatch):
    monkeypatch.setenv("TILELAB_CACHE_DIR", str(tmp_path))
    build = tmp_path / "verilator-0123456789abcdef01234567"
    build.mkdir()
    (build / "sim").write_bytes(b"x" * 2_000_000)
    (build / "BUILD_OK").write_text("ok\n")
    (build / "info.json").write_text(json.dumps({"kind": "verilator", "top": "tilelab_tb", "label": "tile rows=4"}))
    unfinished = tmp_path / "verilator-ffffffffffffffffffffffff"
    unfinished.mkdir()                                   # a build in progress or crashed: not listed
    (tmp_path / "verilog").mkdir()
    (tmp_path / "verilog" / "mesh-abc.v").write_text("module m; endmodule\n")
    runner = CliRunner()
    res = runner.invoke(main, ["cache", "ls"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert f"build cache {tmp_path}: 2 entries, 2.0 MB" in res.output
    rows = res.output.splitlines()[2:]
    assert any(r.split()[:3] == ["verilator", "tile", "2.0"] for r in rows)
    assert any(r.split()[:2] == ["verilog", "mesh"] for r in rows)
    res = runner.invoke(main, ["cache", "clear"], catch_exceptions=False)
    assert res.exit_code == 0 and "removed 2 entries (2.0 MB)" in res.output
    assert not build.exists() and not (tmp_path / "verilog" / "mesh-abc.v").exists() and unfinished.exists()
    assert list_cache(tmp_path) == [] and clear_cache(tmp_path) == (0, 0)


def test_build_refuses_bad_options_before_building():
    runner = CliRunner()
    for args, message in ((["build", "--tile", "rows=0"], "invalid --tile: rows must be an integer in [1, 64], not 0"),
                          (["build", "--mesh", "2y2"], "invalid --mesh: mesh must look like RxC"),
                          (["build", "--tile", "colour=3"], "invalid --tile: 'colour=3': expected NAME=VALUE")):
        res = runner.invoke(main, args)
        assert res.exit_code == 2 and message in res.output, res.output


def test_build_ahead_then_already_built():
    """``tilelab build`` on the test tile (the suite's one tile build): the second call finds it."""
    from tests.cases import TILE

    fields = ",".join(f"{k}={int(v) if isinstance(v, bool) else v}" for k, v in TILE.__dict__.items()
                      if getattr(TILE, k) != getattr(type(TILE)(), k))
    runner = CliRunner()
    first = runner.invoke(main, ["build", "--tile", fields], catch_exceptions=False)
    assert first.exit_code == 0, first.output
    second = runner.invoke(main, ["build", "--tile", fields], catch_exceptions=False)
    assert second.exit_code == 0 and "tile " in second.output and "already built" in second.output
