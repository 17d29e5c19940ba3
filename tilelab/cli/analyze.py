"""``tilelab analyze``: per-layer weights, MACs, activations and intensity of a model."""

from __future__ import annotations

import json

import click

from tilelab.cli.options import Int, check_inputs_outputs
from tilelab.net.analysis import analyze
from tilelab.net.models import MODELS


def _shape(shape) -> str:
    return "x".join(str(v) for v in shape)


@click.command("analyze")
@click.argument("model", type=click.Choice(sorted(MODELS)))
@click.option("--batch", type=Int(lo=1), default=1, show_default=True, help="Input batch.")
@click.option(
    "--bits", type=Int(1, 32), default=8, show_default=True, help="Bits per weight/activation."
)
@click.option(
    "--image-size",
    type=Int(lo=1),
    default=None,
    help="Input height/width [default: the model's own].",
)
@click.option(
    "--json", "json_file", type=click.Path(dir_okay=False), default=None, help="Write the result here."
)
def command(model, batch, bits, image_size, json_file):
    """Print the per-layer table and the totals of MODEL.

    Weights count multiply weights only (no bias, no batch norm); ops = 2 x MACs; a layer's
    activations are its output elements; intensity = ops / (weight + input + output bytes).
    """
    check_inputs_outputs({}, {"--json": json_file})
    try:
        result = analyze(model, batch=batch, bits=bits, image_size=image_size)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="'--image-size'") from error
    click.echo(
        f"{result['model']}: batch {result['batch']}, image {result['image_size']}x{result['image_size']}, "
        f"{bits}-bit weights and activations"
    )
    click.echo(
        f"{'layer':<22} {'kind':<5} {'output':>16} {'weights':>12} {'MACs':>15} "
        f"{'activations':>12} {'ops/B':>8}"
    )
    for layer in result["layers"]:
        click.echo(
            f"{layer['name']:<22} {layer['kind']:<5} {_shape(layer['shape']):>16} {layer['weights']:>12,} "
            f"{layer['macs']:>15,} {layer['activations']:>12,} {layer['intensity']:>8.1f}"
        )
    t = result["totals"]
    click.echo("totals:")
    click.echo(
        f"  weights      {t['weights']:>16,}  (conv {t['conv_weights']:,} + fc {t['fc_weights']:,}), "
        f"{t['weight_bytes']:,} bytes"
    )
    click.echo(f"  params       {t['params']:>16,}  (weights, biases, batch-norm gamma and beta)")
    click.echo(f"  MACs         {t['macs']:>16,}  (conv {t['conv_macs']:,} + fc {t['fc_macs']:,})")
    click.echo(f"  ops          {t['ops']:>16,}  (conv {t['conv_ops']:,} + fc {t['fc_ops']:,})")
    click.echo(
        f"  activations  {t['activations']:>16,}  (conv and fc outputs, {t['activation_bytes']:,} bytes; "
        f"all layers {t['all_activations']:,})"
    )
    if json_file is not None:
        with open(json_file, "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
        click.echo(f"wrote {json_file}")
