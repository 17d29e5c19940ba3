"""Bad ONNX input gets a clear one-line error before any simulation; ``tilelab run model.onnx``."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from click.testing import CliRunner  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from tests.cases import TILE  # noqa: E402
from tests.net.test_onnx_import import Builder, branches, cnn, quantize, session  # noqa: E402
from tilelab.api.conv import Requant  # noqa: E402
from tilelab.cli import main as cli  # noqa: E402
from tilelab.net.backends import ExecutionError, TileBackend  # noqa: E402
from tilelab.net.onnx import OnnxError, load_onnx  # noqa: E402
from tilelab.net.onnx.importer import SUPPORTED_OPS  # noqa: E402
from tilelab.net.onnx.steps import RTL_MISSING  # noqa: E402

SUPPORTED = ", ".join(SUPPORTED_OPS)


@pytest.fixture(scope="module")
def cnn_path(tmp_path_factory):
    return quantize(cnn("cnn-errors"), tmp_path_factory.mktemp("onnx"))


def _raises(text, fn, *args, **kw):
    with pytest.raises(OnnxError) as info:
        fn(*args, **kw)
    assert str(info.value) == text


def test_truncated_and_missing_files(cnn_path, tmp_path):
    bad = tmp_path / "half.onnx"
    data = cnn_path.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    _raises(f"{str(bad)!r} is not a readable ONNX model (truncated or corrupt file)", load_onnx, bad)
    missing = tmp_path / "missing.onnx"
    _raises(f"cannot read ONNX model {str(missing)!r}: No such file or directory", load_onnx, missing)


def test_unsupported_op_names_node_op_and_supported_ops(tmp_path):
    b = Builder("tanh", (1, 3, 8, 8))
    _raises(f"node 'Tanh_2' (op 'Tanh') is not supported; supported ops: {SUPPORTED}", load_onnx,
            quantize(b.model(b.op("Tanh", [b.conv("x", 3, 4)])), tmp_path))
    b = Builder("float", (1, 3, 8, 8))
    _raises("node 'Conv_1' (op 'Conv') is not supported (a float op onnxruntime did not fuse into a quantized one: "
            "tilelab runs quantized models, QDQ from onnxruntime.quantization.quantize_static or QOperator); "
            f"supported ops: {SUPPORTED}", load_onnx, b.model(b.conv("x", 3, 4)))


def test_dynamic_shapes(tmp_path):
    b = Builder("dyn", ("N", 3, "H", 8))
    model = b.model(b.conv("x", 3, 4))
    _raises("input 'x' has a dynamic dimension 0 ('N'): tilelab needs static shapes (pass batch=N, --batch N, "
            "to fix a symbolic batch)", load_onnx, model)
    _raises("input 'x' has a dynamic dimension 2 ('H'): tilelab needs static shapes", load_onnx, model, batch=2)
    _raises("batch must be a positive integer, not 0", load_onnx, model, batch=0)


def test_input_of_the_wrong_shape_or_dtype(cnn_path):
    m = load_onnx(cnn_path)
    prefix = "input 'x' must be a float32 array of shape (1, 3, 12, 12) (the model's own layout), not"
    _raises(f"{prefix} float64 (1, 3, 12, 12)", m.to_input, np.zeros((1, 3, 12, 12)))
    _raises(f"{prefix} float32 (1, 12, 12, 3)", m.to_input, np.zeros((1, 12, 12, 3), np.float32))
    _raises(f"{prefix} list", m.to_input, [0.0])


def _qlinear_conv(tmp_path, *, pads=(1, 1, 1, 1), wzp=0, ws=0.01):
    w = np.ones((4, 2, 3, 3), np.int8)
    inits = {"xs": np.float32(0.02), "xz": np.uint8(128), "w": w, "ws": np.float32(ws), "wz": np.int8(wzp),
             "ys": np.float32(0.1), "yz": np.uint8(0)}
    node = helper.make_node("QLinearConv", ["x", *inits], ["y"], kernel_shape=[3, 3], pads=list(pads), name="conv")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.UINT8, [1, 2, 6, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.UINT8, None)],
                              [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    path = tmp_path / "conv.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


def test_asymmetric_pads_and_weight_zero_points(tmp_path):
    _raises("node 'conv' (QLinearConv): asymmetric pads [0, 0, 1, 1] (top, left, bottom, right) are not supported "
            "yet; tilelab pads both sides alike", load_onnx, _qlinear_conv(tmp_path, pads=(0, 0, 1, 1)))
    _raises("node 'conv' (QLinearConv): weight zero points must be 0 (symmetric weights), not 3", load_onnx,
            _qlinear_conv(tmp_path, wzp=3))
    # x_scale · w_scale / y_scale below the smallest normal float32: the pack stage cannot take it
    _raises("node 'conv' (QLinearConv): output scale must be a positive normal float32 (at least "
            "1.1754943508222875e-38), not 4.0000064664151903e-39 (channel 0)", load_onnx,
            _qlinear_conv(tmp_path, ws=2e-38))


def test_tile_backend_refuses_steps_the_rtl_lacks(tmp_path, monkeypatch):
    m = load_onnx(quantize(branches("branches-rtl"), tmp_path))
    backend = TileBackend(TILE)
    onnx_ops = [s for s in m.steps if s.op in ("qlinear_table", "qlinear_mul", "qlinear_concat", "qlinear_avg_pool")]
    assert len(onnx_ops) == 4
    backend.check(m.steps)      # every step has its RTL now
    # a step in RTL_MISSING is refused by name, before any simulation
    monkeypatch.setitem(RTL_MISSING, "qlinear_avg_pool", "float32 average pooling")
    with pytest.raises(ExecutionError) as info:
        backend.check(m.steps)
    assert str(info.value) == (
        "step 'AveragePool_6' (op 'qlinear_avg_pool'): the RTL has no float32 average pooling yet; the golden "
        "backend (--sim golden) runs it without hardware")
    convs = [s for s in m.steps if s.op == "conv2d"]
    if "scale" not in {f.name for f in dataclasses.fields(Requant)}:     # until the pack stage's float mode lands
        with pytest.raises(ExecutionError) as info:
            backend.check(convs)
        assert str(info.value) == (f"step {convs[0].name!r} (op 'conv2d'): the tile's float requantization "
                                   f"(onnxruntime's) is not in this build's RTL interface yet")
    else:
        backend.check(convs)


def test_cli_run_golden_with_input_and_save(cnn_path, tmp_path):
    m = load_onnx(cnn_path)
    x = m.random_input() * np.float32(0.5)
    np.save(tmp_path / "x.npy", x)
    out, js = tmp_path / "run", tmp_path / "s.json"
    r = CliRunner().invoke(cli, ["run", str(cnn_path), "--sim", "golden", "--input", str(tmp_path / "x.npy"),
                                 "--save", str(tmp_path / "y.npy"), "--out", str(out), "--json", str(js),
                                 "--no-plots"])
    assert r.exit_code == 0, r.output
    y = np.load(tmp_path / "y.npy")
    np.testing.assert_array_equal(y, session(cnn_path).run(None, {"x": x})[0])
    summary = json.loads(js.read_text())
    assert summary["all_bit_exact"] and summary["hardware"]["backend"] == "golden"
    assert summary["onnx"]["host_tail"] == ["com.microsoft.QLinearSoftmax", "DequantizeLinear"]
    assert "host (not simulated): com.microsoft.QLinearSoftmax, DequantizeLinear" in r.output
    # without --input: the seeded random input (zlib.crc32 of the model name)
    r = CliRunner().invoke(cli, ["run", str(cnn_path), "--sim", "golden", "--save", str(tmp_path / "y2.npy"),
                                 "--out", str(tmp_path / "run2"), "--no-plots"])
    assert r.exit_code == 0, r.output
    np.testing.assert_array_equal(np.load(tmp_path / "y2.npy"), session(cnn_path).run(None, {"x": m.random_input()})[0])


def test_cli_bad_onnx_input(cnn_path, tmp_path, monkeypatch):
    runner = CliRunner()
    np.save(tmp_path / "bad.npy", np.zeros((1, 3, 8, 8), np.float32))
    r = runner.invoke(cli, ["run", str(cnn_path), "--sim", "golden", "--input", str(tmp_path / "bad.npy")])
    assert r.exit_code == 2
    assert ("input 'x' must be a float32 array of shape (1, 3, 12, 12) (the model's own layout), not float32 "
            "(1, 3, 8, 8)") in r.output
    r = runner.invoke(cli, ["run", str(cnn_path), "--image-size", "32"])
    assert r.exit_code == 2 and "an ONNX model's input shape is fixed; --image-size does not apply" in r.output
    r = runner.invoke(cli, ["run", str(tmp_path / "none.onnx")])
    assert r.exit_code == 2 and "cannot read ONNX model" in r.output
    r = runner.invoke(cli, ["run", "resnet18", "--save", str(tmp_path / "y.npy")])
    assert r.exit_code == 2 and "--input, --save and --sim golden are for ONNX models" in r.output
    # on the hardware: a step the RTL lacks is refused before any simulation
    monkeypatch.setitem(RTL_MISSING, "qlinear_add", "float32 residual add")
    r = runner.invoke(cli, ["run", str(cnn_path), "--sim", "amaranth", "--out", str(tmp_path / "hw"),
                            "--tile", "rows=4,cols=4"])
    assert r.exit_code == 1
    assert "(op 'qlinear_add'): the RTL has no float32 residual add yet" in r.output
    assert not (tmp_path / "hw").exists()
