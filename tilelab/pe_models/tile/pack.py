"""The pack stage: bias, requantization and ReLU of the MAC array's rows, into the output CB."""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from tilelab.hdl.cbuf import cb_producer_signature
from tilelab.hdl.formats.tile import PACK_SLOTS, PackEvents, pack_job_layout
from tilelab.hdl.fpscale import FloatScaleRound

from ..config import TileConfig
from .compute import array_layouts
from .events import EventPort
from .l1 import out_write_signature

__all__ = ["Pack"]


class Pack(wiring.Component):
    """Turns the MAC array's finished rows into output-CB entries.

    Each transfer on ``acc`` is ``config.out_banks`` rows of one tile; the tile's job (``tile``,
    one per tile, taken with its last rows) holds the channels' parameter records and the output
    format. Pack adds the bias (int32 wrap, as the accumulator), requantizes per channel (the
    numerics contract in the README: the integer ``(M, s)`` requantization, or, on a tile built
    with ``config.float_requant``, with the job's ``float_requant`` onnxruntime's float32 one,
    :class:`~tilelab.hdl.fpscale.FloatScaleRound` with the scale's float32 bits in the record's
    ``multiplier``), applies ReLU and writes int8
    (or int32) rows: a tile that
    pushes writes its rows to the next free entries; an earlier tile of a packed group writes row
    ``r`` to the ``r``-th free entry, in byte slot ``slot``. It holds a row while the output CB has
    no room.

    Parameters
    ----------
    config : TileConfig
        The tile's configuration.

    Members
    -------
    acc : In(stream.Signature(array_layouts(config)[1]))
        The MAC array's output rows.
    tile : In(stream.Signature(pack_job_layout(config.cols)))
        One job per tile.
    out_cb : Out(cb_producer_signature(config.out_entries))
        Producer side of the output CB.
    out : Out(out_write_signature(config)).array(config.out_banks)
        Write ports of the output buffer's banks.
    events : Out(PackEvents)
        Count events.
    """

    def __init__(self, config: TileConfig):
        if not isinstance(config, TileConfig):
            raise TypeError(f"config must be a TileConfig, not {config!r}")
        self.config = config
        super().__init__({
            "acc": In(stream.Signature(array_layouts(config)[1])),
            "tile": In(stream.Signature(pack_job_layout(config.cols))),
            "out_cb": Out(cb_producer_signature(config.out_entries)),
            "out": Out(out_write_signature(config)).array(config.out_banks),
            "events": Out(PackEvents),
        })

    def elaborate(self, platform):
        m = Module()
        C = self.config.cols
        E = self.config.out_entries
        D = self.config.out_banks
        acc, cb_out = self.acc, self.out_cb
        events = EventPort(m, self.events)
        info = self.tile.payload
        index = acc.payload.index
        rows = [acc.payload.row] + ([acc.payload.row1] if D == 2 else [])
        # A tile that pushes writes its D rows to the next free entries; an earlier tile of a
        # packed group writes row r to the r-th free entry (pushed later, by the group's last tile).
        entry = Signal(range(2 * E))
        m.d.comb += entry.eq(cb_out.wr_page + Mux(info.push, 0, index))
        m.d.comb += [cb_out.reserve_n.eq(Mux(info.push, D, index + D)), cb_out.push_n.eq(D)]
        # Split-K tiles (G = 2**split row groups, G ≥ D): the G rows of a pixel arrive one after
        # another (D a transfer); pack adds them up and writes the pixel's one entry with its last.
        split_on = Signal()
        writes = Signal()           # this transfer writes entries
        m.d.comb += writes.eq(1)
        if self.config.row_groups > 1:
            g_mask = Signal(range(self.config.row_groups))
            m.d.comb += [split_on.eq(info.split != 0), g_mask.eq((1 << info.split) - 1)]
            pix_first = (index & g_mask) == 0
            with m.If(split_on):
                m.d.comb += [writes.eq(((index + D) & g_mask) == 0), cb_out.reserve_n.eq(1), cb_out.push_n.eq(1)]
        ok = self.tile.valid & (cb_out.can_reserve | ~writes)
        m.d.comb += acc.ready.eq(ok)
        with m.If(acc.valid & self.tile.valid & writes & ~cb_out.can_reserve):
            events("pack_wait_cb")
        fire = acc.valid & ok
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
                acc_c = row[c]
                if i == 0 and self.config.row_groups > 1:
                    # the pixel's sum so far: this transfer's rows, plus the ones before (int32 wrap)
                    part = Signal(signed(32), name=f"pack_part{c}")
                    total = Signal(signed(32), name=f"pack_sum{c}")
                    pair = row[c] + rows[1][c] if D == 2 else row[c]
                    m.d.comb += total.eq(pair + Mux(pix_first, 0, part))
                    with m.If(fire):
                        m.d.sync += part.eq(total)
                    acc_c = Mux(split_on, total, row[c])
                m.d.comb += v.eq(acc_c + p.bias)                      # int32 wrap, as the accumulator
                x = Signal(signed(64), name=f"pack_x{i}_{c}")
                m.d.comb += x.eq(v * p.multiplier)
                sm1 = Signal(6, name=f"pack_sm1_{i}_{c}")
                m.d.comb += sm1.eq(p.shift[:6] - 1)
                q = Signal(signed(64), name=f"pack_q{i}_{c}")
                m.d.comb += q.eq(x >> sm1)
                rounded = Signal(signed(64), name=f"pack_rnd{i}_{c}")
                m.d.comb += rounded.eq((q >> 1)[:63].as_signed() + q[0])
                scaled = rounded[:63].as_signed()
                if self.config.float_requant:
                    fs = m.submodules[f"pack_fscale{i}_{c}"] = FloatScaleRound(16)
                    m.d.comb += [fs.value.eq(v), fs.scale.eq(p.multiplier.as_unsigned())]
                    scaled = Mux(info.float_requant, fs.result, scaled)
                t = Signal(signed(64), name=f"pack_t{i}_{c}")
                m.d.comb += t.eq(scaled + info.zero_point)
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
        # (a split-K transfer writes one entry, its first row's)
        for b, bank in enumerate(self.out):
            m.d.comb += [bank.en.eq(fire & writes & (~split_on | (entries[0] % D == b))), bank.mask.eq(mask)]
            for i in range(D):
                with m.If((entries[i] % D == b) & (~split_on if i else 1)):
                    m.d.comb += [bank.addr.eq(entries[i] // D), bank.data.eq(words[i])]
        m.d.comb += [
            cb_out.push.eq(fire & writes & info.push),
            self.tile.ready.eq(fire & acc.payload.last),
        ]
        events("l1_writes", Mux(split_on, 1, D), fire & writes)
        events.drive()
        return m
