"""The element-wise unit's onnxruntime lanes: lookup tables and float32 arithmetic, bit for bit."""

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from tilelab.hdl.formats.eltwise import (
    PARAM_WORDS,
    QLINEAR_OPS,
    TABLE_ENTRIES,
    TABLE_WORDS,
    EltwiseOp,
    qadd_params_layout,
    qmul_params_layout,
)
from tilelab.hdl.fpfma import FloatRoundInt, IntFloatFma
from tilelab.hdl.fpscale import FloatScaleRound

from .lanes import clamp8

__all__ = ["QLinearLanes"]


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
        ``a`` and ``b`` are the next input words.
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
            "valid": In(1), "a": In(8 * W), "b": In(8 * W), "out": Out(8 * W),
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
        with m.If(self.valid):
            m.d.sync += [a.eq(self.a), b.eq(self.b)]

        entries = data.ArrayLayout(signed(8), TABLE_ENTRIES)(params[:8 * TABLE_ENTRIES])
        qadd_layout = qadd_params_layout(W)
        qadd = qadd_layout(params[:qadd_layout.size])
        qmul_layout = qmul_params_layout(W)
        qmul = qmul_layout(params[:qmul_layout.size])
        a_bytes = data.ArrayLayout(signed(8), W)(a)
        b_bytes = data.ArrayLayout(signed(8), W)(b)
        offset = Mux(uint8, 128, 0)
        out_bytes = []
        for lane in range(W):
            byte = Signal(8, name=f"q_out_{lane}")
            # TABLE: the entry of the int8 value v is number v + 128 (v with its sign bit flipped)
            index = a_bytes[lane].as_unsigned() ^ 0x80
            # QADD: two fused multiply-adds on the raw values, rounded to an integer
            fma_b = IntFloatFma(10)
            fma_a = IntFloatFma(10)
            rnd = FloatRoundInt(12)
            m.submodules[f"fma_b_{lane}"] = fma_b
            m.submodules[f"fma_a_{lane}"] = fma_a
            m.submodules[f"round_{lane}"] = rnd
            m.d.comb += [
                fma_b.x.eq(Mux(scalar_b, 0, b_bytes[lane] + offset)), fma_b.y.eq(qadd.rb), fma_b.z.eq(qadd.k),
                fma_a.x.eq(a_bytes[lane] + offset), fma_a.y.eq(qadd.ra), fma_a.z.eq(fma_b.result),
                rnd.value.eq(fma_a.result),
            ]
            # QMUL: the product of the centred values, scaled and rounded as the tile's pack stage does
            scale = FloatScaleRound(16)
            m.submodules[f"scale_{lane}"] = scale
            m.d.comb += [scale.value.eq((a_bytes[lane] - qmul.a_zp) * (b_bytes[lane] - qmul.b_zp)),
                         scale.scale.eq(qmul.r)]
            with m.Switch(op):
                with m.Case(EltwiseOp.QMUL):
                    m.d.comb += byte.eq(clamp8(scale.result + qmul.y_zp))
                with m.Case(EltwiseOp.TABLE):
                    m.d.comb += byte.eq(entries[index])
                with m.Case(EltwiseOp.QADD):
                    m.d.comb += byte.eq(clamp8(rnd.result - offset))
            out_bytes.append(byte)
        m.d.comb += self.out.eq(Cat(*out_bytes))
        return m
