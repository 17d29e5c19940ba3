"""The split-K mode: layers with few output pixels use every row of the array, bit-exact, in fewer cycles.

The test tile (4 rows, ``split_k=4``) splits a layer's reduction over 2 or 4 row groups when the
last tile of pixels would leave rows idle; pack adds a pixel's group sums before the bias and the
requantization, in the RTL. The estimate is exact on these layers (see the fidelity table), so the
cycles the mode saves are the estimate of the same layer on the tile without it.
"""

import dataclasses

import numpy as np
import pytest

from tests.cases import TILE, requant_for, seed_of, tensors
from tilelab.api.conv import conv2d, linear
from tilelab.compile.tile import plan_blocking
from tilelab.drive import SimServer, tile_unit
from tilelab.estimate import estimate_conv
from tilelab.pe_models.config import DEFAULT_TILE, TileConfig
from tilelab.reference import golden
from tilelab.reference.layers import Conv2dSpec

NO_SPLIT = dataclasses.replace(TILE, split_k=1)


@pytest.fixture(scope="module")
def server():
    with SimServer(tile_unit(TILE)) as s:
        yield s


def test_row_groups_follow_the_rows():
    assert DEFAULT_TILE.row_groups == 8 and TILE.row_groups == 4
    assert TileConfig(rows=6, cols=4).row_groups == 2
    assert TileConfig(rows=3, cols=4).row_groups == 1
    assert TileConfig(rows=32, cols=32, split_k=2).row_groups == 2
    assert TileConfig(rows=32, cols=32, split_k=1).row_groups == 1
    with pytest.raises(ValueError, match="split_k"):
        TileConfig(split_k=3)


# n, h, w, cin, cout, k, stride, padding, out, float requantization
LAYERS = [
    (1, 5, 5, 16, 8, 3, 1, 1, "int8", False),      # 25 pixels: the 7th tile of 4 has one
    (1, 5, 5, 32, 12, 1, 2, 0, "int8", True),      # 9 pixels: a stride-2 1x1 with float requantization
    (1, 3, 3, 24, 10, 3, 1, 1, "int32", False),    # 9 pixels, int32 out
]


@pytest.mark.parametrize("layer", LAYERS, ids=lambda v: "x".join(map(str, v[:6])) + f"-{v[8]}")
def test_split_layers_are_exact_and_faster(layer, server):
    n, h, w_, cin, cout, k, stride, pad, out, flt = layer
    x, w, b = tensors(n, h, w_, cin, cout, k, seed=seed_of("split", layer))
    rq = requant_for(x, w, b, stride=stride, padding=pad, dilation=1, groups=1, float_scale=flt) \
        if out == "int8" else None
    y, st = conv2d(x, w, b, stride=stride, padding=pad, requant=rq, out=out, config=TILE, server=server)
    assert st.bit_exact
    acc = golden.conv2d(x, w, b, stride=stride, padding=pad)
    want = acc if out == "int32" else (golden.requantize_float(acc, rq.scale, rq.zero_point) if flt
                                       else golden.requantize(acc, rq.multiplier, rq.shift, rq.zero_point))
    np.testing.assert_array_equal(y, want)
    spec = Conv2dSpec.from_tensors(x, w, b, stride=stride, padding=pad)
    blocking = plan_blocking(spec, TILE)
    assert blocking.split > 0
    assert st.cycles == estimate_conv(spec, TILE, out=out).cycles
    assert st.cycles < estimate_conv(spec, NO_SPLIT, out=out).cycles
    assert plan_blocking(spec, NO_SPLIT).split == 0


def test_batch1_linear_uses_every_row(server):
    rng = np.random.default_rng(seed_of("split-linear"))
    x = rng.integers(-128, 128, (1, 256), dtype=np.int8)
    w = rng.integers(-128, 128, (20, 256), dtype=np.int8)
    b = rng.integers(-5000, 5000, 20, dtype=np.int32)
    y, st = linear(x, w, b, out="int32", config=TILE, server=server)
    assert st.bit_exact
    np.testing.assert_array_equal(y, x.astype(np.int64) @ w.T.astype(np.int64) + b)
    spec = Conv2dSpec.from_tensors(x.reshape(1, 1, 1, 256), w.reshape(20, 1, 1, 256), b)
    assert plan_blocking(spec, TILE).split == 2     # log2 of 4 row groups: one pixel a tile
    # a quarter of the steps: 256 / 4 per column tile instead of 256
    assert st.cycles == estimate_conv(spec, TILE, out="int32").cycles
    assert st.cycles * 2 < estimate_conv(spec, NO_SPLIT, out="int32").cycles
