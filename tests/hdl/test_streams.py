# amaranth: UnusedElaboratable=no
"""Stream plumbing: SkidBuffer, StreamFIFO, RoundRobinArbiter, StreamFork, StreamJoin."""

import random
import re

import pytest
from amaranth.back import verilog
from amaranth.lib import data

from tilelab.hdl.lint import lint_verilog
from tilelab.hdl.streams import RoundRobinArbiter, SkidBuffer, StreamFIFO, StreamFork, StreamJoin
from tilelab.sim.testbench import (
    Stall,
    expect_quiet,
    run_simulation,
    stream_get,
    stream_monitor,
    stream_put,
    with_clock,
)


def producer(stream, items, idle=None):
    async def tb(ctx):
        for item in items:
            await stream_put(ctx, stream, item, idle=idle)
    return tb


def consumer(stream, count, got, stall=None, quiet=True):
    async def tb(ctx):
        for _ in range(count):
            got.append(await stream_get(ctx, stream, stall=stall))
        if quiet:
            await expect_quiet(ctx, stream)
    return tb


# ---- SkidBuffer ------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(3))
def test_skid_random_stalls(seed):
    dut = SkidBuffer(shape=16)
    rng = random.Random(seed)
    items = [rng.randrange(1 << 16) for _ in range(150)]
    got, seen = [], []
    run_simulation(dut, producer(dut.i, items, Stall(0.3, 3, seed)),
                   consumer(dut.o, len(items), got, Stall(0.4, 4, seed + 100)),
                   processes=[stream_monitor(dut.o, seen)])
    assert got == items
    assert seen == items


def test_skid_full_throughput():
    dut = SkidBuffer(shape=8)
    items = list(range(64))
    got = []
    cycles = {}

    async def sink(ctx):
        ctx.set(dut.o.ready, 1)
        n = 0
        while len(got) < len(items):
            valid, payload = ctx.get(dut.o.valid), ctx.get(dut.o.payload)
            await ctx.tick()
            n += 1
            if valid:
                got.append(payload)
        cycles["n"] = n

    run_simulation(dut, producer(dut.i, items), sink)
    assert got == items
    assert cycles["n"] == len(items) + 1          # one cycle of latency, no bubbles


def test_skid_registered_ready():
    """With the output stalled it takes exactly two items, then drops ready."""
    dut = SkidBuffer(shape=8)

    async def tb(ctx):
        ctx.set(dut.i.valid, 1)
        for k in range(4):
            ctx.set(dut.i.payload, k)
            _, _, ready = await ctx.tick().sample(dut.i.ready)
            assert ready == (k < 2)
            if not ready:
                break
        ctx.set(dut.i.valid, 0)
        assert ctx.get(dut.o.valid) and ctx.get(dut.o.payload) == 0
        got = [await stream_get(ctx, dut.o) for _ in range(2)]
        assert got == [0, 1]
        await expect_quiet(ctx, dut.o)

    run_simulation(dut, tb)


def test_skid_bad_shape():
    with pytest.raises(TypeError, match=re.escape("shape must be a shape-castable object, not 'x'")):
        SkidBuffer(shape="x")


# ---- StreamFIFO ------------------------------------------------------------------------------------

@pytest.mark.parametrize("buffered", [True, False])
@pytest.mark.parametrize("depth", [1, 2, 5])
def test_fifo_random_stalls(depth, buffered):
    dut = StreamFIFO(shape=12, depth=depth, buffered=buffered)
    rng = random.Random(depth)
    items = [rng.randrange(1 << 12) for _ in range(80)]
    got = []
    levels = []

    async def level_watch(ctx):
        async for _, _, level in ctx.tick().sample(dut.level):
            levels.append(level)

    async def sink(ctx):
        for _ in items:
            got.append(await stream_get(ctx, dut.o, stall=Stall(0.5, 4, depth)))
        await expect_quiet(ctx, dut.o)
        assert ctx.get(dut.level) == 0

    run_simulation(dut, producer(dut.i, items, Stall(0.3, 3, depth + 7)), sink,
                   processes=[stream_monitor(dut.o), level_watch])
    assert got == items
    assert max(levels) <= depth


@pytest.mark.parametrize("buffered", [True, False])
def test_fifo_fills_to_depth(buffered):
    dut = StreamFIFO(shape=8, depth=4, buffered=buffered)

    async def tb(ctx):
        for k in range(4):
            await stream_put(ctx, dut.i, k)
        await ctx.tick().repeat(2)
        assert ctx.get(dut.level) == 4
        assert not ctx.get(dut.i.ready)
        assert [await stream_get(ctx, dut.o) for _ in range(4)] == [0, 1, 2, 3]
        await expect_quiet(ctx, dut.o)
        assert ctx.get(dut.level) == 0

    run_simulation(dut, tb)


