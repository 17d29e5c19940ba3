"""The golden model against independent, straightforward Python-loop implementations."""

import math
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.cases import CASE_IDS, CONV_CASES
from tilelab.reference import golden

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def wrap32(value: int) -> int:
    return (value + 2**31) % 2**32 - 2**31


def int8(rng, shape):
    return rng.integers(-128, 128, shape, dtype=np.int8)


# ----------------------------------------------------------------------------------------------
# reference implementations: nested loops on Python ints (arbitrary precision, floor >>)


def conv2d_loops(x, w, bias, *, stride, padding, dilation, groups):
    n, h, wd, cin = x.shape
    cout, kh, kw, cg = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    wo = (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    per_group = cout // groups
    out = np.zeros((n, ho, wo, cout), dtype=np.int64)
    for b in range(n):
        for oh in range(ho):
            for ow in range(wo):
                for co in range(cout):
                    group = co // per_group
                    acc = 0 if bias is None else int(bias[co])
                    for i in range(kh):
                        for j in range(kw):
                            ih, iw = oh * sh - ph + i * dh, ow * sw - pw + j * dw
                            if 0 <= ih < h and 0 <= iw < wd:
                                for c in range(cg):
                                    acc += int(x[b, ih, iw, group * cg + c]) * int(w[co, i, j, c])
                    out[b, oh, ow, co] = wrap32(acc)
    return out


def requant_one(acc, m, s, zp, relu):
    t = ((acc * m + (1 << (s - 1))) >> s) + zp
    if relu:
        t = max(t, zp)
    return min(max(t, -128), 127)


def pool_loops(x, k, stride, pad, op, count_include_pad=True):
    n, h, w, c = x.shape
    ho, wo = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    out = np.zeros((n, ho, wo, c), dtype=np.int64)
    for b in range(n):
        for oh in range(ho):
            for ow in range(wo):
                for ch in range(c):
                    values, count = [], 0
                    for i in range(k):
                        for j in range(k):
                            ih, iw = oh * stride - pad + i, ow * stride - pad + j
                            inside = 0 <= ih < h and 0 <= iw < w
                            values.append(int(x[b, ih, iw, ch]) if inside else None)
                            count += inside or count_include_pad
                    if op == "max":
                        out[b, oh, ow, ch] = max(v for v in values if v is not None)
                    else:
                        total = sum(v for v in values if v is not None)
                        # round half up, written differently from the golden: floor(mean + 1/2)
                        out[b, oh, ow, ch] = math.floor(total / count + 0.5)
    return out


# ----------------------------------------------------------------------------------------------
# conv2d and linear


@pytest.mark.parametrize(
    "shape, cout, k, stride, padding, dilation, groups",
    [
        ((1, 5, 5, 3), 4, 3, (1, 1), (0, 0), (1, 1), 1),
        ((2, 7, 6, 4), 6, 3, (2, 2), (1, 1), (1, 1), 1),
        ((1, 9, 9, 2), 3, 3, (1, 2), (2, 1), (2, 2), 1),
        ((1, 6, 6, 4), 6, 3, (1, 1), (1, 1), (1, 1), 2),  # grouped
        ((2, 6, 5, 4), 4, 3, (1, 1), (1, 1), (1, 1), 4),  # depthwise
        ((1, 6, 6, 3), 6, 3, (2, 1), (1, 1), (1, 1), 3),  # depthwise, channel multiplier 2
        ((1, 8, 8, 2), 2, 5, (3, 3), (2, 2), (1, 1), 1),
        ((1, 4, 4, 5), 7, 1, (2, 2), (0, 0), (1, 1), 1),  # 1×1 stride 2 (ResNet v1 downsampling)
    ],
)
def test_conv2d_matches_loops(shape, cout, k, stride, padding, dilation, groups):
    rng = np.random.default_rng(sum(shape) + cout + k)
    x = int8(rng, shape)
    w = int8(rng, (cout, k, k, shape[3] // groups))
    bias = rng.integers(-(2**20), 2**20, cout, dtype=np.int32)
    for b in (None, bias):
        got = golden.conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
        want = conv2d_loops(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
        assert got.dtype == np.int32
        np.testing.assert_array_equal(got, want)


@FAST
@given(
    n=st.integers(1, 2),
    hw=st.tuples(st.integers(1, 7), st.integers(1, 7)),
    groups=st.sampled_from([1, 2, 3]),
    cg=st.integers(1, 3),
    og=st.integers(1, 3),
    k=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    padding=st.tuples(st.integers(0, 2), st.integers(0, 2)),
    dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)),
    seed=st.integers(0, 2**16),
)
def test_conv2d_random_shapes(n, hw, groups, cg, og, k, stride, padding, dilation, seed):
    for axis in range(2):
        if hw[axis] + 2 * padding[axis] < dilation[axis] * (k[axis] - 1) + 1:
            return  # output would be empty; covered by the error tests
    rng = np.random.default_rng(seed)
    x = int8(rng, (n, *hw, groups * cg))
    w = int8(rng, (groups * og, *k, cg))
    bias = rng.integers(INT32_MIN, INT32_MAX, groups * og, dtype=np.int32, endpoint=True)
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    np.testing.assert_array_equal(golden.conv2d(x, w, bias, **kwargs), conv2d_loops(x, w, bias, **kwargs))


def test_conv2d_bias_wraps_at_32_bits():
    x = np.full((1, 1, 1, 1), 1, dtype=np.int8)
    w = np.full((2, 1, 1, 1), 127, dtype=np.int8)
    bias = np.array([INT32_MAX, INT32_MIN], dtype=np.int32)
    got = golden.conv2d(x, w, bias)
    assert got.tolist() == [[[[INT32_MIN + 126, INT32_MIN + 127]]]]


def test_conv2d_errors():
    x = np.zeros((1, 4, 4, 4), dtype=np.int8)
    w = np.zeros((8, 3, 3, 4), dtype=np.int8)
    with pytest.raises(TypeError, match=re.escape("x must have dtype 'int8', not 'float32'")):
        golden.conv2d(x.astype(np.float32), w)
    with pytest.raises(
        ValueError,
        match=re.escape(
            "w must have shape ('Cout', 'Kh', 'Kw', 2) for x with 4 channels and groups 2, not (8, 3, 3, 4)"
        ),
    ):
        golden.conv2d(x, w, groups=2)
    with pytest.raises(
        ValueError, match=re.escape("bias must have shape (8,) (one value per output channel), not (4,)")
    ):
        golden.conv2d(x, w, np.zeros(4, dtype=np.int32))
    with pytest.raises(TypeError, match=re.escape("bias must have dtype 'int32', not 'int64'")):
        golden.conv2d(x, w, np.zeros(8, dtype=np.int64))
    with pytest.raises(ValueError, match=re.escape("output height -2 is less than 1")):
        golden.conv2d(x, np.zeros((1, 7, 1, 4), dtype=np.int8))
    with pytest.raises(
        ValueError, match=re.escape("stride must be a positive integer or a (height, width) pair")
    ):
        golden.conv2d(x, w, stride=0)


def test_linear_matches_loops_and_wraps():
    rng = np.random.default_rng(1)
    x, w = int8(rng, (3, 10)), int8(rng, (4, 10))
    bias = rng.integers(-1000, 1000, 4, dtype=np.int32)
    want = [
        [int(bias[o]) + sum(int(x[n, k]) * int(w[o, k]) for k in range(10)) for o in range(4)]
        for n in range(3)
    ]
    assert golden.linear(x, w, bias).tolist() == want
    assert golden.linear(x, w).dtype == np.int32
    # 131073 products of (-128)·(-128) = 2**31 + 2**14: one past the int32 range, wraps to negative
    k = 2**17 + 1
    big = np.full((1, k), -128, dtype=np.int8)
    assert golden.linear(big, big).tolist() == [[wrap32(k * 2**14)]] == [[INT32_MIN + 2**14]]
    with pytest.raises(
        ValueError, match=re.escape("w must have shape ('Nout', 10) for x with 10 features, not (4, 9)")
    ):
        golden.linear(x, w[:, :9])


# ----------------------------------------------------------------------------------------------
# requantize


def test_requantize_rounds_half_up_with_floor_shift():
    acc = np.array([1, -1, 3, -3, 5, -5, 2, -2, 0], dtype=np.int32)
    # s = 1: x / 2 rounded half towards +inf
    assert golden.requantize(acc, 1, 1).tolist() == [1, 0, 2, -1, 3, -2, 1, -1, 0]
    # s = 2: x / 4 -> 0.25, -0.25, 0.75, -0.75, 1.25, -1.25, 0.5, -0.5, 0
    assert golden.requantize(acc, 1, 2).tolist() == [0, 0, 1, -1, 1, -1, 1, 0, 0]


def test_requantize_full_width_extremes():
    acc = np.array([INT32_MIN, INT32_MAX, INT32_MIN, -1], dtype=np.int32)
    for m in (INT32_MIN, INT32_MAX, -1, 1):
        for s in (1, 31, 40, 61, 62):
            got = golden.requantize(acc, m, s)
            assert got.tolist() == [requant_one(int(a), m, s, 0, False) for a in acc], (m, s)
    # (-2**31)·(-2**31) = 2**62, + 2**61, >> 62 = 1: needs every one of the 64 bits
    assert golden.requantize(np.array([INT32_MIN], np.int32), INT32_MIN, 62).tolist() == [1]


def test_requantize_relu_zero_point_and_clamp():
    acc = np.arange(-300, 300, 7, dtype=np.int32)
    for zp in (-128, -20, 0, 17, 127):
        for relu in (False, True):
            got = golden.requantize(acc, 3, 2, zp, relu=relu)
            assert got.dtype == np.int8
            assert got.tolist() == [requant_one(int(a), 3, 2, zp, relu) for a in acc], (zp, relu)
    got = golden.requantize(np.array([-1000, -50, 50, 1000], np.int32), 1, 1, -20, relu=True)
    assert got.tolist() == [-20, -20, 5, 127]


def test_requantize_per_channel_and_bias():
    rng = np.random.default_rng(2)
    acc = rng.integers(INT32_MIN, INT32_MAX, (3, 4, 5), dtype=np.int32, endpoint=True)
    m = rng.integers(INT32_MIN, INT32_MAX, 5, dtype=np.int32, endpoint=True)
    s = np.array([1, 20, 33, 50, 62], dtype=np.int32)
    bias = rng.integers(INT32_MIN, INT32_MAX, 5, dtype=np.int32, endpoint=True)
    got = golden.requantize(acc, m, s, 3, bias=bias, relu=True)
    want = np.vectorize(
        lambda a, c: requant_one(wrap32(int(a) + int(bias[c])), int(m[c]), int(s[c]), 3, True),
        otypes=[np.int64],
    )(acc, np.arange(5))
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(shift=0), ValueError, "shift must lie in [1, 62], not 0"),
        (dict(shift=63), ValueError, "shift must lie in [1, 62], not 63"),
        (
            dict(multiplier=2**31),
            ValueError,
            "multiplier must lie in [-2147483648, 2147483647], not 2147483648",
        ),
        (dict(zero_point=128), ValueError, "zero_point must be an integer in [-128, 127], not 128"),
        (dict(multiplier=0.5), TypeError, "multiplier must be an integer or an integer numpy array, not 0.5"),
        (
            dict(shift=np.array([1, 2])),
            ValueError,
            "shift must be a scalar or have shape (3,) (one value per channel), not (2,)",
        ),
        (dict(acc=np.zeros(3, np.float64)), TypeError, "acc must have an integer dtype, not 'float64'"),
        (
            dict(acc=np.array([0, 2**31, 0])),
            ValueError,
            "acc values must lie in the int32 range [-2147483648, 2147483647], not 2147483648",
        ),
    ],
)
def test_requantize_errors(kwargs, error, message):
    args = dict(acc=np.zeros(3, np.int32), multiplier=1, shift=1, zero_point=0) | kwargs
    with pytest.raises(error, match=re.escape(message)):
        golden.requantize(args.pop("acc"), args.pop("multiplier"), args.pop("shift"), **args)


