"""Packing and unpacking of bit formats as plain Python integers and dicts, and their field tables.

Every format is an Amaranth shape (a ``data.Struct`` of this package, a layout such as
:func:`tilelab.hdl.mac.mac_array_layouts` returns, an enum or a plain width). A port of that shape
is one flat vector in the Verilog (``i__payload``), its fields packed from the least significant bit
on. :class:`Format` turns a dict of field values into that vector's integer and back, and lists
every field's name, bit offset, width and signedness, so a testbench written without Amaranth's
``View`` objects drives the port bit-exact. The port descriptions of ``tilelab verilog --ports``
are written from the same tables.

Examples
--------
>>> from tilelab.hdl.formats import Format
>>> from tilelab.hdl.mac import mac_array_layouts
>>> step = Format(mac_array_layouts(2, 2)[0])
>>> word = step.pack({"a": [1, -2], "b": [3, 4], "first": 1, "last": 0})
>>> step.unpack(word)["a"]
[1, -2]
>>> [(f.name, f.offset, f.width, f.signed) for f in step.fields][:2]
[('a[0]', 0, 8, True), ('a[1]', 8, 8, True)]
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from amaranth.hdl import Shape, ShapeCastable
from amaranth.lib import data

__all__ = ["BitField", "Format", "pack", "unpack"]


@dataclass(frozen=True)
class BitField:
    """One leaf field of a format: where its bits are in the packed integer.

    Attributes
    ----------
    name : str
        Dotted path from the top (``"hdr.dst.x"``), array elements as ``"a[3]"``.
    offset : int
        Bit offset of its least significant bit.
    width : int
        Bits.
    signed : bool
        Two's complement.
    enum : str, optional
        Name of the enum whose values the field holds, with ``values`` its members.
    values : dict
        ``{member name: value}`` of the enum (empty for other fields).
    """

    name: str
    offset: int
    width: int
    signed: bool
    enum: str | None = None
    values: dict = None

    def as_dict(self) -> dict:
        """JSON-able form (the entries of ``tilelab verilog --ports``)."""
        out = {"name": self.name, "offset": self.offset, "width": self.width, "signed": self.signed}
        if self.enum is not None:
            out["enum"] = self.enum
            out["values"] = dict(self.values)
        return out


def _layout(shape):
    if isinstance(shape, data.Layout):
        return shape
    if isinstance(shape, type) and issubclass(shape, data.View):
        return data.Layout.cast(shape)
    if isinstance(shape, ShapeCastable):
        try:
            return data.Layout.cast(shape)
        except TypeError:
            return None
    return None


def _leaves(shape, name, offset):
    layout = _layout(shape)
    if layout is None or not isinstance(layout, (data.StructLayout, data.ArrayLayout, data.UnionLayout)):
        plain = Shape.cast(shape)
        enum_cls = shape if isinstance(shape, type) and issubclass(shape, enum.Enum) else None
        yield BitField(name, offset, plain.width, plain.signed,
                       enum_cls.__name__ if enum_cls else None,
                       {m.name: m.value for m in enum_cls} if enum_cls else {})
        return
    if isinstance(layout, data.ArrayLayout):
        step = Shape.cast(layout.elem_shape).width
        for k in range(layout.length):
            yield from _leaves(layout.elem_shape, f"{name}[{k}]", offset + k * step)
        return
    for key, field in layout:
        yield from _leaves(field.shape, f"{name}.{key}" if name else str(key), offset + field.offset)


class Format:
    """A bit format: pack a dict of field values into an integer, unpack one, list the fields.

    Parameters
    ----------
    shape : shape-castable
        A ``data.Struct`` subclass, an Amaranth ``data.Layout``, an enum with a shape, or a width.

    Attributes
    ----------
    shape : shape-castable
        The shape it was made from.
    width : int
        Bits of the packed integer.
    fields : tuple of BitField
        Every leaf field, in bit order.
    """

    def __init__(self, shape):
        self.shape = shape
        self.width = Shape.cast(shape).width
        self._layout = _layout(shape)
        self.fields = tuple(_leaves(shape, "", 0))

    def __repr__(self):
        return f"Format({self.shape!r})"

    def pack(self, values) -> int:
        """The integer whose bits hold ``values``.

        Parameters
        ----------
        values : dict or int
            ``{field: value}``, nested for struct fields (a dict) and array fields (a list);
            fields left out are 0. Enum fields take a member or its value. A plain (non-struct)
            format takes an integer.

        Returns
        -------
        int
            Non-negative, below ``2 ** width``: what a cocotb handle of the port is set to.

        Raises
        ------
        ValueError
            A field that the format does not have, or a value that does not fit its field.
        """
        return _pack(self.shape, values, "")

    def unpack(self, bits: int):
        """The field values held in ``bits`` (the inverse of :meth:`pack`).

        Parameters
        ----------
        bits : int
            The port's value (``int(dut.o__payload.value)``), ``0 <= bits < 2 ** width``.

        Returns
        -------
        dict or int
            ``{field: value}`` (nested dicts and lists; signed fields as negative integers, enum
            fields as their integer value), or an integer for a plain format.
        """
        bits = int(bits)
        if not 0 <= bits < (1 << self.width):
            raise ValueError(f"a {self.width}-bit format holds 0 .. {(1 << self.width) - 1}, not {bits!r}")
        return _unpack(self.shape, bits)

    def describe(self) -> list[dict]:
        """Every field as a JSON-able dict (:meth:`BitField.as_dict`)."""
        return [f.as_dict() for f in self.fields]


def _pack(shape, value, name) -> int:
    layout = _layout(shape)
    where = f"field {name!r}" if name else "the value"
    if isinstance(layout, data.ArrayLayout):
        if not isinstance(value, Sequence) or isinstance(value, str) or len(value) > layout.length:
            raise ValueError(f"{where} is an array of {layout.length}, not {value!r}")
        step = Shape.cast(layout.elem_shape).width
        return sum(_pack(layout.elem_shape, v, f"{name}[{k}]") << (k * step) for k, v in enumerate(value))
    if isinstance(layout, (data.StructLayout, data.UnionLayout)):
        if not isinstance(value, Mapping):
            raise ValueError(f"{where} is a struct with fields {[k for k, _ in layout]!r}, not {value!r}")
        known = {key: field for key, field in layout}
        unknown = sorted(set(value) - set(known))
        if unknown:
            raise ValueError(f"{where} has no field(s) {unknown!r}; its fields are {list(known)!r}")
        return sum(_pack(known[key].shape, v, f"{name}.{key}" if name else key) << known[key].offset
                   for key, v in value.items())
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, bool):
        value = int(value)
    if not isinstance(value, int):
        raise ValueError(f"{where} takes an integer, not {value!r}")
    plain = Shape.cast(shape)
    lo, hi = (-(1 << (plain.width - 1)), (1 << (plain.width - 1)) - 1) if plain.signed else (0, (1 << plain.width) - 1)
    if not lo <= value <= hi:
        kind = "signed" if plain.signed else "unsigned"
        raise ValueError(f"{where} is {plain.width} bits {kind}: {lo} .. {hi}, not {value!r}")
    return value & ((1 << plain.width) - 1)


def _unpack(shape, bits):
    layout = _layout(shape)
    if isinstance(layout, data.ArrayLayout):
        step = Shape.cast(layout.elem_shape).width
        return [_unpack(layout.elem_shape, (bits >> (k * step)) & ((1 << step) - 1)) for k in range(layout.length)]
    if isinstance(layout, (data.StructLayout, data.UnionLayout)):
        return {key: _unpack(field.shape, (bits >> field.offset) & ((1 << Shape.cast(field.shape).width) - 1))
                for key, field in layout}
    plain = Shape.cast(shape)
    if plain.signed and plain.width and bits >> (plain.width - 1):
        return bits - (1 << plain.width)
    return bits


def pack(shape, values) -> int:
    """``Format(shape).pack(values)``: the integer whose bits hold ``values``."""
    return Format(shape).pack(values)


def unpack(shape, bits: int):
    """``Format(shape).unpack(bits)``: the field values held in ``bits``."""
    return Format(shape).unpack(bits)
