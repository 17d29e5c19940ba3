"""Pooling, residual add and ReLU in RTL on the element-wise unit, bit-exact against the golden model."""

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import requires_icarus
from tilelab.api import ops
from tilelab.hdl.lint import lint_component
from tilelab.pe_models.config import EltwiseConfig, TileConfig
from tilelab.pe_models.eltwise import EltwiseUnit
from tilelab.reference import golden
from tilelab.reference.golden import rdiv

#: The small unit every test compiles (one Verilator build for the folder): 16 channels per cycle.
UNIT = EltwiseConfig(ext_bytes=16, ext_words=1 << 14)


@pytest.mark.verilator
def test_unit_is_lint_clean():
    lint_component(EltwiseUnit(UNIT), "eltwise_unit")


def tensor(shape, seed):
    return np.random.default_rng(seed).integers(-128, 128, shape, dtype=np.int8)


def output_bytes(y):
    return int(np.prod(y.shape))


POOL_CASES = [
    # id,                shape,          kernel,  stride,  padding
    ("resnet-stem-n2",   (2, 9, 8, 20),  3,       2,       1),
    ("2x2-s2",           (1, 8, 6, 16),  2,       None,    0),
    ("3x3-s1-pad1-c3",   (2, 5, 6, 3),   3,       1,       1),
    ("rect-window",      (1, 7, 9, 33),  (2, 3),  (1, 2),  (1, 1)),
    ("whole-image",      (1, 4, 5, 17),  (4, 5),  1,       0),
]


