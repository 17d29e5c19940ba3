"""Networks as Ray tasks (``--workers``): the same records, outputs and ``all_bit_exact`` as a serial
run, resume, and the CLI. On the 4×4 test tile (MobileNetV2 at 16×16, 10 classes, as
``test_models_zoo``) and, for the CLI, on the default tile (ResNet-50's first layers, as ``test_run``).
"""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from tests.cases import TILE
from tilelab.cli import main as cli
from tilelab.net.backends import ExecutionError, TileBackend
from tilelab.net.executor import execute, prepare
from tilelab.pe_models.config import EltwiseConfig

#: What a parallel run may change in a record: its timings and whether the build was cached.
TIMINGS = ("wall_seconds", "run_seconds", "simulated_macs_per_second", "build_cached")


def _backend():
    return TileBackend(TILE, ops_config=EltwiseConfig(ext_bytes=16, ext_words=1 << 14))


def _untimed(records):
    return [{k: v for k, v in r.items() if k not in TIMINGS} for r in records]


@pytest.fixture(scope="module")
def mobilenet():
    return prepare("mobilenet_v2", image_size=16, seed=3, num_classes=10)


def test_parallel_run_equals_the_serial_run(mobilenet, local_ray, tmp_path):
    _, lowered, manifest = mobilenet
    serial = execute(lowered, _backend(), run_dir=tmp_path / "serial", manifest=manifest)
    parallel = execute(lowered, _backend(), run_dir=tmp_path / "parallel", manifest=manifest, workers=2)
    assert serial.all_bit_exact and parallel.all_bit_exact
    assert [r["name"] for r in parallel.records] == [s.name for s in lowered.steps]
    assert _untimed(parallel.records) == _untimed(serial.records)
    assert parallel.outputs.keys() == serial.outputs.keys()
    for name, y in serial.outputs.items():
        np.testing.assert_array_equal(parallel.outputs[name], y)
        assert parallel.outputs[name].dtype == y.dtype
    s, p = serial.summary(), parallel.summary()
    for key in ("all_bit_exact", "total_cycles", "total_macs", "mac_utilization", "max_clipped_fraction"):
        assert p[key] == s[key], key
    for i in range(len(lowered.steps)):       # the run directories hold the same outputs and records
        a = json.loads((tmp_path / "serial" / "layers" / f"{i:04d}.json").read_text())
        b = json.loads((tmp_path / "parallel" / "layers" / f"{i:04d}.json").read_text())
        assert _untimed([b]) == _untimed([a])
        np.testing.assert_array_equal(np.load(tmp_path / "parallel" / "layers" / f"{i:04d}.npy"),
                                      np.load(tmp_path / "serial" / "layers" / f"{i:04d}.npy"))


class _Stop(Exception):
    pass


def test_parallel_resume_runs_only_the_unfinished_steps(mobilenet, local_ray, tmp_path):
    _, lowered, manifest = mobilenet
    span = (lowered.index("features.1.conv.0.0"), lowered.index("features.4.conv.0.0"))
    count = span[1] - span[0]
    seen = []

    def stop_after_three(done, total, record, eta):
        seen.append(record["name"])
        if done == 3:
            raise _Stop

    with pytest.raises(_Stop):
        execute(lowered, _backend(), layers=span, run_dir=tmp_path, manifest=manifest, workers=2,
                progress=stop_after_three)
    stored = sorted(p.name for p in (tmp_path / "layers").glob("*.json"))
    assert len(stored) >= 3 and len(stored) < count
    marks = []
    resumed = execute(lowered, _backend(), layers=span, run_dir=tmp_path, manifest=manifest, resume=True,
                      workers=2, progress=lambda done, total, record, eta: marks.append(bool(record.get("resumed"))))
    assert marks.count(True) == len(stored) and marks.count(False) == count - len(stored)
    assert resumed.all_bit_exact and [r["name"] for r in resumed.records] == [
        s.name for s in lowered.steps[span[0]:span[1]]]
    whole = execute(lowered, _backend(), layers=span)
    stored_only = ("resumed", "output_sha256")   # what a record read back from the run directory adds
    assert _untimed([{k: v for k, v in r.items() if k not in stored_only} for r in resumed.records]) == _untimed(
        whole.records)


def test_more_workers_than_the_cluster_has_cpus_is_refused(mobilenet, local_ray):
    _, lowered, _ = mobilenet
    with pytest.raises(ExecutionError, match=r"^workers 3 exceeds the 2 CPUs of the Ray cluster$"):
        execute(lowered, _backend(), layers=(0, 2), workers=3)


def test_cli_run_with_workers_equals_the_serial_run(local_ray, tmp_path):
    runner = CliRunner()
    args = ["run", "resnet50", "--image-size", "32", "--layers", "0:6", "--seed", "1", "--no-plots"]
    r = runner.invoke(cli, [*args, "--out", str(tmp_path / "serial")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, [*args, "--out", str(tmp_path / "parallel"), "--workers", "2"])
    assert r.exit_code == 0, r.output
    assert "2 Ray workers" in r.stderr and "all bit-exact" in r.output
    s = json.loads((tmp_path / "serial" / "stats.json").read_text())
    p = json.loads((tmp_path / "parallel" / "stats.json").read_text())
    assert _untimed(p["layers"]) == _untimed(s["layers"]) and len(p["layers"]) == 6
    assert p["all_bit_exact"] is s["all_bit_exact"] is True and p["total_cycles"] == s["total_cycles"] > 0
    r = runner.invoke(cli, [*args, "--out", str(tmp_path / "parallel"), "--workers", "2", "--resume"])
    assert r.exit_code == 0 and r.output.count("resumed") == 6


@pytest.mark.parametrize("extra, message", [
    (["--workers", "0"], "Invalid value for '--workers': workers must be a positive integer, not 0"),
    (["--ray-address", "auto"], "--ray-address is for --workers: give the number of workers to run on the cluster"),
])
def test_cli_bad_worker_options(extra, message, tmp_path):
    r = CliRunner().invoke(cli, ["run", "resnet50", "--image-size", "32", "--out", str(tmp_path / "r"), *extra])
    assert r.exit_code == 2 and r.output == f"Error: {message}\n"
    assert not (tmp_path / "r").exists()
