"""The golden ops of onnxruntime's quantized kernels (``golden.onnx_ops``) against onnxruntime itself.

Each test builds one graph of many single-op nodes with seeded random scales and zero points
(uint8 and int8), runs it in onnxruntime once and compares every output bit for bit with the
golden op on int8 storage (uint8 ``q`` stored as ``q - 128``): at least 10**5 values per op.
"""

from __future__ import annotations

import functools
import zlib
from fractions import Fraction

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from tilelab.reference import golden  # noqa: E402

_TYPES = {np.dtype(np.uint8): TensorProto.UINT8, np.dtype(np.int8): TensorProto.INT8,
          np.dtype(np.float32): TensorProto.FLOAT}


def _rng(name):
    return np.random.default_rng(zlib.crc32(name.encode()))


def _stored(q, unsigned):
    return (np.asarray(q).astype(np.int16) - (128 if unsigned else 0)).astype(np.int8)


def _zp(z, unsigned):
    return int(_stored(z, unsigned))


class _Graph:
    """Many nodes in one onnxruntime session: ``add`` returns the output's name."""

    def __init__(self):
        self.nodes, self.inits, self.feeds, self.outs = [], {}, {}, []

    def const(self, value):
        name = f"c{len(self.inits)}"
        self.inits[name] = np.asarray(value)
        return name

    def feed(self, value):
        name = f"x{len(self.feeds)}"
        self.feeds[name] = value
        return name

    def add(self, op, inputs, *, domain="com.microsoft", **attrs):
        out = f"y{len(self.outs)}"
        self.nodes.append(helper.make_node(op, inputs, [out], domain=domain, **attrs))
        self.outs.append(out)
        return out

    def run(self):
        graph = helper.make_graph(
            self.nodes, "g",
            [helper.make_tensor_value_info(k, _TYPES[v.dtype], v.shape) for k, v in self.feeds.items()],
            [onnx.ValueInfoProto(name=o) for o in self.outs],
            [numpy_helper.from_array(v, k) for k, v in self.inits.items()])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                        helper.make_opsetid("com.microsoft", 1)])
        options = ort.SessionOptions()
        options.log_severity_level = 3
        sess = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        return dict(zip(self.outs, sess.run(self.outs, self.feeds), strict=True))


def _params(rng, unsigned, count=3, lo_scale=0.001, hi_scale=0.2):
    dtype = np.uint8 if unsigned else np.int8
    lo = 0 if unsigned else -128
    scales = [np.float32(rng.uniform(lo_scale, hi_scale)) for _ in range(count)]
    zps = [dtype(rng.integers(lo, lo + 256)) for _ in range(count)]
    return dtype, lo, scales, zps


@pytest.mark.parametrize("op", ["QLinearAdd", "QLinearMul"])
def test_binary_ops_match_onnxruntime(op):
    rng, g, cases = _rng(op), _Graph(), []
    for k in range(16):
        u = k % 2 == 0
        dtype, lo, (sa, sb, sy), (za, zb, zy) = _params(rng, u)
        a = rng.integers(lo, lo + 256, (1, 8, 16, 64)).astype(dtype)
        b = rng.integers(lo, lo + 256, a.shape).astype(dtype)
        out = g.add(op, [g.feed(a), g.const(sa), g.const(za), g.feed(b), g.const(sb), g.const(zb), g.const(sy),
                         g.const(zy)])
        cases.append((out, u, a, b, sa, za, sb, zb, sy, zy))
    ys = g.run()
    fn = golden.qlinear_add if op == "QLinearAdd" else golden.qlinear_mul
    total = 0
    for out, u, a, b, sa, za, sb, zb, sy, zy in cases:
        s = functools.partial(_zp, unsigned=u)
        ours = fn(_stored(a, u), sa, s(za), _stored(b, u), sb, s(zb), sy, s(zy), unsigned=u)
        np.testing.assert_array_equal(ours, _stored(ys[out], u))
        total += ours.size
    assert total >= 100_000


