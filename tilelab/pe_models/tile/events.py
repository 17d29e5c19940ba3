"""Count events: how an engine reports what it adds to the tile's counters in a cycle."""

from amaranth.hdl import Mux, Signal
from amaranth.lib import data

__all__ = ["EventPort"]


class EventPort:
    """Drives an engine's count-event port (a struct of amounts, one field per counter) while the
    engine elaborates.

    ``events(name, amount, when)`` inside the engine's ``m.If`` blocks records that the counter
    ``name`` grows by ``amount`` in cycles where those conditions and ``when`` hold; :meth:`drive`
    then makes each field the sum of its records (0 in cycles without any).

    Parameters
    ----------
    m : Module
        The engine's module.
    port : data.View
        The engine's event port (for example of :class:`~tilelab.hdl.formats.tile.ReaderEvents`).
    """

    def __init__(self, m, port):
        self._m, self._port = m, port
        self._fields = {name for name, _ in data.Layout.cast(port.shape())}
        self._adds = {}

    def __call__(self, name, amount=1, when=1):
        if name not in self._fields:
            raise ValueError(f"event {name!r} is not a field of {self._port.shape()!r}")
        items = self._adds.setdefault(name, [])
        hit = Signal(name=f"count_{name}_{len(items)}")
        self._m.d.comb += hit.eq(when)
        items.append((hit, amount))

    def drive(self):
        """Drive every field of the port (call once, after the engine's last record)."""
        for name, items in self._adds.items():
            self._m.d.comb += self._port[name].eq(sum(Mux(hit, amount, 0) for hit, amount in items))
