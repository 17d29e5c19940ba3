"""The tile estimate against the RTL: cycles within 5 % on every layer of the case table, the byte
and step counts exact, and every RTL cycle count above the physical bounds the estimate reports.

One simulator process of the small test tile runs the whole table (the conv case table every level
replays, plus larger dense layers with several blocks, a layer the writer sets, a linear layer,
depthwise layers with several channel groups and grouped layers in the depthwise mode).
"""

import pytest

from tests.cases import CONV_CASES, TILE, ConvCase
from tilelab.api.conv import conv2d
from tilelab.drive import SimServer, tile_unit
from tilelab.estimate import BOUNDS, estimate_conv
from tilelab.reference.layers import Conv2dSpec

#: Layers larger than the conv case table's.
LARGER = [ConvCase(*row) for row in [
    # name,                n, h,  w,  cin, cout, k, stride, pad, dil, groups, out
    ("dense3x3-c24",        1, 10, 10, 24,  24,   3, 1,      1,   1,   1,      "int8"),
    ("dense3x3-s2-n2-c36",  2, 11, 11, 16,  36,   3, 2,      1,   1,   1,      "int8"),
    ("dense1x1-c40-int32",  1, 9,  9,  40,  40,   1, 1,      0,   1,   1,      "int32"),
    ("dense1x1-cin2",       1, 8,  8,  2,   20,   1, 1,      0,   1,   1,      "int8"),   # 2 steps a tile: the writer
    ("linear-n3-k200",      3, 1,  1,  200, 40,   1, 1,      0,   1,   1,      "int8"),
    ("dw-c32",              1, 12, 12, 32,  32,   3, 1,      1,   1,   32,     "int8"),
    ("dw-c48-s2-int32",     1, 9,  11, 48,  48,   3, 2,      1,   1,   48,     "int32"),
    ("grouped-g4-c32",      1, 12, 12, 32,  32,   3, 1,      1,   1,   8,      "int8"),
    ("grouped-g2-c24-s2-int32", 1, 9, 11, 24, 24,  3, 2,      1,   1,   12,     "int32"),
    ("grouped-g4-wide",     1, 5,  40, 8,   8,    3, 1,      1,   1,   2,      "int8"),    # a tight ring
    # one-channel 3×3 stems: pixel gangs of im2col runs (rows padded to 16 bytes); packed int8
    ("stem3x3-cin1-s2",     1, 13, 14, 1,   8,    3, 2,      1,   1,   1,      "int8"),
    ("stem3x3-cin1-s1-int32", 1, 9, 12, 1,  4,    3, 1,      1,   1,   1,      "int32"),
    ("dense1x1-packed-c20", 2, 6,  6,  8,   20,   1, 1,      0,   1,   1,      "int8"),    # 5 tiles: 4 + 1
]]
CASES = CONV_CASES + LARGER

#: Largest |estimate - RTL| / RTL accepted on any layer.
TOLERANCE = 0.05


@pytest.fixture(scope="module")
def server():
    with SimServer(tile_unit(TILE)) as s:
        yield s


@pytest.fixture(scope="module")
def runs(server):
    """RTL statistics and the estimate of every case (the RTL runs once per case)."""
    done = {}
    for case in CASES:
        x, w, b, rq, act = case.layer()
        spec = Conv2dSpec.from_tensors(x, w, b, **case.conv)
        _, stats = conv2d(x, w, b, requant=rq, activation=act, out=case.out, config=TILE, server=server,
                          **case.conv)
        assert stats.bit_exact, case.name
        done[case.name] = (spec, stats, estimate_conv(spec, TILE, out=case.out))
    return done


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_estimate_within_tolerance_of_rtl(case, runs):
    _, stats, est = runs[case.name]
    error = (est.cycles - stats.cycles) / stats.cycles
    assert abs(error) <= TOLERANCE, f"{case.name}: estimate {est.cycles}, RTL {stats.cycles} ({100 * error:+.1f} %)"
    # what the estimate counts without timing is exact
    for name in ("macs", "mac_steps", "compute_busy", "reader_busy", "writer_busy", "ext_bytes_read",
                 "ext_bytes_written", "cmd_bytes_read"):
        assert est.counters[name] == stats.counters[name], name
    assert est.bound in BOUNDS


GROUPED = [c for c in CASES if "grouped" in c.name]


@pytest.mark.parametrize("case", GROUPED, ids=[c.name for c in GROUPED])
def test_grouped_estimate_is_exact(case, runs):
    """Grouped layers (the depthwise mode's grouped form, and the dense fallbacks): the estimate
    models every engine as the RTL runs it, to the cycle."""
    _, stats, est = runs[case.name]
    assert est.cycles == stats.cycles
    assert est.counters["compute_wait_cb"] == stats.counters["compute_wait_cb"]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_rtl_cycles_above_physical_bounds(case, runs):
    spec, stats, est = runs[case.name]
    R, C, W = TILE.rows, TILE.cols, TILE.ext_bytes
    assert set(est.physical) == {"compute", "read", "write"}
    assert est.physical["compute"] * R * C >= spec.macs > (est.physical["compute"] - 1) * R * C
    assert est.physical["read"] * W >= stats.ext_bytes_read > (est.physical["read"] - 1) * W
    assert est.physical["write"] * W >= stats.ext_bytes_written > (est.physical["write"] - 1) * W
    assert stats.cycles >= est.physical_bound
    assert est.cycles >= est.physical_bound and est.physical_ratio >= 1
    assert stats.cycles >= max(est.engines["array"], est.engines["reader"], est.engines["writer"])
