"""The one definition of every bit format: descriptors, records, flits and their field limits."""

from amaranth.hdl import Shape

__all__ = ["field_max"]


def field_max(struct, name: str) -> int:
    """Largest value the unsigned field ``name`` of ``struct`` (a ``data.Struct``) holds.

    Limits that come from a descriptor's field widths are derived here, so a wider field moves
    every check that depends on it.
    """
    return (1 << Shape.cast(struct.as_shape()[name].shape).width) - 1
