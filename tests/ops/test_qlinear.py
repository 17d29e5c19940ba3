"""onnxruntime's element-wise kernels on the element-wise unit's QLinear lanes, bit-exact against the golden.

TABLE (``ops.qlinear_table``: QLinearSigmoid / QLinearLeakyRelu tables, any int8 → int8 function;
``ops.qlinear_concat``: one TABLE per input into its channel slice), QADD (``ops.qlinear_add``:
QLinearAdd's two float32 FMAs per element) and QMUL (``ops.qlinear_mul``: QLinearMul's scaled
integer product) and QAVGPOOL (``ops.qlinear_avg_pool``: QLinearAveragePool's float32 sums and
divisions) run on the tests' unit; QADD and QMUL are checked on every pair of 8-bit values for
several layers' constants.
"""

import re
import zlib

import numpy as np
import pytest

from tests.ops.test_ops import UNIT
from tilelab.api import ops
from tilelab.drive import SimServer, eltwise_unit
from tilelab.hdl.formats.eltwise import PARAM_WORDS, EltwiseOp
from tilelab.reference import golden

W = UNIT.ext_bytes


def seed(name):
    return zlib.crc32(name.encode())


def tensor(shape, name):
    return np.random.default_rng(seed(name)).integers(-128, 128, shape, dtype=np.int8)


@pytest.fixture(scope="module")
def server():
    s = SimServer(eltwise_unit(UNIT), sim="verilator")
    yield s
    s.close()


def all_pairs():
    """Every pair of int8 values: a (256, 256) tensor of a's (rows) and one of b's (channels)."""
    v = np.arange(-128, 128, dtype=np.int16).astype(np.int8)
    return np.repeat(v[:, None], 256, axis=1), np.repeat(v[None, :], 256, axis=0)


# ---------------------------------------------------------------------------------------------
# TABLE

TABLE_CASES = [
    # id,             shape,           table
    ("sigmoid",       (2, 3, 5, 37),   lambda: golden.qlinear_sigmoid_table(0.05, 3, 1 / 256, -128)),
    ("sigmoid-uint8", (1, 4, 4, 16),   lambda: golden.qlinear_sigmoid_table(0.1, -10, 1 / 256, -128, unsigned=True)),
    ("leaky-relu",    (1, 2, 7, 20),   lambda: golden.qlinear_leaky_relu_table(0.1, 0.02, -5, 0.015, 7)),
    ("random",        (45, 9),         lambda: tensor(256, "random-table")),
]


@pytest.mark.parametrize("case", TABLE_CASES, ids=[c[0] for c in TABLE_CASES])
def test_qlinear_table_bit_exact(case, server):
    name, shape, make = case
    x, table = tensor(shape, name), make()
    y, stats = ops.qlinear_table(x, table, config=UNIT, server=server)
    np.testing.assert_array_equal(y, golden.apply_table(x, table))
    assert stats.bit_exact and y.dtype == np.int8 and y.shape == x.shape
    rows, chunks = x.size // shape[-1], -(-shape[-1] // W)
    assert stats.counters["busy"] == rows * chunks
    # one input word per row and chunk, and the table's 16 words per chunk
    assert stats.ext_bytes_read == rows * chunks * W + chunks * PARAM_WORDS[EltwiseOp.TABLE] * W
    assert stats.ext_bytes_written == x.size


def test_qlinear_table_every_value_in_every_lane(server):
    x = np.tile(np.arange(-128, 128, dtype=np.int16).astype(np.int8).reshape(256, 1), (1, 2 * W + 3))
    table = tensor(256, "every-value")
    y, stats = ops.qlinear_table(x, table, config=UNIT, server=server)
    np.testing.assert_array_equal(y, golden.apply_table(x, table))
    assert stats.bit_exact


def test_qlinear_table_on_amaranth_simulator():
    x, table = tensor((1, 2, 3, 18), "amaranth-table"), tensor(256, "amaranth-table-t")
    y, stats = ops.qlinear_table(x, table, config=UNIT, sim="amaranth")
    np.testing.assert_array_equal(y, golden.apply_table(x, table))
    assert stats.bit_exact and stats.simulator == "amaranth"


# ---------------------------------------------------------------------------------------------
# QADD

