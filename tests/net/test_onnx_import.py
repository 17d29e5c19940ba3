"""ONNX import against onnxruntime: small float graphs built with ``onnx.helper``, quantized in the test.

Each graph is quantized with ``onnxruntime.quantization.quantize_static`` (QDQ, or QOperator)
from a seeded calibration reader, imported with :func:`tilelab.net.onnx.load_onnx` and run on
the golden backend; every step's output must equal onnxruntime's tensor of the same name in the
optimized model (layer by layer) and the model output must equal onnxruntime's output of the
original model, bit for bit.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
quantization = pytest.importorskip("onnxruntime.quantization")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from tilelab.net.executor import execute  # noqa: E402
from tilelab.net.onnx import GoldenBackend, load_onnx  # noqa: E402


def rng_for(name):
    return np.random.default_rng(zlib.crc32(name.encode()))


class Builder:
    """A float ONNX graph, node by node, with seeded weights."""

    def __init__(self, name, shape, *, batch=None):
        self.name, self.rng = name, rng_for(name)
        self.nodes, self.inits, self.shape = [], [], shape
        self.batch = batch
        self.count = 0

    def weight(self, shape, scale=0.3):
        return self.const((self.rng.standard_normal(shape) * scale).astype(np.float32))

    def const(self, value):
        name = f"k{len(self.inits)}"
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, op, inputs, **attrs):
        self.count += 1
        out = f"{op.lower()}{self.count}"
        self.nodes.append(helper.make_node(op, inputs, [out], name=f"{op}_{self.count}", **attrs))
        return out

    def conv(self, x, cin, cout, k=3, *, stride=1, pad=1, group=1, dilation=1):
        return self.op("Conv", [x, self.weight((cout, cin // group, k, k), 0.5 / np.sqrt(cin // group * k * k) * 3),
                                self.weight((cout,), 0.1)],
                       kernel_shape=[k, k], strides=[stride] * 2, pads=[pad] * 4, group=group,
                       dilations=[dilation] * 2)

    def model(self, out):
        dims = list(self.shape)
        if self.batch is not None:
            dims[0] = self.batch
        graph = helper.make_graph(self.nodes, self.name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
                                  [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)], self.inits)
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        m.ir_version = 8
        return m


def cnn(name="cnn"):
    """Conv/ReLU, MaxPool, depthwise stride 2 / ReLU6, 1x1, residual QLinearAdd, LeakyReLU, GAP, Gemm, Softmax."""
    b = Builder(name, (1, 3, 12, 12))
    x = b.op("Relu", [b.conv("x", 3, 8)])
    x = b.op("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
    y = b.conv(x, 8, 8, stride=2, group=8)
    y = b.op("Clip", [y, b.const(np.float32(0)), b.const(np.float32(6))])
    y = b.conv(y, 8, 16, k=1, pad=0)
    z = b.conv(x, 8, 16, k=1, pad=0, stride=2)
    x = b.op("Add", [y, z])
    x = b.op("LeakyRelu", [x], alpha=0.1)
    x = b.op("GlobalAveragePool", [x])
    x = b.op("Flatten", [x])
    x = b.op("Gemm", [x, b.weight((10, 16)), b.weight((10,), 0.1)], transB=1)
    return b.model(b.op("Softmax", [x], axis=1))


def branches(name="branches", batch=None):
    """Grouped conv, SiLU (QLinearSigmoid · QLinearMul), Concat, AveragePool, dilation, MaxPool pad, Flatten + Gemm."""
    b = Builder(name, (2, 4, 10, 10), batch=batch)
    a = b.conv("x", 4, 8, group=2)
    s = b.op("Sigmoid", [a])
    a = b.op("Mul", [a, s])
    c = b.conv("x", 4, 8, k=1, pad=0)
    x = b.op("Concat", [a, c], axis=1)
    x = b.op("AveragePool", [x], kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1], count_include_pad=0)
    x = b.conv(x, 16, 8, pad=2, dilation=2)
    x = b.op("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    x = b.op("Flatten", [x])
    return b.model(b.op("Gemm", [x, b.weight((6, 8 * 5 * 5), 0.05), b.weight((6,), 0.1)], transB=1))


def matmul_add(name="matmul-add"):
    """Reshape to (N, -1) (H·W > 1: the weights permuted to NHWC order), MatMul + Add (QLinearMatMul, QLinearAdd
    of the constant bias), Softmax."""
    b = Builder(name, (2, 4, 6, 6))
    x = b.op("Relu", [b.conv("x", 4, 8)])
    x = b.op("Reshape", [x, b.const(np.array([2, -1], np.int64))])
    x = b.op("MatMul", [x, b.weight((8 * 36, 5), 0.05)])
    x = b.op("Add", [x, b.weight((5,), 0.3)])
    return b.model(b.op("Softmax", [x], axis=1))


class _Reader(quantization.CalibrationDataReader if hasattr(quantization, "CalibrationDataReader") else object):
    def __init__(self, name, shape, count=4):
        rng = rng_for(f"calibration-{name}")
        self.data = iter([{"x": rng.standard_normal(shape).astype(np.float32)} for _ in range(count)])

    def get_next(self):
        return next(self.data, None)


def quantize(model, tmp_path, *, activations="u8", fmt="qdq", per_channel=True, exclude=()):
    """``quantize_static`` of ``model``: the quantized model's path."""
    src, dst = tmp_path / f"{model.graph.name}-float.onnx", tmp_path / f"{model.graph.name}-{activations}-{fmt}.onnx"
    onnx.save(model, src)
    shape = [d.dim_value or 2 for d in model.graph.input[0].type.tensor_type.shape.dim]
    qt = quantization.QuantType
    quantization.quantize_static(
        str(src), str(dst), _Reader(model.graph.name, shape),
        quant_format=quantization.QuantFormat.QDQ if fmt == "qdq" else quantization.QuantFormat.QOperator,
        activation_type=qt.QUInt8 if activations == "u8" else qt.QInt8, weight_type=qt.QInt8,
        per_channel=per_channel, nodes_to_exclude=list(exclude))
    return dst


