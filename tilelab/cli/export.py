"""``tilelab export``: a built-in network as an ONNX model (float32, or quantized by onnxruntime)."""

from __future__ import annotations

import click

from tilelab.cli.options import SEED, Int, check_inputs_outputs
from tilelab.net.models import MODELS


@click.command("export")
@click.argument("model", type=click.Choice(sorted(MODELS)))
@click.option("-o", "--output", "output", type=click.Path(dir_okay=False), required=True,
              help="The .onnx file to write.")
@click.option("--image-size", type=Int(lo=1), default=None, help="Input height/width [default: the model's own].")
@click.option("--batch", type=Int(lo=1), default=1, show_default=True, help="Input batch.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the synthetic weights and calibration.")
@click.option("--quantize/--float", default=True, show_default=True,
              help="Quantize with onnxruntime (QDQ: uint8 activations, int8 per-channel weights) or keep float32.")
@click.option("--activations", type=click.Choice(["uint8", "int8"]), default="uint8", show_default=True,
              help="Activation type of the quantized model.")
def command(model, output, image_size, batch, seed, quantize, activations):
    """Write MODEL (seeded synthetic weights) as an ONNX model, to try `tilelab run FILE.onnx` with."""
    import onnx

    from tilelab.net.models import get_model
    from tilelab.net.onnx.export import export_onnx, quantize_onnx

    check_inputs_outputs({}, {"-o": output}, {"-o": (".onnx",)})
    if not quantize and activations != "uint8":
        raise click.BadParameter("applies to quantized models only (drop --float)", param_hint="'--activations'")
    graph = get_model(model, image_size=image_size, batch=batch)
    proto = export_onnx(graph, seed=seed)
    if quantize:
        quantize_onnx(proto, output, seed=seed, activations=activations)
    else:
        onnx.save(proto, output)
    n, h, w, c = graph.nodes[0].shape
    kind = f"quantized ({activations} activations, int8 per-channel weights)" if quantize else "float32"
    click.echo(f"{model}: {kind}, input x float32 {n}x{c}x{h}x{w} (NCHW) -> {output}")
