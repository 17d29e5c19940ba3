"""The float requantization and zero-point padding of the golden model against onnxruntime itself.

Small ``QLinearConv`` / ``QLinearMatMul`` graphs built with ``onnx.helper``; the golden model
(int8 storage: a uint8 value ``q`` is ``q - 128``, the input zero point folded into the bias and
used as the padding) must give onnxruntime's outputs bit for bit.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from tilelab.reference import golden  # noqa: E402

# name: (activation dtype, N, C, H, W, M, K, pad, stride, group, per-channel weights)
CASES = {
    "u8_3x3": (np.uint8, 1, 8, 9, 9, 16, 3, 1, 1, 1, True),
    "s8_3x3_per_tensor": (np.int8, 2, 8, 7, 7, 8, 3, 1, 1, 1, False),
    "u8_depthwise_s2": (np.uint8, 1, 16, 11, 11, 16, 3, 1, 2, 16, True),
    "s8_grouped": (np.int8, 1, 16, 8, 8, 32, 3, 1, 1, 4, True),
    "u8_1x1_wide": (np.uint8, 1, 64, 24, 24, 128, 1, 0, 1, 1, True),
    "u8_5x5_pad2": (np.uint8, 1, 4, 10, 10, 8, 5, 2, 1, 1, True),
}


def _rng(name):
    return np.random.default_rng(zlib.crc32(name.encode()))


def _qparams(rng, dtype, m, per_channel):
    lo = 0 if dtype == np.uint8 else -128
    xs = np.float32(rng.uniform(0.002, 0.05))
    xzp = dtype(rng.integers(lo, lo + 256))
    ws = rng.uniform(0.0005, 0.02, m if per_channel else 1).astype(np.float32)
    ys = np.float32(rng.uniform(0.05, 0.5))
    yzp = dtype(rng.integers(lo, lo + 256))
    return xs, xzp, ws, ys, yzp


def _session(node, x, inits, tx):
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", tx, x.shape)],
                              [helper.make_tensor_value_info("y", tx, None)],
                              [numpy_helper.from_array(np.asarray(v), n) for n, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


def _to_int8(q, dtype):
    """A model's uint8 / int8 values as the int8 the hardware stores."""
    return (q.astype(np.int16) - (128 if dtype == np.uint8 else 0)).astype(np.int8)


@pytest.mark.parametrize("name", list(CASES))
def test_qlinearconv_matches_onnxruntime(name):
    dtype, n, c, h, w, m, k, pad, stride, group, per_channel = CASES[name]
    rng = _rng(name)
    lo = 0 if dtype == np.uint8 else -128
    tx = TensorProto.UINT8 if dtype == np.uint8 else TensorProto.INT8
    x = rng.integers(lo, lo + 256, (n, c, h, w)).astype(dtype)
    wt = rng.integers(-127, 128, (m, c // group, k, k)).astype(np.int8)
    b = rng.integers(-20000, 20000, m).astype(np.int32)
    xs, xzp, ws, ys, yzp = _qparams(rng, dtype, m, per_channel)
    inits = {"xs": xs, "xzp": xzp, "w": wt, "ws": ws if per_channel else ws[0],
             "wzp": np.zeros(m if per_channel else (), np.int8), "ys": ys, "yzp": yzp, "b": b}
    node = helper.make_node("QLinearConv", ["x", *inits], ["y"], pads=[pad] * 4,
                            strides=[stride] * 2, group=group, kernel_shape=[k, k])
    y = _session(node, x, inits, tx)

    x8 = _to_int8(x, dtype).transpose(0, 2, 3, 1)
    zp_in = int(_to_int8(np.array(xzp), dtype))
    w8 = wt.transpose(0, 2, 3, 1).copy()
    # Σ (x - zp)·w = Σ x·w - zp·Σ w over the whole window, padding included (it holds zp).
    bias = (b.astype(np.int64) - zp_in * w8.reshape(m, -1).astype(np.int64).sum(1)).astype(np.int32)
    acc = golden.conv2d(x8, w8, bias, stride=stride, padding=pad, groups=group, pad_value=zp_in)
    scale = golden.qlinear_scale(xs, ws, ys)
    out = golden.requantize_float(acc, scale, int(_to_int8(np.array(yzp), dtype)))
    np.testing.assert_array_equal(out, _to_int8(y, dtype).transpose(0, 2, 3, 1))


@pytest.mark.parametrize("dtype", [np.uint8, np.int8], ids=["u8", "s8"])
def test_qlinearmatmul_matches_onnxruntime(dtype):
    rng = _rng(f"matmul-{np.dtype(dtype).name}")
    lo = 0 if dtype == np.uint8 else -128
    tx = TensorProto.UINT8 if dtype == np.uint8 else TensorProto.INT8
    x = rng.integers(lo, lo + 256, (4, 96)).astype(dtype)
    wt = rng.integers(-127, 128, (96, 40)).astype(np.int8)          # (K, N), as MatMul takes it
    xs, xzp, ws, ys, yzp = _qparams(rng, dtype, 40, True)
    inits = {"xs": xs, "xzp": xzp, "w": wt, "ws": ws, "wzp": np.zeros(40, np.int8), "ys": ys, "yzp": yzp}
    node = helper.make_node("QLinearMatMul", ["x", *inits], ["y"])
    y = _session(node, x, inits, tx)

    zp_in = int(_to_int8(np.array(xzp), dtype))
    w8 = wt.T.copy()
    bias = (-zp_in * w8.astype(np.int64).sum(1)).astype(np.int32)
    acc = golden.linear(_to_int8(x, dtype), w8, bias)
    out = golden.requantize_float(acc, golden.qlinear_scale(xs, ws, ys), int(_to_int8(np.array(yzp), dtype)))
    np.testing.assert_array_equal(out, _to_int8(y, dtype))


def test_requantize_float_rounds_half_to_even_and_clamps():
    acc = np.array([[1, 3, 5, -1, -3, 1000, -1000, 0]], np.int32)
    out = golden.requantize_float(acc, np.float32(0.5), 0)
    np.testing.assert_array_equal(out, [[0, 2, 2, 0, -2, 127, -128, 0]])
    np.testing.assert_array_equal(golden.requantize_float(acc, np.float32(0.5), 10, relu=True),
                                  [[10, 12, 12, 10, 10, 127, 10, 10]])


@pytest.mark.parametrize("scale, text", [
    (np.float32(0.0), "not 0.0 (channel 0)"),
    (np.array([0.5, -1.0], np.float32), "not -1.0 (channel 1)"),
    (np.array([np.inf, 1.0], np.float32), "not inf (channel 0)"),
    (np.float32(1e-40), "(channel 0)"),
])
def test_requantize_float_refuses_scales_the_hardware_cannot_take(scale, text):
    with pytest.raises(ValueError, match="positive normal float32") as info:
        golden.requantize_float(np.zeros((1, 2), np.int32), scale)
    assert text in str(info.value)
