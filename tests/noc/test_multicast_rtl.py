"""Rectangle multicast on the multicast plane (Verilator): every rectangle of a 4×4 mesh from every
source, inside or outside the rectangle; each destination gets every flit exactly once."""

import pytest

from tilelab.noc import api
from tilelab.sim import icarus_available

pytestmark = pytest.mark.verilator

#: 8x8 harnesses take minutes to build with Verilator and seconds with Icarus; their runs are short.
BIG = "icarus" if icarus_available() else "verilator"


def test_every_rectangle_from_every_source_4x4():
    rects = [(x0, y0, x1, y1) for x0 in range(4) for x1 in range(x0, 4) for y0 in range(4) for y1 in range(y0, 4)]
    assert len(rects) == 100
    cases = [(rect, (sx, sy), 5, 3 * i + sx) for i, rect in enumerate(rects) for sy in range(4) for sx in range(4)]
    results = api.multicast_many("4x4", cases)
    assert len(results) == 1600
    injected = 0
    for (rect, src, flits, _), r in zip(cases, results, strict=True):
        assert r["bit_exact"], (rect, src, r)
        c = r["checks"]
        assert c["delivered"] == c["injected"] and c["lost"] == c["duplicated"] == c["misrouted"] == 0, (rect, src, c)
        assert c["reordered_or_corrupt"] == 0, (rect, src, c)
        injected += c["injected"]
        x0, y0, x1, y1 = rect
        for key, n in r["delivered"].items():
            x, y = map(int, key.split(","))
            assert n == (flits if x0 <= x <= x1 and y0 <= y <= y1 else 0), (rect, src, key)
    assert injected == 5 * 16 * sum((x1 - x0 + 1) * (y1 - y0 + 1) for x0, y0, x1, y1 in rects)


@pytest.mark.slow
def test_full_grid_multicast_rate_8x8():
    r = api.multicast("8x8", rect=(0, 0, 7, 7), src=(3, 3), flits=256, seed=5, backend=BIG)
    assert r["bit_exact"]
    assert r["destinations"] == 64
    assert r["min_rate"] >= 0.9, r["min_rate"]
