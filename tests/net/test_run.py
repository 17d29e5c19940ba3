"""Whole networks layer by layer through the RTL: bit-exact, resume, bad input, the CLI.

All runs use the default tile (32×32 MACs, 4 MiB external memory): ResNet-50's largest layers
(2.4 MB of 3×3 weights in layer4, the 2 MB fc) do not fit the small test tile's external memory,
and the default tile's Verilator model is the one the benchmarks build anyway.
"""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from tilelab.cli import main as cli
from tilelab.net.backends import ExecutionError, MeshBackend, TileBackend, make_backend
from tilelab.net.executor import RunDirError, execute, parse_layers, prepare
from tilelab.net.lowering import LoweredModel
from tilelab.pe_models.config import DEFAULT_TILE

#: ResNet-50 at 32×32: every stage and the fc, with tiny spatial sizes.
SIZE = 32


@pytest.fixture(scope="module")
def r50():
    return prepare("resnet50", image_size=SIZE, seed=1)


def _assert_exact(lowered: LoweredModel, result, names):
    assert [r["name"] for r in result.records] == list(names)
    for r in result.records:
        step = lowered.steps[r["index"]]
        assert r["bit_exact"] is True, r["name"]
        np.testing.assert_array_equal(result.outputs[r["name"]], lowered.reference[r["name"]])
        assert r["macs"] == step.macs
        if step.op in ("conv2d", "linear"):
            assert r["cycles"] >= step.macs / DEFAULT_TILE.peak_macs_per_cycle
            assert 0 < r["mac_utilization"] <= 1 and r["ext_bytes_read"] > 0 and r["ext_bytes_written"] > 0
            assert r["noc_flits"] == 0
        elif step.op != "flatten":
            assert r["cycles"] > 0


def test_bottleneck_block_bit_exact(r50):
    """layer1.0: 1×1 → 3×3 → 1×1, the projection shortcut and the add, each on the RTL."""
    _, lowered, _ = r50
    a, b = lowered.index("layer1.0.conv1"), lowered.index("layer1.0.add") + 1
    result = execute(lowered, make_backend(), layers=(a, b))
    _assert_exact(lowered, result, ["layer1.0.conv1", "layer1.0.conv2", "layer1.0.conv3", "layer1.0.downsample.0",
                                    "layer1.0.add"])
    assert result.all_bit_exact


def test_resnet50_end_to_end_bit_exact(r50, tmp_path):
    _, lowered, manifest = r50
    result = execute(lowered, make_backend(), run_dir=tmp_path, manifest=manifest)
    _assert_exact(lowered, result, [s.name for s in lowered.steps])
    summary = result.summary()
    assert summary["all_bit_exact"] and summary["total_macs"] == sum(s.macs for s in lowered.steps)
    assert summary["max_clipped_fraction"] < 0.01


def _compare_runs(a, b):
    keys = ("name", "bit_exact", "cycles", "macs", "ext_bytes_read", "ext_bytes_written", "clipped_fraction")
    assert [{k: r[k] for k in keys} for r in a.records] == [{k: r[k] for k in keys} for r in b.records]
    assert a.outputs.keys() == b.outputs.keys()
    for name in a.outputs:
        np.testing.assert_array_equal(a.outputs[name], b.outputs[name])


class Stop(Exception):
    pass


def test_resume_after_interruption_equals_unbroken_run(r50, tmp_path):
    _, lowered, manifest = r50
    span = (lowered.index("layer1.0.conv1"), lowered.index("layer1.0.downsample.0") + 1)  # 4 convs
    whole = execute(lowered, make_backend(), layers=span, run_dir=tmp_path / "whole", manifest=manifest)
    _assert_exact(lowered, whole, [s.name for s in lowered.steps[span[0]:span[1]]])

    def stop_after_two(done, total, record, eta):
        if done == 2:
            raise Stop

    with pytest.raises(Stop):
        execute(lowered, make_backend(), layers=span, run_dir=tmp_path / "cut", manifest=manifest,
                progress=stop_after_two)
    saved = sorted(p.name for p in (tmp_path / "cut" / "layers").iterdir())
    assert saved == [f"{i:04d}.{ext}" for i in (span[0], span[0] + 1) for ext in ("json", "npy")]
    seen = []
    resumed = execute(lowered, make_backend(), layers=span, run_dir=tmp_path / "cut", manifest=manifest,
                      resume=True, progress=lambda d, t, r, e: seen.append(r.get("resumed", False)))
    assert seen == [True, True, False, False]
    _compare_runs(whole, resumed)
    # Resuming a finished run runs nothing and gives the same results again.
    again = execute(lowered, _NoSimulation(), layers=span, run_dir=tmp_path / "cut", manifest=manifest, resume=True)
    _compare_runs(whole, again)


