# amaranth: UnusedElaboratable=no
"""IntFloatFma and FloatRoundInt against exact rational arithmetic and numpy's IEEE float32 rounding.

The reference of every FMA case is computed twice: exactly with ``fractions.Fraction`` (rounded to
float32 by hand, ties to even, subnormals included) and with the golden
:func:`tilelab.reference.golden.fma_f32` (float64 emulation). The test first checks the claim that
makes the golden's emulation exact for these operand sizes — the product of a 10-bit integer and
a float32 is exact in float64, and the two-sum correction fixes the one rounding of the sum —
case by case, then compares the RTL with it, bit for bit.
"""

import math
import zlib
from fractions import Fraction

import numpy as np
import pytest

from tilelab.hdl.fpfma import FloatDivide, FloatRoundInt, IntFloatFma
from tilelab.hdl.lint import lint_component
from tilelab.reference import golden
from tilelab.sim.testbench import run_simulation, with_clock

F32 = np.float32
X_WIDTH = 10
ROUND_WIDTH = 12


def f32(v):
    return np.asarray(v, F32)


def exact_f32(v: Fraction) -> F32:
    """``v`` rounded to float32, to nearest even (subnormals, ±inf beyond the range)."""
    if v == 0:
        return F32(0)
    mag = abs(v)
    e = max(math.floor(math.log2(mag.numerator) - math.log2(mag.denominator)), -126)
    while Fraction(2) ** e > mag:       # log2 of a huge fraction may be off by one
        e -= 1
    while Fraction(2) ** (e + 1) <= mag:
        e += 1
    e = max(e, -126)
    ulp = Fraction(2) ** (e - 23)
    q = mag / ulp
    n = math.floor(q)
    rest = q - n
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and n % 2):
        n += 1
    value = n * ulp
    if value >= Fraction(2) ** 128:
        out = F32(np.inf)
    else:
        out = F32(float(value))
        assert Fraction(float(out)) == value
    return -out if v < 0 else out


def _random_floats(rng, n, lo, hi):
    return (rng.uniform(1, 2, n) * 2.0 ** rng.integers(lo, hi, n) * rng.choice([-1, 1], n)).astype(F32)


def fma_cases():
    """(x, y, z) of the FMA: random, every alignment, cancellation, ties, subnormal results, zeros."""
    rng = np.random.default_rng(zlib.crc32(b"fpfma"))
    xs, ys, zs = [], [], []

    def add(x, y, z):
        xs.extend(np.broadcast_to(np.asarray(x, np.int64), np.shape(y)).tolist() if np.ndim(y) else [int(x)])
        ys.extend(f32(y).ravel().tolist())
        zs.extend(f32(z).ravel().tolist())

    # random: scales like QLinearAdd's (y > 0) and either sign, z anywhere relative to the product
    n = 2000
    x = rng.integers(-(1 << 9), 1 << 9, n)
    y = np.abs(_random_floats(rng, n, -30, 8)) * rng.choice([-1, 1], n, p=[0.2, 0.8]).astype(F32)
    z = (_random_floats(rng, n, -40, 20)).astype(F32)
    for i in range(n):
        add(x[i], y[i], z[i])
    # every alignment d of z against the product, around both ends of the exact window
    for t in range(-45, 50):
        for _ in range(6):
            xv = int(rng.integers(-(1 << 9), 1 << 9)) or 1
            yv = np.abs(_random_floats(rng, 1, -10, 10))[0]
            zv = F32(rng.choice([-1, 1]) * rng.uniform(1, 2) * 2.0 ** (math.frexp(float(yv))[1] + t - 24))
            add(xv, yv, zv)
    # cancellation: z = -(x·y) rounded, and its neighbours
    for _ in range(300):
        xv = int(rng.integers(-(1 << 9), 1 << 9)) or 3
        yv = np.abs(_random_floats(rng, 1, -20, 20))[0]
        zv = -F32(F32(xv) * yv)
        for k in range(-2, 3):
            add(xv, yv, np.nextafter(zv, F32(np.inf) * k) if k else zv)
    # ties: z + odd multiples of half its ulp (and just beside them, through y's last bit)
    for _ in range(300):
        zv = np.abs(_random_floats(rng, 1, -20, 20))[0] * F32(rng.choice([-1, 1]))
        half = F32(2.0 ** (math.frexp(float(zv))[1] - 25))
        xv = int(rng.choice([1, 3, 5, 7, 9, 255, 511, -1, -3, -511]))
        add(xv, half, zv)
        add(xv, np.nextafter(half, F32(1)), zv)
        add(xv, np.nextafter(half, F32(0)), zv)
    # products and sums at the bottom of the range: subnormal results (exact), subnormal z
    for _ in range(300):
        yv = F32(rng.uniform(1, 2) * 2.0 ** -126)
        xv = int(rng.integers(1, 8))
        add(xv, yv, F32(-rng.uniform(1, 2) * 2.0 ** -126) * F32(xv))
        add(int(rng.integers(-(1 << 9), 1 << 9)), yv, F32(rng.integers(1, 1 << 23) * 2.0 ** -149))
    # zeros, a zero y, the largest products, overflow
    for xv, yv, zv in [(0, 0.5, 1.25), (0, 0.5, 0.0), (5, 0.0, -3.0), (0, 1.0, -0.0), (3, 0.5, -1.5),
                       (-512, 1.5, 7.0), (511, 3.0e38, 0.0), (-511, 3.0e38, -3.0e38), (1, 2.0 ** -126, 0.0),
                       (511, 2.0 ** 100, 2.0 ** 100), (-7, 0.1, 0.7)]:
        add(xv, yv, zv)
    return np.array(xs, np.int64), np.array(ys, F32), np.array(zs, F32)


