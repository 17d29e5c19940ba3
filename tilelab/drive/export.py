"""The Verilog of every unit for a user's own testbench or flow: :func:`unit_component`, :func:`export`.

``tilelab verilog tile|eltwise|router|mesh`` writes it. The component is the one the simulations
build (:func:`~tilelab.drive.tile.tile_unit`, :func:`~tilelab.drive.tile.eltwise_unit`,
:func:`~tilelab.drive.mesh.mesh_unit`; a router as the mesh's planes make it), and under the unit's
own top name the Verilog is the cached Verilog the simulations run. The exported file is one
self-contained Verilog file: a comment block describing every top-level port (direction, width,
and each field of a struct payload, from :class:`tilelab.hdl.formats.Format`), the design, then
the behavioural memory models it instantiates.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from amaranth.hdl import Shape, Value
from amaranth.lib import wiring

from tilelab.hdl.formats import Format
from tilelab.pe_models.config import EltwiseConfig, MeshConfig, TileConfig
from tilelab.sim.builders import icarus_time0_fix
from tilelab.sim.verilog import Design, to_verilog, verilog_models

__all__ = ["KINDS", "PLANE_KINDS", "Export", "describe_ports", "export", "unit_component"]

#: The units ``tilelab verilog`` exports, with what each is.
KINDS = {
    "tile": "the compute tile with its external memory model (what the simulations run; memory image by "
            "+extmem_init=FILE), or with --no-memory its external-memory ports at the top",
    "eltwise": "the element-wise unit with its external memory model, or with --no-memory its ports at the top",
    "router": "one NoC router of the mesh's planes, coordinates on its `at` input (as the mesh instantiates it)",
    "mesh": "the mesh of tiles with its node and memory-port memory models",
}

#: Router kinds: the mesh's request/response planes are unicast, the multicast plane multicast, and the
#: collective plane (meshes with element-wise units) an all-reduce router.
PLANE_KINDS = ("unicast", "multicast", "collective")


@dataclass(frozen=True)
class Export:
    """An exported unit.

    Attributes
    ----------
    design : Design
        Its Verilog (top module ``design.top``) and the memory models it instantiates.
    ports : list of dict
        Every top-level port (:func:`describe_ports`).
    text : str
        The one file to write: the port comment block, the design (with
        :func:`~tilelab.sim.builders.icarus_time0_fix`, as tilelab's Icarus builds have it), the
        memory models.
    """

    design: Design
    ports: list
    text: str

    def ports_json(self) -> str:
        """The port description as JSON (``tilelab verilog --ports``)."""
        return json.dumps({"top": self.design.top, "ports": self.ports}, indent=1) + "\n"


def unit_component(kind: str, *, tile: TileConfig, mesh: tuple[int, int] = (2, 2), eltwise: bool = False,
                   memory: bool = True, plane: str = "unicast"):
    """Build the component of unit ``kind`` as the simulations build it.

    Parameters
    ----------
    kind : {"tile", "eltwise", "router", "mesh"}
        The unit.
    tile : TileConfig
        The tile (of the mesh, of the routers' mesh; for ``"eltwise"`` the unit beside it,
        :meth:`EltwiseConfig.beside`).
    mesh : (int, int)
        Rows and columns of tiles (``"mesh"`` and ``"router"``).
    eltwise : bool
        ``"mesh"`` / ``"router"``: the mesh has element-wise units and a collective plane.
    memory : bool
        ``"tile"`` / ``"eltwise"``: with the external memory model (what is simulated); without
        it the unit's external-memory port is at the top.
    plane : {"unicast", "multicast", "collective"}
        ``"router"``: which plane's router.

    Returns
    -------
    (wiring.Component, Unit or None)
        The component and, when it is a unit the driver runs as it is, its
        :class:`~tilelab.drive.unit.Unit` (whose cached Verilog it has).
    """
    from .mesh import mesh_unit
    from .tile import eltwise_unit, tile_unit

    if kind not in KINDS:
        raise ValueError(f"unit must be one of {', '.join(map(repr, KINDS))}, not {kind!r}")
    if not isinstance(tile, TileConfig):
        raise TypeError(f"tile must be a TileConfig, not {tile!r}")
    if kind in ("tile", "eltwise"):
        unit = tile_unit(tile) if kind == "tile" else eltwise_unit(EltwiseConfig.beside(tile))
        top = unit.build(None)
        if memory:
            return top, unit
        return top.unit, None
    config = MeshConfig(rows=mesh[0], cols=mesh[1], tile=tile, eltwise=eltwise)
    if kind == "mesh":
        unit = mesh_unit(config)
        return unit.build(None), unit
    return _router(config, plane), None


def _router(config: MeshConfig, plane: str):
    from tilelab.hdl.shared import SharedModules
    from tilelab.noc.collective import CollectiveMesh
    from tilelab.noc.mesh import Mesh

    if plane not in PLANE_KINDS:
        raise ValueError(f"router plane must be one of {', '.join(map(repr, PLANE_KINDS))}, not {plane!r}")
    # The planes exactly as MeshTop makes them (tilelab.pe_models.mesh), shared: coordinates on ports.
    if plane == "collective":
        if not config.eltwise:
            raise ValueError("the collective plane exists in a mesh with element-wise units (eltwise=True)")
        noc = CollectiveMesh(rows=config.rows, cols=config.cols, lanes=config.collective_lanes,
                             shared=SharedModules())
    else:
        noc = Mesh(rows=config.rows, cols=config.cols + 1, plane=plane, data_width=8 * config.word_bytes,
                   depth=config.depth, max_packet=config.max_packet, shared=SharedModules())
    return noc.routers[0, 0]


def describe_ports(component: wiring.Component, design: Design) -> list[dict]:
    """Every top-level port of ``design`` (the Verilog of ``component``): name, direction, width, fields.

    Parameters
    ----------
    component : wiring.Component
        The converted component.
    design : Design
        Its Verilog (for the implicit ``clk`` / ``rst``).

    Returns
    -------
    list of dict
        ``{"name", "direction" ("input"/"output"), "width", "signed"}`` per port, plus ``"format"``
        (the shape's name) and ``"fields"`` (:meth:`tilelab.hdl.formats.Format.describe`) for a
        port whose shape is a struct, an array or an enum.
    """
    out = [{"name": name, "direction": "input", "width": 1, "signed": False}
           for name, _w in design.ports if name in ("clk", "rst")]
    for path, member, value in component.signature.flatten(component):
        shape = member.shape
        entry = {"name": "__".join(str(p) for p in path),
                 "direction": "input" if member.flow == wiring.In else "output",
                 "width": len(Value.cast(value)), "signed": Shape.cast(shape).signed}
        fmt = Format(shape)
        if len(fmt.fields) > 1 or fmt.fields[0].enum is not None:
            entry["format"] = shape.__name__ if isinstance(shape, type) else type(shape).__name__
            entry["fields"] = fmt.describe()
        out.append(entry)
    return out


def _comment_block(top: str, ports: list[dict]) -> str:
    lines = [f"// Top module {top}: its ports (tilelab.drive.export; the same as `tilelab verilog ... --ports`).",
             "// A struct port is one vector, its fields packed from bit 0 (tilelab.hdl.formats.Format packs",
             "// and unpacks them): field at [offset +: width]."]
    for p in ports:
        sign = " signed" if p["signed"] else ""
        lines.append(f"//   {p['direction']:<6} [{p['width'] - 1}:0]{sign} {p['name']}"
                     + (f"  ({p['format']})" if "format" in p else ""))
        for f in p.get("fields", ()):
            values = ", ".join(f"{k}={v}" for k, v in f.get("values", {}).items())
            extra = f" {f['enum']}: {values}" if "enum" in f else ""
            name = f["name"] or "(whole port)"
            lines.append(f"//       [{f['offset'] + f['width'] - 1}:{f['offset']}] {name}"
                         f"{' signed' if f['signed'] else ''}{extra}")
    return "\n".join(lines) + "\n"


_ICARUS_ONLY = re.compile(r"^(\s*)(initial #0 .*;)$", re.M)


def export(component: wiring.Component, *, top: str, unit=None) -> Export:
    """Convert ``component`` to one self-contained Verilog file with its ports described.

    Parameters
    ----------
    component : wiring.Component
        From :func:`unit_component`.
    top : str
        Top module name (a Verilog identifier).
    unit : Unit, optional
        The unit ``component`` is the design of: under its own top name its cached Verilog is used.

    Returns
    -------
    Export
    """
    if unit is not None and top == unit.top:
        design = unit.design()              # the cached Verilog of the simulations
    else:
        design = to_verilog(component, name=top)
    ports = describe_ports(component, design)
    # With Icarus's start-up fix (what tilelab's own Icarus builds compile), kept from Verilator (which
    # refuses a delay unless told --timing / --no-timing), so the same file runs on both under cocotb's runner.
    verilog = _ICARUS_ONLY.sub(r"\1`ifndef VERILATOR\n\1\2\n\1`endif", icarus_time0_fix(design.verilog))
    parts = [_comment_block(top, ports), verilog]
    for path in verilog_models(design.verilog):
        parts.append(f"// ---- {Path(path).name}: behavioural memory model (tilelab/hdl/verilog) ----\n")
        parts.append(Path(path).read_text())
    text = "".join(part if part.endswith("\n") else part + "\n" for part in parts)
    return Export(design=design, ports=ports, text=text)

