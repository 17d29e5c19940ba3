"""BN_TERMS: batch-norm steps 2-7 per channel on one sequential divider and one square-root unit."""

from amaranth.hdl import Array, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from tilelab.hdl.arith import SeqDivider, SeqIsqrt
from tilelab.hdl.formats.eltwise import PARAM_WORDS, STATS_SPLIT_BITS, EltwiseDesc, bn_terms_params_layout

__all__ = ["BnTerms"]

# Phases, one channel at a time: steps 2, 4, 5, the division of step 6, its square root (and 7).
_T_MEAN, _T_SSD, _T_VAR, _T_QUOT, _T_SQRT = range(5)


class BnTerms(wiring.Component):
    """Steps 2-7 of :func:`tilelab.reference.golden.batch_norm_train` for the channels of one chunk,
    one after another (about 290 cycles per channel).

    ``begin`` restarts at lane 0; in every cycle with ``run`` the sequence advances (two
    divisions per channel for the mean and the variance, one for 2**60 / (var + eps), then the
    square root). ``done`` rises in the cycle that finishes the chunk's last lane.

    Parameters
    ----------
    width_bytes : int
        W: lanes of a chunk.

    Members
    -------
    begin, run : In(1)
        Start at lane 0 (the chunk's tables have been read); advance.
    desc : In(EltwiseDesc)
        The descriptor (``bn_count``, ``bn_eps``).
    params : In(max(PARAM_WORDS) · 8W)
        The chunk's tables (:func:`~tilelab.hdl.formats.eltwise.bn_terms_params_layout`).
    lanes : In(range(W + 1))
        Real channels of the chunk.
    done : Out(1)
        The last lane finishes in this cycle.
    mean, a : Out(data.ArrayLayout(unsigned 32 / 64, W))
        Per lane: the mean (Q.8, int32) and ``a = gamma · inv`` (int64).
    """

    def __init__(self, width_bytes: int):
        self.width_bytes = W = width_bytes
        super().__init__({
            "begin": In(1), "run": In(1), "desc": In(EltwiseDesc),
            "params": In(max(PARAM_WORDS.values()) * 8 * W), "lanes": In(range(W + 1)),
            "done": Out(1), "mean": Out(data.ArrayLayout(32, W)), "a": Out(data.ArrayLayout(64, W)),
        })

    def elaborate(self, platform):
        m = Module()
        W = self.width_bytes
        d = self.desc
        m.submodules.div = div = SeqDivider(64)
        m.submodules.sqrt = sqrt = SeqIsqrt(64)
        layout = bn_terms_params_layout(W)
        tables = layout(self.params[:layout.size])
        t_lane = Signal(range(W))
        t_phase = Signal(3)
        started = Signal()

        def lane_value(lanes):
            return Array(lanes[lane] for lane in range(W))[t_lane]

        s1 = Signal(signed(32))
        s2 = Signal(64)
        gamma = Signal(signed(32))
        m.d.comb += [s1.eq(lane_value(tables.sum)),
                     s2.eq(lane_value(tables.sq_low) + (lane_value(tables.sq_high) << STATS_SPLIT_BITS)),
                     gamma.eq(lane_value(tables.gamma))]
        count = d.bn_count
        half = count >> 1
        v_mean = Signal(signed(64))
        m.d.comb += v_mean.eq((s1 << 8) + half)
        negative = v_mean < 0
        spread = Signal(64)  # D = n·Σx² - (Σx)², 0 <= D <= 2**62
        m.d.comb += spread.eq(count * s2 - s1 * s1)
        ssd = Signal(64)
        var = Signal(64)
        quot = Signal(64)
        mean_q = Signal(signed(32))
        m.d.comb += mean_q.eq(Mux(negative, -(div.quotient + (div.remainder != 0)), div.quotient))

        with m.If(self.begin):
            m.d.sync += [t_lane.eq(0), t_phase.eq(_T_MEAN)]
        with m.If(self.run):
            finished = started & ~div.busy & ~sqrt.busy
            with m.If(~started):
                m.d.sync += started.eq(1)
            with m.If(finished):
                m.d.sync += [started.eq(0), t_phase.eq(t_phase + 1)]
            with m.Switch(t_phase):
                with m.Case(_T_MEAN):
                    m.d.comb += [div.start.eq(~started), div.dividend.eq(Mux(negative, -v_mean, v_mean)),
                                 div.divisor.eq(count)]
                    with m.If(finished):
                        with m.Switch(t_lane):
                            for lane in range(W):
                                with m.Case(lane):
                                    m.d.sync += self.mean[lane].eq(mean_q)
                with m.Case(_T_SSD):
                    m.d.comb += [div.start.eq(~started), div.dividend.eq(spread + half), div.divisor.eq(count)]
                    with m.If(finished):
                        m.d.sync += ssd.eq(div.quotient)
                with m.Case(_T_VAR):
                    m.d.comb += [div.start.eq(~started), div.dividend.eq((ssd << 16) + half), div.divisor.eq(count)]
                    with m.If(finished):
                        m.d.sync += var.eq(div.quotient)
                with m.Case(_T_QUOT):
                    m.d.comb += [div.start.eq(~started), div.dividend.eq(1 << 60), div.divisor.eq(var + d.bn_eps)]
                    with m.If(finished):
                        m.d.sync += quot.eq(div.quotient)
                with m.Case(_T_SQRT):
                    m.d.comb += [sqrt.start.eq(~started), sqrt.value.eq(quot)]
                    with m.If(finished):
                        with m.Switch(t_lane):
                            for lane in range(W):
                                with m.Case(lane):
                                    m.d.sync += self.a[lane].eq(gamma * sqrt.root)
                        with m.If(t_lane + 1 < self.lanes):
                            m.d.sync += [t_lane.eq(t_lane + 1), t_phase.eq(_T_MEAN)]
                        with m.Else():
                            m.d.comb += self.done.eq(1)
        return m
