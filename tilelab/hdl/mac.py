"""Multiply-accumulate units and the output-stationary MAC array.

The array is the math engine of the compute tile. Each input transfer is one step of the
reduction dimension k: ``acc[r][c] (+)= a[r] * b[c]`` (an outer product of an activation column
and a weight row), with ``first`` starting a new block and ``last`` ending it. On ``last`` the
finished block moves to a shadow bank and drains one row per cycle on the output stream while
the next block already accumulates (double buffering), so a block of K steps keeps the array
busy whenever K ≥ rows.

With ``b_groups=G > 1`` the weight operand is G rows of C bytes and array row ``r`` multiplies by
row ``r % G`` of it: the row groups of the tile's split-K mode see different reduction steps of the
same weight column (the host adds a pixel's G rows afterwards); a plain step repeats one weight row
G times.

With ``depthwise=True`` the array also has an element-wise mode (``dw=1``):
``acc[r][c] (+)= a2[r][c] * b[c]`` — every PE gets its own activation, as depthwise convolution
needs (output channel c only sees input channel c), so it does not fall to 1/cols of the array.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["MACUnit", "MACArray", "mac_array_layouts"]


def _check_width(name, value, *, minimum=1, maximum=64):
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
        raise ValueError(f"{name} must be an integer in [{minimum}, {maximum}], not {value!r}")


def _check_acc(a_width, b_width, acc_width):
    need = a_width + b_width
    if acc_width < need:
        raise ValueError(f"acc_width {acc_width!r} cannot hold the {a_width}x{b_width}-bit product; "
                         f"it must be at least {need}")


class MACUnit(wiring.Component):
    """One multiply-accumulate unit.

    ``acc <= (clear ? 0 : acc) + a * b`` on every cycle with ``en`` high.

    Parameters
    ----------
    a_width, b_width : int
        Operand widths (1..32).
    acc_width : int
        Accumulator width; at least ``a_width + b_width``. The sum wraps modulo 2**acc_width.
    signed_ : bool
        Signed (two's complement) or unsigned operands and accumulator.
    """

    def __init__(self, *, a_width: int = 8, b_width: int = 8, acc_width: int = 32, signed_: bool = True):
        _check_width("a_width", a_width, maximum=32)
        _check_width("b_width", b_width, maximum=32)
        _check_width("acc_width", acc_width, maximum=64)
        _check_acc(a_width, b_width, acc_width)
        shape = signed if signed_ else unsigned
        self.a_width, self.b_width, self.acc_width, self.signed = a_width, b_width, acc_width, signed_
        super().__init__({
            "a": In(shape(a_width)),
            "b": In(shape(b_width)),
            "en": In(1),
            "clear": In(1),
            "acc": Out(shape(acc_width)),
        })

    def elaborate(self, platform):
        m = Module()
        with m.If(self.en & self.clear):
            m.d.sync += self.acc.eq(self.a * self.b)
        with m.Elif(self.en):
            m.d.sync += self.acc.eq(self.acc + self.a * self.b)
        return m


def mac_array_layouts(rows: int, cols: int, *, a_width: int = 8, b_width: int = 8, acc_width: int = 32,
                      signed_: bool = True, depthwise: bool = False, drain_rows: int = 1, b_groups: int = 1,
                      drain_count: bool = False):
    """Return ``(input_layout, output_layout)`` of :class:`MACArray` for these parameters.

    Input: ``a`` (rows operands), ``b`` (cols operands; with ``b_groups`` > 1, ``b_groups`` rows
    of cols operands), ``first``, ``last``, with ``drain_count`` ``count`` (rows of the block to
    drain, read with ``last``; 0: all) and, with
    ``depthwise``, ``dw`` (mode) and ``a2`` (rows × cols operands).
    Output: ``row`` (cols accumulators), ``index`` (which row), ``last`` (last row of a block);
    with ``drain_rows=2`` also ``row1``, the accumulators of row ``index + 1``.
    """
    shape = signed if signed_ else unsigned
    # The wide element-wise operand goes first, so it starts at bit 0: a compiled simulator then
    # moves it a whole machine word at a time.
    fields = {}
    if depthwise:
        fields["a2"] = data.ArrayLayout(data.ArrayLayout(shape(a_width), cols), rows)
    b = data.ArrayLayout(shape(b_width), cols)
    fields.update({
        "a": data.ArrayLayout(shape(a_width), rows),
        "b": b if b_groups == 1 else data.ArrayLayout(b, b_groups),
        "first": 1,
        "last": 1,
    })
    if drain_count:
        fields["count"] = range(rows + 1)
    if depthwise:
        fields["dw"] = 1
    out = {"row": data.ArrayLayout(shape(acc_width), cols)}
    if drain_rows == 2:
        out["row1"] = data.ArrayLayout(shape(acc_width), cols)
    out = data.StructLayout({**out, "index": range(rows), "last": 1})
    return data.StructLayout(fields), out


class MACArray(wiring.Component):
    """Output-stationary R×C MAC array with a double-buffered drain.

    Parameters
    ----------
    rows, cols : int
        Array shape (1..256 each).
    a_width, b_width, acc_width : int
        Operand and accumulator widths; ``acc_width >= a_width + b_width``.
    signed_ : bool
        Signed operands (int8 × int8 → int32 by default).
    depthwise : bool
        Add the element-wise (depthwise) mode.
    drain_rows : {1, 2}
        Rows per output transfer (2: rows ``index`` and ``index + 1``; ``rows`` must be even).
    b_groups : int
        Weight rows per step (row ``r`` uses row ``r % b_groups``); must divide ``rows``.
    drain_count : bool
        The ``last`` step says how many rows of its block to drain (``count``; 0: all): a block
        of fewer real rows (a partial tile) leaves the shadow bank after ``ceil(count / drain_rows)``
        transfers instead of ``rows / drain_rows``, the last one flagged ``last``.

    Attributes
    ----------
    i : In(stream.Signature(input_layout))
        One reduction step per transfer (see :func:`mac_array_layouts`).
    o : Out(stream.Signature(output_layout))
        Finished blocks, one row of ``cols`` accumulators per transfer, rows in order.
    busy : Out(1)
        A block is accumulating or draining.
    macs : Out(48)
        Multiply-accumulates performed (rows·cols per step).
    """

    def __init__(self, *, rows: int = 8, cols: int = 8, a_width: int = 8, b_width: int = 8,
                 acc_width: int = 32, signed_: bool = True, depthwise: bool = False, drain_rows: int = 1,
                 b_groups: int = 1, drain_count: bool = False):
        _check_width("rows", rows, maximum=256)
        _check_width("cols", cols, maximum=256)
        _check_width("a_width", a_width, maximum=32)
        _check_width("b_width", b_width, maximum=32)
        _check_width("acc_width", acc_width, maximum=64)
        _check_acc(a_width, b_width, acc_width)
        if drain_rows not in (1, 2) or rows % drain_rows:
            raise ValueError(f"drain_rows must be 1 or 2 and divide rows ({rows!r}), not {drain_rows!r}")
        if not isinstance(b_groups, int) or b_groups < 1 or rows % b_groups:
            raise ValueError(f"b_groups must be a positive integer dividing rows ({rows!r}), not {b_groups!r}")
        self.drain_rows, self.b_groups, self.drain_count = drain_rows, b_groups, drain_count
        self.rows, self.cols = rows, cols
        self.a_width, self.b_width, self.acc_width = a_width, b_width, acc_width
        self.signed, self.depthwise = signed_, depthwise
        self.in_layout, self.out_layout = mac_array_layouts(
            rows, cols, a_width=a_width, b_width=b_width, acc_width=acc_width, signed_=signed_,
            depthwise=depthwise, drain_rows=drain_rows, b_groups=b_groups, drain_count=drain_count)
        super().__init__({
            "i": In(stream.Signature(self.in_layout)),
            "o": Out(stream.Signature(self.out_layout)),
            "busy": Out(1),
            "macs": Out(48),
        })

    def elaborate(self, platform):
        m = Module()
        R, C, D = self.rows, self.cols, self.drain_rows
        shape = signed(self.acc_width) if self.signed else unsigned(self.acc_width)
        acc = [[Signal(shape, name=f"acc_{r}_{c}") for c in range(C)] for r in range(R)]
        shadow = [[Signal(shape, name=f"shadow_{r}_{c}") for c in range(C)] for r in range(R)]

        draining = Signal()
        row = Signal(range(R))
        last_row = row == R - D
        p = self.i.payload
        if self.drain_count:
            # the rows to drain of the block in the shadow bank (the last step's count; 0: all)
            n_drain = Signal(range(R + 1))
            with m.If(self.i.valid & self.i.ready & p.last):
                m.d.sync += n_drain.eq(Mux(p.count == 0, R, p.count))
            last_row = row + D >= n_drain
        drain_done = self.o.valid & self.o.ready & last_row

        # A block may only finish (move to the shadow bank) when the shadow bank is free.
        m.d.comb += self.i.ready.eq(~p.last | ~draining | drain_done)
        step = self.i.valid & self.i.ready

        for r in range(R):
            for c in range(C):
                if self.depthwise:
                    a = Signal.like(p.a[r], name=f"op_a_{r}_{c}")
                    m.d.comb += a.eq(p.a[r])
                    with m.If(p.dw):
                        m.d.comb += a.eq(p.a2[r][c])
                else:
                    a = p.a[r]
                prod = a * (p.b[c] if self.b_groups == 1 else p.b[r % self.b_groups][c])
                new = Signal(shape, name=f"new_{r}_{c}")
                with m.If(p.first):
                    m.d.comb += new.eq(prod)
                with m.Else():
                    m.d.comb += new.eq(acc[r][c] + prod)
                with m.If(step):
                    with m.If(p.last):
                        m.d.sync += shadow[r][c].eq(new)
                    with m.Else():
                        m.d.sync += acc[r][c].eq(new)

        with m.If(step):
            m.d.sync += self.macs.eq(self.macs + R * C)

        # Drain the shadow bank row by row.
        m.d.comb += [
            self.o.valid.eq(draining),
            self.o.payload.index.eq(row),
            self.o.payload.last.eq(last_row),
        ]
        with m.Switch(row):
            for r in range(0, R, D):
                with m.Case(r):
                    for c in range(C):
                        m.d.comb += self.o.payload.row[c].eq(shadow[r][c])
                        if D == 2:
                            m.d.comb += self.o.payload.row1[c].eq(shadow[r + 1][c])
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += row.eq(row + D)
            with m.If(last_row):
                m.d.sync += [row.eq(0), draining.eq(0)]
        with m.If(step & p.last):
            m.d.sync += draining.eq(1)

        in_block = Signal()
        with m.If(step):
            m.d.sync += in_block.eq(~p.last)
        m.d.comb += self.busy.eq(in_block | draining)
        return m
