"""Model builders (ResNet-50/18, VGG-16, AlexNet, MobileNetV2, EfficientNet-B0, ShuffleNetV2
x1.0, ResNeXt-50 32x4d) as :class:`~tilelab.net.graph.Graph`, and synthetic weights.

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

The mobile and grouped families follow torchvision's definitions (``torchvision.models``), whose
module names the nodes take (dropout and stochastic depth are identities at inference and left
out):

- :func:`mobilenet_v2` -- Sandler et al. 2018: stem 3×3/2 conv to 32, 17 inverted residual blocks
  (expansion t, channels c, repeats n, first stride s: ``(1, 16, 1, 1), (6, 24, 2, 2),
  (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)``): 1×1 expansion
  (if t > 1), 3×3 depthwise with the stride, linear 1×1 projection, a residual add when the
  stride is 1 and the channels stay; every conv has a batch norm, ReLU6 after all but the
  projection; 1×1 conv to 1280, global pool, fc with bias.
- :func:`efficientnet_b0` -- Tan & Le 2019: stem 3×3/2 to 32, MBConv stages (expansion, kernel,
  stride, channels, repeats) ``(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2),
  (6, 3, 2, 80, 3), (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)``, SiLU after every
  conv but the projection, squeeze-and-excitation on the depthwise output (global pool, 1×1 conv
  with bias to ``max(1, block input channels // 4)``, SiLU, 1×1 conv with bias back, sigmoid,
  channel-wise multiply), residual add when the stride is 1 and the channels stay; 1×1 conv to
  1280, global pool, fc with bias.
- :func:`shufflenet_v2` -- Ma et al. 2018, x1.0: stem 3×3/2 to 24 + max pool 3×3/2, stages of
  [4, 8, 4] units to 116, 232, 464 channels, 1×1 conv to 1024, global pool, fc with bias. A
  stride-2 unit concatenates two branches (3×3/2 depthwise + BN, 1×1 + BN + ReLU; and 1×1 + BN +
  ReLU, 3×3/2 depthwise + BN, 1×1 + BN + ReLU) of half the output channels each; a stride-1 unit
  splits the channels in halves, runs the second branch on the second half and concatenates;
  then a channel shuffle of 2 groups.
- :func:`resnext50_32x4d` -- Xie et al. 2017: ResNet-50's bottlenecks [3, 4, 6, 3] with the 3×3
  conv grouped (32 groups of 4 · 2^stage channels: widths 128, 256, 512, 1024), the stride on the
  3×3 conv as in torchvision.

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

__all__ = ["MODELS", "alexnet", "efficientnet_b0", "get_model", "init_weights", "mobilenet_v2", "resnet18",
           "resnet50", "resnext50_32x4d", "shufflenet_v2", "vgg16"]

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
        One of :data:`MODELS`: ``"alexnet"``, ``"efficientnet_b0"``, ``"mobilenet_v2"``,
        ``"resnet18"``, ``"resnet50"``, ``"resnext50_32x4d"``, ``"shufflenet_v2"``, ``"vgg16"``.
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


def _conv_bn(g: Graph, p: str, x: str, cout: int, kernel: int, stride: int = 1, *, groups: int = 1,
             act: str | None = None) -> str:
    """conv (no bias, padding ``kernel // 2``) ``p.0`` → batch norm ``p.1`` (→ activation ``p.2``)."""
    x = g.conv2d(f"{p}.0", x, cout=cout, kernel=kernel, stride=stride, padding=kernel // 2, groups=groups,
                 bias=False)
    x = g.batch_norm(f"{p}.1", x)
    if act is None:
        return x
    return getattr(g, act)(f"{p}.2", x)


def _classifier(g: Graph, x: str, num_classes: int, fc: str = "classifier.1") -> str:
    x = g.global_avg_pool("avgpool", x)
    x = g.flatten("flatten", x)
    return g.linear(fc, x, nout=num_classes)


#: MobileNetV2's inverted residual settings: expansion t, output channels c, repeats n, first stride s.
MOBILENET_V2_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                         (6, 160, 3, 2), (6, 320, 1, 1))


