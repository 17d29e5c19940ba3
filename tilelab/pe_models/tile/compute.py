"""The compute engine: steps through output blocks, reads the lanes (unpack) and feeds the MAC array."""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from tilelab.hdl.cbuf import cb_consumer_signature
from tilelab.hdl.formats.tile import (
    PACK_SLOTS,
    PARAM_RECORD_BYTES,
    ComputeDesc,
    ComputeEvents,
    EngineState,
    pack_job_layout,
)
from tilelab.hdl.mac import mac_array_layouts
from tilelab.hdl.streams import StreamFIFO

from ..config import TileConfig
from .events import EventPort
from .l1 import cb_pages, lane_read_signature

__all__ = ["Compute", "array_layouts", "array_options"]

#: Entries of the operand and pack-job queues (reads in flight hold credits in them).
_QUEUE = 4
#: Bits of a weight tile's slot in a packed group (PACK_SLOTS tiles share one output entry).
_SLOT_BITS = exact_log2(PACK_SLOTS)


def array_options(config: TileConfig) -> dict:
    """The keyword arguments of the tile's :class:`~tilelab.hdl.mac.MACArray` beside its shape:
    the depthwise mode, one output bank's rows per drain transfer, the split-K row groups, and a
    drain count (a tile's last step says how many of its rows are real; only those drain)."""
    return dict(depthwise=config.depthwise, drain_rows=config.out_banks, b_groups=config.row_groups,
                drain_count=True)


def array_layouts(config: TileConfig):
    """``(input_layout, output_layout)`` of the tile's MAC array
    (:func:`~tilelab.hdl.mac.mac_array_layouts` with :func:`array_options`)."""
    return mac_array_layouts(config.rows, config.cols, **array_options(config))


