# amaranth: UnusedElaboratable=no
"""SRAMBank and BankedMemory against cycle-level Python models."""

import random
import re

import pytest
from amaranth.back import verilog

from tilelab.hdl.lint import lint_verilog
from tilelab.hdl.sram import BankedMemory, SRAMBank
from tilelab.sim.testbench import (
    Stall,
    expect_quiet,
    run_simulation,
    stream_get,
    stream_monitor,
    stream_put,
)


def apply_mask(old, new, mask, granularity):
    """Word after writing ``new`` over ``old`` with lane enables ``mask``."""
    for lane in range(mask.bit_length()):
        if mask >> lane & 1:
            lane_bits = ((1 << granularity) - 1) << (lane * granularity)
            old = (old & ~lane_bits) | (new & lane_bits)
    return old


# ---- SRAMBank --------------------------------------------------------------------------------------

@pytest.mark.parametrize("width, depth, granularity", [(32, 16, 8), (12, 5, 4), (8, 8, 8)])
def test_bank_random(width, depth, granularity):
    rng = random.Random(width * depth)
    init = [rng.randrange(1 << width) for _ in range(depth - 1)]     # last word defaults to 0
    dut = SRAMBank(width=width, depth=depth, granularity=granularity, init=init)
    model = init + [0]
    lanes = width // granularity

    async def tb(ctx):
        expected = None                      # what read.data must show this cycle
        for _ in range(300):
            read_en = rng.random() < 0.7
            read_addr = rng.randrange(depth)
            write_addr = rng.randrange(depth) if rng.random() < 0.5 else read_addr
            write_en = rng.randrange(1 << lanes) if rng.random() < 0.6 else 0
            write_data = rng.randrange(1 << width)
            ctx.set(dut.read.en, read_en)
            ctx.set(dut.read.addr, read_addr)
            ctx.set(dut.write.addr, write_addr)
            ctx.set(dut.write.en, write_en)
            ctx.set(dut.write.data, write_data)
            if expected is not None:
                assert ctx.get(dut.read.data) == expected
            if read_en:
                expected = model[read_addr]          # read-before-write on a collision
            model[write_addr] = apply_mask(model[write_addr], write_data, write_en, granularity)
            await ctx.tick()

    run_simulation(dut, tb)


def test_bank_bad_params():
    with pytest.raises(ValueError, match=re.escape("granularity must divide width 12, not 8")):
        SRAMBank(width=12, depth=4)
    with pytest.raises(ValueError, match=re.escape("depth must be an integer >= 2, not 1")):
        SRAMBank(width=8, depth=1)
    with pytest.raises(ValueError, match=re.escape("init has 5 words, more than depth 4")):
        SRAMBank(width=8, depth=4, init=[0] * 5)
    with pytest.raises(ValueError, match=re.escape("init[1] must be in the range 0 to 255, not 256")):
        SRAMBank(width=8, depth=4, init=[0, 256])
    with pytest.raises(TypeError, match=re.escape("init must be a sequence of integers, not 3")):
        SRAMBank(width=8, depth=4, init=3)


# ---- BankedMemory ----------------------------------------------------------------------------------

def expected_reads(init, depth, granularity, layout, reads, writes):
    """Cycle-level model: a read sees the memory before the writes of its own cycle.

    ``reads[p]``: ``(cycle, addr)`` request transfers of read port ``p``; ``writes``:
    ``(cycle, payload bits)`` write transfers of all write ports. Returns the data each read port
    must receive, in order.
    """
    mem = list(init) + [0] * (depth - len(init))
    events = sorted([(cycle, 0, p, addr) for p, port in enumerate(reads) for cycle, addr in port] +
                    [(cycle, 1, None, bits) for cycle, bits in writes], key=lambda e: (e[0], e[1]))
    out = [[] for _ in reads]
    for _, kind, port, value in events:
        if kind == 0:
            out[port].append(mem[value])
        else:
            w = layout.from_bits(value)
            mem[w.addr] = apply_mask(mem[w.addr], w.data, w.mask, granularity)
    return out, mem


