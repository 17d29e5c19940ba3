"""IEEE float32 arithmetic on small integers without a floating-point unit, exact to the bit.

:class:`IntFloatFma` computes ``x·y + z`` for a small signed integer ``x`` and float32 ``y``,
``z`` with one rounding (a fused multiply-add, as x86's ``vfmadd`` on ``float(x)``; with ``x = 1``
a float32 sum), :class:`FloatDivide` a float32 quotient and :class:`FloatRoundInt` rounds a
float32 to the nearest integer, ties to even, saturated. Both are
combinational and use only integer logic, in the style of :mod:`tilelab.hdl.fpscale`.
Together they give onnxruntime's ``QLinearAdd`` bit for bit (golden:
:func:`tilelab.reference.golden.qlinear_add`, every FMA :func:`tilelab.reference.golden.fma_f32`).

How the FMA is exact
--------------------
With ``x`` normalized (``|x| << lz`` has its top bit at ``x_width - 1``), the product of its
magnitude and ``y``'s 24-bit significand is an exact integer ``P`` of ``x_width + 24`` bits whose
top bit is one of the two highest, in units of ``2**Ep``; it is placed ``G = 3`` bits up in the
window (guard bits). ``z``'s significand is placed ``d`` bits above ``P``'s lowest bit:

* ``d >= x_width + 26``: ``|P| < ulp(z) / 4``, so ``x·y + z`` rounds to ``z`` (the product never
  decides a rounding: it is at most a quarter of the unit in the last place of ``z``);
* ``-G <= d < x_width + 26``: both terms fit a window of ``x_width + 53`` bits and the sum is exact;
* ``d < -G``: the bits of ``z`` below the window are ORed into its lowest bit (a sticky bit). Then
  ``|z| < 2**21`` units of the window while ``|P| >= 2**(x_width + 25)`` of them, so the sum keeps
  its top bit within one place of ``P``'s and the rounding position lies at least
  ``x_width + 1 >= 3`` bits above the sticky bit: the rounding sees exactly whether anything was
  cut off, which is all round-to-nearest-even needs.

The exact (or sticky) sum is normalized to 24 bits and rounded to nearest even once. A result
below the smallest normal float32 is exact (every input is a multiple of ``2**-149``) and comes
out as a subnormal.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["FloatDivide", "FloatRoundInt", "IntFloatFma", "leading_one", "small_uint_to_float"]

_MANT = 23          # float32 fraction bits
_BIAS = 127         # float32 exponent bias
_LSB = _BIAS + _MANT  # a biased exponent e puts the significand's lowest bit at 2**(e - _LSB)


def leading_one(m, value, name):
    """The position of the highest set bit of ``value`` (0 when it is 0), by binary search.

    Parameters
    ----------
    m : Module
        Where the logic goes.
    value : Value
        Unsigned.
    name : str
        Prefix of the signals made.

    Returns
    -------
    Signal
        ``range(len(value))``.
    """
    width = max(1, (len(value) - 1).bit_length())
    rest = Signal(1 << width, name=f"{name}_v")
    m.d.comb += rest.eq(value)
    bits = []
    for level in reversed(range(width)):
        half = 1 << level
        upper = rest[half:2 * half].any()
        nxt = Signal(half, name=f"{name}_l{level}")
        m.d.comb += nxt.eq(Mux(upper, rest[half:2 * half], rest[:half]))
        bits.append(upper)
        rest = nxt
    pos = Signal(range(len(value)), name=f"{name}_pos")
    m.d.comb += pos.eq(Cat(*reversed(bits)))
    return pos


def _decode(m, bits, name):
    """Sign, 24-bit significand and biased exponent (at least 1) of float32 ``bits``."""
    exp = bits[_MANT:31]
    mant = Signal(_MANT + 1, name=f"{name}_m")
    e = Signal(8, name=f"{name}_e")
    m.d.comb += [mant.eq(Cat(bits[:_MANT], exp != 0)), e.eq(Mux(exp == 0, 1, exp))]
    return bits[31], mant, e


class IntFloatFma(wiring.Component):
    """``x·y + z`` with one IEEE float32 rounding, to nearest even (combinational).

    Parameters
    ----------
    x_width : int
        Bits of the signed integer ``x``, 2 to 24.

    Members
    -------
    x : In(signed(x_width))
        The integer.
    y : In(32)
        float32 bits, zero or a normal number.
    z : In(32)
        float32 bits, finite (subnormals included).
    result : Out(32)
        float32 bits of the rounded ``x·y + z``. A zero result is +0 (the sign of a zero never
        changes a later sum or rounding to an integer); beyond the float32 range, ±infinity.
    """

    def __init__(self, x_width: int = 10):
        if not isinstance(x_width, int) or not 2 <= x_width <= 24:
            raise ValueError(f"x_width must be an integer in [2, 24], not {x_width!r}")
        self.x_width = x_width
        super().__init__({"x": In(signed(x_width)), "y": In(32), "z": In(32), "result": Out(32)})

    def elaborate(self, platform):
        m = Module()
        XW = self.x_width
        PW = XW + _MANT + 1             # bits of the normalized product
        D_MAX = PW + 2                  # from this d on, the product is below a quarter ulp of z
        G = 3                           # guard bits below the product in the window
        SW = _MANT + 1 + D_MAX + G      # bits of the window's magnitude
        x = self.x
        sy, my, ey = _decode(m, self.y, "y")
        sz, mz, ez = _decode(m, self.z, "z")

        # |x|, normalized: its top bit at XW - 1
        ax = Signal(XW)
        m.d.comb += ax.eq(Mux(x < 0, -x, x))
        lz = Signal(range(XW))
        m.d.comb += lz.eq(XW - 1 - leading_one(m, ax, "fma_x"))
        axn = Signal(XW)
        m.d.comb += axn.eq(ax << lz)
        prod = Signal(PW)
        m.d.comb += prod.eq(axn * my)
        sp = x[-1] ^ sy
        product_zero = (ax == 0) | (self.y[_MANT:31] == 0)

        # z's lowest bit d places above the product's: d = (ez - LSB) - (ey - LSB - lz); dg in the window
        d = Signal(signed(11))
        m.d.comb += d.eq(ez - ey + lz)
        dg = Signal(signed(12))
        m.d.comb += dg.eq(d + G)
        zw = Signal(SW)
        right = Signal(range(_MANT + 3))
        m.d.comb += right.eq(Mux(-dg > _MANT + 2, _MANT + 2, -dg))
        cut = Signal()
        m.d.comb += cut.eq((mz & ((Const(1, _MANT + 3) << right) - 1)[:_MANT + 1]).any())
        with m.If(dg >= 0):
            m.d.comb += zw.eq(mz << dg[:7])
        with m.Else():
            m.d.comb += zw.eq((mz >> right) | cut)
        total = Signal(signed(SW + 2))
        m.d.comb += total.eq(Mux(sp, -(prod << G), prod << G) + Mux(sz, -zw, zw))
        neg = total < 0
        mag = Signal(SW + 1)
        m.d.comb += mag.eq(Mux(neg, -total, total))

        # normalize to 24 bits: shift right by r (left when negative); subnormal: stop at exponent 1
        top = leading_one(m, mag, "fma_s")
        exp = Signal(signed(11))
        m.d.comb += exp.eq(ey - lz + top - _MANT - G)
        r = Signal(signed(8))
        m.d.comb += r.eq(top - _MANT + Mux(exp < 1, 1 - exp, 0))
        e_final = Signal(signed(11))
        m.d.comb += e_final.eq(Mux(exp < 1, 1, exp))
        q = Signal(_MANT + 1)
        guard = Signal()
        sticky = Signal()
        rr = Signal(range(SW + 1))      # r when positive: at most SW - MANT
        rl = Signal(range(_MANT + 1))   # -r when not: at most MANT
        m.d.comb += [rr.eq(r), rl.eq(-r)]
        with m.If(r > 0):
            below = Signal.like(rr)
            m.d.comb += below.eq(rr - 1)
            m.d.comb += [q.eq(mag >> rr), guard.eq((mag >> below)[0]),
                         sticky.eq((mag & ((Const(1, SW + 1) << below) - 1)[:SW + 1]).any())]
        with m.Else():
            m.d.comb += q.eq(mag << rl)
        up = guard & (sticky | q[0])
        # the exponent field 0 for a subnormal significand; the rounding's carry moves into it
        packed = Signal(32)
        m.d.comb += packed.eq(Cat(q[:_MANT], Mux(q[_MANT], e_final[:8], 0)) + up)
        rounded = Signal(32)
        with m.If(mag == 0):
            m.d.comb += rounded.eq(0)
        with m.Elif(e_final > 254):
            m.d.comb += rounded.eq(Cat(Const(0, _MANT), Const(0xFF, 8), neg))
        with m.Else():
            m.d.comb += rounded.eq(Cat(packed[:31], neg))

        with m.If(product_zero | (d >= D_MAX)):
            m.d.comb += self.result.eq(Mux(self.z[:31] == 0, 0, self.z))
        with m.Else():
            m.d.comb += self.result.eq(rounded)
        return m


class FloatRoundInt(wiring.Component):
    """A float32 rounded to the nearest integer, ties to even, saturated (combinational).

    Parameters
    ----------
    out_width : int
        Bits of the signed result, 2 to 24.

    Members
    -------
    value : In(32)
        float32 bits, not NaN.
    result : Out(signed(out_width))
        ``rint(value)`` saturated to ``±(2**(out_width - 1) - 1)``.
    """

    def __init__(self, out_width: int = 12):
        if not isinstance(out_width, int) or not 2 <= out_width <= 24:
            raise ValueError(f"out_width must be an integer in [2, 24], not {out_width!r}")
        self.out_width = out_width
        super().__init__({"value": In(32), "result": Out(signed(out_width))})

    def elaborate(self, platform):
        m = Module()
        v = self.value
        exp = v[_MANT:31]
        mant = Cat(v[:_MANT], Const(1, 1))
        # value = mant · 2**(exp - LSB): k = LSB - exp bits go; from k = 26 on less than 1/4 is left
        k = Signal(range(27))
        m.d.comb += k.eq(Mux(exp < _LSB - 25, 26, _LSB - exp))
        wide = Signal(2 * (_MANT + 1) + 1)
        m.d.comb += wide.eq(Cat(Const(0, _MANT + 2), mant) >> k)
        q = wide[_MANT + 2:]
        half = wide[_MANT + 1]
        q_up = half & (wide[:_MANT + 1].any() | q[0])
        rounded = Signal(_MANT + 2)
        m.d.comb += rounded.eq(q + q_up)
        limit = (1 << (self.out_width - 1)) - 1
        sat = Signal(range(limit + 1))
        with m.If(exp == 0):
            m.d.comb += sat.eq(0)
        with m.Elif((exp >= _LSB) | (rounded > limit)):
            m.d.comb += sat.eq(limit)
        with m.Else():
            m.d.comb += sat.eq(rounded)
        m.d.comb += self.result.eq(Mux(v[31], -sat, sat))
        return m


def small_uint_to_float(m, value, name):
    """float32 bits of the unsigned integer ``value`` (exact: at most 24 bits).

    Parameters
    ----------
    m : Module
    value : Value
        Unsigned, at most 24 bits.
    name : str
        Prefix of the signals made.

    Returns
    -------
    Signal
        32 bits (+0 for 0).
    """
    assert len(value) <= _MANT + 1
    top = leading_one(m, value, name)
    up = Signal(range(_MANT + 1), name=f"{name}_up")
    mant = Signal(_MANT + 1, name=f"{name}_m")
    m.d.comb += [up.eq(_MANT - top), mant.eq(value << up)]
    bits = Signal(32, name=f"{name}_f")
    m.d.comb += bits.eq(Mux(value == 0, 0, Cat(mant[:_MANT], (top + _BIAS)[:8], Const(0, 1))))
    return bits


class FloatDivide(wiring.Component):
    """``a / b`` in IEEE float32, rounded to nearest even (combinational).

    The significands divide as integers, ``(ma << 24 or 25) // mb``: a 25-bit quotient (24 bits
    and the guard bit) and a remainder that is the sticky bit.

    Members
    -------
    a : In(32)
        float32 bits, zero or normal (a subnormal counts as zero).
    b : In(32)
        float32 bits, a normal number.
    result : Out(32)
        float32 bits of the rounded ``a / b``; +0 for ``a = 0`` and for quotients below the smallest
        normal float32 (flushed), ±infinity beyond the range.
    """

    a: In(32)
    b: In(32)
    result: Out(32)

    def elaborate(self, platform):
        m = Module()
        ea, eb = self.a[_MANT:31], self.b[_MANT:31]
        ma, mb = Cat(self.a[:_MANT], Const(1, 1)), Cat(self.b[:_MANT], Const(1, 1))
        small = ma < mb
        num = Signal(2 * (_MANT + 1) + 1)
        m.d.comb += num.eq(Mux(small, ma << (_MANT + 2), ma << (_MANT + 1)))
        quot = Signal(_MANT + 2)
        rem = Signal(_MANT + 1)
        m.d.comb += [quot.eq(num // mb), rem.eq(num % mb)]
        q = quot[1:]
        up = quot[0] & ((rem != 0) | q[0])
        exp = Signal(signed(11))
        m.d.comb += exp.eq(ea - eb + _BIAS - small)
        packed = Signal(32)
        m.d.comb += packed.eq(Cat(q[:_MANT], exp[:8]) + up)
        sign = self.a[31] ^ self.b[31]
        with m.If((ea == 0) | (exp < 1)):
            m.d.comb += self.result.eq(0)
        with m.Elif((exp > 254) | (packed[_MANT:31] == 0xFF)):
            m.d.comb += self.result.eq(Cat(Const(0, _MANT), Const(0xFF, 8), sign))
        with m.Else():
            m.d.comb += self.result.eq(Cat(packed[:31], sign))
        return m
