"""Backend-neutral stream drivers for :mod:`tilelab.sim.io` benches.

A bench that exercises valid/ready interfaces runs them in lock step, one cycle at a time:
each driver decides what to drive, :meth:`IO.step` samples the handshake signals as the design
sees them at the edge, and each driver records the transfers. This works identically on
Amaranth's simulator, Verilator and Icarus. (It touches signals every cycle, so it is for
block-level tests; autonomous designs use :meth:`IO.run_until`.)
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable

from .io import IO, SimulationTimeout

__all__ = ["StreamSource", "StreamSink", "run_streams"]


class StreamSource:
    """Sends payloads (ints) on the stream whose ports start with ``prefix``.

    Parameters
    ----------
    prefix : str
        Port prefix, e.g. ``"i"`` for ``i__valid``, ``i__ready``, ``i__payload``.
    items : iterable of int
        Payloads to send, in order.
    idle : float
        Probability of leaving ``valid`` low in a cycle where it could be high.
    seed : int
        Seed of the idle generator.
    """

    def __init__(self, prefix: str, items: Iterable[int] = (), *, idle: float = 0.0, seed: int = 0):
        self.prefix = prefix
        self.queue = deque(items)
        self.idle = idle
        self.sent = 0
        self._rng = random.Random(seed)
        self._valid = 0

    def ports(self):
        return [f"{self.prefix}__valid", f"{self.prefix}__ready"]

    def drive(self, io: IO):
        if not self._valid and self.queue and self._rng.random() >= self.idle:
            self._valid = 1
            io.set(f"{self.prefix}__payload", self.queue[0])
        io.set(f"{self.prefix}__valid", self._valid)

    def observe(self, valid: int, ready: int, _payload=None):
        if valid and ready:
            self.queue.popleft()
            self.sent += 1
            self._valid = 0

    def done(self) -> bool:
        return not self.queue and not self._valid


class StreamSink:
    """Receives payloads on the stream ``prefix`` with random backpressure.

    Parameters
    ----------
    prefix : str
        Port prefix, e.g. ``"o"``.
    stall : float
        Probability of holding ``ready`` low in a cycle.
    seed : int
        Seed of the backpressure generator.
    """

    def __init__(self, prefix: str, *, stall: float = 0.0, seed: int = 1):
        self.prefix = prefix
        self.stall = stall
        self.items: list[int] = []
        self._rng = random.Random(seed)

    def ports(self):
        return [f"{self.prefix}__valid", f"{self.prefix}__ready", f"{self.prefix}__payload"]

    def drive(self, io: IO):
        io.set(f"{self.prefix}__ready", int(self._rng.random() >= self.stall))

    def observe(self, valid: int, ready: int, payload: int):
        if valid and ready:
            self.items.append(payload)

    def empty(self) -> bool:
        """Return True when nothing has been received."""
        return not self.items


async def run_streams(io: IO, sources: list[StreamSource], sinks: list[StreamSink], *, expect: dict[str, int],
                      max_cycles: int, drain_cycles: int = 16) -> int:
    """Run sources and sinks in lock step until every sink has ``expect[prefix]`` items.

    Afterwards, runs ``drain_cycles`` more cycles with the sinks ready and asserts that nothing
    more arrives (nothing left over). Returns the number of cycles taken.

    Raises
    ------
    SimulationTimeout
        When the items do not arrive within ``max_cycles``; names each stream's progress.
    AssertionError
        When a sink receives more items than expected.
    """
    start = io.cycle
    drivers = [*sources, *sinks]
    names = [n for d in drivers for n in d.ports()]

    def finished():
        return all(len(s.items) >= expect[s.prefix] for s in sinks) and all(s.done() for s in sources)

    while not finished():
        if io.cycle - start > max_cycles:
            state = ", ".join([f"{s.prefix}: {s.sent} sent, {len(s.queue)} queued" for s in sources] +
                              [f"{s.prefix}: {len(s.items)}/{expect[s.prefix]} received" for s in sinks])
            raise SimulationTimeout(f"streams did not finish within {max_cycles} cycles ({state})")
        for d in drivers:
            d.drive(io)
        values = await io.step(*names)
        k = 0
        for d in drivers:
            n = len(d.ports())
            d.observe(*values[k:k + n])
            k += n
    taken = io.cycle - start
    for s in sources:
        io.set(f"{s.prefix}__valid", 0)
    for s in sinks:
        io.set(f"{s.prefix}__ready", 1)
    for _ in range(drain_cycles):
        values = await io.step(*[n for s in sinks for n in s.ports()])
        for i, s in enumerate(sinks):
            if values[3 * i] and values[3 * i + 1]:
                raise AssertionError(f"stream {s.prefix!r} delivered an item beyond the {expect[s.prefix]} "
                                     f"expected: {values[3 * i + 2]:#x}")
    for s in sinks:
        if len(s.items) != expect[s.prefix]:
            raise AssertionError(f"stream {s.prefix!r} delivered {len(s.items)} items, expected "
                                 f"{expect[s.prefix]}")
    return taken
