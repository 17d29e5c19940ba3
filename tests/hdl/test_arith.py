# amaranth: UnusedElaboratable=no
"""SeqDivider and SeqIsqrt against Python's integer division and square root."""

import math
import random

import pytest

from tilelab.hdl.arith import SeqDivider, SeqIsqrt
from tilelab.hdl.lint import lint_component
from tilelab.hdl.registry import build_block
from tilelab.reference.golden import isqrt
from tilelab.sim.testbench import run_simulation, with_clock


def test_divider_matches_python():
    dut = SeqDivider(64)
    rng = random.Random(1)
    cases = [(0, 1), (1, 1), (2**64 - 1, 1), (2**64 - 1, 2**64 - 1), (2**60, 3), (12345, 2**40), (7, 0)]
    cases += [(rng.getrandbits(rng.randint(1, 64)), rng.getrandbits(rng.randint(1, 40)) + 1) for _ in range(20)]

    async def tb(ctx):
        for dividend, divisor in cases:
            ctx.set(dut.dividend, dividend)
            ctx.set(dut.divisor, divisor)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            cycles = 0
            while ctx.get(dut.busy):
                await ctx.tick()
                cycles += 1
            assert cycles == 64
            if divisor:
                assert (ctx.get(dut.quotient), ctx.get(dut.remainder)) == divmod(dividend, divisor), (dividend, divisor)
            else:
                assert ctx.get(dut.quotient) == 2**64 - 1

    run_simulation(with_clock(dut), tb)


def test_isqrt_matches_python_and_golden():
    import numpy as np

    dut = SeqIsqrt(64)
    rng = random.Random(2)
    values = [0, 1, 2, 3, 4, 15, 16, 2**60, 2**62 - 1, 2**64 - 1] + [rng.getrandbits(rng.randint(1, 62))
                                                                    for _ in range(20)]

    async def tb(ctx):
        for value in values:
            ctx.set(dut.value, value)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            while ctx.get(dut.busy):
                await ctx.tick()
            assert ctx.get(dut.root) == math.isqrt(value), value
            if value < 2**63:
                assert ctx.get(dut.root) == int(isqrt(np.array([value]))[0])

    run_simulation(with_clock(dut), tb)


def test_bad_widths():
    with pytest.raises(ValueError, match="divider width must be an integer in \\[1, 256\\], not 0"):
        SeqDivider(0)
    with pytest.raises(ValueError, match="square-root width must be an even integer in \\[2, 256\\], not 63"):
        SeqIsqrt(63)


@pytest.mark.verilator
@pytest.mark.parametrize("name", ["seq-divider", "seq-isqrt"])
def test_lint_clean(name):
    lint_component(build_block(name), name)
