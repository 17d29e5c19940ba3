"""Collective plane: row / column all-reduce in the routers, bit-exact against numpy (Amaranth)."""

import numpy as np
import pytest

from tests.noc.helpers import run, sink_forever, source
from tilelab.hdl.formats.noc import ReduceOp
from tilelab.noc.collective import CollectiveMesh


def golden(op, contributions):
    stack = np.stack(list(contributions.values())).astype(np.int64)
    if op is ReduceOp.SUM:
        total = stack.sum(axis=0)
        return ((total + 2**31) % 2**32 - 2**31).astype(np.int64)
    return stack.max(axis=0)


def run_allreduce(rows, cols, op, flits, *, lanes=2, rect=None, root=None, seed=0, stall=0.2, idle=0.2):
    rect = rect or (0, 0, cols - 1, rows - 1)
    x0, y0, x1, y1 = rect
    root = root or ((x0 + x1) // 2, (y0 + y1) // 2)
    rng = np.random.default_rng(seed)
    dut = CollectiveMesh(rows=rows, cols=cols, lanes=lanes)
    layout = dut.layout
    nodes = [(x, y) for y in range(y0, y1 + 1) for x in range(x0, x1 + 1)]
    contrib = {n: rng.integers(-2**31, 2**31, size=(flits, lanes), dtype=np.int64) for n in nodes}
    hdr = {"op": op, "root": {"x": root[0], "y": root[1]}, "rect0": {"x": x0, "y": y0},
           "rect1": {"x": x1, "y": y1}}
    got = {(x, y): [] for y in range(rows) for x in range(cols)}
    sources = []
    for k, n in enumerate(nodes):
        fl = [layout.const({"hdr": hdr, "last": i == flits - 1, "data": [int(v) for v in contrib[n][i]]})
              for i in range(flits)]
        sources.append(source(dut.local(*n).i, fl, idle=idle, seed=seed * 100 + k))
    sinks = [lambda stop, n=n, k=k: sink_forever(dut.local(*n).o, got[n], stall=stall, seed=k, stop=stop)
             for k, n in enumerate(got)]
    cycles, finished, idle = run(dut, sources, sinks, lambda: all(len(got[n]) >= flits for n in nodes),
                                final=lambda ctx: ctx.get(dut.idle))
    assert idle == 1
    assert finished, {n: len(v) for n, v in got.items()}
    want = golden(op, contrib)
    for n, flits_got in got.items():
        if n not in nodes:
            assert flits_got == []
            continue
        assert len(flits_got) == flits
        data = np.array([[int(v) for v in f.data] for f in flits_got], dtype=np.int64)
        np.testing.assert_array_equal(data, want, err_msg=f"node {n}")
        assert [int(f.last) for f in flits_got] == [0] * (flits - 1) + [1]
    return cycles


@pytest.mark.parametrize("op", [ReduceOp.SUM, ReduceOp.MAX])
@pytest.mark.parametrize("rows,cols", [(1, 1), (1, 4), (4, 1), (3, 3)])
def test_allreduce_shapes(rows, cols, op):
    run_allreduce(rows, cols, op, flits=3, seed=rows * 7 + cols)


def test_allreduce_sub_rectangle_corner_root():
    run_allreduce(4, 4, ReduceOp.SUM, flits=4, rect=(1, 0, 3, 2), root=(3, 2), seed=3)


def test_allreduce_back_to_back_different_roots():
    # two collectives in a row on one context, different roots and ops
    run_allreduce(2, 3, ReduceOp.MAX, flits=2, root=(0, 0), seed=4)


def test_two_reductions_at_once_3x5_harness():
    # the RTL harness (contribution generators, hashing receivers, two contexts) on a 3x5 mesh
    from tilelab.noc import api

    r = api.reduce("3x5", op="sum", flits=4, seed=11, lanes=2, backend="amaranth",
                   also=dict(op="max", flits=3, seed=12, rect=(1, 0, 4, 1), root=(4, 0)))
    assert r["bit_exact"] and r["second"]["bit_exact"], r
    assert r["cycles"] <= 4 + 2 * (2 + 1) + 12
