"""The element-wise / pooling unit: pooling, residual add, ReLU and batch norm on NHWC int8 tensors.

An autonomous engine beside the compute tile's engines. After ``start`` it fetches
:class:`~tilelab.hdl.formats.eltwise.EltwiseDesc` descriptors from external memory (byte 0 on)
and runs each one over a tensor in external memory, W channels (one port word) per cycle::

    for chunk of W channels:            (parameter table of the chunk read first, if the op has one)
      for n, oh, ow:                    (output pixels; one for GLOBAL_AVGPOOL / BN_STATS per image)
        for i, j in the window:         one W-byte read per cycle on port a (and b for ADD);
                                        padding taps read nothing and count as the op's pad value
          accumulate per lane (max, sum, Σx and Σx²)
        on the last tap: finish per lane (divide, requantize, normalize, clamp) and write W bytes

The pipeline is two stages deep (read → accumulate/finish → write) and never stalls: the
external memory answers every read one cycle later and takes one write per cycle. The last chunk
of a tensor whose channel count is not a multiple of W writes only its real channels (byte mask).
BN_STATS writes the chunk's sums (12 words) after the chunk's taps. BN_TERMS reads no tensor: it
runs batch-norm steps 2-7 for each channel of the chunk in turn on one sequential divider and one
square-root unit (:mod:`tilelab.hdl.arith`, about 290 cycles per channel) and writes the chunk's
BN_APPLY table (16 words).

:class:`EltwiseTop` joins the unit to an :class:`~tilelab.hdl.memories.ExtMemory` for simulation,
like :class:`~tilelab.pe_models.tile.TileTop`.
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from tilelab.hdl.arith import SeqDivider, SeqIsqrt
from tilelab.hdl.formats.eltwise import (
    AFFINE_WORDS,
    DESC_BITS,
    DESC_BYTES,
    PARAM_WORDS,
    STATS_SPLIT_BITS,
    STATS_WORDS,
    TERMS_WORDS,
    EltwiseDesc,
    EltwiseOp,
    EltwiseState,
)

from .config import DEFAULT_ELTWISE, EltwiseConfig
from .tile import ExtMemoryTop, ext_port_signature

__all__ = ["ELTWISE_COUNTERS", "ELTWISE_STATUS", "EltwiseUnit", "EltwiseTop"]

#: Hardware counters of the unit, in the order of its counter ports (all 48 bits).
ELTWISE_COUNTERS = (
    "cycles",             # cycles from start to done
    "busy",               # cycles the unit issued a data tap
    "ext_bytes_read",     # bytes of tensors and parameter tables read (both ports)
    "ext_bytes_written",  # bytes written (real channels only)
    "cmd_bytes_read",     # bytes of descriptors fetched
    "elements",           # real input elements read on port a (padding taps excluded)
    "terms_cycles",       # cycles spent computing BN_TERMS (sequential divider / square root)
)

#: Status ports read by the watchdog's diagnosis.
ELTWISE_STATUS = ("state", "descs_done")


# Kinds of read whose data comes back in the next cycle.
_RET_NONE, _RET_DESC, _RET_PARAM, _RET_DATA = range(4)
# BN_TERMS phases, one channel at a time: steps 2, 4, 5, the division of step 6, its square root (and 7).
_T_MEAN, _T_SSD, _T_VAR, _T_QUOT, _T_SQRT = range(5)


def _clamp8(value):
    return Mux(value < -128, -128, Mux(value > 127, 127, value))[:8]


class EltwiseUnit(wiring.Component):
    """The element-wise / pooling unit (see the module docstring).

    Parameters
    ----------
    config : EltwiseConfig
        Port width and memory model.

    Members
    -------
    start : In(1)
        Pulse once after reset: run the program at byte 0.
    done : Out(1)
        The descriptor with ``last`` has finished (sticky).
    ext : Out(ext_port_signature(config.ext_bytes))
        External-memory ports (the compute tile's signature).
    <counter> : Out(48)
        One port per name in :data:`ELTWISE_COUNTERS`.
    state : Out(EltwiseState)
        What the unit is doing.
    descs_done : Out(16)
        Descriptors finished.
    """

    def __init__(self, config: EltwiseConfig = DEFAULT_ELTWISE):
        if not isinstance(config, EltwiseConfig):
            raise TypeError(f"config must be an EltwiseConfig, not {config!r}")
        self.config = config
        members = {"start": In(1), "done": Out(1), "ext": Out(ext_port_signature(config.ext_bytes))}
        for name in ELTWISE_COUNTERS:
            members[name] = Out(48)
        members.update({"state": Out(EltwiseState), "descs_done": Out(16)})
        super().__init__(members)

    def elaborate(self, platform):  # noqa: PLR0915 (one state machine, one pipeline)
        m = Module()
        W = self.config.ext_bytes
        logw = W.bit_length() - 1
        WB = 8 * W
        desc_words = DESC_BYTES // W
        ext = self.ext

        state = Signal(EltwiseState)
        m.d.comb += self.state.eq(state)
        desc_bits = Signal(DESC_BITS)
        d = EltwiseDesc(desc_bits[:EltwiseDesc.as_shape().size])
        pc = Signal(32)
        param_words = max(PARAM_WORDS.values())
        k = Signal(range(max(desc_words, param_words) + 1))  # words issued in FETCH / PARAMS
        chunk = Signal(16)
        n, oh, ow, i, j = (Signal(24, name=nm) for nm in ("n", "oh", "ow", "i", "j"))
        running = Signal()
        fetched = Signal()

        # ---- derived per-descriptor values
        is_glob = (d.op == EltwiseOp.GLOBAL_AVGPOOL) | (d.op == EltwiseOp.BN_STATS)
        is_stats = d.op == EltwiseOp.BN_STATS
        is_terms = d.op == EltwiseOp.BN_TERMS
        KH = Mux(is_glob, d.h, d.kh)
        KW = Mux(is_glob, d.w, d.kw)
        HO = Mux(is_glob, 1, d.ho)
        WO = Mux(is_glob, 1, d.wo)
        SH = Mux(is_glob, 1, d.sh)
        SW = Mux(is_glob, 1, d.sw)
        PH = Mux(is_glob, 0, d.ph)
        PW = Mux(is_glob, 0, d.pw)
        n_params = Signal(range(param_words + 1))
        with m.Switch(d.op):
            for op, words in PARAM_WORDS.items():
                with m.Case(op):
                    m.d.comb += n_params.eq(words)
        nchunks = (d.c + W - 1) >> logw
        chunk_base = (chunk << logw)[:32]
        rest = d.c - chunk_base
        nvalid = Signal(range(W + 1))
        m.d.comb += nvalid.eq(Mux(rest > W, W, rest))

        # ---- counters
        counters = {name: Signal(48, name=f"cnt_{name}") for name in ELTWISE_COUNTERS}
        for name in ELTWISE_COUNTERS:
            m.d.comb += getattr(self, name).eq(counters[name])
        with m.If(running):
            m.d.sync += counters["cycles"].eq(counters["cycles"] + 1)
        read_bytes = Signal(range(2 * W + 1))
        m.d.comb += read_bytes.eq(Mux(ext.ra_en, W, 0) + Mux(ext.rb_en, W, 0))

        # ---- read-return metadata (the data arrives one cycle after the read)
        ret_kind = Signal(2)
        ret_idx = Signal.like(k)
        ret_pad = Signal()
        ret_first = Signal()
        ret_last = Signal()
        ret_addr = Signal(32)
        ret_nvalid = Signal.like(nvalid)
        m.d.sync += ret_kind.eq(_RET_NONE)

        # ---- write stage
        wr_valid = Signal()
        wr_addr = Signal(32)
        wr_data = Signal(WB)
        wr_nbytes = Signal(range(W + 1))
        m.d.sync += wr_valid.eq(0)

        descs_done = Signal(16)
        m.d.comb += self.descs_done.eq(descs_done)
        done = Signal()
        m.d.comb += self.done.eq(done)

        def next_chunk():
            with m.If(chunk + 1 < nchunks):
                m.d.sync += chunk.eq(chunk + 1)
                start_chunk()
            with m.Else():
                m.d.sync += descs_done.eq(descs_done + 1)
                with m.If(d.last):
                    m.d.sync += [state.eq(EltwiseState.DONE), done.eq(1), running.eq(0)]
                with m.Else():
                    m.d.sync += [state.eq(EltwiseState.FETCH), pc.eq(pc + DESC_BYTES), k.eq(0)]

        def start_chunk():
            m.d.sync += [k.eq(0), n.eq(0), oh.eq(0), ow.eq(0), i.eq(0), j.eq(0)]
            m.d.sync += state.eq(Mux(n_params != 0, EltwiseState.PARAMS, EltwiseState.RUN))

        # ---- control
        params = Signal(param_words * WB)
        stats_k = Signal(range(max(STATS_WORDS, TERMS_WORDS) + 1))
        t_lane, t_phase, t_mean, t_a, terms_step = self._terms(m, d, params, W, WB, nvalid, stats_k, state)
        with m.Switch(state):
            with m.Case(EltwiseState.IDLE):
                with m.If(self.start):
                    m.d.sync += [state.eq(EltwiseState.FETCH), pc.eq(0), k.eq(0), running.eq(1)]
            with m.Case(EltwiseState.FETCH):
                with m.If(k < desc_words):
                    m.d.comb += [ext.ra_en.eq(1), ext.ra_addr.eq(pc + k * W)]
                    m.d.sync += [ret_kind.eq(_RET_DESC), ret_idx.eq(k), k.eq(k + 1),
                                 counters["cmd_bytes_read"].eq(counters["cmd_bytes_read"] + W)]
                with m.If((ret_kind == _RET_DESC) & (ret_idx == desc_words - 1)):
                    m.d.sync += fetched.eq(1)  # decode from the next cycle on, once the last word is in
                with m.If(fetched):
                    m.d.sync += [fetched.eq(0), chunk.eq(0)]
                    start_chunk()
            with m.Case(EltwiseState.PARAMS):
                with m.If(k < n_params):
                    # BN_TERMS: the statistics table at params, then the affine table at src_b
                    affine = is_terms & (k >= STATS_WORDS)
                    table_words = Mux(is_terms, STATS_WORDS, n_params)
                    m.d.comb += [ext.ra_en.eq(1),
                                 ext.ra_addr.eq(Mux(affine, d.src_b + (chunk * AFFINE_WORDS + k - STATS_WORDS) * W,
                                                    d.params + (chunk * table_words + k) * W))]
                    m.d.sync += [ret_kind.eq(_RET_PARAM), ret_idx.eq(k), k.eq(k + 1)]
                with m.If((ret_kind == _RET_PARAM) & (ret_idx == n_params - 1)):
                    m.d.sync += [state.eq(Mux(is_terms, EltwiseState.TERMS, EltwiseState.RUN)), t_lane.eq(0),
                                 t_phase.eq(_T_MEAN)]
            with m.Case(EltwiseState.RUN):
                ihp = oh * SH + i
                iwp = ow * SW + j
                pad = (ihp < PH) | (ihp >= d.h + PH) | (iwp < PW) | (iwp >= d.w + PW)
                pix = ((n * d.h + (ihp - PH)[:24]) * d.w + (iwp - PW)[:24])[:32]
                offset = (pix * d.c + chunk_base)[:32]
                out_pix = ((n * HO + oh) * WO + ow)[:32]
                first = (i == 0) & (j == 0) & (~is_stats | (n == 0))
                last_tap = (i + 1 == KH) & (j + 1 == KW)
                last = last_tap & (~is_stats | (n + 1 == d.n))
                m.d.comb += [
                    ext.ra_en.eq(~pad), ext.ra_addr.eq(d.src_a + offset),
                    ext.rb_en.eq(~pad & (d.op == EltwiseOp.ADD)), ext.rb_addr.eq(d.src_b + offset),
                ]
                m.d.sync += [
                    ret_kind.eq(_RET_DATA), ret_pad.eq(pad), ret_first.eq(first), ret_last.eq(last),
                    ret_addr.eq(d.dst + (out_pix * d.c)[:32] + chunk_base), ret_nvalid.eq(nvalid),
                    counters["busy"].eq(counters["busy"] + 1),
                ]
                with m.If(~pad):
                    m.d.sync += counters["elements"].eq(counters["elements"] + nvalid)
                # advance j → i → ow → oh → n
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
                                    m.d.sync += [n.eq(0), state.eq(EltwiseState.DRAIN)]
            with m.Case(EltwiseState.DRAIN):
                with m.If((ret_kind == _RET_NONE) & ~wr_valid):
                    with m.If(is_stats):
                        m.d.sync += [state.eq(EltwiseState.WRITE), stats_k.eq(0)]
                    with m.Else():
                        next_chunk()
            with m.Case(EltwiseState.WRITE):
                m.d.sync += stats_k.eq(stats_k + 1)
                with m.If(stats_k == Mux(is_terms, TERMS_WORDS, STATS_WORDS) - 1):
                    next_chunk()
            with m.Case(EltwiseState.TERMS):
                m.d.sync += counters["terms_cycles"].eq(counters["terms_cycles"] + 1)
                terms_step()
        with m.If(ext.ra_en | ext.rb_en):
            with m.If(state != EltwiseState.FETCH):
                m.d.sync += counters["ext_bytes_read"].eq(counters["ext_bytes_read"] + read_bytes)

        # ---- descriptor and parameter capture
        with m.If(ret_kind == _RET_DESC):
            with m.Switch(ret_idx):
                for w in range(desc_words):
                    with m.Case(w):
                        m.d.sync += desc_bits[w * WB:(w + 1) * WB].eq(ext.ra_data)
        with m.If(ret_kind == _RET_PARAM):
            with m.Switch(ret_idx):
                for w in range(param_words):
                    with m.Case(w):
                        m.d.sync += params[w * WB:(w + 1) * WB].eq(ext.ra_data)

        def p_int(word, lane, bits):
            base = word * WB + lane * bits
            return params[base:base + bits]

        # ---- per-lane accumulate and finish
        data_in = ret_kind == _RET_DATA
        out_bytes = []
        s1 = [Signal(signed(32), name=f"s1_{lane}") for lane in range(W)]
        s2 = [Signal(signed(48), name=f"s2_{lane}") for lane in range(W)]
        for lane in range(W):
            raw_a = ext.ra_data[8 * lane:8 * lane + 8].as_signed()
            raw_b = ext.rb_data[8 * lane:8 * lane + 8].as_signed()
            pad_value = Mux(d.op == EltwiseOp.MAXPOOL, -128, 0)
            x = Signal(signed(8), name=f"x_{lane}")
            m.d.comb += x.eq(Mux(ret_pad, pad_value, raw_a))
            acc1 = Signal(signed(32), name=f"acc1_{lane}")
            acc2 = Signal(signed(48), name=f"acc2_{lane}")
            sq = x * x
            m.d.comb += [
                acc1.eq(Mux(ret_first, x, Mux(d.op == EltwiseOp.MAXPOOL, Mux(x > s1[lane], x, s1[lane]),
                                               s1[lane] + x))),
                acc2.eq(Mux(ret_first, sq, s2[lane] + sq)),
            ]
            with m.If(data_in):
                m.d.sync += [s1[lane].eq(acc1), s2[lane].eq(acc2)]

            # AVGPOOL / GLOBAL_AVGPOOL: exact rounded division by reciprocal multiplication
            v = (acc1 + d.div_bias)[:25]
            avg = ((v * d.div_mult) >> d.div_shift[:6])[:9] - 128
            # RELU
            relu = Mux(x > d.zero_point, x, d.zero_point)
            # ADD: two rounded requantization terms, zero point, ReLU, saturation
            terms = []
            for word, sword, value, zp in ((0, 8, x, d.a_zero_point), (4, 9, raw_b, d.b_zero_point)):
                mult = p_int(word, lane, 32).as_signed()
                shift = p_int(sword, lane, 8)[:6]
                centered = Signal(signed(10), name=f"c{word}_{lane}")
                m.d.comb += centered.eq(value - zp)
                prod = Signal(signed(64), name=f"p{word}_{lane}")
                m.d.comb += prod.eq(centered * mult + (Const(1, 64) << (shift - 1)[:6]))
                term = Signal(signed(64), name=f"t{word}_{lane}")
                m.d.comb += term.eq(prod >> shift)
                terms.append(term)
            t_add = Signal(signed(66), name=f"tadd_{lane}")
            m.d.comb += t_add.eq(terms[0] + terms[1] + d.zero_point)
            t_add_relu = Mux(d.relu & (t_add < d.zero_point), d.zero_point, t_add)
            # BN_APPLY: y = ((xc · a + 2**(T-1)) >> T) + beta
            mean = p_int(0, lane, 32).as_signed()
            a = p_int(4, lane, 64).as_signed()
            beta = p_int(12, lane, 32).as_signed()
            xc = Signal(signed(34), name=f"xc_{lane}")
            m.d.comb += xc.eq((x << 8) - mean)
            tshift = d.bn_shift[:6]
            bprod = Signal(signed(100), name=f"bp_{lane}")
            m.d.comb += bprod.eq(xc * a + (Const(1, 64) << (tshift - 1)[:6]))
            bn = Signal(signed(72), name=f"bn_{lane}")
            m.d.comb += bn.eq((bprod >> tshift) + beta)

            byte = Signal(8, name=f"out_{lane}")
            with m.Switch(d.op):
                with m.Case(EltwiseOp.MAXPOOL):
                    m.d.comb += byte.eq(acc1[:8])
                with m.Case(EltwiseOp.AVGPOOL, EltwiseOp.GLOBAL_AVGPOOL):
                    m.d.comb += byte.eq(avg[:8])
                with m.Case(EltwiseOp.RELU):
                    m.d.comb += byte.eq(relu[:8])
                with m.Case(EltwiseOp.ADD):
                    m.d.comb += byte.eq(_clamp8(t_add_relu))
                with m.Case(EltwiseOp.BN_APPLY):
                    m.d.comb += byte.eq(_clamp8(bn))
            out_bytes.append(byte)

        with m.If(data_in & ret_last & ~is_stats):
            m.d.sync += [wr_valid.eq(1), wr_addr.eq(ret_addr), wr_data.eq(Cat(*out_bytes)),
                         wr_nbytes.eq(ret_nvalid)]

        # ---- writes: the pipeline's output, or a chunk's BN_STATS sums / BN_TERMS table
        # the statistics layout: Σx, Σx² mod 2**16, Σx² >> 16 as int32 lanes; lanes past C zero
        lane_ok = [lane < nvalid for lane in range(W)]
        groups = [
            Cat(*(Mux(ok, v, 0) for ok, v in zip(lane_ok, s1, strict=True))),
            Cat(*(Cat(Mux(ok, v[:STATS_SPLIT_BITS], 0), Const(0, 32 - STATS_SPLIT_BITS))
                  for ok, v in zip(lane_ok, s2, strict=True))),
            Cat(*(Mux(ok, v[STATS_SPLIT_BITS:STATS_SPLIT_BITS + 32], 0) for ok, v in zip(lane_ok, s2, strict=True))),
        ]
        assert all(len(g) == 4 * WB for g in groups)
        terms_table = Cat(*t_mean, *t_a, params[16 * WB:20 * WB])  # mean int32, a int64, beta int32
        stats_addr = Signal(32)
        stats_data = Signal(WB)
        stats_bytes = Signal(range(W + 1))
        with m.Switch(stats_k):
            for w in range(max(STATS_WORDS, TERMS_WORDS)):
                with m.Case(w):
                    with m.If(is_terms):
                        m.d.comb += [stats_addr.eq(d.dst + (chunk * TERMS_WORDS + w) * W),
                                     stats_data.eq(terms_table[w * WB:(w + 1) * WB]), stats_bytes.eq(W)]
                    if w < STATS_WORDS:
                        with m.Else():
                            group, part = divmod(w, 4)
                            m.d.comb += [stats_addr.eq(d.dst + (chunk * STATS_WORDS + w) * W),
                                         stats_data.eq(groups[group][part * WB:(part + 1) * WB]), stats_bytes.eq(W)]
        nbytes = Signal(range(W + 1))
        with m.If(state == EltwiseState.WRITE):
            m.d.comb += [ext.wr_en.eq(stats_bytes != 0), ext.wr_addr.eq(stats_addr), ext.wr_data.eq(stats_data),
                         nbytes.eq(stats_bytes)]
        with m.Else():
            m.d.comb += [ext.wr_en.eq(wr_valid), ext.wr_addr.eq(wr_addr), ext.wr_data.eq(wr_data),
                         nbytes.eq(Mux(wr_valid, wr_nbytes, 0))]
        m.d.comb += ext.wr_mask.eq(((Const(1, W + 1) << nbytes) - 1)[:W])
        m.d.sync += counters["ext_bytes_written"].eq(counters["ext_bytes_written"] + Mux(ext.wr_en, nbytes, 0))
        return m


    @staticmethod
    def _terms(m, d, params, W, WB, nvalid, stats_k, state):
        """BN_TERMS: steps 2-7 of :func:`tilelab.reference.golden.batch_norm_train`, channel by channel.

        Returns the lane index, the phase, the per-lane results (mean, a) and a function that
        emits one cycle of the sequence (called in the TERMS state).
        """
        m.submodules.div = div = SeqDivider(64)
        m.submodules.sqrt = sqrt = SeqIsqrt(64)
        t_lane = Signal(range(W))
        t_phase = Signal(3)
        started = Signal()
        t_mean = [Signal(32, name=f"t_mean_{lane}") for lane in range(W)]
        t_a = [Signal(64, name=f"t_a_{lane}") for lane in range(W)]

        def lane_word(word):
            return Array(params[word * WB + 32 * lane:word * WB + 32 * lane + 32] for lane in range(W))[t_lane]

        s1 = Signal(signed(32))
        s2 = Signal(64)
        gamma = Signal(signed(32))
        m.d.comb += [s1.eq(lane_word(0)), s2.eq(lane_word(4) + (lane_word(8) << 16)), gamma.eq(lane_word(12))]
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

        def terms_step():
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
                                    m.d.sync += t_mean[lane].eq(mean_q)
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
                                    m.d.sync += t_a[lane].eq(gamma * sqrt.root)
                        with m.If(t_lane + 1 < nvalid):
                            m.d.sync += [t_lane.eq(t_lane + 1), t_phase.eq(_T_MEAN)]
                        with m.Else():
                            m.d.sync += [state.eq(EltwiseState.WRITE), stats_k.eq(0)]

        return t_lane, t_phase, t_mean, t_a, terms_step


class EltwiseTop(ExtMemoryTop):
    """An element-wise unit joined to its external memory (see
    :class:`~tilelab.pe_models.tile.ExtMemoryTop`).

    Parameters
    ----------
    config : EltwiseConfig
        The unit configuration (its ``mem_impl`` selects the external memory model).
    init : sequence of int, optional
        Initial external-memory words (Amaranth model only).
    """

    def __init__(self, config: EltwiseConfig = DEFAULT_ELTWISE, *, init=None):
        super().__init__(config, EltwiseUnit(config), init=init, name="unit")
