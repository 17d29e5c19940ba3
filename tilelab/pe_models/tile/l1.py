"""The tile's L1: lane banks, the output buffer, and the four circular buffers' counters."""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from tilelab.hdl.cbuf import CircularBufferController, cb_consumer_signature, cb_producer_signature
from tilelab.hdl.memories import SRAM, sram_read_signature, sram_write_signature

from ..config import TileConfig

__all__ = ["L1", "CB_NAMES", "cb_pages", "lane_read_signature", "lane_write_signature", "out_read_signature",
           "out_write_signature"]

#: The tile's circular buffers: activations, weights, parameters (filled by the reader, read by
#: compute) and the output buffer (filled by pack, read by the writer).
CB_NAMES = ("act", "wgt", "par", "out")


def cb_pages(config: TileConfig) -> dict:
    """Pages of each circular buffer: the activation CB counts W-byte words of its lane bank (one
    ring; a dense page is half of it), the weight and parameter CBs have two pages, the output CB
    one page per entry."""
    pages = (config.act_lane_bytes // config.ext_bytes, 2, 2, config.out_entries)
    return dict(zip(CB_NAMES, pages, strict=True))


def _lane_words(config, name):
    lane_bytes = {"act": config.act_lane_bytes, "wgt": config.wgt_lane_bytes, "par": config.param_lane_bytes}
    return lane_bytes[name] // config.ext_bytes


def _addr_width(depth):
    return max(1, (depth - 1).bit_length())


def lane_read_signature(config: TileConfig, name: str) -> wiring.Signature:
    """Read port of one lane bank of ``name`` (``"act"``, ``"wgt"`` or ``"par"``): W-byte words."""
    return sram_read_signature(addr_width=_addr_width(_lane_words(config, name)), width_bytes=config.ext_bytes)


def lane_write_signature(config: TileConfig, name: str) -> wiring.Signature:
    """Write port of one lane bank of ``name``."""
    return sram_write_signature(addr_width=_addr_width(_lane_words(config, name)), width_bytes=config.ext_bytes)


def out_read_signature(config: TileConfig) -> wiring.Signature:
    """Read port of one output-buffer bank: one entry (C int32 values) per word."""
    depth = config.out_entries // config.out_banks
    return sram_read_signature(addr_width=_addr_width(depth), width_bytes=config.out_entry_bytes)


def out_write_signature(config: TileConfig) -> wiring.Signature:
    """Write port of one output-buffer bank."""
    depth = config.out_entries // config.out_banks
    return sram_write_signature(addr_width=_addr_width(depth), width_bytes=config.out_entry_bytes)


class L1(wiring.Component):
    """The tile's L1: R activation, C weight and C parameter lane banks of W-byte words, the output
    buffer (``config.out_banks`` banks, entry ``e`` in bank ``e % banks`` at word ``e // banks``),
    and the counters of the four circular buffers (:data:`CB_NAMES`).

    Every bank has one read port and one write port (:class:`~tilelab.hdl.memories.SRAM`: one
    cycle of read latency, read-before-write), each used by one engine; the banks are not
    arbitrated.

    Parameters
    ----------
    config : TileConfig
        The tile's configuration.

    Members
    -------
    act_read, act_write : In(lane_read_signature / lane_write_signature).array(rows)
        The activation lanes' ports.
    wgt_read, wgt_write, par_read, par_write : In(...).array(cols)
        The weight and parameter lanes' ports.
    out_read, out_write : In(out_read_signature / out_write_signature).array(out_banks)
        The output buffer's banks.
    <cb>_producer, <cb>_consumer : In(cb_producer_signature / cb_consumer_signature)
        The circular buffers' producer and consumer sides, for each name in :data:`CB_NAMES`.
    <cb>_occupancy : Out(range(pages + 1))
        Pages (words for ``act``) pushed and not yet popped.
    """

    def __init__(self, config: TileConfig):
        if not isinstance(config, TileConfig):
            raise TypeError(f"config must be a TileConfig, not {config!r}")
        self.config = config
        cfg = config
        counts = {"act": cfg.rows, "wgt": cfg.cols, "par": cfg.cols}
        members = {}
        for name, n in counts.items():
            members[f"{name}_read"] = In(lane_read_signature(cfg, name)).array(n)
            members[f"{name}_write"] = In(lane_write_signature(cfg, name)).array(n)
        members["out_read"] = In(out_read_signature(cfg)).array(cfg.out_banks)
        members["out_write"] = In(out_write_signature(cfg)).array(cfg.out_banks)
        for name, pages in cb_pages(cfg).items():
            members[f"{name}_producer"] = In(cb_producer_signature(pages))
            members[f"{name}_consumer"] = In(cb_consumer_signature(pages))
            members[f"{name}_occupancy"] = Out(range(pages + 1))
        super().__init__(members)
        self._lanes = {name: [SRAM(width_bytes=cfg.ext_bytes, depth=_lane_words(cfg, name), impl=cfg.mem_impl)
                              for _ in range(n)] for name, n in counts.items()}
        self._out = [SRAM(width_bytes=cfg.out_entry_bytes, depth=cfg.out_entries // cfg.out_banks,
                          impl=cfg.mem_impl) for _ in range(cfg.out_banks)]
        self._cbs = {name: CircularBufferController(pages=pages) for name, pages in cb_pages(cfg).items()}

    @property
    def banks(self):
        """Every bank (:class:`~tilelab.hdl.memories.SRAM`): activation, weight, parameter lanes,
        then the output buffer's banks, for testbenches that watch them."""
        return [*self._lanes["act"], *self._lanes["wgt"], *self._lanes["par"], *self._out]

    def elaborate(self, platform):
        m = Module()
        for name, banks in self._lanes.items():
            for i, bank in enumerate(banks):
                m.submodules[f"{name}{i}"] = bank
                wiring.connect(m, wiring.flipped(getattr(self, f"{name}_read")[i]), bank.read_port)
                wiring.connect(m, wiring.flipped(getattr(self, f"{name}_write")[i]), bank.write_port)
        for b, bank in enumerate(self._out):
            m.submodules[f"outbuf{b}"] = bank
            wiring.connect(m, wiring.flipped(self.out_read[b]), bank.read_port)
            wiring.connect(m, wiring.flipped(self.out_write[b]), bank.write_port)
        for name, cb in self._cbs.items():
            m.submodules[f"cb_{name}"] = cb
            wiring.connect(m, wiring.flipped(getattr(self, f"{name}_producer")), cb.producer)
            wiring.connect(m, wiring.flipped(getattr(self, f"{name}_consumer")), cb.consumer)
            m.d.comb += [cb.cfg_en.eq(0), cb.cfg_pages.eq(0), getattr(self, f"{name}_occupancy").eq(cb.occupancy)]
        return m