ADD_CASES = [
    # id,               (a_scale, a_zp, b_scale, b_zp, y_scale, y_zp),     unsigned
    ("resnet-residual", (0.0213, -3, 0.0478, 5, 0.0561, -9),               False),
    ("uint8",           (0.0213, -3, 0.0478, 5, 0.0561, -9),               True),
    ("ties",            (0.5, 0, 0.5, 0, 1.0, 0),                          False),   # t = (a + b) / 2
    ("ties-uint8",      (0.25, 0, 0.75, 0, 1.0, 0),                        True),
    ("extreme-zps",     (0.013, -128, 0.4, 127, 0.003, 5),                 False),   # mostly saturated
    ("tiny-scales",     (1e-20, 7, 3e-21, -1, 2e-20, 100),                 False),
]


def _want(a, b, case_args, unsigned):
    sa, za, sb, zb, sy, zy = case_args
    return golden.qlinear_add(a, sa, za, b, sb, zb, sy, zy, unsigned=unsigned)


@pytest.mark.parametrize("case", ADD_CASES, ids=[c[0] for c in ADD_CASES])
def test_qlinear_add_every_pair_of_values(case, server):
    _, args, unsigned = case
    a, b = all_pairs()
    sa, za, sb, zb, sy, zy = args
    y, stats = ops.qlinear_add(a, sa, za, b, sb, zb, sy, zy, unsigned=unsigned, config=UNIT, server=server)
    want = _want(a, b, args, unsigned)
    np.testing.assert_array_equal(y, want)
    assert stats.bit_exact
    rows, chunks = 256, 256 // W
    assert stats.counters["busy"] == rows * chunks
    assert stats.ext_bytes_read == 2 * rows * chunks * W + chunks * PARAM_WORDS[EltwiseOp.QADD] * W
    assert stats.ext_bytes_written == a.size


def test_qlinear_add_ties_round_half_to_even(server):
    a, b = all_pairs()
    y, stats = ops.qlinear_add(a, 0.5, 0, b, 0.5, 0, 1.0, 0, config=UNIT, server=server)
    s = a.astype(np.int64) + b
    odd = s % 2 != 0
    assert odd.sum() == 32768
    np.testing.assert_array_equal(y[odd], np.rint(s[odd] / 2).astype(np.int8))   # half to even
    assert stats.bit_exact


@pytest.mark.parametrize("unsigned", [False, True])
def test_qlinear_add_of_one_value_and_of_a_broadcast_constant(unsigned, server):
    a = tensor((2, 3, 4, 21), "const-a")
    args = (0.031, 4, 0.0125, -2, 0.04, 3)
    sa, za, sb, zb, sy, zy = args
    # one value: MLAS's scalar kernel (its term in k, one input streamed), on either side
    one = np.full((1, 1, 1, 1), -77, np.int8)
    for lhs, rhs in ((a, one), (one, a)):
        y, stats = ops.qlinear_add(lhs, sa, za, rhs, sb, zb, sy, zy, unsigned=unsigned, config=UNIT, server=server)
        np.testing.assert_array_equal(y, _want(lhs, rhs, args, unsigned))
        assert stats.bit_exact and y.shape == a.shape
        assert stats.ext_bytes_read == 24 * 2 * W + 2 * W       # a alone, one constant word per chunk
    # a constant per channel, broadcast: the tensor kernel on the broadcast values
    per_channel = tensor((1, 1, 1, 21), "const-b")
    y, stats = ops.qlinear_add(a, sa, za, per_channel, sb, zb, sy, zy, unsigned=unsigned, config=UNIT,
                               server=server)
    np.testing.assert_array_equal(y, _want(a, per_channel, args, unsigned))
    assert stats.bit_exact


def test_qlinear_add_on_amaranth_simulator():
    a, b = tensor((1, 2, 2, 20), "amaranth-a"), tensor((1, 2, 2, 20), "amaranth-b")
    args = (0.02, 1, 0.03, -1, 0.025, 0)
    y, stats = ops.qlinear_add(a, *args[:2], b, *args[2:], config=UNIT, sim="amaranth")
    np.testing.assert_array_equal(y, _want(a, b, args, False))
    assert stats.bit_exact and stats.simulator == "amaranth"


# ---------------------------------------------------------------------------------------------
# QMUL