def test_quantize_multiplier():
    for scale in (1e-6, 0.001, 0.3, 0.5, 0.99999999999, 1.0, 3.7, 1000.0):
        m, s = golden.quantize_multiplier(scale)
        assert 2**30 <= m < 2**31 and 1 <= s <= 62
        assert abs(m / 2**s - scale) <= scale * 2**-30
    assert golden.quantize_multiplier(-0.75) == (-(3 * 2**29), 31)
    assert golden.quantize_multiplier(0.0) == (0, 1)
    m, s = golden.quantize_multiplier(2.0**-40)  # beyond s = 62: M shrinks
    assert (m, s) == (2**22, 62)
    with pytest.raises(
        ValueError, match=re.escape("scale must be less than 2**30 in magnitude, not 10000000000.0")
    ):
        golden.quantize_multiplier(1e10)


@pytest.mark.parametrize("per_channel", [True, False])
@pytest.mark.parametrize("relu", [False, True])
def test_choose_requant_uses_range_with_little_clipping(per_channel, relu):
    rng = np.random.default_rng(3)
    scales = np.array([1.0, 30.0, 3000.0, 2e6])
    gauss = rng.normal(0, 1, (4000, 4)) * scales
    heavy = rng.laplace(0, 1, (4000, 4)) * scales
    for acc in (gauss.astype(np.int32), heavy.astype(np.int32), (gauss + 5 * scales).astype(np.int32)):
        m, s = golden.choose_requant(acc, per_channel=per_channel, relu=relu)
        assert golden.clipped_fraction(acc, m, s, relu=relu) < 0.01
        out = golden.requantize(acc, m, s, relu=relu)
        if per_channel:
            assert np.abs(out.astype(int)).max(axis=0).min() >= 100  # every channel uses the range
        else:
            assert np.abs(out.astype(int)).max() >= 100
    zeros = np.zeros((10, 2), np.int32)
    m, s = golden.choose_requant(zeros)
    assert golden.clipped_fraction(zeros, m, s) == 0.0
    negative = -np.arange(1, 21, dtype=np.int32).reshape(10, 2)  # ReLU zeroes every output anyway
    m, s = golden.choose_requant(negative, relu=True)
    assert golden.requantize(negative, m, s, relu=True).tolist() == np.zeros((10, 2)).tolist()


