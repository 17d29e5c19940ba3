"""Small sequential arithmetic units: an unsigned divider and an integer square root, one bit per cycle.

Both take ``start`` with their operands, raise ``busy`` from the next cycle on, and hold their
results once ``busy`` falls again (until the next ``start``).
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SeqDivider", "SeqIsqrt"]


class SeqDivider(wiring.Component):
    """Unsigned restoring division: ``quotient = dividend // divisor``, ``remainder = dividend % divisor``.

    ``width`` cycles per division. A zero divisor gives an all-ones quotient.

    Parameters
    ----------
    width : int
        Bits of the dividend, divisor, quotient and remainder.

    Members
    -------
    start : In(1)
        Latch the operands and begin.
    dividend, divisor : In(width)
    busy : Out(1)
    quotient, remainder : Out(width)
    """

    def __init__(self, width: int = 64):
        if not isinstance(width, int) or not 1 <= width <= 256:
            raise ValueError(f"divider width must be an integer in [1, 256], not {width!r}")
        self.width = width
        super().__init__({"start": In(1), "dividend": In(width), "divisor": In(width), "busy": Out(1),
                          "quotient": Out(width), "remainder": Out(width)})

    def elaborate(self, platform):
        m = Module()
        w = self.width
        left = Signal(range(w + 1))
        divisor = Signal(w)
        rest = Signal(w)  # dividend bits not yet shifted in
        rem = Signal(w + 1)
        quo = Signal(w)
        m.d.comb += [self.quotient.eq(quo), self.remainder.eq(rem[:w])]
        with m.If(self.start):
            m.d.sync += [divisor.eq(self.divisor), rest.eq(self.dividend), rem.eq(0), quo.eq(0), left.eq(w),
                         self.busy.eq(1)]
        with m.Elif(self.busy):
            shifted = Cat(rest[w - 1], rem[:w])
            take = shifted >= divisor
            m.d.sync += [
                rem.eq(Mux(take, shifted - divisor, shifted)),
                quo.eq(Cat(take, quo[:w - 1])),
                rest.eq(rest << 1),
                left.eq(left - 1),
            ]
            with m.If(left == 1):
                m.d.sync += self.busy.eq(0)
        return m


class SeqIsqrt(wiring.Component):
    """Floor square root by the digit-by-digit (bit-pair) method of :func:`tilelab.reference.golden.isqrt`.

    ``width // 2`` cycles; the result ``r`` satisfies ``r² <= value < (r + 1)²``.

    Parameters
    ----------
    width : int
        Bits of the operand (even).

    Members
    -------
    start : In(1)
    value : In(width)
    busy : Out(1)
    root : Out(width // 2)
    """

    def __init__(self, width: int = 64):
        if not isinstance(width, int) or width < 2 or width % 2 or width > 256:
            raise ValueError(f"square-root width must be an even integer in [2, 256], not {width!r}")
        self.width = width
        super().__init__({"start": In(1), "value": In(width), "busy": Out(1), "root": Out(width // 2)})

    def elaborate(self, platform):
        m = Module()
        w = self.width
        v = Signal(w)
        result = Signal(w)
        bit = Signal(w)
        m.d.comb += self.root.eq(result)
        with m.If(self.start):
            m.d.sync += [v.eq(self.value), result.eq(0), bit.eq(1 << (w - 2)), self.busy.eq(1)]
        with m.Elif(self.busy):
            trial = (result + bit)[:w]
            take = v >= trial
            m.d.sync += [
                v.eq(Mux(take, v - trial, v)),
                result.eq(Mux(take, (result >> 1) + bit, result >> 1)),
                bit.eq(bit >> 2),
            ]
            with m.If(bit == 1):
                m.d.sync += self.busy.eq(0)
        return m
