"""On-chip SRAM: a simple dual-port bank and a banked, arbitrated L1 built from such banks.

:class:`SRAMBank` is one synchronous RAM macro: one read port and one write port per cycle, byte
(``granularity``) write enables, one cycle of read latency, read-before-write on an address
collision (a read in the cycle of a write to the same row returns the old data).

:class:`BankedMemory` is a shared, arbitrated memory for engines that must not care which bank a
word lives in. (The compute tile's L1, :class:`tilelab.pe_models.tile.l1.L1`, does not use it:
there every lane is a bank of its own, :class:`tilelab.hdl.memories.SRAM`, read by one engine and
written by one, without arbitration.) Words are interleaved over ``banks`` banks by the low-order
address bits (``bank = addr % banks``, ``row = addr // banks``), so a requester walking consecutive
words touches every bank in turn. It has a small set of *requester ports* rather than one port per
bank, each owned by one requester:

* ``read[k]``: a request stream of word addresses (``read[k].req``) and a response stream of data
  words (``read[k].rsp``), in request order. With ``rsp.ready`` high the data of a request accepted
  in cycle ``t`` is valid in cycle ``t + 1``, and one request per cycle is accepted. ``rsp`` obeys
  the stream rules and may be backpressured: a 1-entry holding register per port keeps the data,
  and ``req.ready`` drops until it is taken, so at most one response is outstanding per port.
* ``write[k]``: a stream of :func:`write_request_layout` (``addr``, ``data``, ``mask``); the row is
  written in the cycle of the transfer. A read request accepted in the next cycle or later sees the
  data; one accepted in the same cycle to the same word returns the old data.

Combinational paths, for the engines' own stream rules: ``read[k].req.ready`` depends on the
``req.valid``/``req.payload`` of every read port and on ``read[k].rsp.ready``; ``write[k].ready``
on every write port's ``valid``/``addr``. ``rsp.valid`` is a register; ``rsp.payload`` is the bank's
registered output through a multiplexer. Neither ``valid`` depends on any ``ready``.

Per bank there is one round-robin arbiter among the read ports and one among the write ports (a
bank reads and writes in the same cycle). Ports that address different banks proceed in parallel;
ports that collide on a bank take turns, and the loser sees ``req.ready`` low. Requesters need no
knowledge of banks or arbitration.
"""

from __future__ import annotations

from collections.abc import Sequence

from amaranth.hdl import Array, Cat, Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory, ReadPort, WritePort
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2, exact_log2

from tilelab.checks import check_int

from .streams import _index_shape, round_robin_select

__all__ = ["SRAMBank", "BankedMemory", "read_port_signature", "write_request_layout"]


def _check_init(init, *, width, depth):
    """Validate initial contents; return them as a tuple of ints."""
    if isinstance(init, (str, bytes)) or not isinstance(init, Sequence):
        raise TypeError(f"init must be a sequence of integers, not {init!r}")
    if len(init) > depth:
        raise ValueError(f"init has {len(init)!r} words, more than depth {depth!r}")
    for addr, word in enumerate(init):
        if not isinstance(word, int) or isinstance(word, bool):
            raise TypeError(f"init[{addr}] must be an integer, not {word!r}")
        if not 0 <= word < 1 << width:
            raise ValueError(f"init[{addr}] must be in the range 0 to {(1 << width) - 1}, not {word!r}")
    return tuple(init)


def _check_granularity(granularity, width):
    check_int("granularity", granularity, 1)
    if width % granularity:
        raise ValueError(f"granularity must divide width {width!r}, not {granularity!r}")
    return granularity