def test_choose_requant_with_bias_and_errors():
    acc = np.arange(-1000, 1000, dtype=np.int32).reshape(-1, 1)
    bias = np.array([10**6], np.int32)
    m, s = golden.choose_requant(acc, bias=bias, percentile=100)
    out = golden.requantize(acc, m, s, bias=bias)
    assert out.max() == 127 and golden.clipped_fraction(acc, m, s, bias=bias) == 0.0
    with pytest.raises(ValueError, match=re.escape("percentile must be a number in (0, 100], not 0")):
        golden.choose_requant(acc, percentile=0)
    with pytest.raises(ValueError, match=re.escape("target_max must be at most 255, not 300")):
        golden.choose_requant(acc, target_max=300)


# ----------------------------------------------------------------------------------------------
# element-wise and pooling


def test_relu_and_flatten():
    x = np.array([[[[-5, 0, 3, -128, 127]]]], dtype=np.int8)
    assert golden.relu(x).tolist() == [[[[0, 0, 3, 0, 127]]]]
    assert golden.relu(x, zero_point=-10).tolist() == [[[[-5, 0, 3, -10, 127]]]]
    assert golden.flatten(np.arange(24, dtype=np.int8).reshape(1, 2, 3, 4)).tolist() == [list(range(24))]


@pytest.mark.parametrize("k, stride, pad", [(2, 2, 0), (3, 2, 1), (3, 1, 1), (3, 3, 0), (1, 1, 0), (2, 1, 1)])
def test_pooling_matches_loops(k, stride, pad):
    rng = np.random.default_rng(k * 10 + stride + pad)
    x = int8(rng, (2, 7, 6, 3))
    x[0, 0, 0, :] = -128  # a padded -128 must not be confused with a real one
    np.testing.assert_array_equal(
        golden.max_pool2d(x, k, stride=stride, padding=pad), pool_loops(x, k, stride, pad, "max")
    )
    for include in (True, False):
        got = golden.avg_pool2d(x, k, stride=stride, padding=pad, count_include_pad=include)
        assert got.dtype == np.int8
        np.testing.assert_array_equal(got, pool_loops(x, k, stride, pad, "avg", include))


