"""Depthwise conv on the default tile (32×32 MACs, 64-byte ports), bit-exact against numpy.

The default tile is the one configuration where a pixel's channel group (W = 64 bytes) spans two
weight tiles of C = 32 channels: packed int8 stores (one 64-byte write per pixel and group),
weight and parameter rows loaded four per read on both memory ports, two-row drains. Its
Verilator model is the one tests/net builds anyway.
"""

import numpy as np
import pytest

from tilelab.api.conv import Requant, conv2d
from tilelab.pe_models.config import DEFAULT_TILE
from tilelab.reference import golden
from tilelab.reference.layers import Conv2dSpec

CASES = [
    # id,                   n, h,  w,  c,   k, stride, pad, out
    ("c80-int8",            1, 12, 12, 80,  3, 1,      1,   "int8"),    # groups of 64 + 16 channels
    ("c96-s2-n2-int32",     2, 11, 9,  96,  3, 2,      1,   "int32"),
    ("c40-5x5-int8",        1, 10, 10, 40,  5, 1,      2,   "int8"),    # 25 taps: weight rows 32 bytes apart
    ("c128-s2-pad0-int8",   1, 13, 13, 128, 3, 2,      0,   "int8"),
    ("ring-wraps-c64-int8", 1, 30, 40, 64,  3, 1,      1,   "int8"),    # 40-pixel rows: the 512-word ring wraps
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_depthwise_default_tile_bit_exact(case):
    _, n, h, w, c, k, stride, pad, out = case
    rng = np.random.default_rng(sum(map(ord, case[0])))
    x = rng.integers(-128, 128, (n, h, w, c), dtype=np.int8)
    wt = rng.integers(-128, 128, (c, k, k, 1), dtype=np.int8)
    b = rng.integers(-5000, 5000, c, dtype=np.int32)
    acc = golden.conv2d(x, wt, b, stride=stride, padding=pad, groups=c)
    rq = None
    if out == "int8":
        m, s = golden.choose_requant(acc)
        rq = Requant(m, s, zero_point=5)
    y, stats = conv2d(x, wt, b, stride=stride, padding=pad, groups=c, requant=rq,
                      activation="relu" if rq else None, out=out, config=DEFAULT_TILE)
    want = acc if out == "int32" else golden.requantize(acc, rq.multiplier, rq.shift, rq.zero_point, relu=True)
    np.testing.assert_array_equal(y, want)
    assert stats.bit_exact
    spec = Conv2dSpec.from_tensors(x, wt, b, stride=stride, padding=pad, groups=c)
    blk = stats.blocking
    W = DEFAULT_TILE.ext_bytes
    assert blk["depthwise"] and blk["groups"] == -(-c // W)
    assert stats.macs == spec.macs
    pixels = spec.n * spec.ho * spec.wo
    assert stats.ext_bytes_written == pixels * c * (4 if out == "int32" else 1)
    # Parameters and weights once, and every input byte exactly once (every input row is read
    # by some output row in these cases; the ring keeps the rows two blocks share).
    assert stats.ext_bytes_read == c * (16 + k * k) + x.size
    if out == "int8":
        # One store per pixel and channel group: the group's weight tiles share output entries.
        assert stats.counters["writer_busy"] == pixels * blk["groups"]


GROUPED = [
    # id,                       n, h,  w,  c,   g,  k, stride, pad, out
    ("grouped-g4-c128-int8",    1, 10, 9,  128, 4,  3, 1,      1,   "int8"),     # ResNeXt's first stage
    ("grouped-g32-c96-s2-int32", 1, 9, 9,  96,  32, 3, 2,      1,   "int32"),    # g = C, a partial group of 32
    ("grouped-g8-c64-5x5-int8", 1, 8,  8,  64,  8,  5, 1,      2,   "int8"),
]


@pytest.mark.parametrize("case", GROUPED, ids=[c[0] for c in GROUPED])
def test_grouped_default_tile_bit_exact(case):
    """Grouped convs in the depthwise mode on the 32-column array: the column select's five
    butterfly stages, packed int8 stores, every input byte read once."""
    name, n, h, w, c, g, k, stride, pad, out = case
    rng = np.random.default_rng(sum(map(ord, name)))
    x = rng.integers(-128, 128, (n, h, w, c), dtype=np.int8)
    wt = rng.integers(-128, 128, (c, k, k, g), dtype=np.int8)
    b = rng.integers(-5000, 5000, c, dtype=np.int32)
    groups = c // g
    acc = golden.conv2d(x, wt, b, stride=stride, padding=pad, groups=groups)
    rq = None
    if out == "int8":
        m, s = golden.choose_requant(acc)
        rq = Requant(m, s, zero_point=5)
    y, stats = conv2d(x, wt, b, stride=stride, padding=pad, groups=groups, requant=rq,
                      activation="relu" if rq else None, out=out, config=DEFAULT_TILE)
    want = acc if out == "int32" else golden.requantize(acc, rq.multiplier, rq.shift, rq.zero_point, relu=True)
    np.testing.assert_array_equal(y, want)
    spec = Conv2dSpec.from_tensors(x, wt, b, stride=stride, padding=pad, groups=groups)
    blk = stats.blocking
    assert blk["depthwise"] and blk["group_size"] == g and blk["k"] == k * k * g
    assert stats.bit_exact and stats.macs == spec.macs
    assert stats.ext_bytes_read == c * (16 + k * k * g) + x.size