class SRAMBank(wiring.Component):
    """Simple dual-port synchronous SRAM (one read and one write per cycle).

    Built on :class:`amaranth.lib.memory.Memory`. The ports are Amaranth's own memory-port
    signatures, so a bank can be driven exactly like a ``Memory`` port.

    Parameters
    ----------
    width : int
        Word width in bits (at least 1).
    depth : int
        Number of words (at least 2).
    granularity : int
        Bits per write-enable lane; must divide ``width`` (``granularity == width``: one enable).
    init : sequence of int
        Initial contents from address 0 (unsigned words); the rest is zero.

    Members
    -------
    read : Out(ReadPort.Signature(addr_width=ceil_log2(depth), shape=unsigned(width)))
        ``addr`` and ``en`` in, ``data`` out one cycle after a cycle with ``en`` high; ``data``
        holds while ``en`` is low. Read-before-write on a collision.
    write : Out(WritePort.Signature(addr_width=ceil_log2(depth), shape=unsigned(width), \
granularity=granularity))
        ``addr``, ``data`` and ``en`` (one bit per ``granularity`` lane) in.
    """

    def __init__(self, *, width, depth, granularity=8, init=()):
        self._width = check_int("width", width, 1)
        self._depth = check_int("depth", depth, 2)
        self._granularity = _check_granularity(granularity, width)
        self._init = _check_init(init, width=width, depth=depth)
        addr_width = ceil_log2(depth)
        super().__init__({
            "read": Out(ReadPort.Signature(addr_width=addr_width, shape=unsigned(width))),
            "write": Out(WritePort.Signature(addr_width=addr_width, shape=unsigned(width),
                                             granularity=granularity)),
        })

    @property
    def width(self):
        """Word width in bits."""
        return self._width

    @property
    def depth(self):
        """Number of words."""
        return self._depth

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = Memory(shape=unsigned(self._width), depth=self._depth, init=self._init)
        write = mem.write_port(granularity=self._granularity)
        read = mem.read_port(domain="sync")
        m.d.comb += [
            write.addr.eq(self.write.addr),
            write.data.eq(self.write.data),
            write.en.eq(self.write.en),
            read.addr.eq(self.read.addr),
            read.en.eq(self.read.en),
            self.read.data.eq(read.data),
        ]
        return m


def read_port_signature(*, addr_width, data_width):
    """Signature of one :class:`BankedMemory` read port, as seen from the memory.

    Parameters
    ----------
    addr_width : int
        Word address width.
    data_width : int
        Word width.

    Returns
    -------
    wiring.Signature
        ``req: In(stream.Signature(unsigned(addr_width)))`` (word addresses) and
        ``rsp: Out(stream.Signature(unsigned(data_width)))`` (data, in request order). A requester
        declares ``Out(read_port_signature(...).flip())``.
    """
    return wiring.Signature({
        "req": In(stream.Signature(unsigned(addr_width))),
        "rsp": Out(stream.Signature(unsigned(data_width))),
    })


