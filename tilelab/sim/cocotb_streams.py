"""cocotb drivers for :mod:`amaranth.lib.stream` ports, for users' own cocotb testbenches.

Amaranth flattens a stream port ``o`` into ``o__valid``, ``o__ready`` and ``o__payload``. The
classes here drive and observe such ports the way cocotbext-axi drives AXI-Stream: a
:class:`StreamSource` with idle insertion, a :class:`StreamSink` with backpressure, a passive
:class:`StreamMonitor`, and ``empty()`` on each so a test can end by asserting nothing is left. The
sink and the monitor share one reading interface (``recv`` awaits the next payload, ``recv_nowait``
takes one that arrived, ``count`` / ``empty`` tell how many wait), as cocotbext-axi's do. Payloads
are integers, or with ``format=`` (a :class:`tilelab.hdl.formats.Format`, or a layout it is made
from) dicts of field values that the driver packs and unpacks.

Every driver samples the handshake when the design has settled in the second half of the clock
cycle and drives new values right after the rising edge, so the same testbench behaves the same on
Verilator and Icarus.

Example
-------
::

    @cocotb.test()
    async def test_fifo(dut):
        await start_clock_and_reset(dut)
        src = StreamSource(dut, "i", idle=bernoulli(0.3, seed=1))
        sink = StreamSink(dut, "o", backpressure=bernoulli(0.3, seed=2))
        for x in range(100):
            src.send_nowait(x)
        assert [await sink.recv() for _ in range(100)] == list(range(100))
        await ClockCycles(dut.clk, 10)
        assert sink.empty()
"""

from __future__ import annotations

import itertools
import random
from collections import deque
from collections.abc import Iterator

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import Event, FallingEdge, ReadOnly, ReadWrite, RisingEdge

__all__ = ["StreamSource", "StreamSink", "StreamMonitor", "bernoulli", "start_clock_and_reset"]


def bernoulli(probability: float, *, seed: int = 0) -> Iterator[bool]:
    """Yield True with ``probability`` each cycle: an idle or backpressure pattern."""
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"probability must be within [0, 1], not {probability!r}")
    rng = random.Random(seed)
    while True:
        yield rng.random() < probability


async def start_clock_and_reset(dut, *, period_ns: int = 10, reset_cycles: int = 2, clk: str = "clk",
                                rst: str = "rst") -> None:
    """Start a clock on ``dut.<clk>`` and pulse ``dut.<rst>`` for ``reset_cycles`` cycles."""
    clock = getattr(dut, clk)
    Clock(clock, period_ns, unit="ns").start()
    reset = getattr(dut, rst, None)
    if reset is not None:
        reset.value = 1
        for _ in range(reset_cycles):
            await RisingEdge(clock)
        reset.value = 0
    await RisingEdge(clock)
    await ReadWrite()


class _Port:
    def __init__(self, dut, prefix: str, clk: str):
        self.valid = getattr(dut, f"{prefix}__valid")
        self.ready = getattr(dut, f"{prefix}__ready")
        self.payload = getattr(dut, f"{prefix}__payload")
        self.clock = getattr(dut, clk)
        self.prefix = prefix


def as_format(format):
    """``format`` as a :class:`~tilelab.hdl.formats.Format` (None stays None)."""
    from tilelab.hdl.formats.bits import Format

    return format if format is None or isinstance(format, Format) else Format(format)


def _int(value) -> int:
    try:
        return value.to_unsigned() if hasattr(value, "to_unsigned") else int(value)
    except ValueError:
        return int("".join(ch if ch in "01" else "0" for ch in str(value)), 2)


class QueuedSender:
    """What every source here shares: an unbounded queue of what waits to go out.

    Subclasses call :meth:`_start_queue`, put packed items on ``self._queue``, set
    ``self._offering`` while an item is on the wires and call :meth:`_sent` after each transfer.
    """

    def _start_queue(self, idle: Iterator[bool] | None, format) -> None:
        self._format = as_format(format)
        self._queue: deque = deque()
        self._idle = idle or itertools.repeat(False)
        self._done = Event()
        self._offering = False
        self.sent = 0

    def _pack(self, payload) -> int:
        return self._format.pack(payload) if self._format is not None else int(payload)

    def _queued(self, item) -> None:
        self._queue.append(item)
        self._done.clear()

    def _sent(self) -> None:
        self.sent += 1
        if not self._queue:
            self._done.set()

    def idle(self) -> bool:
        """Return True when nothing is queued and nothing is being offered."""
        return not self._queue and not self._offering

    def empty(self) -> bool:
        """Return True when every queued item has been sent."""
        return not self._queue

    def count(self) -> int:
        """Return the number of items still queued."""
        return len(self._queue)

    async def wait(self) -> None:
        """Wait until every queued item has been sent."""
        while self._queue:
            await self._done.wait()