def sum_cases():
    """x = ±1 or 0 (a float32 sum, QLinearAveragePool's): every alignment of the two terms, cancellation."""
    rng = np.random.default_rng(zlib.crc32(b"fpfma-sum"))
    n = 1500
    y = _random_floats(rng, n, -20, 20)
    z = (y * (2.0 ** rng.integers(-30, 31, n)) * rng.uniform(0.5, 2, n)).astype(F32)
    z[:200] = -y[:200] * F32(rng.uniform(0.9, 1.1))            # near cancellation
    x = rng.choice([1, 1, 1, -1, 0], n)
    return x.astype(np.int64), y, z


@pytest.mark.parametrize("cases", [fma_cases, sum_cases])
def test_golden_fma_emulation_is_exact_for_these_operands(cases):
    x, y, z = cases()
    # the product of a 10-bit integer and a float32 (24-bit significand) is exact in float64
    assert all(Fraction(float(xv) * float(yv)) == Fraction(int(xv)) * Fraction(float(yv))
               for xv, yv in zip(x.tolist(), y.tolist(), strict=True))
    exact = np.array([exact_f32(Fraction(int(a)) * Fraction(float(b)) + Fraction(float(c)))
                      for a, b, c in zip(x.tolist(), y.tolist(), z.tolist(), strict=True)], F32)
    with np.errstate(over="ignore"):
        emulated = golden.fma_f32(x.astype(F32), y, z)
    assert np.array_equal(emulated, exact)


def _run_fma(x, y, z, x_width=X_WIDTH):
    dut = IntFloatFma(x_width)
    got = []

    async def tb(ctx):
        for a, b, c in zip(x.tolist(), y.view(np.uint32).tolist(), z.view(np.uint32).tolist(), strict=True):
            ctx.set(dut.x, a)
            ctx.set(dut.y, b)
            ctx.set(dut.z, c)
            got.append(ctx.get(dut.result))

    run_simulation(with_clock(dut), tb)
    return np.array(got, np.uint32).view(F32)


@pytest.mark.parametrize("x_width", [X_WIDTH, 2])
def test_fma_matches_ieee_float32(x_width):
    x, y, z = fma_cases() if x_width == X_WIDTH else sum_cases()
    with np.errstate(over="ignore"):
        want = golden.fma_f32(x.astype(F32), y, z)
    got = _run_fma(x, y, z, x_width)
    # bit for bit; a zero result is +0 (its sign never matters downstream)
    same = (got.view(np.uint32) == want.view(np.uint32)) | ((want == 0) & (got.view(np.uint32) == 0))
    bad = np.flatnonzero(~same)
    assert not bad.size, [(int(x[i]), float(y[i]), float(z[i]), float(got[i]), float(want[i])) for i in bad[:5]]
    if x_width == X_WIDTH:
        assert np.isinf(want).sum() >= 2 and (want == 0).sum() >= 3
        assert (np.abs(want[want != 0]) < np.finfo(F32).tiny).sum() >= 100, "subnormal results must be covered"