@pytest.mark.parametrize("b_shape", [(1,), (64,), (1, 1, 1, 64)], ids=["scalar", "per-column", "broadcast-4d"])
def test_qlinear_add_with_a_constant_matches_onnxruntime(b_shape):
    # a bias after MatMul ((N, K) + (K,)), a one-value b (MLAS's scalar kernel: no FMA for b)
    rng, g, cases = _rng(f"add-const-{b_shape}"), _Graph(), []
    for k in range(16):
        u = k % 2 == 0
        dtype, lo, (sa, sb, sy), (za, zb, zy) = _params(rng, u)
        a = rng.integers(lo, lo + 256, (2, 8, 16, 64)).astype(dtype)
        b = rng.integers(lo, lo + 256, b_shape).astype(dtype)
        out = g.add("QLinearAdd", [g.feed(a), g.const(sa), g.const(za), g.const(b), g.const(sb), g.const(zb),
                                   g.const(sy), g.const(zy)])
        cases.append((out, u, a, b, sa, za, sb, zb, sy, zy))
    ys = g.run()
    total = 0
    for out, u, a, b, sa, za, sb, zb, sy, zy in cases:
        s = functools.partial(_zp, unsigned=u)
        ours = golden.qlinear_add(_stored(a, u), sa, s(za), _stored(b, u), sb, s(zb), sy, s(zy), unsigned=u)
        np.testing.assert_array_equal(ours, _stored(ys[out], u))
        total += ours.size
    assert total >= 100_000


def test_global_average_pool_matches_onnxruntime():
    rng, g, cases = _rng("gap"), _Graph(), []
    for k in range(32):
        u = k % 2 == 0
        dtype, lo, (sx, sy), (zx, zy) = _params(rng, u, 2)
        h, w = (3, 3) if k % 3 else (7, 5)
        x = rng.integers(lo, lo + 256, (4, 1024, h, w)).astype(dtype)
        cases.append((g.add("QLinearGlobalAveragePool", [g.feed(x), g.const(sx), g.const(zx), g.const(sy), g.const(zy)],
                            channels_last=0), u, x, sx, zx, sy, zy))
    ys = g.run()
    total = 0
    for out, u, x, sx, zx, sy, zy in cases:
        ours = golden.qlinear_global_avg_pool(_stored(x, u).transpose(0, 2, 3, 1), sx, int(_stored(zx, u)), sy,
                                              int(_stored(zy, u)))
        np.testing.assert_array_equal(ours, _stored(ys[out], u).transpose(0, 2, 3, 1))
        total += ours.size
    assert total >= 100_000


def test_average_pool_matches_onnxruntime():
    rng, g, cases = _rng("avgpool"), _Graph(), []
    for k in range(8):
        u = k % 2 == 0
        cip = k % 4 < 2
        dtype, lo, (sx, sy), (zx, zy) = _params(rng, u, 2)
        x = rng.integers(lo, lo + 256, (1, 16, 32, 32)).astype(dtype)
        out = g.add("QLinearAveragePool", [g.feed(x), g.const(sx), g.const(zx), g.const(sy), g.const(zy)],
                    kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1], count_include_pad=int(cip))
        cases.append((out, u, cip, x, sx, zx, sy, zy))
    ys = g.run()
    total = 0
    for out, u, cip, x, sx, zx, sy, zy in cases:
        ours = golden.qlinear_avg_pool(_stored(x, u).transpose(0, 2, 3, 1), (3, 3), stride=(1, 1), padding=(1, 1),
                                       count_include_pad=cip, x_scale=sx, x_zero_point=int(_stored(zx, u)),
                                       y_scale=sy, y_zero_point=int(_stored(zy, u)), unsigned=u)
        np.testing.assert_array_equal(ours, _stored(ys[out], u).transpose(0, 2, 3, 1))
        total += ours.size
    assert total >= 100_000


@pytest.mark.parametrize("op", ["QLinearSigmoid", "QLinearLeakyRelu"])
def test_table_ops_match_onnxruntime(op):
    # every 8-bit input of 400 parameter sets: the table is exhaustive for its parameters
    rng, g, cases = _rng(op), _Graph(), []
    for k in range(400):
        u = k % 2 == 0
        dtype, lo, (sx, sy), (zx, zy) = _params(rng, u, 2, 0.002, 0.12)
        if op == "QLinearSigmoid":
            sy = np.float32(rng.uniform(0.5, 1.5) / 256)
        alpha = float(np.float32(rng.uniform(0.01, 0.3)))
        x = np.arange(lo, lo + 256).astype(dtype).reshape(1, 256)
        attrs = {"alpha": alpha} if op == "QLinearLeakyRelu" else {}
        cases.append((g.add(op, [g.feed(x), g.const(sx), g.const(zx), g.const(sy), g.const(zy)], **attrs),
                      u, x, sx, zx, sy, zy, alpha))
    ys = g.run()
    for out, u, x, sx, zx, sy, zy, alpha in cases:
        s = functools.partial(_zp, unsigned=u)
        if op == "QLinearSigmoid":
            table = golden.qlinear_sigmoid_table(sx, s(zx), sy, s(zy), unsigned=u)
        else:
            table = golden.qlinear_leaky_relu_table(alpha, sx, s(zx), sy, s(zy), unsigned=u)
        assert table.dtype == np.int8 and table.shape == (256,)
        np.testing.assert_array_equal(golden.apply_table(_stored(x, u), table), _stored(ys[out], u))


