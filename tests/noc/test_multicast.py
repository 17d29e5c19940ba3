"""Multicast plane: rectangle multicast forked in the routers, on Amaranth's simulator."""

import random

import pytest
from amaranth.sim import Simulator

from tilelab.hdl.formats.noc import Opcode
from tilelab.noc.mesh import Mesh
from tilelab.sim.testbench import Stall, stream_get, stream_put


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
    plan = {}
    for src, lst in sends.items():
        plan[src] = []
        for rect, n in lst:
            words = [(serial << 8) | k for k in range(n)]
            serial += 1
            plan[src].append((rect, words))
            x0, y0, x1, y1 = rect
            if x0 <= x1 < cols and y0 <= y1 < rows:
                for node in _rect_nodes(rect):
                    expected[node].setdefault(src, []).extend(words)
    received = {node: [] for node in expected}
    done = {"producers": 0}
    want = sum(len(w) for e in expected.values() for w in e.values())
    state = {}

    def producer(src):
        async def tb(ctx):
            st = Stall(idle, 3, seed=hash((seed, src, "p")) & 0xFFFF)
            for (x0, y0, x1, y1), words in plan[src]:
                for k, word in enumerate(words):
                    flit = layout.const({
                        "hdr": {"op": Opcode.WRITE, "src": {"x": src[0], "y": src[1]},
                                "dst": {"x": x0, "y": y0}, "dst_end": {"x": x1, "y": y1}},
                        "last": k == len(words) - 1, "data": word})
                    await stream_put(ctx, dut.local(*src).i, flit, idle=st)
            done["producers"] += 1
        return tb

    def consumer(node):
        async def tb(ctx):
            st = Stall(stall, 4, seed=hash((seed, node, "c")) & 0xFFFF)
            while True:
                received[node].append(await stream_get(ctx, dut.local(*node).o, stall=st))
        return tb

    async def checker(ctx):
        for _ in range(limit):
            if done["producers"] == len(plan) and sum(len(v) for v in received.values()) >= want:
                break
            await ctx.tick()
        await ctx.tick().repeat(40)
        state["idle"] = ctx.get(dut.idle)
        state["dropped"] = ctx.get(dut.dropped)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for src in plan:
        sim.add_testbench(producer(src), background=True)
    for node in expected:
        sim.add_testbench(consumer(node), background=True)
    sim.add_testbench(checker)
    sim.run()
    for node, flows in expected.items():
        got = {}
        for flit in received[node]:
            src = (flit.hdr.src.x, flit.hdr.src.y)
            got.setdefault(src, []).append(flit.data)
        assert got == flows, f"node {node}"
    assert state["idle"] == 1
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