@_model("mobilenet_v2")
def mobilenet_v2(*, image_size=224, batch=1, num_classes=1000) -> Graph:
    """MobileNetV2 (Sandler et al. 2018) as torchvision defines it (width 1.0).

    Parameters
    ----------
    image_size, batch, num_classes : int
        As in :func:`resnet50`.

    Returns
    -------
    Graph
        ``features.0`` (stem), ``features.1`` ... ``features.17`` (blocks: ``features.i.conv.j.k``,
        the projection ``features.i.conv.{2,3}``, the residual ``features.i.add``), ``features.18``,
        ``avgpool``, ``flatten``, ``classifier.1``.
    """
    g = Graph("mobilenet_v2")
    x = g.input("input", (batch, image_size, image_size, 3))
    x = _conv_bn(g, "features.0", x, 32, 3, 2, act="relu6")
    cin, index = 32, 1
    for t, c, n, s in MOBILENET_V2_SETTINGS:
        for i in range(n):
            stride = s if i == 0 else 1
            p = f"features.{index}.conv"
            hidden = cin * t
            y, j = x, 0
            if t != 1:
                y, j = _conv_bn(g, f"{p}.0", y, hidden, 1, act="relu6"), 1
            y = _conv_bn(g, f"{p}.{j}", y, hidden, 3, stride, groups=hidden, act="relu6")
            y = g.conv2d(f"{p}.{j + 1}", y, cout=c, kernel=1, bias=False)
            y = g.batch_norm(f"{p}.{j + 2}", y)
            x = g.add(f"features.{index}.add", x, y) if stride == 1 and cin == c else y
            cin, index = c, index + 1
    x = _conv_bn(g, f"features.{index}", x, 1280, 1, act="relu6")
    _classifier(g, x, num_classes)
    return g


#: EfficientNet-B0's MBConv stages: expansion, kernel, first stride, output channels, repeats.
EFFICIENTNET_B0_STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
                          (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))


def _squeeze_excitation(g: Graph, p: str, x: str, channels: int, squeeze: int) -> str:
    s = g.global_avg_pool(f"{p}.avgpool", x)
    s = g.conv2d(f"{p}.fc1", s, cout=squeeze, kernel=1)
    s = g.silu(f"{p}.activation", s)
    s = g.conv2d(f"{p}.fc2", s, cout=channels, kernel=1)
    s = g.sigmoid(f"{p}.scale_activation", s)
    return g.mul(f"{p}.mul", x, s)