@pytest.mark.parametrize("seed, banks, read_ports, write_ports", [
    (0, 4, 3, 2), (1, 2, 2, 2), (2, 1, 2, 1), (3, 8, 3, 3),
])
def test_banked_random(seed, banks, read_ports, write_ports):
    width, depth, granularity = 16, 32, 8
    rng = random.Random(seed)
    init = [rng.randrange(1 << width) for _ in range(depth)]
    dut = BankedMemory(width=width, depth=depth, banks=banks, granularity=granularity,
                       read_ports=read_ports, write_ports=write_ports, init=init)
    n_reads, n_writes = 40, 30
    read_addrs = [[rng.randrange(depth) for _ in range(n_reads)] for _ in range(read_ports)]
    write_items = [[{"addr": rng.randrange(depth), "data": rng.randrange(1 << width),
                     "mask": rng.randrange(1, 4)} for _ in range(n_writes)] for _ in range(write_ports)]
    req_log = [[] for _ in range(read_ports)]
    write_log = [[] for _ in range(write_ports)]
    got = [[] for _ in range(read_ports)]

    def reader(p):
        async def tb(ctx):
            for addr in read_addrs[p]:
                await stream_put(ctx, dut.read[p].req, addr, idle=Stall(0.3, 3, seed * 100 + p))
        return tb

    def response_sink(p):
        async def tb(ctx):
            for _ in range(n_reads):
                got[p].append(await stream_get(ctx, dut.read[p].rsp, stall=Stall(0.4, 3, seed * 100 + 50 + p)))
            await expect_quiet(ctx, dut.read[p].rsp)
        return tb

    def writer(p):
        async def tb(ctx):
            for item in write_items[p]:
                await stream_put(ctx, dut.write[p], item, idle=Stall(0.3, 3, seed * 100 + 80 + p))
        return tb

    monitors = []
    for p in range(read_ports):
        monitors += [stream_monitor(dut.read[p].req, req_log[p], with_cycle=True), stream_monitor(dut.read[p].rsp)]
    for p in range(write_ports):
        monitors.append(stream_monitor(dut.write[p], write_log[p], with_cycle=True))
    run_simulation(dut, *(reader(p) for p in range(read_ports)),
                   *(response_sink(p) for p in range(read_ports)),
                   *(writer(p) for p in range(write_ports)), processes=monitors)

    assert [[addr for _, addr in log] for log in req_log] == read_addrs
    writes = [entry for log in write_log for entry in log]
    assert len(writes) == n_writes * write_ports
    # At most one write per bank per cycle, so writes of one cycle never collide.
    per_cycle = {}
    for cycle, bits in writes:
        bank = dut.write_layout.from_bits(bits).addr % banks
        assert (cycle, bank) not in per_cycle
        per_cycle[(cycle, bank)] = bits
    expected, _ = expected_reads(init, depth, granularity, dut.write_layout, req_log, writes)
    assert got == expected


def test_banked_conflict_free_throughput():
    """Ports that stay in their own bank all move one word per cycle."""
    banks, ports, n = 4, 3, 24
    init = list(range(1000, 1000 + banks * n))
    dut = BankedMemory(width=16, depth=banks * n, banks=banks, read_ports=ports, write_ports=1, init=init)
    addrs = [[p + banks * k for k in range(n)] for p in range(ports)]
    finish = {}

    def reader(p):
        async def tb(ctx):
            for addr in addrs[p]:
                await stream_put(ctx, dut.read[p].req, addr)
        return tb

    def sink(p):
        async def tb(ctx):
            ctx.set(dut.read[p].rsp.ready, 1)
            got, cycle = [], 0
            while len(got) < n:
                valid, data = ctx.get(dut.read[p].rsp.valid), ctx.get(dut.read[p].rsp.payload)
                await ctx.tick()
                cycle += 1
                if valid:
                    got.append(data)
            finish[p] = cycle
            assert got == [init[a] for a in addrs[p]]
            await expect_quiet(ctx, dut.read[p].rsp)
        return tb

    run_simulation(dut, *(reader(p) for p in range(ports)), *(sink(p) for p in range(ports)))
    assert finish == {p: n + BankedMemory.read_latency for p in range(ports)}


