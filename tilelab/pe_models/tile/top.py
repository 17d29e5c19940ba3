"""The compute tile: its engines and L1 joined, the hardware counters, the simulation top."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from tilelab.hdl.formats.tile import READ_GANG, TILE_COUNTERS, EngineState
from tilelab.hdl.mac import MACArray

from ..config import TileConfig
from .compute import Compute, array_options
from .ext import ExtMemoryTop, ext_port_signature
from .fetcher import CommandFetcher
from .l1 import L1
from .pack import Pack
from .reader import Reader
from .writer import Writer

__all__ = ["ComputeTile", "TileTop"]



def _event_names(events):
    return [name for name, _ in data.Layout.cast(events.shape())]


class ComputeTile(wiring.Component):
    """One compute tile (see :mod:`tilelab.pe_models.tile`).

    The engines are components of their own, joined here: the command fetcher's descriptor queues
    (streams of :class:`~tilelab.hdl.formats.tile.ReadDesc`, ``ComputeDesc``, ``WriteDesc``) feed
    the reader, compute and writer engines; the reader fills and compute reads the L1 lanes through
    their banks' ports and synchronises through the circular buffers' producer and consumer ports;
    compute streams reduction steps into the :class:`~tilelab.hdl.mac.MACArray` and pack jobs to
    pack, which takes the array's rows into the output buffer, which the writer stores. External
    read port a is the reader's, port b the fetcher's while it fetches and the reader's otherwise,
    the write port the writer's.

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
        self._l1 = L1(config)

    @property
    def l1_banks(self):
        """Every L1 bank (lane banks, then output buffers), for testbenches."""
        return self._l1.banks

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        ext = self.ext

        started = Signal()
        with m.If(self.start):
            m.d.sync += started.eq(1)

        m.submodules.l1 = l1 = self._l1
        m.submodules.fetcher = fetcher = CommandFetcher(cfg)
        m.submodules.reader = reader = Reader(cfg)
        m.submodules.compute = compute = Compute(cfg)
        m.submodules.array = array = MACArray(rows=cfg.rows, cols=cfg.cols, **array_options(cfg))
        m.submodules.pack = pack = Pack(cfg)
        m.submodules.writer = writer = Writer(cfg)

        # Descriptor queues, L1 ports and circular buffers, the math.
        wiring.connect(m, fetcher.reader, reader.descs)
        wiring.connect(m, fetcher.compute, compute.descs)
        wiring.connect(m, fetcher.writer, writer.descs)
        for name in ("act", "wgt", "par"):
            for port, bank in zip(getattr(reader, name), getattr(l1, f"{name}_write"), strict=True):
                wiring.connect(m, port, bank)
            for port, bank in zip(getattr(compute, name), getattr(l1, f"{name}_read"), strict=True):
                wiring.connect(m, port, bank)
            wiring.connect(m, getattr(reader, f"{name}_cb"), getattr(l1, f"{name}_producer"))
            wiring.connect(m, getattr(compute, f"{name}_cb"), getattr(l1, f"{name}_consumer"))
        for port, bank in zip(pack.out, l1.out_write, strict=True):
            wiring.connect(m, port, bank)
        for port, bank in zip(writer.out, l1.out_read, strict=True):
            wiring.connect(m, port, bank)
        wiring.connect(m, pack.out_cb, l1.out_producer)
        wiring.connect(m, writer.out_cb, l1.out_consumer)
        wiring.connect(m, compute.o, array.i)
        wiring.connect(m, array.o, pack.acc)
        wiring.connect(m, compute.tile, pack.tile)

        # External ports: a is the reader's; b the fetcher's while it fetches, else the reader's.
        m.d.comb += [
            fetcher.run.eq(started),
            ext.ra_en.eq(reader.ra.en), ext.ra_addr.eq(reader.ra.addr), reader.ra.data.eq(ext.ra_data),
            reader.rb_free.eq(~fetcher.rb_busy),
            ext.rb_en.eq(fetcher.rb.en | reader.rb.en),
            ext.rb_addr.eq(Mux(fetcher.rb_busy, fetcher.rb.addr, reader.rb.addr)),
            fetcher.rb.data.eq(ext.rb_data), reader.rb.data.eq(ext.rb_data),
            ext.wr_en.eq(writer.wr.en), ext.wr_addr.eq(writer.wr.addr), ext.wr_data.eq(writer.wr.data),
            ext.wr_mask.eq(writer.wr.mask),
        ]

        # Status for the watchdog.
        m.d.comb += [
            self.reader_state.eq(reader.state), self.compute_state.eq(compute.state),
            self.writer_state.eq(writer.state),
            self.reader_done.eq(reader.done_count), self.compute_done.eq(compute.done_count),
            self.writer_done.eq(writer.done_count),
            self.act_words.eq(l1.act_occupancy), self.wgt_pages.eq(l1.wgt_occupancy),
            self.param_pages.eq(l1.par_occupancy), self.out_entries.eq(l1.out_occupancy),
        ]

        # Counters: each one the sum of its engines' count events, one statement per counter.
        with m.If(started & ~self.done):
            m.d.sync += self.cycles.eq(self.cycles + 1)
        sources = {name: [] for name in TILE_COUNTERS}
        for engine in (fetcher, reader, compute, pack, writer):
            for name in _event_names(engine.events):
                sources[name].append(engine.events[name])
        for name, amounts in sources.items():
            if name != "cycles":
                assert amounts, name
                counter = getattr(self, name)
                m.d.sync += counter.eq(counter + sum(amounts))

        with m.If(started & fetcher.done & reader.idle & compute.idle & ~array.busy & writer.idle):
            m.d.sync += self.done.eq(1)
        return m


class TileTop(ExtMemoryTop):
    """A compute tile joined to its external memory (see :class:`~tilelab.pe_models.tile.ExtMemoryTop`).

    Parameters
    ----------
    config : TileConfig
        The tile configuration (its ``mem_impl`` also selects the external memory model).
    init : sequence of int, optional
        Initial external-memory words (Amaranth model only).
    """

    def __init__(self, config: TileConfig, *, init=None):
        super().__init__(config, ComputeTile(config), init=init, name="tile")
