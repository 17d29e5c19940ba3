"""The op kinds of the mobile networks: golden functions, graph nodes, lowering, backends."""

import re

import numpy as np
import pytest

from tests.cases import seed_of
from tilelab.net.backends import ExecutionError, ReferenceBackend, TileBackend
from tilelab.net.executor import execute, prepare
from tilelab.net.graph import Graph, GraphError
from tilelab.net.lowering import RTL_MISSING_STEPS, TABLE_INPUT_SCALE, LoweringError, lower, plan_steps
from tilelab.net.models import init_weights
from tilelab.reference import golden

# --------------------------------------------------------------------------------------------
# golden functions


def test_relu6_is_a_clamp_between_the_zero_point_and_six():
    x = np.array([-128, -1, 0, 3, 5, 100, 127], dtype=np.int8)
    np.testing.assert_array_equal(golden.relu6(x), [0, 0, 0, 3, 5, 100, 127])
    np.testing.assert_array_equal(golden.relu6(x, zero_point=3, six=100), [3, 3, 3, 3, 5, 100, 100])
    with pytest.raises(ValueError, match=r"^six must be at least zero_point 3, not 2$"):
        golden.relu6(x, zero_point=3, six=2)
    with pytest.raises(ValueError, match=r"^six must be an integer in \[-128, 127\], not 128$"):
        golden.relu6(x, six=128)


def _entry(table, q):
    return int(table[q + 128])


def test_activation_tables_exact_entries():
    sig = golden.activation_table("sigmoid", 1 / 16, 0, 1 / 255, -128)
    # sigmoid(0) * 255 = 127.5 rounds half to even (128); sigmoid(1) * 255 = 186.42; sigmoid(-1) * 255 = 68.58
    assert [_entry(sig, q) for q in (-128, -16, 0, 16, 127)] == [-128, -59, 0, 58, 127]
    silu = golden.activation_table("silu", 1 / 16, 0, 1 / 16, 0)
    # silu(1) = 0.731 -> 11.70 steps; silu(-1) = -0.269 -> -4.30; silu(-8) = -0.0027 -> -0.04
    assert [_entry(silu, q) for q in (-128, -16, 0, 16, 127)] == [0, -4, 0, 12, 127]
    hs = golden.activation_table("hard_swish", 1 / 16, 0, 1 / 16, 0)
    # hard_swish(-3) = 0, (-2) = -1/3 -> -5.33, (1) = 2/3 -> 10.67, (5) = 5
    assert [_entry(hs, q) for q in (-48, -32, 16, 80)] == [0, -5, 11, 80]
    r6 = golden.activation_table("relu6", 1.0, 0, 2.0, 10)
    # 0.5, 1.5, 2.5 steps round half to even: 0, 2, 2; 6 / 2 = 3; plus the zero point 10
    assert [_entry(r6, q) for q in (-5, 1, 3, 5, 7, 127)] == [10, 10, 12, 12, 13, 13]
    assert sig.dtype == np.int8 and sig.shape == (256,)


def test_activation_table_bad_arguments():
    known = "'sigmoid', 'silu', 'hard_swish', 'relu6'"
    with pytest.raises(ValueError, match=f"^unknown activation 'gelu'; known: {known}$"):
        golden.activation_table("gelu", 1, 0, 1, 0)
    with pytest.raises(ValueError, match=r"^y_scale must be a positive finite number, not 0.0$"):
        golden.activation_table("silu", 1, 0, 0.0, 0)
    with pytest.raises(ValueError, match=r"^x_zero_point must be an integer in \[-128, 127\], not 200$"):
        golden.activation_table("silu", 1, 200, 1, 0)


def test_mul_channel_broadcasts_and_rounds():
    x = np.array([100, -100, 7, 7], dtype=np.int8).reshape(1, 1, 1, 4)
    s = np.array([127, 127, -128, 0], dtype=np.int8).reshape(1, 1, 1, 4)
    y = golden.mul_channel(x, s, multiplier=257, shift=16, s_zero_point=-128)
    # 100·255·257/2**16 = 100.4998 -> 100; -100.4998 -> -100 (floor of -99.498 after the +2**15); 0; 7·128/255 -> 4
    np.testing.assert_array_equal(y.ravel(), [100, -100, 0, 4])
    x2 = np.arange(2 * 2 * 2 * 3, dtype=np.int8).reshape(2, 2, 2, 3)
    s2 = np.array([[1, 2, 3], [-1, -2, -3]], dtype=np.int8).reshape(2, 1, 1, 3)
    y2 = golden.mul_channel(x2, s2, multiplier=1, shift=1, zero_point=5)
    want = np.clip(((x2.astype(np.int64) * s2 + 1) >> 1) + 5, -128, 127)
    np.testing.assert_array_equal(y2, want)
    assert golden.mul_channel(x2, x2, multiplier=1 << 20, shift=1).max() == 127  # saturates
    with pytest.raises(ValueError, match=re.escape("s must have shape (2, 1, 1, 3) or (2, 2, 2, 3), not (2, 1, 1, 2)")):
        golden.mul_channel(x2, s2[..., :2], multiplier=1, shift=1)
    with pytest.raises(ValueError, match=r"^shift must be in \[1, 62\], not 0$"):
        golden.mul_channel(x2, s2, multiplier=1, shift=0)