def test_banked_same_bank_round_robin():
    """Ports that all hit one bank share it fairly: grants rotate, one read per cycle in total."""
    ports, n = 3, 12
    dut = BankedMemory(width=8, depth=16, banks=4, read_ports=ports, write_ports=1,
                       init=list(range(16)))
    req_log = [[] for _ in range(ports)]

    def reader(p):
        async def tb(ctx):
            for k in range(n):
                await stream_put(ctx, dut.read[p].req, 4 * ((p + k) % 4))   # always bank 0
        return tb

    def sink(p):
        async def tb(ctx):
            for k in range(n):
                assert await stream_get(ctx, dut.read[p].rsp) == 4 * ((p + k) % 4)
            await expect_quiet(ctx, dut.read[p].rsp)
        return tb

    run_simulation(dut, *(reader(p) for p in range(ports)), *(sink(p) for p in range(ports)),
                   processes=[stream_monitor(dut.read[p].req, req_log[p], with_cycle=True) for p in range(ports)])
    grants = sorted((cycle, p) for p in range(ports) for cycle, _ in req_log[p])
    # The bank serves one read every cycle and the grant rotates 0, 1, 2, 0, ...
    assert grants == [(k, k % ports) for k in range(ports * n)]


def test_banked_read_after_write():
    """A read accepted the cycle after a write sees the new data; one in the same cycle the old."""
    dut = BankedMemory(width=16, depth=8, banks=2, read_ports=1, write_ports=1, init=[7] * 8)

    async def tb(ctx):
        ctx.set(dut.read[0].rsp.ready, 1)
        ctx.set(dut.write[0].valid, 1)
        ctx.set(dut.write[0].payload, {"addr": 3, "data": 0xABCD, "mask": 0b01})
        ctx.set(dut.read[0].req.valid, 1)
        ctx.set(dut.read[0].req.payload, 3)
        _, _, wready, rready = await ctx.tick().sample(dut.write[0].ready, dut.read[0].req.ready)
        assert wready and rready
        ctx.set(dut.write[0].valid, 0)
        assert ctx.get(dut.read[0].rsp.valid) and ctx.get(dut.read[0].rsp.payload) == 7
        await ctx.tick()
        ctx.set(dut.read[0].req.valid, 0)
        assert ctx.get(dut.read[0].rsp.valid) and ctx.get(dut.read[0].rsp.payload) == 0x00CD
        await ctx.tick()                                  # taken (ready is high)
        await expect_quiet(ctx, dut.read[0].rsp)

    run_simulation(dut, tb)


def test_banked_bad_params():
    with pytest.raises(ValueError, match=re.escape("banks must be a power of two, not 3")):
        BankedMemory(width=8, depth=12, banks=3)
    with pytest.raises(ValueError, match=re.escape("depth must be a multiple of banks 4, not 18")):
        BankedMemory(width=8, depth=18, banks=4)
    with pytest.raises(ValueError, match=re.escape("depth must be an integer >= 8, not 4")):
        BankedMemory(width=8, depth=4, banks=4)
    with pytest.raises(ValueError, match=re.escape("read_ports must be a positive integer, not 0")):
        BankedMemory(width=8, depth=16, banks=4, read_ports=0)


@pytest.mark.verilator
@pytest.mark.parametrize("make, name", [
    (lambda: SRAMBank(width=32, depth=64, init=[1, 2, 3]), "sram_bank"),
    (lambda: BankedMemory(width=32, depth=64, banks=4, init=[5, 6]), "banked_memory"),
])
def test_verilator_lint(make, name):
    lint_verilog(verilog.convert(make(), name=name), name)
