"""The tile estimate without the RTL: arguments, bounds, and the pieces of the model."""

import pytest

from tests.cases import TILE
from tilelab.compile.tile import LayoutError, compile_conv, program_streams
from tilelab.estimate import estimate_conv, estimate_linear
from tilelab.estimate.tile import _ganged_cycles, _pieces, _row_pieces
from tilelab.estimate.timeline import Track
from tilelab.pe_models.config import DEFAULT_TILE
from tilelab.reference.layers import Conv2dSpec, LinearSpec


def test_bad_arguments_name_the_value():
    spec = Conv2dSpec(n=1, h=4, w=4, cin=4, cout=4, kh=3, kw=3, padding=1)
    with pytest.raises(TypeError, match="Conv2dSpec"):
        estimate_conv((1, 4, 4, 4), TILE)
    with pytest.raises(TypeError, match="TileConfig"):
        estimate_conv(spec, "tile")
    with pytest.raises(ValueError, match="'int16'"):
        estimate_conv(spec, TILE, out="int16")
    with pytest.raises(LayoutError, match="cannot fit L1"):
        estimate_conv(Conv2dSpec(n=1, h=4, w=4, cin=512, cout=4, kh=3, kw=3, padding=1), TILE)


def test_streams_are_the_compiled_descriptors():
    spec = Conv2dSpec(n=1, h=9, w=9, cin=8, cout=12, kh=3, kw=3, stride=2, padding=1)
    streams = program_streams(spec, TILE)
    import numpy as np

    x = np.zeros(spec.input_shape, np.int8)
    w = np.zeros((12, 3, 3, 8), np.int8)
    prog = compile_conv(x, w, np.zeros(12, np.int32), spec, TILE)
    assert prog.descriptors == {"reader": len(streams.reader), "compute": len(streams.compute),
                                "writer": len(streams.writer)}
    assert prog.blocking == streams.blocking


def test_reader_pieces_split_at_lane_words():
    assert _pieces(0, 16, 16) == 1 and _pieces(15, 2, 16) == 2 and _pieces(3, 0, 16) == 0
    # an im2col row of 9 taps of 5 bytes from lane byte 0: 45 bytes cross two word boundaries
    assert _row_pieces(0, 9, 5, 16) == 11
    # a ganged read of 8 rows, 2 a read, 4 when port b is free too
    assert _ganged_cycles(8, 1, 4, lambda i: True) == 4
    assert _ganged_cycles(8, 1, 4, lambda i: False) == 2


def test_track_counts_and_cycles():
    t = Track()
    t.add(10, 8, batch=2, period=1)     # 2 at 10, 4 at 11, ...
    t.add(20, 3)
    assert t.when(0) == 0 and t.when(1) == 10 and t.when(3) == 11 and t.when(8) == 13 and t.when(9) == 20
    assert t.when(12) is None and t.span(3) == 4 and t.span(9) == 11


def test_bounds_name_what_sets_the_layer():
    # 7x7 taps of 3 channels: one reader cycle per 3-byte tap, the read port sets conv1
    conv1 = estimate_conv(Conv2dSpec(n=1, h=224, w=224, cin=3, cout=64, kh=7, kw=7, stride=2, padding=3),
                          DEFAULT_TILE)
    assert conv1.bound == "read port" and conv1.engines["reader"] > conv1.engines["array"]
    # a 3x3 layer with 64 channels keeps the array busy
    res2 = estimate_conv(Conv2dSpec(n=1, h=56, w=56, cin=64, cout=64, kh=3, kw=3, padding=1), DEFAULT_TILE)
    assert res2.bound == "array" and res2.mac_utilization > 0.95
    # two steps a tile, five int32 rows of a pixel to store (int8 rows would pack into two): the writer
    thin = estimate_conv(Conv2dSpec(n=1, h=8, w=8, cin=2, cout=20, kh=1, kw=1), TILE, out="int32")
    assert thin.bound == "write port"
    packed = estimate_conv(Conv2dSpec(n=1, h=8, w=8, cin=2, cout=20, kh=1, kw=1), TILE)
    assert packed.engines["writer"] == 64 * 2 and packed.bound == "array"
    # a tiny layer is mostly loading and pipeline latency
    tiny = estimate_conv(Conv2dSpec(n=1, h=2, w=2, cin=4, cout=4, kh=1, kw=1), TILE)
    assert tiny.bound == "overhead"
    for e in (conv1, res2, thin, tiny):
        assert e.cycles >= e.physical_bound and 0 < e.mac_utilization <= 1


def test_depthwise_on_the_default_tile_meets_the_ports_and_the_drain():
    # 9 taps a tile but 16 cycles to drain 32 rows two at a time; the input read once and the output
    # stored once, W bytes a cycle, take as long: three bounds within 3 % of each other (README: 50.4 %)
    e = estimate_conv(Conv2dSpec(n=1, h=28, w=28, cin=128, cout=128, kh=3, kw=3, padding=1, groups=128),
                      DEFAULT_TILE)
    assert e.blocking["depthwise"] and e.bound in ("array drain", "read port", "write port")
    assert e.engines["array_drain"] > 1.7 * e.engines["array"]
    top = [e.engines[k] for k in ("array_drain", "reader", "writer")]
    assert max(top) < 1.03 * min(top)
    assert 0.45 < e.mac_utilization < 9 * DEFAULT_TILE.ext_bytes / DEFAULT_TILE.peak_macs_per_cycle


def test_linear_is_a_1x1_conv():
    a = estimate_linear(LinearSpec(n=2, k=64, nout=24), TILE)
    b = estimate_conv(Conv2dSpec(n=2, h=1, w=1, cin=64, cout=24, kh=1, kw=1), TILE)
    assert a == b
