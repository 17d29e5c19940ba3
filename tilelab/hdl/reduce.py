"""Balanced reduction trees (sum or max), combinational or pipelined."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Shape, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from tilelab.checks import check_int

__all__ = ["ReductionTree"]

_OPS = ("sum", "max")


class ReductionTree(wiring.Component):
    """Reduce ``fan_in`` values to one with a balanced binary tree of adders or comparators.

    The tree has ``ceil(log2(fan_in))`` levels; at a level with an odd number of values the last
    one passes through. With ``op="sum"`` every level widens by one bit, so the output has
    ``width + ceil(log2(fan_in))`` bits and never overflows; with ``op="max"`` the output has
    ``width`` bits.

    With ``pipeline=True`` the result of every level is registered: ``o`` shows the reduction of
    the ``i`` presented :attr:`latency` cycles earlier, and ``o_valid`` is ``i_valid`` delayed by
    the same amount. The pipeline never stalls (there is no ready): one new input per cycle.

    Parameters
    ----------
    width : int
        Width of each input value (at least 1).
    fan_in : int
        Number of input values (at least 1).
    op : {"sum", "max"}
        The reduction.
    signed : bool
        Inputs (and the output) are two's complement signed.
    pipeline : bool
        Register every level.

    Members
    -------
    i : In(data.ArrayLayout(Shape(width, signed), fan_in))
        The values to reduce.
    o : Out(Shape(out_width, signed))
        The result.
    i_valid : In(1)
        Only with ``pipeline=True``: ``i`` holds a value to reduce.
    o_valid : Out(1)
        Only with ``pipeline=True``: ``o`` holds a result.

    Attributes
    ----------
    latency : int
        Cycles from ``i`` to ``o``: 0 if combinational, else ``ceil(log2(fan_in))``.
    out_width : int
        Width of ``o``.
    """

    def __init__(self, *, width, fan_in, op="sum", signed=True, pipeline=False):
        check_int("width", width, 1)
        check_int("fan_in", fan_in, 1)
        if op not in _OPS:
            raise ValueError(f"op must be one of {_OPS!r}, not {op!r}")
        if not isinstance(signed, bool):
            raise TypeError(f"signed must be a bool, not {signed!r}")
        if not isinstance(pipeline, bool):
            raise TypeError(f"pipeline must be a bool, not {pipeline!r}")
        self._width = width
        self._fan_in = fan_in
        self._op = op
        self._signed = signed
        self._pipeline = pipeline
        self._levels = ceil_log2(fan_in)
        self.out_width = width + self._levels if op == "sum" else width
        self.latency = self._levels if pipeline else 0
        members = {
            "i": In(data.ArrayLayout(Shape(width, signed), fan_in)),
            "o": Out(Shape(self.out_width, signed)),
        }
        if pipeline:
            members["i_valid"] = In(1)
            members["o_valid"] = Out(1)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        values = [self.i[k] for k in range(self._fan_in)]
        valid = self.i_valid if self._pipeline else None
        for level in range(self._levels):
            grow = 1 if self._op == "sum" else 0
            shape = Shape(self._width + (level + 1) * grow, self._signed)
            domain = m.d.sync if self._pipeline else m.d.comb
            reduced = []
            for k in range(0, len(values), 2):
                node = Signal(shape, name=f"l{level}_n{k // 2}", reset_less=True)
                if k + 1 == len(values):
                    domain += node.eq(values[k])
                elif self._op == "sum":
                    domain += node.eq(values[k] + values[k + 1])
                else:
                    domain += node.eq(Mux(values[k] > values[k + 1], values[k], values[k + 1]))
                reduced.append(node)
            values = reduced
            if self._pipeline:
                next_valid = Signal(name=f"l{level}_valid")
                m.d.sync += next_valid.eq(valid)
                valid = next_valid
        (result,) = values
        m.d.comb += self.o.eq(result)
        if self._pipeline:
            m.d.comb += self.o_valid.eq(valid)
        return m
