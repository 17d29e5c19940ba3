"""Per-layer weights, activations, MACs and arithmetic intensity of a model graph.

Conventions
-----------
- **weights**: multiply weights only -- no bias, no batch-norm parameters.
- **params**: trainable parameters as torchvision counts them (``sum(p.numel() for p in
  model.parameters())``): the weights, plus a bias per output channel of a conv2d / linear with
  bias, plus ``gamma`` and ``beta`` per channel of a batch norm (its running statistics are not
  parameters).
- **macs**: multiply-accumulates of conv2d and linear layers (all other layers: 0);
  **ops** ``= 2 · macs``.
- **activations** of a layer: its *output* element count (batch included); its input is the
  previous layer's output and is not counted again. ``input_activations`` is recorded separately.
- **bytes**: ``ceil(count · bits / 8)``; weights and activations use the same ``bits``.
- **intensity** (ops per byte) ``= ops / (weight_bytes + input_bytes + output_bytes)``: every
  operand moved once, inputs of an ``add`` both counted; 0.0 for layers without MACs.
- **kind**: ``"conv"`` (conv2d), ``"fc"`` (linear) or ``"other"``.

Totals: ``conv_*`` and ``fc_*`` sums over the two kinds; ``activations`` sums the outputs of the
conv and fc layers (what an accelerator with fused batch norm / ReLU / pooling writes back);
``all_activations`` sums the outputs of every layer but the input.
"""

from __future__ import annotations

import math

from tilelab.checks import check_int
from tilelab.net.graph import Graph
from tilelab.net.models import get_model

__all__ = ["analyze", "analyze_graph"]

_KINDS = {"conv2d": "conv", "linear": "fc"}


def _bytes(count: int, bits: int) -> int:
    return -(-count * bits // 8)


def analyze_graph(graph: Graph, *, bits: int = 8) -> dict:
    """Analyze a built graph (see the module docstring for the conventions).

    Parameters
    ----------
    graph : Graph
    bits : int
        Bits per weight and per activation, in ``[1, 32]``.

    Returns
    -------
    dict
        ``{"model", "bits", "batch", "image_size", "layers": [record, ...], "totals": {...}}``;
        each record has ``name, op, kind, shape, weights, params, activations, input_activations,
        macs, ops, weight_bytes, activation_bytes, input_bytes, intensity``; the totals sum
        ``params`` over every layer.
    """
    if not isinstance(graph, Graph):
        raise TypeError(f"graph must be a Graph, not {type(graph).__name__}")
    bits = check_int("bits", bits, 1)
    if bits > 32:
        raise ValueError(f"bits must be at most 32, not {bits!r}")
    layers = []
    image = None
    for node in graph:
        if node.op == "input":
            image = node.shape
            continue
        weights = node.spec.weights if node.op in _KINDS else 0
        macs = node.spec.macs if node.op in _KINDS else 0
        params = weights + (node.shape[-1] if node.op in _KINDS and node.bias else 0)
        if node.op == "batch_norm":
            params = 2 * node.shape[-1]
        activations = math.prod(node.shape)
        inputs = sum(math.prod(graph[name].shape) for name in node.inputs)
        weight_bytes, activation_bytes, input_bytes = (
            _bytes(v, bits) for v in (weights, activations, inputs)
        )
        layers.append(
            {
                "name": node.name,
                "op": node.op,
                "kind": _KINDS.get(node.op, "other"),
                "shape": list(node.shape),
                "weights": weights,
                "params": params,
                "activations": activations,
                "input_activations": inputs,
                "macs": macs,
                "ops": 2 * macs,
                "weight_bytes": weight_bytes,
                "activation_bytes": activation_bytes,
                "input_bytes": input_bytes,
                "intensity": 2 * macs / (weight_bytes + input_bytes + activation_bytes),
            }
        )
    totals: dict[str, int] = {}
    for kind in ("conv", "fc"):
        chosen = [layer for layer in layers if layer["kind"] == kind]
        for key in ("weights", "macs", "ops", "weight_bytes", "activations"):
            totals[f"{kind}_{key}"] = sum(layer[key] for layer in chosen)
    for key in ("weights", "macs", "ops", "weight_bytes"):
        totals[key] = totals[f"conv_{key}"] + totals[f"fc_{key}"]
    totals["params"] = sum(layer["params"] for layer in layers)
    totals["activations"] = totals["conv_activations"] + totals["fc_activations"]
    totals["activation_bytes"] = _bytes(totals["activations"], bits)
    totals["all_activations"] = sum(layer["activations"] for layer in layers)
    totals["all_activation_bytes"] = _bytes(totals["all_activations"], bits)
    return {
        "model": graph.name,
        "bits": bits,
        "batch": image[0] if image else None,
        "image_size": image[1] if image else None,
        "layers": layers,
        "totals": totals,
    }


def analyze(model_name: str, *, batch: int = 1, bits: int = 8, image_size: int | None = None) -> dict:
    """Build a model by name and analyze it.

    Parameters
    ----------
    model_name : str
        See :func:`tilelab.net.models.get_model`.
    batch : int
        Input batch.
    bits : int
        Bits per weight and activation.
    image_size : int, optional
        Input height and width; default the model's native size (224, AlexNet 227).

    Returns
    -------
    dict
        As :func:`analyze_graph`.
    """
    return analyze_graph(get_model(model_name, batch=batch, image_size=image_size), bits=bits)
