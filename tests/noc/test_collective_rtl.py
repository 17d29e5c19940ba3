"""All-reduce on an 8×8 collective plane (Verilator), bit-exact against numpy: rectangles of
1×1, 1×N, N×1, 3×5 and 8×8 participants, sum and max, and two reductions at once."""

import pytest

from tilelab.noc import api
from tilelab.sim import icarus_available

pytestmark = [pytest.mark.verilator, pytest.mark.slow]

#: 8x8 harnesses take minutes to build with Verilator and seconds with Icarus; their runs are short.
BIG = "icarus" if icarus_available() else "verilator"


def test_allreduce_shapes_8x8_plane():
    runs = []
    for op in ("sum", "max"):
        runs += [
            dict(op=op, flits=5, seed=1, rect=(3, 4, 3, 4)),             # 1x1
            dict(op=op, flits=6, seed=2, rect=(0, 2, 7, 2), root=(5, 2)),  # 1xN (a row)
            dict(op=op, flits=6, seed=3, rect=(6, 0, 6, 7), root=(6, 1)),  # Nx1 (a column)
            dict(op=op, flits=7, seed=4, rect=(1, 2, 5, 4), root=(1, 4)),  # 3x5, corner root
            dict(op=op, flits=16, seed=5),                                  # 8x8, centre root
        ]
    results = api.reduce_many("8x8", runs, backend=BIG)
    for run, r in zip(runs, results, strict=True):
        assert r["bit_exact"], (run, r)
        inside = sum(1 for v in r["delivered"].values() if v)
        x0, y0, x1, y1 = r["rect"]
        assert inside == (x1 - x0 + 1) * (y1 - y0 + 1)


def test_two_reductions_at_once():
    runs = [
        # overlapping rectangles, different roots and ops, on the two contexts
        dict(op="sum", flits=20, seed=7, also=dict(op="max", flits=9, seed=8, rect=(2, 1, 6, 5), root=(6, 5))),
        # disjoint halves
        dict(op="max", flits=12, seed=9, rect=(0, 0, 3, 7), also=dict(op="sum", flits=12, seed=10, rect=(4, 0, 7, 7))),
    ]
    for r in api.reduce_many("8x8", runs, backend=BIG):
        assert r["bit_exact"] and r["second"]["bit_exact"], r


def test_allreduce_latency_goal():
    m = 64
    r = api.reduce("8x8", op="sum", flits=m, seed=3, backend=BIG)
    assert r["bit_exact"]
    assert r["cycles"] <= 75 + m, r["cycles"]
