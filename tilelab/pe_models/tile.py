"""The Tensix-like compute tile: L1 lane banks with circular buffers, reader → math → pack → writer.

Data path (one conv layer, or any matrix product, block by block)::

    ext memory ──► reader (im2col gather) ──► act / wgt / param lane banks (CBs, 2 pages each)
                                                    │
                 compute: unpack (lane reads) ──► MAC array (R×C) ──► pack (bias, requant, ReLU)
                                                                           │
    ext memory ◄── writer ◄──────────────────────────────────────────── output CB

* The **reader** runs :class:`~tilelab.hdl.formats.tile.ReadDesc` descriptors. Each fills one page
  of the activation, weight or parameter circular buffer: row ``j`` of the block goes to lane
  ``j % lanes``. For activations a row is the im2col row of an output pixel, generated here from
  the conv parameters (kernel, stride, dilation, padding with zero fill, channel slice), so the
  host never writes an expanded im2col matrix. Each cycle it moves one piece of up to W bytes.
  A broadcast descriptor writes every row to all lanes at once: depthwise conv loads its raw
  input rows that way into the activation ring, each input byte read from external memory once.
  A ganged descriptor moves several short rows (weights, parameters) per read, one per lane.
* **Compute** runs :class:`~tilelab.hdl.formats.tile.ComputeDesc` descriptors: for each activation
  tile × weight tile it reads one byte from every activation lane and one byte from every weight
  lane per step and streams the step into the MAC array. In depthwise mode each activation lane
  reads C bytes at its own address: a per-lane address generator follows the lane's output pixel
  through the window, tap by tap, and unpack feeds zeros for taps in the padding (the array's
  element-wise mode multiplies them with the C channels' weights). The array drains one
  finished tile while the next accumulates. The **pack** stage adds bias, requantizes per channel
  (the numerics contract in the README), applies ReLU, and writes int8 (or int32) rows to the
  output circular buffer.
* The **writer** runs :class:`~tilelab.hdl.formats.tile.WriteDesc` descriptors, storing rows to
  external memory in NHWC order.
* Engines synchronise only through circular-buffer counters. A command fetcher reads the three
  descriptor streams from external memory (:class:`~tilelab.hdl.formats.tile.ProgramHeader` at
  byte 0) into per-engine queues.

The tile exposes its external-memory ports; :class:`TileTop` joins it to an
:class:`~tilelab.hdl.memories.ExtMemory` for simulation.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, fifo, wiring
from amaranth.lib.wiring import In, Out

from tilelab.hdl.cbuf import CircularBufferController
from tilelab.hdl.formats.tile import (
    DESC_BITS,
    DESC_BYTES,
    PACK_SLOTS,
    PARAM_RECORD_BYTES,
    READ_GANG,
    ComputeDesc,
    EngineState,
    ParamRecord,
    ProgramHeader,
    ReadDesc,
    Target,
    WriteDesc,
)
from tilelab.hdl.mac import MACArray
from tilelab.hdl.memories import SRAM, ExtMemory

from .config import TileConfig

__all__ = ["TILE_COUNTERS", "TILE_STATUS", "ComputeTile", "ExtMemoryTop", "TileTop"]

#: Hardware counters of a tile, in the order of its ``counters`` ports (all 48 bits).
TILE_COUNTERS = (
    "cycles",            # cycles from start to done
    "reader_busy",       # cycles the reader moved data
    "reader_wait_cb",    # cycles the reader waited for a free page
    "compute_busy",      # cycles compute issued steps
    "compute_wait_cb",   # cycles compute waited for act / wgt / param pages
    "compute_wait_out",  # cycles compute had a step ready but the operand queue was full
    "pack_wait_cb",      # cycles pack held a row because the output CB was full
    "writer_busy",       # cycles the writer wrote to external memory
    "writer_wait_cb",    # cycles the writer waited for output rows
    "macs",              # useful multiply-accumulates issued (real pixels x real channels)
    "mac_steps",         # reduction steps issued to the array (each R*C MAC slots)
    "l1_reads",          # L1 lane-bank / output-buffer word reads
    "l1_writes",         # L1 word writes
    "ext_bytes_read",    # bytes of activations, weights and parameters read from external memory
    "ext_bytes_written",  # bytes of outputs written to external memory
    "cmd_bytes_read",    # bytes of descriptors fetched
)

#: Status ports read by the watchdog's diagnosis.
TILE_STATUS = ("reader_state", "compute_state", "writer_state", "act_words", "wgt_pages", "param_pages",
               "out_entries", "reader_done", "compute_done", "writer_done")


def ext_port_signature(width_bytes: int) -> wiring.Signature:
    """External-memory port of a tile (the initiator side)."""
    W = width_bytes
    return wiring.Signature({
        "ra_en": Out(1), "ra_addr": Out(32), "ra_data": In(8 * W),
        "rb_en": Out(1), "rb_addr": Out(32), "rb_data": In(8 * W),
        "wr_en": Out(1), "wr_addr": Out(32), "wr_data": Out(8 * W), "wr_mask": Out(W),
    })


def _minimum(a, b):
    return Mux(a < b, a, b)


class ComputeTile(wiring.Component):
    """One compute tile (see the module docstring).

    Parameters
    ----------
    config : TileConfig
        The tile's frozen configuration.

    Members
    -------
    start : In(1)
        Pulse once after reset: fetch the program header and run.
    done : Out(1)
        Every engine has finished its descriptors (sticky).
    ext : Out(ext_port_signature(config.ext_bytes))
        External-memory ports.
    <counter> : Out(48)
        One port per name in :data:`TILE_COUNTERS`.
    <status> : Out
        One port per name in :data:`TILE_STATUS`.
    """

    #: Most rows a ganged flat read feeds at once (weights and parameters, see ReadDesc.gang).
    GANG = READ_GANG

    def __init__(self, config: TileConfig):
        if not isinstance(config, TileConfig):
            raise TypeError(f"config must be a TileConfig, not {config!r}")
        self.config = config
        members = {
            "start": In(1),
            "done": Out(1),
            "ext": Out(ext_port_signature(config.ext_bytes)),
        }
        for name in TILE_COUNTERS:
            members[name] = Out(48)
        members.update({
            "reader_state": Out(EngineState), "compute_state": Out(EngineState), "writer_state": Out(EngineState),
            "act_words": Out(range(config.act_lane_bytes // config.ext_bytes + 1)),
            "wgt_pages": Out(2), "param_pages": Out(2),
            "out_entries": Out(range(config.out_entries + 1)),
            "reader_done": Out(32), "compute_done": Out(32), "writer_done": Out(32),
        })
        super().__init__(members)

    # ------------------------------------------------------------------------------------------
    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        R, C, W = cfg.rows, cfg.cols, cfg.ext_bytes

        started = Signal()
        with m.If(self.start):
            m.d.sync += started.eq(1)

        # --- L1: lane banks and circular buffers ------------------------------------------------
        def lanes(name, count, lane_bytes, width):
            banks = []
            for i in range(count):
                bank = SRAM(width_bytes=width, depth=lane_bytes // width, impl=cfg.mem_impl)
                m.submodules[f"{name}{i}"] = bank
                banks.append(bank)
            return banks

        act = lanes("act", R, cfg.act_lane_bytes, W)
        wgt = lanes("wgt", C, cfg.wgt_lane_bytes, W)
        par = lanes("par", C, cfg.param_lane_bytes, W)
        # Output CB entries, interleaved over D banks: pack stores D rows a cycle (two when the
        # shapes allow: depthwise layers finish a tile every few steps).
        D = 2 if R % 2 == 0 and cfg.out_entries % 2 == 0 else 1
        outbuf = [SRAM(width_bytes=4 * C, depth=cfg.out_entries // D, impl=cfg.mem_impl) for _ in range(D)]
        for b, bank in enumerate(outbuf):
            m.submodules[f"outbuf{b}"] = bank
        #: After elaboration: every L1 bank (lane banks, then output buffers), for testbenches.
        self.l1_banks = [*act, *wgt, *par, *outbuf]

        # The activation CB counts W-byte words of its lane bank (one ring); a dense page is half of it.
        m.submodules.cb_act = cb_act = CircularBufferController(pages=cfg.act_lane_bytes // W)
        m.submodules.cb_wgt = cb_wgt = CircularBufferController(pages=2)
        m.submodules.cb_par = cb_par = CircularBufferController(pages=2)
        m.submodules.cb_out = cb_out = CircularBufferController(pages=cfg.out_entries)
        for cb in (cb_act, cb_wgt, cb_par, cb_out):
            m.d.comb += [cb.reserve_n.eq(1), cb.wait_n.eq(1), cb.push_n.eq(1), cb.pop_n.eq(1),
                         cb.cfg_en.eq(0), cb.cfg_pages.eq(0)]
        m.d.comb += [
            self.act_words.eq(cb_act.occupancy), self.wgt_pages.eq(cb_wgt.occupancy),
            self.param_pages.eq(cb_par.occupancy), self.out_entries.eq(cb_out.occupancy),
        ]

        counters = {name: getattr(self, name) for name in TILE_COUNTERS}
        running = started & ~self.done
        with m.If(running):
            m.d.sync += counters["cycles"].eq(counters["cycles"] + 1)

        # A counter may be counted by several engines in the same cycle (L1 writes by the reader
        # and by pack): each call records when it counts (under the caller's conditions) and by how
        # much, and every counter gets one statement summing its additions.
        adds = {name: [] for name in TILE_COUNTERS}

        def count(name, amount=1, when=1):
            hit = Signal(name=f"count_{name}_{len(adds[name])}")
            m.d.comb += hit.eq(when)
            adds[name].append((hit, amount))

        # --- command fetcher -------------------------------------------------------------------
        queues = {}
        for eng in ("reader", "compute", "writer"):
            q = fifo.SyncFIFOBuffered(width=DESC_BITS, depth=2)
            m.submodules[f"q_{eng}"] = q
            queues[eng] = q
        self._fetcher(m, queues, started, count)
        hdr_done, fetched_all = self._fetch_status

        # --- engines -----------------------------------------------------------------------------
        reader_idle = self._reader(m, queues["reader"], act, wgt, par, cb_act, cb_wgt, cb_par, count)
        compute_idle = self._compute(m, queues["compute"], act, wgt, par, cb_act, cb_wgt, cb_par, outbuf, cb_out,
                                     count)
        writer_idle = self._writer(m, queues["writer"], outbuf, cb_out, count)

        for name, items in adds.items():
            if len(items) == 1:
                with m.If(items[0][0]):
                    m.d.sync += counters[name].eq(counters[name] + items[0][1])
            elif items:
                m.d.sync += counters[name].eq(counters[name] + sum(Mux(hit, amount, 0) for hit, amount in items))

        all_empty = ~queues["reader"].r_rdy & ~queues["compute"].r_rdy & ~queues["writer"].r_rdy
        with m.If(started & hdr_done & fetched_all & all_empty & reader_idle & compute_idle & writer_idle):
            m.d.sync += self.done.eq(1)
        return m

    # ------------------------------------------------------------------------------------------
    def _fetcher(self, m, queues, started, count):
        cfg = self.config
        W = cfg.ext_bytes
        words = DESC_BYTES // W
        ext = self.ext
        engines = ("reader", "compute", "writer")

        base = [Signal(32, name=f"fetch_base_{e}") for e in engines]
        left = [Signal(32, name=f"fetch_left_{e}") for e in engines]
        hdr_done = Signal()
        asm = Signal(DESC_BITS)
        issue_i = Signal(range(words + 1))
        recv_i = Signal(range(words + 1))
        cur = Signal(range(3))
        addr = Signal(32)
        busy = Signal()
        rr = Signal(range(3))

        # Issue W-byte reads of one descriptor slot; assemble as they return (1-cycle latency).
        inflight = Signal()
        m.d.sync += inflight.eq(0)
        # (when the fetcher leaves port b free, the reader may use it: see _reader)
        self._fetch_rb = fetch_rb = Signal()
        m.d.comb += fetch_rb.eq(busy & (issue_i < words))
        with m.If(fetch_rb):
            m.d.comb += [ext.rb_en.eq(1), ext.rb_addr.eq(addr + issue_i * W)]
            m.d.sync += [issue_i.eq(issue_i + 1), inflight.eq(1)]
        with m.If(inflight):
            m.d.sync += [asm.eq(Cat(asm[8 * W:], ext.rb_data)), recv_i.eq(recv_i + 1)]
            count("cmd_bytes_read", W)

        done_slot = busy & (recv_i == words)
        with m.If(done_slot):
            m.d.sync += [busy.eq(0), recv_i.eq(0), issue_i.eq(0)]
            with m.If(~hdr_done):
                m.d.sync += hdr_done.eq(1)
                view = ProgramHeader(asm[:ProgramHeader.as_shape().size])
                m.d.sync += [
                    base[0].eq(view.reader_base), left[0].eq(view.reader_count),
                    base[1].eq(view.compute_base), left[1].eq(view.compute_count),
                    base[2].eq(view.writer_base), left[2].eq(view.writer_count),
                ]
            with m.Else():
                for i, e in enumerate(engines):
                    with m.If(cur == i):
                        m.d.comb += [queues[e].w_en.eq(1), queues[e].w_data.eq(asm)]
                        m.d.sync += [base[i].eq(base[i] + DESC_BYTES), left[i].eq(left[i] - 1)]

        hdr_req = Signal()
        with m.If(started & ~hdr_req):
            m.d.sync += [hdr_req.eq(1), busy.eq(1), addr.eq(0)]
        with m.Elif(hdr_done & ~busy & ~done_slot):
            # Round robin over engines with descriptors left and an empty queue slot.
            choice = Signal(range(3))
            found = Signal()
            for off in reversed(range(3)):
                idx = Signal(range(3), name=f"rr_idx{off}")
                m.d.comb += idx.eq(Mux(rr + off >= 3, rr + off - 3, rr + off))
                ok = Signal(name=f"rr_ok{off}")
                m.d.comb += ok.eq(0)
                for i, e in enumerate(engines):
                    with m.If(idx == i):
                        m.d.comb += ok.eq(left[i].any() & queues[e].w_rdy & (queues[e].w_level == 0))
                with m.If(ok):
                    m.d.comb += [choice.eq(idx), found.eq(1)]
            with m.If(found):
                m.d.sync += [busy.eq(1), cur.eq(choice), rr.eq(Mux(choice == 2, 0, choice + 1))]
                for i in range(3):
                    with m.If(choice == i):
                        m.d.sync += addr.eq(base[i])
        fetched_all = hdr_done & ~busy & ~left[0].any() & ~left[1].any() & ~left[2].any()
        self._fetch_status = (hdr_done, fetched_all)

    # ------------------------------------------------------------------------------------------
    def _reader(self, m, q, act, wgt, par, cb_act, cb_wgt, cb_par, count):
        cfg = self.config
        W = cfg.ext_bytes
        logw = W.bit_length() - 1
        ext = self.ext

        d = Signal(ReadDesc)
        state = Signal(EngineState)
        m.d.comb += self.reader_state.eq(state)

        lane = Signal(8)
        lanes_n = Signal(8)
        q_row = Signal(32)      # lane byte address of the current row
        tap_off = Signal(16)    # byte offset within the row
        cb_off = Signal(16)     # byte offset within the current tap's chunk
        ki = Signal(8)
        kj = Signal(8)
        n = Signal(16)
        oh = Signal(16)
        ow = Signal(16)
        j = Signal(16)
        page_base = Signal(32)
        row_bytes = Signal(16)

        cbs = [cb_act, cb_wgt, cb_par]
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

        # Pipeline register between the address stage and the lane write.
        p_valid = Signal()
        p_target = Signal(2)
        p_lane = Signal(8)
        p_word = Signal(24)
        p_off = Signal(range(W))
        p_len = Signal(range(W + 1))
        p_zero = Signal()
        p_bcast = Signal()
        p_cnt = Signal(range(2 * self.GANG + 1))    # rows of this read (gang)
        p_dual = Signal()       # ... from both ports
        p_chunk = Signal(range(W + 1))
        p_gang = Signal(range(self.GANG + 1))
        p_stream = Signal()     # a streamed word is written this cycle: push it
        m.d.sync += p_valid.eq(0)
        with m.If(p_valid & p_stream):
            m.d.comb += [cb_act.push.eq(1), cb_act.push_n.eq(1)]

        def load():
            m.d.comb += q.r_en.eq(1)
            v = ReadDesc(q.r_data[:ReadDesc.as_shape().size])
            m.d.sync += [
                d.eq(v), state.eq(EngineState.WAIT_CB), lane.eq(0), tap_off.eq(0), cb_off.eq(0),
                ki.eq(0), kj.eq(0), n.eq(v.n0), oh.eq(v.oh0), ow.eq(v.ow0), j.eq(0),
                row_bytes.eq(v.row_bytes),
            ]
            for t, cnt in enumerate(lane_counts):
                with m.If(v.target.as_value() == t):
                    m.d.sync += lanes_n.eq(cnt)
            with m.If(v.bcast):
                # Every row goes to every lane: the lane index stays 0, rows follow each other.
                m.d.sync += lanes_n.eq(1)

        with m.Switch(state):
            with m.Case(EngineState.IDLE, EngineState.DONE):
                with m.If(q.r_rdy):
                    load()
            with m.Case(EngineState.WAIT_CB):
                count("reader_wait_cb")
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
                    count("reader_wait_cb")
                with m.If(go):
                    count("reader_busy")
                    ih = Signal(signed(20))
                    iw = Signal(signed(20))
                    m.d.comb += [
                        ih.eq(oh * d.stride_h + ki * d.dil_h - d.pad_top),
                        iw.eq(ow * d.stride_w + kj * d.dil_w - d.pad_left),
                    ]
                    inb = (ih >= 0) & (ih < d.h) & (iw >= 0) & (iw < d.w)
                    pix = ((n * d.h + ih.as_unsigned()[:16]) * d.w + iw.as_unsigned()[:16])[:32]
                    src = (d.src + (pix * d.pix_stride)[:32] + cb_off)[:32]
                    qaddr = (q_row + tap_off)[:32]
                    off = qaddr[:logw]
                    room = W - off
                    left = d.chunk - cb_off
                    ln = Signal(range(W + 1))
                    m.d.comb += ln.eq(Mux(left < room, left, room))
                    # Rows moved this cycle: 1, or up to 2**gang with a ganged descriptor; twice as many
                    # when port b is free too (the fetcher's) and the lanes are aligned for it.
                    cnt = Signal(range(2 * self.GANG + 1))
                    rows_left = d.npix - j
                    dual = Signal()
                    m.d.comb += dual.eq((d.gang != 0) & ~self._fetch_rb & (rows_left > gang_n)
                                        & ((lane & (2 * gang_n - 1)) == 0) & (lane + 2 * gang_n <= lanes_n))
                    most = Mux(dual, 2 * gang_n, gang_n)
                    m.d.comb += cnt.eq(Mux(rows_left < most, rows_left, most))
                    with m.If(inb):
                        m.d.comb += [ext.ra_en.eq(1), ext.ra_addr.eq(src)]
                        count("ext_bytes_read", ln * cnt)
                    with m.If(dual):
                        m.d.comb += [ext.rb_en.eq(1), ext.rb_addr.eq(src + gang_n * d.chunk)]
                    m.d.sync += [
                        p_valid.eq(1), p_target.eq(d.target.as_value()), p_lane.eq(lane), p_word.eq(qaddr >> logw),
                        p_off.eq(off), p_len.eq(ln), p_zero.eq(~inb), p_bcast.eq(d.bcast), p_cnt.eq(cnt),
                        p_dual.eq(dual), p_chunk.eq(d.chunk), p_gang.eq(gang_n), p_stream.eq(is_act & d.stream),
                    ]
                    # Advance: piece → tap → row → pixel.
                    chunk_end = cb_off + ln >= d.chunk
                    # A row ends after its last tap (row_bytes may leave room at the end of the row).
                    row_end = (tap_off + ln >= row_bytes) | (chunk_end & (ki + 1 >= d.kh) & (kj + 1 >= d.kw))
                    m.d.sync += [cb_off.eq(cb_off + ln), tap_off.eq(tap_off + ln)]
                    with m.If(chunk_end):
                        m.d.sync += [cb_off.eq(0), kj.eq(kj + 1)]
                        with m.If(kj + 1 >= d.kw):
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
                m.d.sync += [state.eq(EngineState.DONE), self.reader_done.eq(self.reader_done + 1)]
                with m.If(q.r_rdy):
                    load()      # the next descriptor at once

        # Lane writes (one cycle after the address stage: external read data arrives). A ganged
        # read carries rows for consecutive lanes: the lane in position p of the gang takes its
        # chunk from byte p * chunk of the data, of port b's data for the second gang of a dual
        # read (lanes in the same position modulo 2 * GANG share a shifter).
        data_in = Mux(p_zero, 0, ext.ra_data)
        shifted = []
        gmask = Signal(range(self.GANG))
        m.d.comb += gmask.eq(p_gang - 1)
        for pos in range(2 * self.GANG):
            sh = Signal(8 * W, name=f"rd_shifted{pos}")
            if pos == 0:
                m.d.comb += sh.eq((data_in << (p_off * 8))[:8 * W])
            else:
                # position of these lanes in a (dual) gang of p_gang rows (a power of two)
                at = Signal(range(2 * self.GANG), name=f"rd_gpos{pos}")
                m.d.comb += at.eq(pos & (2 * p_gang - 1))
                src = Mux(p_dual & (at & p_gang).any(), ext.rb_data, data_in)
                m.d.comb += sh.eq(((src >> (p_chunk * (at & gmask) * 8)) << (p_off * 8))[:8 * W])
            shifted.append(sh)
        mask = ((Const(1, W + 1) << p_len) - 1)[:W] << p_off
        for t, banks in enumerate((act, wgt, par)):
            for i, bank in enumerate(banks):
                if t == Target.ACT.value:
                    data = shifted[0]       # activations: one lane per read, or a broadcast
                    sel = (p_lane == i) | p_bcast
                else:
                    data = shifted[i % (2 * self.GANG)]
                    rel = Signal(8, name=f"rd_rel{t}_{i}")
                    m.d.comb += rel.eq(i - p_lane)
                    sel = (rel < p_cnt) | p_bcast
                m.d.comb += [bank.wr_addr.eq(p_word), bank.wr_data.eq(data), bank.wr_mask.eq(mask[:W])]
                m.d.comb += bank.wr_en.eq(p_valid & (p_target == t) & sel)
        bcast_writes = Signal(range(max(lane_counts) + 1))
        m.d.comb += bcast_writes.eq(p_cnt)
        for t, cnt in enumerate(lane_counts):
            with m.If(p_bcast & (p_target == t)):
                m.d.comb += bcast_writes.eq(cnt)
        count("l1_writes", bcast_writes, p_valid)
        return (state == EngineState.IDLE) | (state == EngineState.DONE)

    # ------------------------------------------------------------------------------------------
    def _compute(self, m, q, act, wgt, par, cb_act, cb_wgt, cb_par, outbuf, cb_out, count):
        cfg = self.config
        R, C, W = cfg.rows, cfg.cols, cfg.ext_bytes
        logw = W.bit_length() - 1
        m.submodules.array = array = MACArray(rows=R, cols=C, depthwise=cfg.depthwise, drain_rows=len(outbuf))
        in_layout = array.in_layout

        d = Signal(ComputeDesc)
        state = Signal(EngineState)
        m.d.comb += self.compute_state.eq(state)
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
        m.submodules.opq = opq = fifo.SyncFIFOBuffered(width=step_layout.size, depth=4)
        if cfg.depthwise:
            a2_layout = in_layout["a2"].shape
            m.submodules.a2q = a2q = fifo.SyncFIFOBuffered(width=a2_layout.size, depth=4)
        # Tile information for pack: params of the tile's channels + output format.
        # With packed tiles, ``slot`` is the tile's place in the shared entries and ``push`` marks the
        # last tile (its rows push the entries); otherwise slot 0 and every tile pushes.
        tile_layout = data.StructLayout({
            "params": data.ArrayLayout(ParamRecord, C),
            "zero_point": signed(8), "relu": 1, "out_int32": 1, "slot": range(PACK_SLOTS), "push": 1,
        })
        m.submodules.tileq = tileq = fifo.SyncFIFOBuffered(width=tile_layout.size, depth=4)
        inflight = Signal()
        tile_inflight = Signal()
        can_issue = (opq.level + inflight < 4)
        is_tile_start = k == 0
        can_tile = (tileq.level + tile_inflight < 4)

        # Depthwise address generator (see ComputeDesc): per lane, the page byte of its output
        # pixel's first tap and that tap's input row and column; one tap offset shared by all lanes.
        # Taps outside the input (zero padding) are not in the window: unpack feeds zeros for them.
        lane_layout = data.StructLayout({"ow": 16, "pix": 32, "ih": signed(20), "iw": signed(20)})
        dw_lane = [Signal(lane_layout, name=f"dw_lane{r}") for r in range(R)]
        dw_kj = Signal(8)
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
        p_woff = Signal(range(W))
        p_tile = Signal()
        p_poff = Signal(range(W))
        p_slot = Signal(range(PACK_SLOTS))
        p_push = Signal()
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
                with m.If(q.r_rdy):
                    m.d.comb += q.r_en.eq(1)
                    m.d.sync += [d.eq(q.r_data[:ComputeDesc.as_shape().size]), state.eq(EngineState.WAIT_CB),
                                 ta.eq(0), tw.eq(0), k.eq(0)]
            with m.Case(EngineState.WAIT_CB):
                count("compute_wait_cb")
                for r, lane in enumerate(dw_start):
                    m.d.sync += dw_lane[r].eq(lane)
                m.d.sync += [dw_kj.eq(0), dw_tap.eq(0), dw_tih.eq(0), dw_tiw.eq(0)]
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
                    count("compute_busy")
                    a_addr = Signal(32)
                    w_addr = Signal(32)
                    m.d.comb += [
                        a_addr.eq(a_base + ta * d.a_row_bytes + k),
                        w_addr.eq(w_base + tw * d.w_row_bytes + k),
                    ]
                    for r, bank in enumerate(act):
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
                            m.d.sync += [p_loff[r].eq(lane_addr[:logw]), p_lzero[r].eq(d.dw & ~inside)]
                        m.d.comb += [bank.rd_en.eq(1), bank.rd_addr.eq(lane_addr >> logw)]
                    if cfg.depthwise:
                        # Next tap; after the last tap of a tile every lane moves on by R pixels.
                        tap_col = d.dw_dw << logw      # one window pixel is one word
                        m.d.sync += [dw_kj.eq(dw_kj + 1), dw_tap.eq(dw_tap + tap_col), dw_tiw.eq(dw_tiw + d.dw_dw)]
                        with m.If(dw_kj + 1 >= d.dw_kw):
                            m.d.sync += [dw_kj.eq(0), dw_tap.eq(dw_tap + tap_col + d.dw_tap_row.as_unsigned()),
                                         dw_tiw.eq(0), dw_tih.eq(dw_tih + d.dw_dh)]
                        with m.If(last_step):
                            m.d.sync += [dw_kj.eq(0), dw_tap.eq(0), dw_tih.eq(0), dw_tiw.eq(0)]
                            with m.If(last_tw):
                                for r in range(R):
                                    m.d.sync += dw_lane[r].eq(dw_next[r])
                    for bank in wgt:
                        m.d.comb += [bank.rd_en.eq(1), bank.rd_addr.eq(w_addr >> logw)]
                    count("l1_reads", R + C)
                    m.d.sync += [p_valid.eq(1), p_first.eq(k == 0), p_last.eq(last_step),
                                 p_aoff.eq(a_addr[:logw]), p_woff.eq(w_addr[:logw])]
                    with m.If(is_tile_start):
                        p_addr = p_base + tw * PARAM_RECORD_BYTES
                        for bank in par:
                            m.d.comb += [bank.rd_en.eq(1), bank.rd_addr.eq(p_addr >> logw)]
                        count("l1_reads", C)
                        m.d.sync += [p_tile.eq(1), p_poff.eq(p_addr[:logw]), p_slot.eq(Mux(d.packed, tw, 0)),
                                     p_push.eq(~d.packed | last_tw)]
                    # Useful MACs: real rows × real columns of this tile.
                    vr = d.valid_rows - ta * R
                    vc = d.valid_cols - tw * C
                    rows_ok = Mux(vr > R, R, vr)[:8]
                    cols_ok = Mux(vc > C, C, vc)[:8]
                    count("macs", rows_ok * cols_ok)
                    count("mac_steps")
                    m.d.sync += k.eq(k + 1)
                    with m.If(last_step):
                        m.d.sync += [k.eq(0), tw.eq(tw + 1)]
                        with m.If(last_tw):
                            m.d.sync += [tw.eq(0), ta.eq(ta + 1)]
                            with m.If(last_ta):
                                m.d.sync += state.eq(EngineState.DRAIN)
                with m.Elif(~act_ready):
                    count("compute_wait_cb")
                with m.Else():
                    count("compute_wait_out")
            with m.Case(EngineState.DRAIN):
                # The last lane reads completed last cycle: the pages may be released.
                # (a depthwise block may drop rows the streaming reader has not delivered yet)
                with m.If(cb_act.available >= d.act_pop):
                    m.d.comb += [cb_act.pop.eq(1), cb_wgt.pop.eq(d.pop_wgt), cb_par.pop.eq(d.pop_param)]
                    m.d.sync += [state.eq(EngineState.DONE), self.compute_done.eq(self.compute_done + 1)]

        # Unpack: lane words → operand bytes → operand queues.
        step = step_layout(Signal(step_layout))
        if cfg.depthwise:
            a2 = a2_layout(Signal(a2_layout))
        for r, bank in enumerate(act):
            m.d.comb += step.a[r].eq(bank.rd_data.word_select(p_aoff, 8))
            if cfg.depthwise:
                # Depthwise pixels are C-byte aligned (C divides W): pick the lane's C-byte slot.
                slot = bank.rd_data.word_select(p_loff[r] >> (C.bit_length() - 1), 8 * C) if W > C else bank.rd_data
                m.d.comb += a2[r].eq(Mux(p_lzero[r], 0, slot))
        for c, bank in enumerate(wgt):
            m.d.comb += step.b[c].eq(bank.rd_data.word_select(p_woff, 8))
        m.d.comb += [step.first.eq(p_first), step.last.eq(p_last)]
        if cfg.depthwise:
            m.d.comb += step.dw.eq(d.dw)
        m.d.comb += [opq.w_en.eq(p_valid), opq.w_data.eq(step.as_value())]
        head = step_layout(opq.r_data)
        for name, _ in step_layout:
            m.d.comb += array.i.payload[name].eq(head[name])
        m.d.comb += [array.i.valid.eq(opq.r_rdy), opq.r_en.eq(array.i.ready & array.i.valid)]
        if cfg.depthwise:
            # both queues take a depthwise step in the same cycle, so their heads arrive together
            m.d.comb += [a2q.w_en.eq(p_valid & d.dw), a2q.w_data.eq(a2.as_value()),
                         array.i.payload.a2.eq(a2q.r_data),
                         array.i.valid.eq(opq.r_rdy & (~head.dw | a2q.r_rdy)),
                         a2q.r_en.eq(array.i.ready & array.i.valid & head.dw)]
        tile = tile_layout(Signal(tile_layout))
        for c, bank in enumerate(par):
            rec = bank.rd_data.word_select(p_poff >> 4, 128) if W > 16 else bank.rd_data
            m.d.comb += tile.params[c].eq(rec)
        m.d.comb += [tile.zero_point.eq(d.zero_point), tile.relu.eq(d.relu), tile.out_int32.eq(d.out_int32),
                     tile.slot.eq(p_slot), tile.push.eq(p_push)]
        m.d.comb += [tileq.w_en.eq(p_tile), tileq.w_data.eq(tile.as_value())]

        self._pack(m, array, tileq, tile_layout, outbuf, cb_out, count)
        idle = ((state == EngineState.IDLE) | (state == EngineState.DONE)) & ~opq.r_rdy & ~tileq.r_rdy & ~array.busy
        return idle

    # ------------------------------------------------------------------------------------------
    def _pack(self, m, array, tileq, tile_layout, outbuf, cb_out, count):
        C = self.config.cols
        E = self.config.out_entries
        D = len(outbuf)
        info = tile_layout(tileq.r_data)
        index = array.o.payload.index
        rows = [array.o.payload.row] + ([array.o.payload.row1] if D == 2 else [])
        # A tile that pushes writes its D rows to the next free entries; an earlier tile of a
        # packed group writes row r to the r-th free entry (pushed later, by the group's last tile).
        entry = Signal(range(2 * E))
        m.d.comb += entry.eq(cb_out.wr_page + Mux(info.push, 0, index))
        m.d.comb += [cb_out.reserve_n.eq(Mux(info.push, D, index + D)), cb_out.push_n.eq(D)]
        ok = tileq.r_rdy & cb_out.can_reserve
        m.d.comb += array.o.ready.eq(ok)
        with m.If(array.o.valid & tileq.r_rdy & ~cb_out.can_reserve):
            count("pack_wait_cb")
        fire = array.o.valid & ok
        words, entries = [], []
        # Requantization without any intermediate wider than 64 bits (a compiled simulator would
        # otherwise fall back to multi-word arithmetic for every column, every cycle). With
        # q = x >> (s-1): (x + 2**(s-1)) >> s == floor((q + 1) / 2) == (q >> 1) + q[0], and for the
        # shifts the host accepts (1..62) |x| = |v · multiplier| ≤ 2**62, so every term fits.
        for i, row in enumerate(rows):
            out32 = Signal(32 * C, name=f"pack_out32_{i}")
            out8 = Signal(8 * C, name=f"pack_out8_{i}")
            for c in range(C):
                p = info.params[c]
                v = Signal(signed(32), name=f"pack_v{i}_{c}")
                m.d.comb += v.eq(row[c] + p.bias)                     # int32 wrap, as the accumulator
                x = Signal(signed(64), name=f"pack_x{i}_{c}")
                m.d.comb += x.eq(v * p.multiplier)
                sm1 = Signal(6, name=f"pack_sm1_{i}_{c}")
                m.d.comb += sm1.eq(p.shift[:6] - 1)
                q = Signal(signed(64), name=f"pack_q{i}_{c}")
                m.d.comb += q.eq(x >> sm1)
                rounded = Signal(signed(64), name=f"pack_rnd{i}_{c}")
                m.d.comb += rounded.eq((q >> 1)[:63].as_signed() + q[0])
                t = Signal(signed(64), name=f"pack_t{i}_{c}")
                m.d.comb += t.eq(rounded[:63].as_signed() + info.zero_point)
                t2 = Signal(signed(64), name=f"pack_r{i}_{c}")
                m.d.comb += t2.eq(Mux(info.relu & (t < info.zero_point), info.zero_point, t))
                q8 = Signal(signed(8), name=f"pack_q8_{i}_{c}")
                m.d.comb += q8.eq(Mux(t2 > 127, 127, Mux(t2 < -128, -128, t2)))
                m.d.comb += [out32.word_select(c, 32).eq(v), out8.word_select(c, 8).eq(q8)]
            at = Signal(range(2 * E), name=f"pack_entry{i}")
            m.d.comb += at.eq(Mux(entry + i >= E, entry + i - E, entry + i))
            words.append((Signal(32 * C, name=f"pack_word{i}"), out8, out32))
            entries.append(at)
        # An int32 row fills its entry; int8 rows of a packed tile go to byte slot ``slot`` of it
        # (one case per slot: constant shifts, not a shift by a variable amount).
        mask = Signal(4 * C)
        with m.Switch(Mux(info.out_int32, PACK_SLOTS, info.slot)):
            for k in range(PACK_SLOTS):
                with m.Case(k):
                    m.d.comb += mask.eq(((1 << C) - 1) << (k * C))
                    m.d.comb += [word.eq(out8 << (k * 8 * C)) for word, out8, _ in words]
            with m.Default():
                m.d.comb += mask.eq(-1)
                m.d.comb += [word.eq(out32) for word, _, out32 in words]
        words = [word for word, _, _ in words]
        # Entry e lives in bank e % D at word e // D: the D rows go to D different banks.
        for b, bank in enumerate(outbuf):
            m.d.comb += [bank.wr_en.eq(fire), bank.wr_mask.eq(mask)]
            for i in range(D):
                with m.If(entries[i] % D == b):
                    m.d.comb += [bank.wr_addr.eq(entries[i] // D), bank.wr_data.eq(words[i])]
        m.d.comb += [
            cb_out.push.eq(fire & info.push),
            tileq.r_en.eq(fire & array.o.payload.last),
        ]
        count("l1_writes", D, fire)

    # ------------------------------------------------------------------------------------------
    def _writer(self, m, q, outbuf, cb_out, count):
        cfg = self.config
        R, C, W = cfg.rows, cfg.cols, cfg.ext_bytes
        ext = self.ext
        d = Signal(WriteDesc)
        state = Signal(EngineState)
        m.d.comb += self.writer_state.eq(state)
        ta = Signal(8)
        tw = Signal(8)
        r = Signal(range(R + 1))
        # The row being written (read data stays on its bank's rd_data until the next read there).
        D = len(outbuf)
        h_bank = Signal(range(D))
        rd_data = outbuf[0].rd_data if D == 1 else Mux(h_bank, outbuf[1].rd_data, outbuf[0].rd_data)
        h_valid = Signal()
        h_bytes = Signal(16)
        h_addr = Signal(32)
        h_piece = Signal(16)
        all_issued = Signal()

        eb = Mux(d.out_int32, 4, 1)
        nbytes_piece = Signal(range(W + 1))
        left = h_bytes - h_piece * W
        m.d.comb += nbytes_piece.eq(Mux(left > W, W, left))
        last_piece = ~h_valid | (left <= W)

        with m.If(h_valid):
            with m.If(h_bytes != 0):
                m.d.comb += [
                    ext.wr_en.eq(1), ext.wr_addr.eq(h_addr + h_piece * W),
                    ext.wr_data.eq(rd_data.word_select(h_piece[:8], 8 * W) if 4 * C > W else rd_data),
                    ext.wr_mask.eq(((Const(1, W + 1) << nbytes_piece) - 1)[:W]),
                ]
                count("ext_bytes_written", nbytes_piece)
                count("writer_busy")
            m.d.sync += h_piece.eq(h_piece + 1)
            with m.If(last_piece):
                m.d.sync += h_valid.eq(0)

        def load(v):
            m.d.comb += q.r_en.eq(1)
            m.d.sync += [d.eq(v), state.eq(EngineState.RUN), ta.eq(0), tw.eq(0), r.eq(0), all_issued.eq(0)]

        # Rows of the current tile: past valid_rows the rest of the tile is popped at once.
        E = cfg.out_entries
        row_idx = ta * R + r
        skip = row_idx >= d.valid_rows
        rest = Signal(range(R + 1))
        m.d.comb += rest.eq(Mux(skip, R - r, 1))
        if E < R:
            m.d.comb += rest.eq(Mux(skip & (R - r > E), E, Mux(skip, R - r, 1)))
        m.d.comb += [cb_out.wait_n.eq(rest), cb_out.pop_n.eq(rest)]
        n_tiles = Mux(d.packed, 1, d.n)     # packed: one entry holds all n tiles of a pixel

        with m.Switch(state):
            with m.Case(EngineState.IDLE, EngineState.DONE):
                with m.If(q.r_rdy & last_piece):
                    load(q.r_data[:WriteDesc.as_shape().size])
            with m.Case(EngineState.RUN):
                with m.If(all_issued):
                    with m.If(last_piece):
                        m.d.sync += state.eq(EngineState.DONE)
                with m.Elif(cb_out.can_wait & last_piece):
                    for b, bank in enumerate(outbuf):
                        m.d.comb += [bank.rd_en.eq(~skip & (cb_out.rd_page % D == b)),
                                     bank.rd_addr.eq(cb_out.rd_page // D)]
                    m.d.comb += cb_out.pop.eq(1)
                    m.d.sync += h_bank.eq(cb_out.rd_page % D)
                    count("l1_reads", 1, ~skip)
                    vc = d.valid_cols - tw * C
                    ncols = Mux(d.packed, d.valid_cols, Mux(vc > C, C, vc))[:16]
                    pix = d.pix0 + row_idx
                    m.d.sync += [
                        h_valid.eq(~skip), h_piece.eq(0), h_bytes.eq(ncols * eb),
                        h_addr.eq((d.dst + pix * d.pix_stride + tw * C * eb)[:32]),
                    ]
                    m.d.sync += r.eq(r + rest)
                    with m.If(r + rest >= R):
                        m.d.sync += [r.eq(0), tw.eq(tw + 1)]
                        with m.If(tw + 1 >= n_tiles):
                            m.d.sync += [tw.eq(0), ta.eq(ta + 1)]
                            with m.If(ta + 1 >= d.m):
                                # The last row: take the next descriptor at once when it is there.
                                m.d.sync += [all_issued.eq(1), self.writer_done.eq(self.writer_done + 1)]
                                with m.If(q.r_rdy):
                                    load(q.r_data[:WriteDesc.as_shape().size])
                with m.Elif(~cb_out.can_wait):
                    count("writer_wait_cb")
        return ((state == EngineState.IDLE) | (state == EngineState.DONE)) & ~h_valid


class ExtMemoryTop(wiring.Component):
    """A unit with an external-memory port (:func:`ext_port_signature`) joined to its
    :class:`~tilelab.hdl.memories.ExtMemory`: what is simulated. Base of :class:`TileTop` and
    :class:`~tilelab.pe_models.eltwise.EltwiseTop`.

    Parameters
    ----------
    config
        The unit's configuration; its ``ext_bytes``, ``ext_words`` and ``mem_impl`` size and select
        the memory model.
    unit : wiring.Component
        Has ``start``, ``done`` and an ``ext`` port; every other port is passed through.
    init : sequence of int, optional
        Initial external-memory words (Amaranth model only; the Verilog model loads the file
        given by the ``+extmem_init=FILE`` plusarg).
    name : str
        Submodule name of the unit.

    Members
    -------
    start, done, and every other port of the unit
    ext_dump : In(1)
        Verilog model: a cycle with it high writes the memory to ``+extmem_dump=FILE``.
    ext_load : In(1)
        Verilog model: a cycle with it high clears the memory and loads ``+extmem_init=FILE``
        again, so one simulation can run several programs.
    """

    _OWN = ("start", "done", "ext_dump", "ext_load")

    def __init__(self, config, unit, *, init=None, name="unit"):
        self.config = config
        self._init = init
        self._unit, self._name = unit, name
        self.ext_memory = None
        members = {"start": In(1), "done": Out(1), "ext_dump": In(1), "ext_load": In(1)}
        for port, member in unit.signature.members.items():
            if port not in ("start", "done", "ext"):
                members[port] = member
        super().__init__(members)

    @property
    def unit(self):
        """The wrapped unit (e.g. the :class:`ComputeTile`), for testbenches that look inside it."""
        return self._unit

    @property
    def sim_memories(self):
        """Memories a testbench may dump (Amaranth model): ``{"extmem": MemoryData}``."""
        ext = self.ext_memory
        return {"extmem": ext.data} if ext is not None and ext.data is not None else {}

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        unit = self._unit
        m.submodules[self._name] = unit
        m.submodules.ext = ext = ExtMemory(width_bytes=cfg.ext_bytes, depth=cfg.ext_words, impl=cfg.mem_impl,
                                           name="extmem", init=self._init)
        self.ext_memory = ext
        p = unit.ext
        m.d.comb += [
            ext.ra_en.eq(p.ra_en), ext.ra_addr.eq(p.ra_addr), p.ra_data.eq(ext.ra_data),
            ext.rb_en.eq(p.rb_en), ext.rb_addr.eq(p.rb_addr), p.rb_data.eq(ext.rb_data),
            ext.wr_en.eq(p.wr_en), ext.wr_addr.eq(p.wr_addr), ext.wr_data.eq(p.wr_data), ext.wr_mask.eq(p.wr_mask),
            ext.dump.eq(self.ext_dump), ext.load.eq(self.ext_load),
            unit.start.eq(self.start), self.done.eq(unit.done),
        ]
        for port in self.signature.members:
            if port not in self._OWN:
                m.d.comb += getattr(self, port).eq(getattr(unit, port))
        return m


class TileTop(ExtMemoryTop):
    """A compute tile joined to its external memory (see :class:`ExtMemoryTop`).

    Parameters
    ----------
    config : TileConfig
        The tile configuration (its ``mem_impl`` also selects the external memory model).
    init : sequence of int, optional
        Initial external-memory words (Amaranth model only).
    """

    def __init__(self, config: TileConfig, *, init=None):
        super().__init__(config, ComputeTile(config), init=init, name="tile")
