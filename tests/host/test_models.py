"""Model graphs: every layer's shape, the published totals, synthetic weights, bad inputs."""

import re

import numpy as np
import pytest

from tilelab.net.analysis import analyze, analyze_graph
from tilelab.net.graph import Graph, GraphError
from tilelab.net.models import MODELS, alexnet, get_model, init_weights, resnet18, resnet50, vgg16
from tilelab.reference import golden

# ----------------------------------------------------------------------------------------------
# shapes of every layer


def test_alexnet_shapes():
    # 227 → conv1 11×11/4: (227 - 11) / 4 + 1 = 55 → pool 3/2: 27 → conv2 5×5 pad 2: 27 → pool: 13
    # → conv3-5 3×3 pad 1: 13 → pool: 6 → 6·6·256 = 9216
    g = alexnet()
    assert [(node.name, node.shape) for node in g] == [
        ("input", (1, 227, 227, 3)),
        ("conv1", (1, 55, 55, 96)),
        ("pool1", (1, 27, 27, 96)),
        ("conv2", (1, 27, 27, 256)),
        ("pool2", (1, 13, 13, 256)),
        ("conv3", (1, 13, 13, 384)),
        ("conv4", (1, 13, 13, 384)),
        ("conv5", (1, 13, 13, 256)),
        ("pool5", (1, 6, 6, 256)),
        ("flatten", (1, 9216)),
        ("fc6", (1, 4096)),
        ("fc7", (1, 4096)),
        ("fc8", (1, 1000)),
    ]
    assert [g[name].spec.groups for name in ("conv1", "conv2", "conv3", "conv4", "conv5")] == [1, 2, 1, 2, 2]
    assert g["conv2"].spec.weight_shape == (256, 5, 5, 48)
    assert g["conv4"].spec.weight_shape == (384, 3, 3, 192)


def test_vgg16_shapes():
    g = vgg16(batch=2)
    expected = [("input", (2, 224, 224, 3))]
    size = 224
    for stage, (width, convs) in enumerate(((64, 2), (128, 2), (256, 3), (512, 3), (512, 3)), start=1):
        expected += [(f"conv{stage}_{i}", (2, size, size, width)) for i in range(1, convs + 1)]
        size //= 2
        expected.append((f"pool{stage}", (2, size, size, width)))
    expected += [("flatten", (2, 25088)), ("fc6", (2, 4096)), ("fc7", (2, 4096)), ("fc8", (2, 1000))]
    assert [(node.name, node.shape) for node in g] == expected
    assert size == 7


def _resnet_expected(blocks, *, bottleneck, stride_in_1x1=True, batch=1):
    shapes = {
        "input": (batch, 224, 224, 3),
        "conv1": (batch, 112, 112, 64),
        "bn1": (batch, 112, 112, 64),
        "relu": (batch, 112, 112, 64),
        "maxpool": (batch, 56, 56, 64),
    }
    cin, size = 64, 56
    for stage, (width, count) in enumerate(zip((64, 128, 256, 512), blocks, strict=True), start=1):
        out_size = 56 >> (stage - 1)  # 56, 28, 14, 7
        cout = 4 * width if bottleneck else width
        for block in range(count):
            p = f"layer{stage}.{block}"
            first = size if not stride_in_1x1 and block == 0 else out_size  # where the stride sits
            if bottleneck:
                convs = [(1, (first, width)), (2, (out_size, width)), (3, (out_size, cout))]
            else:
                convs = [(1, (out_size, width)), (2, (out_size, width))]
            for i, (s, c) in convs:
                for kind in ("conv", "bn"):
                    shapes[f"{p}.{kind}{i}"] = (batch, s, s, c)
                if i < len(convs):
                    shapes[f"{p}.relu{i}"] = (batch, s, s, c)
            if block == 0 and (stage > 1 or bottleneck):
                shapes[f"{p}.downsample.0"] = shapes[f"{p}.downsample.1"] = (batch, out_size, out_size, cout)
            shapes[f"{p}.add"] = (batch, out_size, out_size, cout)
            size, cin = out_size, cout
    shapes |= {"avgpool": (batch, 1, 1, cin), "flatten": (batch, cin), "fc": (batch, 1000)}
    return shapes