def write_request_layout(*, addr_width, data_width, granularity):
    """Payload layout of one :class:`BankedMemory` write request.

    Parameters
    ----------
    addr_width : int
        Word address width.
    data_width : int
        Word width.
    granularity : int
        Bits per mask lane.

    Returns
    -------
    data.StructLayout
        ``addr`` (word address), ``data`` and ``mask`` (bit ``k`` enables bits
        ``k*granularity`` up to ``(k+1)*granularity - 1`` of ``data``).
    """
    return data.StructLayout({
        "addr": unsigned(addr_width),
        "data": unsigned(data_width),
        "mask": unsigned(data_width // granularity),
    })


class BankedMemory(wiring.Component):
    """Banked L1 memory with arbitrated requester ports (see the module docstring).

    Parameters
    ----------
    width : int
        Word width in bits.
    depth : int
        Total number of words; a multiple of ``banks`` with at least 2 words per bank.
        Addresses at or above ``depth`` are not allowed (their effect is undefined).
    banks : int
        Number of banks, a power of two.
    granularity : int
        Bits per write-mask lane; must divide ``width``.
    read_ports : int
        Number of read requester ports (at least 1).
    write_ports : int
        Number of write requester ports (at least 1).
    init : sequence of int
        Initial contents from word address 0 (unsigned words); the rest is zero.

    Members
    -------
    read : Out(read_port_signature(addr_width, width)).array(read_ports)
        Read requester ports: ``read[k].req`` (address stream in), ``read[k].rsp`` (data stream
        out, 1 cycle after the request when not backpressured).
    write : In(stream.Signature(write_request_layout(...))).array(write_ports)
        Write requester ports.

    Attributes
    ----------
    addr_width : int
        ``ceil(log2(depth))``.
    read_latency : int
        Cycles from a request transfer to its response becoming valid: 1.
    """

    read_latency = 1

    def __init__(self, *, width, depth, banks, granularity=8, read_ports=3, write_ports=2, init=()):
        self._width = check_int("width", width, 1)
        check_int("banks", banks, 1)
        if banks & (banks - 1):
            raise ValueError(f"banks must be a power of two, not {banks!r}")
        self._banks = banks
        check_int("depth", depth, 2 * banks)
        if depth % banks:
            raise ValueError(f"depth must be a multiple of banks {banks!r}, not {depth!r}")
        self._depth = depth
        self._granularity = _check_granularity(granularity, width)
        self._read_ports = check_int("read_ports", read_ports, 1)
        self._write_ports = check_int("write_ports", write_ports, 1)
        self._init = _check_init(init, width=width, depth=depth)
        self.addr_width = ceil_log2(depth)
        self.write_layout = write_request_layout(addr_width=self.addr_width, data_width=width,
                                                 granularity=granularity)
        super().__init__({
            "read": Out(read_port_signature(addr_width=self.addr_width, data_width=width))
            .array(read_ports),
            "write": In(stream.Signature(self.write_layout)).array(write_ports),
        })

    @property
    def banks(self):
        """Number of banks."""
        return self._banks

    @property
    def depth(self):
        """Total number of words."""
        return self._depth

    def elaborate(self, platform):
        m = Module()
        nbanks = self._banks
        bank_bits = exact_log2(nbanks)
        rows = self._depth // nbanks
        bank_mods = []
        for b in range(nbanks):
            bank = SRAMBank(width=self._width, depth=rows, granularity=self._granularity,
                            init=self._init[b::nbanks])
            m.submodules[f"bank{b}"] = bank
            bank_mods.append(bank)
        bank_rdata = Array(bank.read.data for bank in bank_mods)

        def split(addr):
            return addr[:bank_bits], addr[bank_bits:]

        # ---- reads
        nread = self._read_ports
        pend = Signal(nread)                     # a bank presents this port's data in this cycle
        hold = Signal(nread)                     # this port's data waits in its holding register
        pend_bank = [Signal(_index_shape(nbanks), name=f"pend_bank{p}") for p in range(nread)]
        hold_data = [Signal(self._width, name=f"hold_data{p}") for p in range(nread)]
        can_issue = Signal(nread)
        for p, port in enumerate(self.read):
            bank_data = bank_rdata[pend_bank[p]]
            m.d.comb += port.rsp.valid.eq(pend[p] | hold[p])
            with m.If(hold[p]):
                m.d.comb += port.rsp.payload.eq(hold_data[p])
            with m.Else():
                m.d.comb += port.rsp.payload.eq(bank_data)
            # At most one response per port is in flight: issue only if the slot empties now.
            m.d.comb += can_issue[p].eq(~(pend[p] | hold[p]) | port.rsp.ready)
            with m.If(pend[p] & ~port.rsp.ready):
                # The bank shows the data only in this cycle; keep it until the requester takes it.
                m.d.sync += [hold[p].eq(1), hold_data[p].eq(bank_data)]
            with m.Elif(port.rsp.ready):
                m.d.sync += hold[p].eq(0)
            m.d.sync += pend[p].eq(port.req.valid & port.req.ready)
            with m.If(port.req.valid & port.req.ready):
                m.d.sync += pend_bank[p].eq(split(port.req.payload)[0])

        read_grants = [[] for _ in range(nread)]
        for b, bank in enumerate(bank_mods):
            wants = [port.req.valid & can_issue[p] & (split(port.req.payload)[0] == b)
                     for p, port in enumerate(self.read)]
            last = Signal(_index_shape(nread), init=nread - 1, name=f"rd_last{b}")
            found, pick = round_robin_select(m, wants, last)
            m.d.comb += bank.read.en.eq(found)
            with m.Switch(pick):
                for p, port in enumerate(self.read):
                    with m.Case(p):
                        m.d.comb += bank.read.addr.eq(split(port.req.payload)[1])
            for p in range(nread):
                read_grants[p].append(wants[p] & (pick == p))
            with m.If(found):
                m.d.sync += last.eq(pick)
        for p, port in enumerate(self.read):
            m.d.comb += port.req.ready.eq(Cat(read_grants[p]).any())

        # ---- writes
        nwrite = self._write_ports
        write_grants = [[] for _ in range(nwrite)]
        for b, bank in enumerate(bank_mods):
            wants = [port.valid & (split(port.payload.addr)[0] == b) for port in self.write]
            last = Signal(_index_shape(nwrite), init=nwrite - 1, name=f"wr_last{b}")
            found, pick = round_robin_select(m, wants, last)
            with m.Switch(pick):
                for p, port in enumerate(self.write):
                    with m.Case(p):
                        m.d.comb += [
                            bank.write.addr.eq(split(port.payload.addr)[1]),
                            bank.write.data.eq(port.payload.data),
                        ]
                        with m.If(found):
                            m.d.comb += bank.write.en.eq(port.payload.mask)
            for p in range(nwrite):
                write_grants[p].append(wants[p] & (pick == p))
            with m.If(found):
                m.d.sync += last.eq(pick)
        for p, port in enumerate(self.write):
            m.d.comb += port.ready.eq(Cat(write_grants[p]).any())
        return m
