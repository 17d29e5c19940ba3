# amaranth: UnusedElaboratable=no
"""AffineAddressGenerator and its formats: host packing, reference model, RTL against the model."""

import re

import pytest
from amaranth.back import verilog
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import ALL_BACKENDS
from tilelab.hdl.addrgen import AffineAddressGenerator
from tilelab.hdl.formats.addrgen import (
    MAX_LOOPS,
    AddrGenDescriptor,
    AddrGenFormat,
    AddrGenOutput,
    expand,
    expand_outputs,
)
from tilelab.hdl.lint import lint_verilog
from tilelab.sim.testbench import (
    Stall,
    expect_quiet,
    run_simulation,
    stream_get,
    stream_monitor,
    stream_put,
)

CLOCK = 1e-8


@st.composite
def descriptors(draw, fmt, max_length=40):
    """Random descriptors that fit ``fmt``, with at most ``max_length`` addresses."""
    loops = draw(st.integers(1, fmt.loops))
    counts, budget = [], max_length
    for _ in range(loops):
        count = draw(st.integers(1, max(1, min(5, budget, (1 << fmt.count_width) - 1))))
        counts.append(count)
        budget //= count
    half = 1 << (fmt.stride_width - 1)
    stride = st.one_of(st.integers(-4, 4), st.integers(-half, half - 1))
    strides = [draw(stride) for _ in range(loops)]
    base = draw(st.integers(0, (1 << fmt.addr_width) - 1))
    return AddrGenDescriptor(base=base, counts=tuple(counts), strides=tuple(strides))


# ---- host side: reference model and packing ----------------------------------------------------------

def test_expand_reference():
    d = AddrGenDescriptor(base=100, counts=(3, 2), strides=(1, 10))
    assert expand(d) == [100, 101, 102, 110, 111, 112]
    outputs = expand_outputs(d, loops=3)
    assert outputs[2] == AddrGenOutput(addr=102, idx=(2, 0, 0), loop_last=0b001, last=False)
    assert outputs[-1] == AddrGenOutput(addr=112, idx=(2, 1, 0), loop_last=0b111, last=True)
    assert expand(AddrGenDescriptor(base=2, counts=(3,), strides=(-1,)), addr_width=4) == [2, 1, 0]
    assert expand(AddrGenDescriptor(base=1, counts=(3,), strides=(-1,)), addr_width=4) == [1, 0, 15]
    assert AddrGenDescriptor(base=50, counts=(3, 4), strides=(-5, 10)).address_range() == (40, 80)


@settings(max_examples=50, deadline=None)
@given(st.data())
def test_pack_roundtrip(data_):
    fmt = data_.draw(st.builds(AddrGenFormat, addr_width=st.integers(4, 40), loops=st.integers(1, MAX_LOOPS),
                               count_width=st.integers(3, 20)))
    d = data_.draw(descriptors(fmt))
    bits = fmt.pack(d)
    assert 0 <= bits < 1 << fmt.descriptor_layout.size
    pad = fmt.loops - d.loops
    assert fmt.unpack(bits) == AddrGenDescriptor(base=d.base, counts=d.counts + (1,) * pad,
                                                 strides=d.strides + (0,) * pad)


def test_pack_layout_is_lsb_first():
    fmt = AddrGenFormat(addr_width=8, loops=1, count_width=4, stride_width=4)
    bits = fmt.pack(AddrGenDescriptor(base=0xAB, counts=(5,), strides=(-2,)))
    assert bits == 0xAB | 5 << 8 | 0b1110 << 12


def test_descriptor_errors():
    with pytest.raises(ValueError, match=re.escape("counts[1] must be a positive integer, not 0")):
        AddrGenDescriptor(base=0, counts=(2, 0), strides=(1, 1))
    with pytest.raises(ValueError, match=re.escape("a descriptor must have 1 to 6 loops, not 7")):
        AddrGenDescriptor(base=0, counts=(1,) * 7, strides=(0,) * 7)
    with pytest.raises(ValueError, match=re.escape("a descriptor must have 1 to 6 loops, not 0")):
        AddrGenDescriptor(base=0, counts=(), strides=())
    with pytest.raises(ValueError, match=re.escape("strides must have one entry per loop (2), not 1")):
        AddrGenDescriptor(base=0, counts=(2, 2), strides=(1,))
    with pytest.raises(ValueError, match=re.escape("base must be a non-negative integer, not -1")):
        AddrGenDescriptor(base=-1, counts=(1,), strides=(0,))
    with pytest.raises(TypeError, match=re.escape("strides[0] must be an integer, not 1.5")):
        AddrGenDescriptor(base=0, counts=(1,), strides=(1.5,))


def test_pack_errors():
    fmt = AddrGenFormat(addr_width=10, loops=2, count_width=4, stride_width=6)
    with pytest.raises(ValueError, match=re.escape("counts[0] must be in the range 1 to 15, not 16")):
        fmt.pack(AddrGenDescriptor(base=0, counts=(16,), strides=(1,)))
    with pytest.raises(ValueError, match=re.escape("strides[1] must be in the range -32 to 31, not 32")):
        fmt.pack(AddrGenDescriptor(base=0, counts=(1, 2), strides=(1, 32)))
    with pytest.raises(ValueError, match=re.escape("strides[0] must be in the range -32 to 31, not -33")):
        fmt.pack(AddrGenDescriptor(base=0, counts=(2,), strides=(-33,)))
    with pytest.raises(ValueError, match=re.escape("base must be in the range 0 to 1023, not 1024")):
        fmt.pack(AddrGenDescriptor(base=1024, counts=(1,), strides=(0,)))
    with pytest.raises(ValueError, match=re.escape("descriptor has 3 loops, more than the format's 2")):
        fmt.pack(AddrGenDescriptor(base=0, counts=(1, 1, 1), strides=(0, 0, 0)))
    with pytest.raises(TypeError, match=re.escape("descriptor must be an AddrGenDescriptor, not 5")):
        fmt.pack(5)