def round_cases():
    rng = np.random.default_rng(zlib.crc32(b"fpround"))
    v = list(_random_floats(rng, 1500, -30, 14))
    halves = np.arange(-2100, 2100) + 0.5                       # every tie in and beyond the range
    v += list(halves.astype(F32))
    for h in halves[::37].astype(F32):
        v += [np.nextafter(h, F32(np.inf)), np.nextafter(h, F32(-np.inf))]
    v += [0.0, -0.0, 2.0 ** -149, -(2.0 ** -130), 0.25, 0.5, 0.75, 1.0, 2047.0, 2047.5, -2047.5, 2.0 ** 23,
          -(2.0 ** 23) - 2, 2.0 ** 24 + 2, 3.0e38, -3.0e38, np.inf, -np.inf, 8388607.5, 4194303.5]
    return np.array(v, F32)


def test_round_matches_numpy_rint():
    v = round_cases()
    limit = (1 << (ROUND_WIDTH - 1)) - 1
    want = np.clip(np.rint(np.clip(v, -2.0 ** 30, 2.0 ** 30)), -limit, limit).astype(np.int64)
    dut = FloatRoundInt(ROUND_WIDTH)
    got = []

    async def tb(ctx):
        for bits in v.view(np.uint32).tolist():
            ctx.set(dut.value, bits)
            got.append(ctx.get(dut.result))

    run_simulation(with_clock(dut), tb)
    bad = np.flatnonzero(np.array(got) != want)
    assert not bad.size, [(float(v[i]), got[i], int(want[i])) for i in bad[:5]]


def test_rejects_bad_widths():
    with pytest.raises(ValueError, match=r"x_width must be an integer in \[2, 24\], not 30"):
        IntFloatFma(30)
    with pytest.raises(ValueError, match=r"out_width must be an integer in \[2, 24\], not 1"):
        FloatRoundInt(1)


def test_lint_clean():
    assert "module fpfma" in lint_component(IntFloatFma(X_WIDTH), "fpfma")
    assert "module fpround" in lint_component(FloatRoundInt(ROUND_WIDTH), "fpround")


def divide_cases():
    rng = np.random.default_rng(zlib.crc32(b"fpdivide"))
    a = list(_random_floats(rng, 2500, -40, 40))
    b = list(np.abs(_random_floats(rng, 2500, -40, 40)))
    # sums of dequantized values over window sizes (QLinearAveragePool), exact quotients, ties cannot occur
    for count in (1, 2, 3, 4, 6, 9, 25, 49, 65536, 12544):
        for _ in range(40):
            a.append(F32(rng.integers(-4000, 4000) * F32(0.0123)))
            b.append(F32(count))
    a += [0.0, 1.0, -3.0, 6.0, 1.0, 2.0 ** 100, 2.0 ** -100, 1.0, 3.0e38]
    b += [3.0, 3.0, 3.0, 3.0, 1.0, 2.0 ** -100, 2.0 ** 100, 3.0e38, 0.5]
    return np.array(a, F32), np.array(b, F32)


def test_divide_matches_numpy_float32():
    a, b = divide_cases()
    with np.errstate(over="ignore", under="ignore"):
        want = a / b
    want = np.where(np.abs(want) < np.finfo(F32).tiny, F32(0), want)      # flushed below the normal range
    dut = FloatDivide()
    got = []

    async def tb(ctx):
        for x, y in zip(a.view(np.uint32).tolist(), b.view(np.uint32).tolist(), strict=True):
            ctx.set(dut.a, x)
            ctx.set(dut.b, y)
            got.append(ctx.get(dut.result))

    run_simulation(with_clock(dut), tb)
    got = np.array(got, np.uint32).view(F32)
    same = (got.view(np.uint32) == want.view(np.uint32)) | ((want == 0) & (got.view(np.uint32) == 0))
    bad = np.flatnonzero(~same)
    assert not bad.size, [(float(a[i]), float(b[i]), float(got[i]), float(want[i])) for i in bad[:5]]
    assert np.isinf(want).sum() >= 1 and (want == 0).sum() >= 2