def test_one_process_per_layer_gives_the_same_results(r50):
    """The simulator servers (state carried from layer to layer) change nothing: same outputs, same cycles."""
    _, lowered, _ = r50
    span = (lowered.index("layer1.0.conv3"), lowered.index("layer1.0.add") + 1)  # conv, conv, add
    served = execute(lowered, TileBackend(persistent=True), layers=span)
    fresh = execute(lowered, TileBackend(persistent=False), layers=span)
    _assert_exact(lowered, fresh, ["layer1.0.conv3", "layer1.0.downsample.0", "layer1.0.add"])
    _compare_runs(served, fresh)


def test_layers_sharded_over_a_mesh(r50):
    """The stem pool, the first bottleneck block and the head on a 2×2 mesh of the small test tile (the
    mesh tests' build): convs over the tiles, pool / add / global pool over the nodes' element-wise
    units; bit-exact, NoC traffic where data moves."""
    from tests.cases import TILE

    _, lowered, _ = r50
    backend = MeshBackend((2, 2), TILE)
    assert backend.mesh.eltwise
    first, head = lowered.index("maxpool"), lowered.index("avgpool")
    records = []
    for span in ((first, lowered.index("layer1.0.add") + 1), (head, head + 1)):
        result = execute(lowered, backend, layers=span)
        records += result.records
        for r in result.records:
            np.testing.assert_array_equal(result.outputs[r["name"]], lowered.reference[r["name"]])
    assert [r["name"] for r in records] == ["maxpool", "layer1.0.conv1", "layer1.0.conv2", "layer1.0.conv3",
                                            "layer1.0.downsample.0", "layer1.0.add", "avgpool"]
    for r in records:
        step = lowered.steps[r["index"]]
        assert r["bit_exact"] and r["macs"] == step.macs
        if step.op == "conv2d":
            assert r["noc_flits"] > 0 and r["cycles"] >= step.macs / (4 * TILE.peak_macs_per_cycle)
        else:
            assert r["on"] == "mesh"
    pool = records[0]
    assert pool["noc_flits"] > 0 and pool["halo_bytes"] > 0   # the 3x3/2 pool's halo rows
    assert result.hardware["mesh"] == [2, 2]


class _NoSimulation(TileBackend):
    """A tile backend that fails the test if anything is simulated."""

    def run(self, step, inputs):
        raise AssertionError(f"simulated {step.name!r}")