def test_avg_pool_rounding_is_half_up():
    # windows of 2 and of 4 values; sums chosen to land on .5 and on both sides of it
    x = np.array([[[[-3], [0], [3], [0], [-1], [0], [1], [0]]]], dtype=np.int8)  # (1, 1, 8, 1)
    assert golden.avg_pool2d(x, (1, 2), stride=(1, 2)).ravel().tolist() == [-1, 2, 0, 1]  # -1.5 1.5 -0.5 0.5
    y = np.array([[[[-5], [-6], [-7], [-2], [127], [127], [-128], [-128]]]], dtype=np.int8)
    assert golden.avg_pool2d(y, (1, 1)).ravel().tolist() == y.ravel().tolist()
    z = np.array([[[[-5], [0], [0], [0], [-6], [0], [0], [0], [-7], [0], [0], [0]]]], dtype=np.int8)
    assert golden.avg_pool2d(z, (1, 4)).ravel().tolist() == [-1, -1, -2]  # -1.25 -1.5 -1.75


def test_global_avg_pool_matches_loops():
    rng = np.random.default_rng(4)
    x = int8(rng, (2, 5, 3, 4))
    got = golden.global_avg_pool(x)
    assert got.shape == (2, 1, 1, 4) and got.dtype == np.int8
    want = [[math.floor(int(x[b, :, :, c].astype(int).sum()) / 15 + 0.5) for c in range(4)] for b in range(2)]
    assert got.reshape(2, 4).tolist() == want
    assert golden.global_avg_pool(np.full((1, 7, 7, 1), 127, np.int8)).item() == 127
    assert golden.global_avg_pool(np.full((1, 7, 7, 1), -128, np.int8)).item() == -128


