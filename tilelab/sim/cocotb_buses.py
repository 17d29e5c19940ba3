"""cocotb drivers for the buses of tilelab's units: the external-memory port and the NoC's links.

* :class:`ExtMemoryModel` is the memory on a unit's external-memory port (``tilelab verilog tile
  --no-memory``: ``ext__ra_*``, ``ext__rb_*``, ``ext__wr_*``; see
  :func:`tilelab.pe_models.tile.ext_port_signature`): the bench loads bytes into it with
  :meth:`~ExtMemoryModel.write`, the unit reads and writes it cycle by cycle, the bench reads the
  result back with :meth:`~ExtMemoryModel.read`.
* :class:`LinkSource` and :class:`LinkSink` are a router's neighbours on its credit-flow links
  (``in_<d>__*`` / ``out_<d>__*``; see :class:`tilelab.noc.common.LinkSignature`): the source sends
  a flit only while it holds a credit for the queue it lands in, the sink accepts every flit and
  returns its credit (late, under backpressure).

A router's local port is an ordinary stream: :class:`~tilelab.sim.cocotb_streams.StreamSource` and
:class:`~tilelab.sim.cocotb_streams.StreamSink` with ``format=`` send and receive flits as dicts.
The link drivers share the stream drivers' interface (``send`` / ``send_nowait`` / ``wait`` /
``idle`` / ``empty`` / ``count``; ``recv`` / ``recv_nowait`` / ``empty`` / ``count``) and their
timing: the handshake is sampled in the second half of the cycle, new values are driven right
after the rising edge.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import NamedTuple

import cocotb
from cocotb.triggers import FallingEdge, ReadOnly, ReadWrite, RisingEdge

from tilelab.hdl.formats.noc import Direction

from .cocotb_streams import QueuedReceiver, QueuedSender, _int

__all__ = ["ExtMemoryModel", "LinkSource", "LinkSink", "LinkFlit", "xy_route"]


def xy_route(at: tuple[int, int], dst: tuple[int, int]) -> Direction:
    """The output a flit for node ``dst`` takes at router ``at`` under XY routing (X first).

    Parameters
    ----------
    at, dst : (int, int)
        ``(x, y)`` of the router and of the destination.
    """
    (x, y), (dx, dy) = at, dst
    if dx != x:
        return Direction.E if dx > x else Direction.W
    if dy != y:
        return Direction.S if dy > y else Direction.N
    return Direction.L


class ExtMemoryModel:
    """The memory on a unit's external-memory port, as :class:`tilelab.hdl.memories.ExtMemory` behaves.

    Two read ports: W bytes from any byte address, driven on ``<prefix>__r?_data`` the cycle after
    the cycle with ``r?_en`` high (and held until the next read); a write port: byte ``b`` of
    ``wr_data`` with ``wr_mask[b]`` goes to byte ``wr_addr + b``. A read in the cycle of a write
    sees the memory before it. Addresses wrap modulo ``size``.

    Parameters
    ----------
    dut : cocotb handle
        The top level.
    size : int
        Bytes of memory (``ext_words * ext_bytes`` of the tile).
    prefix : str
        Port prefix (``"ext"`` for ``ext__ra_en`` ...).
    clk : str
        Clock port name.

    Attributes
    ----------
    data : bytearray
        The memory's bytes.
    reads, writes : int
        Read port cycles (both ports) and write cycles so far.
    """

    def __init__(self, dut, size: int, *, prefix: str = "ext", clk: str = "clk"):
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"memory size must be a positive number of bytes, not {size!r}")
        self.data = bytearray(size)
        self.reads = self.writes = 0
        self._ports = {name: getattr(dut, f"{prefix}__{name}") for name in (
            "ra_en", "ra_addr", "ra_data", "rb_en", "rb_addr", "rb_data", "wr_en", "wr_addr", "wr_data", "wr_mask")}
        self.width = len(self._ports["wr_mask"])
        self._clock = getattr(dut, clk)
        for port in ("ra_data", "rb_data"):         # defined from the start (no X on Icarus)
            self._ports[port].value = 0
        self._task = cocotb.start_soon(self._run())

    def write(self, addr: int, data) -> None:
        """Put ``data`` (bytes-like) at byte ``addr`` (wrapping), as a host loads the memory."""
        for i, byte in enumerate(bytes(data)):
            self.data[(addr + i) % len(self.data)] = byte

    def read(self, addr: int, length: int) -> bytes:
        """The ``length`` bytes at byte ``addr`` (wrapping)."""
        return bytes(self.data[(addr + i) % len(self.data)] for i in range(length))

    def _word(self, addr: int) -> int:
        return int.from_bytes(self.read(addr, self.width), "little")

    async def _run(self):
        p, W = self._ports, self.width
        while True:
            await FallingEdge(self._clock)
            await ReadOnly()
            out = {}
            for port in ("ra", "rb"):
                if _int(p[f"{port}_en"].value):
                    out[port] = self._word(_int(p[f"{port}_addr"].value))
                    self.reads += 1
            if _int(p["wr_en"].value):
                addr, bits, mask = (_int(p[f"wr_{n}"].value) for n in ("addr", "data", "mask"))
                for b in range(W):
                    if mask >> b & 1:
                        self.data[(addr + b) % len(self.data)] = bits >> (8 * b) & 0xFF
                self.writes += 1
            await RisingEdge(self._clock)
            await ReadWrite()
            for port, word in out.items():
                p[f"{port}_data"].value = word


class _Link:
    def __init__(self, dut, prefix: str, clk: str):
        self.valid = getattr(dut, f"{prefix}__valid")
        self.flit = getattr(dut, f"{prefix}__flit")
        self.route = getattr(dut, f"{prefix}__route")
        self.credit = getattr(dut, f"{prefix}__credit")
        self.clock = getattr(dut, clk)
        self.queues = len(self.credit)


class LinkFlit(NamedTuple):
    """A flit received on a link: the flit (an int, or a dict with ``format``) and its ``route``
    (the output it takes at the receiver, a :class:`~tilelab.hdl.formats.noc.Direction`)."""

    flit: object
    route: Direction


class LinkSource(QueuedSender):
    """Sends flits into a router's link input ``<prefix>`` (``in_w`` ...), as its neighbour would.

    The router holds ``credits`` slots per queue (one queue per output, ``route``); the source
    sends a flit only while it holds a credit for the flit's queue and counts the credits the
    router returns on ``<prefix>__credit``. Flits go out in the order they were queued.

    Parameters
    ----------
    dut : cocotb handle
        The router (or a design with its link ports at the top).
    prefix : str
        The link input driven (``"in_w"`` for ``in_w__valid`` / ``__flit`` / ``__route`` / ``__credit``).
    credits : int
        Slots of each of the router's queues behind this input (the router's ``depth``).
    idle : iterator of bool, optional
        Each cycle, True sends nothing (idle insertion).
    clk : str
        Clock port name.
    format : Format or shape-castable, optional
        Flits are dicts of this format's fields (the plane's
        :func:`~tilelab.hdl.formats.noc.flit_layout`).
    """

    def __init__(self, dut, prefix: str, *, credits: int, idle: Iterator[bool] | None = None, clk: str = "clk",
                 format=None):
        self._p = _Link(dut, prefix, clk)
        self._start_queue(idle, format)
        self._credits = [credits] * self._p.queues
        self._p.valid.value = 0
        self._task = cocotb.start_soon(self._run())

    def send_nowait(self, flit, route: Direction) -> None:
        """Queue ``flit`` (an int, or a dict with ``format``) that takes output ``route`` at the router."""
        self._queued((self._pack(flit), Direction(route).value))

    async def send(self, flit, route: Direction) -> None:
        """Queue one flit; the queue has no bound, so this returns before the flit is sent."""
        self.send_nowait(flit, route)

    async def _run(self):
        p = self._p
        while True:
            send = bool(self._queue) and self._credits[self._queue[0][1]] > 0 and not next(self._idle)
            if send:
                bits, route = self._queue.popleft()
                self._credits[route] -= 1
                p.flit.value, p.route.value = bits, route
            p.valid.value = int(send)
            self._offering = send
            await FallingEdge(p.clock)
            await ReadOnly()
            returned = _int(p.credit.value)
            await RisingEdge(p.clock)
            await ReadWrite()
            for q in range(p.queues):
                self._credits[q] += returned >> q & 1
            if send:
                self._sent()


class LinkSink(QueuedReceiver):
    """Receives the flits of a router's link output ``<prefix>`` (``out_e`` ...) and returns their credits.

    Every valid flit is taken (a link never refuses one); its credit (``credit[route]``) goes back
    one cycle later, or later while ``backpressure`` says so, one credit per queue and cycle, which
    makes the router stall once it runs out of them.

    Parameters
    ----------
    dut : cocotb handle
        The router (or a design with its link ports at the top).
    prefix : str
        The link output drained (``"out_e"``); its ``__credit`` input is driven.
    backpressure : iterator of bool, optional
        Each cycle, True returns no credit.
    clk : str
        Clock port name.
    format : Format or shape-castable, optional
        Flits are returned as dicts of this format's fields.
    """

    def __init__(self, dut, prefix: str, *, backpressure: Iterator[bool] | None = None, clk: str = "clk",
                 format=None):
        self._p = _Link(dut, prefix, clk)
        self._start_queue(format)
        self._owed: list[int] = []
        self._bp = backpressure or itertools.repeat(False)
        self._p.credit.value = 0
        self._task = cocotb.start_soon(self._run())

    def _decode(self, item) -> LinkFlit:
        bits, route = item
        return LinkFlit(super()._decode(bits), Direction(route))

    async def _run(self):
        p = self._p
        while True:
            credit = 0
            if self._owed and not next(self._bp):
                keep = []
                for q in self._owed:
                    if credit >> q & 1:
                        keep.append(q)
                    else:
                        credit |= 1 << q
                self._owed = keep
            p.credit.value = credit
            await FallingEdge(p.clock)
            await ReadOnly()
            if _int(p.valid.value):
                route = _int(p.route.value)
                self._arrived((_int(p.flit.value), route))
                self._owed.append(route)
            await RisingEdge(p.clock)
            await ReadWrite()
