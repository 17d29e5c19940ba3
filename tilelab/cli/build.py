"""``tilelab build`` (build simulators ahead of time) and ``tilelab cache`` (show or clear the build cache)."""

from __future__ import annotations

import time

import click

from tilelab.cli.options import BadInput


def _tile(tile_fields):
    from tilelab.cli.options import tile_config
    from tilelab.pe_models.config import DEFAULT_TILE

    if tile_fields is None:
        return DEFAULT_TILE
    try:
        return tile_config(DEFAULT_TILE, tile_fields)
    except click.BadParameter as error:
        raise BadInput(f"invalid --tile: {error.message}") from None


def _units(tile_fields, mesh, eltwise):
    from tilelab.api.mesh import parse_mesh
    from tilelab.compile.mesh import MeshError
    from tilelab.drive.mesh import mesh_unit
    from tilelab.drive.tile import eltwise_unit, tile_unit
    from tilelab.pe_models.config import DEFAULT_ELTWISE, MeshConfig

    config = _tile(tile_fields)
    if mesh is None:
        units = [tile_unit(config)]
    else:
        try:
            rows, cols = parse_mesh(mesh)
            units = [mesh_unit(MeshConfig(rows=rows, cols=cols, tile=config, eltwise=eltwise))]
        except (MeshError, ValueError) as error:
            raise BadInput(f"invalid --mesh: {error}") from None
    if eltwise and mesh is None:
        units.append(eltwise_unit(DEFAULT_ELTWISE))
    return units


@click.command("build")
@click.option("--tile", "tile_fields", default=None,
              help="Tile configuration fields, e.g. rows=16,cols=16,ext_bytes=32 [default: the default tile].")
@click.option("--mesh", default=None, help="Build the RxC mesh of such tiles instead of one tile (e.g. 2x2).")
@click.option("--eltwise", is_flag=True,
              help="Also build the element-wise unit (on a mesh: the mesh's nodes get one each).")
@click.option("--sim", type=click.Choice(["verilator", "icarus"]), default="verilator", show_default=True,
              help="The simulator to build for.")
def build_command(tile_fields, mesh, eltwise, sim):
    """Build the simulators that ``tilelab conv`` / ``run`` would build, ahead of time.

    A second ``build`` (or the run itself) then finds them in the build cache (``tilelab cache ls``).
    Each build shows its phases (Amaranth to Verilog, Verilator, C++ compile) while it runs.
    """
    from tilelab.drive.server import build_unit
    from tilelab.sim.toolchain import icarus_available

    units = _units(tile_fields, mesh, eltwise)
    for unit in units:
        if sim not in unit.sims:
            raise BadInput(f"the {unit.name} cannot be simulated with --sim {sim}; it runs on "
                           f"{', '.join(s for s in unit.sims if s != 'amaranth')}")
    if sim == "icarus" and not icarus_available():
        raise BadInput("--sim icarus: Icarus Verilog is not installed (apt-get install iverilog)")
    for unit in units:
        t = time.perf_counter()
        _design, exe, cached = build_unit(unit, sim)
        state = "already built" if cached else f"built in {time.perf_counter() - t:.0f} s"
        click.echo(f"{unit.name} {unit.key}: {state} ({exe})")


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


@click.group("cache")
def cache_command():
    """Show or clear the build cache (``$TILELAB_CACHE_DIR``, else ``~/.cache/tilelab``)."""


@cache_command.command("ls")
def cache_ls():
    """List the cache's builds and converted designs with their sizes and ages."""
    from tilelab.sim.cache import default_cache_dir, list_cache

    entries = list_cache()
    now = time.time()
    click.echo(f"build cache {default_cache_dir()}: {len(entries)} entries, "
               f"{sum(e.bytes for e in entries) / 1e6:.1f} MB")
    if entries:
        click.echo(f"  {'kind':18s} {'top / unit':24s} {'MB':>8s} {'age':>7s}  name")
    for e in entries:
        click.echo(f"  {e.kind:18s} {e.top[:24]:24s} {e.bytes / 1e6:8.1f} {_age(now - e.created):>7s}  {e.name}")


@cache_command.command("clear")
def cache_clear():
    """Remove every build and converted design from the cache (they are rebuilt when next needed)."""
    from tilelab.sim.cache import clear_cache, default_cache_dir

    n, size = clear_cache()
    click.echo(f"removed {n} entries ({size / 1e6:.1f} MB) from {default_cache_dir()}")
