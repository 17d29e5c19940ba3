"""The writer engine: stores output rows from the output CB to external memory in NHWC order."""

from amaranth.hdl import Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from tilelab.hdl.cbuf import cb_consumer_signature
from tilelab.hdl.formats.tile import PACK_SLOTS, EngineState, WriteDesc, WriterEvents

from ..config import TileConfig
from .events import EventPort
from .ext import ext_write_signature
from .l1 import out_read_signature

__all__ = ["Writer"]


class Writer(wiring.Component):
    """Runs :class:`~tilelab.hdl.formats.tile.WriteDesc` descriptors: for each output-CB entry of
    a block, one read of the output buffer and the entry's real bytes to external memory in W-byte
    pieces, one a cycle (the next entry is read in the cycle of its last piece). A tile has an
    entry per real row (rounded up to the output banks' D rows a transfer; split-K: per real
    pixel); a padding entry past ``valid_rows`` is popped in one cycle.

    Parameters
    ----------
    config : TileConfig
        The tile's configuration.

    Members
    -------
    descs : In(stream.Signature(WriteDesc))
        Descriptors.
    out_cb : Out(cb_consumer_signature(config.out_entries))
        Consumer side of the output CB.
    out : Out(out_read_signature(config)).array(config.out_banks)
        Read ports of the output buffer's banks.
    wr : Out(ext_write_signature(config.ext_bytes))
        The external-memory write port.
    events : Out(WriterEvents)
        Count events.
    state : Out(EngineState)
        What the engine is doing.
    done_count : Out(32)
        Descriptors finished.
    idle : Out(1)
        No descriptor in progress and no write pending.
    """

    def __init__(self, config: TileConfig):
        if not isinstance(config, TileConfig):
            raise TypeError(f"config must be a TileConfig, not {config!r}")
        self.config = config
        super().__init__({
            "descs": In(stream.Signature(WriteDesc)),
            "out_cb": Out(cb_consumer_signature(config.out_entries)),
            "out": Out(out_read_signature(config)).array(config.out_banks),
            "wr": Out(ext_write_signature(config.ext_bytes)),
            "events": Out(WriterEvents), "state": Out(EngineState), "done_count": Out(32), "idle": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        R, C, W = cfg.rows, cfg.cols, cfg.ext_bytes
        q, cb_out, wr, outbuf = self.descs, self.out_cb, self.wr, self.out
        events = EventPort(m, self.events)
        d = Signal(WriteDesc)
        state = Signal(EngineState)
        m.d.comb += self.state.eq(state)
        ta = Signal(8)
        tw = Signal(8)
        r = Signal(range(R + 1))
        # The row being written (read data stays on its bank's read port until the next read there).
        D = cfg.out_banks
        h_bank = Signal(range(D))
        rd_data = outbuf[0].data if D == 1 else Mux(h_bank, outbuf[1].data, outbuf[0].data)
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
                    wr.en.eq(1), wr.addr.eq(h_addr + h_piece * W),
                    wr.data.eq(rd_data.word_select(h_piece[:8], 8 * W) if 4 * C > W else rd_data),
                    wr.mask.eq(((Const(1, W + 1) << nbytes_piece) - 1)[:W]),
                ]
                events("ext_bytes_written", nbytes_piece)
                events("writer_busy")
            m.d.sync += h_piece.eq(h_piece + 1)
            with m.If(last_piece):
                m.d.sync += h_valid.eq(0)

        def load():
            m.d.comb += q.ready.eq(1)
            m.d.sync += [d.eq(q.payload), state.eq(EngineState.RUN), ta.eq(0), tw.eq(0), r.eq(0), all_issued.eq(0)]

        # Pixels of a tile (R, or R / G in the split-K mode) and the tile's entries: pack writes
        # only the real rows (the array drains only those), D a transfer, so an odd last row
        # leaves one padding entry, popped at once (split-K: one entry per real pixel).
        E = cfg.out_entries
        tile_rows = Signal(range(R + 1))
        m.d.comb += tile_rows.eq(R)
        for sp in range(1, exact_log2(cfg.row_groups) + 1):
            with m.If(d.split == sp):
                m.d.comb += tile_rows.eq(R >> sp)
        row_idx = ta * tile_rows + r
        vr = Signal(17)
        m.d.comb += vr.eq(d.valid_rows - ta * tile_rows)
        real = Mux(vr > tile_rows, tile_rows, vr)
        tile_ent = Signal(range(R + 2))
        m.d.comb += tile_ent.eq(real)
        if D == 2:
            m.d.comb += tile_ent.eq(Mux(d.split != 0, real, real + real[0]))
        skip = row_idx >= d.valid_rows
        # (a tile without real rows, which no program has, still waits for an entry: a stall the
        # watchdog names, not a block silently written short)
        left = Signal(range(R + 2))
        m.d.comb += left.eq(Mux(tile_ent > r, tile_ent - r, 1))
        rest = Signal(range(R + 2))
        m.d.comb += rest.eq(Mux(skip, left, 1))
        if E < R:
            m.d.comb += rest.eq(Mux(skip & (left > E), E, Mux(skip, left, 1)))
        m.d.comb += [cb_out.wait_n.eq(rest), cb_out.pop_n.eq(rest)]
        # packed: an entry holds a group of up to PACK_SLOTS weight tiles of a pixel
        n_tiles = Mux(d.packed, (d.n + PACK_SLOTS - 1) >> exact_log2(PACK_SLOTS), d.n)
        tile_cols = Mux(d.packed, PACK_SLOTS * C, C)

        with m.Switch(state):
            with m.Case(EngineState.IDLE, EngineState.DONE):
                with m.If(q.valid & last_piece):
                    load()
            with m.Case(EngineState.RUN):
                with m.If(all_issued):
                    with m.If(last_piece):
                        m.d.sync += state.eq(EngineState.DONE)
                with m.Elif(cb_out.can_wait & last_piece):
                    for b, bank in enumerate(outbuf):
                        m.d.comb += [bank.en.eq(~skip & (cb_out.rd_page % D == b)),
                                     bank.addr.eq(cb_out.rd_page // D)]
                    m.d.comb += cb_out.pop.eq(1)
                    m.d.sync += h_bank.eq(cb_out.rd_page % D)
                    events("l1_reads", 1, ~skip)
                    vc = d.valid_cols - tw * tile_cols
                    ncols = Mux(vc > tile_cols, tile_cols, vc)[:16]
                    pix = d.pix0 + row_idx
                    m.d.sync += [
                        h_valid.eq(~skip), h_piece.eq(0), h_bytes.eq(ncols * eb),
                        h_addr.eq((d.dst + pix * d.pix_stride + tw * tile_cols * eb)[:32]),
                    ]
                    m.d.sync += r.eq(r + rest)
                    with m.If(r + rest >= tile_ent):
                        m.d.sync += [r.eq(0), tw.eq(tw + 1)]
                        with m.If(tw + 1 >= n_tiles):
                            m.d.sync += [tw.eq(0), ta.eq(ta + 1)]
                            with m.If(ta + 1 >= d.m):
                                # The last row: take the next descriptor at once when it is there.
                                m.d.sync += [all_issued.eq(1), self.done_count.eq(self.done_count + 1)]
                                with m.If(q.valid):
                                    load()
                with m.Elif(~cb_out.can_wait):
                    events("writer_wait_cb")
        m.d.comb += self.idle.eq(((state == EngineState.IDLE) | (state == EngineState.DONE)) & ~h_valid)
        events.drive()
        return m