def session(model, *, optimize=True, int8_fusions=False):
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if int8_fusions:
        options.add_session_config_entry("session.qdqisint8allowed", "1")
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    data = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def stored(q):
    return (q.astype(np.int16) - (128 if q.dtype == np.uint8 else 0)).astype(np.int8)


def layer_by_layer(m, x):
    """Every step's tensor as onnxruntime computes it in the optimized model (stored int8, NHWC)."""
    proto = onnx.load_from_string(m.optimized)
    names = [s.params["tensor"] for s in m.steps]
    del proto.graph.output[:]
    proto.graph.output.extend([onnx.ValueInfoProto(name=n) for n in names])
    values = session(proto.SerializeToString(), optimize=False).run(names, {m.model_input.name: x})
    out = {}
    for step, v in zip(m.steps, values, strict=True):
        v = stored(v)
        out[step.name] = v.transpose(0, 2, 3, 1) if v.ndim == 4 else v
    return out


def check_model(path, **kw):
    m = load_onnx(path, **kw)
    x = m.random_input()
    m = m.with_input(x)
    result = execute(m, GoldenBackend())
    assert result.all_bit_exact
    theirs = layer_by_layer(m, x)
    for step in m.steps:
        ours = result.outputs[step.name]
        assert ours.dtype == np.int8 and ours.shape == tuple(step.shape), step.name
        if step.op == "flatten":
            continue                                  # NHWC order by design (the next layer's weights are permuted)
        np.testing.assert_array_equal(ours, theirs[step.name], err_msg=step.name)
    want = session(path, int8_fusions=True).run(None, {m.model_input.name: x})[0]
    got = m.to_output(result.outputs[m.output_step])
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    return m


@pytest.mark.parametrize("activations", ["u8", "s8"])
def test_cnn_matches_onnxruntime_layer_by_layer(tmp_path, activations):
    m = check_model(quantize(cnn(), tmp_path, activations=activations))
    steps = {s.name: s for s in m.steps}
    # ReLU and Clip(0, 6) folded into the convs' output scales (no step of their own)
    assert sorted(steps) == ["Add_8", "Conv_1", "Conv_4", "Conv_6", "Conv_7", "Flatten_11", "Gemm_12",
                             "GlobalAveragePool_10", "LeakyRelu_9", "MaxPool_3"]
    assert [steps[k].op for k in ("Add_8", "LeakyRelu_9", "GlobalAveragePool_10", "Gemm_12")] == [
        "qlinear_add", "qlinear_table", "conv2d", "linear"]
    assert steps["Conv_4"].spec.groups == 8 and steps["Conv_4"].spec.stride == (2, 2)
    assert steps["GlobalAveragePool_10"].source == "com.microsoft.QLinearGlobalAveragePool"
    assert steps["GlobalAveragePool_10"].spec.kh == 3 and steps["GlobalAveragePool_10"].spec.groups == 16
    assert steps["Conv_1"].pad_value == m.model_input.zero_point
    assert m.host_tail == ["com.microsoft.QLinearSoftmax", "DequantizeLinear"]
    assert m.model_output.dtype == np.float32 and m.model_output.shape == (1, 10)


