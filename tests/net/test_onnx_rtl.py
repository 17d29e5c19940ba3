"""An imported ONNX model on the RTL (the 4×4 test tile, Verilator): every layer bit-exact, output == onnxruntime.

Uses the tile's float requantization and zero-point padding (``Requant(scale=...)``,
``conv2d(pad_value=...)``).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from tests.cases import TILE  # noqa: E402
from tests.net.test_onnx_import import Builder, quantize, session  # noqa: E402
from tilelab.net.backends import TileBackend  # noqa: E402
from tilelab.net.executor import execute  # noqa: E402
from tilelab.net.onnx import load_onnx  # noqa: E402
from tilelab.pe_models.config import EltwiseConfig  # noqa: E402

#: The element-wise unit of tests/ops (the same Verilator build).
UNIT = EltwiseConfig(ext_bytes=16, ext_words=1 << 14)


def small_cnn(name):
    """Conv/ReLU (uint8: padding with the zero point), MaxPool, depthwise conv, GAP (a conv), Flatten, Gemm."""
    b = Builder(name, (1, 4, 8, 8))
    x = b.op("Relu", [b.conv("x", 4, 8)])
    x = b.op("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
    x = b.conv(x, 8, 8, group=8)
    x = b.op("GlobalAveragePool", [x])
    x = b.op("Flatten", [x])
    return b.model(b.op("Gemm", [x, b.weight((6, 8)), b.weight((6,), 0.1)], transB=1))


@pytest.mark.parametrize("activations", ["u8", "s8"])
def test_quantized_cnn_on_the_tile_equals_onnxruntime(tmp_path, activations):
    path = quantize(small_cnn(f"rtl-{activations}"), tmp_path, activations=activations)
    m = load_onnx(path)
    assert [s.op for s in m.steps] == ["conv2d", "max_pool", "conv2d", "conv2d", "flatten", "linear"]
    result = execute(m, TileBackend(TILE, sim="verilator", ops_config=UNIT))
    assert result.all_bit_exact, [r["name"] for r in result.records if not r["bit_exact"]]
    assert all(r["cycles"] > 0 for r in result.records if r["op"] != "flatten")
    np.testing.assert_array_equal(m.to_output(result.outputs[m.output_step]),
                                  session(path).run(None, {"x": m.random_input()})[0])


def residual_cnn(name):
    """Conv/ReLU, a residual Add (QLinearAdd of two computed tensors), Sigmoid (QLinearSigmoid), LeakyReLU,
    GAP, Flatten, Gemm."""
    b = Builder(name, (1, 4, 6, 6))
    x = b.op("Relu", [b.conv("x", 4, 8)])
    y = b.op("Relu", [b.conv(x, 8, 8)])
    x = b.op("Add", [x, b.conv(y, 8, 8, k=1, pad=0)])
    x = b.op("Sigmoid", [x])
    x = b.op("LeakyRelu", [b.conv(x, 8, 8)], alpha=0.1)
    x = b.op("GlobalAveragePool", [x])
    x = b.op("Flatten", [x])
    return b.model(b.op("Gemm", [x, b.weight((5, 8)), b.weight((5,), 0.1)], transB=1))


@pytest.mark.parametrize("activations", ["u8", "s8"])
def test_residual_add_and_sigmoid_on_the_rtl_equal_onnxruntime(tmp_path, activations):
    path = quantize(residual_cnn(f"rtl-residual-{activations}"), tmp_path, activations=activations)
    m = load_onnx(path)
    ops = [s.op for s in m.steps]
    assert ops.count("qlinear_add") == 1 and ops.count("qlinear_table") == 2, ops
    result = execute(m, TileBackend(TILE, sim="verilator", ops_config=UNIT))
    assert result.all_bit_exact, [r["name"] for r in result.records if not r["bit_exact"]]
    assert all(r["cycles"] > 0 for r in result.records if r["op"] != "flatten")
    np.testing.assert_array_equal(m.to_output(result.outputs[m.output_step]),
                                  session(path).run(None, {"x": m.random_input()})[0])


def silu_cnn(name):
    """Conv, SiLU (QLinearSigmoid, then QLinearMul of two computed tensors), GAP, Flatten, Gemm."""
    b = Builder(name, (1, 4, 6, 6))
    x = b.conv("x", 4, 8)
    x = b.op("Mul", [x, b.op("Sigmoid", [x])])
    x = b.op("GlobalAveragePool", [b.conv(x, 8, 8)])
    x = b.op("Flatten", [x])
    return b.model(b.op("Gemm", [x, b.weight((5, 8)), b.weight((5,), 0.1)], transB=1))


@pytest.mark.parametrize("activations", ["u8", "s8"])
def test_silu_on_the_rtl_equals_onnxruntime(tmp_path, activations):
    path = quantize(silu_cnn(f"rtl-silu-{activations}"), tmp_path, activations=activations)
    m = load_onnx(path)
    ops = [s.op for s in m.steps]
    assert ops.count("qlinear_mul") == 1 and ops.count("qlinear_table") == 1, ops
    result = execute(m, TileBackend(TILE, sim="verilator", ops_config=UNIT))
    assert result.all_bit_exact, [r["name"] for r in result.records if not r["bit_exact"]]
    np.testing.assert_array_equal(m.to_output(result.outputs[m.output_step]),
                                  session(path).run(None, {"x": m.random_input()})[0])


def concat_cnn(name):
    """Two convs and a pooled branch, Concat (QLinearConcat: copies and requantized inputs), GAP, Flatten, Gemm."""
    b = Builder(name, (1, 4, 6, 6))
    a = b.op("Relu", [b.conv("x", 4, 8)])
    c = b.conv("x", 4, 5, k=1, pad=0)
    d = b.op("MaxPool", [b.conv("x", 4, 3)], kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1])
    x = b.op("Concat", [a, c, d], axis=1)
    x = b.op("GlobalAveragePool", [b.conv(x, 16, 8)])
    x = b.op("Flatten", [x])
    return b.model(b.op("Gemm", [x, b.weight((5, 8)), b.weight((5,), 0.1)], transB=1))


@pytest.mark.parametrize("activations", ["u8", "s8"])
def test_concat_on_the_rtl_equals_onnxruntime(tmp_path, activations):
    path = quantize(concat_cnn(f"rtl-concat-{activations}"), tmp_path, activations=activations)
    m = load_onnx(path)
    assert [s.op for s in m.steps].count("qlinear_concat") == 1
    result = execute(m, TileBackend(TILE, sim="verilator", ops_config=UNIT))
    assert result.all_bit_exact, [r["name"] for r in result.records if not r["bit_exact"]]
    np.testing.assert_array_equal(m.to_output(result.outputs[m.output_step]),
                                  session(path).run(None, {"x": m.random_input()})[0])


def test_add_of_a_constant_bias_on_the_rtl_equals_onnxruntime(tmp_path):
    from tests.net.test_onnx_import import matmul_add

    path = quantize(matmul_add("rtl-matmul-add"), tmp_path)
    m = load_onnx(path)
    add = [s for s in m.steps if s.op == "qlinear_add"]
    assert len(add) == 1 and "b_const" in add[0].params
    result = execute(m, TileBackend(TILE, sim="verilator", ops_config=UNIT))
    assert result.all_bit_exact, [r["name"] for r in result.records if not r["bit_exact"]]
    np.testing.assert_array_equal(m.to_output(result.outputs[m.output_step]),
                                  session(path).run(None, {"x": m.random_input()})[0])


@pytest.mark.parametrize("activations", ["u8", "s8"])
def test_every_onnx_step_on_the_rtl_equals_onnxruntime(tmp_path, activations):
    """Grouped conv, SiLU (QLinearSigmoid · QLinearMul), QLinearConcat, QLinearAveragePool without the padding in
    the count, dilation, MaxPool with padding, Flatten + Gemm: all on the tile and the element-wise unit."""
    from tests.net.test_onnx_import import branches

    path = quantize(branches(f"rtl-branches-{activations}"), tmp_path, activations=activations)
    m = load_onnx(path)
    assert {"qlinear_table", "qlinear_mul", "qlinear_concat", "qlinear_avg_pool"} <= {s.op for s in m.steps}
    result = execute(m, TileBackend(TILE, sim="verilator", ops_config=UNIT))
    assert result.all_bit_exact, [r["name"] for r in result.records if not r["bit_exact"]]
    assert all(r["cycles"] > 0 for r in result.records if r["op"] != "flatten")
    # onnxruntime with its int8 QDQ fusions (its default x86 session keeps two int8 convs in float:
    # test_onnx_import.test_optimized_model_against_the_original_under_default_settings)
    np.testing.assert_array_equal(m.to_output(result.outputs[m.output_step]),
                                  session(path, int8_fusions=True).run(None, {"x": m.random_input()})[0])
