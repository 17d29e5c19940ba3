"""The command fetcher: reads the program header and the three descriptor streams into per-engine queues."""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from tilelab.hdl.formats.tile import (
    DESC_BITS,
    DESC_BYTES,
    ComputeDesc,
    FetcherEvents,
    ProgramHeader,
    ReadDesc,
    WriteDesc,
)
from tilelab.hdl.streams import StreamFIFO

from ..config import TileConfig
from .events import EventPort
from .ext import ext_read_signature

__all__ = ["CommandFetcher", "ENGINE_DESCS"]

#: The engines a tile program feeds, in the order of :class:`ProgramHeader`, with their descriptors.
ENGINE_DESCS = {"reader": ReadDesc, "compute": ComputeDesc, "writer": WriteDesc}


def _decode(layout, bits):
    """The ``layout`` view of the first bits of a descriptor slot."""
    return layout(bits[:data.Layout.cast(layout).size])


class CommandFetcher(wiring.Component):
    """Fetches a tile program from external memory into one 2-entry queue per engine.

    After ``run`` rises it reads the :class:`~tilelab.hdl.formats.tile.ProgramHeader` at byte 0,
    then, one :data:`~tilelab.hdl.formats.tile.DESC_BYTES` slot at a time in W-byte reads on
    external read port b, the descriptors of the engines with descriptors left and an empty queue,
    round robin. It takes port b only while it issues those reads (``rb_busy``); the reader may use
    the port in every other cycle.

    Parameters
    ----------
    config : TileConfig
        The tile's configuration.

    Members
    -------
    run : In(1)
        The tile has started (held high from the cycle after ``start``).
    rb : Out(ext_read_signature(config.ext_bytes))
        External read port b.
    rb_busy : Out(1)
        The fetcher drives ``rb`` in this cycle.
    reader, compute, writer : Out(stream.Signature(ReadDesc / ComputeDesc / WriteDesc))
        The engines' descriptor queues.
    events : Out(FetcherEvents)
        Count events.
    done : Out(1)
        The header and every descriptor have been fetched, and every queue is empty.
    """

    def __init__(self, config: TileConfig):
        if not isinstance(config, TileConfig):
            raise TypeError(f"config must be a TileConfig, not {config!r}")
        self.config = config
        members = {"run": In(1), "rb": Out(ext_read_signature(config.ext_bytes)), "rb_busy": Out(1)}
        for name, desc in ENGINE_DESCS.items():
            members[name] = Out(stream.Signature(desc))
        members.update({"events": Out(FetcherEvents), "done": Out(1)})
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        W = self.config.ext_bytes
        words = DESC_BYTES // W
        events = EventPort(m, self.events)
        queues = []
        for name, desc in ENGINE_DESCS.items():
            q = m.submodules[f"q_{name}"] = StreamFIFO(shape=desc, depth=2)
            wiring.connect(m, q.o, wiring.flipped(getattr(self, name)))
            queues.append((q, desc))
        n = len(queues)

        base = [Signal(32, name=f"fetch_base_{e}") for e in ENGINE_DESCS]
        left = [Signal(32, name=f"fetch_left_{e}") for e in ENGINE_DESCS]
        hdr_done = Signal()
        asm = Signal(DESC_BITS)
        issue_i = Signal(range(words + 1))
        recv_i = Signal(range(words + 1))
        cur = Signal(range(n))
        addr = Signal(32)
        busy = Signal()
        rr = Signal(range(n))

        # Issue W-byte reads of one descriptor slot; assemble as they return (1-cycle latency).
        inflight = Signal()
        m.d.sync += inflight.eq(0)
        m.d.comb += self.rb_busy.eq(busy & (issue_i < words))
        with m.If(self.rb_busy):
            m.d.comb += [self.rb.en.eq(1), self.rb.addr.eq(addr + issue_i * W)]
            m.d.sync += [issue_i.eq(issue_i + 1), inflight.eq(1)]
        with m.If(inflight):
            m.d.sync += [asm.eq(Cat(asm[8 * W:], self.rb.data)), recv_i.eq(recv_i + 1)]
            events("cmd_bytes_read", W)

        done_slot = busy & (recv_i == words)
        with m.If(done_slot):
            m.d.sync += [busy.eq(0), recv_i.eq(0), issue_i.eq(0)]
            with m.If(~hdr_done):
                m.d.sync += hdr_done.eq(1)
                view = _decode(ProgramHeader, asm)
                m.d.sync += [
                    base[0].eq(view.reader_base), left[0].eq(view.reader_count),
                    base[1].eq(view.compute_base), left[1].eq(view.compute_count),
                    base[2].eq(view.writer_base), left[2].eq(view.writer_count),
                ]
            with m.Else():
                for i, (q, desc) in enumerate(queues):
                    with m.If(cur == i):
                        m.d.comb += [q.i.valid.eq(1), q.i.payload.eq(_decode(desc, asm))]
                        m.d.sync += [base[i].eq(base[i] + DESC_BYTES), left[i].eq(left[i] - 1)]

        hdr_req = Signal()
        with m.If(self.run & ~hdr_req):
            m.d.sync += [hdr_req.eq(1), busy.eq(1), addr.eq(0)]
        with m.Elif(hdr_done & ~busy & ~done_slot):
            # Round robin over engines with descriptors left and an empty queue (a slot is only
            # fetched into an empty queue: its write is never refused).
            choice = Signal(range(n))
            found = Signal()
            for off in reversed(range(n)):
                idx = Signal(range(n), name=f"rr_idx{off}")
                m.d.comb += idx.eq(Mux(rr + off >= n, rr + off - n, rr + off))
                ok = Signal(name=f"rr_ok{off}")
                m.d.comb += ok.eq(0)
                for i, (q, _) in enumerate(queues):
                    with m.If(idx == i):
                        m.d.comb += ok.eq(left[i].any() & q.i.ready & (q.level == 0))
                with m.If(ok):
                    m.d.comb += [choice.eq(idx), found.eq(1)]
            with m.If(found):
                m.d.sync += [busy.eq(1), cur.eq(choice), rr.eq(Mux(choice == n - 1, 0, choice + 1))]
                for i in range(n):
                    with m.If(choice == i):
                        m.d.sync += addr.eq(base[i])
        fetched_all = hdr_done & ~busy & ~Cat(*(x.any() for x in left)).any()
        m.d.comb += self.done.eq(fetched_all & ~Cat(*(q.o.valid for q, _ in queues)).any())
        events.drive()
        return m
