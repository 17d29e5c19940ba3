"""Model builders (ResNet-50/18, VGG-16, AlexNet) as :class:`~tilelab.net.graph.Graph`, and
synthetic weights.

The builders follow the original papers:

- :func:`resnet50` -- He et al. 2015, ResNet v1: bottleneck blocks [3, 4, 6, 3]; the downsampling
  stride sits in the *first 1×1* conv of the first block of stages conv3_x-conv5_x, the projection
  shortcut is a 1×1 conv with the same stride (plus batch norm); stem 7×7/2 pad 3, max pool
  3×3/2 pad 1. ``stride_in_1x1=False`` gives the later "v1.5" (torchvision) placement on the 3×3
  conv, which has the same weights but more MACs.
- :func:`resnet18` -- basic blocks [2, 2, 2, 2], stride in the first 3×3 conv.
- :func:`vgg16` -- Simonyan & Zisserman configuration D: 13 3×3 convs (pad 1) with bias and ReLU,
  five 2×2/2 max pools, fc 4096/4096/classes.
- :func:`alexnet` -- Krizhevsky et al. 2012, the original two-tower network expressed with
  groups: conv1 96 11×11/4, conv2 256 5×5 pad 2 groups 2, conv3 384 3×3 pad 1 (both towers),
  conv4 384 3×3 pad 1 groups 2, conv5 256 3×3 pad 1 groups 2, 3×3/2 overlapping max pools after
  conv1, conv2 and conv5, fc 4096/4096/classes. The native input is 227×227 (the paper's "224"
  does not give its 55×55 conv1 output without padding), so ``image_size`` defaults to 227.
  Local response normalization and dropout are left out (no weights, no MACs to speak of).

Convs followed by batch norm (ResNets) have no bias; they requantize to int8, which the batch
norm node reads (training mode, :func:`~tilelab.reference.golden.batch_norm_train`; for inference a
lowering folds it into the conv with :func:`~tilelab.reference.golden.fold_batch_norm`). VGG/AlexNet
convs and fcs have bias and fused ReLU. Image sizes other than
the native one are accepted as long as no layer's output collapses below 1×1; the first fc then
takes whatever the flatten gives. A size the network cannot take raises ``ValueError`` naming
the size and the layer.
"""

from __future__ import annotations

import functools
import zlib

import numpy as np

from tilelab.checks import check_int
from tilelab.net.graph import Graph, GraphError

__all__ = ["MODELS", "alexnet", "get_model", "init_weights", "resnet18", "resnet50", "vgg16"]

#: name → builder; filled by the ``_model`` decorator.
MODELS: dict = {}


def _model(name: str, *, native_image_size: int = 224):
    """Register a builder and turn shape errors into one naming the model, the size and the layer."""

    def decorate(build):
        @functools.wraps(build)
        def wrapper(*, image_size=None, batch=1, num_classes=1000, **kwargs):
            if image_size is None:
                image_size = wrapper.native_image_size
            image_size = check_int("image_size", image_size, 1)
            batch = check_int("batch", batch, 1)
            num_classes = check_int("num_classes", num_classes, 1)
            try:
                return build(image_size=image_size, batch=batch, num_classes=num_classes, **kwargs)
            except GraphError as error:
                raise ValueError(
                    f"{name} cannot take image_size {image_size!r}: at layer {error.node!r}: {error.detail}"
                ) from error

        wrapper.native_image_size = native_image_size
        MODELS[name] = wrapper
        return wrapper

    return decorate


def get_model(name: str, **kwargs) -> Graph:
    """Build a model graph by name.

    Parameters
    ----------
    name : str
        One of :data:`MODELS`: ``"alexnet"``, ``"resnet18"``, ``"resnet50"``, ``"vgg16"``.
    **kwargs
        Passed to the builder: ``image_size`` (default: the model's native size, 224 or 227 for
        AlexNet), ``batch``, ``num_classes``, and model-specific options.

    Returns
    -------
    Graph

    Raises
    ------
    ValueError
        For an unknown name (the message lists the known ones) or an image size the network
        cannot take (the message names the size and the layer).
    """
    if name not in MODELS:
        known = ", ".join(repr(k) for k in sorted(MODELS))
        raise ValueError(f"unknown model {name!r}; known models: {known}")
    return MODELS[name](**kwargs)


