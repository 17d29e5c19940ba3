"""Affine address generator: descriptor and output bit formats, host packing, reference model.

A descriptor describes up to :data:`MAX_LOOPS` nested loops, loop 0 innermost::

    for idx[L-1] in range(count[L-1]):
        ...
            for idx[0] in range(count[0]):
                emit(base + sum(idx[k] * stride[k] for k in range(L)))

The hardware (:class:`tilelab.hdl.addrgen.AffineAddressGenerator`) computes addresses modulo
``2**addr_width``. Every bit layout is defined once, here, by :class:`AddrGenFormat`; the host
packs a descriptor with :meth:`AddrGenFormat.pack` (``layout.const({...}).as_bits()``) and the RTL
uses the very same layouts for its ports.

Examples
--------
>>> fmt = AddrGenFormat(addr_width=16, loops=2)
>>> d = AddrGenDescriptor(base=100, counts=(3, 2), strides=(1, 10))
>>> expand(d)
[100, 101, 102, 110, 111, 112]
>>> fmt.unpack(fmt.pack(d)) == AddrGenDescriptor(base=100, counts=(3, 2), strides=(1, 10))
True
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from amaranth.hdl import signed, unsigned
from amaranth.lib import data

from tilelab.checks import check_int

__all__ = ["MAX_LOOPS", "AddrGenFormat", "AddrGenDescriptor", "AddrGenOutput", "expand", "expand_outputs"]

#: Largest number of nested loops a descriptor may have.
MAX_LOOPS = 6




@dataclass(frozen=True)
class AddrGenDescriptor:
    """One nested-loop address pattern, as Python ints.

    Parameters
    ----------
    base : int
        Address of the first element (non-negative).
    counts : tuple of int
        Iterations of each loop, innermost first; each at least 1. One to :data:`MAX_LOOPS` loops.
    strides : tuple of int
        Signed address step of each loop, innermost first; as many as ``counts``.

    Raises
    ------
    ValueError
        On an empty or too long loop list, mismatched lengths, a count below 1 or a negative base.
        Width limits are checked by :meth:`AddrGenFormat.pack`.
    """

    base: int
    counts: tuple[int, ...]
    strides: tuple[int, ...] = field(default=())

    def __post_init__(self):
        check_int("base", self.base)
        if self.base < 0:
            raise ValueError(f"base must be a non-negative integer, not {self.base!r}")
        counts = tuple(self.counts)
        strides = tuple(self.strides)
        if not 1 <= len(counts) <= MAX_LOOPS:
            raise ValueError(f"a descriptor must have 1 to {MAX_LOOPS} loops, not {len(counts)!r}")
        if len(strides) != len(counts):
            raise ValueError(f"strides must have one entry per loop ({len(counts)!r}), "
                             f"not {len(strides)!r}")
        for k, count in enumerate(counts):
            check_int(f"counts[{k}]", count)
            if count < 1:
                raise ValueError(f"counts[{k}] must be a positive integer, not {count!r}")
        for k, stride in enumerate(strides):
            check_int(f"strides[{k}]", stride)
        object.__setattr__(self, "counts", counts)
        object.__setattr__(self, "strides", strides)

    @property
    def loops(self):
        """Number of loops."""
        return len(self.counts)

    @property
    def length(self):
        """Number of addresses the descriptor produces."""
        total = 1
        for count in self.counts:
            total *= count
        return total

    def address_range(self):
        """Return ``(lowest, highest)`` address reached, before any wrap-around."""
        low = high = self.base
        for count, stride in zip(self.counts, self.strides, strict=True):
            span = (count - 1) * stride
            low += min(0, span)
            high += max(0, span)
        return low, high


@dataclass(frozen=True)
class AddrGenOutput:
    """One generated address with its loop position, as decoded by :meth:`AddrGenFormat.decode_output`.

    Attributes
    ----------
    addr : int
        The address (modulo ``2**addr_width``).
    idx : tuple of int
        Loop indices, innermost first.
    loop_last : int
        Bit ``k`` set when loops ``0..k`` are all at their final index (loop ``k`` finishes a pass).
    last : bool
        The final address of the descriptor.
    """

    addr: int
    idx: tuple[int, ...]
    loop_last: int
    last: bool


def expand_outputs(descriptor, *, addr_width=None, loops=None):
    """Reference model: every output of ``descriptor`` in order.

    Parameters
    ----------
    descriptor : AddrGenDescriptor
        The pattern.
    addr_width : int, optional
        Wrap addresses modulo ``2**addr_width``, as the hardware does.
    loops : int, optional
        Pad ``idx`` and ``loop_last`` to this many loops (unused loops have count 1), as the
        hardware does; defaults to ``descriptor.loops``.

    Returns
    -------
    list of AddrGenOutput
    """
    nloops = descriptor.loops if loops is None else loops
    if nloops < descriptor.loops:
        raise ValueError(f"loops must be at least the descriptor's {descriptor.loops!r}, not {nloops!r}")
    counts = descriptor.counts + (1,) * (nloops - descriptor.loops)
    strides = descriptor.strides + (0,) * (nloops - descriptor.loops)
    mask = None if addr_width is None else (1 << addr_width) - 1
    outputs = []
    # itertools.product varies its last argument fastest: feed it the outermost loop first.
    for reversed_idx in itertools.product(*(range(c) for c in reversed(counts))):
        idx = tuple(reversed(reversed_idx))
        addr = descriptor.base + sum(i * s for i, s in zip(idx, strides, strict=True))
        loop_last = 0
        for k in range(nloops):
            if all(idx[j] == counts[j] - 1 for j in range(k + 1)):
                loop_last |= 1 << k
        outputs.append(AddrGenOutput(addr=addr if mask is None else addr & mask, idx=idx,
                                     loop_last=loop_last, last=loop_last >> (nloops - 1) & 1 == 1))
    return outputs


def expand(descriptor, *, addr_width=None):
    """Reference model: the addresses ``descriptor`` produces, in order.

    Parameters
    ----------
    descriptor : AddrGenDescriptor
        The pattern.
    addr_width : int, optional
        Wrap addresses modulo ``2**addr_width``, as the hardware does; by default they are
        returned unbounded.

    Returns
    -------
    list of int
    """
    return [out.addr for out in expand_outputs(descriptor, addr_width=addr_width)]


@dataclass(frozen=True)
class AddrGenFormat:
    """Widths of one address-generator instance and the single definition of its bit layouts.

    Parameters
    ----------
    addr_width : int
        Address width, 1 to 64.
    loops : int
        Hardware loops, 1 to :data:`MAX_LOOPS`.
    count_width : int
        Width of each loop count and index, 1 to 32; counts go up to ``2**count_width - 1``.
    stride_width : int, optional
        Width of each signed stride, 2 to 65; defaults to ``addr_width + 1`` (any step in either
        direction).
    """

    addr_width: int = 32
    loops: int = MAX_LOOPS
    count_width: int = 16
    stride_width: int | None = None

    def __post_init__(self):
        for name, low, high in (("addr_width", 1, 64), ("loops", 1, MAX_LOOPS), ("count_width", 1, 32)):
            value = check_int(name, getattr(self, name))
            if not low <= value <= high:
                raise ValueError(f"{name} must be an integer in the range {low} to {high}, not {value!r}")
        if self.stride_width is None:
            object.__setattr__(self, "stride_width", self.addr_width + 1)
        check_int("stride_width", self.stride_width)
        if not 2 <= self.stride_width <= 65:
            raise ValueError(f"stride_width must be an integer in the range 2 to 65, "
                             f"not {self.stride_width!r}")

    @property
    def descriptor_layout(self):
        """Layout of a descriptor: ``base``, ``count[loops]``, ``stride[loops]`` (signed)."""
        return data.StructLayout({
            "base": unsigned(self.addr_width),
            "count": data.ArrayLayout(unsigned(self.count_width), self.loops),
            "stride": data.ArrayLayout(signed(self.stride_width), self.loops),
        })

    @property
    def output_layout(self):
        """Layout of one output: ``addr``, ``idx[loops]``, ``loop_last`` (bit per loop), ``last``."""
        return data.StructLayout({
            "addr": unsigned(self.addr_width),
            "idx": data.ArrayLayout(unsigned(self.count_width), self.loops),
            "loop_last": unsigned(self.loops),
            "last": unsigned(1),
        })

    def check(self, descriptor):
        """Raise ``ValueError`` unless ``descriptor`` fits this format's widths.

        Parameters
        ----------
        descriptor : AddrGenDescriptor
            The descriptor to check.
        """
        if not isinstance(descriptor, AddrGenDescriptor):
            raise TypeError(f"descriptor must be an AddrGenDescriptor, not {descriptor!r}")
        if descriptor.loops > self.loops:
            raise ValueError(f"descriptor has {descriptor.loops!r} loops, more than the format's "
                             f"{self.loops!r}")
        if descriptor.base >= 1 << self.addr_width:
            raise ValueError(f"base must be in the range 0 to {(1 << self.addr_width) - 1}, "
                             f"not {descriptor.base!r}")
        max_count = (1 << self.count_width) - 1
        for k, count in enumerate(descriptor.counts):
            if count > max_count:
                raise ValueError(f"counts[{k}] must be in the range 1 to {max_count}, not {count!r}")
        low, high = -(1 << (self.stride_width - 1)), (1 << (self.stride_width - 1)) - 1
        for k, stride in enumerate(descriptor.strides):
            if not low <= stride <= high:
                raise ValueError(f"strides[{k}] must be in the range {low} to {high}, not {stride!r}")

    def pack(self, descriptor):
        """Pack ``descriptor`` into the integer the hardware's ``desc`` stream carries.

        Unused loops get count 1 and stride 0.

        Parameters
        ----------
        descriptor : AddrGenDescriptor
            The descriptor.

        Returns
        -------
        int
        """
        self.check(descriptor)
        pad = self.loops - descriptor.loops
        return self.descriptor_layout.const({
            "base": descriptor.base,
            "count": list(descriptor.counts) + [1] * pad,
            "stride": list(descriptor.strides) + [0] * pad,
        }).as_bits()

    def unpack(self, bits):
        """Decode packed descriptor bits (all :attr:`loops` loops are kept).

        Parameters
        ----------
        bits : int
            As produced by :meth:`pack`.

        Returns
        -------
        AddrGenDescriptor
        """
        view = self.descriptor_layout.from_bits(bits)
        return AddrGenDescriptor(base=view.base, counts=tuple(view.count[k] for k in range(self.loops)),
                                 strides=tuple(view.stride[k] for k in range(self.loops)))

    def decode_output(self, bits):
        """Decode the bits of one output of the hardware.

        Parameters
        ----------
        bits : int
            An ``o.payload`` value.

        Returns
        -------
        AddrGenOutput
        """
        view = self.output_layout.from_bits(bits)
        return AddrGenOutput(addr=view.addr, idx=tuple(view.idx[k] for k in range(self.loops)),
                             loop_last=view.loop_last, last=bool(view.last))
