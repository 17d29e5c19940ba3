"""Inference lowering: batch norm folded into the conv, fused ReLU, add requantization, clipping."""

import numpy as np
import pytest

from tilelab.net.graph import Graph
from tilelab.net.lowering import BN_EPS, BN_MIN_COUNT, LoweringError, lower, run_golden_step, synthetic_input
from tilelab.net.models import get_model, init_weights
from tilelab.reference import golden


@pytest.fixture(scope="module")
def r50():
    g = get_model("resnet50", image_size=32)
    return g, init_weights(g, 3), lower(g, init_weights(g, 3), synthetic_input(g.nodes[0].shape, 3))


def test_resnet50_steps(r50):
    g, _, lm = r50
    ops = [s.op for s in lm.steps]
    # 53 convs (BN and ReLU fused), 1 max pool, 16 adds, global pool, flatten, fc.
    assert ops.count("conv2d") == 53 and ops.count("add") == 16 and ops.count("linear") == 1
    assert ops.count("max_pool") == ops.count("global_avg_pool") == ops.count("flatten") == 1
    assert len(lm.steps) == 73 and "batch_norm" not in ops and "relu" not in ops
    # Every graph node but the input is covered exactly once.
    covered = [n for s in lm.steps for n in s.fused]
    assert sorted(covered) == sorted(n.name for n in g.nodes[1:])
    s = lm.steps[lm.index("layer1.0.conv2")]
    assert s.fused == ("layer1.0.conv2", "layer1.0.bn2", "layer1.0.relu2") and s.relu and s.out == "int8"
    s = lm.steps[lm.index("layer1.0.conv3")]
    assert s.fused == ("layer1.0.conv3", "layer1.0.bn3") and not s.relu
    add = lm.steps[lm.index("layer1.0.add")]
    assert add.inputs == ("layer1.0.conv3", "layer1.0.downsample.0") and add.relu
    assert lm.steps[lm.index("layer1.1.conv1")].inputs == ("layer1.0.add",)
    fc = lm.steps[-1]
    assert fc.op == "linear" and fc.out == "int8" and fc.inputs == ("flatten",)


def test_clipped_fraction_below_one_percent(r50):
    _, _, lm = r50
    fractions = {s.name: s.clipped_fraction for s in lm.steps if s.op in ("conv2d", "linear", "add")}
    assert all(f is not None for f in fractions.values())
    assert max(fractions.values()) < 0.01, max(fractions.items(), key=lambda kv: kv[1])


def test_outputs_use_the_int8_range(r50):
    _, _, lm = r50
    for s in lm.steps:
        if s.op in ("conv2d", "add"):
            y = lm.reference[s.name]
            assert int(y.max()) >= 32, (s.name, int(y.max()))  # not squeezed into a few levels


def test_folded_conv_matches_float_batch_norm(r50):
    """The folded int8 conv is the float conv → BN → ReLU, rounded, within one output step."""
    g, params, lm = r50
    for name in ("conv1", "layer1.0.conv2", "layer2.0.conv3", "layer3.1.conv1", "layer4.1.conv2"):
        s = lm.steps[lm.index(name)]
        x = lm.reference[s.inputs[0]] if s.inputs[0] != "input" else lm.input
        spec = s.spec
        acc = golden.conv2d(x, params[name]["weight"], stride=spec.stride, padding=spec.padding).astype(np.float64)
        bn = params[s.fused[1]]
        a = acc.reshape(-1, acc.shape[-1])
        mean, var = (a.mean(0), a.var(0)) if len(a) >= BN_MIN_COUNT else (a.mean(), a.var())
        y = (bn["gamma"] / 256.0) * (acc - mean) / np.sqrt(var + BN_EPS) + bn["beta"]
        if s.relu:
            y = np.maximum(y, 0)
        want = np.clip(np.round(y), -128, 127)
        assert np.max(np.abs(want - lm.reference[name])) <= 1, name


def test_reference_is_the_golden_chain(r50):
    _, _, lm = r50
    for s in lm.steps[:12]:
        ins = [lm.input if i == "input" else lm.reference[i] for i in s.inputs]
        np.testing.assert_array_equal(run_golden_step(s, ins), lm.reference[s.name])


def test_add_clipped_fraction_is_exact():
    rng = np.random.default_rng(0)
    g = Graph("adder")
    x = g.input("x", (1, 8, 8, 16))
    y = g.conv2d("c", x, cout=16, kernel=1, relu=True)
    g.add("a", y, x, relu=False)
    lm = lower(g, init_weights(g, 1), rng.integers(-128, 128, (1, 8, 8, 16), dtype=np.int8))
    add = lm.steps[-1]
    a, b = lm.reference["c"], lm.input
    # Recount from wider golden outputs: the sum rescaled with one more shift bit doubled back.
    t = (a.astype(np.int64) + b) * int(add.multiplier)
    approx = np.count_nonzero(np.abs(t) > 127.5 * 2.0 ** int(add.shift)) / t.size
    assert add.clipped_fraction == pytest.approx(approx, abs=0.01)
    assert 0 < add.clipped_fraction < 0.01


def test_lowering_errors():
    g = Graph("bad")
    x = g.input("x", (1, 4, 4, 2))
    g.batch_norm("bn", x)
    with pytest.raises(LoweringError, match=r"node 'bn' \(batch_norm\): inference lowering folds a batch norm "
                                            r"into the conv before it, but it reads 'x' \(input\)"):
        lower(g, init_weights(g, 0), np.zeros((1, 4, 4, 2), np.int8))
    g = get_model("resnet18", image_size=32)
    with pytest.raises(LoweringError, match=r"input must be an int8 array of shape \(1, 32, 32, 3\)"):
        lower(g, init_weights(g, 0), np.zeros((1, 16, 16, 3), np.int8))
    with pytest.raises(LoweringError, match=r"node 'conv1' \(conv2d\): parameter 'weight' missing"):
        lower(g, {}, np.zeros((1, 32, 32, 3), np.int8))


def test_plan_steps_are_the_lowered_steps_without_numbers(r50):
    from tilelab.net.lowering import plan_steps

    g, _, lm = r50
    planned = plan_steps(g)
    fields = ("name", "op", "inputs", "shape", "fused", "spec", "relu", "out")
    assert [tuple(getattr(s, f) for f in fields) for s in planned] == \
           [tuple(getattr(s, f) for f in fields) for s in lm.steps]
    assert all(s.weight is None and s.multiplier is None for s in planned)
