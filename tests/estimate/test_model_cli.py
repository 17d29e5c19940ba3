"""Whole networks estimated step by step, and ``tilelab estimate``."""

import json

from click.testing import CliRunner

from tests.cases import TILE
from tilelab.cli import main as cli
from tilelab.estimate import estimate_model
from tilelab.net.executor import prepare


def test_resnet50_layers_are_the_run_steps():
    est = estimate_model("resnet50", image_size=32)
    _, lowered, _ = prepare("resnet50", image_size=32)
    assert [(r.name, r.op) for r in est.layers] == [(s.name, s.op) for s in lowered.steps]
    assert all(r.estimated for r in est.layers)
    units = {r.op: r.unit for r in est.layers}
    assert units == {"conv2d": "tile", "linear": "tile", "max_pool": "eltwise", "add": "eltwise",
                     "global_avg_pool": "eltwise", "flatten": "host"}
    summary = est.summary()
    assert summary["total_macs"] == sum(s.macs for s in lowered.steps)
    assert summary["total_cycles"] == summary["tile_cycles"] + summary["eltwise_cycles"]
    assert sum(summary["bounds"].values()) == summary["total_cycles"]
    for r in est.layers:
        if r.unit != "host":
            assert r.cycles >= max(r.physical.values()) > 0 and r.physical_ratio >= 1


def test_layers_that_do_not_fit_are_reported_not_estimated():
    # the small test tile's 512 KiB of external memory holds no 224x224 VGG layer
    est = estimate_model("vgg16", config=TILE)
    first = est.layers[0]
    assert not first.estimated and first.cycles == 0 and "external memory" in first.note
    assert first.name in est.summary()["layers_not_estimated"]


def test_cli_table_and_json(tmp_path):
    out = tmp_path / "est.json"
    r = CliRunner().invoke(cli, ["estimate", "resnet18", "--image-size", "64", "--tile",
                                 "rows=16,cols=16,ext_bytes=32", "--json", str(out)])
    assert r.exit_code == 0, r.output
    assert "resnet18: image 64x64, batch 1; 32 layers on one 16x16 tile (32-byte ports)" in r.output
    assert "layer4.1.conv2" in r.output and "total " in r.output
    data = json.loads(out.read_text())
    assert data["tile"].startswith("act_lane_bytes=32768,cols=16") and len(data["layers"]) == 32
    assert data["layers"][0]["name"] == "conv1" and data["layers"][0]["bound"]


def test_cli_bad_input_is_one_line_and_exit_2():
    runner = CliRunner()
    for args, message in [
        (["resnet51"], "unknown model 'resnet51'; known models: alexnet, efficientnet_b0, mobilenet_v2, resnet18, "
                       "resnet50, resnext50_32x4d, shufflenet_v2, vgg16"),
        (["vgg16", "--image-size", "16"], "vgg16 cannot take image_size 16"),
        (["resnet50", "--tile", "rows=99"], "invalid --tile: rows must be an integer in [1, 64], not 99"),
        (["resnet50", "--tile", "colour=3"], "invalid --tile: 'colour=3': expected NAME=VALUE"),
        (["resnet50", "--batch", "0"], "batch must be a positive integer, not 0"),
        (["resnet50", "--mesh", "2by2"], "invalid --mesh: mesh must look like RxC (e.g. 2x2), not '2by2'"),
        (["resnet50", "--mesh", "20x20"], "invalid --mesh: mesh 20x20 does not fit the NoC"),
    ]:
        r = runner.invoke(cli, ["estimate", *args])
        assert r.exit_code == 2 and message in r.output, (args, r.output)
        assert len(r.output.strip().splitlines()) == 1, r.output


def test_mesh_estimate_shards_the_conv_layers():
    from tilelab.pe_models.config import MeshConfig

    mesh = MeshConfig(rows=2, cols=2, tile=TILE, eltwise=True)
    est = estimate_model("resnet18", image_size=32, config=TILE, mesh=mesh)
    convs = [r for r in est.layers if r.op in ("conv2d", "linear")]
    assert convs and all(r.unit == "mesh" for r in convs)
    assert all(r.mapping in ("height/multicast", "block/multicast", "width/multicast") for r in convs if r.estimated)
    assert any(r.estimated for r in convs)
    assert all(not r.estimated and "no model yet" in r.note for r in est.layers if r.op in ("add", "max_pool"))
    assert est.summary()["mesh"] == [2, 2]


def test_estimate_of_an_onnx_model_has_the_run_steps(tmp_path):
    """``tilelab estimate FILE.onnx``: the steps ``tilelab run FILE.onnx`` runs, on the tile it builds
    (onnxruntime's requantization), the quantized add without a model named."""
    import pytest

    pytest.importorskip("onnxruntime")
    from tests.net.test_onnx_import import cnn, quantize
    from tilelab.estimate import estimate_onnx
    from tilelab.net.onnx import load_onnx

    path = quantize(cnn("cnn-estimate"), tmp_path)
    steps = load_onnx(path).steps
    est = estimate_onnx(path)
    assert est.tile.float_requant and [(r.name, r.op) for r in est.layers] == [(s.name, s.op) for s in steps]
    convs = [r for r in est.layers if r.op in ("conv2d", "linear")]
    assert convs and all(r.estimated and r.cycles >= r.physical["compute"] for r in convs)
    js = tmp_path / "est.json"
    r = CliRunner().invoke(cli, ["estimate", str(path), "--json", str(js)])
    assert r.exit_code == 0, r.output
    summary = json.loads(js.read_text())
    assert [x["cycles"] for x in summary["layers"]] == [x.cycles for x in est.layers]
    assert summary["total_cycles"] == sum(x.cycles for x in est.layers) > 0
    r = CliRunner().invoke(cli, ["estimate", str(path), "--image-size", "32"])
    assert r.exit_code == 2 and "an ONNX model's input shape is fixed" in r.output
    r = CliRunner().invoke(cli, ["estimate", str(tmp_path / "missing.onnx")])
    assert r.exit_code == 2 and "cannot read ONNX model" in r.output and "Traceback" not in r.output