class QueuedReceiver:
    """What every sink and monitor here shares: what arrived, read with ``recv`` / ``recv_nowait``."""

    def _start_queue(self, format) -> None:
        self._format = as_format(format)
        self._queue: deque = deque()
        self._event = Event()

    def _arrived(self, item) -> None:
        self._queue.append(item)
        self._event.set()

    def _decode(self, item):
        return item if self._format is None else self._format.unpack(item)

    def empty(self) -> bool:
        """Return True when nothing that arrived is waiting to be read."""
        return not self._queue

    def count(self) -> int:
        """Return the number of arrivals not read yet."""
        return len(self._queue)

    def recv_nowait(self):
        """Return the oldest arrival (an int, or a dict with ``format``); raise IndexError when there is none."""
        return self._decode(self._queue.popleft())

    async def recv(self):
        """Wait for and return the next arrival."""
        while not self._queue:
            self._event.clear()
            await self._event.wait()
        return self.recv_nowait()


class StreamSource(QueuedSender):
    """Drives a stream input of the design.

    Parameters
    ----------
    dut : cocotb handle
        The top level.
    prefix : str
        Port prefix (``"i"`` for ``i__valid`` / ``i__ready`` / ``i__payload``).
    idle : iterator of bool, optional
        Each cycle, True keeps ``valid`` low (idle insertion), e.g. :func:`bernoulli`.
    clk : str
        Clock port name.
    format : Format or shape-castable, optional
        Payloads are dicts of this format's fields (:meth:`~tilelab.hdl.formats.Format.pack`).
    """

    def __init__(self, dut, prefix: str, *, idle: Iterator[bool] | None = None, clk: str = "clk", format=None):
        self._p = _Port(dut, prefix, clk)
        self._start_queue(idle, format)
        self._p.valid.value = 0
        self._task = cocotb.start_soon(self._run())

    def send_nowait(self, payload) -> None:
        """Queue one payload (an int, or a dict of fields with ``format``)."""
        self._queued(self._pack(payload))

    async def send(self, payload) -> None:
        """Queue one payload.

        The queue has no bound, so this awaits nothing and returns before the transfer (as
        cocotbext-axi's ``send`` with an unbounded queue); :meth:`wait` waits for the transfers.
        """
        self.send_nowait(payload)

    async def _run(self):
        p = self._p
        valid = 0
        while True:
            if not valid and self._queue and not next(self._idle):
                p.payload.value = self._queue[0]
                valid = 1
            p.valid.value = valid
            self._offering = bool(valid)
            await FallingEdge(p.clock)
            await ReadOnly()
            fire = valid and _int(p.ready.value)
            await RisingEdge(p.clock)
            await ReadWrite()
            if fire:
                self._queue.popleft()
                valid = 0
                self._sent()


class StreamSink(QueuedReceiver):
    """Accepts a stream output of the design, with optional backpressure.

    Parameters
    ----------
    dut : cocotb handle
        The top level.
    prefix : str
        Port prefix (``"o"``).
    backpressure : iterator of bool, optional
        Each cycle, True holds ``ready`` low.
    clk : str
        Clock port name.
    format : Format or shape-castable, optional
        Received payloads are returned as dicts of this format's fields.
    """

    def __init__(self, dut, prefix: str, *, backpressure: Iterator[bool] | None = None, clk: str = "clk",
                 format=None):
        self._p = _Port(dut, prefix, clk)
        self._start_queue(format)
        self._bp = backpressure or itertools.repeat(False)
        self._task = cocotb.start_soon(self._run())

    async def _run(self):
        p = self._p
        while True:
            ready = 0 if next(self._bp) else 1
            p.ready.value = ready
            await FallingEdge(p.clock)
            await ReadOnly()
            if ready and _int(p.valid.value):
                self._arrived(_int(p.payload.value))
            await RisingEdge(p.clock)
            await ReadWrite()


class StreamMonitor(QueuedReceiver):
    """Records every transfer on a stream without driving it.

    Parameters
    ----------
    dut : cocotb handle
        The top level.
    prefix : str
        Port prefix.
    clk : str
        Clock port name.
    format : Format or shape-castable, optional
        Recorded payloads are returned as dicts of this format's fields.
    """

    def __init__(self, dut, prefix: str, *, clk: str = "clk", format=None):
        self._p = _Port(dut, prefix, clk)
        self._start_queue(format)
        self._task = cocotb.start_soon(self._run())

    @property
    def transfers(self) -> deque:
        """The recorded transfers not read yet, oldest first (packed integers)."""
        return self._queue

    async def _run(self):
        p = self._p
        while True:
            await FallingEdge(p.clock)
            await ReadOnly()
            if _int(p.valid.value) and _int(p.ready.value):
                self._arrived(_int(p.payload.value))
            await RisingEdge(p.clock)