def test_format_errors():
    with pytest.raises(ValueError, match=re.escape("loops must be an integer in the range 1 to 6, not 7")):
        AddrGenFormat(loops=7)
    with pytest.raises(ValueError, match=re.escape("count_width must be an integer in the range 1 to 32, not 0")):
        AddrGenFormat(count_width=0)
    with pytest.raises(ValueError, match=re.escape("stride_width must be an integer in the range 2 to 65, not 1")):
        AddrGenFormat(stride_width=1)
    with pytest.raises(ValueError, match=re.escape("addr_width must be an integer in the range 1 to 64, not 0")):
        AffineAddressGenerator(addr_width=0)
    with pytest.raises(ValueError, match=re.escape("loops must be an integer in the range 1 to 6, not 7")):
        AffineAddressGenerator(addr_width=16, loops=7)
    assert AddrGenFormat(addr_width=20).stride_width == 21


# ---- RTL ---------------------------------------------------------------------------------------------

HW_CONFIGS = [
    dict(addr_width=12, loops=6, count_width=4, stride_width=8),
    dict(addr_width=16, loops=3, count_width=6),
]


def run_generator(dut, descs, *, idle=None, stall=None):
    """Feed ``descs`` back to back; return the decoded outputs."""
    fmt = dut.format
    total = sum(d.length for d in descs)
    got = []

    async def source(ctx):
        for d in descs:
            await stream_put(ctx, dut.desc, fmt.descriptor_layout.from_bits(fmt.pack(d)), idle=idle)

    async def sink(ctx):
        for _ in range(total):
            payload = await stream_get(ctx, dut.o, stall=stall)
            got.append(fmt.decode_output(payload.as_bits()))
        await expect_quiet(ctx, dut.o)
        assert not ctx.get(dut.busy)

    run_simulation(dut, source, sink, processes=[stream_monitor(dut.o)],
                   deadline=CLOCK * (20 * total + 200))
    return got


@pytest.mark.parametrize("config", HW_CONFIGS, ids=["6loops", "3loops"])
@settings(max_examples=40, deadline=None)
@given(data_=st.data(), seed=st.integers(0, 1000))
def test_rtl_matches_model(config, data_, seed):
    dut = AffineAddressGenerator(**config)
    fmt = dut.format
    descs = data_.draw(st.lists(descriptors(fmt), min_size=1, max_size=3))
    expected = [out for d in descs for out in expand_outputs(d, addr_width=fmt.addr_width, loops=fmt.loops)]
    got = run_generator(dut, descs, idle=Stall(0.3, 3, seed), stall=Stall(0.3, 3, seed + 1))
    assert got == expected


def test_full_throughput_back_to_back():
    dut = AffineAddressGenerator(addr_width=16, loops=3, count_width=8)
    fmt = dut.format
    descs = [AddrGenDescriptor(base=0, counts=(4, 3), strides=(1, 100)),
             AddrGenDescriptor(base=500, counts=(1,), strides=(0,)),           # a single address
             AddrGenDescriptor(base=7, counts=(2, 2, 2), strides=(-1, 8, 64))]
    expected = [out for d in descs for out in expand_outputs(d, addr_width=16, loops=3)]
    cycles = {}

    async def source(ctx):
        for d in descs:
            await stream_put(ctx, dut.desc, fmt.descriptor_layout.from_bits(fmt.pack(d)))

    async def sink(ctx):
        ctx.set(dut.o.ready, 1)
        got = []
        n = 0
        while len(got) < len(expected):
            valid, payload = ctx.get(dut.o.valid), ctx.get(dut.o.payload)
            await ctx.tick()
            n += 1
            if valid:
                got.append(fmt.decode_output(payload.as_bits()))
        cycles["n"] = n
        assert got == expected
        await expect_quiet(ctx, dut.o)

    run_simulation(dut, source, sink, deadline=CLOCK * 500)
    assert cycles["n"] == len(expected) + 1        # 1 cycle to the first address, then no bubbles


def test_address_wraps():
    dut = AffineAddressGenerator(addr_width=8, loops=2, count_width=4)
    descs = [AddrGenDescriptor(base=250, counts=(4, 2), strides=(3, -255))]
    got = run_generator(dut, descs)
    assert [o.addr for o in got] == expand(descs[0], addr_width=8)
    assert [o.addr for o in got] == [250, 253, 0, 3, 251, 254, 1, 4]


@pytest.mark.verilator
def test_verilator_lint():
    dut = AffineAddressGenerator(addr_width=32)
    lint_verilog(verilog.convert(dut, name="addrgen"), "addrgen")


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_same_check_on_every_simulator(backend):
    from tests.hdl.addrgen_benches import addrgen_bench
    from tilelab.sim import simulate

    params = {"addr_width": 12, "loops": 6, "count_width": 4}
    r = simulate(AffineAddressGenerator(**params), addrgen_bench, backend=backend, name="addrgen",
                 args={**params, "seed": 3, "count": 12})
    assert r.value["outputs"] > 12