MUL_CASES = [
    # id,               (a_scale, a_zp, b_scale, b_zp, y_scale, y_zp),     unsigned
    ("silu",            (0.047, -20, 1 / 256, -128, 0.031, -11),            False),
    ("silu-uint8",      (0.047, -20, 1 / 256, -128, 0.031, -11),            True),
    ("ties",            (0.5, 0, 0.5, 0, 16.0, 0),                          False),   # t = ab / 64: halves
    ("saturating",      (0.2, 3, 0.3, -4, 0.01, 100),                       False),
]


@pytest.mark.parametrize("case", MUL_CASES, ids=[c[0] for c in MUL_CASES])
def test_qlinear_mul_every_pair_of_values(case, server):
    _, args, unsigned = case
    a, b = all_pairs()
    sa, za, sb, zb, sy, zy = args
    y, stats = ops.qlinear_mul(a, sa, za, b, sb, zb, sy, zy, unsigned=unsigned, config=UNIT, server=server)
    want = golden.qlinear_mul(a, sa, za, b, sb, zb, sy, zy, unsigned=unsigned)
    np.testing.assert_array_equal(y, want)
    assert stats.bit_exact
    assert stats.ext_bytes_read == 2 * 256 * (256 // W) * W + (256 // W) * PARAM_WORDS[EltwiseOp.QMUL] * W
    if case[0] == "ties":
        p = a.astype(np.int64) * b
        halves = p % 64 == 32
        assert halves.sum() > 1000
        np.testing.assert_array_equal(y[halves], np.clip(np.rint(p[halves] / 64), -128, 127).astype(np.int8))


def test_qlinear_mul_by_a_broadcast_tensor(server):
    a, b = tensor((2, 3, 4, 21), "mul-a"), tensor((1, 1, 1, 21), "mul-b")
    args = (0.031, 4, 0.0125, -2, 0.004, 3)
    y, stats = ops.qlinear_mul(a, *args[:2], b, *args[2:], config=UNIT, server=server)
    np.testing.assert_array_equal(y, golden.qlinear_mul(a, *args[:2], b, *args[2:]))
    assert stats.bit_exact


# ---------------------------------------------------------------------------------------------
# QLinearConcat: TABLEs into channel slices


@pytest.mark.parametrize("unsigned", [False, True])
def test_qlinear_concat_copies_and_requantizes_into_channel_slices(unsigned, server):
    channels = (13, 16, 37, 1)                  # slices that start anywhere in a word, one over three words
    xs = [tensor((2, 3, 5, c), f"concat-{c}") for c in channels]
    # inputs 1 and 3 have the output's scale and zero point (copies), 0 and 2 are requantized
    scales, zps = [0.02, 0.05, 0.031, 0.05], [3, -7, 0, -7]
    y, stats = ops.qlinear_concat(xs, scales, zps, 0.05, -7, unsigned=unsigned, config=UNIT, server=server)
    np.testing.assert_array_equal(y, golden.qlinear_concat(xs, scales, zps, 0.05, -7, unsigned=unsigned))
    assert stats.bit_exact and y.shape == (2, 3, 5, sum(channels))
    chunks = [-(-c // W) for c in channels]
    assert stats.counters["descs_done"] == 4 and stats.counters["busy"] == 30 * sum(chunks)
    assert stats.ext_bytes_written == y.size
    assert stats.ext_bytes_read == sum(30 * k * W + k * PARAM_WORDS[EltwiseOp.TABLE] * W for k in chunks)


# ---------------------------------------------------------------------------------------------
# QAVGPOOL

AVG_CASES = [
    # id,                shape,           kernel,  stride,  padding,  include_pad, (xs, zx, ys, zy),          unsigned
    ("3x3-pad-real",     (2, 7, 6, 20),   3,       1,       1,        False,       (0.0371, -3, 0.0213, 5),   False),
    ("3x3-s2-with-pad",  (1, 9, 8, 19),   3,       2,       1,        True,        (0.0371, -3, 0.0213, 5),   True),
    ("rect-window",      (1, 6, 9, 33),   (2, 3),  (1, 2),  (1, 1),   False,       (0.5, 0, 0.25, 0),         False),
    ("7x7-global",       (2, 7, 7, 16),   7,       1,       0,        False,       (0.11, 17, 0.004, -100),   True),
    ("saturating",       (1, 5, 5, 18),   2,       1,       0,        False,       (0.3, -128, 0.001, 127),   False),
]


@pytest.mark.parametrize("case", AVG_CASES, ids=[c[0] for c in AVG_CASES])
def test_qlinear_avg_pool_bit_exact(case, server):
    name, shape, kernel, stride, padding, include_pad, (xs, zx, ys, zy), unsigned = case
    x = tensor(shape, name)
    kw = dict(stride=stride, padding=padding, count_include_pad=include_pad, x_scale=xs, x_zero_point=zx,
              y_scale=ys, y_zero_point=zy, unsigned=unsigned)
    y, stats = ops.qlinear_avg_pool(x, kernel, config=UNIT, server=server, **kw)

    def pair(v):
        return (v, v) if isinstance(v, int) else v

    want = golden.qlinear_avg_pool(x, pair(kernel), **dict(kw, stride=pair(stride), padding=pair(padding)))
    np.testing.assert_array_equal(y, want)
    assert stats.bit_exact
    n, ho, wo, c = want.shape
    kh, kw_ = pair(kernel)
    chunks = -(-c // W)
    assert stats.counters["busy"] == n * ho * wo * kh * kw_ * chunks
    assert stats.ext_bytes_written == want.size
    if name == "saturating":
        assert np.mean((want == 127) | (want == -128)) > 0.5


def test_bad_inputs():
    x = tensor((1, 4, 4, 8), "bad")
    with pytest.raises(ValueError, match=re.escape("table must have shape (256,), not (255,)")):
        ops.qlinear_table(x, np.zeros(255, np.int8), config=UNIT)
    with pytest.raises(TypeError, match=re.escape("table must have dtype 'int8', not 'int64'")):
        ops.qlinear_table(x, np.zeros(256, np.int64), config=UNIT)
    with pytest.raises(ValueError, match=re.escape("a_scale / y_scale = inf must be a normal float32 of magnitude "
                                                   "at most 2**100 on the element-wise unit")):
        ops.qlinear_add(x, 1e30, 0, x, 1.0, 0, 1e-30, 0, config=UNIT)
    with pytest.raises(ValueError, match=re.escape("b_scale / y_scale = 1.401298464324817e-45 must be a normal "
                                                   "float32 of magnitude at most 2**100")):
        ops.qlinear_add(x, 1.0, 0, x, 1e-35, 0, 1e10, 0, config=UNIT)
    with pytest.raises(ValueError, match=re.escape("b of shape (1, 4, 4, 9) does not broadcast with a of shape "
                                                   "(1, 4, 4, 8)")):
        ops.qlinear_add(x, 1.0, 0, tensor((1, 4, 4, 9), "bad-b"), 1.0, 0, 1.0, 0, config=UNIT)
    with pytest.raises(ValueError, match=re.escape("a_scale must be a positive normal float32, not -1.0")):
        ops.qlinear_add(x, -1.0, 0, x, 1.0, 0, 1.0, 0, config=UNIT)
    with pytest.raises(ValueError, match=re.escape("(a_scale · b_scale) / y_scale = 0.0 must be a positive normal "
                                                   "float32 on the element-wise unit")):
        ops.qlinear_mul(x, 1e-30, 0, x, 1e-30, 0, 1e10, 0, config=UNIT)
    with pytest.raises(ValueError, match=re.escape("qlinear_mul of a tensor and a single value is not modelled")):
        ops.qlinear_mul(x, 1.0, 0, x[:1, :1, :1, :1], 1.0, 0, 1.0, 0, config=UNIT)
    with pytest.raises(ValueError, match=re.escape("y_scale must lie in [2**-40, 2**40] on the element-wise unit, "
                                                   "not 1.0000000200408773e+20")):
        ops.qlinear_avg_pool(x, 2, x_scale=1.0, x_zero_point=0, y_scale=1e20, y_zero_point=0, config=UNIT)
    with pytest.raises(ValueError, match=re.escape("inputs[1] of shape (1, 4, 3, 8) differs from inputs[0] of shape "
                                                   "(1, 4, 4, 8) in more than the channels (the last axis)")):
        ops.qlinear_concat([x, x[:, :, :3]], [1.0, 1.0], [0, 0], 1.0, 0, config=UNIT)
    with pytest.raises(TypeError, match=re.escape("inputs[0] must be an int8 numpy array with a channel axis, not "
                                                  "int16 of shape (1, 4, 4, 8)")):
        ops.qlinear_concat([x.astype(np.int16)], [1.0], [0], 1.0, 0, config=UNIT)