class Compute(wiring.Component):
    """Runs :class:`~tilelab.hdl.formats.tile.ComputeDesc` descriptors on the MAC array.

    For each activation tile × weight tile it reads one byte from every activation lane and one
    byte from every weight lane per step (unpack) and streams the step to the array (``o``); with a
    tile's first step it reads the tile's parameter records and sends pack a job (``tile``). In
    depthwise mode each activation lane reads C bytes at its own address: a per-lane address
    generator follows the lane's output pixel through the window, tap by tap, and unpack feeds
    zeros for taps in the padding. For a grouped conv of g channels per group (``dw_group``) each
    tap takes g steps, and in step j unpack gives column c byte ``(c - c % g) + j`` of the lane's
    slot (the slot read from byte j on, every g-th byte kept and copied over its group in log2(g)
    doubling stages), so every column reads its own group's input channels. Lane reads take one
    cycle; queues of :data:`_QUEUE` entries in front of ``o`` and ``tile`` (with credits for the
    reads in flight) absorb the array's and pack's backpressure.

    Parameters
    ----------
    config : TileConfig
        The tile's configuration.

    Members
    -------
    descs : In(stream.Signature(ComputeDesc))
        Descriptors.
    act_cb, wgt_cb, par_cb : Out(cb_consumer_signature(pages))
        Consumer sides of the three circular buffers.
    act, wgt, par : Out(lane_read_signature(config, name)).array(lanes)
        Read ports of the lane banks.
    o : Out(stream.Signature(array_layouts(config)[0]))
        Reduction steps for the MAC array.
    tile : Out(stream.Signature(pack_job_layout(config.cols)))
        One pack job per output tile, in tile order.
    events : Out(ComputeEvents)
        Count events.
    state : Out(EngineState)
        What the engine is doing.
    done_count : Out(32)
        Descriptors finished.
    idle : Out(1)
        No descriptor in progress and both queues empty (the array may still be busy).
    """

    def __init__(self, config: TileConfig):
        if not isinstance(config, TileConfig):
            raise TypeError(f"config must be a TileConfig, not {config!r}")
        self.config = config
        pages = cb_pages(config)
        lanes = {"act": config.rows, "wgt": config.cols, "par": config.cols}
        members = {"descs": In(stream.Signature(ComputeDesc))}
        for name in lanes:
            members[f"{name}_cb"] = Out(cb_consumer_signature(pages[name]))
        for name, n in lanes.items():
            members[name] = Out(lane_read_signature(config, name)).array(n)
        members.update({
            "o": Out(stream.Signature(array_layouts(config)[0])),
            "tile": Out(stream.Signature(pack_job_layout(config.cols))),
            "events": Out(ComputeEvents), "state": Out(EngineState), "done_count": Out(32), "idle": Out(1),
        })
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        R, C, W = cfg.rows, cfg.cols, cfg.ext_bytes
        logw = W.bit_length() - 1
        in_layout = array_layouts(cfg)[0]
        q, cb_act, cb_wgt, cb_par = self.descs, self.act_cb, self.wgt_cb, self.par_cb
        events = EventPort(m, self.events)
        for cb in (cb_wgt, cb_par):
            m.d.comb += [cb.wait_n.eq(1), cb.pop_n.eq(1)]

        d = Signal(ComputeDesc)
        state = Signal(EngineState)
        m.d.comb += self.state.eq(state)
        ta = Signal(8)
        tw = Signal(8)
        k = Signal(16)
        a_base = Signal(32)
        w_base = Signal(32)
        p_base = Signal(32)

        # Operand queue in front of the array, with credits for reads in flight. The depthwise
        # operand (R×C bytes) has a queue of its own that only depthwise steps write: a dense step
        # moves its R + C operand bytes, not the whole element-wise operand as well.
        step_layout = data.StructLayout({name: f.shape for name, f in in_layout if name != "a2"})
        m.submodules.opq = opq = StreamFIFO(shape=step_layout, depth=_QUEUE)
        if cfg.depthwise:
            m.submodules.a2q = a2q = StreamFIFO(shape=in_layout["a2"].shape, depth=_QUEUE)
        m.submodules.tileq = tileq = StreamFIFO(shape=pack_job_layout(C), depth=_QUEUE)
        wiring.connect(m, tileq.o, wiring.flipped(self.tile))
        inflight = Signal()
        tile_inflight = Signal()
        can_issue = (opq.level + inflight < _QUEUE)
        is_tile_start = k == 0
        can_tile = (tileq.level + tile_inflight < _QUEUE)

        # Depthwise address generator (see ComputeDesc): per lane, the page byte of its output
        # pixel's first tap and that tap's input row and column; one tap offset shared by all lanes.
        # Taps outside the input (zero padding) are not in the window: unpack feeds zeros for them.
        lane_layout = data.StructLayout({"ow": 16, "pix": 32, "ih": signed(20), "iw": signed(20)})
        dw_lane = [Signal(lane_layout, name=f"dw_lane{r}") for r in range(R)]
        dw_kj = Signal(8)
        dw_j = Signal(8)            # grouped mode: the input channel of the group this step reads
        g_last = Signal(8)          # 2**dw_group - 1: the last of them
        m.d.comb += g_last.eq((1 << d.dw_group) - 1)
        dw_tap = Signal(32)
        dw_tih = Signal(16)
        dw_tiw = Signal(16)

        def dw_advance(lane, q, adv, ih_adv, iw_adv, name):
            """A lane after ``q`` more output columns (at most one wrap to the next output row)."""
            nw = Signal(17, name=f"{name}_nw")
            new = Signal(lane_layout, name=name)
            wrap = nw >= d.dw_wo
            m.d.comb += [
                nw.eq(lane.ow + q),
                new.ow.eq(Mux(wrap, nw - d.dw_wo, nw)),
                new.pix.eq(lane.pix + adv + Mux(wrap, d.dw_wrap.as_unsigned(), 0)),
                new.ih.eq(lane.ih + ih_adv + Mux(wrap, d.dw_sh, 0)),
                new.iw.eq(lane.iw + iw_adv - Mux(wrap, d.dw_iw_wrap, 0)),
            ]
            return new

        dw_start, dw_next = [], []
        if cfg.depthwise:
            # Lane r starts at output pixel r of the block (a chain of one-pixel advances) and moves
            # on by R pixels after each activation tile.
            lane = Signal(lane_layout, name="dw_start0")
            m.d.comb += [lane.ow.eq(0), lane.pix.eq(d.dw_origin), lane.ih.eq(d.dw_ih0), lane.iw.eq(d.dw_iw0)]
            for r in range(R):
                dw_start.append(lane)
                lane = dw_advance(lane, 1, d.dw_sw << logw, 0, d.dw_sw, f"dw_start{r + 1}")
                dw_next.append(dw_advance(dw_lane[r], d.dw_qw, d.dw_adv, d.dw_ih_adv, d.dw_iw_adv, f"dw_next{r}"))

        p_valid = Signal()
        p_first = Signal()
        p_last = Signal()
        p_aoff = Signal(range(W))
        p_loff = [Signal(range(W), name=f"p_loff{r}") for r in range(R)]
        p_lzero = [Signal(name=f"p_lzero{r}") for r in range(R)]
        p_pad = Signal(8)           # the padding byte of the block's depthwise taps
        # grouped mode's column select: the bytes of the group bases (every g-th byte), and which
        # of the log2(C) doubling stages spread them over their groups (stage b: b < log2 g)
        logc = exact_log2(C) if cfg.depthwise else 0
        p_gbase = Signal(8 * C)
        p_fill = Signal(max(logc, 1))
        p_woff = Signal(range(W))
        p_split = Signal(2)         # the step's split-K mode (log2 G)
        split_k = cfg.row_groups
        logg = exact_log2(split_k)
        tile_px = Signal(range(R + 1))      # pixels of a tile: R / G
        m.d.comb += tile_px.eq(R)
        for sp in range(1, logg + 1):
            with m.If(d.split == sp):
                m.d.comb += tile_px.eq(R >> sp)

        def group_byte(i):
            """Byte ``i % G`` of a G-byte group in the step's split-K mode (0 without it)."""
            sub = Signal(range(max(split_k, 2)), name=f"gbyte{i}")
            for sp in range(1, logg + 1):
                with m.If(p_split == sp):
                    m.d.comb += sub.eq(i & ((1 << sp) - 1))
            return sub
        p_tile = Signal()
        p_poff = Signal(range(W))
        p_slot = Signal(range(PACK_SLOTS))
        p_push = Signal()
        p_count = Signal(range(R + 1))
        m.d.sync += [p_valid.eq(0), p_tile.eq(0)]
        m.d.comb += [inflight.eq(p_valid), tile_inflight.eq(p_tile)]

        last_step = k + 1 >= d.k
        last_tw = tw + 1 >= d.n
        last_ta = ta + 1 >= d.m
        # The activation CB counts words: wait for the block's words, pop what the next block drops.
        # Depthwise blocks wait tile by tile instead, for the window rows the tile's last lane reads.
        m.d.comb += [cb_act.wait_n.eq(Mux(d.dw, 0, d.act_wait)), cb_act.pop_n.eq(d.act_pop)]
        act_ready = Signal()
        m.d.comb += act_ready.eq(1)
        if cfg.depthwise:
            span = Signal(signed(21))
            need = Signal(range(cfg.act_lane_bytes // W + 1))
            m.d.comb += span.eq(dw_lane[R - 1].ih + d.dw_span)
            rows_w = Signal(40)
            m.d.comb += rows_w.eq(span.as_unsigned()[:20] * d.dw_w)
            m.d.comb += need.eq(Mux(span <= 0, 0, Mux(rows_w > d.act_wait, d.act_wait, rows_w)))
            m.d.comb += act_ready.eq(~d.dw | (cb_act.available >= need))

        with m.Switch(state):
            with m.Case(EngineState.IDLE, EngineState.DONE):
                with m.If(q.valid):
                    m.d.comb += q.ready.eq(1)
                    m.d.sync += [d.eq(q.payload), state.eq(EngineState.WAIT_CB), ta.eq(0), tw.eq(0), k.eq(0)]
            with m.Case(EngineState.WAIT_CB):
                events("compute_wait_cb")
                for r, lane in enumerate(dw_start):
                    m.d.sync += dw_lane[r].eq(lane)
                m.d.sync += [dw_kj.eq(0), dw_j.eq(0), dw_tap.eq(0), dw_tih.eq(0), dw_tiw.eq(0)]
                with m.If(cb_act.can_wait & cb_wgt.can_wait & cb_par.can_wait):
                    m.d.sync += [
                        state.eq(EngineState.RUN),
                        a_base.eq(cb_act.rd_page * W),
                        w_base.eq(cb_wgt.rd_page * cfg.wgt_page_bytes),
                        p_base.eq(cb_par.rd_page * cfg.param_page_bytes),
                    ]
            with m.Case(EngineState.RUN):
                ok = can_issue & (~is_tile_start | can_tile) & act_ready
                with m.If(ok):
                    events("compute_busy")
                    a_addr = Signal(32)
                    w_addr = Signal(32)
                    # (split-K: step k reads reduction bytes k·G .. k·G + G - 1, see ComputeDesc)
                    kb = (k << d.split) if split_k > 1 else k
                    m.d.comb += [
                        a_addr.eq(a_base + ta * d.a_row_bytes + kb),
                        w_addr.eq(w_base + tw * d.w_row_bytes + kb),
                    ]
                    for r, bank in enumerate(self.act):
                        lane_addr = Signal(32, name=f"a_addr{r}")
                        m.d.comb += lane_addr.eq(a_addr)
                        if cfg.depthwise:
                            lane = dw_lane[r]
                            with m.If(d.dw):
                                # The window is a ring over the whole lane bank: wrap at its end.
                                at = Signal(32, name=f"a_dw{r}")
                                m.d.comb += at.eq(a_base + lane.pix + dw_tap + tw * C)
                                m.d.comb += lane_addr.eq(Mux(at >= cfg.act_lane_bytes, at - cfg.act_lane_bytes, at))
                            ih = lane.ih + dw_tih
                            iw = lane.iw + dw_tiw
                            inside = (ih >= 0) & (ih < d.dw_h) & (iw >= 0) & (iw < d.dw_w)
                            # (grouped: from the step's channel j of the group on, j < g ≤ C)
                            m.d.sync += [p_loff[r].eq(lane_addr[:logw] + dw_j), p_lzero[r].eq(d.dw & ~inside)]
                        m.d.comb += [bank.en.eq(1), bank.addr.eq(lane_addr >> logw)]
                    if cfg.depthwise:
                        m.d.sync += p_pad.eq(d.pad_value)
                        base = sum(0xFF << (8 * c) for c in range(C))
                        for lg in range(1, logc + 1):
                            base = Mux(d.dw_group == lg, sum(0xFF << (8 * c) for c in range(0, C, 1 << lg)), base)
                        m.d.sync += p_gbase.eq(base)
                        for b in range(logc):
                            m.d.sync += p_fill[b].eq(d.dw_group > b)
                        # Next input channel of the group; after the last one the next tap; after
                        # the last tap of a tile every lane moves on by R pixels.
                        m.d.sync += dw_j.eq(dw_j + 1)
                        with m.If(dw_j == g_last):
                            tap_col = d.dw_dw << logw      # one window pixel is one word
                            m.d.sync += [dw_j.eq(0), dw_kj.eq(dw_kj + 1), dw_tap.eq(dw_tap + tap_col),
                                         dw_tiw.eq(dw_tiw + d.dw_dw)]
                            with m.If(dw_kj + 1 >= d.dw_kw):
                                m.d.sync += [dw_kj.eq(0), dw_tap.eq(dw_tap + tap_col + d.dw_tap_row.as_unsigned()),
                                             dw_tiw.eq(0), dw_tih.eq(dw_tih + d.dw_dh)]
                        with m.If(last_step):
                            m.d.sync += [dw_j.eq(0), dw_kj.eq(0), dw_tap.eq(0), dw_tih.eq(0), dw_tiw.eq(0)]
                            with m.If(last_tw):
                                for r in range(R):
                                    m.d.sync += dw_lane[r].eq(dw_next[r])
                    for bank in self.wgt:
                        m.d.comb += [bank.en.eq(1), bank.addr.eq(w_addr >> logw)]
                    events("l1_reads", R + C)
                    m.d.sync += [p_valid.eq(1), p_first.eq(k == 0), p_last.eq(last_step),
                                 p_aoff.eq(a_addr[:logw]), p_woff.eq(w_addr[:logw]), p_split.eq(d.split)]
                    with m.If(is_tile_start):
                        p_addr = p_base + tw * PARAM_RECORD_BYTES
                        for bank in self.par:
                            m.d.comb += [bank.en.eq(1), bank.addr.eq(p_addr >> logw)]
                        events("l1_reads", C)
                        # (packed: groups of PACK_SLOTS tiles share entries, pushed by their last)
                        slot = tw[:_SLOT_BITS]
                        m.d.sync += [p_tile.eq(1), p_poff.eq(p_addr[:logw]), p_slot.eq(Mux(d.packed, slot, 0)),
                                     p_push.eq(~d.packed | last_tw | (slot == PACK_SLOTS - 1))]
                    # Useful MACs: real rows × real columns of this tile (split-K: rows / G pixels
                    # a tile, G rows each).
                    vc = d.valid_cols - tw * C
                    if split_k > 1:
                        vr = Signal(17)
                        m.d.comb += vr.eq(d.valid_rows - ta * tile_px)
                        rows_ok = (Mux(vr > tile_px, tile_px, vr) << d.split)[:8]
                    else:
                        vr = d.valid_rows - ta * R
                        rows_ok = Mux(vr > R, R, vr)[:8]
                    cols_ok = Mux(vc > C, C, vc)[:8]
                    m.d.sync += p_count.eq(rows_ok)     # the array drains only the tile's real rows
                    events("macs", rows_ok * cols_ok)
                    events("mac_steps")
                    m.d.sync += k.eq(k + 1)
                    with m.If(last_step):
                        m.d.sync += [k.eq(0), tw.eq(tw + 1)]
                        with m.If(last_tw):
                            m.d.sync += [tw.eq(0), ta.eq(ta + 1)]
                            with m.If(last_ta):
                                m.d.sync += state.eq(EngineState.DRAIN)
                with m.Elif(~act_ready):
                    events("compute_wait_cb")
                with m.Else():
                    events("compute_wait_out")
            with m.Case(EngineState.DRAIN):
                # The last lane reads completed last cycle: the pages may be released.
                # (a depthwise block may drop rows the streaming reader has not delivered yet)
                with m.If(cb_act.available >= d.act_pop):
                    m.d.comb += [cb_act.pop.eq(1), cb_wgt.pop.eq(d.pop_wgt), cb_par.pop.eq(d.pop_param)]
                    m.d.sync += [state.eq(EngineState.DONE), self.done_count.eq(self.done_count + 1)]

        # Unpack: lane words → operand bytes → operand queues.
        step = opq.i.payload
        for r, bank in enumerate(self.act):
            # (split-K: row r reads byte r % G of the step's G bytes; the offset is G-aligned)
            m.d.comb += step.a[r].eq(bank.data.word_select(p_aoff | group_byte(r) if split_k > 1 else p_aoff, 8))
            if cfg.depthwise:
                # Depthwise pixels are C-byte aligned (C divides W): the lane's C-byte slot. Grouped
                # mode: the slot from byte j of the pixel's slot on, so that every group base holds
                # channel j of its group; doubling stages then copy each base over its g columns
                # (column c takes byte (c - c % g) + j of the pixel's slot).
                slot = bank.data.bit_select(p_loff[r] << 3, 8 * C) if W > C or logc else bank.data
                if logc:
                    slot = slot & p_gbase
                for b in range(logc):
                    spread = Signal(8 * C, name=f"a2_fill{r}_{b}")
                    m.d.comb += spread.eq(Mux(p_fill[b], slot | (slot << (8 << b)), slot))
                    slot = spread
                m.d.comb += a2q.i.payload[r].eq(Mux(p_lzero[r], p_pad.replicate(C), slot))
        subs = [group_byte(g) for g in range(split_k)] if split_k > 1 else []
        for c, bank in enumerate(self.wgt):
            if split_k == 1:
                m.d.comb += step.b[c].eq(bank.data.word_select(p_woff, 8))
                continue
            # Split-K: the aligned G-byte group of the step, byte g for row group g (a plain step:
            # the one byte for every group).
            group = Signal(8 * split_k, name=f"wgroup{c}")
            m.d.comb += group.eq(bank.data.word_select(p_woff >> logg, 8 * split_k))
            for g in range(split_k):
                m.d.comb += step.b[g][c].eq(group.word_select(p_woff[:logg] | subs[g], 8))
        m.d.comb += [step.first.eq(p_first), step.last.eq(p_last), step.count.eq(p_count), opq.i.valid.eq(p_valid)]
        if cfg.depthwise:
            m.d.comb += step.dw.eq(d.dw)
        head = opq.o.payload
        for name, _ in step_layout:
            m.d.comb += self.o.payload[name].eq(head[name])
        m.d.comb += [self.o.valid.eq(opq.o.valid), opq.o.ready.eq(self.o.ready & self.o.valid)]
        if cfg.depthwise:
            # both queues take a depthwise step in the same cycle, so their heads arrive together
            m.d.comb += [a2q.i.valid.eq(p_valid & d.dw), self.o.payload.a2.eq(a2q.o.payload),
                         self.o.valid.eq(opq.o.valid & (~head.dw | a2q.o.valid)),
                         a2q.o.ready.eq(self.o.ready & self.o.valid & head.dw)]
        job = tileq.i.payload
        for c, bank in enumerate(self.par):
            rec = bank.data.word_select(p_poff >> exact_log2(PARAM_RECORD_BYTES), 8 * PARAM_RECORD_BYTES) \
                if W > PARAM_RECORD_BYTES else bank.data
            m.d.comb += job.params[c].eq(rec)
        m.d.comb += [job.zero_point.eq(d.zero_point), job.relu.eq(d.relu), job.out_int32.eq(d.out_int32),
                     job.float_requant.eq(d.float_requant), job.split.eq(d.split),
                     job.slot.eq(p_slot), job.push.eq(p_push), tileq.i.valid.eq(p_tile)]
        m.d.comb += self.idle.eq(((state == EngineState.IDLE) | (state == EngineState.DONE))
                                 & ~opq.o.valid & ~tileq.o.valid)
        events.drive()
        return m
