"""The element-wise unit's math: W lanes that accumulate a window and finish it, one byte each."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from tilelab.hdl.formats.eltwise import (
    PARAM_WORDS,
    EltwiseDesc,
    EltwiseOp,
    add_params_layout,
    bn_apply_params_layout,
)

__all__ = ["EltwiseLanes", "clamp8"]


def clamp8(value):
    """``value`` saturated to int8 (its low 8 bits)."""
    return Mux(value < -128, -128, Mux(value > 127, 127, value))[:8]


class EltwiseLanes(wiring.Component):
    """The math of the element-wise unit: one lane per byte of a W-byte word (one channel each).

    In a cycle with ``valid`` every lane takes its byte of ``a`` (or the op's pad value when
    ``pad``: -128 for MAXPOOL, else 0) into its window accumulators (maximum or sum ``s1``, sum of
    squares ``s2``; ``first`` starts a new window). ``out`` is combinational: each lane's byte of
    the op's result for the window as it stands after this cycle's value (MAXPOOL: the maximum;
    AVGPOOL / GLOBAL_AVGPOOL: the rounded average, by reciprocal multiplication; RELU; ADD of ``a``
    and ``b`` requantized per channel; BN_APPLY). The op and its constants come from ``desc``, the
    chunk's per-channel tables from ``params``.

    Parameters
    ----------
    width_bytes : int
        W: lanes (bytes per word).

    Members
    -------
    desc : In(EltwiseDesc)
        The descriptor being run.
    params : In(max(PARAM_WORDS) · 8W)
        The chunk's parameter table (:func:`~tilelab.hdl.formats.eltwise.add_params_layout`,
        :func:`~tilelab.hdl.formats.eltwise.bn_apply_params_layout`).
    a, b : In(8W)
        The input words (``b``: ADD's second input).
    valid, pad, first : In(1)
        A value arrives; it is a padding tap; it is the window's first.
    out : Out(8W)
        The result bytes.
    s1 : Out(data.ArrayLayout(signed(32), W))
        Per lane: the window maximum (MAXPOOL) or Σx so far.
    s2 : Out(data.ArrayLayout(signed(48), W))
        Per lane: Σx² so far.
    """

    def __init__(self, width_bytes: int):
        if width_bytes not in (16, 32, 64):
            raise ValueError(f"width_bytes must be 16, 32 or 64, not {width_bytes!r}")
        self.width_bytes = W = width_bytes
        super().__init__({
            "desc": In(EltwiseDesc), "params": In(max(PARAM_WORDS.values()) * 8 * W),
            "a": In(8 * W), "b": In(8 * W), "valid": In(1), "pad": In(1), "first": In(1),
            "out": Out(8 * W),
            "s1": Out(data.ArrayLayout(signed(32), W)), "s2": Out(data.ArrayLayout(signed(48), W)),
        })

    def elaborate(self, platform):
        m = Module()
        W = self.width_bytes
        d = self.desc
        add_layout, bn_layout = add_params_layout(W), bn_apply_params_layout(W)
        add = add_layout(self.params[:add_layout.size])
        bn_params = bn_layout(self.params[:bn_layout.size])
        a_bytes = data.ArrayLayout(signed(8), W)(self.a)
        b_bytes = data.ArrayLayout(signed(8), W)(self.b)
        out_bytes = []
        for lane in range(W):
            raw_a, raw_b = a_bytes[lane], b_bytes[lane]
            s1, s2 = self.s1[lane], self.s2[lane]
            pad_value = Mux(d.op == EltwiseOp.MAXPOOL, -128, 0)
            x = Signal(signed(8), name=f"x_{lane}")
            m.d.comb += x.eq(Mux(self.pad, pad_value, raw_a))
            acc1 = Signal(signed(32), name=f"acc1_{lane}")
            acc2 = Signal(signed(48), name=f"acc2_{lane}")
            sq = x * x
            m.d.comb += [
                acc1.eq(Mux(self.first, x, Mux(d.op == EltwiseOp.MAXPOOL, Mux(x > s1, x, s1), s1 + x))),
                acc2.eq(Mux(self.first, sq, s2 + sq)),
            ]
            with m.If(self.valid):
                m.d.sync += [s1.eq(acc1), s2.eq(acc2)]

            # AVGPOOL / GLOBAL_AVGPOOL: exact rounded division by reciprocal multiplication
            v = (acc1 + d.div_bias)[:25]
            avg = ((v * d.div_mult) >> d.div_shift[:6])[:9] - 128
            # RELU
            relu = Mux(x > d.zero_point, x, d.zero_point)
            # ADD: two rounded requantization terms, zero point, ReLU, saturation
            terms = []
            for name, mult, shift, value, zp in (("0", add.a_mult[lane], add.a_shift[lane], x, d.a_zero_point),
                                                 ("4", add.b_mult[lane], add.b_shift[lane], raw_b, d.b_zero_point)):
                shift = shift[:6]
                centered = Signal(signed(10), name=f"c{name}_{lane}")
                m.d.comb += centered.eq(value - zp)
                prod = Signal(signed(64), name=f"p{name}_{lane}")
                m.d.comb += prod.eq(centered * mult + (Const(1, 64) << (shift - 1)[:6]))
                term = Signal(signed(64), name=f"t{name}_{lane}")
                m.d.comb += term.eq(prod >> shift)
                terms.append(term)
            t_add = Signal(signed(66), name=f"tadd_{lane}")
            m.d.comb += t_add.eq(terms[0] + terms[1] + d.zero_point)
            t_add_relu = Mux(d.relu & (t_add < d.zero_point), d.zero_point, t_add)
            # BN_APPLY: y = ((xc · a + 2**(T-1)) >> T) + beta
            xc = Signal(signed(34), name=f"xc_{lane}")
            m.d.comb += xc.eq((x << 8) - bn_params.mean[lane])
            tshift = d.bn_shift[:6]
            bprod = Signal(signed(100), name=f"bp_{lane}")
            m.d.comb += bprod.eq(xc * bn_params.a[lane] + (Const(1, 64) << (tshift - 1)[:6]))
            bn = Signal(signed(72), name=f"bn_{lane}")
            m.d.comb += bn.eq((bprod >> tshift) + bn_params.beta[lane])

            byte = Signal(8, name=f"out_{lane}")
            with m.Switch(d.op):
                with m.Case(EltwiseOp.MAXPOOL):
                    m.d.comb += byte.eq(acc1[:8])
                with m.Case(EltwiseOp.AVGPOOL, EltwiseOp.GLOBAL_AVGPOOL):
                    m.d.comb += byte.eq(avg[:8])
                with m.Case(EltwiseOp.RELU):
                    m.d.comb += byte.eq(relu[:8])
                with m.Case(EltwiseOp.ADD):
                    m.d.comb += byte.eq(clamp8(t_add_relu))
                with m.Case(EltwiseOp.BN_APPLY):
                    m.d.comb += byte.eq(clamp8(bn))
            out_bytes.append(byte)
        m.d.comb += self.out.eq(Cat(*out_bytes))
        return m