def test_concat_matches_onnxruntime():
    rng, g, cases = _rng("concat"), _Graph(), []
    for k in range(16):
        u = k % 2 == 0
        dtype, lo, (s0, s1, sy), (z0, z1, zy) = _params(rng, u)
        if k % 4 == 1:
            s0, z0 = sy, zy                                 # an input copied as it is
        x0 = rng.integers(lo, lo + 256, (1, 24, 16, 16)).astype(dtype)
        x1 = rng.integers(lo, lo + 256, (1, 8, 16, 16)).astype(dtype)
        out = g.add("QLinearConcat", [g.const(sy), g.const(zy), g.feed(x0), g.const(s0), g.const(z0), g.feed(x1),
                                      g.const(s1), g.const(z1)], axis=1)
        cases.append((out, u, x0, x1, s0, z0, s1, z1, sy, zy))
    ys = g.run()
    total = 0
    for out, u, x0, x1, s0, z0, s1, z1, sy, zy in cases:
        s = functools.partial(_zp, unsigned=u)
        nhwc = [_stored(x, u).transpose(0, 2, 3, 1) for x in (x0, x1)]
        ours = golden.qlinear_concat(nhwc, [s0, s1], [s(z0), s(z1)], sy, s(zy), unsigned=u)
        np.testing.assert_array_equal(ours, _stored(ys[out], u).transpose(0, 2, 3, 1))
        total += ours.size
    assert total >= 100_000


def test_quantize_and_dequantize_match_onnxruntime():
    rng, g, cases = _rng("qdq"), _Graph(), []
    for k in range(16):
        u = k % 2 == 0
        dtype, lo, (s,), (z,) = _params(rng, u, 1, 0.005, 0.1)
        x = (rng.standard_normal((1, 8, 32, 32)) * rng.uniform(0.5, 8)).astype(np.float32)
        x.flat[:4] = [0.5 * s, -0.5 * s, 1.5 * s, 1e9]      # ties and saturation
        q = rng.integers(lo, lo + 256, x.shape).astype(dtype)
        cases.append((g.add("QuantizeLinear", [g.feed(x), g.const(s), g.const(z)], domain=""),
                      g.add("DequantizeLinear", [g.feed(q), g.const(s), g.const(z)], domain=""), u, x, q, s, z))
    ys = g.run()
    total = 0
    for qout, dout, u, x, q, s, z in cases:
        zs = int(_stored(z, u))
        np.testing.assert_array_equal(golden.quantize_linear(x, s, zs, unsigned=u), _stored(ys[qout], u))
        deq = golden.dequantize_linear(_stored(q, u), s, zs)
        np.testing.assert_array_equal(deq.view(np.int32), ys[dout].view(np.int32))
        total += x.size
    assert total >= 100_000


def _round_f32(value):
    """The float32 nearest to the Fraction ``value`` (ties to even), by exact comparison."""
    r = np.float32(float(value))
    best = None
    for c in (np.nextafter(r, np.float32(-np.inf)), r, np.nextafter(r, np.float32(np.inf))):
        d = abs(Fraction(float(c)) - value)
        even = int(np.array(c).view(np.int32)) % 2 == 0
        if best is None or d < best[0] or (d == best[0] and even):
            best = (d, c)
    return best[1]


def test_fma_rounds_once_exactly():
    rng = _rng("fma")
    a = rng.uniform(-4, 4, 3000).astype(np.float32)
    b = rng.uniform(-4, 4, 3000).astype(np.float32)
    # c cancels most of a·b, so the exact sum needs more bits than float32 and often sits near a tie
    c = (-(a.astype(np.float64) * b)).astype(np.float32)
    c[::2] = np.nextafter(c[::2], np.float32(np.inf))
    c[1::3] = rng.uniform(-4, 4, c[1::3].size).astype(np.float32)
    got = golden.fma_f32(a, b, c)
    want = [_round_f32(Fraction(float(x)) * Fraction(float(y)) + Fraction(float(z)))
            for x, y, z in zip(a, b, c, strict=True)]
    np.testing.assert_array_equal(got, np.array(want, np.float32))
    # a product just above a tie: one rounding goes up where a product and an add would not
    p, q = np.float32(1 + 2**-12), np.float32(1 + 2**-12 + 2**-23)
    exact = Fraction(float(p)) * Fraction(float(q)) - Fraction(2**-11)
    assert golden.fma_f32(p, q, np.float32(-(2**-11))) == _round_f32(exact)