@pytest.mark.parametrize("case", POOL_CASES, ids=[c[0] for c in POOL_CASES])
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool_bit_exact(case, kind):
    _, shape, kernel, stride, padding = case
    x = tensor(shape, seed=len(case[0]))
    if kind == "max":
        y, stats = ops.max_pool2d(x, kernel, stride=stride, padding=padding, config=UNIT)
        want = golden.max_pool2d(x, kernel, stride=stride, padding=padding)
    else:
        y, stats = ops.avg_pool2d(x, kernel, stride=stride, padding=padding, config=UNIT)
        want = golden.avg_pool2d(x, kernel, stride=stride, padding=padding)
    np.testing.assert_array_equal(y, want)
    assert stats.bit_exact and stats.simulator == "verilator" and stats.macs == 0
    # One W-byte read per window tap and channel chunk; padding taps read nothing.
    n, ho, wo, c = want.shape
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    chunks = -(-c // UNIT.ext_bytes)
    assert stats.counters["busy"] == n * ho * wo * kh * kw * chunks
    assert stats.ext_bytes_written == output_bytes(want)
    real_taps = stats.counters["elements"] // c
    assert stats.counters["elements"] == real_taps * c and real_taps <= n * ho * wo * kh * kw
    assert stats.ext_bytes_read == real_taps * chunks * UNIT.ext_bytes
    assert stats.cycles >= stats.counters["busy"]


@st.composite
def pool_shapes(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    h, w = draw(st.integers(max(1, kh - 2 * ph), 9)), draw(st.integers(max(1, kw - 2 * pw), 9))
    return ((draw(st.integers(1, 2)), h, w, draw(st.integers(1, 40))), (kh, kw),
            (draw(st.integers(1, 3)), draw(st.integers(1, 3))), (ph, pw), draw(st.sampled_from(["max", "avg"])))


@settings(max_examples=3, deadline=None)
@given(pool_shapes(), st.integers(0, 2**16))
def test_pool_random_shapes(case, seed):
    shape, kernel, stride, padding, kind = case
    x = tensor(shape, seed)
    op, ref = (ops.max_pool2d, golden.max_pool2d) if kind == "max" else (ops.avg_pool2d, golden.avg_pool2d)
    y, stats = op(x, kernel, stride=stride, padding=padding, config=UNIT)
    np.testing.assert_array_equal(y, ref(x, kernel, stride=stride, padding=padding))
    assert stats.bit_exact


def test_avg_pool_rounds_half_up_for_negative_sums():
    # Windows of 2 with sums -3, -1, 1, 3: the golden rounds half up (-1, 0, 1, 2).
    x = np.array([-1, -2, 0, -1, 0, 1, 2, 1], np.int8).reshape(1, 1, 8, 1)
    y, stats = ops.avg_pool2d(x, (1, 2), config=UNIT)
    np.testing.assert_array_equal(y.ravel(), [-1, 0, 1, 2])
    assert stats.bit_exact


@pytest.mark.parametrize("shape", [(2, 5, 7, 20), (1, 1, 1, 3)])
def test_global_avg_pool_bit_exact(shape):
    x = tensor(shape, seed=shape[0] * 7 + shape[3])
    y, stats = ops.global_avg_pool(x, config=UNIT)
    np.testing.assert_array_equal(y, golden.global_avg_pool(x))
    assert y.shape == (shape[0], 1, 1, shape[3]) and stats.bit_exact
    assert stats.ext_bytes_written == shape[0] * shape[3]


def test_global_avg_pool_extremes():
    x = np.full((2, 3, 3, 18), -128, np.int8)
    x[1] = 127
    y, stats = ops.global_avg_pool(x, config=UNIT)
    np.testing.assert_array_equal(y[0].ravel(), -128)
    np.testing.assert_array_equal(y[1].ravel(), 127)
    assert stats.bit_exact


@pytest.mark.parametrize("count", [1, 2, 3, 7, 9, 49, 12544, 65536])
def test_reciprocal_division_is_exact_over_the_whole_range(count):
    bias, mult, shift = ops.reciprocal(count)
    sums = np.arange(-128 * count, 127 * count + 1, dtype=np.int64)
    fast = ((sums + bias) * mult >> shift) - 128
    np.testing.assert_array_equal(fast, rdiv(sums, np.int64(count)))


def add_args(channels, seed, *, saturate=False):
    rng = np.random.default_rng(seed)
    if saturate:
        # Scales of 2 and -3: most outputs clip at -128 or 127.
        return dict(a_mult=1 << 30, a_shift=29, b_mult=-(3 << 29), b_shift=29)
    return dict(a_mult=rng.integers(1 << 29, 1 << 31, channels).astype(np.int32),
                a_shift=rng.integers(30, 33, channels).astype(np.int32),
                b_mult=int(rng.integers(-(1 << 31), 1 << 31)), b_shift=int(rng.integers(1, 63)))


ADD_CASES = [
    # id,                 shape,           zero points (out, a, b), relu, saturate
    ("per-channel-n2",    (2, 4, 5, 20),   (3, -2, 5),              False, False),
    ("relu",              (1, 3, 3, 16),   (-7, 0, 0),              True,  False),
    ("saturate",          (2, 3, 2, 35),   (0, 10, -20),            False, True),
    ("saturate-relu",     (1, 2, 2, 5),    (100, -128, 127),        True,  True),
    ("flat-rows",         (37, 9),         (0, 0, 0),               False, False),
]


@pytest.mark.parametrize("case", ADD_CASES, ids=[c[0] for c in ADD_CASES])
def test_add_requant_bit_exact(case):
    _, shape, (zp, azp, bzp), relu, saturate = case
    a, b = tensor(shape, seed=1), tensor(shape, seed=2)
    args = add_args(shape[-1], seed=len(case[0]), saturate=saturate)
    y, stats = ops.add_requant(a, b, **args, zero_point=zp, a_zero_point=azp, b_zero_point=bzp, relu=relu,
                               config=UNIT)
    want = golden.add_requant(a, b, **args, zero_point=zp, a_zero_point=azp, b_zero_point=bzp, relu=relu)
    np.testing.assert_array_equal(y, want)
    assert stats.bit_exact
    if saturate:
        assert np.mean((want == 127) | (want == -128)) > 0.5, "the case must actually saturate"
    if relu:
        assert want.min() >= max(zp, -128)
    rows = a.size // shape[-1]
    chunks = -(-shape[-1] // UNIT.ext_bytes)
    assert stats.counters["busy"] == rows * chunks
    # both inputs stream (two ports) plus ten parameter words per chunk
    assert stats.ext_bytes_read == 2 * rows * chunks * UNIT.ext_bytes + 10 * chunks * UNIT.ext_bytes
    assert stats.ext_bytes_written == a.size


@pytest.mark.parametrize("zero_point", [-5, 100])
def test_relu_bit_exact(zero_point):
    x = tensor((2, 3, 4, 19), seed=zero_point + 200)
    y, stats = ops.relu(x, zero_point=zero_point, config=UNIT)
    np.testing.assert_array_equal(y, golden.relu(x, zero_point=zero_point))
    assert stats.bit_exact and stats.counters["elements"] == x.size


def test_relu_on_amaranth_simulator_with_a_tile_config():
    # A TileConfig stands for the unit beside that tile: its 16-byte port, one chunk of 16 + one of 4.
    tile = TileConfig(rows=4, cols=4, ext_bytes=16, ext_words=1 << 12, act_lane_bytes=64, wgt_lane_bytes=64,
                      param_lane_bytes=64)
    x = tensor((1, 2, 3, 20), seed=5)
    y, stats = ops.relu(x, zero_point=-3, sim="amaranth", config=tile)
    np.testing.assert_array_equal(y, golden.relu(x, zero_point=-3))
    assert stats.bit_exact and stats.simulator == "amaranth"
    assert stats.counters["busy"] == 6 * 2 and stats.ext_bytes_read == 6 * 2 * 16


def test_max_pool_on_amaranth_simulator():
    x = tensor((1, 5, 5, 18), seed=6)
    y, stats = ops.max_pool2d(x, 3, stride=2, padding=1, sim="amaranth", config=UNIT)
    np.testing.assert_array_equal(y, golden.max_pool2d(x, 3, stride=2, padding=1))
    assert stats.bit_exact and stats.simulator == "amaranth"


def test_add_requant_one_word_descriptor_on_amaranth_simulator():
    # W = 64: the descriptor is a single word, decoded the cycle after it arrives.
    unit = EltwiseConfig(ext_bytes=64, ext_words=1 << 8)
    a, b = tensor((1, 1, 2, 70), seed=3), tensor((1, 1, 2, 70), seed=4)
    args = dict(a_mult=3 << 29, a_shift=31, b_mult=-(1 << 30), b_shift=32, zero_point=4)
    y, stats = ops.add_requant(a, b, **args, sim="amaranth", config=unit)
    np.testing.assert_array_equal(y, golden.add_requant(a, b, **args))
    assert stats.bit_exact


@requires_icarus
def test_avg_pool_on_icarus():
    x = tensor((1, 5, 5, 18), seed=8)
    y, stats = ops.avg_pool2d(x, 3, stride=2, padding=1, sim="icarus", config=UNIT)
    np.testing.assert_array_equal(y, golden.avg_pool2d(x, 3, stride=2, padding=1))
    assert stats.bit_exact and stats.simulator == "icarus"


# ---------------------------------------------------------------------------------------------
# bad input: a clear error before any simulation


def test_bad_inputs():
    x = tensor((1, 4, 4, 8), seed=0)
    with pytest.raises(TypeError, match=re.escape("x must have dtype 'int8', not 'int16'")):
        ops.max_pool2d(x.astype(np.int16), 2, config=UNIT)
    with pytest.raises(ValueError, match=re.escape("padding height must be at most half the window height 2")):
        ops.avg_pool2d(x, 2, padding=2, config=UNIT)
    with pytest.raises(ValueError, match=re.escape("stride must be at most 255 on the element-wise unit, not 300")):
        ops.max_pool2d(tensor((1, 301, 1, 1), 0), 1, stride=300, config=UNIT)
    with pytest.raises(ValueError, match=re.escape("H·W must be at most 65536 on the element-wise unit, not 66049")):
        ops.global_avg_pool(np.zeros((1, 257, 257, 1), np.int8), config=UNIT)
    with pytest.raises(ValueError, match=re.escape("sim must be one of 'verilator', 'icarus', 'amaranth', not "
                                                   "'spice'")):
        ops.relu(x, sim="spice")
    with pytest.raises(TypeError, match=re.escape("config must be an EltwiseConfig or a TileConfig, not 16")):
        ops.relu(x, config=16)
    with pytest.raises(ValueError, match=re.escape("zero_point must be an integer in [-128, 127], not 200")):
        ops.relu(x, zero_point=200, config=UNIT)
    with pytest.raises(ValueError, match=re.escape("x must hold at least one element, not shape (0, 4)")):
        ops.relu(np.zeros((0, 4), np.int8), config=UNIT)
    with pytest.raises(ValueError, match=re.escape("b must have the shape of a (1, 4, 4, 8), not (1, 4, 4, 9)")):
        ops.add_requant(x, tensor((1, 4, 4, 9), 1), a_mult=1, a_shift=1, b_mult=1, b_shift=1, config=UNIT)
    with pytest.raises(ValueError, match=re.escape("a_shift must lie in [1, 62], not 63")):
        ops.add_requant(x, x, a_mult=1, a_shift=63, b_mult=1, b_shift=1, config=UNIT)
    with pytest.raises(ValueError, match=r"the op needs \d+ bytes of external memory, more than the unit's "
                                         r"262144 \(ext_words=16384\)"):
        ops.relu(np.zeros((3, 1, 1, 60000), np.int8), config=UNIT)
