"""The reader engine: im2col gathers from external memory into the activation, weight and parameter lanes."""

from amaranth.hdl import Const, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from tilelab.hdl.cbuf import cb_producer_signature
from tilelab.hdl.formats.tile import READ_GANG, EngineState, ReadDesc, ReaderEvents, Target

from ..config import TileConfig
from .events import EventPort
from .ext import ext_read_signature
from .l1 import cb_pages, lane_write_signature

__all__ = ["Reader"]

#: The circular buffers a ReadDesc fills, in the order of :class:`~tilelab.hdl.formats.tile.Target`.
_TARGETS = ("act", "wgt", "par")


class Reader(wiring.Component):
    """Runs :class:`~tilelab.hdl.formats.tile.ReadDesc` descriptors (see the descriptor and the
    package docstring): each fills one page of the activation, weight or parameter circular buffer,
    row ``j`` of the block going to lane ``j % lanes``, one piece of up to W bytes a cycle on
    external read port a. A ganged descriptor moving several short rows a cycle uses port b as well
    when the command fetcher leaves it free (``rb_free``), twice as many rows a cycle.

    The lane write happens one cycle after the read (external read data arrives then).

    Parameters
    ----------
    config : TileConfig
        The tile's configuration.

    Members
    -------
    descs : In(stream.Signature(ReadDesc))
        Descriptors.
    ra, rb : Out(ext_read_signature(config.ext_bytes))
        External read ports a and b.
    rb_free : In(1)
        Port b is free in this cycle (the fetcher does not use it).
    act_cb, wgt_cb, par_cb : Out(cb_producer_signature(pages))
        Producer sides of the three circular buffers.
    act, wgt, par : Out(lane_write_signature(config, name)).array(lanes)
        Write ports of the lane banks.
    events : Out(ReaderEvents)
        Count events.
    state : Out(EngineState)
        What the engine is doing.
    done_count : Out(32)
        Descriptors finished.
    idle : Out(1)
        No descriptor in progress.
    """

    #: Most rows a ganged flat read feeds at once (weights and parameters, see ReadDesc.gang).
    GANG = READ_GANG

    def __init__(self, config: TileConfig):
        if not isinstance(config, TileConfig):
            raise TypeError(f"config must be a TileConfig, not {config!r}")
        self.config = config
        W = config.ext_bytes
        pages = cb_pages(config)
        lanes = {"act": config.rows, "wgt": config.cols, "par": config.cols}
        members = {"descs": In(stream.Signature(ReadDesc)), "ra": Out(ext_read_signature(W)),
                   "rb": Out(ext_read_signature(W)), "rb_free": In(1)}
        for name in _TARGETS:
            members[f"{name}_cb"] = Out(cb_producer_signature(pages[name]))
        for name in _TARGETS:
            members[name] = Out(lane_write_signature(config, name)).array(lanes[name])
        members.update({"events": Out(ReaderEvents), "state": Out(EngineState), "done_count": Out(32),
                        "idle": Out(1)})
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        W = cfg.ext_bytes
        logw = W.bit_length() - 1
        ra, rb, q = self.ra, self.rb, self.descs
        events = EventPort(m, self.events)

        d = Signal(ReadDesc)
        state = Signal(EngineState)
        m.d.comb += self.state.eq(state)

        lane = Signal(8)
        lanes_n = Signal(8)
        q_row = Signal(32)      # lane byte address of the current row
        tap_off = Signal(16)    # byte offset within the row
        cb_off = Signal(24)     # byte offset within the current run of taps (one tap's chunk without runs)
        ki = Signal(8)
        kj = Signal(8)
        n = Signal(16)
        oh = Signal(16)
        ow = Signal(16)
        j = Signal(16)
        page_base = Signal(32)
        row_bytes = Signal(16)

        cb_act = self.act_cb
        cbs = [self.act_cb, self.wgt_cb, self.par_cb]
        for cb in cbs:
            m.d.comb += [cb.reserve_n.eq(1), cb.push_n.eq(1)]
        # Bytes per CB unit: the activation CB counts words, the others pages.
        page_bytes = [W, cfg.wgt_page_bytes, cfg.param_page_bytes]
        lane_counts = [cfg.rows, cfg.cols, cfg.cols]
        is_act = d.target == Target.ACT
        m.d.comb += [cb_act.reserve_n.eq(d.words), cb_act.push_n.eq(d.words)]
        # Rows per cycle of a ganged flat descriptor (1, 2, 4, ... up to GANG).
        gang_n = Signal(range(self.GANG + 1))
        m.d.comb += gang_n.eq(1)
        for g in range(1, self.GANG.bit_length()):
            with m.If(d.gang == g):
                m.d.comb += gang_n.eq(1 << g)
        # Pixels per read of a ganged im2col run descriptor (up to 2 * GANG: the lane shifters).
        act_gang_n = Signal(range(2 * self.GANG + 1))
        m.d.comb += act_gang_n.eq(1)
        for g in range(1, (2 * self.GANG).bit_length()):
            with m.If(d.gang == g):
                m.d.comb += act_gang_n.eq(1 << g)

        # Pipeline register between the address stage and the lane write.
        p_valid = Signal()
        p_target = Signal(2)
        p_lane = Signal(8)
        p_word = Signal(24)
        p_off = Signal(range(W))
        p_len = Signal(range(W + 1))
        p_zero = Signal()
        p_pad = Signal(8)       # the padding byte of this read
        p_bcast = Signal()
        p_cnt = Signal(range(2 * self.GANG + 1))    # rows of this read (gang)
        p_dual = Signal()       # ... from both ports
        p_chunk = Signal(range(W + 1))
        p_gang = Signal(range(self.GANG + 1))
        p_act = Signal()        # an activation read: its lanes' chunk shift is the pixel gang's
        p_actg = Signal()       # ... of several pixels at once (see ReadDesc.gang)
        p_stream = Signal()     # a streamed word is written this cycle: push it
        p_split = Signal(2)     # split-K: the row goes to the 2**p_split lanes of lane group p_lane
        m.d.sync += p_valid.eq(0)
        with m.If(p_valid & p_stream):
            m.d.comb += [cb_act.push.eq(1), cb_act.push_n.eq(1)]

        def load():
            m.d.comb += q.ready.eq(1)
            v = q.payload
            m.d.sync += [
                d.eq(v), state.eq(EngineState.WAIT_CB), lane.eq(0), tap_off.eq(0), cb_off.eq(0),
                ki.eq(0), kj.eq(0), n.eq(v.n0), oh.eq(v.oh0), ow.eq(v.ow0), j.eq(0),
                row_bytes.eq(v.row_bytes),
            ]
            for t, cnt in enumerate(lane_counts):
                with m.If(v.target.as_value() == t):
                    m.d.sync += lanes_n.eq(cnt)
            for sp in range(1, exact_log2(cfg.row_groups) + 1):
                with m.If((v.target == Target.ACT) & (v.split == sp)):
                    m.d.sync += lanes_n.eq(cfg.rows >> sp)     # split-K: lane groups of 2**sp lanes
            with m.If(v.bcast):
                # Every row goes to every lane: the lane index stays 0, rows follow each other.
                m.d.sync += lanes_n.eq(1)

        with m.Switch(state):
            with m.Case(EngineState.IDLE, EngineState.DONE):
                with m.If(q.valid):
                    load()
            with m.Case(EngineState.WAIT_CB):
                events("reader_wait_cb")
                for t, cb in enumerate(cbs):
                    with m.If((d.target.as_value() == t) & cb.can_reserve):
                        m.d.sync += [
                            state.eq(EngineState.RUN),
                            page_base.eq(cb.wr_page * page_bytes[t]),
                            q_row.eq(cb.wr_page * page_bytes[t]),
                        ]
                        with m.If(d.npix == 0):
                            m.d.sync += state.eq(EngineState.DRAIN)
            with m.Case(EngineState.RUN):
                # A streaming read reserves word by word: one free word beyond the one in flight.
                go = ~d.stream | (cb_act.space > (p_valid & p_stream))
                with m.If(~go):
                    events("reader_wait_cb")
                with m.If(go):
                    events("reader_busy")
                    ih = Signal(signed(20))
                    iw = Signal(signed(20))
                    m.d.comb += [
                        ih.eq(oh * d.stride_h + ki * d.dil_h - d.pad_top),
                        iw.eq(ow * d.stride_w + kj * d.dil_w - d.pad_left),
                    ]
                    ih_in = (ih >= 0) & (ih < d.h)
                    iw_lo = iw < 0
                    iw_hi = iw >= d.w
                    inb = ih_in & ~iw_lo & ~iw_hi
                    # The taps this piece's run spans (see ReadDesc.run): 1 without runs.
                    taps_left = Signal(8)
                    to_edge = Signal(signed(21))
                    run_taps = Signal(8)
                    m.d.comb += [taps_left.eq(d.kw - kj), to_edge.eq(Mux(iw_lo, -iw, d.w - iw))]
                    with m.If(~d.run):
                        m.d.comb += run_taps.eq(1)
                    with m.Elif(~ih_in | iw_hi | (to_edge >= taps_left)):
                        m.d.comb += run_taps.eq(taps_left)
                    with m.Else():
                        m.d.comb += run_taps.eq(to_edge)
                    run_bytes = Signal(24)
                    m.d.comb += run_bytes.eq(run_taps * d.chunk)
                    pix = ((n * d.h + ih.as_unsigned()[:16]) * d.w + iw.as_unsigned()[:16])[:32]
                    src = (d.src + (pix * d.pix_stride)[:32] + cb_off)[:32]
                    qaddr = (q_row + tap_off)[:32]
                    off = qaddr[:logw]
                    room = W - off
                    left = run_bytes - cb_off
                    ln = Signal(range(W + 1))
                    m.d.comb += ln.eq(Mux(left < room, left, room))
                    # Rows moved this cycle: 1, or up to 2**gang with a ganged descriptor; twice as many
                    # when port b is free too and the lanes are aligned for it.
                    cnt = Signal(range(2 * self.GANG + 1))
                    rows_left = d.npix - j
                    dual = Signal()
                    m.d.comb += dual.eq((d.gang != 0) & ~is_act & self.rb_free & (rows_left > gang_n)
                                        & ((lane & (2 * gang_n - 1)) == 0) & (lane + 2 * gang_n <= lanes_n))
                    most = Mux(dual, 2 * gang_n, gang_n)
                    m.d.comb += cnt.eq(Mux(rows_left < most, rows_left, most))
                    # A ganged run descriptor: at a kernel row's first tap inside the input, the
                    # same kernel row of the next pixels of the output row too, as far as their
                    # runs are whole (inside the input), the lanes of this round and the rows last;
                    # pixel i's run is at byte i · stride_w · chunk of the read.
                    act_g = Signal()
                    m.d.comb += act_g.eq(is_act & d.run & (d.gang != 0) & (kj == 0) & ~iw_lo)
                    with m.If(is_act):
                        m.d.comb += cnt.eq(1)
                    with m.If(act_g):
                        more = []
                        for i in range(1, 2 * self.GANG):
                            more.append((i < act_gang_n) & (iw + i * d.stride_w + d.kw <= d.w) & (lane + i < lanes_n)
                                        & (ow + i < d.wo) & (j + i < d.npix))
                        m.d.comb += cnt.eq(1 + sum(more))
                    with m.If(inb):
                        m.d.comb += [ra.en.eq(1), ra.addr.eq(src)]
                        events("ext_bytes_read", ln * cnt)
                    with m.If(dual):
                        m.d.comb += [rb.en.eq(1), rb.addr.eq(src + gang_n * d.chunk)]
                    m.d.sync += [
                        p_valid.eq(1), p_target.eq(d.target.as_value()), p_lane.eq(lane), p_word.eq(qaddr >> logw),
                        p_off.eq(off), p_len.eq(ln), p_zero.eq(~inb), p_pad.eq(d.pad_value), p_bcast.eq(d.bcast),
                        p_cnt.eq(cnt),
                        p_dual.eq(dual), p_chunk.eq(Mux(act_g, d.stride_w * d.chunk, d.chunk)), p_gang.eq(gang_n),
                        p_stream.eq(is_act & d.stream), p_act.eq(is_act), p_actg.eq(act_g),
                    ]
                    if cfg.row_groups > 1:
                        m.d.sync += p_split.eq(Mux(is_act, d.split, 0))
                    # Advance: piece → run of taps → row → pixel.
                    run_end = cb_off + ln >= run_bytes
                    # A row ends after its last tap (row_bytes may leave room at the end of the row).
                    row_end = (tap_off + ln >= row_bytes) | (run_end & (ki + 1 >= d.kh) & (kj + run_taps >= d.kw))
                    m.d.sync += [cb_off.eq(cb_off + ln), tap_off.eq(tap_off + ln)]
                    with m.If(run_end):
                        m.d.sync += [cb_off.eq(0), kj.eq(kj + run_taps)]
                        with m.If(kj + run_taps >= d.kw):
                            m.d.sync += [kj.eq(0), ki.eq(ki + 1)]
                    with m.If(row_end):
                        m.d.sync += [tap_off.eq(0), cb_off.eq(0), ki.eq(0), kj.eq(0), j.eq(j + cnt), ow.eq(ow + cnt),
                                     lane.eq(lane + cnt)]
                        with m.If(lane + cnt >= lanes_n):
                            # Next lane round; the activation ring wraps at the end of the lane bank.
                            next_row = q_row + row_bytes
                            m.d.sync += [lane.eq(0), q_row.eq(next_row)]
                            with m.If(is_act & (next_row >= cfg.act_lane_bytes)):
                                m.d.sync += q_row.eq(next_row - cfg.act_lane_bytes)
                        with m.If(ow + cnt >= d.wo):
                            m.d.sync += [ow.eq(0), oh.eq(oh + 1)]
                            with m.If(oh + 1 >= d.ho):
                                m.d.sync += [oh.eq(0), n.eq(n + 1)]
                        with m.If(j + cnt >= d.npix):
                            m.d.sync += state.eq(EngineState.DRAIN)
            with m.Case(EngineState.DRAIN):
                # The last piece is written this cycle; the page becomes visible next cycle.
                for t, cb in enumerate(cbs):
                    with m.If(d.target.as_value() == t):
                        m.d.comb += cb.push.eq(1)
                m.d.sync += [state.eq(EngineState.DONE), self.done_count.eq(self.done_count + 1)]
                with m.If(q.valid):
                    load()      # the next descriptor at once

        # Lane writes (one cycle after the address stage: external read data arrives). A ganged
        # read carries rows for consecutive lanes: the lane in position p of the gang takes its
        # chunk from byte p * chunk of the data, of port b's data for the second gang of a dual
        # read (lanes in the same position modulo 2 * GANG share a shifter).
        data_in = Mux(p_zero, p_pad.replicate(W), ra.data)
        shifted = []
        gmask = Signal(range(self.GANG))
        m.d.comb += gmask.eq(p_gang - 1)
        for pos in range(2 * self.GANG):
            sh = Signal(8 * W, name=f"rd_shifted{pos}")
            # position of these lanes in a (dual) gang of p_gang rows (a power of two, from an
            # aligned lane); in a pixel gang lane p_lane is position 0 (any lane); other
            # activation reads: no shift
            at = Signal(range(2 * self.GANG), name=f"rd_gpos{pos}")
            k = Signal(range(2 * self.GANG), name=f"rd_gk{pos}")
            m.d.comb += [at.eq(pos & (2 * p_gang - 1)), k.eq(Mux(p_act, 0, at & gmask))]
            with m.If(p_actg):
                m.d.comb += k.eq(pos - p_lane)
            if pos == 0:
                m.d.comb += sh.eq(((data_in >> (p_chunk * k * 8)) << (p_off * 8))[:8 * W])
            else:
                src = Mux(p_dual & (at & p_gang).any(), rb.data, data_in)
                m.d.comb += sh.eq(((src >> (p_chunk * k * 8)) << (p_off * 8))[:8 * W])
            shifted.append(sh)
        mask = ((Const(1, W + 1) << p_len) - 1)[:W] << p_off
        for t, name in enumerate(_TARGETS):
            for i, bank in enumerate(getattr(self, name)):
                if t == Target.ACT.value:
                    # activations: one lane per read, a pixel gang's lanes, or a broadcast
                    word = shifted[i % (2 * self.GANG)]
                    rel = Signal(8, name=f"rd_arel{i}")
                    m.d.comb += rel.eq(i - p_lane)
                    hit = rel < p_cnt
                    for sp in range(1, exact_log2(cfg.row_groups) + 1):
                        hit = Mux(p_split == sp, p_lane == (i >> sp), hit)     # split-K: a lane group
                    sel = hit | p_bcast
                else:
                    word = shifted[i % (2 * self.GANG)]
                    rel = Signal(8, name=f"rd_rel{t}_{i}")
                    m.d.comb += rel.eq(i - p_lane)
                    sel = (rel < p_cnt) | p_bcast
                m.d.comb += [bank.addr.eq(p_word), bank.data.eq(word), bank.mask.eq(mask[:W])]
                m.d.comb += bank.en.eq(p_valid & (p_target == t) & sel)
        bcast_writes = Signal(range(max(lane_counts) + 1))
        m.d.comb += bcast_writes.eq(p_cnt)
        for t, cnt in enumerate(lane_counts):
            with m.If(p_bcast & (p_target == t)):
                m.d.comb += bcast_writes.eq(cnt)
        for sp in range(1, exact_log2(cfg.row_groups) + 1):
            with m.If(p_split == sp):
                m.d.comb += bcast_writes.eq(1 << sp)
        events("l1_writes", bcast_writes, p_valid)
        m.d.comb += self.idle.eq((state == EngineState.IDLE) | (state == EngineState.DONE))
        events.drive()
        return m