def _stem(g: Graph, x: str) -> str:
    x = g.conv2d("conv1", x, cout=64, kernel=7, stride=2, padding=3, bias=False)
    x = g.batch_norm("bn1", x)
    x = g.relu("relu", x)
    return g.max_pool("maxpool", x, kernel=3, stride=2, padding=1)


def _head(g: Graph, x: str, num_classes: int) -> str:
    x = g.global_avg_pool("avgpool", x)
    x = g.flatten("flatten", x)
    return g.linear("fc", x, nout=num_classes)


def _block_conv(g: Graph, p: str, i: int, x: str, cout: int, kernel: int, stride: int, *, relu: bool) -> str:
    x = g.conv2d(f"{p}.conv{i}", x, cout=cout, kernel=kernel, stride=stride, padding=kernel // 2, bias=False)
    x = g.batch_norm(f"{p}.bn{i}", x)
    return g.relu(f"{p}.relu{i}", x) if relu else x


def _shortcut(g: Graph, p: str, x: str, cout: int, stride: int) -> str:
    x = g.conv2d(f"{p}.downsample.0", x, cout=cout, kernel=1, stride=stride, bias=False)
    return g.batch_norm(f"{p}.downsample.1", x)


@_model("resnet50")
def resnet50(*, image_size=224, batch=1, num_classes=1000, stride_in_1x1=True) -> Graph:
    """ResNet-50 v1 (He et al. 2015): bottlenecks [3, 4, 6, 3], stride in the first 1×1 conv.

    Parameters
    ----------
    image_size : int
        Input height and width (224).
    batch : int
        Input batch.
    num_classes : int
        Outputs of the fc layer.
    stride_in_1x1 : bool
        True: original v1. False: "v1.5", the stride on the 3×3 conv (torchvision).

    Returns
    -------
    Graph
        Nodes named like torchvision's modules (``layer1.0.conv1``, ``layer1.0.downsample.0``...).
    """
    g = Graph("resnet50" if stride_in_1x1 else "resnet50_v1.5")
    x = _stem(g, g.input("input", (batch, image_size, image_size, 3)))
    for stage, (width, blocks) in enumerate(((64, 3), (128, 4), (256, 6), (512, 3)), start=1):
        for block in range(blocks):
            p = f"layer{stage}.{block}"
            stride = 2 if stage > 1 and block == 0 else 1
            s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)
            y = _block_conv(g, p, 1, x, width, 1, s1, relu=True)
            y = _block_conv(g, p, 2, y, width, 3, s3, relu=True)
            y = _block_conv(g, p, 3, y, 4 * width, 1, 1, relu=False)
            shortcut = _shortcut(g, p, x, 4 * width, stride) if block == 0 else x
            x = g.add(f"{p}.add", y, shortcut, relu=True)
    _head(g, x, num_classes)
    return g


@_model("resnet18")
def resnet18(*, image_size=224, batch=1, num_classes=1000) -> Graph:
    """ResNet-18 (He et al. 2015): basic blocks [2, 2, 2, 2], stride in the first 3×3 conv.

    Parameters
    ----------
    image_size, batch, num_classes : int
        As in :func:`resnet50`.

    Returns
    -------
    Graph
    """
    g = Graph("resnet18")
    x = _stem(g, g.input("input", (batch, image_size, image_size, 3)))
    cin = 64
    for stage, width in enumerate((64, 128, 256, 512), start=1):
        for block in range(2):
            p = f"layer{stage}.{block}"
            stride = 2 if stage > 1 and block == 0 else 1
            y = _block_conv(g, p, 1, x, width, 3, stride, relu=True)
            y = _block_conv(g, p, 2, y, width, 3, 1, relu=False)
            shortcut = _shortcut(g, p, x, width, stride) if stride != 1 or cin != width else x
            x = g.add(f"{p}.add", y, shortcut, relu=True)
            cin = width
    _head(g, x, num_classes)
    return g


