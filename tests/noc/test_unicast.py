"""Unicast planes: XY wormhole routing with backpressure, on Amaranth's simulator."""

import random

import pytest
from amaranth.sim import Simulator

from tests.cases import seed_of
from tilelab.hdl.formats.noc import Opcode
from tilelab.noc.mesh import Mesh
from tilelab.sim.testbench import Stall, stream_get, stream_put


def _packets(rows, cols, count, seed, max_flits=3, bad=0.0):
    """Random multi-flit packets per source: {(sx, sy): [(dst, [data...]), ...]}."""
    rng = random.Random(seed)
    out = {}
    serial = 0
    for sy in range(rows):
        for sx in range(cols):
            pkts = []
            for _ in range(count):
                if rng.random() < bad:
                    dst = (rng.randrange(cols, 16), rng.randrange(0, 16))
                else:
                    dst = (rng.randrange(cols), rng.randrange(rows))
                n = rng.randint(1, max_flits)
                pkts.append((dst, [(serial << 8) | k for k in range(n)]))
                serial += 1
            out[sx, sy] = pkts
    return out


def run_unicast(rows, cols, count, seed, *, stall=0.3, idle=0.3, depth=4, max_flits=3, bad=0.0):
    dut = Mesh(rows=rows, cols=cols, plane="unicast", data_width=32, depth=depth)
    layout = dut.layout
    pkts = _packets(rows, cols, count, seed, max_flits, bad)
    expected = {}
    for (sx, sy), plist in pkts.items():
        for dst, flits in plist:
            if dst[0] < cols and dst[1] < rows:
                expected.setdefault(dst, {}).setdefault((sx, sy), []).append(flits)
    received = {(x, y): [] for y in range(rows) for x in range(cols)}
    done = {"producers": 0}
    total_flits = {d: sum(len(f) for fl in src.values() for f in fl) for d, src in expected.items()}
    state = {}

    def producer(sx, sy):
        async def tb(ctx):
            st = Stall(idle, 3, seed=seed_of(seed, sx, sy, "p") & 0xFFFF)
            for dst, flits in pkts[sx, sy]:
                for k, word in enumerate(flits):
                    flit = layout.const({
                        "hdr": {"op": Opcode.WRITE, "src": {"x": sx, "y": sy},
                                "dst": {"x": dst[0], "y": dst[1]}},
                        "last": k == len(flits) - 1, "data": word})
                    await stream_put(ctx, dut.local(sx, sy).i, flit, idle=st)
            done["producers"] += 1
        return tb

    def consumer(x, y):
        async def tb(ctx):
            st = Stall(stall, 4, seed=seed_of(seed, x, y, "c") & 0xFFFF)
            for _ in range(total_flits.get((x, y), 0)):
                received[x, y].append(await stream_get(ctx, dut.local(x, y).o, stall=st))
        return tb

    async def checker(ctx):
        # wait for all consumers' expected flits, then for quiet, then check nothing extra comes
        for _ in range(50_000):
            if done["producers"] == rows * cols and sum(len(v) for v in received.values()) == sum(
                    total_flits.values()):
                break
            await ctx.tick()
        await ctx.tick().repeat(30)
        state["idle"] = ctx.get(dut.idle)
        state["dropped"] = ctx.get(dut.dropped)
        state["extra"] = [(x, y) for y in range(rows) for x in range(cols)
                          if ctx.get(dut.local(x, y).o.valid)]

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for y in range(rows):
        for x in range(cols):
            sim.add_testbench(producer(x, y), background=True)
            sim.add_testbench(consumer(x, y), background=True)
    sim.add_testbench(checker)
    sim.run()
    # rebuild packets per flow at each destination
    for dst, flows in expected.items():
        got = {}
        current = {}
        for flit in received[dst]:
            src = (flit.hdr.src.x, flit.hdr.src.y)
            assert (flit.hdr.dst.x, flit.hdr.dst.y) == dst
            current.setdefault(src, []).append(flit.data)
            if flit.last:
                got.setdefault(src, []).append(current.pop(src))
        assert not current, f"unfinished packets at {dst}: {current}"
        assert got == flows, f"destination {dst}"
    assert state["extra"] == []
    assert state["idle"] == 1
    n_bad = sum(1 for plist in pkts.values() for dst, _ in plist if dst[0] >= cols or dst[1] >= rows)
    assert state["dropped"] == n_bad
    return dut


@pytest.mark.parametrize("rows,cols", [(1, 1), (2, 3), (3, 3)])
def test_unicast_random_traffic(rows, cols):
    run_unicast(rows, cols, 12, seed=rows * 10 + cols)


def test_unicast_out_of_mesh_dropped():
    run_unicast(2, 2, 10, seed=5, bad=0.3)


def test_unicast_no_stalls_depth_one():
    run_unicast(2, 2, 10, seed=7, stall=0.0, idle=0.0, depth=1, max_flits=5)
