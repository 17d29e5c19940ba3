"""The element-wise unit's onnxruntime lanes: lookup tables and float32 arithmetic, bit for bit."""

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from tilelab.hdl.formats.eltwise import (
    MAX_WINDOW,
    PARAM_WORDS,
    QLINEAR_OPS,
    TABLE_ENTRIES,
    TABLE_WORDS,
    EltwiseOp,
    qadd_params_layout,
    qavg_params_layout,
    qmul_params_layout,
)
from tilelab.hdl.fpfma import FloatDivide, FloatRoundInt, IntFloatFma, small_uint_to_float
from tilelab.hdl.fpscale import FloatScaleRound

from .lanes import clamp8

__all__ = ["QLinearLanes"]

#: Bits of the integer operands: an 8-bit value (raw 0..255 or stored -128..127) minus a zero point.
INT_BITS = 10
#: Bits of the rounded results before the offset and the int8 saturation (anything beyond saturates).
ROUND_BITS = 12
#: Bits of QMUL's scaled product (FloatScaleRound's result; beyond it saturates).
SCALED_BITS = 16
#: uint8 values are stored as q - UINT8_OFFSET.
UINT8_OFFSET = 128


class QLinearLanes(wiring.Component):
    """The ops of :data:`~tilelab.hdl.formats.eltwise.QLINEAR_OPS`: one lane per byte of a W-byte word.

    Every input is registered here, so the unit can clock this component on a gated clock that
    ticks only on the cycles one of these ops loads a parameter word or a data word
    (:func:`tilelab.hdl.clockgate.gated_domain`): its logic reads only its own registers and costs
    a compiled simulator nothing while the unit runs its other ops. ``out`` is combinational from
    the registers, so it holds the result of the word loaded at the last tick with ``valid``:
    one cycle later than :class:`~.lanes.EltwiseLanes`' result.

    TABLE
        ``out = entries[x + 128]`` per lane (:func:`~tilelab.hdl.formats.eltwise.table_params_layout`).
    QADD
        onnxruntime's QLinearAdd on the raw values ``a' = a + 128·uint8`` and ``b'`` likewise
        (``b' = 0`` with ``scalar_b``): ``t = fma(a', ra, fma(b', rb, k))`` on two
        :class:`~tilelab.hdl.fpfma.IntFloatFma` per lane, then ``rint(t)``
        (:class:`~tilelab.hdl.fpfma.FloatRoundInt`), ``- 128·uint8`` and saturated to int8
        (:func:`~tilelab.hdl.formats.eltwise.qadd_params_layout`).
    QMUL
        onnxruntime's QLinearMul: ``p = (a - a_zp)·(b - b_zp)`` (an integer, exact in float32),
        ``rint(float32(p)·r)`` (:class:`~tilelab.hdl.fpscale.FloatScaleRound`, the tile's
        requantization), ``+ y_zp``, saturated (:func:`~tilelab.hdl.formats.eltwise.qmul_params_layout`).
    QAVGPOOL
        onnxruntime's QLinearAveragePool: per real tap ``s = s + fma(x - x_zp, x_scale, 0)`` (two
        float32 roundings, on :class:`~tilelab.hdl.fpfma.IntFloatFma`), the real taps (or all of
        them) counted; the window's result ``rint((s / float(count)) / y_scale + float(y_zp))`` on two
        :class:`~tilelab.hdl.fpfma.FloatDivide` and an FMA (:func:`~tilelab.hdl.formats.eltwise.qavg_params_layout`).
        The sum and the count of the taps before the last are registers; ``out`` adds the last.

    Parameters
    ----------
    width_bytes : int
        W: lanes (bytes per word).

    Members
    -------
    op : In(EltwiseOp)
        The op being run (registered at every tick, as ``uint8`` and ``scalar_b``).
    uint8, scalar_b : In(1)
        QADD: the values are uint8 stored as ``q - 128``; ``b`` is not an input (its constant is
        in ``k``).
    load : In(1)
        ``load_data`` is parameter word ``load_index`` of the op's table (words from
        :data:`~tilelab.hdl.formats.eltwise.TABLE_WORDS` on are not kept: TABLE's output stride is the
        unit's business).
    load_index : In(range(TABLE_WORDS + 1))
    load_data : In(8W)
    valid : In(1)
        ``a`` and ``b`` are the next input words (or a padding tap, ``pad``).
    pad, first : In(1)
        QAVGPOOL: the word is a padding tap (not read); it is the window's first.
    a, b : In(8W)
        The input words (``b``: QADD's second input).
    out : Out(8W)
        The result bytes of the last word loaded.
    """

    def __init__(self, width_bytes: int):
        if width_bytes not in (16, 32, 64):
            raise ValueError(f"width_bytes must be 16, 32 or 64, not {width_bytes!r}")
        self.width_bytes = W = width_bytes
        self.param_words = max(min(PARAM_WORDS[op], TABLE_WORDS) for op in QLINEAR_OPS)
        super().__init__({
            "op": In(EltwiseOp), "uint8": In(1), "scalar_b": In(1),
            "load": In(1), "load_index": In(range(TABLE_WORDS + 1)), "load_data": In(8 * W),
            "valid": In(1), "pad": In(1), "first": In(1), "a": In(8 * W), "b": In(8 * W), "out": Out(8 * W),
        })

    def elaborate(self, platform):
        m = Module()
        W = self.width_bytes
        WB = 8 * W
        op = Signal(EltwiseOp)
        uint8 = Signal()
        scalar_b = Signal()
        m.d.sync += [op.eq(self.op), uint8.eq(self.uint8), scalar_b.eq(self.scalar_b)]
        params = Signal(self.param_words * WB)
        with m.If(self.load):
            with m.Switch(self.load_index):
                for w in range(self.param_words):
                    with m.Case(w):
                        m.d.sync += params[w * WB:(w + 1) * WB].eq(self.load_data)
        a = Signal(WB)
        b = Signal(WB)
        pad = Signal()
        first = Signal()
        pending = Signal()      # a, pad and first are a tap that the sums do not hold yet
        m.d.sync += pending.eq(self.valid)
        with m.If(self.valid):
            m.d.sync += [a.eq(self.a), b.eq(self.b), pad.eq(self.pad), first.eq(self.first)]

        entries = data.ArrayLayout(signed(8), TABLE_ENTRIES)(params[:8 * TABLE_ENTRIES])
        qadd_layout = qadd_params_layout(W)
        qadd = qadd_layout(params[:qadd_layout.size])
        qmul_layout = qmul_params_layout(W)
        qmul = qmul_layout(params[:qmul_layout.size])
        a_bytes = data.ArrayLayout(signed(8), W)(a)
        b_bytes = data.ArrayLayout(signed(8), W)(b)
        offset = Mux(uint8, UINT8_OFFSET, 0)
        qavg_layout = qavg_params_layout(W)
        qavg = qavg_layout(params[:qavg_layout.size])
        # QAVGPOOL's tap count (the same in every lane), with the registered tap
        count = Signal(range(MAX_WINDOW + 1))
        count_now = Signal(range(MAX_WINDOW + 1))
        m.d.comb += count_now.eq(Mux(first, 0, count) + (qavg.include_pad | ~pad))
        with m.If(pending):
            m.d.sync += count.eq(count_now)
        count_f = small_uint_to_float(m, count_now, "qavg_count")
        out_bytes = []
        for lane in range(W):
            byte = Signal(8, name=f"q_out_{lane}")
            # TABLE: the entry of the int8 value v is number v + 128 (v with its sign bit flipped)
            index = a_bytes[lane].as_unsigned() ^ 0x80
            # QADD: two fused multiply-adds on the raw values, rounded to an integer
            fma_b = IntFloatFma(INT_BITS)
            fma_a = IntFloatFma(INT_BITS)
            rnd = FloatRoundInt(ROUND_BITS)
            m.submodules[f"fma_b_{lane}"] = fma_b
            m.submodules[f"fma_a_{lane}"] = fma_a
            m.submodules[f"round_{lane}"] = rnd
            m.d.comb += [
                fma_b.x.eq(Mux(scalar_b, 0, b_bytes[lane] + offset)), fma_b.y.eq(qadd.rb), fma_b.z.eq(qadd.k),
                fma_a.x.eq(a_bytes[lane] + offset), fma_a.y.eq(qadd.ra), fma_a.z.eq(fma_b.result),
                rnd.value.eq(fma_a.result),
            ]
            # QMUL: the product of the centred values, scaled and rounded as the tile's pack stage does
            scale = FloatScaleRound(SCALED_BITS)
            m.submodules[f"scale_{lane}"] = scale
            m.d.comb += [scale.value.eq((a_bytes[lane] - qmul.a_zp) * (b_bytes[lane] - qmul.b_zp)),
                         scale.scale.eq(qmul.r)]
            # QAVGPOOL: dequantize, add to the window's float32 sum, divide twice, add the zero point
            deq, add, by_count, by_scale, plus_zp = (IntFloatFma(INT_BITS), IntFloatFma(2), FloatDivide(),
                                                     FloatDivide(), IntFloatFma(2))      # x = 1: sums
            avg_round = FloatRoundInt(ROUND_BITS)
            for part, unit in (("deq", deq), ("add", add), ("div_count", by_count), ("div_scale", by_scale),
                               ("zp", plus_zp), ("avg_round", avg_round)):
                m.submodules[f"qavg_{part}_{lane}"] = unit
            acc = Signal(32, name=f"qavg_sum_{lane}")
            acc_now = Signal(32, name=f"qavg_sum_now_{lane}")
            m.d.comb += [
                deq.x.eq(a_bytes[lane] - qavg.x_zp), deq.y.eq(qavg.x_scale), deq.z.eq(0),
                add.x.eq(1), add.y.eq(deq.result), add.z.eq(Mux(first, 0, acc)),
                acc_now.eq(Mux(pad, Mux(first, 0, acc), add.result)),
                by_count.a.eq(acc_now), by_count.b.eq(count_f),
                by_scale.a.eq(by_count.result), by_scale.b.eq(qavg.y_scale),
                plus_zp.x.eq(1), plus_zp.y.eq(by_scale.result), plus_zp.z.eq(qavg.y_zp),
                avg_round.value.eq(plus_zp.result),
            ]
            with m.If(pending):
                m.d.sync += acc.eq(acc_now)
            with m.Switch(op):
                with m.Case(EltwiseOp.QAVGPOOL):
                    m.d.comb += byte.eq(clamp8(avg_round.result - offset))
                with m.Case(EltwiseOp.QMUL):
                    m.d.comb += byte.eq(clamp8(scale.result + qmul.y_zp))
                with m.Case(EltwiseOp.TABLE):
                    m.d.comb += byte.eq(entries[index])
                with m.Case(EltwiseOp.QADD):
                    m.d.comb += byte.eq(clamp8(rnd.result - offset))
            out_bytes.append(byte)
        m.d.comb += self.out.eq(Cat(*out_bytes))
        return m
