"""An int32 times a float32 scale, rounded to an integer the way IEEE float32 arithmetic does it.

:class:`FloatScaleRound` computes, in one combinational step and without any floating-point unit,
exactly what this C code computes (every operation IEEE float32, round to nearest even)::

    float f = (float)value * scale;       // two roundings: int32 → float32, then the product
    int32_t r = (int32_t)nearbyintf(f);   // round half to even

It is the requantization of onnxruntime's quantized conv / matmul kernels (``MlasRequantizeOutput``),
which the compute tile's pack stage offers beside the integer one, so that quantized ONNX models
give onnxruntime's outputs bit for bit (golden: :func:`tilelab.reference.golden.requantize_float`).

The scale must be a positive normal float32 (the host refuses others); the result saturates to
``±(2**(out_width - 1) - 1)``, far outside any int8 output range.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["FloatScaleRound"]

_MANT = 23          # float32 fraction bits
_BIAS = 127         # float32 exponent bias


class FloatScaleRound(wiring.Component):
    """``round_half_even(float32(float32(value) · scale))``, saturated (combinational).

    Parameters
    ----------
    out_width : int
        Bits of the signed result, 8 to 32.

    Members
    -------
    value : In(signed(32))
        The integer (an accumulator plus bias).
    scale : In(32)
        The IEEE float32 bits of a positive normal scale.
    result : Out(signed(out_width))
        The rounded product, saturated to ``±(2**(out_width - 1) - 1)``.
    """

    def __init__(self, out_width: int = 16):
        if not isinstance(out_width, int) or not 8 <= out_width <= 32:
            raise ValueError(f"out_width must be an integer in [8, 32], not {out_width!r}")
        self.out_width = out_width
        super().__init__({"value": In(signed(32)), "scale": In(32), "result": Out(signed(out_width))})

    def elaborate(self, platform):
        m = Module()
        v = self.value
        # |value| (2**31 fits 32 unsigned bits) and its leading one.
        neg = v[31]
        mag = Signal(32)
        m.d.comb += mag.eq(Mux(neg, -v, v))
        lead = Signal(range(32))
        for i in range(32):
            with m.If(mag[i]):
                m.d.comb += lead.eq(i)
        # int32 → float32: 24 significant bits, the rest rounded to nearest even.
        up_shift = Signal(5)
        m.d.comb += up_shift.eq(31 - lead)
        norm = Signal(32)
        m.d.comb += norm.eq((mag << up_shift)[:32])
        a0 = norm[8:32]
        a_up = norm[7] & (norm[:7].any() | a0[0])
        a1 = Signal(25)
        m.d.comb += a1.eq(a0 + a_up)
        ma = Signal(24)
        ea = Signal(range(33))                   # value = ma · 2**(ea - 23)
        m.d.comb += [ma.eq(Mux(a1[24], 1 << _MANT, a1[:24])), ea.eq(lead + a1[24])]
        # The product of the two 24-bit significands, rounded back to 24 bits.
        ms = Cat(self.scale[:_MANT], Const(1, 1))
        es = self.scale[_MANT:31]
        prod = Signal(48)
        m.d.comb += prod.eq(ma * ms)
        top = prod[47]
        p0 = Signal(24)
        p_guard = Signal()
        p_sticky = Signal()
        m.d.comb += [
            p0.eq(Mux(top, prod[24:48], prod[23:47])),
            p_guard.eq(Mux(top, prod[23], prod[22])),
            p_sticky.eq(Mux(top, prod[:23].any(), prod[:22].any())),
        ]
        p1 = Signal(25)
        m.d.comb += p1.eq(p0 + (p_guard & (p_sticky | p0[0])))
        mp = Signal(24)
        m.d.comb += mp.eq(Mux(p1[24], 1 << _MANT, p1[:24]))
        # ma · ms = prod = p0 · 2**(23 + top) (before rounding), so f = mp · 2**e with
        # e = (ea - 23) + (es - 127 - 23) + 23 + top + carry.
        e = Signal(signed(11))
        m.d.comb += e.eq(ea + es + top + p1[24] - (_MANT + _BIAS))
        # float32 → integer, round half to even: k = -e bits go; k >= 25 leaves less than 1/2.
        k = Signal(range(26))
        m.d.comb += k.eq(Mux(e < -25, 25, -e))
        wide = Signal(49)
        m.d.comb += wide.eq(Cat(Const(0, 25), mp) >> k)
        q = wide[25:]
        q_up = wide[24] & (wide[:24].any() | q[0])
        r = Signal(25)
        m.d.comb += r.eq(q + q_up)
        limit = (1 << (self.out_width - 1)) - 1
        sat = Signal(range(limit + 1))
        with m.If(mag == 0):
            m.d.comb += sat.eq(0)
        with m.Elif((e >= 0) | (r > limit)):
            m.d.comb += sat.eq(limit)
        with m.Else():
            m.d.comb += sat.eq(r)
        m.d.comb += self.result.eq(Mux(neg, -sat, sat))
        return m
