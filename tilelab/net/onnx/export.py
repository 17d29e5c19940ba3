"""Built-in networks as ONNX models: float32 with seeded weights, and quantized by onnxruntime.

:func:`export_onnx` writes a model :class:`~tilelab.net.graph.Graph` of the zoo as a float32 ONNX
model (NCHW, opset 17) with seeded synthetic weights: He-normal conv and fc weights, batch norms
with running statistics near (0, 1). :func:`quantize_onnx` then quantizes it the way users do,
with onnxruntime's own tools: ``quant_pre_process`` (shape inference, batch norms folded into
the convs) and ``quantize_static`` (QDQ format, uint8 activations, int8 per-channel weights,
calibration on seeded inputs). The result is a model of the kind :func:`~tilelab.net.onnx.load_onnx`
imports and runs on the RTL, bit-exact against onnxruntime; no download is needed to try a network.

Graph node → ONNX: conv2d → ``Conv`` (+ ``Relu`` if fused), batch_norm → ``BatchNormalization``,
relu → ``Relu``, relu6 → ``Clip(0, 6)``, hard_swish → ``HardSwish``, silu → ``Sigmoid`` · x,
sigmoid → ``Sigmoid``, mul → ``Mul``, add → ``Add`` (+ ``Relu``), concat → ``Concat``, split →
``Slice``, channel_shuffle → ``Reshape``-``Transpose``-``Reshape``, max_pool / avg_pool →
``MaxPool`` / ``AveragePool``, global_avg_pool → ``GlobalAveragePool``, flatten → ``Flatten``
(ONNX's NCHW order), linear → ``Gemm``.
"""

from __future__ import annotations

import os
import tempfile
import zlib

import numpy as np

from tilelab.net.graph import Graph

__all__ = ["export_onnx", "quantize_onnx"]

OPSET = 17


def _rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