@_model("efficientnet_b0")
def efficientnet_b0(*, image_size=224, batch=1, num_classes=1000) -> Graph:
    """EfficientNet-B0 (Tan & Le 2019) as torchvision defines it.

    Parameters
    ----------
    image_size, batch, num_classes : int
        As in :func:`resnet50`.

    Returns
    -------
    Graph
        ``features.0`` (stem), ``features.S.B.block.J`` (MBConv blocks; the squeeze-and-excitation
        ``...block.J.avgpool / fc1 / activation / fc2 / scale_activation / mul``, the residual
        ``features.S.B.add``), ``features.8``, ``avgpool``, ``flatten``, ``classifier.1``.
    """
    g = Graph("efficientnet_b0")
    x = g.input("input", (batch, image_size, image_size, 3))
    x = _conv_bn(g, "features.0", x, 32, 3, 2, act="silu")
    cin = 32
    for stage, (t, k, s, c, n) in enumerate(EFFICIENTNET_B0_STAGES, start=1):
        for b in range(n):
            stride = s if b == 0 else 1
            p = f"features.{stage}.{b}.block"
            hidden = cin * t
            y, j = x, 0
            if t != 1:
                y, j = _conv_bn(g, f"{p}.0", y, hidden, 1, act="silu"), 1
            y = _conv_bn(g, f"{p}.{j}", y, hidden, k, stride, groups=hidden, act="silu")
            y = _squeeze_excitation(g, f"{p}.{j + 1}", y, hidden, max(1, cin // 4))
            y = _conv_bn(g, f"{p}.{j + 2}", y, c, 1)
            x = g.add(f"features.{stage}.{b}.add", x, y) if stride == 1 and cin == c else y
            cin = c
    x = _conv_bn(g, "features.8", x, 1280, 1, act="silu")
    _classifier(g, x, num_classes)
    return g


#: ShuffleNetV2 x1.0: units per stage and the channels of the stem, the three stages and conv5.
SHUFFLENET_V2_REPEATS = (4, 8, 4)
SHUFFLENET_V2_CHANNELS = (24, 116, 232, 464, 1024)


@_model("shufflenet_v2")
def shufflenet_v2(*, image_size=224, batch=1, num_classes=1000) -> Graph:
    """ShuffleNetV2 x1.0 (Ma et al. 2018) as torchvision defines it (``shufflenet_v2_x1_0``).

    Parameters
    ----------
    image_size, batch, num_classes : int
        As in :func:`resnet50`.

    Returns
    -------
    Graph
        ``conv1``, ``maxpool``, ``stageS.U.branch1.J`` / ``.branch2.J`` (torchvision's Sequential
        indices), ``stageS.U.split.{0,1}``, ``stageS.U.concat``, ``stageS.U.shuffle``, ``conv5``,
        ``avgpool``, ``flatten``, ``fc``.
    """
    g = Graph("shufflenet_v2")
    x = g.input("input", (batch, image_size, image_size, 3))
    x = g.conv2d("conv1.0", x, cout=SHUFFLENET_V2_CHANNELS[0], kernel=3, stride=2, padding=1, bias=False)
    x = g.relu("conv1.2", g.batch_norm("conv1.1", x))
    x = g.max_pool("maxpool", x, kernel=3, stride=2, padding=1)
    cin = SHUFFLENET_V2_CHANNELS[0]
    for stage, (repeats, cout) in enumerate(zip(SHUFFLENET_V2_REPEATS, SHUFFLENET_V2_CHANNELS[1:4], strict=True),
                                            start=2):
        half = cout // 2
        for u in range(repeats):
            p = f"stage{stage}.{u}"
            stride = 2 if u == 0 else 1
            if stride == 2:
                left = g.conv2d(f"{p}.branch1.0", x, cout=cin, kernel=3, stride=2, padding=1, groups=cin, bias=False)
                left = g.batch_norm(f"{p}.branch1.1", left)
                left = g.conv2d(f"{p}.branch1.2", left, cout=half, kernel=1, bias=False)
                left = g.relu(f"{p}.branch1.4", g.batch_norm(f"{p}.branch1.3", left))
                right = x
            else:
                left = g.split(f"{p}.split.0", x, start=0, stop=half)
                right = g.split(f"{p}.split.1", x, start=half, stop=cout)
            y = g.conv2d(f"{p}.branch2.0", right, cout=half, kernel=1, bias=False)
            y = g.relu(f"{p}.branch2.2", g.batch_norm(f"{p}.branch2.1", y))
            y = g.conv2d(f"{p}.branch2.3", y, cout=half, kernel=3, stride=stride, padding=1, groups=half, bias=False)
            y = g.batch_norm(f"{p}.branch2.4", y)
            y = g.conv2d(f"{p}.branch2.5", y, cout=half, kernel=1, bias=False)
            y = g.relu(f"{p}.branch2.7", g.batch_norm(f"{p}.branch2.6", y))
            x = g.channel_shuffle(f"{p}.shuffle", g.concat(f"{p}.concat", [left, y]), groups=2)
            cin = cout
    x = g.conv2d("conv5.0", x, cout=SHUFFLENET_V2_CHANNELS[4], kernel=1, bias=False)
    x = g.relu("conv5.2", g.batch_norm("conv5.1", x))
    _classifier(g, x, num_classes, fc="fc")
    return g


@_model("resnext50_32x4d")
def resnext50_32x4d(*, image_size=224, batch=1, num_classes=1000) -> Graph:
    """ResNeXt-50 32x4d (Xie et al. 2017) as torchvision defines it (stride on the 3×3 conv).

    Parameters
    ----------
    image_size, batch, num_classes : int
        As in :func:`resnet50`.

    Returns
    -------
    Graph
        Nodes named like :func:`resnet50`'s; ``layerS.B.conv2`` is the grouped 3×3 conv.
    """
    groups, width_per_group = 32, 4
    g = Graph("resnext50_32x4d")
    x = _stem(g, g.input("input", (batch, image_size, image_size, 3)))
    for stage, (planes, blocks) in enumerate(((64, 3), (128, 4), (256, 6), (512, 3)), start=1):
        width = planes * width_per_group // 64 * groups
        for block in range(blocks):
            p = f"layer{stage}.{block}"
            stride = 2 if stage > 1 and block == 0 else 1
            y = g.conv2d(f"{p}.conv1", x, cout=width, kernel=1, bias=False)
            y = g.relu(f"{p}.relu1", g.batch_norm(f"{p}.bn1", y))
            y = g.conv2d(f"{p}.conv2", y, cout=width, kernel=3, stride=stride, padding=1, groups=groups, bias=False)
            y = g.relu(f"{p}.relu2", g.batch_norm(f"{p}.bn2", y))
            y = g.batch_norm(f"{p}.bn3", g.conv2d(f"{p}.conv3", y, cout=4 * planes, kernel=1, bias=False))
            shortcut = _shortcut(g, p, x, 4 * planes, stride) if block == 0 else x
            x = g.add(f"{p}.add", y, shortcut, relu=True)
    _head(g, x, num_classes)
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
