"""Multicast plane: rectangle multicast forked in the routers, on Amaranth's simulator."""

import random

import pytest

from tests.noc.helpers import run, sink_forever, source
from tilelab.hdl.formats.noc import Opcode
from tilelab.noc.mesh import Mesh


def _rect_nodes(rect):
    x0, y0, x1, y1 = rect
    return [(x, y) for y in range(y0, y1 + 1) for x in range(x0, x1 + 1)]


def run_multicast(rows, cols, sends, *, stall=0.3, idle=0.3, max_packet=4, depth=None, seed=0,
                  limit=50_000):
    """``sends``: {(sx, sy): [(rect, n_flits), ...]}; check every rectangle node gets every
    packet exactly once, in order per source, and nothing else."""
    dut = Mesh(rows=rows, cols=cols, plane="multicast", data_width=32, max_packet=max_packet, depth=depth)
    layout = dut.layout
    expected = {(x, y): {} for y in range(rows) for x in range(cols)}
    serial = 0
    flits = {}
    for src, lst in sends.items():
        flits[src] = []
        for rect, n in lst:
            words = [(serial << 8) | k for k in range(n)]
            serial += 1
            x0, y0, x1, y1 = rect
            for k, word in enumerate(words):
                flits[src].append(layout.const({
                    "hdr": {"op": Opcode.WRITE, "src": {"x": src[0], "y": src[1]},
                            "dst": {"x": x0, "y": y0}, "dst_end": {"x": x1, "y": y1}},
                    "last": k == n - 1, "data": word}))
            if x0 <= x1 < cols and y0 <= y1 < rows:
                for node in _rect_nodes(rect):
                    expected[node].setdefault(src, []).extend(words)
    received = {node: [] for node in expected}
    want = sum(len(w) for e in expected.values() for w in e.values())
    done = []
    sources = [source(dut.local(*src).i, fl, idle=idle, seed=seed * 1000 + k, done=done)
               for k, (src, fl) in enumerate(flits.items())]
    sinks = [lambda stop, node=node, k=k: sink_forever(dut.local(*node).o, received[node], stall=stall,
                                                       seed=seed * 1000 + k, stop=stop)
             for k, node in enumerate(expected)]
    def finished():
        return len(done) == len(flits) and sum(len(v) for v in received.values()) >= want

    cycles, ok, state = run(dut, sources, sinks, finished, limit=limit,
                            final=lambda ctx: {"idle": ctx.get(dut.idle), "dropped": ctx.get(dut.dropped)})
    assert ok, f"not finished after {cycles} cycles"
    assert state["idle"] == 1
    for node, flows in expected.items():
        got = {}
        for flit in received[node]:
            src = (flit.hdr.src.x, flit.hdr.src.y)
            got.setdefault(src, []).append(flit.data)
        assert got == flows, f"node {node}"
    return state


def test_multicast_all_rectangles_one_source():
    rng = random.Random(1)
    rows, cols = 3, 3
    rects = [(x0, y0, x1, y1) for x0 in range(cols) for x1 in range(x0, cols)
             for y0 in range(rows) for y1 in range(y0, rows)]
    sends = {(1, 1): [(r, rng.randint(1, 3)) for r in rects]}
    run_multicast(rows, cols, sends, stall=0.2, idle=0.1)


@pytest.mark.parametrize("seed", [1, 2])
def test_overlapping_multicasts_concurrent(seed):
    rng = random.Random(seed)
    rows, cols = 3, 4

    def rect():
        x0, x1 = sorted(rng.randrange(cols) for _ in range(2))
        y0, y1 = sorted(rng.randrange(rows) for _ in range(2))
        return (x0, y0, x1, y1)

    sends = {(x, y): [(rect(), rng.randint(1, 9)) for _ in range(4)]
             for y in range(rows) for x in range(cols)}
    run_multicast(rows, cols, sends, seed=seed)


def test_multicast_bad_rectangles_dropped():
    sends = {(0, 0): [((1, 0, 0, 1), 2), ((0, 0, 4, 1), 3), ((0, 0, 1, 1), 2), ((2, 2, 1, 1), 1)]}
    state = run_multicast(2, 2, sends)
    assert state["dropped"] == 3