@pytest.mark.parametrize("activations", ["u8", "s8"])
def test_branches_match_onnxruntime_layer_by_layer(tmp_path, activations):
    m = check_model(quantize(branches(), tmp_path, activations=activations))
    ops = {s.name: s.op for s in m.steps}
    assert ops == {"Conv_1": "conv2d", "Sigmoid_2": "qlinear_table", "Mul_3": "qlinear_mul", "Conv_4": "conv2d",
                   "Concat_5": "qlinear_concat", "AveragePool_6": "qlinear_avg_pool", "Conv_7": "conv2d",
                   "MaxPool_8": "max_pool", "Flatten_9": "flatten", "Gemm_10": "linear"}
    steps = {s.name: s for s in m.steps}
    assert steps["Conv_7"].spec.dilation == (2, 2) and steps["Conv_1"].spec.groups == 2
    assert m.host_tail == ["DequantizeLinear"] and m.tail_model is None   # the golden dequantization


@pytest.mark.parametrize("activations", ["u8", "s8"])
def test_matmul_add_after_reshape(tmp_path, activations):
    m = check_model(quantize(matmul_add(), tmp_path, activations=activations))
    assert [(s.name, s.op) for s in m.steps] == [("Conv_1", "conv2d"), ("Reshape_3", "flatten"),
                                                 ("MatMul_4", "linear"), ("Add_5", "qlinear_add")]
    assert m.steps[3].params["b_const"].shape == (1, 5)


def test_float_softmax_at_the_end_runs_on_the_host(tmp_path):
    m = check_model(quantize(cnn("cnn-float-softmax"), tmp_path, exclude=["Softmax_13"]))
    assert m.host_tail == ["DequantizeLinear", "Softmax"] and m.tail_model is not None
    assert m.describe_io()["host_tail_simulated"] is False


def test_qoperator_model_imports_directly(tmp_path):
    check_model(quantize(cnn("cnn-qop"), tmp_path, fmt="qop"))


def test_per_tensor_weights(tmp_path):
    check_model(quantize(branches("branches-pt"), tmp_path, per_channel=False))


def test_symbolic_batch_fixed_by_batch(tmp_path):
    m = check_model(quantize(branches("branches-n", batch="N"), tmp_path), batch=3)
    assert m.model_input.shape == (3, 4, 10, 10)


@pytest.mark.parametrize("name, activations, agrees", [
    ("cnn", "u8", True), ("branches", "u8", True), ("cnn", "s8", True),
    # onnxruntime's default x86 session keeps Conv_1 / Conv_4 (both read the model input) as
    # DequantizeLinear → float Conv → QuantizeLinear; with int8 QDQ fusions they are QLinearConv
    ("branches", "s8", False),
])
def test_optimized_model_against_the_original_under_default_settings(tmp_path, name, activations, agrees):
    model = {"cnn": cnn, "branches": branches}[name](f"{name}-opt-{activations}")
    path = quantize(model, tmp_path, activations=activations)
    m = load_onnx(path)
    x = m.random_input()
    default = session(path).run(None, {"x": x})[0]
    optimized = session(m.optimized).run(None, {"x": x})[0]
    assert np.array_equal(default, optimized) == agrees == m.matches_ort_default
    # the canonicalised model always equals the original under int8 QDQ fusions
    np.testing.assert_array_equal(optimized, session(path, int8_fusions=True).run(None, {"x": x})[0])


def test_eight_bit_input_and_output(tmp_path):
    # a QOperator graph with a uint8 input and output: no host conversion but the layout
    rng = rng_for("u8-io")
    w = rng.integers(-127, 128, (8, 4, 3, 3)).astype(np.int8)
    inits = {"xs": np.float32(0.02), "xz": np.uint8(120), "w": w, "ws": np.full(8, 0.01, np.float32),
             "wz": np.zeros(8, np.int8), "ys": np.float32(0.1), "yz": np.uint8(7)}
    node = helper.make_node("QLinearConv", ["x", *inits], ["y"], kernel_shape=[3, 3], pads=[1] * 4, name="conv")
    graph = helper.make_graph([node], "u8io", [helper.make_tensor_value_info("x", TensorProto.UINT8, [1, 4, 6, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.UINT8, [1, 8, 6, 6])],
                              [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    path = tmp_path / "u8io.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    m = check_model(path)
    assert m.model_input.dtype == np.uint8 and m.model_output.dtype == np.uint8 and m.host_tail == []