def test_concat_split_shuffle():
    a = np.arange(1 * 2 * 2 * 4, dtype=np.int8).reshape(1, 2, 2, 4)
    b = -np.arange(1 * 2 * 2 * 2, dtype=np.int8).reshape(1, 2, 2, 2)
    c = golden.concat_channels([a, b])
    np.testing.assert_array_equal(c[0, 1, 1], [12, 13, 14, 15, -6, -7])
    np.testing.assert_array_equal(golden.channel_split(c, 3, 5)[0, 1, 1], [15, -6])
    np.testing.assert_array_equal(golden.channel_shuffle(c, 2)[0, 1, 1], [12, 15, 13, -6, 14, -7])
    np.testing.assert_array_equal(golden.channel_shuffle(c, 3)[0, 1, 1], [12, 14, -6, 13, 15, -7])
    with pytest.raises(ValueError, match=re.escape("inputs[1] has N, H, W (1, 2, 1), inputs[0] (1, 2, 2)")):
        golden.concat_channels([a, b[:, :, :1]])
    with pytest.raises(ValueError, match=re.escape("channel range 4:7 must satisfy 0 <= start < stop <= 6")):
        golden.channel_split(c, 4, 7)
    with pytest.raises(ValueError, match=r"^groups must be a positive divisor of the 6 channels, not 4$"):
        golden.channel_shuffle(c, 4)


# --------------------------------------------------------------------------------------------
# graph nodes


def _small():
    g = Graph("t")
    x = g.input("input", (1, 4, 4, 8))
    return g, x


def test_graph_nodes_infer_shapes():
    g, x = _small()
    y = g.hard_swish("hs", g.relu6("r6", x))
    s = g.sigmoid("sig", g.silu("si", g.global_avg_pool("gap", y)))
    m = g.mul("m", y, s)
    a, b = g.split("a", m, start=0, stop=3), g.split("b", m, start=3, stop=8)
    cat = g.concat("cat", [b, a, x])
    g.channel_shuffle("sh", cat, groups=4)
    assert [g[n].shape for n in ("r6", "hs", "si", "sig", "m", "a", "b", "cat", "sh")] == [
        (1, 4, 4, 8), (1, 4, 4, 8), (1, 1, 1, 8), (1, 1, 1, 8), (1, 4, 4, 8), (1, 4, 4, 3), (1, 4, 4, 5),
        (1, 4, 4, 16), (1, 4, 4, 16)]
    assert g["cat"].inputs == ("b", "a", "input") and g["b"].attrs == {"start": 3, "stop": 8}
    assert g["sh"].attrs == {"groups": 4}
    assert hash(g["sh"]) == hash(g["sh"])


@pytest.mark.parametrize("build, message", [
    (lambda g, x: g.mul("m", x, g.global_avg_pool("p", g.split("s", x, start=0, stop=4))),
     "node 'm' (mul): scale 'p' must have shape (1, 1, 1, 8) or (1, 4, 4, 8) to multiply 'input', not (1, 1, 1, 4)"),
    (lambda g, x: g.concat("c", [x, g.max_pool("p", x, kernel=2)]),
     "node 'c' (concat): inputs must have the same (N, H, W), not (1, 4, 4) from 'input' and (1, 2, 2) from 'p'"),
    (lambda g, x: g.concat("c", [x]), "node 'c' (concat): needs a list of at least two inputs, not ['input']"),
    (lambda g, x: g.concat("c", "input"), "node 'c' (concat): needs a list of at least two inputs, not 'input'"),
    (lambda g, x: g.split("s", x, start=4, stop=9),
     "node 's' (split): channels 4:9 must satisfy 0 <= start < stop <= 8 ('input''s channels)"),
    (lambda g, x: g.split("s", x, start=0, stop=2.0), "node 's' (split): stop must be an integer, not 2.0"),
    (lambda g, x: g.channel_shuffle("s", x, groups=3),
     "node 's' (channel_shuffle): groups must be a positive divisor of 'input''s 8 channels, not 3"),
    (lambda g, x: g.silu("s", "nope"), "node 's' (silu): input 'nope' is not a node of graph 't'"),
    (lambda g, x: g.split("s", g.flatten("f", x), start=0, stop=1),
     "node 's' (split): needs an NHWC input (N, H, W, C), not shape (1, 128) from node 'f'"),
])
def test_graph_nodes_bad_shapes(build, message):
    g, x = _small()
    with pytest.raises(GraphError, match=f"^{re.escape(message)}$"):
        build(g, x)


# --------------------------------------------------------------------------------------------
# lowering and backends


