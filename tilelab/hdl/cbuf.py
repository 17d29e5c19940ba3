"""Circular-buffer page counters, after the Tensix CB interface.

A circular buffer (CB) is a ring of ``num_pages`` equal pages in L1 shared by exactly one producer
engine and one consumer engine. The engines synchronise only through these counters:

* ``cb_reserve_back(n)``: set ``reserve_n = n``, wait for ``can_reserve`` (``space >= n``); no
  state change.
* ``cb_push_back(n)``: pulse ``push`` with ``push_n = n``; ``n`` written pages become visible.
* ``cb_wait_front(n)``: set ``wait_n = n``, wait for ``can_wait`` (``available >= n``); no state
  change.
* ``cb_pop_front(n)``: pulse ``pop`` with ``pop_n = n``; ``n`` read pages are freed.

What belongs where
------------------
The controller owns the counters only: the configured page count, the occupancy, the producer's
write page index ``wr_page`` and the consumer's read page index ``rd_page`` (both modulo the page
count), and sticky error flags. The *engines* own the CB's placement in L1: its base address and
page size live in the engine's configuration (or its address-generator descriptors), and an engine
turns a page index into an address as ``base + page * page_size + offset``. Keeping address
arithmetic out of the controller keeps it identical for every CB and every page size.

Protocol and timing
-------------------
* ``reserve`` and ``wait`` are pure, combinational checks: ``can_reserve = space >= reserve_n`` and
  ``can_wait = available >= wait_n``. No reservation is recorded: only the producer adds pages and
  only the consumer removes them, so once a producer has seen ``space >= n`` it stays true until it
  pushes (and likewise for the consumer).
* ``push``/``pop`` are one-cycle strobes that take effect at the clock edge; the counters and the
  ``can_*`` outputs reflect them from the next cycle on. A push and a pop may happen in the same
  cycle. ``n = 0`` is a no-op.
* A push of more pages than ``space`` (overflow) or a pop of more than ``available`` (underflow) is
  **ignored** and sets the sticky ``overflow`` / ``underflow`` flag; the state is not changed. The
  checks use the state at the start of the cycle, so a simultaneous pop does not make room for a
  push (the producer must have seen ``can_reserve`` first, which makes the check pass).
* ``cfg_en`` (with ``cfg_pages``) resets the CB: empty, both page indices 0, error flags cleared,
  page count ``cfg_pages``. A ``cfg_pages`` of 0 or above ``pages`` is ignored and sets the sticky
  ``cfg_error`` flag (cleared by the next valid configuration). Push and pop in a configuration
  cycle are dropped. After reset the page count is ``pages``.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from tilelab.checks import check_int

__all__ = ["CircularBufferController", "cb_producer_signature", "cb_consumer_signature"]


def cb_producer_signature(pages: int) -> wiring.Signature:
    """The producer engine's side of a circular buffer of up to ``pages`` pages (see the module docstring).

    ``reserve_n``, ``push`` and ``push_n`` out; ``can_reserve``, ``space`` and ``wr_page`` in. A
    producer declares ``Out(cb_producer_signature(pages))`` and joins it to
    :attr:`CircularBufferController.producer` with ``wiring.connect``. It drives ``reserve_n`` and
    ``push_n`` in every cycle (1 when it has nothing else to say).
    """
    check_int("pages", pages, 1)
    count = range(pages + 1)
    return wiring.Signature({
        "reserve_n": Out(count), "push": Out(1), "push_n": Out(count),
        "can_reserve": In(1), "space": In(count), "wr_page": In(range(max(pages, 2))),
    })


def cb_consumer_signature(pages: int) -> wiring.Signature:
    """The consumer engine's side of a circular buffer of up to ``pages`` pages.

    ``wait_n``, ``pop`` and ``pop_n`` out; ``can_wait``, ``available`` and ``rd_page`` in; joined to
    :attr:`CircularBufferController.consumer`. The consumer drives ``wait_n`` and ``pop_n`` in every
    cycle.
    """
    check_int("pages", pages, 1)
    count = range(pages + 1)
    return wiring.Signature({
        "wait_n": Out(count), "pop": Out(1), "pop_n": Out(count),
        "can_wait": In(1), "available": In(count), "rd_page": In(range(max(pages, 2))),
    })


class CircularBufferController(wiring.Component):
    """Producer/consumer page counters of one circular buffer (see the module docstring).

    Parameters
    ----------
    pages : int
        Largest page count the CB can be configured to (at least 1).

    Members
    -------
    cfg_en : In(1)
        Load ``cfg_pages`` as the page count and reset the CB.
    cfg_pages : In(range(pages + 1))
        New page count, 1 to ``pages``.
    reserve_n : In(range(pages + 1))
        Pages the producer wants to write.
    push : In(1)
        Strobe: make ``push_n`` pages visible to the consumer.
    push_n : In(range(pages + 1))
        Pages pushed.
    wait_n : In(range(pages + 1))
        Pages the consumer wants to read.
    pop : In(1)
        Strobe: free ``pop_n`` pages.
    pop_n : In(range(pages + 1))
        Pages popped.
    num_pages : Out(range(pages + 1))
        Configured page count.
    occupancy : Out(range(pages + 1))
        Pushed and not yet popped pages.
    space : Out(range(pages + 1))
        Free pages: ``num_pages - occupancy``.
    available : Out(range(pages + 1))
        Pages the consumer may read; equals ``occupancy``.
    can_reserve : Out(1)
        ``space >= reserve_n``.
    can_wait : Out(1)
        ``available >= wait_n``.
    full : Out(1)
        ``space == 0``.
    empty : Out(1)
        ``occupancy == 0``.
    wr_page : Out(range(pages))
        Index of the next page the producer writes.
    rd_page : Out(range(pages))
        Index of the next page the consumer reads.
    overflow : Out(1)
        Sticky: a push larger than ``space`` was ignored.
    underflow : Out(1)
        Sticky: a pop larger than ``available`` was ignored.
    cfg_error : Out(1)
        Sticky: a configuration with an out-of-range page count was ignored.
    """

    def __init__(self, *, pages):
        self._pages = check_int("pages", pages, 1)
        count = range(pages + 1)
        index = range(max(pages, 2))
        super().__init__({
            "cfg_en": In(1),
            "cfg_pages": In(count),
            "reserve_n": In(count),
            "push": In(1),
            "push_n": In(count),
            "wait_n": In(count),
            "pop": In(1),
            "pop_n": In(count),
            "num_pages": Out(count, init=pages),
            "occupancy": Out(count),
            "space": Out(count),
            "available": Out(count),
            "can_reserve": Out(1),
            "can_wait": Out(1),
            "full": Out(1),
            "empty": Out(1),
            "wr_page": Out(index),
            "rd_page": Out(index),
            "overflow": Out(1),
            "underflow": Out(1),
            "cfg_error": Out(1),
        })

    @property
    def pages(self):
        """Largest configurable page count."""
        return self._pages

    @property
    def producer(self):
        """The producer's ports as one interface (``cb_producer_signature(pages).flip()``)."""
        port = cb_producer_signature(self._pages).flip().create()
        port.reserve_n, port.push, port.push_n = self.reserve_n, self.push, self.push_n
        port.can_reserve, port.space, port.wr_page = self.can_reserve, self.space, self.wr_page
        return port

    @property
    def consumer(self):
        """The consumer's ports as one interface (``cb_consumer_signature(pages).flip()``)."""
        port = cb_consumer_signature(self._pages).flip().create()
        port.wait_n, port.pop, port.pop_n = self.wait_n, self.pop, self.pop_n
        port.can_wait, port.available, port.rd_page = self.can_wait, self.available, self.rd_page
        return port

    def elaborate(self, platform):
        m = Module()
        space = self.num_pages - self.occupancy
        m.d.comb += [
            self.space.eq(space),
            self.available.eq(self.occupancy),
            self.can_reserve.eq(space >= self.reserve_n),
            self.can_wait.eq(self.occupancy >= self.wait_n),
            self.full.eq(self.occupancy == self.num_pages),
            self.empty.eq(self.occupancy == 0),
        ]

        def advance(page, n):
            # page < num_pages and n <= num_pages, so one conditional subtraction wraps it.
            total = page + n
            return Mux(total >= self.num_pages, total - self.num_pages, total)

        push_ok = self.push & (self.push_n <= space)
        pop_ok = self.pop & (self.pop_n <= self.occupancy)
        bad_cfg = self.cfg_pages == 0
        if self._pages < (1 << len(self.cfg_pages)) - 1:     # else no value above the maximum exists
            bad_cfg |= self.cfg_pages > self._pages
        with m.If(self.cfg_en):
            with m.If(bad_cfg):
                m.d.sync += self.cfg_error.eq(1)
            with m.Else():
                m.d.sync += [
                    self.num_pages.eq(self.cfg_pages),
                    self.occupancy.eq(0),
                    self.wr_page.eq(0),
                    self.rd_page.eq(0),
                    self.overflow.eq(0),
                    self.underflow.eq(0),
                    self.cfg_error.eq(0),
                ]
        with m.Else():
            m.d.sync += self.occupancy.eq(self.occupancy + Mux(push_ok, self.push_n, 0)
                                          - Mux(pop_ok, self.pop_n, 0))
            with m.If(push_ok):
                m.d.sync += self.wr_page.eq(advance(self.wr_page, self.push_n))
            with m.If(self.push & ~push_ok):
                m.d.sync += self.overflow.eq(1)
            with m.If(pop_ok):
                m.d.sync += self.rd_page.eq(advance(self.rd_page, self.pop_n))
            with m.If(self.pop & ~pop_ok):
                m.d.sync += self.underflow.eq(1)
        return m

