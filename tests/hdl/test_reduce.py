# amaranth: UnusedElaboratable=no
"""ReductionTree: combinational and pipelined sum / max trees against a Python model."""

import random
import re

import pytest
from amaranth.back import verilog
from hypothesis import given, settings
from hypothesis import strategies as st

from tilelab.hdl.lint import lint_verilog
from tilelab.hdl.reduce import ReductionTree
from tilelab.sim.testbench import run_simulation, with_clock

VECTORS = 12


def reference(values, op):
    return sum(values) if op == "sum" else max(values)


def value_range(width, signed):
    return (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)


def random_vectors(rng, width, fan_in, signed, count):
    low, high = value_range(width, signed)
    vectors = [[low] * fan_in, [high] * fan_in]       # the extremes: no overflow at full width
    vectors += [[rng.randint(low, high) for _ in range(fan_in)] for _ in range(count)]
    return vectors


params = st.tuples(st.integers(1, 12), st.integers(1, 9), st.sampled_from(["sum", "max"]), st.booleans())


@settings(max_examples=25, deadline=None)
@given(params, st.integers(0, 2**32 - 1))
def test_combinational(p, seed):
    width, fan_in, op, signed = p
    dut = ReductionTree(width=width, fan_in=fan_in, op=op, signed=signed)
    levels = (fan_in - 1).bit_length()
    assert dut.out_width == (width + levels if op == "sum" else width)
    assert dut.latency == 0
    vectors = random_vectors(random.Random(seed), width, fan_in, signed, VECTORS)

    async def tb(ctx):
        for vector in vectors:
            ctx.set(dut.i, vector)
            assert ctx.get(dut.o) == reference(vector, op), vector

    run_simulation(with_clock(dut), tb)


@settings(max_examples=15, deadline=None)
@given(params, st.integers(0, 2**32 - 1))
def test_pipelined(p, seed):
    width, fan_in, op, signed = p
    dut = ReductionTree(width=width, fan_in=fan_in, op=op, signed=signed, pipeline=True)
    assert dut.latency == (fan_in - 1).bit_length()
    rng = random.Random(seed)
    vectors = random_vectors(rng, width, fan_in, signed, VECTORS)
    valids = [rng.random() < 0.7 for _ in vectors]
    expected = [reference(v, op) for v, valid in zip(vectors, valids, strict=True) if valid]
    got = []

    async def source(ctx):
        for vector, valid in zip(vectors, valids, strict=True):
            ctx.set(dut.i, vector)
            ctx.set(dut.i_valid, valid)
            await ctx.tick()
        ctx.set(dut.i_valid, 0)

    async def sink(ctx):
        # Results appear exactly `latency` cycles after their input, in order, and nothing else.
        cycle_of = [k + dut.latency for k, valid in enumerate(valids) if valid]
        for cycle in range(len(vectors) + dut.latency + 4):
            valid, value = ctx.get(dut.o_valid), ctx.get(dut.o)
            if valid:
                got.append((cycle, value))
            await ctx.tick()
        assert [c for c, _ in got] == cycle_of

    run_simulation(with_clock(dut), source, sink)
    assert [value for _, value in got] == expected


def test_sum_growth_exact():
    dut = ReductionTree(width=8, fan_in=16, signed=True)
    assert dut.out_width == 12

    async def tb(ctx):
        ctx.set(dut.i, [-128] * 16)
        assert ctx.get(dut.o) == -2048
        ctx.set(dut.i, [127] * 16)
        assert ctx.get(dut.o) == 2032

    run_simulation(with_clock(dut), tb)


def test_bad_params():
    with pytest.raises(ValueError, match=re.escape("width must be a positive integer, not 0")):
        ReductionTree(width=0, fan_in=4)
    with pytest.raises(ValueError, match=re.escape("fan_in must be a positive integer, not -1")):
        ReductionTree(width=8, fan_in=-1)
    with pytest.raises(ValueError, match=re.escape("op must be one of ('sum', 'max'), not 'min'")):
        ReductionTree(width=8, fan_in=4, op="min")
    with pytest.raises(TypeError, match=re.escape("pipeline must be a bool, not 'yes'")):
        ReductionTree(width=8, fan_in=4, pipeline="yes")


@pytest.mark.verilator
def test_verilator_lint():
    lint_verilog(verilog.convert(ReductionTree(width=8, fan_in=9, pipeline=True), name="reduce"), "reduce")