def test_fifo_struct_payload():
    layout = data.StructLayout({"a": 4, "b": 3})
    dut = StreamFIFO(shape=layout, depth=3)
    items = [{"a": k % 16, "b": k % 8} for k in range(20)]
    got = []

    async def sink(ctx):
        for _ in items:
            payload = await stream_get(ctx, dut.o, stall=Stall(0.3, 2, 1))
            got.append({"a": payload.a, "b": payload.b})
        await expect_quiet(ctx, dut.o)

    run_simulation(dut, producer(dut.i, items, Stall(0.3, 2, 2)), sink)
    assert got == items


def test_fifo_bad_depth():
    with pytest.raises(ValueError, match=re.escape("depth must be a positive integer, not 0")):
        StreamFIFO(shape=8, depth=0)
    with pytest.raises(TypeError, match=re.escape("depth must be a positive integer, not 2.5")):
        StreamFIFO(shape=8, depth=2.5)
    with pytest.raises(TypeError, match=re.escape("buffered must be a bool, not 1")):
        StreamFIFO(shape=8, depth=2, buffered=1)


# ---- RoundRobinArbiter -----------------------------------------------------------------------------

TAGGED = data.StructLayout({"seq": 8, "src": 2, "last": 1})


@pytest.mark.parametrize("seed", range(3))
def test_arbiter_random(seed):
    n = 3
    dut = RoundRobinArbiter(shape=TAGGED, n=n)
    rng = random.Random(seed)
    counts = [rng.randrange(10, 40) for _ in range(n)]
    items = [[{"seq": k, "src": src, "last": 0} for k in range(counts[src])] for src in range(n)]
    got = []
    grants = []

    async def sink(ctx):
        stall = Stall(0.4, 3, seed)
        for _ in range(sum(counts)):
            if n := stall.cycles():
                await ctx.tick().repeat(n)
            ctx.set(dut.o.ready, 1)
            payload, grant = await ctx.tick().sample(dut.o.payload, dut.grant).until(dut.o.valid)
            ctx.set(dut.o.ready, 0)
            got.append((payload.src, payload.seq))
            grants.append(grant)
        await expect_quiet(ctx, dut.o)

    producers = [producer(dut.i[src], items[src], Stall(0.5, 4, seed * 10 + src)) for src in range(n)]
    run_simulation(dut, *producers, sink, processes=[stream_monitor(dut.o)])
    assert grants == [src for src, _ in got]
    for src in range(n):
        assert [seq for s, seq in got if s == src] == list(range(counts[src]))


def test_arbiter_fair_rotation():
    n = 4
    dut = RoundRobinArbiter(shape=8, n=n)
    got = []
    per_input = 6
    run_simulation(dut, *(producer(dut.i[s], [s] * per_input) for s in range(n)),
                   consumer(dut.o, n * per_input, got))
    assert got == list(range(n)) * per_input


@pytest.mark.parametrize("seed", range(3))
def test_arbiter_packets(seed):
    n = 3
    dut = RoundRobinArbiter(shape=TAGGED, n=n, packet=True)
    rng = random.Random(seed)
    packets = []
    items = []
    for src in range(n):
        flits = []
        seq = 0
        for _ in range(rng.randrange(3, 8)):
            length = rng.randrange(1, 5)
            for k in range(length):
                flits.append({"seq": seq, "src": src, "last": int(k == length - 1)})
                seq += 1
        items.append(flits)
        packets.append(seq)
    got = []

    async def sink(ctx):
        for _ in range(sum(packets)):
            payload = await stream_get(ctx, dut.o, stall=Stall(0.4, 3, seed))
            got.append((payload.src, payload.seq, payload.last))
        await expect_quiet(ctx, dut.o)

    producers = [producer(dut.i[src], items[src], Stall(0.5, 4, seed * 10 + src)) for src in range(n)]
    run_simulation(dut, *producers, sink, processes=[stream_monitor(dut.o)])
    # Packets never interleave: the source only changes right after a last flit.
    for (src_a, _, last_a), (src_b, _, _) in zip(got, got[1:], strict=False):
        assert last_a or src_a == src_b
    for src in range(n):
        assert [seq for s, seq, _ in got if s == src] == list(range(packets[src]))


