"""The element-wise unit's window walk: one tap of one output pixel per cycle, with its addresses."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from tilelab.hdl.formats.eltwise import EltwiseDesc, EltwiseOp

__all__ = ["EltwiseTaps"]


class EltwiseTaps(wiring.Component):
    """Walks the taps of one channel chunk: for ``n``, ``oh``, ``ow`` (output pixels) and ``i``,
    ``j`` (the window), one tap per cycle with ``step``.

    GLOBAL_AVGPOOL and BN_STATS have one output pixel per image, their window the whole image
    (BN_STATS also sums over ``n``: one window). The outputs describe the current tap,
    combinationally.

    Members
    -------
    desc : In(EltwiseDesc)
        The descriptor being run.
    chunk_base : In(32)
        First channel of the chunk.
    restart : In(1)
        Go back to the chunk's first tap.
    step : In(1)
        Move on to the next tap.
    pad : Out(1)
        The tap is in the padding (nothing to read).
    offset : Out(32)
        Byte offset of the tap's W channels in the input tensor.
    out_pix : Out(32)
        The output pixel.
    first, last : Out(1)
        The first and the last tap of an output window.
    end : Out(1)
        The chunk's last tap.
    """

    desc: In(EltwiseDesc)
    chunk_base: In(32)
    restart: In(1)
    step: In(1)
    pad: Out(1)
    offset: Out(32)
    out_pix: Out(32)
    first: Out(1)
    last: Out(1)
    end: Out(1)

    def elaborate(self, platform):
        m = Module()
        d = self.desc
        n, oh, ow, i, j = (Signal(24, name=nm) for nm in ("n", "oh", "ow", "i", "j"))
        is_glob = (d.op == EltwiseOp.GLOBAL_AVGPOOL) | (d.op == EltwiseOp.BN_STATS)
        is_stats = d.op == EltwiseOp.BN_STATS
        KH = Mux(is_glob, d.h, d.kh)
        KW = Mux(is_glob, d.w, d.kw)
        HO = Mux(is_glob, 1, d.ho)
        WO = Mux(is_glob, 1, d.wo)
        SH = Mux(is_glob, 1, d.sh)
        SW = Mux(is_glob, 1, d.sw)
        PH = Mux(is_glob, 0, d.ph)
        PW = Mux(is_glob, 0, d.pw)

        ihp = oh * SH + i
        iwp = ow * SW + j
        pix = ((n * d.h + (ihp - PH)[:24]) * d.w + (iwp - PW)[:24])[:32]
        last_tap = (i + 1 == KH) & (j + 1 == KW)
        m.d.comb += [
            self.pad.eq((ihp < PH) | (ihp >= d.h + PH) | (iwp < PW) | (iwp >= d.w + PW)),
            self.offset.eq((pix * d.c + self.chunk_base)[:32]),
            self.out_pix.eq(((n * HO + oh) * WO + ow)[:32]),
            self.first.eq((i == 0) & (j == 0) & (~is_stats | (n == 0))),
            self.last.eq(last_tap & (~is_stats | (n + 1 == d.n))),
        ]

        # advance j → i → ow → oh → n
        with m.If(self.step):
            with m.If(j + 1 < KW):
                m.d.sync += j.eq(j + 1)
            with m.Else():
                m.d.sync += j.eq(0)
                with m.If(i + 1 < KH):
                    m.d.sync += i.eq(i + 1)
                with m.Else():
                    m.d.sync += i.eq(0)
                    with m.If(ow + 1 < WO):
                        m.d.sync += ow.eq(ow + 1)
                    with m.Else():
                        m.d.sync += ow.eq(0)
                        with m.If(oh + 1 < HO):
                            m.d.sync += oh.eq(oh + 1)
                        with m.Else():
                            m.d.sync += oh.eq(0)
                            with m.If(n + 1 < d.n):
                                m.d.sync += n.eq(n + 1)
                            with m.Else():
                                m.d.sync += n.eq(0)
        m.d.comb += self.end.eq((j + 1 >= KW) & (i + 1 >= KH) & (ow + 1 >= WO) & (oh + 1 >= HO) & (n + 1 >= d.n))
        with m.If(self.restart):
            m.d.sync += [n.eq(0), oh.eq(0), ow.eq(0), i.eq(0), j.eq(0)]
        return m
