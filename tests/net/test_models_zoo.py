"""The mobile and grouped model zoo: parameter and MAC counts, layer shapes, MobileNetV2 on the RTL.

Every count is checked three ways:

1. exactly against a layer-by-layer count derived here from the architecture definition (the
   papers' tables as torchvision builds them), independently of the graph builders;
2. the parameter count exactly against torchvision's ``num_params`` (``sum(p.numel() for p in
   model.parameters())``: weights, biases, batch-norm gamma and beta) in the weights' metadata
   (``torchvision/models/{mobilenetv2,efficientnet,shufflenetv2,resnet}.py``), and the MACs
   against its ``_ops`` (GMACs of conv and linear layers at 224×224, rounded to 3 decimals):
   equal after the same rounding;
3. against the papers' rounded figures, within the stated relative tolerance.
"""

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from tests.cases import TILE
from tilelab.cli import main as cli
from tilelab.net.analysis import analyze
from tilelab.net.backends import TileBackend
from tilelab.net.executor import execute
from tilelab.net.lowering import lower, synthetic_input
from tilelab.net.models import get_model, init_weights
from tilelab.pe_models.config import EltwiseConfig

ZOO = ("mobilenet_v2", "efficientnet_b0", "shufflenet_v2", "resnext50_32x4d")

#: torchvision's weights metadata: (num_params, _ops in GMACs at 224×224).
TORCHVISION = {
    "mobilenet_v2": (3_504_872, 0.301),  # MobileNet_V2_Weights.IMAGENET1K_V1
    "efficientnet_b0": (5_288_548, 0.386),  # EfficientNet_B0_Weights.IMAGENET1K_V1
    "shufflenet_v2": (2_278_604, 0.145),  # ShuffleNet_V2_X1_0_Weights.IMAGENET1K_V1
    "resnext50_32x4d": (25_028_904, 4.23),  # ResNeXt50_32X4D_Weights.IMAGENET1K_V1
}

#: The papers' figures (params, MACs) and the relative tolerance they are met within. The papers
#: round to 2-3 digits and count slightly differently (ShuffleNetV2's 146 M and EfficientNet-B0's
#: 0.39 B include more than conv / fc multiply-adds, e.g. the squeeze-and-excitation multiplies;
#: MobileNetV2's 3.4 M params leave out the batch norms).
PAPERS = {
    # Sandler et al. 2018, Table 3 / Table 4 (3.4 M, 300 M): torchvision's 3.50 M counts BN parameters.
    "mobilenet_v2": ((3.50e6, 0.002), (300e6, 0.003)),
    # Tan & Le 2019, Table 2: 5.3 M params, 0.39 B FLOPs (multiply-adds).
    "efficientnet_b0": ((5.29e6, 0.001), (390e6, 0.012)),
    # Ma et al. 2018, Table 5: 2.3 M params, 146 M FLOPs (multiply-adds).
    "shufflenet_v2": ((2.28e6, 0.001), (146e6, 0.008)),
    # Xie et al. 2017, Table 1: 25.0 M params, 4.2 x 10^9 FLOPs (multiply-adds); torchvision 4.23 G.
    "resnext50_32x4d": ((25.0e6, 0.002), (4.23e9, 0.001)),
}


# --------------------------------------------------------------------------------------------
# layer-by-layer counts derived from the architecture definitions


