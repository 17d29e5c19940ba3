"""``tilelab halo``: the halo plan of a convolution sharded over cores."""

from __future__ import annotations

import json

import click

from tilelab.cli.options import Int, check_inputs_outputs
from tilelab.reference.halo import halo_bytes, halo_plan, shard_ranges
from tilelab.reference.layers import Conv2dSpec


def _parse_input(ctx, param, value):
    parts = value.split(",")
    try:
        shape = tuple(int(part) for part in parts)
    except ValueError:
        shape = ()
    if len(shape) != 4 or min(shape) < 1:
        raise click.BadParameter(f"must be four positive integers N,H,W,C, not {value!r}")
    return shape


@click.command("halo")
@click.option(
    "--input", "shape", required=True, metavar="N,H,W,C", callback=_parse_input, help="Input shape."
)
@click.option("--kernel", type=Int(lo=1), required=True, help="Kernel height and width.")
@click.option("--stride", type=Int(lo=1), default=1, show_default=True)
@click.option("--padding", type=Int(lo=0), default=0, show_default=True)
@click.option("--cores", type=Int(lo=1), required=True, help="Cores to shard over.")
@click.option(
    "--json", "json_file", type=click.Path(dir_okay=False), default=None, help="Write the plan here."
)
def command(shape, kernel, stride, padding, cores, json_file):
    """Print which input sticks each core needs (padding, local, remote) for a sharded conv.

    Sticks are numbered in the zero-padded input; the non-padded input sticks and the output
    sticks are split into contiguous ceil-sized ranges over the cores.
    """
    check_inputs_outputs({}, {"--json": json_file})
    n, h, w, c = shape
    try:
        spec = Conv2dSpec(n=n, h=h, w=w, cin=c, cout=c, kh=kernel, kw=kernel, stride=stride, padding=padding)
    except ValueError as error:
        raise click.UsageError(str(error)) from error
    plan = halo_plan(n, h, w, c, kernel=kernel, stride=stride, padding=padding, cores=cores)
    outputs = shard_ranges(n * spec.ho * spec.wo, cores)
    inputs = shard_ranges(n * h * w, cores)
    click.echo(
        f"conv {kernel}x{kernel}/{stride} pad {padding} on {n}x{h}x{w}x{c} -> {n}x{spec.ho}x{spec.wo}, "
        f"{cores} cores; sticks of {c} bytes, "
        f"indices in the padded {n}x{h + 2 * padding}x{w + 2 * padding} input"
    )
    click.echo(
        f"each core holds a range of the {n * h * w} non-padded input sticks "
        f"and computes a range of the {n * spec.ho * spec.wo} output sticks"
    )
    click.echo(
        f"{'core':>4} {'holds':>15} {'outputs':>15} {'padding':>8} {'local':>8} {'remote':>8} "
        f"{'bytes':>10}  from cores"
    )
    for entry, (i0, i1), (o0, o1) in zip(plan, inputs, outputs, strict=True):
        sources = sorted({owner for _, owner in entry["remote"]})
        click.echo(
            f"{entry['core']:>4} {f'[{i0}, {i1})':>15} {f'[{o0}, {o1})':>15} {len(entry['padding']):>8} "
            f"{len(entry['local']):>8} {len(entry['remote']):>8} {halo_bytes([entry], c):>10}  "
            f"{', '.join(map(str, sources)) or '-'}"
        )
    click.echo(f"halo total: {sum(len(e['remote']) for e in plan)} sticks, {halo_bytes(plan, c):,} bytes")
    if json_file is not None:
        with open(json_file, "w") as f:
            json.dump(plan, f)
            f.write("\n")
        click.echo(f"wrote {json_file}")
