"""``tilelab verilog BLOCK|UNIT [options] -o FILE``: write the Verilog of a building block or a unit.

Units (``tile``, ``eltwise``, ``router``, ``mesh``) are built as the simulations build them
(:mod:`tilelab.drive.export`); blocks come from the catalogue :data:`tilelab.hdl.registry.BLOCKS`.
Every command writes one self-contained file whose first lines describe the ports, and with
``--ports FILE`` the same description as JSON.
"""

from __future__ import annotations

import warnings

import click
from amaranth.hdl import UnusedElaboratable

from tilelab.cli.options import TILE_HELP
from tilelab.hdl.registry import BLOCKS, BlockEntry


def _write(export, output, ports):
    """Write the export's Verilog (and its ports JSON); say what was written on stderr."""
    if output == "-":
        click.echo(export.text, nl=False)
    else:
        with open(output, "w") as f:
            f.write(export.text)
        click.echo(f"wrote {output}: module {export.design.top}, {len(export.ports)} ports, "
                   f"{export.text.count(chr(10))} lines", err=True)
    if ports is not None:
        with open(ports, "w") as f:
            f.write(export.ports_json())
        click.echo(f"wrote {ports}: {len(export.ports)} ports", err=True)


def _check_paths(output, ports):
    from tilelab.cli.options import check_inputs_outputs

    check_inputs_outputs({}, {"-o": None if output == "-" else output, "--ports": ports},
                         suffixes={"--ports": (".json",)} if ports else None)


def _check_top(top):
    if not top.isidentifier():
        raise click.BadParameter(f"top module name must be a Verilog identifier, not {top!r}", param_hint="'--top'")


_COMMON = [
    click.Option(["-o", "--output"], default="-", show_default=True, help="output file ('-' for stdout)"),
    click.Option(["--ports"], default=None, type=click.Path(dir_okay=False),
                 help="also write the ports (direction, width, struct fields) as JSON here"),
]


def _command_for(entry: BlockEntry) -> click.Command:
    def run(output, top, ports, **kwargs):
        from tilelab.drive.export import export

        _check_paths(output, ports)
        _check_top(top)
        try:
            component = entry.build(**kwargs)
        except (ValueError, TypeError) as exc:
            raise click.UsageError(str(exc)) from None
        _write(export(component, top=top), output, ports)

    params = [*_COMMON,
              click.Option(["--top"], default=entry.name.replace("-", "_"), show_default=True, help="top module name")]
    for p in entry.params:
        flag = "--" + p.name.rstrip("_").replace("_", "-")
        if p.type is bool:
            params.append(click.Option([f"{flag}/--no-{flag[2:]}", p.name], default=p.default, show_default=True,
                                       help=p.help))
        else:
            params.append(click.Option([flag, p.name], type=p.type, default=p.default, show_default=True,
                                       help=p.help))
    return click.Command(entry.name, callback=run, params=params, help=entry.help)


def _unit_command(kind: str, help_text: str) -> click.Command:
    from tilelab.drive.export import PLANE_KINDS

    def run(output, top, ports, tile_fields, mesh=None, eltwise=False, memory=True, plane="unicast"):
        from tilelab.api.mesh import parse_mesh
        from tilelab.cli.options import tile_config
        from tilelab.compile.mesh import MeshError
        from tilelab.drive.export import export, unit_component
        from tilelab.pe_models.config import DEFAULT_TILE

        _check_paths(output, ports)
        _check_top(top)
        # Under the unit's own top name the cached Verilog is written: the component is built for its
        # port description only, and its parts are never elaborated.
        warnings.filterwarnings("ignore", category=UnusedElaboratable)
        config = DEFAULT_TILE if tile_fields is None else tile_config(DEFAULT_TILE, tile_fields)
        shape = (2, 2)
        if mesh is not None:
            try:
                shape = parse_mesh(mesh)
            except (MeshError, ValueError) as exc:
                raise click.BadParameter(str(exc), param_hint="'--mesh'") from None
        try:
            component, unit = unit_component(kind, tile=config, mesh=shape, eltwise=eltwise or plane == "collective",
                                             memory=memory, plane=plane)
        except (ValueError, TypeError) as exc:
            raise click.UsageError(str(exc)) from None
        _write(export(component, top=top, unit=unit), output, ports)

    default_top = {"tile": "tile_top", "eltwise": "eltwise_top", "router": "router", "mesh": "mesh_top"}[kind]
    params = [*_COMMON,
              click.Option(["--top"], default=default_top, show_default=True, help="top module name"),
              click.Option(["--tile", "tile_fields"], default=None, help=TILE_HELP + " [default: the default tile]")]
    if kind in ("mesh", "router"):
        params.append(click.Option(["--mesh"], default="2x2", show_default=True,
                                   help="tiles RxC (a router: of the mesh it is made for)"))
    if kind == "mesh":
        params.append(click.Option(["--eltwise/--no-eltwise"], default=False, show_default=True,
                                   help="an element-wise unit beside every tile, and a collective plane"))
    if kind in ("tile", "eltwise"):
        params.append(click.Option(["--memory/--no-memory"], default=True, show_default=True,
                                   help="with the external memory model (what is simulated), or the unit's "
                                        "external-memory port at the top"))
    if kind == "router":
        params.append(click.Option(["--plane"], type=click.Choice(PLANE_KINDS), default="unicast",
                                   show_default=True, help="the plane whose router (request/response: unicast)"))
    return click.Command(kind, callback=run, params=params, help=help_text)


@click.group("verilog")
def command():
    """Write the Verilog of a unit or a building block (one subcommand each).

    The first lines of the file describe every port: direction, width, and each field of a
    struct payload (bit offset, width, signedness), as tilelab.hdl.formats.Format packs it.
    """


def _add_commands():
    from tilelab.drive.export import KINDS

    for kind, text in KINDS.items():
        command.add_command(_unit_command(kind, text[0].upper() + text[1:] + "."))
    for entry in BLOCKS.values():
        command.add_command(_command_for(entry))


_add_commands()