def test_resnet50_shapes():
    g = resnet50()
    expected = _resnet_expected((3, 4, 6, 3), bottleneck=True)
    assert {node.name: node.shape for node in g} == expected
    assert len(g) == len(expected) == 160
    # v1: the stride is on the first 1×1 conv of the first block of stages 2-4
    assert g["layer2.0.conv1"].spec.stride == (2, 2) and g["layer2.0.conv2"].spec.stride == (1, 1)
    assert g["layer3.0.downsample.0"].spec.stride == (2, 2) and g["layer3.0.downsample.0"].spec.kh == 1
    assert g["layer1.0.downsample.0"].spec.stride == (1, 1)
    assert (g["conv1"].spec.kh, g["conv1"].spec.stride, g["conv1"].spec.padding) == (7, (2, 2), (3, 3))
    assert (g["maxpool"].spec.kh, g["maxpool"].spec.stride, g["maxpool"].spec.padding) == (3, (2, 2), (1, 1))
    assert g["layer4.2.add"].inputs == ("layer4.2.bn3", "layer4.1.add")
    assert g["layer4.0.add"].inputs == ("layer4.0.bn3", "layer4.0.downsample.1")


def test_resnet50_v15_moves_the_stride():
    g = resnet50(stride_in_1x1=False)
    assert {node.name: node.shape for node in g} == _resnet_expected(
        (3, 4, 6, 3), bottleneck=True, stride_in_1x1=False
    )
    assert g["layer2.0.conv1"].shape == (1, 56, 56, 128) and g["layer2.0.conv2"].spec.stride == (2, 2)


def test_resnet18_shapes():
    g = resnet18(batch=3)
    assert {node.name: node.shape for node in g} == _resnet_expected((2, 2, 2, 2), bottleneck=False, batch=3)
    assert "layer1.0.downsample.0" not in g and g["layer2.0.conv1"].spec.stride == (2, 2)


# ----------------------------------------------------------------------------------------------
# published totals (multiply weights only; MACs of conv and fc)


@pytest.mark.parametrize(
    "name, conv_weights, fc_weights, conv_macs, fc_macs",
    [
        # torchvision's 25,557,032 parameters less 53,120 BN parameters and the 1,000 fc biases;
        # 3.86 G MACs for the original v1 (stride in the 1×1 conv; the paper's "3.8 × 10^9")
        ("resnet50", 23_454_912, 2_048_000, 3_855_925_248, 2_048_000),
        # torchvision's 11,689,512 less 9,600 BN parameters and 1,000 biases; "1.8 G FLOPs"
        ("resnet18", 11_166_912, 512_000, 1_813_561_344, 512_000),
        # 138,357,544 parameters less 13,416 biases; 15.47 G MACs
        ("vgg16", 14_710_464, 123_633_664, 15_346_630_656, 123_633_664),
        # two towers: conv 34,848 + 307,200 + 884,736 + 663,552 + 442,368 = 2,332,704;
        # fc 9216·4096 + 4096·4096 + 4096·1000 = 58,621,952; plus 10,568 biases = 60,965,224 params
        # (the paper's "60 million"); MACs 105.4 M + 223.9 M + 149.5 M + 112.1 M + 74.8 M + 58.6 M
        ("alexnet", 2_332_704, 58_621_952, 665_784_864, 58_621_952),
    ],
)
def test_published_totals(name, conv_weights, fc_weights, conv_macs, fc_macs):
    totals = analyze(name)["totals"]
    assert totals["conv_weights"] == conv_weights and totals["fc_weights"] == fc_weights
    assert totals["weights"] == conv_weights + fc_weights
    assert totals["conv_macs"] == conv_macs and totals["fc_macs"] == fc_macs
    assert totals["conv_ops"] == 2 * conv_macs and totals["fc_ops"] == 2 * fc_macs
    assert totals["ops"] == 2 * (conv_macs + fc_macs)


def test_well_known_rounded_numbers():
    assert analyze("resnet50")["totals"]["weights"] == 25_502_912
    # parameters as torchvision counts them (weights, biases, batch-norm gamma / beta): its num_params
    assert analyze("resnet50")["totals"]["params"] == 25_557_032
    assert analyze("resnet18")["totals"]["params"] == 11_689_512
    # ResNet-50 v1.5 (torchvision): the familiar 4.09 G MACs
    assert analyze_graph(resnet50(stride_in_1x1=False))["totals"]["macs"] == 4_089_184_256
    assert analyze("vgg16")["totals"]["weights"] == 138_344_128
    assert analyze("vgg16")["totals"]["macs"] == pytest.approx(15.47e9, rel=1e-3)
    assert analyze("alexnet")["totals"]["weights"] == pytest.approx(60.95e6, rel=1e-4)