@_model("vgg16")
def vgg16(*, image_size=224, batch=1, num_classes=1000) -> Graph:
    """VGG-16 (Simonyan & Zisserman 2014, configuration D).

    Parameters
    ----------
    image_size, batch, num_classes : int
        As in :func:`resnet50`; ``image_size`` must be at least 32 (five 2×2 pools).

    Returns
    -------
    Graph
        ``conv1_1`` ... ``conv5_3``, ``pool1`` ... ``pool5``, ``flatten``, ``fc6``, ``fc7``, ``fc8``.
    """
    g = Graph("vgg16")
    x = g.input("input", (batch, image_size, image_size, 3))
    for stage, (width, convs) in enumerate(((64, 2), (128, 2), (256, 3), (512, 3), (512, 3)), start=1):
        for i in range(1, convs + 1):
            x = g.conv2d(f"conv{stage}_{i}", x, cout=width, kernel=3, padding=1, relu=True)
        x = g.max_pool(f"pool{stage}", x, kernel=2, stride=2)
    x = g.flatten("flatten", x)
    x = g.linear("fc6", x, nout=4096, relu=True)
    x = g.linear("fc7", x, nout=4096, relu=True)
    g.linear("fc8", x, nout=num_classes)
    return g


@_model("alexnet", native_image_size=227)
def alexnet(*, image_size=227, batch=1, num_classes=1000) -> Graph:
    """AlexNet (Krizhevsky et al. 2012), the original two-tower network with grouped convs.

    Parameters
    ----------
    image_size : int
        Input height and width; 227 is native (conv1 gives 55×55, pool5 6×6×256 = 9216).
    batch, num_classes : int
        As in :func:`resnet50`.

    Returns
    -------
    Graph
        ``conv1`` ... ``conv5``, ``pool1``, ``pool2``, ``pool5``, ``flatten``, ``fc6``-``fc8``.
    """
    g = Graph("alexnet")
    x = g.input("input", (batch, image_size, image_size, 3))
    x = g.conv2d("conv1", x, cout=96, kernel=11, stride=4, relu=True)
    x = g.max_pool("pool1", x, kernel=3, stride=2)
    x = g.conv2d("conv2", x, cout=256, kernel=5, padding=2, groups=2, relu=True)
    x = g.max_pool("pool2", x, kernel=3, stride=2)
    x = g.conv2d("conv3", x, cout=384, kernel=3, padding=1, relu=True)
    x = g.conv2d("conv4", x, cout=384, kernel=3, padding=1, groups=2, relu=True)
    x = g.conv2d("conv5", x, cout=256, kernel=3, padding=1, groups=2, relu=True)
    x = g.max_pool("pool5", x, kernel=3, stride=2)
    x = g.flatten("flatten", x)
    x = g.linear("fc6", x, nout=4096, relu=True)
    x = g.linear("fc7", x, nout=4096, relu=True)
    g.linear("fc8", x, nout=num_classes)
    return g


def init_weights(graph: Graph, seed: int) -> dict[str, dict[str, np.ndarray]]:
    """Deterministic synthetic parameters for every node that has any (no downloads).

    Each node draws from its own generator seeded by ``(seed, crc32(node name))``, so a node's
    values do not depend on the rest of the graph.

    - conv2d / linear: ``"weight"`` int8 uniform in ``[-128, 127]`` (OHWI / ``(Nout, K)``) and, if
      the node has a bias, ``"bias"`` int32 uniform in ``[-1024, 1023]``;
    - batch_norm: ``"gamma"`` int32 uniform in ``[1024, 8191]`` (4-32 output steps per standard
      deviation with the default ``gamma_frac_bits=8`` of
      :func:`~tilelab.reference.golden.batch_norm_train`) and ``"beta"`` int32 uniform in ``[-32, 31]``.

    Parameters
    ----------
    graph : Graph
    seed : int
        Non-negative.

    Returns
    -------
    dict
        Node name → parameter name → array.
    """
    if not isinstance(graph, Graph):
        raise TypeError(f"graph must be a Graph, not {type(graph).__name__}")
    seed = check_int("seed", seed, 0)
    params: dict[str, dict[str, np.ndarray]] = {}
    for node in graph:
        if node.op not in ("conv2d", "linear", "batch_norm"):
            continue
        rng = np.random.default_rng([seed, zlib.crc32(node.name.encode())])
        if node.op == "batch_norm":
            channels = node.shape[-1]
            params[node.name] = {
                "gamma": rng.integers(1024, 8192, channels, dtype=np.int32),
                "beta": rng.integers(-32, 32, channels, dtype=np.int32),
            }
            continue
        entry = {"weight": rng.integers(-128, 128, node.spec.weight_shape, dtype=np.int8)}
        if node.bias:
            entry["bias"] = rng.integers(-1024, 1024, node.shape[-1], dtype=np.int32)
        params[node.name] = entry
    return params