def test_arbiter_bad_params():
    with pytest.raises(ValueError, match=re.escape("n must be a positive integer, not 0")):
        RoundRobinArbiter(shape=8, n=0)
    with pytest.raises(ValueError, match=re.escape(
            "packet=True needs a struct payload with a 1-bit field 'last', not 8")):
        RoundRobinArbiter(shape=8, n=2, packet=True)
    wide_last = data.StructLayout({"last": 2})
    with pytest.raises(ValueError, match=re.escape(
            f"packet=True needs a struct payload with a 1-bit field 'last', not {wide_last!r}")):
        RoundRobinArbiter(shape=wide_last, n=2, packet=True)


# ---- StreamFork ------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(3))
def test_fork_random(seed):
    n = 3
    dut = StreamFork(shape=10, n=n)
    rng = random.Random(seed)
    items = [rng.randrange(1 << 10) for _ in range(60)]
    got = [[] for _ in range(n)]
    sinks = [consumer(dut.o[k], len(items), got[k], Stall(0.5, 4, seed * 10 + k)) for k in range(n)]
    run_simulation(dut, producer(dut.i, items, Stall(0.3, 3, seed)), *sinks,
                   processes=[stream_monitor(dut.o[k]) for k in range(n)])
    assert got == [items] * n


def test_fork_full_throughput():
    n = 2
    dut = StreamFork(shape=8, n=n)
    items = list(range(32))

    async def sinks(ctx):
        for k in range(n):
            ctx.set(dut.o[k].ready, 1)
        got = []
        cycles = 0
        while len(got) < len(items):
            valids = [ctx.get(dut.o[k].valid) for k in range(n)]
            payload = ctx.get(dut.o[0].payload)
            await ctx.tick()
            cycles += 1
            assert all(valids)
            got.append(payload)
        assert got == items
        assert cycles == len(items)                  # combinational: one item per cycle, no latency

    run_simulation(dut, producer(dut.i, items), sinks)


# ---- StreamJoin ------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(2))
def test_join_random(seed):
    dut = StreamJoin(shapes={"a": 8, "b": data.StructLayout({"x": 3, "y": 5}), "c": 1})
    rng = random.Random(seed)
    count = 50
    a = [rng.randrange(256) for _ in range(count)]
    b = [{"x": rng.randrange(8), "y": rng.randrange(32)} for _ in range(count)]
    c = [rng.randrange(2) for _ in range(count)]
    got = []

    async def sink(ctx):
        for _ in range(count):
            p = await stream_get(ctx, dut.o, stall=Stall(0.4, 3, seed))
            got.append((p.a, {"x": p.b.x, "y": p.b.y}, p.c))
        await expect_quiet(ctx, dut.o)

    run_simulation(with_clock(dut), producer(dut.i.a, a, Stall(0.5, 3, seed + 1)),
                   producer(dut.i.b, b, Stall(0.5, 3, seed + 2)),
                   producer(dut.i.c, c, Stall(0.5, 3, seed + 3)), sink,
                   processes=[stream_monitor(dut.o)])
    assert got == list(zip(a, b, c, strict=True))


def test_join_sequence_names():
    dut = StreamJoin(shapes=[4, 6])
    assert dut.names == ("f0", "f1")
    got = []

    async def sink(ctx):
        for _ in range(5):
            p = await stream_get(ctx, dut.o)
            got.append((p.f0, p.f1))
        await expect_quiet(ctx, dut.o)

    run_simulation(with_clock(dut), producer(dut.i.f0, range(5)), producer(dut.i.f1, range(10, 15)), sink)
    assert got == [(k, k + 10) for k in range(5)]


def test_join_bad_params():
    with pytest.raises(ValueError, match=re.escape("shapes must name at least one input, not []")):
        StreamJoin(shapes=[])
    with pytest.raises(ValueError, match=re.escape("input names must be public Python identifiers, not '1x'")):
        StreamJoin(shapes={"1x": 8})
    with pytest.raises(TypeError, match=re.escape("shape of input 'a' must be a shape-castable object, not 'z'")):
        StreamJoin(shapes={"a": "z"})


# ---- Verilog -------------------------------------------------------------------------------------

@pytest.mark.verilator
@pytest.mark.parametrize("make, name", [
    (lambda: SkidBuffer(shape=8), "skid"),
    (lambda: StreamFIFO(shape=8, depth=4), "fifo"),
    (lambda: RoundRobinArbiter(shape=TAGGED, n=3, packet=True), "arbiter"),
    (lambda: StreamFork(shape=8, n=3), "fork"),
    (lambda: StreamJoin(shapes={"a": 8, "b": TAGGED}), "join"),
])
def test_verilator_lint(make, name):
    lint_verilog(verilog.convert(make(), name=name), name)
