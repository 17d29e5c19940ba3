"""``tilelab estimate``: a network's cycles layer by layer from the analytical model, no simulation."""

from __future__ import annotations

import json
import time

import click

from tilelab.cli.options import BadInput as _BadInput
from tilelab.cli.options import Int, check_input_fits, check_inputs_outputs


@click.command("estimate")
@click.argument("model")
@click.option("--image-size", type=Int(lo=1), default=None, help="Input height/width [default: the model's own].")
@click.option("--batch", type=Int(lo=1), default=1, show_default=True, help="Input batch.")
@click.option("--tile", "tile_fields", default=None,
              help="Tile configuration fields, e.g. rows=16,cols=16,ext_bytes=32 [default: the default tile].")
@click.option("--mesh", default="1x1", show_default=True,
              help="Tiles RxC: a larger mesh shards each conv/fc layer over its tiles (as tilelab run --mesh).")
@click.option("--json", "json_file", type=click.Path(dir_okay=False), default=None,
              help="Also write the estimates (per layer and totals) as JSON here.")
def command(model, image_size, batch, tile_fields, mesh, json_file):
    """Estimate MODEL's cycles on one compute tile, layer by layer, without simulating it.

    MODEL is a built-in model or a quantized ONNX model (a path ending in .onnx: the default tile
    then has onnxruntime's requantization, as ``tilelab run FILE.onnx`` builds it).

    The layers are those of ``tilelab run`` (same names): conv / fc layers on the compute tile,
    pooling, add and ReLU on the element-wise unit. For each: predicted cycles, MAC utilization,
    external bytes, the bound that sets it (array, array drain, read port, write port, overhead)
    and how far it is from its physical bound (MACs / (R·C), bytes / port width). On a mesh the
    conv / fc layers are sharded as ``tilelab run --mesh`` shards them; its element-wise layers
    are not estimated yet.
    """
    from tilelab.api.mesh import parse_mesh
    from tilelab.cli.options import tile_config
    from tilelab.compile.mesh import MeshError
    from tilelab.estimate import estimate_model
    from tilelab.net.lowering import LoweringError
    from tilelab.net.models import MODELS
    from tilelab.pe_models.config import DEFAULT_TILE

    onnx = model.endswith(".onnx")
    if not onnx and model not in MODELS:
        raise _BadInput(f"unknown model {model!r}; known models: {', '.join(sorted(MODELS))}")
    if onnx and image_size is not None:
        raise _BadInput("--image-size: an ONNX model's input shape is fixed; --image-size does not apply")
    base = DEFAULT_TILE.replace(float_requant=True) if onnx else DEFAULT_TILE
    config = base
    if tile_fields is not None:
        try:
            config = tile_config(base, tile_fields)
        except click.BadParameter as error:
            raise _BadInput(f"invalid --tile: {error.message}") from None
    try:
        rows, cols = parse_mesh(mesh)
        mesh_config = None
        if (rows, cols) != (1, 1):
            from tilelab.pe_models.config import MeshConfig

            mesh_config = MeshConfig(rows=rows, cols=cols, tile=config, eltwise=True)
    except (MeshError, ValueError) as error:
        raise _BadInput(f"invalid --mesh: {error}") from None
    check_inputs_outputs({"MODEL": model} if onnx else {}, {"--json": json_file})
    if onnx:
        return _estimate_onnx(model, batch, config, mesh_config, json_file)
    from tilelab.net.models import get_model

    try:
        shape = get_model(model, image_size=image_size, batch=batch).nodes[0].shape
    except ValueError as error:
        raise _BadInput(str(error)) from None
    tiles = rows * cols
    check_input_fits("--image-size" if image_size is not None else "MODEL", shape,
                     tiles * config.ext_words * config.ext_bytes,
                     "the external memory of the tile" if tiles == 1 else f"the node memories of the {tiles} tiles")
    t0 = time.perf_counter()
    try:
        result = estimate_model(model, image_size=image_size, batch=batch, config=config, mesh=mesh_config)
    except LoweringError as error:
        raise click.ClickException(str(error)) from None
    except ValueError as error:
        raise _BadInput(str(error)) from None
    _report(model, result, time.perf_counter() - t0, json_file)


def _estimate_onnx(path, batch, config, mesh_config, json_file):
    from tilelab.estimate import estimate_onnx
    from tilelab.net.onnx import OnnxError

    given = click.get_current_context().get_parameter_source("batch") != click.core.ParameterSource.DEFAULT
    t0 = time.perf_counter()
    try:
        result = estimate_onnx(path, batch=batch if given else None, config=config, mesh=mesh_config)
    except OnnxError as error:
        raise _BadInput(f"MODEL: {error}") from None
    _report(result.model, result, time.perf_counter() - t0, json_file)


def _report(model, result, seconds, json_file):
    """Print the per-layer table and the totals; write the JSON."""
    config, mesh_config = result.tile, result.mesh
    summary = result.summary()
    summary["estimate_seconds"] = seconds

    where = (f"one {config.rows}x{config.cols} tile ({config.ext_bytes}-byte ports) and a "
             f"{result.eltwise.ext_bytes}-byte element-wise unit" if mesh_config is None else
             f"a {mesh_config.rows}x{mesh_config.cols} mesh of {config.rows}x{config.cols} tiles "
             f"({config.ext_bytes}-byte ports)")
    click.echo(f"{model}: image {result.image_size}x{result.image_size}, batch {result.batch}; "
               f"{len(result.layers)} layers on {where}")
    click.echo(f"{'#':>3} {'layer':<24} {'op':<15} {'cycles':>11} {'util':>6} {'ext read':>12} {'ext written':>12} "
               f"{'bound':<11} {'x phys':>6}")
    for r in result.layers:
        if not r.estimated:
            click.echo(f"{r.index:>3} {r.name:<24.24} {r.op:<15} {'not estimated: ' + (r.note or ''):s}")
            continue
        util = f"{100 * r.mac_utilization:5.1f}%" if r.op in ("conv2d", "linear") else ""
        ratio = f"{r.physical_ratio:6.2f}" if r.physical_ratio else ""
        click.echo(f"{r.index:>3} {r.name:<24.24} {r.op:<15} {r.cycles:>11,} {util:>6} {r.ext_bytes_read:>12,} "
                   f"{r.ext_bytes_written:>12,} {r.bound or '':<11} {ratio:>6}")
    bounds = ", ".join(f"{b} {100 * c / summary['total_cycles']:.0f}%" for b, c in
                       sorted(summary["bounds"].items(), key=lambda kv: -kv[1])) if summary["total_cycles"] else ""
    click.echo(f"total {summary['total_cycles']:,} cycles ({summary['tile_cycles']:,} in conv / fc layers, "
               f"{summary['eltwise_cycles']:,} in element-wise layers), {summary['total_macs']:,} MACs, "
               f"MAC utilization {100 * summary['mac_utilization']:.1f}%; cycles by bound: {bounds}; "
               f"estimated in {seconds:.2f} s")
    if summary["layers_not_estimated"]:
        click.echo(f"not estimated: {', '.join(summary['layers_not_estimated'])}", err=True)
    if json_file:
        with open(json_file, "w") as f:
            json.dump(summary, f, indent=2)
        click.echo(f"wrote {json_file}")
