"""Nested-loop affine address generator (the engines' im2col / tile walker).

Bit formats and the reference model live in :mod:`tilelab.hdl.formats.addrgen`.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .formats.addrgen import MAX_LOOPS, AddrGenFormat

__all__ = ["AffineAddressGenerator"]


class AffineAddressGenerator(wiring.Component):
    """Expand nested-loop descriptors into a stream of addresses, one per cycle.

    A descriptor (:attr:`AddrGenFormat.descriptor_layout`) arriving on ``desc`` is expanded into
    ``prod(count)`` outputs (:attr:`AddrGenFormat.output_layout`) on ``o``, loop 0 innermost:
    ``addr = base + sum(idx[k] * stride[k])`` modulo ``2**addr_width``, the loop indices ``idx``,
    ``loop_last`` (bit ``k``: loops ``0..k`` are all at their final index, i.e. this address ends
    a pass of loop ``k``; bit 0 marks the end of a row) and ``last`` (the descriptor's final
    address, also ``loop_last[loops-1]``; a field named ``last`` so the stream can feed a
    packet-mode :class:`~tilelab.hdl.streams.RoundRobinArbiter`).

    Throughput and latency: the first output is valid in the cycle after the descriptor transfer;
    then one output per cycle while ``o.ready`` is high, with no bubble between back-to-back
    descriptors (the next descriptor is accepted in the cycle the previous one's last output
    transfers). ``o.valid`` and the payload come from registers. No multipliers: each loop keeps
    its running start address and a step is one add. A count of 0 behaves as 1.

    Parameters
    ----------
    addr_width : int
        Address width, 1 to 64.
    loops : int
        Number of loops, 1 to 6.
    count_width : int
        Width of each loop count and index, 1 to 32.
    stride_width : int, optional
        Width of each signed stride, 2 to 65; default ``addr_width + 1``.

    Members
    -------
    desc : In(stream.Signature(format.descriptor_layout))
        Descriptors.
    o : Out(stream.Signature(format.output_layout))
        Generated addresses.
    busy : Out(1)
        A descriptor is being expanded.

    Attributes
    ----------
    format : AddrGenFormat
        The bit formats of this instance (also the host's packer).
    """

    def __init__(self, *, addr_width, loops=MAX_LOOPS, count_width=16, stride_width=None):
        self.format = AddrGenFormat(addr_width=addr_width, loops=loops, count_width=count_width,
                                    stride_width=stride_width)
        super().__init__({
            "desc": In(stream.Signature(self.format.descriptor_layout)),
            "o": Out(stream.Signature(self.format.output_layout)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        fmt = self.format
        nloops = fmt.loops
        desc = Signal(fmt.descriptor_layout)          # the descriptor being expanded
        start = [Signal(fmt.addr_width, name=f"start{k}") for k in range(nloops)]
        idx = [Signal(fmt.count_width, name=f"idx{k}") for k in range(nloops)]
        active = self.busy

        # at_end[k]: loop k is at its final index (count 0 counts as 1).
        at_end = Signal(nloops)
        for k in range(nloops):
            m.d.comb += at_end[k].eq(idx[k] + 1 >= desc.count[k])
        # loop_last[k]: loops 0..k are all at their final index.
        loop_last = Signal(nloops)
        m.d.comb += loop_last.eq(Cat(at_end[:k + 1].all() for k in range(nloops)))
        last = loop_last[nloops - 1]

        m.d.comb += [
            self.o.valid.eq(active),
            self.o.payload.addr.eq(start[0]),
            self.o.payload.idx.eq(Cat(idx)),
            self.o.payload.loop_last.eq(loop_last),
            self.o.payload.last.eq(last),
        ]
        next_start = [Signal(fmt.addr_width, name=f"next_start{k}") for k in range(nloops)]
        m.d.comb += [next_start[k].eq(start[k] + desc.stride[k]) for k in range(nloops)]
        step = self.o.valid & self.o.ready
        m.d.comb += self.desc.ready.eq(~active | (step & last))

        with m.If(self.desc.valid & self.desc.ready):
            m.d.sync += [desc.eq(self.desc.payload), active.eq(1)]
            m.d.sync += [s.eq(self.desc.payload.base) for s in start]
            m.d.sync += [i.eq(0) for i in idx]
        with m.Elif(step & last):
            m.d.sync += active.eq(0)
        with m.Elif(step):
            # Exactly one loop k advances: the innermost one not at its end. Loops inside it
            # restart at index 0 from loop k's new start address.
            for k in range(nloops):
                carry_in = loop_last[k - 1] if k else 1
                with m.If(carry_in & ~at_end[k]):
                    m.d.sync += [s.eq(next_start[k]) for s in start[:k + 1]]
                    m.d.sync += idx[k].eq(idx[k] + 1)
                    m.d.sync += [i.eq(0) for i in idx[:k]]
        return m