def test_bad_runs_fail_before_any_simulation(r50, tmp_path):
    _, lowered, manifest = r50
    n = len(lowered.steps)
    with pytest.raises(ExecutionError, match=rf"layers '70:80' out of range: the model has {n} layers, "
                                             rf"need 0 <= A < B <= {n}"):
        parse_layers("70:80", n)
    with pytest.raises(ExecutionError, match=r"layers must be A:B \(step indices, B exclusive\), not '3'"):
        parse_layers("3", n)
    assert parse_layers(":5", n) == (0, 5) and parse_layers("70:", n) == (70, n)
    with pytest.raises(ExecutionError, match=r"mesh 20x20 does not fit the NoC: rows must be 1..16 and cols 1..15"):
        make_backend((20, 20))
    with pytest.raises(ValueError, match=r"unknown model 'resnet51'; known models: 'alexnet', 'efficientnet_b0'"):
        prepare("resnet51")
    with pytest.raises(ValueError, match=r"vgg16 cannot take image_size 16: at layer 'pool5'"):
        prepare("vgg16", image_size=16)
    backend = _NoSimulation()
    a = lowered.index("layer1.0.conv1")
    # A finished one-layer run to corrupt in different ways.
    run_dir = tmp_path / "run"
    execute(lowered, make_backend(), layers=(a, a + 1), run_dir=run_dir, manifest=manifest)
    with pytest.raises(RunDirError, match="already holds a run: pass resume"):
        execute(lowered, backend, layers=(a, a + 2), run_dir=run_dir, manifest=manifest)
    with pytest.raises(RunDirError, match=r"belongs to a different run: seed 1 \(this run: 2\)"):
        execute(lowered, backend, layers=(a, a + 2), run_dir=run_dir, manifest=dict(manifest, seed=2), resume=True)
    _, other, other_manifest = prepare("resnet18", image_size=SIZE, seed=1)
    with pytest.raises(RunDirError, match=r"belongs to a different run: model 'resnet50' \(this run: 'resnet18'\)"):
        execute(other, backend, run_dir=run_dir, manifest=other_manifest, resume=True)
    record = run_dir / "layers" / f"{a:04d}.json"
    good = record.read_text()
    record.write_text(good[:20])
    with pytest.raises(RunDirError, match=rf"is corrupt: layer {a} \('layer1.0.conv1'\): cannot read {a:04d}.json"):
        execute(lowered, backend, layers=(a, a + 2), run_dir=run_dir, manifest=manifest, resume=True)
    record.write_text(good)
    np.save(run_dir / "layers" / f"{a:04d}.npy", np.zeros((1, 2), np.int8))
    with pytest.raises(RunDirError, match=r"output int8 \(1, 2\), expected int8 \(1, 8, 8, 64\)"):
        execute(lowered, backend, layers=(a, a + 2), run_dir=run_dir, manifest=manifest, resume=True)
    (run_dir / "run.json").write_text("{")
    with pytest.raises(RunDirError, match="is corrupt: cannot read run.json"):
        execute(lowered, backend, layers=(a, a + 2), run_dir=run_dir, manifest=manifest, resume=True)


