"""The element-wise unit's control: descriptor and parameter fetch, the tap sequence, the writes."""

from amaranth.hdl import Cat, Const, DomainRenamer, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from tilelab.hdl.clockgate import gated_domain
from tilelab.hdl.formats.eltwise import (
    AFFINE_WORDS,
    DESC_BITS,
    DESC_BYTES,
    ELTWISE_COUNTERS,
    PARAM_WORDS,
    QLINEAR_OPS,
    SHARED_PARAMS,
    STATS_SPLIT_BITS,
    STATS_WORDS,
    TERMS_WORDS,
    EltwiseDesc,
    EltwiseOp,
    EltwiseState,
    bn_terms_params_layout,
    table_params_layout,
)

from ..config import DEFAULT_ELTWISE, EltwiseConfig
from ..tile import ExtMemoryTop, ext_port_signature
from .lanes import EltwiseLanes
from .qlinear import QLinearLanes
from .taps import EltwiseTaps
from .terms import BnTerms

__all__ = ["EltwiseUnit", "EltwiseTop"]

# Kinds of read whose data comes back in the next cycle.
_RET_NONE, _RET_DESC, _RET_PARAM, _RET_DATA = range(4)


class EltwiseUnit(wiring.Component):
    """The element-wise / pooling unit (see :mod:`tilelab.pe_models.eltwise`).

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

    def elaborate(self, platform):
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
        running = Signal()
        fetched = Signal()

        # ---- derived per-descriptor values
        is_stats = d.op == EltwiseOp.BN_STATS
        is_terms = d.op == EltwiseOp.BN_TERMS
        is_q = Signal()
        m.d.comb += is_q.eq(Cat(*(d.op == op for op in QLINEAR_OPS)).any())
        is_shared = Cat(*(d.op == op for op in SHARED_PARAMS)).any()
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
        # the onnxruntime lanes' results are one cycle later: their write waits a stage here
        q_pending = Signal()
        q_addr = Signal(32)
        q_nbytes = Signal(range(W + 1))
        m.d.sync += q_pending.eq(0)

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
            m.d.sync += k.eq(0)
            m.d.comb += taps.restart.eq(1)
            m.d.sync += state.eq(Mux(n_params != 0, EltwiseState.PARAMS, EltwiseState.RUN))

        # ---- the math (lanes) and BN_TERMS' sequential unit
        params = Signal(param_words * WB)
        stats_k = Signal(range(max(STATS_WORDS, TERMS_WORDS) + 1))
        m.submodules.lanes = lanes = EltwiseLanes(W)
        m.submodules.terms = terms = BnTerms(W)
        m.submodules.taps = taps = EltwiseTaps()
        m.d.comb += [taps.desc.eq(d), taps.chunk_base.eq(chunk_base)]
        # the output's bytes per pixel: c, or TABLE's own (a channel slice of a wider tensor)
        table_out_c = table_params_layout(W)(params[:table_params_layout(W).size]).out_c
        out_c = Signal(32)
        m.d.comb += out_c.eq(Mux((d.op == EltwiseOp.TABLE) & (table_out_c != 0), table_out_c, d.c))
        m.d.comb += [lanes.desc.eq(d), lanes.params.eq(params), terms.desc.eq(d), terms.params.eq(params),
                     terms.lanes.eq(nvalid)]

        # ---- control
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
                    table_words = Mux(is_terms, STATS_WORDS, Mux(is_shared, 0, n_params))
                    m.d.comb += [ext.ra_en.eq(1),
                                 ext.ra_addr.eq(Mux(affine, d.src_b + (chunk * AFFINE_WORDS + k - STATS_WORDS) * W,
                                                    d.params + (chunk * table_words + k) * W))]
                    m.d.sync += [ret_kind.eq(_RET_PARAM), ret_idx.eq(k), k.eq(k + 1)]
                with m.If((ret_kind == _RET_PARAM) & (ret_idx == n_params - 1)):
                    m.d.sync += state.eq(Mux(is_terms, EltwiseState.TERMS, EltwiseState.RUN))
                    m.d.comb += terms.begin.eq(1)
            with m.Case(EltwiseState.RUN):
                pad = taps.pad
                m.d.comb += [
                    taps.step.eq(1),
                    ext.ra_en.eq(~pad), ext.ra_addr.eq(d.src_a + taps.offset),
                    ext.rb_en.eq(~pad & ((d.op == EltwiseOp.ADD) | (d.op == EltwiseOp.QMUL)
                                         | ((d.op == EltwiseOp.QADD) & ~d.scalar_b))),
                    ext.rb_addr.eq(d.src_b + taps.offset),
                ]
                m.d.sync += [
                    ret_kind.eq(_RET_DATA), ret_pad.eq(pad), ret_first.eq(taps.first), ret_last.eq(taps.last),
                    ret_addr.eq(d.dst + (taps.out_pix * out_c)[:32] + chunk_base), ret_nvalid.eq(nvalid),
                    counters["busy"].eq(counters["busy"] + 1),
                ]
                with m.If(~pad):
                    m.d.sync += counters["elements"].eq(counters["elements"] + nvalid)
                with m.If(taps.end):
                    m.d.sync += state.eq(EltwiseState.DRAIN)
            with m.Case(EltwiseState.DRAIN):
                with m.If((ret_kind == _RET_NONE) & ~wr_valid & ~q_pending):
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
                m.d.comb += terms.run.eq(1)
                with m.If(terms.done):
                    m.d.sync += [state.eq(EltwiseState.WRITE), stats_k.eq(0)]
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

        # ---- per-lane accumulate and finish
        data_in = ret_kind == _RET_DATA
        m.d.comb += [lanes.a.eq(ext.ra_data), lanes.b.eq(ext.rb_data), lanes.valid.eq(data_in),
                     lanes.pad.eq(ret_pad), lanes.first.eq(ret_first)]
        s1, s2 = lanes.s1, lanes.s2

        with m.If(data_in & ret_last & ~is_stats & ~is_q):
            m.d.sync += [wr_valid.eq(1), wr_addr.eq(ret_addr), wr_data.eq(lanes.out),
                         wr_nbytes.eq(ret_nvalid)]

        # ---- the onnxruntime lanes, on a clock that ticks only when they load a word
        gated_domain(m, "eltq", is_q & ((ret_kind == _RET_DATA) | (ret_kind == _RET_PARAM)))
        m.submodules.qlanes = qlanes = DomainRenamer("eltq")(QLinearLanes(W))
        m.d.comb += [qlanes.op.eq(d.op), qlanes.uint8.eq(d.uint8), qlanes.scalar_b.eq(d.scalar_b),
                     qlanes.load.eq(ret_kind == _RET_PARAM), qlanes.load_index.eq(ret_idx),
                     qlanes.load_data.eq(ext.ra_data), qlanes.valid.eq(data_in), qlanes.a.eq(ext.ra_data),
                     qlanes.b.eq(ext.rb_data), qlanes.pad.eq(ret_pad), qlanes.first.eq(ret_first)]
        with m.If(data_in & ret_last & is_q):
            m.d.sync += [q_pending.eq(1), q_addr.eq(ret_addr), q_nbytes.eq(ret_nvalid)]
        with m.If(q_pending):
            m.d.sync += [wr_valid.eq(1), wr_addr.eq(q_addr), wr_data.eq(qlanes.out), wr_nbytes.eq(q_nbytes)]

        # ---- writes: the pipeline's output, or a chunk's BN_STATS sums / BN_TERMS table
        # the statistics layout: Σx, Σx² mod 2**16, Σx² >> 16 as int32 lanes; lanes past C zero
        lane_ok = [lane < nvalid for lane in range(W)]
        groups = [
            Cat(*(Mux(ok, s1[lane], 0) for lane, ok in enumerate(lane_ok))),
            Cat(*(Cat(Mux(ok, s2[lane][:STATS_SPLIT_BITS], 0), Const(0, 32 - STATS_SPLIT_BITS))
                  for lane, ok in enumerate(lane_ok))),
            Cat(*(Mux(ok, s2[lane][STATS_SPLIT_BITS:STATS_SPLIT_BITS + 32], 0) for lane, ok in enumerate(lane_ok))),
        ]
        assert all(len(g) == 4 * WB for g in groups)
        tables = bn_terms_params_layout(W)(params[:bn_terms_params_layout(W).size])
        terms_table = Cat(terms.mean, terms.a, tables.beta)  # a BN_APPLY table: mean int32, a int64, beta int32
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