def test_analyze_records_batch_and_bits():
    one, two = analyze("resnet50"), analyze("resnet50", batch=2, bits=4)
    conv1 = one["layers"][0]
    assert conv1 == {
        "name": "conv1",
        "op": "conv2d",
        "kind": "conv",
        "shape": [1, 112, 112, 64],
        "weights": 9408,
        "params": 9408,
        "activations": 802_816,
        "input_activations": 150_528,
        "macs": 118_013_952,
        "ops": 236_027_904,
        "weight_bytes": 9408,
        "activation_bytes": 802_816,
        "input_bytes": 150_528,
        "intensity": 236_027_904 / (9408 + 150_528 + 802_816),
    }
    add = next(layer for layer in one["layers"] if layer["name"] == "layer1.0.add")
    assert (
        add["kind"] == "other" and add["input_activations"] == 2 * 56 * 56 * 256 and add["intensity"] == 0.0
    )
    t1, t2 = one["totals"], two["totals"]
    assert t2["weights"] == t1["weights"] and t2["weight_bytes"] == t1["weights"] // 2
    assert t2["macs"] == 2 * t1["macs"] and t2["activations"] == 2 * t1["activations"]
    assert t2["activation_bytes"] == t1["activations"]  # twice the count at half the bits
    assert t1["activations"] == 10_588_136 and t1["all_activations"] == 30_461_928
    assert (one["model"], one["batch"], one["image_size"], one["bits"]) == ("resnet50", 1, 224, 8)
    assert analyze("alexnet")["image_size"] == 227
    with pytest.raises(ValueError, match=re.escape("bits must be at most 32, not 64")):
        analyze("alexnet", bits=64)


# ----------------------------------------------------------------------------------------------
# bad inputs


def test_get_model_errors():
    with pytest.raises(
        ValueError,
        match=re.escape("unknown model 'resnet51'; known models: 'alexnet', 'efficientnet_b0', 'mobilenet_v2', "
                        "'resnet18', 'resnet50', 'resnext50_32x4d', 'shufflenet_v2', 'vgg16'"),
    ):
        get_model("resnet51")
    with pytest.raises(
        ValueError,
        match=re.escape(
            "vgg16 cannot take image_size 31: at layer 'pool5': output height 0 is less than 1: "
            "input height 1 + 2 * padding 0 is smaller than the window height 2"
        ),
    ):
        get_model("vgg16", image_size=31)
    with pytest.raises(
        ValueError,
        match=re.escape(
            "alexnet cannot take image_size 18: at layer 'pool1': output height 0 is less than 1: "
            "input height 2 + 2 * padding 0 is smaller than the window height 3"
        ),
    ):
        get_model("alexnet", image_size=18)
    with pytest.raises(ValueError, match=re.escape("alexnet cannot take image_size 10: at layer 'conv1'")):
        get_model("alexnet", image_size=10)
    with pytest.raises(ValueError, match=re.escape("image_size must be a positive integer, not 0")):
        get_model("resnet50", image_size=0)
    with pytest.raises(ValueError, match=re.escape("batch must be a positive integer, not -1")):
        get_model("resnet18", batch=-1)
    with pytest.raises(TypeError, match=re.escape("num_classes must be a positive integer, not 10.0")):
        get_model("vgg16", num_classes=10.0)
    assert get_model("vgg16", image_size=32).output.shape == (1, 1000)
    assert get_model("resnet50", image_size=1)["layer4.2.add"].shape == (1, 1, 1, 2048)
    assert sorted(MODELS) == ["alexnet", "efficientnet_b0", "mobilenet_v2", "resnet18", "resnet50", "resnext50_32x4d",
                             "shufflenet_v2", "vgg16"]


def test_graph_errors():
    g = Graph("t")
    with pytest.raises(GraphError, match=re.escape("node 'c' (conv2d): the graph has no input yet")):
        g.conv2d("c", "x", cout=1, kernel=1)
    x = g.input("x", (1, 8, 8, 4))
    with pytest.raises(GraphError, match=re.escape("node 'x' (relu): a node of that name already exists")):
        g.relu("x", x)
    with pytest.raises(GraphError, match=re.escape("node 'r' (relu): input 'y' is not a node of graph 't'")):
        g.relu("r", "y")
    with pytest.raises(GraphError, match=re.escape("node 'c' (conv2d): cin 4 is not divisible by groups 3")):
        g.conv2d("c", x, cout=3, kernel=3, groups=3)
    with pytest.raises(
        TypeError, match=re.escape("node 'c' (conv2d): cout must be a positive integer, not '8'")
    ):
        g.conv2d("c", x, cout="8", kernel=3)
    c = g.conv2d("c", x, cout=8, kernel=3, stride=2, padding=1)
    with pytest.raises(
        GraphError,
        match=re.escape(
            "node 'a' (add): inputs must have the same shape, "
            "not (1, 4, 4, 8) from 'c' and (1, 8, 8, 4) from 'x'"
        ),
    ):
        g.add("a", c, x)
    with pytest.raises(
        GraphError,
        match=re.escape("node 'fc' (linear): needs a 2-D input (N, K), not shape (1, 4, 4, 8) from node 'c'"),
    ):
        g.linear("fc", c, nout=10)
    f = g.flatten("f", c)
    with pytest.raises(
        GraphError,
        match=re.escape(
            "node 'p' (max_pool): needs an NHWC input (N, H, W, C), not shape (1, 128) from node 'f'"
        ),
    ):
        g.max_pool("p", f, kernel=2)
    with pytest.raises(GraphError, match=re.escape("node 'fc' (linear): a fused relu needs requant=True")):
        g.linear("fc", f, nout=10, requant=False, relu=True)
    assert g.linear("fc", f, nout=10) == "fc" and g.output.shape == (1, 10) and len(g) == 4
    with pytest.raises(KeyError, match=re.escape("graph 't' has no node 'zz'")):
        g["zz"]