def test_pool_errors():
    x = np.zeros((1, 4, 4, 1), np.int8)
    with pytest.raises(
        ValueError, match=re.escape("padding height must be at most half the window height 3 (<= 1), not 2")
    ):
        golden.max_pool2d(x, 3, padding=2)
    with pytest.raises(ValueError, match=re.escape("output width 0 is less than 1: input width 4")):
        golden.avg_pool2d(x, (1, 5))
    with pytest.raises(
        ValueError, match=re.escape("x must have 4 dimensions (N, H, W, C), not shape (4, 4)")
    ):
        golden.global_avg_pool(x[0, :, :, 0])


def add_loops(a, b, am, ash, bm, bsh, zp, azp, bzp, relu):
    out = []
    for va, vb in zip(a.ravel().tolist(), b.ravel().tolist(), strict=True):
        ta = ((va - azp) * am + (1 << (ash - 1))) >> ash
        tb = ((vb - bzp) * bm + (1 << (bsh - 1))) >> bsh
        t = ta + tb + zp
        if relu:
            t = max(t, zp)
        out.append(min(max(t, -128), 127))
    return np.array(out).reshape(a.shape)


@FAST
@given(
    am=st.integers(INT32_MIN, INT32_MAX),
    bm=st.integers(INT32_MIN, INT32_MAX),
    ash=st.integers(1, 62),
    bsh=st.integers(1, 62),
    zps=st.tuples(st.integers(-128, 127), st.integers(-128, 127), st.integers(-128, 127)),
    relu=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_add_requant_matches_loops(am, bm, ash, bsh, zps, relu, seed):
    rng = np.random.default_rng(seed)
    a, b = int8(rng, (2, 3, 3, 4)), int8(rng, (2, 3, 3, 4))
    a[0, 0, 0, 0], b[0, 0, 0, 0] = -128, 127  # the widest differences from the zero points
    zp, azp, bzp = zps
    kw = dict(
        a_mult=am, a_shift=ash, b_mult=bm, b_shift=bsh, zero_point=zp, a_zero_point=azp, b_zero_point=bzp
    )
    got = golden.add_requant(a, b, **kw, relu=relu)
    np.testing.assert_array_equal(got, add_loops(a, b, am, ash, bm, bsh, zp, azp, bzp, relu))


def test_add_requant_is_within_one_step_of_real_sum():
    rng = np.random.default_rng(5)
    a, b = int8(rng, (4000,)).reshape(1, 10, 10, 40), int8(rng, (4000,)).reshape(1, 10, 10, 40)
    scale_a, scale_b, scale_out = 0.02, 0.05, 0.06
    am, ash = golden.quantize_multiplier(scale_a / scale_out)
    bm, bsh = golden.quantize_multiplier(scale_b / scale_out)
    got = golden.add_requant(
        a, b, a_mult=am, a_shift=ash, b_mult=bm, b_shift=bsh, zero_point=3, a_zero_point=-4
    )
    real = ((a.astype(float) + 4) * scale_a + b * scale_b) / scale_out + 3
    want = np.clip(np.floor(real + 0.5), -128, 127)
    assert np.abs(got - want).max() <= 1


def test_add_requant_per_channel_and_errors():
    a = np.full((1, 1, 1, 2), 100, np.int8)
    b = np.full((1, 1, 1, 2), 100, np.int8)
    got = golden.add_requant(
        a, b, a_mult=np.array([1, 3]), a_shift=np.array([1, 2]), b_mult=1, b_shift=2, relu=True
    )
    assert got.ravel().tolist() == [50 + 25, 75 + 25]
    with pytest.raises(
        ValueError, match=re.escape("b must have the shape of a (1, 1, 1, 2), not (1, 1, 2, 1)")
    ):
        golden.add_requant(a, b.reshape(1, 1, 2, 1), a_mult=1, a_shift=1, b_mult=1, b_shift=1)
    with pytest.raises(ValueError, match=re.escape("b_shift must lie in [1, 62], not 0")):
        golden.add_requant(a, b, a_mult=1, a_shift=1, b_mult=1, b_shift=0)
    with pytest.raises(
        ValueError, match=re.escape("a_zero_point must be an integer in [-128, 127], not -129")
    ):
        golden.add_requant(a, b, a_mult=1, a_shift=1, b_mult=1, b_shift=1, a_zero_point=-129)


# ----------------------------------------------------------------------------------------------
# batch norm


def batch_norm_int_loops(x, gamma, beta, eps, g):
    """The eight documented steps on Python ints (no width limits), math.isqrt for the root."""
    f, r = golden.BN_MEAN_FRAC_BITS, golden.BN_INVSTD_FRAC_BITS
    n = x.shape[0] * x.shape[1] * x.shape[2]
    out = np.zeros(x.shape, dtype=np.int64)
    for c in range(x.shape[3]):
        values = [int(v) for v in x[..., c].ravel()]
        s1, s2 = sum(values), sum(v * v for v in values)
        mean = (s1 * 2**f + n // 2) // n
        ssd = (n * s2 - s1 * s1 + n // 2) // n
        var = (ssd * 2 ** (2 * f) + n // 2) // n
        inv = math.isqrt(2 ** (2 * f + 2 * r) // (var + eps))
        a = int(gamma[c]) * inv
        t = f + g + r
        ys = [min(max(((v * 2**f - mean) * a + 2 ** (t - 1) >> t) + int(beta[c]), -128), 127) for v in values]
        out[..., c] = np.array(ys).reshape(x.shape[:3])
    return out


def test_isqrt_is_exact():
    rng = np.random.default_rng(6)
    values = np.concatenate(
        [np.arange(200), rng.integers(0, 2**62, 500), [2**62 - 1, 2**60, 2**62, 2**63 - 1]]
    )
    got = golden.isqrt(values.astype(np.int64))
    assert got.tolist() == [math.isqrt(int(v)) for v in values]


@pytest.mark.parametrize("g", [0, 8, 16])
def test_batch_norm_train_matches_integer_steps(g):
    rng = np.random.default_rng(7 + g)
    x = int8(rng, (2, 5, 4, 6))
    x[..., 1] = 17  # constant channel: variance 0, only eps keeps the root finite
    x[..., 2] = np.where(rng.random((2, 5, 4)) < 0.5, -128, 127)  # the largest variance
    x[..., 3] = 100 + rng.integers(0, 2, (2, 5, 4))  # large mean, tiny variance
    gamma = np.array([2**15 - 1, -(2**15), 300, 5000, -7, 1024])
    beta = np.array([0, 5, -3, INT32_MAX, INT32_MIN, 20])
    got = golden.batch_norm_train(x, gamma, beta, eps=3, gamma_frac_bits=g)
    assert got.dtype == np.int8
    np.testing.assert_array_equal(got, batch_norm_int_loops(x, gamma, beta, 3, g))


@pytest.mark.parametrize(
    "shape, spread", [((8, 14, 14, 16), 40.0), ((4, 7, 7, 32), 4.0), ((2, 28, 28, 3), 100.0)]
)
def test_batch_norm_train_close_to_float(shape, spread):
    rng = np.random.default_rng(int(spread))
    means = rng.uniform(-30, 30, shape[-1])
    x = np.clip(np.round(rng.normal(means, spread, shape)), -128, 127).astype(np.int8)
    gamma = rng.integers(1024, 8192, shape[-1])
    beta = rng.integers(-40, 40, shape[-1])
    got = golden.batch_norm_train(x, gamma, beta)  # eps 1 = 2**-16, G = 8
    ref = golden.batch_norm_float(x, gamma / 2**8, beta, eps=2.0**-16)
    want = np.clip(np.floor(ref + 0.5), -128, 127)
    diff = np.abs(got.astype(int) - want)
    assert diff.max() <= 1
    assert np.mean(diff == 0) >= 0.99


def test_batch_norm_float_matches_definition():
    x = np.array([1.0, 2.0, 3.0, 6.0]).reshape(2, 1, 2, 1)
    y = golden.batch_norm_float(x, [2.0], [1.0], eps=0.0)
    mean, std = 3.0, math.sqrt((4 + 1 + 0 + 9) / 4)
    np.testing.assert_allclose(y.ravel(), [2 * (v - mean) / std + 1 for v in (1, 2, 3, 6)])


def test_batch_norm_train_errors():
    x = np.zeros((1, 2, 2, 3), np.int8)
    ok = np.ones(3, np.int64)
    with pytest.raises(ValueError, match=re.escape("gamma must lie in [-32768, 32767], not 32768")):
        golden.batch_norm_train(x, np.full(3, 2**15), ok)
    with pytest.raises(
        ValueError, match=re.escape("beta must have shape (3,) (one value per channel), not (2,)")
    ):
        golden.batch_norm_train(x, ok, ok[:2])
    with pytest.raises(ValueError, match=re.escape("eps must be a positive integer, not 0")):
        golden.batch_norm_train(x, ok, ok, eps=0)
    with pytest.raises(ValueError, match=re.escape("gamma_frac_bits must be at most 16, not 17")):
        golden.batch_norm_train(x, ok, ok, gamma_frac_bits=17)
    big = np.zeros((1, 4097, 4096, 1), np.int8)
    with pytest.raises(
        ValueError, match=re.escape("batch norm needs N·H·W <= 16777216 values per channel, not 16781312")
    ):
        golden.batch_norm_train(big, ok[:1], ok[:1])


def test_fold_batch_norm_matches_float():
    rng = np.random.default_rng(8)
    channels = 8
    acc = rng.integers(-(2**20), 2**20, (500, channels), dtype=np.int32)
    bias = rng.integers(-5000, 5000, channels, dtype=np.int32)
    acc_scale = rng.uniform(1e-5, 1e-4, channels)
    gamma, beta = rng.uniform(0.5, 2, channels) * rng.choice([-1, 1], channels), rng.uniform(-1, 1, channels)
    z = acc_scale * (acc.astype(float) + bias)
    mean, var = (
        z.mean(axis=0) + rng.uniform(-0.1, 0.1, channels),
        z.var(axis=0) * rng.uniform(0.8, 1.2, channels),
    )
    out_scale, zp = 0.05, -7
    folded = golden.fold_batch_norm(
        gamma, beta, mean, var, acc_scale=acc_scale, out_scale=out_scale, bias=bias
    )
    assert folded.bias.dtype == folded.multiplier.dtype == folded.shift.dtype == np.int32
    got = golden.requantize(acc, folded.multiplier, folded.shift, zp, bias=folded.bias)
    y = gamma * (z - mean) / np.sqrt(var + 1e-5) + beta
    want = np.clip(np.floor(y / out_scale + 0.5) + zp, -128, 127)
    assert np.abs(got - want).max() <= 1
    with pytest.raises(ValueError, match=re.escape("gamma must be non-zero to fold, not 0 at channel 1")):
        golden.fold_batch_norm([1, 0], [0, 0], [0, 0], [1, 1], acc_scale=1.0, out_scale=1.0)


def _direct_conv(x, w, b, *, stride, padding, dilation, groups, pad_value=0):
    """An independent reference: every output value summed tap by tap over a padded input."""
    n, h, wd, cin = x.shape
    cout, kh, kw, cg = w.shape
    xp = np.full((n, h + 2 * padding, wd + 2 * padding, cin), pad_value, np.int64)
    xp[:, padding:padding + h, padding:padding + wd] = x
    ho = (h + 2 * padding - dilation * (kh - 1) - 1) // stride + 1
    wo = (wd + 2 * padding - dilation * (kw - 1) - 1) // stride + 1
    y = np.zeros((n, ho, wo, cout), np.int64)
    per_group = cout // groups
    for o in range(cout):
        c0 = (o // per_group) * cg
        for i in range(kh):
            for j in range(kw):
                rows = xp[:, i * dilation:i * dilation + stride * (ho - 1) + 1:stride,
                          j * dilation:j * dilation + stride * (wo - 1) + 1:stride, c0:c0 + cg]
                y[..., o] += rows @ w[o, i, j].astype(np.int64)
        y[..., o] += b[o]
    return golden.wrap_int32(y)


@pytest.mark.parametrize("case", CONV_CASES, ids=CASE_IDS)
def test_conv_case_table_golden_equals_direct_loop(case):
    """The case table the tile and the mesh replay, at the golden level: golden.conv2d against a
    tap-by-tap loop (and the requantized outputs against the contract written out)."""
    x, w, b, rq, _ = case.layer()
    acc = golden.conv2d(x, w, b, pad_value=case.pad_value, **case.conv)
    np.testing.assert_array_equal(acc, _direct_conv(x, w, b, pad_value=case.pad_value, **case.conv))
    if rq is not None and rq.is_float:
        # float32 product (numpy's IEEE arithmetic), then round half to even
        t = np.rint(acc.astype(np.float32) * rq.scale).astype(np.int64) + rq.zero_point
        np.testing.assert_array_equal(case.golden(x, w, b, rq), np.clip(t, -128, 127).astype(np.int8))
    elif rq is not None:
        m = np.asarray(rq.multiplier, np.int64)
        s = np.asarray(rq.shift, np.int64)
        t = (((acc.astype(object) * m.astype(object) + (1 << (s - 1)).astype(object)) >> s.astype(object))
             + rq.zero_point)
        want = np.clip(np.maximum(t, rq.zero_point).astype(np.int64), -128, 127).astype(np.int8)
        np.testing.assert_array_equal(case.golden(x, w, b, rq), want)