class _Writer:
    def __init__(self, graph: Graph, seed: int):
        from onnx import TensorProto, helper

        self.h, self.tp = helper, TensorProto
        self.graph, self.seed = graph, seed
        self.nodes, self.inits = [], []
        self.out = {}           # graph node name → ONNX tensor name

    def const(self, name, array):
        from onnx import numpy_helper

        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def node(self, op, inputs, name, **attrs):
        self.nodes.append(self.h.make_node(op, list(inputs), [name], name=name, **attrs))
        return name

    def build(self):
        g = self.graph
        first = g.nodes[0]
        n, h, w, c = first.shape
        inputs = [self.h.make_tensor_value_info("x", self.tp.FLOAT, (n, c, h, w))]
        self.out[first.name] = "x"
        for node in g.nodes[1:]:
            self.out[node.name] = self.emit(node, [self.out[i] for i in node.inputs])
        last = g.output
        shape = last.shape if len(last.shape) == 2 else (last.shape[0], last.shape[3], last.shape[1], last.shape[2])
        outputs = [self.h.make_tensor_value_info(self.out[last.name], self.tp.FLOAT, shape)]
        graph = self.h.make_graph(self.nodes, g.name, inputs, outputs, self.inits)
        model = self.h.make_model(graph, opset_imports=[self.h.make_opsetid("", OPSET)], producer_name="tilelab")
        model.ir_version = 8
        return model

    def emit(self, node, ins):
        op, name = node.op, node.name
        if op == "conv2d":
            s = node.spec
            rng = _rng(self.seed, name)
            fan_in = s.kh * s.kw * (s.cin // s.groups)
            wt = (rng.standard_normal((s.cout, s.cin // s.groups, s.kh, s.kw)) * np.sqrt(2.0 / fan_in))
            args = [ins[0], self.const(f"{name}.weight", wt.astype(np.float32))]
            if node.bias:
                args.append(self.const(f"{name}.bias", (0.01 * rng.standard_normal(s.cout)).astype(np.float32)))
            (ph, pw), (sh, sw), (dh, dw) = s.padding, s.stride, s.dilation
            y = self.node("Conv", args, name, kernel_shape=[s.kh, s.kw], pads=[ph, pw, ph, pw], strides=[sh, sw],
                          dilations=[dh, dw], group=s.groups)
            return self.node("Relu", [y], f"{name}.relu") if node.relu else y
        if op == "linear":
            s = node.spec
            rng = _rng(self.seed, name)
            wt = rng.standard_normal((s.nout, s.k)) * np.sqrt(1.0 / s.k)
            args = [ins[0], self.const(f"{name}.weight", wt.astype(np.float32))]
            if node.bias:
                args.append(self.const(f"{name}.bias", (0.01 * rng.standard_normal(s.nout)).astype(np.float32)))
            y = self.node("Gemm", args, name, transB=1)
            return self.node("Relu", [y], f"{name}.relu") if node.relu else y
        if op == "batch_norm":
            c = node.shape[-1]
            rng = _rng(self.seed, name)
            stats = [rng.uniform(0.5, 1.5, c), 0.1 * rng.standard_normal(c), 0.1 * rng.standard_normal(c),
                     rng.uniform(0.5, 1.5, c)]
            names = [self.const(f"{name}.{k}", v.astype(np.float32))
                     for k, v in zip(("scale", "bias", "mean", "var"), stats, strict=True)]
            return self.node("BatchNormalization", [ins[0], *names], name, epsilon=1e-5)
        if op == "relu":
            return self.node("Relu", ins, name)
        if op == "relu6":
            lo = self.const(f"{name}.min", np.float32(0.0))
            hi = self.const(f"{name}.max", np.float32(6.0))
            return self.node("Clip", [ins[0], lo, hi], name)
        if op == "hard_swish":
            return self.node("HardSwish", ins, name)
        if op == "sigmoid":
            return self.node("Sigmoid", ins, name)
        if op == "silu":
            s = self.node("Sigmoid", ins, f"{name}.sigmoid")
            return self.node("Mul", [ins[0], s], name)
        if op == "mul":
            return self.node("Mul", ins, name)
        if op == "add":
            y = self.node("Add", ins, name)
            return self.node("Relu", [y], f"{name}.relu") if node.relu else y
        if op == "concat":
            return self.node("Concat", ins, name, axis=1)
        if op == "split":
            a = node.attrs
            starts = self.const(f"{name}.starts", np.array([a["start"]], np.int64))
            ends = self.const(f"{name}.ends", np.array([a["stop"]], np.int64))
            axes = self.const(f"{name}.axes", np.array([1], np.int64))
            return self.node("Slice", [ins[0], starts, ends, axes], name)
        if op == "channel_shuffle":
            n, h, w, c = node.shape
            g = node.attrs["groups"]
            s5 = self.const(f"{name}.shape5", np.array([n, g, c // g, h, w], np.int64))
            s4 = self.const(f"{name}.shape4", np.array([n, c, h, w], np.int64))
            r = self.node("Reshape", [ins[0], s5], f"{name}.reshape")
            t = self.node("Transpose", [r], f"{name}.transpose", perm=[0, 2, 1, 3, 4])
            return self.node("Reshape", [t, s4], name)
        if op in ("max_pool", "avg_pool"):
            s = node.spec
            (ph, pw), (sh, sw) = s.padding, s.stride
            kind = "MaxPool" if op == "max_pool" else "AveragePool"
            return self.node(kind, ins, name, kernel_shape=[s.kh, s.kw], strides=[sh, sw], pads=[ph, pw, ph, pw])
        if op == "global_avg_pool":
            return self.node("GlobalAveragePool", ins, name)
        if op == "flatten":
            return self.node("Flatten", ins, name, axis=1)
        raise ValueError(f"node {name!r}: cannot export op {op!r} to ONNX")


def export_onnx(graph: Graph, *, seed: int = 0):
    """A float32 ONNX model of ``graph`` with seeded synthetic weights.

    Parameters
    ----------
    graph : Graph
        A model of :mod:`tilelab.net.models` (or any graph of its node kinds).
    seed : int
        Weights of node ``name`` come from a generator seeded by ``(seed, crc32(name))``.

    Returns
    -------
    onnx.ModelProto
        Input ``x`` float32 NCHW ``(N, C, H, W)``; checked with ``onnx.checker``.
    """
    import onnx

    if not isinstance(graph, Graph):
        raise TypeError(f"graph must be a Graph, not {type(graph).__name__}")
    model = _Writer(graph, int(seed)).build()
    onnx.checker.check_model(model)
    return model


def calibration_inputs(shape, *, seed: int = 0, count: int = 4) -> list[np.ndarray]:
    """Seeded float32 inputs (standard normal) for calibration and tests."""
    rng = np.random.default_rng([int(seed), 0xCA11B])
    return [rng.standard_normal(tuple(shape)).astype(np.float32) for _ in range(count)]


def quantize_onnx(model, path, *, seed: int = 0, samples: int = 4, per_channel: bool = True,
                  activations: str = "uint8") -> str:
    """Quantize a float ONNX model with onnxruntime's static quantization (QDQ) and save it.

    Parameters
    ----------
    model : onnx.ModelProto or path
        A float32 model with one input.
    path : str or os.PathLike
        Where to write the quantized model.
    seed, samples : int
        Calibration on ``samples`` seeded inputs (:func:`calibration_inputs`).
    per_channel : bool
        Per-output-channel int8 weights (else per tensor).
    activations : {"uint8", "int8"}
        Activation type.

    Returns
    -------
    str
        ``path``.
    """
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if activations not in ("uint8", "int8"):
        raise ValueError(f"activations must be 'uint8' or 'int8', not {activations!r}")
    proto = model if isinstance(model, onnx.ModelProto) else onnx.load(os.fspath(model))
    inp = proto.graph.input[0]
    shape = [d.dim_value for d in inp.type.tensor_type.shape.dim]
    data = calibration_inputs(shape, seed=seed, count=samples)

    class _Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter([{inp.name: x} for x in data])

        def get_next(self):
            return next(self.items, None)

    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "float.onnx")
        pre = os.path.join(tmp, "pre.onnx")
        onnx.save(proto, raw)
        quant_pre_process(raw, pre, skip_symbolic_shape=True)
        quantize_static(pre, os.fspath(path), _Reader(), quant_format=QuantFormat.QDQ, per_channel=per_channel,
                        activation_type=QuantType.QUInt8 if activations == "uint8" else QuantType.QInt8,
                        weight_type=QuantType.QInt8)
    return os.fspath(path)
