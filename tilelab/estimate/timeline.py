"""The pieces the tile model is built of: counts with the cycle each becomes visible, and a driver
that runs the engines' coroutines in order of their clocks.

Every circular-buffer counter of the tile (pages pushed, pages popped, output entries, descriptors
delivered) is a :class:`Track`: a monotone count recorded as segments — ``n`` units arriving
``batch`` at a time every ``period`` cycles from cycle ``t0`` — so that a tile of R output rows, or a
descriptor streaming a thousand words, is one record, not R or a thousand. An engine asks "when is
this count at least v" (:meth:`Track.when`); if the producer has not got that far yet, the engine
waits (its coroutine yields the question) and the driver runs the others first.
"""

from __future__ import annotations

from bisect import bisect_left

__all__ = ["Track", "Need", "run_engines"]


class Track:
    """A monotone count of events (CB pushes, pops, deliveries) and the first cycle each count is seen.

    Segments must be added in order of time (each track has one producer, which is in order).
    """

    __slots__ = ("_ends", "_segs", "total", "last_time")

    def __init__(self):
        self._ends = []     # the count at the end of each segment
        self._segs = []     # (t0, count before, batch, period)
        self.total = 0
        self.last_time = 0

    def add(self, t0: int, n: int, batch: int | None = None, period: int = 1) -> None:
        """Record ``n`` units, visible ``batch`` at a time (all at once by default) every ``period``
        cycles from cycle ``t0``."""
        if n <= 0:
            return
        batch = n if batch is None else min(batch, n)
        self._segs.append((t0, self.total, batch, period))
        self.total += n
        self._ends.append(self.total)
        self.last_time = t0 + ((n - 1) // batch) * period

    def when(self, v: int):
        """The first cycle at which the count is at least ``v``; None if it has not been recorded yet."""
        if v <= 0:
            return 0
        if v > self.total:
            return None
        t0, v0, batch, period = self._segs[bisect_left(self._ends, v)]
        return t0 + ((v - v0 - 1) // batch) * period

    def span(self, v: int) -> int:
        """The largest count seen in the same cycle as count ``v`` (``v`` recorded, or ``v <= 0``)."""
        if v <= 0:
            return 0
        i = bisect_left(self._ends, v)
        _, v0, batch, _ = self._segs[i]
        return min(self._ends[i], v0 + -(-(v - v0) // batch) * batch)


class Need:
    """What an engine coroutine yields: the cycle at which ``track`` reaches ``value``."""

    __slots__ = ("track", "value")

    def __init__(self, track: Track, value: int):
        self.track, self.value = track, value


def run_engines(engines) -> None:
    """Run engine coroutines until all are finished.

    Each engine has ``clock`` (a lower bound of the next cycle it acts at), ``done`` and ``run()``, a
    generator yielding :class:`Need` objects and receiving the cycle each is met at. The engine with
    the smallest clock among those that can go on runs first, as far as it can; an engine may also
    yield ``None`` when it cannot decide yet (the fetcher, waiting for the others' clocks to pass the
    cycle it decides at), and is then asked again after the others moved, or told to decide with what
    is known (``force``) when nothing else can move.
    """
    gens = {e: e.run() for e in engines}
    pending = {e: None for e in engines}
    started = set()

    def step(e, force=False):
        """Advance ``e`` as far as it can; True if it moved."""
        moved = False
        gen = gens[e]
        while True:
            need = pending[e]
            if e not in started:
                started.add(e)
                value = None
            elif need is None:
                if not moved and not force and not e.ready():
                    return moved
                value = None
            else:
                value = need.track.when(need.value)
                if value is None:
                    return moved
            try:
                pending[e] = gen.send(value)
            except StopIteration:
                e.done = True
                return True
            moved = True
            force = False
            if pending[e] is None and not e.ready():
                return moved

    live = list(engines)
    while live:
        live.sort(key=lambda e: e.clock)
        moved = False
        for e in live:
            if step(e):
                moved = True
        if not moved:
            # nothing can go on: the engines that yielded None decide with what is known
            for e in live:
                if pending[e] is None and step(e, force=True):
                    moved = True
                    break
        if not moved:
            state = ", ".join(f"{type(e).__name__} at {e.clock}" for e in live)
            raise RuntimeError(f"the tile model is stuck ({state})")
        live = [e for e in live if not e.done]