def _se_graph():
    g, x = _small()
    y = g.conv2d("conv", x, cout=16, kernel=3, padding=1, bias=False)
    y = g.relu6("act", g.batch_norm("bn", y))
    y = g.silu("silu", g.conv2d("dw", y, cout=16, kernel=3, padding=1, groups=16))
    s = g.conv2d("fc1", g.global_avg_pool("pool", y), cout=4, kernel=1)
    s = g.sigmoid("sig", g.conv2d("fc2", g.silu("fc1.act", s), cout=16, kernel=1))
    y = g.mul("mul", y, s)
    y = g.hard_swish("hs", g.relu6("r6", y))
    a, b = g.split("a", y, start=0, stop=8), g.split("b", y, start=8, stop=16)
    y = g.channel_shuffle("shuffle", g.concat("cat", [b, a]), groups=2)
    return g


def test_lowering_of_the_new_node_kinds():
    g = _se_graph()
    steps = {s.name: s for s in plan_steps(g)}
    assert list(steps) == ["conv", "dw", "silu", "pool", "fc1", "fc1.act", "fc2", "sig", "mul", "r6", "hs", "a",
                           "b", "cat", "shuffle"]
    assert steps["conv"].fused == ("conv", "bn", "act") and steps["conv"].relu  # ReLU6 fused: ReLU + int8 clamp
    assert [steps[n].op for n in ("silu", "sig", "mul", "r6", "hs", "a", "cat", "shuffle")] == [
        "table", "table", "mul", "relu", "table", "split", "concat", "channel_shuffle"]
    x = np.random.default_rng(seed_of("se-graph")).integers(-128, 128, (1, 4, 4, 8), dtype=np.int8)
    lowered = lower(g, init_weights(g, 0), x)
    by = {s.name: s for s in lowered.steps}
    ref = lowered.reference
    sig = by["sig"].attrs
    assert (sig["function"], sig["x_scale"], sig["y_scale"], sig["y_zero_point"]) == ("sigmoid", TABLE_INPUT_SCALE,
                                                                                       1 / 255, -128)
    q = ref["fc2"].astype(np.float64)
    want = np.clip(np.rint(255 / (1 + np.exp(-q / 16))) - 128, -128, 127).astype(np.int8)
    np.testing.assert_array_equal(ref["sig"], want)
    assert by["sig"].clipped_fraction == 0.0
    mul = by["mul"].attrs
    assert (mul["multiplier"], mul["shift"], mul["s_zero_point"]) == (257, 16, -128)
    prod = ref["silu"].astype(np.int64) * (ref["sig"].astype(np.int64) + 128) * 257
    np.testing.assert_array_equal(ref["mul"], (prod + (1 << 15)) >> 16)
    np.testing.assert_array_equal(ref["r6"], np.maximum(ref["mul"], 0))
    v = ref["r6"].astype(np.float64) / 16
    np.testing.assert_array_equal(ref["hs"], np.clip(np.rint(v * np.clip(v + 3, 0, 6) / 6 * 16), -128, 127))
    np.testing.assert_array_equal(ref["shuffle"][..., 0::2], ref["hs"][..., 8:])
    np.testing.assert_array_equal(ref["shuffle"][..., 1::2], ref["hs"][..., :8])
    result = execute(lowered, ReferenceBackend())
    assert result.all_bit_exact and all(r["cycles"] == 0 for r in result.records)


def test_mul_whose_scale_is_not_a_sigmoid_is_refused():
    g, x = _small()
    g.mul("m", x, g.global_avg_pool("p", x))
    with pytest.raises(LoweringError, match=re.escape(
            "node 'm' (mul): the scale must come from a sigmoid (squeeze-and-excitation), not from 'p' "
            "(global_avg_pool)")):
        lower(g, {}, np.zeros((1, 4, 4, 8), dtype=np.int8))


@pytest.mark.parametrize("model, first, op", [
    ("efficientnet_b0", "features.0.2", "table"),
    ("shufflenet_v2", "stage2.0.concat", "concat"),
])
def test_hardware_refuses_steps_it_lacks_before_any_simulation(model, first, op):
    _, lowered, _ = prepare(model, image_size=8, seed=0)
    with pytest.raises(ExecutionError, match=f"^{re.escape(f'step {first!r} (op {op!r}): the RTL has no ')}"
                                             f"{re.escape(RTL_MISSING_STEPS[op])} yet; ReferenceBackend"):
        execute(lowered, TileBackend())


def test_every_missing_step_is_refused_by_name():
    g = _se_graph()
    steps = plan_steps(g)
    backend = TileBackend()
    for s in steps:
        if s.op in RTL_MISSING_STEPS:
            with pytest.raises(ExecutionError, match=re.escape(f"step {s.name!r} (op {s.op!r}): the RTL has no "
                                                               f"{RTL_MISSING_STEPS[s.op]} yet")):
                backend.check([s])
        else:
            backend.check([s])


@pytest.mark.parametrize("model", ["mobilenet_v2", "efficientnet_b0", "shufflenet_v2", "resnext50_32x4d"])
def test_zoo_runs_on_the_golden_model(model):
    _, lowered, _ = prepare(model, image_size=16, seed=2)
    result = execute(lowered, ReferenceBackend())
    assert result.all_bit_exact and len(result.records) == len(lowered.steps)
    assert result.outputs[lowered.steps[-1].name].shape == (1, 1000)
    assert max(s.clipped_fraction or 0.0 for s in lowered.steps) < 0.05