# ----------------------------------------------------------------------------------------------
# synthetic weights, and the graphs run through the golden ops


def test_init_weights_deterministic():
    g = resnet18()
    a, b, c = init_weights(g, 1), init_weights(g, 1), init_weights(g, 2)
    assert a.keys() == b.keys() == {node.name for node in g if node.op in ("conv2d", "linear", "batch_norm")}
    for name in a:
        for key in a[name]:
            np.testing.assert_array_equal(a[name][key], b[name][key])
    assert not np.array_equal(a["conv1"]["weight"], c["conv1"]["weight"])
    assert a["conv1"]["weight"].dtype == np.int8 and a["conv1"]["weight"].shape == (64, 7, 7, 3)
    assert (
        "bias" not in a["conv1"]
        and a["fc"]["bias"].dtype == np.int32
        and a["fc"]["weight"].shape == (1000, 512)
    )
    assert a["bn1"]["gamma"].dtype == np.int32 and a["bn1"]["gamma"].min() >= 1024
    # per-node seeding: the same layer in another graph gets the same values
    np.testing.assert_array_equal(init_weights(resnet50(), 1)["conv1"]["weight"], a["conv1"]["weight"])
    with pytest.raises(ValueError, match=re.escape("seed must be a non-negative integer, not -1")):
        init_weights(g, -1)


def run_golden(graph, params, x):
    """Execute a graph with the golden ops, calibrating each requantization on the fly."""
    values = {}
    for node in graph:
        inputs = [values[name] for name in node.inputs]
        p = params.get(node.name, {})
        if node.op == "input":
            out = x
        elif node.op in ("conv2d", "linear"):
            spec = node.spec
            if node.op == "conv2d":
                kw = dict(
                    stride=spec.stride, padding=spec.padding, dilation=spec.dilation, groups=spec.groups
                )
                acc = golden.conv2d(inputs[0], p["weight"], p.get("bias"), **kw)
            else:
                acc = golden.linear(inputs[0], p["weight"], p.get("bias"))
            m, s = golden.choose_requant(acc, relu=node.relu)
            out = golden.requantize(acc, m, s, relu=node.relu) if node.requant else acc
        elif node.op == "batch_norm":
            out = golden.batch_norm_train(inputs[0], p["gamma"], p["beta"])
        elif node.op == "relu":
            out = golden.relu(inputs[0])
        elif node.op in ("max_pool", "avg_pool"):
            pool = golden.max_pool2d if node.op == "max_pool" else golden.avg_pool2d
            out = pool(
                inputs[0], (node.spec.kh, node.spec.kw), stride=node.spec.stride, padding=node.spec.padding
            )
        elif node.op == "global_avg_pool":
            out = golden.global_avg_pool(inputs[0])
        elif node.op == "add":
            half = dict(a_mult=1 << 30, a_shift=31, b_mult=1 << 30, b_shift=31)
            out = golden.add_requant(inputs[0], inputs[1], **half, relu=node.relu)
        elif node.op == "flatten":
            out = golden.flatten(inputs[0])
        assert out.shape == node.shape, node.name
        values[node.name] = out
    return values


@pytest.mark.parametrize("name, size", [("resnet18", 32), ("alexnet", 67), ("vgg16", 32)])
def test_graphs_run_through_golden_ops(name, size):
    g = get_model(name, image_size=size, batch=2, num_classes=10)
    x = np.random.default_rng(0).integers(-128, 128, g["input"].shape, dtype=np.int8)
    values = run_golden(g, init_weights(g, 0), x)
    logits = values[g.output.name]
    assert logits.shape == (2, 10) and logits.dtype == np.int8
    assert np.abs(logits.astype(int)).max() > 0