class Count:
    """Sums params and MACs layer by layer; ``size`` is the current feature map's height/width."""

    def __init__(self, size):
        self.size, self.params, self.macs = size, 0, 0

    def conv(self, cin, cout, k, stride=1, groups=1, bias=False, bn=True):
        self.size = (self.size + 2 * (k // 2) - k) // stride + 1
        weights = cout * k * k * (cin // groups)
        self.params += weights + (cout if bias else 0) + (2 * cout if bn else 0)
        self.macs += self.size * self.size * weights
        return cout

    def conv_at(self, size, cin, cout, k, stride=1, groups=1, bias=False, bn=True):
        """A conv on a feature map of ``size`` (a branch), leaving the current size alone."""
        keep, self.size = self.size, size
        self.conv(cin, cout, k, stride, groups, bias, bn)
        out, self.size = self.size, keep
        return out

    def fc(self, k, n):
        self.params += k * n + n
        self.macs += k * n


def mobilenet_v2_count(size):
    c = Count(size)
    cin = c.conv(3, 32, 3, 2)
    for t, cout, n, s in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                          (6, 160, 3, 2), (6, 320, 1, 1)):
        for i in range(n):
            hidden = cin * t
            if t != 1:
                c.conv(cin, hidden, 1)
            c.conv(hidden, hidden, 3, s if i == 0 else 1, groups=hidden)
            cin = c.conv(hidden, cout, 1)
    c.conv(cin, 1280, 1)
    c.fc(1280, 1000)
    return c


def efficientnet_b0_count(size):
    c = Count(size)
    cin = c.conv(3, 32, 3, 2)
    for t, k, s, cout, n in ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
                             (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)):
        for i in range(n):
            hidden = cin * t
            if t != 1:
                c.conv(cin, hidden, 1)
            c.conv(hidden, hidden, k, s if i == 0 else 1, groups=hidden)
            squeeze = max(1, cin // 4)
            c.conv_at(1, hidden, squeeze, 1, bias=True, bn=False)  # squeeze-and-excitation on the pooled map
            c.conv_at(1, squeeze, hidden, 1, bias=True, bn=False)
            cin = c.conv(hidden, cout, 1)
    c.conv(cin, 1280, 1)
    c.fc(1280, 1000)
    return c


def shufflenet_v2_count(size):
    c = Count(size)
    cin = c.conv(3, 24, 3, 2)
    c.size = (c.size + 2 - 3) // 2 + 1  # max pool 3×3/2 pad 1
    for repeats, cout in ((4, 116), (8, 232), (4, 464)):
        half = cout // 2
        for u in range(repeats):
            if u == 0:  # both branches read the whole input at stride 2
                at = c.size
                c.conv_at(at, cin, cin, 3, 2, groups=cin)
                c.conv_at((at + 2 - 3) // 2 + 1, cin, half, 1)
                c.conv(cin, half, 1)
                c.conv(half, half, 3, 2, groups=half)
            else:
                c.conv(half, half, 1)
                c.conv(half, half, 3, 1, groups=half)
            c.conv(half, half, 1)
            cin = cout
    c.conv(cin, 1024, 1)
    c.fc(1024, 1000)
    return c


def resnext50_32x4d_count(size):
    c = Count(size)
    cin = c.conv(3, 64, 7, 2)
    c.size = (c.size + 2 - 3) // 2 + 1
    for planes, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        width = planes * 4 // 64 * 32
        for b in range(blocks):
            s = stride if b == 0 else 1
            at = c.size
            c.conv(cin, width, 1)
            c.conv(width, width, 3, s, groups=32)
            c.conv(width, 4 * planes, 1)
            if b == 0:
                c.conv_at(at, cin, 4 * planes, 1, s)
            cin = 4 * planes
    c.fc(2048, 1000)
    return c


DERIVED = {"mobilenet_v2": mobilenet_v2_count, "efficientnet_b0": efficientnet_b0_count,
           "shufflenet_v2": shufflenet_v2_count, "resnext50_32x4d": resnext50_32x4d_count}

#: The counts at 224×224 (what the three checks below agree on).
EXPECTED = {
    "mobilenet_v2": (3_504_872, 300_774_272),
    "efficientnet_b0": (5_288_548, 385_814_752),
    "shufflenet_v2": (2_278_604, 144_907_992),
    "resnext50_32x4d": (25_028_904, 4_230_479_872),
}


@pytest.mark.parametrize("model", ZOO)
def test_counts_equal_the_layer_by_layer_derivation(model):
    totals = analyze(model)["totals"]
    derived = DERIVED[model](224)
    assert (totals["params"], totals["macs"]) == (derived.params, derived.macs) == EXPECTED[model]


@pytest.mark.parametrize("model", ZOO)
@pytest.mark.parametrize("size", [96, 160])
def test_counts_equal_the_derivation_at_other_sizes(model, size):
    totals = analyze(model, image_size=size)["totals"]
    derived = DERIVED[model](size)
    assert (totals["params"], totals["macs"]) == (derived.params, derived.macs)


@pytest.mark.parametrize("model", ZOO)
def test_counts_match_torchvision_and_the_papers(model):
    params, macs = EXPECTED[model]
    tv_params, tv_gmacs = TORCHVISION[model]
    assert params == tv_params
    assert round(macs / 1e9, 3) == tv_gmacs
    (p_pub, p_tol), (m_pub, m_tol) = PAPERS[model]
    assert abs(params - p_pub) / p_pub <= p_tol
    assert abs(macs - m_pub) / m_pub <= m_tol


def test_cli_analyze_prints_and_writes_the_counts(tmp_path):
    out = tmp_path / "a.json"
    r = CliRunner().invoke(cli, ["analyze", "mobilenet_v2", "--json", str(out)])
    assert r.exit_code == 0, r.output
    assert "  params              3,504,872  (weights, biases, batch-norm gamma and beta)" in r.output
    assert "  MACs              300,774,272  (conv 299,494,272 + fc 1,280,000)" in r.output
    totals = json.loads(out.read_text())["totals"]
    assert (totals["params"], totals["macs"]) == EXPECTED["mobilenet_v2"]


def test_analyze_records_of_the_new_layers():
    layers = {r["name"]: r for r in analyze("efficientnet_b0")["layers"]}
    se = "features.6.0.block.2"
    assert layers[f"{se}.avgpool"]["shape"] == [1, 1, 1, 672]
    assert {k: layers[f"{se}.fc1"][k] for k in ("shape", "weights", "params", "macs")} == {
        "shape": [1, 1, 1, 28], "weights": 672 * 28, "params": 672 * 28 + 28, "macs": 672 * 28}
    assert layers[f"{se}.mul"]["shape"] == [1, 7, 7, 672]
    assert layers[f"{se}.mul"]["input_activations"] == 7 * 7 * 672 + 672
    assert layers[f"{se}.mul"]["macs"] == 0 and layers[f"{se}.scale_activation"]["op"] == "sigmoid"
    assert layers["features.0.1"]["params"] == 64  # a batch norm: gamma and beta of 32 channels


def _node(model, name, **kwargs):
    return get_model(model, **kwargs)[name]


def test_layer_shapes_mobilenet_v2():
    g = get_model("mobilenet_v2")
    assert g["features.0.0"].shape == (1, 112, 112, 32)
    dw = g["features.1.conv.0.0"]
    assert (dw.spec.groups, dw.spec.weight_shape, dw.shape) == (32, (32, 3, 3, 1), (1, 112, 112, 32))
    assert g["features.2.conv.0.0"].shape == (1, 112, 112, 96)
    assert g["features.2.conv.1.0"].shape == (1, 56, 56, 96)
    assert g["features.3.add"].inputs == ("features.2.conv.3", "features.3.conv.3")
    assert "features.4.add" not in g and "features.14.add" not in g and "features.17.add" not in g
    assert g["features.17.conv.2"].shape == (1, 7, 7, 320)
    assert g["features.18.2"].op == "relu6" and g["features.18.2"].shape == (1, 7, 7, 1280)
    assert g.output.name == "classifier.1" and g.output.shape == (1, 1000)
    assert sum(1 for n in g if n.op == "add") == 10


def test_layer_shapes_efficientnet_b0():
    g = get_model("efficientnet_b0")
    assert g["features.1.0.block.0.0"].spec.groups == 32  # no expansion in stage 1: depthwise first
    assert g["features.1.0.block.1.fc1"].shape == (1, 1, 1, 8)
    dw = g["features.3.0.block.1.0"]
    assert (dw.spec.kh, dw.spec.stride, dw.shape) == (5, (2, 2), (1, 28, 28, 144))
    assert g["features.3.0.block.2.fc1"].shape == (1, 1, 1, 6)  # max(1, 24 // 4), not 144 // 4
    assert g["features.3.1.add"].shape == (1, 28, 28, 40)
    assert g["features.7.0.block.3.1"].shape == (1, 7, 7, 320)
    assert g["features.8.2"].op == "silu" and g["features.8.2"].shape == (1, 7, 7, 1280)
    assert sum(1 for n in g if n.op == "mul") == 16 and sum(1 for n in g if n.op == "add") == 9


def test_layer_shapes_shufflenet_v2():
    g = get_model("shufflenet_v2")
    assert g["maxpool"].shape == (1, 56, 56, 24)
    assert g["stage2.0.branch1.0"].shape == (1, 28, 28, 24) and g["stage2.0.branch1.0"].spec.groups == 24
    assert g["stage2.0.concat"].inputs == ("stage2.0.branch1.4", "stage2.0.branch2.7")
    assert g["stage2.0.shuffle"].shape == (1, 28, 28, 116) and g["stage2.0.shuffle"].attrs == {"groups": 2}
    assert g["stage3.1.split.1"].attrs == {"start": 116, "stop": 232}
    assert g["stage3.1.concat"].inputs == ("stage3.1.split.0", "stage3.1.branch2.7")
    assert g["stage4.3.shuffle"].shape == (1, 7, 7, 464)
    assert g["conv5.2"].shape == (1, 7, 7, 1024) and g.output.name == "fc"


def test_layer_shapes_resnext50_32x4d():
    g = get_model("resnext50_32x4d")
    conv2 = g["layer3.0.conv2"]
    assert (conv2.spec.groups, conv2.spec.weight_shape, conv2.spec.stride) == (32, (512, 3, 3, 16), (2, 2))
    assert conv2.shape == (1, 14, 14, 512)
    assert g["layer1.0.downsample.0"].shape == (1, 56, 56, 256)
    assert g["layer4.2.add"].shape == (1, 7, 7, 2048)


@pytest.mark.parametrize("model", ZOO)
def test_any_positive_image_size_and_bad_sizes(model):
    """Every conv and pool is padded, so even a 1×1 image keeps every layer at least 1×1."""
    g = get_model(model, image_size=1, batch=2, num_classes=7)
    assert g.output.shape == (2, 7) and all(min(n.shape[1:3]) == 1 for n in g if len(n.shape) == 4 and n.op != "input")
    with pytest.raises(ValueError, match=r"^image_size must be a positive integer, not 0$"):
        get_model(model, image_size=0)


# --------------------------------------------------------------------------------------------
# MobileNetV2 on the RTL


def test_mobilenet_v2_end_to_end_on_the_rtl_bit_exact():
    """Every layer of MobileNetV2 (16×16 image, 10 classes) on the 4×4 test tile, bit-exact.

    Convs, depthwise convs with ReLU6 fused (the pack stage's ReLU and int8 clamp: 6.0 is code
    127), the fc on the tile; the residual adds and the global pool on the element-wise unit.
    """
    g = get_model("mobilenet_v2", image_size=16, num_classes=10)
    lowered = lower(g, init_weights(g, 3), synthetic_input(g.nodes[0].shape, 3))
    ops = [s.op for s in lowered.steps]
    assert (ops.count("conv2d"), ops.count("add"), len(ops)) == (52, 10, 65)
    dw = lowered.steps[lowered.index("features.2.conv.1.0")]
    assert dw.spec.groups == 96 and dw.relu and dw.fused == ("features.2.conv.1.0", "features.2.conv.1.1",
                                                              "features.2.conv.1.2")
    result = execute(lowered, TileBackend(TILE, ops_config=EltwiseConfig(ext_bytes=16, ext_words=1 << 14)))
    assert [r["name"] for r in result.records] == [s.name for s in lowered.steps]
    for r in result.records:
        assert r["bit_exact"] is True, r["name"]
        np.testing.assert_array_equal(result.outputs[r["name"]], lowered.reference[r["name"]])
        if r["op"] != "flatten":
            assert r["cycles"] > 0, r["name"]
    summary = result.summary()
    assert summary["all_bit_exact"] and summary["total_macs"] == sum(s.macs for s in lowered.steps)
    assert summary["total_macs"] == mobilenet_v2_count(16).macs - 1280 * 1000 + 1280 * 10
    assert math.isclose(summary["max_clipped_fraction"], max(s.clipped_fraction or 0 for s in lowered.steps))


def test_resnext_grouped_bottleneck_on_the_rtl_bit_exact():
    """layer1.0 of ResNeXt-50 32x4d (32 groups of 4 channels in the 3×3 conv) on the 4×4 test tile.

    The whole network does not fit the test tile's external memory (layer4's 2 MB of 1×1 weights);
    the block's steps take the golden outputs of the steps before them.
    """
    g = get_model("resnext50_32x4d", image_size=16, num_classes=10)
    lowered = lower(g, init_weights(g, 4), synthetic_input(g.nodes[0].shape, 4))
    a, b = lowered.index("layer1.0.conv1"), lowered.index("layer1.0.add") + 1
    assert lowered.steps[a + 1].spec.groups == 32 and lowered.steps[a + 1].weight.shape == (128, 3, 3, 4)
    result = execute(lowered, TileBackend(TILE, ops_config=EltwiseConfig(ext_bytes=16, ext_words=1 << 14)),
                     layers=(a, b))
    assert [r["name"] for r in result.records] == ["layer1.0.conv1", "layer1.0.conv2", "layer1.0.conv3",
                                                   "layer1.0.downsample.0", "layer1.0.add"]
    for r in result.records:
        assert r["bit_exact"] is True and r["cycles"] > 0, r["name"]
        np.testing.assert_array_equal(result.outputs[r["name"]], lowered.reference[r["name"]])
