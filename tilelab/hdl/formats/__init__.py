"""The one definition of every bit format: descriptors, records, flits and their field limits.

One module per unit — :mod:`~tilelab.hdl.formats.tile` (the compute tile's program header,
read / compute / write descriptors, parameter records), :mod:`~tilelab.hdl.formats.eltwise` (the
element-wise unit's descriptors and parameter layouts), :mod:`~tilelab.hdl.formats.noc` (NoC
headers and flits), :mod:`~tilelab.hdl.formats.mesh` (data-mover descriptors),
:mod:`~tilelab.hdl.formats.addrgen` (address-generator descriptors) — each a set of ``data.Struct``
s, enums and limits that the RTL, the host compilers and the testbenches all use. Every name they
export is exported here too, except ``DESC_BYTES`` / ``DESC_BITS``, which the tile and the
element-wise unit define each for its own descriptors (take them from the unit's module).

:class:`Format` (:mod:`~tilelab.hdl.formats.bits`) packs a dict of field values into the integer
of a port and back, and lists each field's bit offset, width and signedness::

    from tilelab.hdl.formats import Format, ReadDesc
    word = Format(ReadDesc).pack({"kh": 3, "kw": 3, "src": 0x100})
    Format(ReadDesc).unpack(word)["kh"]        # 3
"""

from amaranth.hdl import Shape

__all__ = ["field_max"]


def field_max(struct, name: str) -> int:
    """Largest value the unsigned field ``name`` of ``struct`` (a ``data.Struct``) holds.

    Limits that come from a descriptor's field widths are derived here, so a wider field moves
    every check that depends on it.
    """
    return (1 << Shape.cast(struct.as_shape()[name].shape).width) - 1


def _export():
    from . import addrgen, bits, eltwise, mesh, noc, tile

    names = {}
    for module in (bits, addrgen, eltwise, mesh, noc, tile):
        for name in module.__all__:
            if name not in ("DESC_BYTES", "DESC_BITS"):
                names[name] = getattr(module, name)
    globals().update(names)
    globals().update(addrgen=addrgen, bits=bits, eltwise=eltwise, mesh=mesh, noc=noc, tile=tile)
    return sorted(names)


__all__ += _export() + ["addrgen", "bits", "eltwise", "mesh", "noc", "tile"]
