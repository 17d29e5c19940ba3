# amaranth: UnusedElaboratable=no
"""FloatScaleRound against numpy's IEEE float32 arithmetic (round half to even at every step)."""

import zlib

import numpy as np
import pytest

from tilelab.hdl.fpscale import FloatScaleRound
from tilelab.hdl.lint import lint_component
from tilelab.sim.testbench import run_simulation, with_clock

LIMIT = (1 << 15) - 1


def _expected(values, scales):
    with np.errstate(over="ignore"):
        f = values.astype(np.float32) * scales.astype(np.float32)
    f = np.clip(f, np.float32(-LIMIT), np.float32(LIMIT))
    return np.rint(f).astype(np.int64)


def _cases():
    rng = np.random.default_rng(zlib.crc32(b"fpscale"))
    v, s = [], []
    # random accumulators of every magnitude against requantization-like scales
    mags = rng.integers(0, 32, 1500)
    v += list((rng.integers(0, 1 << 31, 1500) >> (31 - mags)) * rng.choice([-1, 1], 1500))
    s += list((2.0 ** rng.uniform(-24, 0, 1500)).astype(np.float32))
    # ties of the final rounding: odd multiples of 1/2 (scale 2**-k, value with bit k-1 set)
    for k in range(1, 12):
        for t in (1, 3, 5, 7, 2**20 + 1):
            v += [t << (k - 1), -(t << (k - 1))]
            s += [np.float32(2.0 ** -k)] * 2
    # int32 → float32 rounding (values over 2**24) and product rounding ties (short significands)
    for b in (24, 25, 28, 30, 31):
        for off in (-3, -1, 0, 1, 3, 2**(b - 24)):
            x = min((1 << b) + off, (1 << 31) - 1)
            v += [x, -x]
            s += [np.float32(2.0 ** -(b - 6)), np.float32(1.5 * 2.0 ** -(b - 6))]
    v += [0, 1, -1, (1 << 31) - 1, -(1 << 31), 12345, -12345]
    s += [np.float32(0.37), np.float32(2.0 ** -126), np.float32(1e30), np.float32(1e-3), np.float32(2.0 ** -40),
          np.float32(0.0078125), np.float32(3.0e38)]
    return np.array(v, np.int64), np.array(s, np.float32)


def test_matches_ieee_float32():
    values, scales = _cases()
    expected = _expected(values, scales)
    dut = FloatScaleRound(16)
    got = []

    async def tb(ctx):
        for v, s in zip(values.tolist(), scales.view(np.uint32).tolist(), strict=True):
            ctx.set(dut.value, v)
            ctx.set(dut.scale, s)
            got.append(ctx.get(dut.result))

    run_simulation(with_clock(dut), tb)
    bad = np.flatnonzero(np.array(got) != expected)
    assert not bad.size, [(int(values[i]), float(scales[i]), got[i], int(expected[i])) for i in bad[:5]]


def test_rejects_bad_width():
    with pytest.raises(ValueError, match=r"out_width must be an integer in \[8, 32\], not 4"):
        FloatScaleRound(4)


def test_lint_clean():
    assert "module fpscale" in lint_component(FloatScaleRound(16), "fpscale")
