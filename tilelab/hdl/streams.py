"""Stream plumbing: register slices, FIFOs, arbiters, forks and joins.

Every block here is an :class:`amaranth.lib.wiring.Component` whose valid/ready interfaces are
:class:`amaranth.lib.stream.Signature` and obey its transfer rules: ``valid`` never depends on
``ready`` combinationally and is held (with a stable payload) until the transfer; ``ready`` may
depend on ``valid``.

* :class:`SkidBuffer`: 2-entry register slice; registered ``ready`` and payload, 1 transfer/cycle.
* :class:`StreamFIFO`: synchronous FIFO with stream ports and a ``level`` output.
* :class:`RoundRobinArbiter`: n → 1, fair round robin, optional wormhole packets (``last`` field).
* :class:`StreamFork`: 1 → n, every item delivered exactly once to every output.
* :class:`StreamJoin`: n → 1, transfers when all inputs are valid; payload is a struct of inputs.

:func:`round_robin_select` is the combinational selector the arbiters here and in
:mod:`tilelab.hdl.sram` share.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from amaranth.hdl import Cat, Const, Module, Shape, Signal, Value, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from tilelab.checks import check_int

__all__ = ["SkidBuffer", "StreamFIFO", "RoundRobinArbiter", "StreamFork", "StreamJoin",
           "round_robin_select"]


def _check_shape(name, shape):
    """Raise ``TypeError`` unless ``shape`` is shape-castable; return it unchanged."""
    try:
        Shape.cast(shape)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a shape-castable object, not {shape!r}") from None
    return shape


def _index_shape(n):
    """Shape of an index into ``n`` items; at least 1 bit so it survives as a Verilog port."""
    return unsigned(max(1, ceil_log2(n)))


def round_robin_select(m, requests, last):
    """Add a combinational round-robin selector to module ``m``.

    Parameters
    ----------
    m : amaranth.hdl.Module
        Module that receives the combinational logic.
    requests : sequence of Value
        One 1-bit request per requester.
    last : Value
        Index of the requester granted most recently; the search starts just after it.

    Returns
    -------
    tuple of (Value, Signal)
        ``(any, index)``: whether some requester is selected, and which one. ``index`` is 0 when
        ``any`` is low.
    """
    n = len(requests)
    requests = [Value.cast(r) for r in requests]
    if n == 1:
        return requests[0], Const(0, _index_shape(1))
    chosen = Signal(_index_shape(n))
    after = Signal(n)
    for k, req in enumerate(requests[1:], start=1):
        m.d.comb += after[k].eq(req & (last < k))
    # In each chain the assignment that comes last wins, so walk from the highest index down and
    # the lowest eligible index is selected.
    with m.If(after.any()):
        for k in reversed(range(n)):
            with m.If(after[k]):
                m.d.comb += chosen.eq(k)
    with m.Else():
        for k in reversed(range(n)):
            with m.If(requests[k]):
                m.d.comb += chosen.eq(k)
    return Cat(requests).any(), chosen


# --- blocks -----------------------------------------------------------------------------------------

class SkidBuffer(wiring.Component):
    """Full-throughput register slice (a 2-entry skid buffer).

    Cuts every combinational path between ``i`` and ``o``: ``i.ready``, ``o.valid`` and
    ``o.payload`` all come straight from registers. Sustains one transfer per cycle; latency is
    one cycle.

    Parameters
    ----------
    shape : ShapeLike
        Payload shape.

    Members
    -------
    i : In(stream.Signature(shape))
        Input stream.
    o : Out(stream.Signature(shape))
        Output stream.
    """

    def __init__(self, *, shape):
        self._shape = _check_shape("shape", shape)
        super().__init__({
            "i": In(stream.Signature(shape)),
            "o": Out(stream.Signature(shape)),
        })

    @property
    def shape(self):
        """Payload shape."""
        return self._shape

    def elaborate(self, platform):
        m = Module()
        out_valid = Signal()
        out_data = Signal(self._shape)
        skid_valid = Signal()
        skid_data = Signal(self._shape)

        m.d.comb += [
            self.i.ready.eq(~skid_valid),
            self.o.valid.eq(out_valid),
            self.o.payload.eq(out_data),
        ]
        take = self.i.valid & self.i.ready
        with m.If(self.o.ready | ~out_valid):
            # The output register is free (or being emptied): refill it from the skid entry first.
            with m.If(skid_valid):
                m.d.sync += [out_data.eq(skid_data), out_valid.eq(1), skid_valid.eq(0)]
            with m.Elif(take):
                m.d.sync += [out_data.eq(self.i.payload), out_valid.eq(1)]
            with m.Else():
                m.d.sync += out_valid.eq(0)
        with m.Elif(take):
            # The output is stalled: park the item that was accepted on the registered ready.
            m.d.sync += [skid_data.eq(self.i.payload), skid_valid.eq(1)]
        return m


class StreamFIFO(wiring.Component):
    """Synchronous FIFO with stream ports.

    Wraps :class:`amaranth.lib.fifo.SyncFIFOBuffered` (``buffered=True``: registered output,
    one more cycle of latency, memory-friendly) or :class:`amaranth.lib.fifo.SyncFIFO`.

    Parameters
    ----------
    shape : ShapeLike
        Payload shape.
    depth : int
        Number of entries (at least 1). A buffered FIFO of depth 1 alternates between full and
        empty, so it sustains one transfer every other cycle.
    buffered : bool
        Use ``SyncFIFOBuffered`` (default) rather than ``SyncFIFO``.

    Members
    -------
    i : In(stream.Signature(shape))
        Input stream.
    o : Out(stream.Signature(shape))
        Output stream.
    level : Out(range(depth + 1))
        Number of items stored.
    """

    def __init__(self, *, shape, depth, buffered=True):
        self._shape = _check_shape("shape", shape)
        self._depth = check_int("depth", depth, 1)
        if not isinstance(buffered, bool):
            raise TypeError(f"buffered must be a bool, not {buffered!r}")
        self._buffered = buffered
        super().__init__({
            "i": In(stream.Signature(shape)),
            "o": Out(stream.Signature(shape)),
            "level": Out(range(depth + 1)),
        })

    @property
    def depth(self):
        """Number of entries."""
        return self._depth

    def elaborate(self, platform):
        m = Module()
        width = Shape.cast(self._shape).width
        cls = fifo.SyncFIFOBuffered if self._buffered else fifo.SyncFIFO
        m.submodules.fifo = queue = cls(width=width, depth=self._depth)
        m.d.comb += [
            queue.w_data.eq(self.i.payload),
            queue.w_en.eq(self.i.valid),
            self.i.ready.eq(queue.w_rdy),
            self.o.payload.eq(queue.r_data),
            self.o.valid.eq(queue.r_rdy),
            queue.r_en.eq(self.o.ready),
            self.level.eq(queue.level),
        ]
        return m


def _packet_layout_ok(shape):
    """Whether ``shape`` is a struct layout with a 1-bit field named ``last``."""
    try:
        layout = data.Layout.cast(shape)
    except TypeError:
        return False
    if not isinstance(layout, data.StructLayout):
        return False
    members = dict(layout.members)
    return "last" in members and Shape.cast(members["last"]).width == 1


class RoundRobinArbiter(wiring.Component):
    """Fair round-robin arbiter, ``n`` streams into one.

    After each transfer the input just served gets the lowest priority. The grant is locked while
    the output is valid but not accepted, so ``o.payload`` stays stable as the stream rules
    require. With ``packet=True`` the grant is also kept from the first transfer of a packet up to
    and including the transfer whose payload has ``last == 1`` (wormhole switching): packets from
    different inputs never interleave.

    Parameters
    ----------
    shape : ShapeLike
        Payload shape. With ``packet=True`` it must be a struct layout (for example a
        :class:`amaranth.lib.data.Struct`) with a 1-bit field named ``last``.
    n : int
        Number of inputs (at least 1).
    packet : bool
        Keep the grant until the end of a packet.

    Members
    -------
    i : In(stream.Signature(shape)).array(n)
        Input streams.
    o : Out(stream.Signature(shape))
        Output stream.
    grant : Out(unsigned(max(1, ceil_log2(n))))
        Index of the input that ``o`` currently shows; meaningful while ``o.valid``.
    """

    def __init__(self, *, shape, n, packet=False):
        self._shape = _check_shape("shape", shape)
        self._n = check_int("n", n, 1)
        if not isinstance(packet, bool):
            raise TypeError(f"packet must be a bool, not {packet!r}")
        if packet and not _packet_layout_ok(shape):
            raise ValueError(f"packet=True needs a struct payload with a 1-bit field 'last', "
                             f"not {shape!r}")
        self._packet = packet
        super().__init__({
            "i": In(stream.Signature(shape)).array(n),
            "o": Out(stream.Signature(shape)),
            "grant": Out(_index_shape(n)),
        })

    @property
    def n(self):
        """Number of inputs."""
        return self._n

    def elaborate(self, platform):
        m = Module()
        n = self._n
        last = Signal(_index_shape(n), init=n - 1)      # input 0 has priority after reset
        hold = Signal()                                  # keep the grant in ``held``
        held = Signal(_index_shape(n))
        _, pick = round_robin_select(m, [port.valid for port in self.i], last)

        grant = self.grant
        with m.If(hold):
            m.d.comb += grant.eq(held)
        with m.Else():
            m.d.comb += grant.eq(pick)
        with m.Switch(grant):
            for k, port in enumerate(self.i):
                with m.Case(k):
                    m.d.comb += [
                        self.o.valid.eq(port.valid),
                        self.o.payload.eq(port.payload),
                        port.ready.eq(self.o.ready),
                    ]

        with m.If(self.o.valid & self.o.ready):
            m.d.sync += last.eq(grant)
            if self._packet:
                m.d.sync += [hold.eq(~self.o.payload.last), held.eq(grant)]
            else:
                m.d.sync += hold.eq(0)
        with m.Elif(self.o.valid):
            m.d.sync += [hold.eq(1), held.eq(grant)]
        return m


class StreamFork(wiring.Component):
    """Deliver each input item exactly once to every one of ``n`` outputs.

    Outputs may accept at different cycles: a register remembers which outputs already took the
    current item, and the input is acknowledged in the cycle the last outstanding output accepts.
    ``o[k].valid`` depends only on ``i.valid`` and that register, never on any ``ready``. When all
    outputs are ready it sustains one item per cycle with no added latency.

    Parameters
    ----------
    shape : ShapeLike
        Payload shape.
    n : int
        Number of outputs (at least 1).

    Members
    -------
    i : In(stream.Signature(shape))
        Input stream.
    o : Out(stream.Signature(shape)).array(n)
        Output streams.
    """

    def __init__(self, *, shape, n):
        self._shape = _check_shape("shape", shape)
        self._n = check_int("n", n, 1)
        super().__init__({
            "i": In(stream.Signature(shape)),
            "o": Out(stream.Signature(shape)).array(n),
        })

    @property
    def n(self):
        """Number of outputs."""
        return self._n

    def elaborate(self, platform):
        m = Module()
        done = Signal(self._n)            # outputs that already took the current item
        for k, port in enumerate(self.o):
            m.d.comb += [
                port.valid.eq(self.i.valid & ~done[k]),
                port.payload.eq(self.i.payload),
            ]
        m.d.comb += self.i.ready.eq(Cat(done[k] | port.ready for k, port in enumerate(self.o)).all())
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += done.eq(0)
        with m.Else():
            for k, port in enumerate(self.o):
                with m.If(port.valid & port.ready):
                    m.d.sync += done[k].eq(1)
        return m


class StreamJoin(wiring.Component):
    """Combine several streams into one whose payload is a struct of the input payloads.

    A transfer happens when every input is valid and the output is ready; then every input
    transfers in the same cycle. ``o.valid`` is the AND of the input valids.

    Parameters
    ----------
    shapes : mapping of str to ShapeLike, or sequence of ShapeLike
        Payload shape of each input. With a mapping the keys name the inputs and the output
        struct fields (they must be Python identifiers); with a sequence the names are
        ``f0``, ``f1``, ...

    Members
    -------
    i : In(wiring.Signature({name: Out(stream.Signature(shape)), ...}))
        Input streams, one member per name (``join.i.f0`` ...).
    o : Out(stream.Signature(data.StructLayout({name: shape, ...})))
        Output stream.
    """

    def __init__(self, *, shapes):
        if isinstance(shapes, Mapping):
            items = list(shapes.items())
        elif isinstance(shapes, Sequence) and not isinstance(shapes, (str, bytes)):
            items = [(f"f{k}", shape) for k, shape in enumerate(shapes)]
        else:
            raise TypeError(f"shapes must be a mapping or a sequence of shapes, not {shapes!r}")
        if not items:
            raise ValueError(f"shapes must name at least one input, not {shapes!r}")
        for name, shape in items:
            if not isinstance(name, str) or not name.isidentifier() or name.startswith("_"):
                raise ValueError(f"input names must be public Python identifiers, not {name!r}")
            _check_shape(f"shape of input {name!r}", shape)
        self._names = tuple(name for name, _ in items)
        self._layout = data.StructLayout(dict(items))
        inputs = wiring.Signature({name: Out(stream.Signature(shape)) for name, shape in items})
        super().__init__({
            "i": In(inputs),
            "o": Out(stream.Signature(self._layout)),
        })

    @property
    def names(self):
        """Input names, in struct field order."""
        return self._names

    @property
    def layout(self):
        """The output payload layout."""
        return self._layout

    def elaborate(self, platform):
        m = Module()
        inputs = [getattr(self.i, name) for name in self._names]
        all_valid = Cat(port.valid for port in inputs).all()
        m.d.comb += self.o.valid.eq(all_valid)
        for name, port in zip(self._names, inputs, strict=True):
            m.d.comb += [
                self.o.payload[name].eq(port.payload),
                port.ready.eq(self.o.ready & all_valid),
            ]
        return m