def test_cli_run_and_resume(tmp_path):
    runner = CliRunner()
    out, js = tmp_path / "run", tmp_path / "summary.json"
    args = ["run", "resnet50", "--image-size", "32", "--layers", "2:4", "--seed", "1", "--out", str(out)]
    r = runner.invoke(cli, [*args, "--json", str(js), "--estimate"])
    assert r.exit_code == 0, r.output
    assert "layer1.0.conv2" in r.output and "ETA" in r.output and "all bit-exact" in r.output
    assert "estimate: 2 layers, " in r.stderr and "estimate.png" in r.output
    summary = json.loads(js.read_text())
    # --estimate: tilelab estimate's cycles beside the measured ones, within its 5 % on every layer
    for record in summary["layers"]:
        assert record["estimated_cycles"] > 0 and record["bound"] is not None, record["name"]
        assert record["estimate_error"] == (record["estimated_cycles"] - record["cycles"]) / record["cycles"]
        assert abs(record["estimate_error"]) <= 0.05, record["name"]
    est = summary["estimate"]
    assert est["layers"] == 2 and est["measured_cycles"] == summary["total_cycles"]
    assert est["estimated_cycles"] == sum(r["estimated_cycles"] for r in summary["layers"])
    assert json.loads((out / "stats.json").read_text()) == summary
    for key in ("model", "layers", "all_bit_exact", "total_cycles", "total_macs", "wall_seconds"):
        assert key in summary, key
    assert summary["model"] == "resnet50" and summary["all_bit_exact"] is True and summary["fc_output"] == "int8"
    assert [r["name"] for r in summary["layers"]] == ["layer1.0.conv1", "layer1.0.conv2"]
    assert summary["total_cycles"] == sum(r["cycles"] for r in summary["layers"]) > 0
    rows = (out / "stats.csv").read_text().splitlines()
    assert rows[0].startswith("index,name,op,out,bit_exact,cycles,macs,mac_utilization") and len(rows) == 3
    assert rows[0].endswith(",estimated_cycles,estimate_error,bound")
    for png in ("utilization.png", "roofline.png", "estimate.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    r = runner.invoke(cli, args)
    assert r.exit_code == 1 and "already holds a run: pass resume (--resume)" in r.output
    r = runner.invoke(cli, [*args, "--resume"])
    assert r.exit_code == 0 and r.output.count("resumed") == 2


def test_cli_resume_runs_a_changed_stored_output_again(tmp_path):
    """A stored layer output changed on disk is named and recomputed on --resume, not fed to the later
    layers (where it would read as a hardware mismatch)."""
    runner = CliRunner()
    out = tmp_path / "run"
    args = ["run", "resnet50", "--image-size", "32", "--layers", "2:3", "--seed", "1", "--out", str(out), "--no-plots"]
    r = runner.invoke(cli, args)
    assert r.exit_code == 0, r.output
    stored = out / "layers" / "0002.npy"
    y = np.load(stored)
    good = y.copy()
    y.flat[0] ^= 1
    np.save(stored, y)
    r = runner.invoke(cli, [*args, "--resume"])
    assert r.exit_code == 0, r.output
    assert (f"warning: run directory {str(out)!r}: the stored output layers/0002.npy of layer 2 ('layer1.0.conv1') "
            f"no longer matches its record; running the layer again\n") in r.stderr
    assert "resumed" not in r.output and "all bit-exact" in r.output
    np.testing.assert_array_equal(np.load(stored), good)


def test_cli_bad_input_and_mismatch_exit_status(tmp_path, monkeypatch):
    runner = CliRunner()
    r = runner.invoke(cli, ["run", "resnet51"])
    known = "alexnet, efficientnet_b0, mobilenet_v2, resnet18, resnet50, resnext50_32x4d, shufflenet_v2, vgg16"
    assert r.exit_code == 2 and f"unknown model 'resnet51'; known models: {known}" in r.output
    r = runner.invoke(cli, ["run", "vgg16", "--image-size", "16"])
    assert r.exit_code == 2 and "vgg16 cannot take image_size 16" in r.output
    r = runner.invoke(cli, ["run", "resnet50", "--image-size", "32", "--layers", "0:99"])
    assert r.exit_code == 2 and "layers '0:99' out of range: the model has 73 layers" in r.output
    r = runner.invoke(cli, ["run", "resnet50", "--mesh", "20x20"])
    assert r.exit_code == 2 and "mesh 20x20 does not fit the NoC" in r.output
    r = runner.invoke(cli, ["run", "resnet50", "--mesh", "2by2"])
    assert r.exit_code == 2 and "mesh must look like RxC (e.g. 2x2), not '2by2'" in r.output

    # A layer whose hardware output differs from the golden: reported, exit status 1.
    from tilelab.net import backends

    real = backends.conv2d

    def off_by_one(*args, **kwargs):
        y, stats = real(*args, **kwargs)
        y = y.copy()
        y.flat[0] ^= 1
        return y, stats

    monkeypatch.setattr(backends, "conv2d", off_by_one)
    r = runner.invoke(cli, ["run", "resnet50", "--image-size", "32", "--layers", "2:3", "--out", str(tmp_path / "x"),
                            "--no-plots"])
    assert r.exit_code == 1 and "MISMATCH" in r.output and "not bit-exact: layer1.0.conv1" in r.output
    assert json.loads((tmp_path / "x" / "stats.json").read_text())["all_bit_exact"] is False


def test_cli_run_tile_option_is_checked_before_anything_runs(tmp_path):
    """`tilelab run --tile` takes the same NAME=VALUE fields as `conv` and `estimate`; a bad one is a
    one-line error (exit 2) and leaves no run directory."""
    runner = CliRunner()
    out = tmp_path / "run"
    for text, message in (("rows=0", "rows must be an integer in [1, 64], not 0"),
                          ("depthwise=banana", "depthwise must be true or false, not 'banana'"),
                          ("wide=3", "'wide=3': expected NAME=VALUE with NAME one of"),
                          ("rows=8,rows=4", "rows is given twice")):
        r = runner.invoke(cli, ["run", "resnet18", "--image-size", "32", "--tile", text, "--out", str(out)])
        assert r.exit_code == 2, (text, r.output)
        assert message in r.output and "Traceback" not in r.output
        assert not out.exists()
