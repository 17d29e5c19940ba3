"""Import a quantized ONNX model as a :class:`~tilelab.net.lowering.LoweredModel` the executor runs.

:func:`load_onnx` reads a model (a path or an ``onnx.ModelProto``), fixes a symbolic batch if
asked, and lets onnxruntime's own optimizer (``ORT_ENABLE_EXTENDED``, int8 QDQ allowed)
canonicalise it: QDQ models from ``onnxruntime.quantization.quantize_static`` become QOperator
form (``QLinearConv``, ``QGemm``, ``com.microsoft.QLinearAdd``, …), with ReLU / Clip folded into
the output scales where onnxruntime fuses them; QOperator models pass through. The optimized
graph is then mapped node by node onto steps:

=============================== ==========================================================
ONNX op                         step (int8 NHWC storage; a uint8 ``q`` is stored ``q - 128``)
=============================== ==========================================================
QLinearConv                     ``conv2d``: float requantization (``Step.scale``), the input
                                zero point folded into the bias and used as the padding
QLinearMatMul, QGemm            ``linear`` (the same); weights permuted to NHWC flatten order
MaxPool (8-bit)                 ``max_pool``
QLinearGlobalAveragePool        ``conv2d``: depthwise H×W, weights 1, bias ``-zp·H·W``
Flatten, Reshape to (N, -1)     ``flatten`` (no arithmetic)
QLinearAdd, QLinearMul          ``qlinear_add``, ``qlinear_mul`` (no RTL yet)
QLinearAveragePool              ``qlinear_avg_pool`` (no RTL yet)
QLinearSigmoid, QLinearLeakyRelu ``qlinear_table`` with the 256-entry table (no RTL yet)
QLinearConcat (channels)        ``qlinear_concat`` (no RTL yet)
Identity, Dropout               dropped
=============================== ==========================================================

The model input is quantized on the host (``QuantizeLinear``, :func:`~tilelab.reference.golden.quantize_linear`)
and transposed to NHWC; the output is converted back on the host: NCHW, the model's dtype, a
final ``DequantizeLinear`` (:func:`~tilelab.reference.golden.dequantize_linear`) and, after it, a
``Softmax`` / ``QLinearSoftmax`` tail, which runs in onnxruntime on the host and is reported as
not simulated. Every check (unsupported ops, dynamic shapes, asymmetric pads, weight zero points)
happens here, before any simulation.
"""

from __future__ import annotations

import os
import tempfile
import zlib
from dataclasses import dataclass, field

import numpy as np

from tilelab.net.backends import Backend, ExecutionError
from tilelab.net.lowering import LoweredModel, Step, run_golden_step
from tilelab.net.onnx.steps import OnnxStep
from tilelab.reference import golden
from tilelab.reference.layers import Conv2dSpec, LinearSpec, PoolSpec

__all__ = ["SUPPORTED_OPS", "GoldenBackend", "OnnxError", "OnnxModel", "load_onnx", "run_onnx_step"]

MS = "com.microsoft"
#: Ops the importer maps onto steps (``domain.op`` for com.microsoft ones).
STEP_OPS = ("QLinearConv", "QLinearMatMul", f"{MS}.QGemm", "MaxPool", f"{MS}.QLinearGlobalAveragePool",
            f"{MS}.QLinearAveragePool", f"{MS}.QLinearAdd", f"{MS}.QLinearMul", f"{MS}.QLinearSigmoid",
            f"{MS}.QLinearLeakyRelu", f"{MS}.QLinearConcat", "Flatten", "Reshape", "Identity", "Dropout")
#: Ops allowed at the ends of the graph, on the host.
HOST_OPS = ("QuantizeLinear", "DequantizeLinear", "Softmax", f"{MS}.QLinearSoftmax")
SUPPORTED_OPS = STEP_OPS + HOST_OPS
_FLOAT_OPS = ("Conv", "MatMul", "Gemm", "Add", "Mul", "AveragePool", "GlobalAveragePool", "Sigmoid", "LeakyRelu",
              "Concat", "Relu", "Clip", "BatchNormalization")
_TAIL_OPS = ("DequantizeLinear", "Softmax", f"{MS}.QLinearSoftmax", "Flatten", "Reshape", "Identity")


class OnnxError(ValueError):
    """The ONNX model (or an input for it) cannot be imported or run as asked."""


# --------------------------------------------------------------------------------------------
# the model


@dataclass
class TensorIO:
    """The model's input or output as the user sees it.

    Parameters
    ----------
    name : str
        Graph input / output name.
    shape : tuple of int
        The model's own shape (NCHW for images).
    dtype : numpy.dtype
        float32, uint8 or int8.
    scale, zero_point : float32 or None, int or None
        The (de)quantization at the boundary (stored int8 zero point), None if the tensor is
        8-bit already.
    unsigned : bool
        The 8-bit side is uint8.
    """

    name: str
    shape: tuple
    dtype: np.dtype
    scale: object = None
    zero_point: object = None
    unsigned: bool = False


@dataclass
class OnnxModel(LoweredModel):
    """A :class:`~tilelab.net.lowering.LoweredModel` imported from ONNX, with its host-side ends.

    Parameters
    ----------
    model_input, model_output : TensorIO
    output_step : str
        The step whose output the host converts to the model's output.
    output_perm : numpy.ndarray or None
        For a flattened output: the NCHW column of each of our (NHWC-order) columns.
    host_tail : list of str
        The ops after the last step, run on the host (``DequantizeLinear``, ``Softmax``…).
    tail_model : bytes or None
        An onnxruntime model of the tail when it is more than a ``DequantizeLinear``.
    optimized : bytes
        The canonicalised model (what the steps come from; its outputs are what tilelab equals).
    ort_default_max_diff : float
        How far onnxruntime's default session of the original model is from the canonicalised
        model on the seeded random input (:func:`default_disagreement`; 0.0 for uint8 QDQ and
        QOperator models in the tests).
    """

    model_input: TensorIO = None
    model_output: TensorIO = None
    output_step: str = ""
    output_perm: object = None
    output_unsigned: bool = False
    output_nchw: bool = True
    host_tail: list = field(default_factory=list)
    tail_model: bytes | None = field(default=None, repr=False)
    optimized: bytes | None = field(default=None, repr=False)
    ort_default_max_diff: float = 0.0

    @property
    def matches_ort_default(self) -> bool:
        """onnxruntime's default session of the original model agrees with the canonicalised one."""
        return self.ort_default_max_diff == 0.0

    def to_input(self, x) -> np.ndarray:
        """The model's own input (e.g. NCHW float32) → our int8 NHWC input.

        Raises
        ------
        OnnxError
            ``x`` is not a numpy array of the model's input shape and dtype.
        """
        info = self.model_input
        if not isinstance(x, np.ndarray) or x.dtype != info.dtype or tuple(x.shape) != tuple(info.shape):
            got = f"{x.dtype} {tuple(x.shape)!r}" if isinstance(x, np.ndarray) else type(x).__name__
            raise OnnxError(f"input {info.name!r} must be a {np.dtype(info.dtype).name} array of shape "
                            f"{tuple(info.shape)!r} (the model's own layout), not {got}")
        if info.scale is not None:
            q = golden.quantize_linear(x, info.scale, info.zero_point, unsigned=info.unsigned)
        else:
            q = (x.astype(np.int16) - (128 if info.unsigned else 0)).astype(np.int8)
        return np.ascontiguousarray(q.transpose(0, 2, 3, 1))

    def random_input(self) -> np.ndarray:
        """A seeded random input in the model's own layout (seed ``zlib.crc32`` of the model name)."""
        info = self.model_input
        rng = np.random.default_rng(zlib.crc32(self.name.encode()))
        if info.scale is None:
            lo = 0 if info.unsigned else -128
            return rng.integers(lo, lo + 256, info.shape).astype(info.dtype)
        zp = info.zero_point + (128 if info.unsigned else 0)
        lo, hi = (0, 255) if info.unsigned else (-128, 127)
        s = float(info.scale)
        return rng.uniform((lo - zp) * s, (hi - zp) * s, info.shape).astype(np.float32)

    def with_input(self, x) -> OnnxModel:
        """The same model whose input (and golden chain) is the model-layout input ``x``."""
        from dataclasses import replace

        x8 = self.to_input(x)
        return replace(self, input=x8, reference=golden_chain(self.steps, x8))

    def to_output(self, y) -> np.ndarray:
        """Our int8 output of :attr:`output_step` → the model's output exactly as onnxruntime returns it."""
        q = np.asarray(y)
        if self.output_perm is not None:
            back = np.empty_like(q)
            back[:, self.output_perm] = q
            q = back
        elif q.ndim == 4 and self.output_nchw:
            q = q.transpose(0, 3, 1, 2)
        raw = (q.astype(np.int16) + (128 if self.output_unsigned else 0)).astype(
            np.uint8 if self.output_unsigned else np.int8)
        if not self.host_tail:
            return raw.reshape(self.model_output.shape)
        if self.tail_model is None:                 # exactly one DequantizeLinear (and layout ops)
            info = self.model_output
            return golden.dequantize_linear(np.ascontiguousarray(q), info.scale, info.zero_point).reshape(info.shape)
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        sess = ort.InferenceSession(self.tail_model, options, providers=["CPUExecutionProvider"])
        return sess.run(None, {sess.get_inputs()[0].name: np.ascontiguousarray(raw)})[0]

    def describe_io(self) -> dict:
        """JSON-friendly description of the host-side ends."""
        i, o = self.model_input, self.model_output
        return {"input": {"name": i.name, "shape": list(i.shape), "dtype": np.dtype(i.dtype).name},
                "output": {"name": o.name, "shape": list(o.shape), "dtype": np.dtype(o.dtype).name},
                "host_tail": list(self.host_tail), "host_tail_simulated": False}


def run_onnx_step(step: Step, inputs: list[np.ndarray]) -> np.ndarray:
    """The golden output of a step of an imported model (the ONNX ops' golden functions, else the usual)."""
    if not isinstance(step, OnnxStep) or step.op in ("conv2d", "linear", "max_pool", "flatten"):
        return run_golden_step(step, inputs)
    p = step.params
    u = p["unsigned"]
    if step.op in ("qlinear_add", "qlinear_mul"):
        fn = golden.qlinear_add if step.op == "qlinear_add" else golden.qlinear_mul
        b = p["b_const"] if "b_const" in p else inputs[1]
        return fn(inputs[0], p["a_scale"], p["a_zp"], b, p["b_scale"], p["b_zp"], p["y_scale"], p["y_zp"], unsigned=u)
    if step.op == "qlinear_avg_pool":
        return golden.qlinear_avg_pool(inputs[0], p["kernel"], stride=p["stride"], padding=p["padding"],
                                       count_include_pad=p["count_include_pad"], x_scale=p["x_scale"],
                                       x_zero_point=p["x_zp"], y_scale=p["y_scale"], y_zero_point=p["y_zp"],
                                       unsigned=u)
    if step.op == "qlinear_table":
        return golden.apply_table(inputs[0], p["table"])
    if step.op == "qlinear_concat":
        return golden.qlinear_concat(inputs, p["x_scales"], p["x_zps"], p["y_scale"], p["y_zp"], unsigned=u)
    raise OnnxError(f"step {step.name!r}: unknown op {step.op!r}")  # pragma: no cover


def golden_chain(steps, x) -> dict:
    """Step name → golden output of the whole chain on the int8 NHWC input ``x``."""
    values = {"input": x}
    for step in steps:
        values[step.name] = run_onnx_step(step, [values[i] for i in step.inputs])
    del values["input"]
    return values


class GoldenBackend(Backend):
    """The numpy golden model as a backend: **no hardware is simulated** (cycles 0).

    For checking an imported model's golden chain end to end (``--sim golden``) and for tests;
    it runs every step, including those the RTL lacks (:data:`~tilelab.net.onnx.steps.RTL_MISSING`).
    """

    name = "golden"

    def check(self, steps):
        for s in steps:
            if s.op not in ("conv2d", "linear", "max_pool", "avg_pool", "global_avg_pool", "add", "relu", "flatten") \
                    and not isinstance(s, OnnxStep):
                raise ExecutionError(f"step {s.name!r}: the golden backend cannot run op {s.op!r}")

    def run(self, step, inputs):
        return run_onnx_step(step, inputs), None

    def describe(self):
        return {"backend": self.name, "simulated": False, "note": "numpy golden model, no hardware simulated",
                "peak_macs_per_cycle": 0}


# --------------------------------------------------------------------------------------------
# loading


def load_onnx(model, *, batch=None, name=None) -> OnnxModel:
    """Import a quantized ONNX model (QDQ or QOperator) for the executor.

    Parameters
    ----------
    model : str or os.PathLike or onnx.ModelProto
    batch : int, optional
        Fixes a symbolic batch dimension (dimension 0 of the input).
    name : str, optional
        The model's name (default: the file name without ``.onnx``, or the graph name).

    Returns
    -------
    OnnxModel
        Its :attr:`~tilelab.net.lowering.LoweredModel.input` is a seeded random input
        (:meth:`OnnxModel.random_input`); use :meth:`OnnxModel.with_input` for another.

    Raises
    ------
    OnnxError
        An unreadable (truncated) file, dynamic shapes, an unsupported op (the node, its op and
        the supported ops named), asymmetric pads, nonzero weight zero points, …
    """
    import onnx

    if isinstance(model, onnx.ModelProto):
        proto = model
        name = name or model.graph.name or "model"
    elif isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as error:
            raise OnnxError(f"cannot read ONNX model {path!r}: {error.strerror}") from None
        proto = onnx.ModelProto()
        try:
            proto.ParseFromString(data)
        except Exception:  # protobuf's DecodeError
            raise OnnxError(f"{path!r} is not a readable ONNX model (truncated or corrupt file)") from None
        if not proto.graph.node:
            raise OnnxError(f"{path!r} is not a readable ONNX model (truncated or corrupt file)")
        name = name or os.path.splitext(os.path.basename(path))[0]
    else:
        raise TypeError(f"model must be a path or an onnx.ModelProto, not {type(model).__name__}")
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
        raise OnnxError(f"batch must be a positive integer, not {batch!r}")
    proto = _fix_shapes(proto, batch)
    optimized = optimize(proto)
    m = _Importer(onnx.load_from_string(optimized), name, optimized).run()
    m.ort_default_max_diff = default_disagreement(proto.SerializeToString(), optimized, m.model_input.name,
                                                  m.random_input())
    return m


def default_disagreement(original: bytes, optimized: bytes, input_name: str, x) -> float:
    """Largest difference between onnxruntime's outputs of the original model (default settings) and
    of the canonicalised one on ``x`` (0.0: identical).

    They differ when onnxruntime's default x86 session leaves float islands (``DequantizeLinear →
    Conv → QuantizeLinear`` in float) in an int8-activation QDQ model that the canonicalisation
    (int8 QDQ fusions allowed) turns into int8 ops.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    a, b = (ort.InferenceSession(m, options, providers=["CPUExecutionProvider"]).run(None, {input_name: x})[0]
            for m in (original, optimized))
    if a.shape != b.shape:
        return float("inf")
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)), initial=0.0))


def _fix_shapes(proto, batch):
    import onnx

    proto = onnx.ModelProto.FromString(proto.SerializeToString())
    inits = {i.name for i in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise OnnxError(f"the model must have exactly one input, not {len(inputs)} "
                        f"({', '.join(repr(i.name) for i in inputs)})")
    if len(proto.graph.output) != 1:
        raise OnnxError(f"the model must have exactly one output, not {len(proto.graph.output)}")
    x = inputs[0]
    dims = x.type.tensor_type.shape.dim
    if not x.type.tensor_type.HasField("shape"):
        raise OnnxError(f"input {x.name!r} has no shape: tilelab needs static shapes")
    for i, d in enumerate(dims):
        if d.HasField("dim_value") and d.dim_value > 0:
            if i == 0 and batch is not None and d.dim_value != batch:
                raise OnnxError(f"input {x.name!r} has a fixed batch {d.dim_value!r}; batch={batch!r} cannot change it")
            continue
        what = repr(d.dim_param) if d.dim_param else "unknown"
        if i == 0 and batch is not None:
            d.Clear()
            d.dim_value = batch
            continue
        hint = " (pass batch=N, --batch N, to fix a symbolic batch)" if i == 0 else ""
        raise OnnxError(f"input {x.name!r} has a dynamic dimension {i} ({what}): tilelab needs static shapes{hint}")
    for vi in list(proto.graph.value_info) + list(proto.graph.output):
        if batch is not None and vi.type.tensor_type.shape.dim:
            d0 = vi.type.tensor_type.shape.dim[0]
            if d0.dim_param:
                d0.Clear()
                d0.dim_value = batch
    return proto


def optimize(proto) -> bytes:
    """onnxruntime's own canonicalisation (QDQ → QOperator): the optimized model's bytes.

    ``ORT_ENABLE_EXTENDED`` with ``session.qdqisint8allowed`` (so int8 QDQ fuses into int8
    QOperator ops instead of being converted to uint8 around float islands).
    """
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "optimized.onnx")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        options.optimized_model_filepath = out
        options.log_severity_level = 3
        options.add_session_config_entry("session.qdqisint8allowed", "1")
        try:
            ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
        except Exception as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise OnnxError(f"onnxruntime cannot load the model: {first}") from None
        with open(out, "rb") as f:
            return f.read()


@dataclass
class _Tensor:
    """A value of the graph: our step (or alias) and its layout."""

    step: str
    shape: tuple            # ours: NHWC for 4-D, (N, K) for flattened
    unsigned: bool
    nchw_shape: tuple | None = None   # the model's 4-D shape, if 4-D
    perm: object = None     # flattened from (C, H, W) with H·W > 1: NCHW column of each column


class _Importer:
    def __init__(self, proto, name, optimized):
        from onnx import numpy_helper

        self.proto, self.name, self.optimized = proto, name, optimized
        self.g = proto.graph
        self.consts = {i.name: numpy_helper.to_array(i) for i in self.g.initializer}
        self.steps: list[Step] = []
        self.values: dict[str, _Tensor] = {}
        self.names: set[str] = {"input"}

    # ---- helpers

    def fail(self, node, text):
        raise OnnxError(f"node {node.name or node.output[0]!r} ({_op(node)}): {text}")

    def const(self, node, index, what, *, optional=False):
        if index >= len(node.input) or not node.input[index]:
            if optional:
                return None
            self.fail(node, f"{what} (input {index}) is missing")
        name = node.input[index]
        if name not in self.consts:
            self.fail(node, f"{what} {name!r} must be a constant (an initializer)")
        return self.consts[name]

    def scale(self, node, index, what):
        v = np.asarray(self.const(node, index, what), np.float32)
        if v.size != 1:
            self.fail(node, f"{what} must be one value (per tensor), not shape {v.shape!r}")
        return np.float32(v.reshape(()))

    def zp(self, node, index, what, *, expect_unsigned=None, like=None):
        # (stored int8 zero point, unsigned); a missing zero point is 0 of the type of ``like``
        v = self.const(node, index, what, optional=True)
        if v is None:
            return 0, (like.unsigned if like is not None else expect_unsigned)
        if v.dtype not in (np.uint8, np.int8) or v.size != 1:
            self.fail(node, f"{what} must be one uint8 or int8 value, not {v.dtype} {v.shape!r}")
        u = v.dtype == np.uint8
        return int(v.reshape(())) - (128 if u else 0), u

    def value(self, node, index) -> _Tensor:
        name = node.input[index]
        if name not in self.values:
            self.fail(node, f"input {name!r} is not an 8-bit tensor tilelab computes (a float value or unknown)")
        return self.values[name]

    def step_name(self, node):
        base = node.name or node.output[0]
        name, k = base, 1
        while name in self.names:
            k += 1
            name = f"{base}_{k}"
        self.names.add(name)
        return name

    def emit(self, node, step, *, unsigned, nchw=True):
        if step.scale is not None:                    # the pack stage takes positive normal float32 scales
            try:
                golden.check_float_scale(step.scale, step.shape[-1])
            except ValueError as error:
                self.fail(node, f"output {error}")
        step.params["tensor"] = node.output[0]
        self.steps.append(step)
        shape = tuple(step.shape)
        nchw_shape = (shape[0], shape[3], shape[1], shape[2]) if len(shape) == 4 and nchw else None
        self.values[node.output[0]] = _Tensor(step.name, shape, unsigned, nchw_shape)

    # ---- the walk

    def run(self) -> OnnxModel:
        from onnx import helper

        g = self.g
        for n in g.node:
            if _op(n) not in SUPPORTED_OPS:
                hint = ""
                if _op(n) in _FLOAT_OPS:
                    hint = (" (a float op onnxruntime did not fuse into a quantized one: tilelab runs quantized "
                            "models, QDQ from onnxruntime.quantization.quantize_static or QOperator)")
                raise OnnxError(f"node {n.name or n.output[0]!r} (op {_op(n)!r}) is not supported{hint}; "
                                f"supported ops: {', '.join(SUPPORTED_OPS)}")
        x = [i for i in g.input if i.name not in self.consts][0]
        elem = x.type.tensor_type.elem_type
        shape = tuple(d.dim_value for d in x.type.tensor_type.shape.dim)
        dtypes = {helper.np_dtype_to_tensor_dtype(np.dtype(t)): np.dtype(t) for t in (np.float32, np.uint8, np.int8)}
        if elem not in dtypes:
            raise OnnxError(f"input {x.name!r} must be float32, uint8 or int8, not "
                            f"{helper.tensor_dtype_to_np_dtype(elem)}")
        if len(shape) != 4:
            raise OnnxError(f"input {x.name!r} must be a 4-D NCHW image batch, not shape {shape!r}")
        dtype = dtypes[elem]
        n, c, h, w = shape
        model_input = TensorIO(x.name, shape, dtype)
        nodes = list(g.node)
        tail = self._tail(nodes)
        body = nodes[:len(nodes) - len(tail)]
        if dtype == np.float32:
            q = [k for k in body if x.name in k.input]
            if len(q) != 1 or _op(q[0]) != "QuantizeLinear":
                raise OnnxError(f"input {x.name!r} is float32: it must feed exactly one QuantizeLinear node "
                                f"(a quantized model), not {', '.join(_op(k) for k in q) or 'nothing'}")
            qn = q[0]
            model_input.scale = self.scale(qn, 1, "y_scale")
            model_input.zero_point, model_input.unsigned = self.zp(qn, 2, "y_zero_point", expect_unsigned=True)
            self.values[qn.output[0]] = _Tensor("input", (n, h, w, c), model_input.unsigned, shape)
            body.remove(qn)
        else:
            model_input.unsigned = dtype == np.uint8
            self.values[x.name] = _Tensor("input", (n, h, w, c), model_input.unsigned, shape)
        for node in body:
            self.node(node)
        out_tensor_name = tail[0].input[0] if tail else g.output[0].name
        if out_tensor_name not in self.values:
            raise OnnxError(f"the model output {g.output[0].name!r} is not computed by tilelab's steps")
        last = self.values[out_tensor_name]
        if last.step == "input":
            raise OnnxError("the model has no step to run (its output is its input)")
        out_info = g.output[0]
        out_dtype = helper.tensor_dtype_to_np_dtype(out_info.type.tensor_type.elem_type)
        ref_shape = last.nchw_shape if last.nchw_shape is not None else last.shape
        model_output = TensorIO(out_info.name, tuple(d.dim_value for d in out_info.type.tensor_type.shape.dim)
                                or ref_shape, out_dtype, unsigned=last.unsigned)
        tail_ops = [_op(k) for k in tail]
        tail_model = None
        if tail_ops and [t for t in tail_ops if t not in ("Flatten", "Reshape", "Identity")] == ["DequantizeLinear"]:
            dq = [k for k in tail if _op(k) == "DequantizeLinear"][0]
            if dq.input[0] != out_tensor_name:
                tail_model = self._tail_model(tail, last)
            else:
                model_output.scale = self.scale(dq, 1, "x_scale")
                model_output.zero_point, _ = self.zp(dq, 2, "x_zero_point")
                if tail_ops != ["DequantizeLinear"]:
                    tail_model = self._tail_model(tail, last)
        elif tail_ops:
            tail_model = self._tail_model(tail, last)
        if not tail_ops or tail_model is not None:
            model_output.shape = model_output.shape or ref_shape
        x8 = np.zeros((n, h, w, c), np.int8)
        model = OnnxModel(self.name, x8, self.steps, {}, model_input=model_input, model_output=model_output,
                          output_step=last.step, output_perm=last.perm, output_unsigned=last.unsigned,
                          output_nchw=last.nchw_shape is not None, host_tail=tail_ops, tail_model=tail_model,
                          optimized=self.optimized)
        if self.steps[-1].name != last.step:
            raise OnnxError(f"the model output {out_info.name!r} must come from its last step")
        return model.with_input(model.random_input())

    def _tail(self, nodes):
        """The trailing host-side nodes (DequantizeLinear, Softmax, layout ops) that make the output."""
        out = self.g.output[0].name
        producer = {o: k for k in nodes for o in k.output}
        chain = []
        name = out
        while name in producer and _op(producer[name]) in _TAIL_OPS:
            node = producer[name]
            chain.append(node)
            name = node.input[0]
        chain.reverse()
        ops = [_op(k) for k in chain]
        # Layout ops alone at the end stay steps; the tail starts at the first host op.
        first = next((i for i, o in enumerate(ops) if o in HOST_OPS), len(chain))
        chain = chain[first:]
        if nodes[len(nodes) - len(chain):] != chain:
            raise OnnxError("the host-side tail of the model (DequantizeLinear, Softmax) must be its last nodes")
        return chain

    def _tail_model(self, tail, last):
        from onnx import TensorProto, helper, numpy_helper

        used = {i for k in tail for i in k.input}
        inits = [numpy_helper.from_array(v, k) for k, v in self.consts.items() if k in used]
        elem = TensorProto.UINT8 if last.unsigned else TensorProto.INT8
        onnx_shape = last.nchw_shape if last.nchw_shape is not None else last.shape
        x = helper.make_tensor_value_info(tail[0].input[0], elem, onnx_shape)
        graph = helper.make_graph(list(tail), "tail", [x], [self.g.output[0]], inits)
        model = helper.make_model(graph, opset_imports=list(self.proto.opset_import))
        model.ir_version = self.proto.ir_version
        return model.SerializeToString()

    # ---- one node

    def node(self, node):
        op = _op(node)
        if op in ("Identity", "Dropout"):
            self.values[node.output[0]] = self.value(node, 0)
            return
        handler = {
            "QLinearConv": self.qlinear_conv, "QLinearMatMul": self.qlinear_matmul, f"{MS}.QGemm": self.qgemm,
            "MaxPool": self.max_pool, f"{MS}.QLinearGlobalAveragePool": self.global_avg_pool,
            f"{MS}.QLinearAveragePool": self.avg_pool, f"{MS}.QLinearAdd": self.binary, f"{MS}.QLinearMul": self.binary,
            f"{MS}.QLinearSigmoid": self.table, f"{MS}.QLinearLeakyRelu": self.table,
            f"{MS}.QLinearConcat": self.concat, "Flatten": self.flatten, "Reshape": self.flatten,
        }.get(op)
        if handler is None:
            self.fail(node, "may appear only at the ends of the graph (the input's QuantizeLinear, the output's "
                            "DequantizeLinear / Softmax)")
        handler(node)

    def _image(self, node, index=0) -> _Tensor:
        t = self.value(node, index)
        if len(t.shape) != 4:
            self.fail(node, f"needs a 4-D NCHW input, not shape {t.shape!r}")
        return t

    def _pads(self, node, kernel, in_hw, strides, dilations=(1, 1)):
        auto = _str_attr(node, "auto_pad", "NOTSET")
        if auto in ("NOTSET", "VALID"):
            pads = _ints_attr(node, "pads", [0, 0, 0, 0]) if auto == "NOTSET" else [0, 0, 0, 0]
        else:
            pads = [0, 0, 0, 0]
            for i in range(2):
                out = -(-in_hw[i] // strides[i])
                total = max(0, (out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - in_hw[i])
                small, big = total // 2, total - total // 2
                pads[i], pads[i + 2] = (small, big) if auto == "SAME_UPPER" else (big, small)
        if len(pads) != 4 or pads[0] != pads[2] or pads[1] != pads[3]:
            self.fail(node, f"asymmetric pads {pads!r} (top, left, bottom, right) are not supported yet; "
                            f"tilelab pads both sides alike")
        return pads[0], pads[1]

    def qlinear_conv(self, node):
        t = self._image(node)
        n, h, w, c = t.shape
        xs = self.scale(node, 1, "x_scale")
        xz, xu = self.zp(node, 2, "x_zero_point")
        wt = self.const(node, 3, "w")
        if wt.dtype != np.int8:
            self.fail(node, f"weights must be int8, not {wt.dtype}")
        if wt.ndim != 4:
            self.fail(node, f"only 2-D convolutions are supported, not weights of shape {wt.shape!r}")
        cout, cin_g, kh, kw = wt.shape
        ws = np.asarray(self.const(node, 4, "w_scale"), np.float32).reshape(-1)
        self._zero_weight_zp(node, 5)
        ys = self.scale(node, 6, "y_scale")
        yz, yu = self.zp(node, 7, "y_zero_point", like=t)
        b = self.const(node, 8, "B", optional=True)
        groups = _int_attr(node, "group", 1)
        strides = tuple(_ints_attr(node, "strides", [1, 1]))
        dil = tuple(_ints_attr(node, "dilations", [1, 1]))
        pads = self._pads(node, (kh, kw), (h, w), strides, dil)
        w8 = np.ascontiguousarray(wt.transpose(0, 2, 3, 1))
        bias = np.zeros(cout, np.int64) if b is None else b.astype(np.int64).reshape(-1)
        bias = golden.wrap_int32(bias - xz * w8.reshape(cout, -1).astype(np.int64).sum(1))
        try:
            spec = Conv2dSpec(n=n, h=h, w=w, cin=c, cout=cout, kh=kh, kw=kw, stride=strides, padding=pads,
                              dilation=dil, groups=groups)
        except (TypeError, ValueError) as error:
            self.fail(node, str(error))
        if spec.weight_shape != w8.shape:
            self.fail(node, f"weights of shape {wt.shape!r} do not fit an input of {c!r} channels in {groups!r} groups")
        name = self.step_name(node)
        step = OnnxStep(name, "conv2d", (t.step,), spec.output_shape, (name,), spec=spec, weight=w8, bias=bias,
                        scale=golden.qlinear_scale(xs, ws, ys), pad_value=xz, zero_point=yz, source="QLinearConv",
                        params={"unsigned": yu})
        self._check_unsigned(node, t, xu)
        self.emit(node, step, unsigned=yu)

    def _zero_weight_zp(self, node, index):
        z = self.const(node, index, "weight zero point", optional=True)
        if z is not None and np.any(z != 0):
            bad = int(np.asarray(z).reshape(-1)[np.flatnonzero(np.asarray(z).reshape(-1))[0]])
            self.fail(node, f"weight zero points must be 0 (symmetric weights), not {bad!r}")

    def _check_unsigned(self, node, t, declared):
        if declared is not None and t.unsigned != declared:
            self.fail(node, "the input zero point's type does not match its tensor's")

    def _linear(self, node, x, xs, xz, wmat, ws, bias, ys, yz, yu, source, alpha=1.0):
        # wmat: (Nout, K) in the model's column order
        t = x
        if len(t.shape) != 2:
            self.fail(node, f"needs a 2-D (N, K) input (after Flatten), not shape {t.shape!r}")
        nrows, k = t.shape
        if wmat.shape[1] != k:
            self.fail(node, f"weights of shape {wmat.shape!r} do not fit {k!r} input features")
        if wmat.dtype != np.int8:
            self.fail(node, f"weights must be int8, not {wmat.dtype}")
        w8 = np.ascontiguousarray(wmat[:, t.perm] if t.perm is not None else wmat)
        nout = w8.shape[0]
        b = np.zeros(nout, np.int64) if bias is None else np.broadcast_to(bias.astype(np.int64).reshape(-1), (nout,))
        b = golden.wrap_int32(b - xz * w8.astype(np.int64).sum(1))
        scale = golden.qgemm_scale(alpha, xs, ws, ys)
        spec = LinearSpec(n=nrows, k=k, nout=nout)
        name = self.step_name(node)
        step = OnnxStep(name, "linear", (t.step,), spec.output_shape, (name,), spec=spec, weight=w8, bias=b,
                        scale=scale if scale.size > 1 else np.float32(scale[0]), zero_point=yz, source=source,
                        params={"unsigned": yu})
        self.emit(node, step, unsigned=yu)

    def qlinear_matmul(self, node):
        t = self.value(node, 0)
        xs, (xz, xu) = self.scale(node, 1, "a_scale"), self.zp(node, 2, "a_zero_point")
        b = self.const(node, 3, "b")
        if b.ndim != 2:
            self.fail(node, f"b must be a 2-D (K, N) matrix, not shape {b.shape!r}")
        ws = np.asarray(self.const(node, 4, "b_scale"), np.float32).reshape(-1)
        self._zero_weight_zp(node, 5)
        ys, (yz, yu) = self.scale(node, 6, "y_scale"), self.zp(node, 7, "y_zero_point", like=t)
        self._check_unsigned(node, t, xu)
        self._linear(node, t, xs, xz, b.T, ws, None, ys, yz, yu, "QLinearMatMul")

    def qgemm(self, node):
        t = self.value(node, 0)
        if _int_attr(node, "transA", 0):
            self.fail(node, "transA=1 is not supported")
        xs, (xz, xu) = self.scale(node, 1, "a_scale"), self.zp(node, 2, "a_zero_point")
        b = self.const(node, 3, "B")
        if b.ndim != 2:
            self.fail(node, f"B must be a 2-D matrix, not shape {b.shape!r}")
        wmat = b if _int_attr(node, "transB", 0) else b.T
        ws = np.asarray(self.const(node, 4, "b_scale"), np.float32).reshape(-1)
        self._zero_weight_zp(node, 5)
        c = self.const(node, 6, "C", optional=True)
        if c is not None and c.size not in (1, wmat.shape[0]):
            self.fail(node, f"C must be a scalar or one value per output column, not shape {c.shape!r}")
        if len(node.input) < 8 or not node.input[7]:
            self.fail(node, "a QGemm without y_scale (a float output) is not supported")
        ys, (yz, yu) = self.scale(node, 7, "y_scale"), self.zp(node, 8, "y_zero_point", like=t)
        self._check_unsigned(node, t, xu)
        self._linear(node, t, xs, xz, wmat, ws, c, ys, yz, yu, "QGemm", alpha=_float_attr(node, "alpha", 1.0))

    def max_pool(self, node):
        t = self._image(node)
        n, h, w, c = t.shape
        kernel = tuple(_ints_attr(node, "kernel_shape", None) or self.fail(node, "kernel_shape is missing"))
        strides = tuple(_ints_attr(node, "strides", [1, 1]))
        if _ints_attr(node, "dilations", [1, 1]) != [1, 1]:
            self.fail(node, "dilated max pooling is not supported")
        if len(node.output) > 1 and node.output[1]:
            self.fail(node, "the Indices output is not supported")
        pads = self._pads(node, kernel, (h, w), strides)
        spec = self._pool_spec(node, t, kernel, strides, pads)
        self._ceil_mode(node, spec, (h, w), kernel, strides, pads)
        name = self.step_name(node)
        self.emit(node, OnnxStep(name, "max_pool", (t.step,), spec.output_shape, (name,), spec=spec, source="MaxPool",
                                 params={"unsigned": t.unsigned}), unsigned=t.unsigned)

    def _pool_spec(self, node, t, kernel, strides, pads):
        n, h, w, c = t.shape
        try:
            return PoolSpec(n=n, h=h, w=w, c=c, kh=kernel[0], kw=kernel[1], stride=strides, padding=pads)
        except (TypeError, ValueError) as error:
            self.fail(node, str(error))

    def _ceil_mode(self, node, spec, hw, kernel, strides, pads):
        if _int_attr(node, "ceil_mode", 0):
            for i, out in enumerate((spec.ho, spec.wo)):
                ceil = -(-(hw[i] + 2 * pads[i] - kernel[i]) // strides[i]) + 1
                if ceil != out:
                    self.fail(node, "ceil_mode=1 with a partial last window is not supported yet")

    def global_avg_pool(self, node):
        t = self._image(node)
        n, h, w, c = t.shape
        xs, (xz, xu) = self.scale(node, 1, "x_scale"), self.zp(node, 2, "x_zero_point")
        ys, (yz, yu) = self.scale(node, 3, "y_scale"), self.zp(node, 4, "y_zero_point", like=t)
        self._check_unsigned(node, t, xu)
        try:
            scale, hw = golden.global_avg_pool_scale(xs, ys, h * w)
        except ValueError as error:
            self.fail(node, str(error))
        # Σx - zp·H·W then the float requantization: a depthwise H×W conv with weights 1.
        spec = Conv2dSpec(n=n, h=h, w=w, cin=c, cout=c, kh=h, kw=w, groups=c)
        name = self.step_name(node)
        step = OnnxStep(name, "conv2d", (t.step,), spec.output_shape, (name,), spec=spec,
                        weight=np.ones((c, h, w, 1), np.int8), bias=np.full(c, -xz * hw, np.int32),
                        scale=np.float32(scale), zero_point=yz, source=f"{MS}.QLinearGlobalAveragePool",
                        params={"unsigned": yu})
        self.emit(node, step, unsigned=yu)

    def avg_pool(self, node):
        t = self._image(node)
        n, h, w, c = t.shape
        xs, (xz, xu) = self.scale(node, 1, "x_scale"), self.zp(node, 2, "x_zero_point")
        ys, (yz, yu) = self.scale(node, 3, "y_scale"), self.zp(node, 4, "y_zero_point", like=t)
        self._check_unsigned(node, t, xu)
        kernel = tuple(_ints_attr(node, "kernel_shape", None) or self.fail(node, "kernel_shape is missing"))
        strides = tuple(_ints_attr(node, "strides", [1, 1]))
        pads = self._pads(node, kernel, (h, w), strides)
        spec = self._pool_spec(node, t, kernel, strides, pads)
        self._ceil_mode(node, spec, (h, w), kernel, strides, pads)
        name = self.step_name(node)
        params = {"unsigned": yu, "kernel": kernel, "stride": strides, "padding": pads,
                  "count_include_pad": bool(_int_attr(node, "count_include_pad", 0)),
                  "x_scale": xs, "x_zp": xz, "y_scale": ys, "y_zp": yz}
        self.emit(node, OnnxStep(name, "qlinear_avg_pool", (t.step,), spec.output_shape, (name,), spec=spec,
                                 zero_point=yz, source=f"{MS}.QLinearAveragePool", params=params), unsigned=yu)

    def binary(self, node):
        a = self.value(node, 0)
        const_b = node.input[3] in self.consts
        b = None if const_b else self.value(node, 3)
        sa, (za, ua) = self.scale(node, 1, "A_scale"), self.zp(node, 2, "A_zero_point")
        sb, (zb, ub) = self.scale(node, 4, "B_scale"), self.zp(node, 5, "B_zero_point")
        sy, (zy, uy) = self.scale(node, 6, "C_scale"), self.zp(node, 7, "C_zero_point", like=a)
        self._check_unsigned(node, a, ua)
        params = {"unsigned": uy, "a_scale": sa, "a_zp": za, "b_scale": sb, "b_zp": zb, "y_scale": sy, "y_zp": zy}
        if const_b:
            params["b_const"] = self._broadcast_const(node, a, self.consts[node.input[3]], ub)
        else:
            self._check_unsigned(node, b, ub)
            if a.shape != b.shape or a.perm is not None or b.perm is not None:
                self.fail(node, f"inputs of shapes {a.nchw_shape or a.shape!r} and {b.nchw_shape or b.shape!r}: "
                                f"broadcasting two computed tensors is not supported yet")
        op = "qlinear_add" if node.op_type == "QLinearAdd" else "qlinear_mul"
        if op == "qlinear_mul" and const_b:
            self.fail(node, "a QLinearMul by a constant is not supported yet")
        name = self.step_name(node)
        inputs = (a.step,) if const_b else (a.step, b.step)
        self.emit(node, OnnxStep(name, op, inputs, a.shape, (name,), zero_point=zy,
                                 source=f"{MS}.{node.op_type}", params=params),
                  unsigned=uy, nchw=a.nchw_shape is not None)

    def _broadcast_const(self, node, a, value, unsigned):
        """A constant 8-bit operand in our layout (stored int8), broadcastable to ``a``."""
        if value.dtype not in (np.uint8, np.int8) or (unsigned is not None and (value.dtype == np.uint8) != unsigned):
            self.fail(node, f"the constant operand must be 8-bit like its zero point, not {value.dtype}")
        v = (value.astype(np.int16) - (128 if value.dtype == np.uint8 else 0)).astype(np.int8)
        if v.size == 1:
            return v.reshape((1,) * len(a.shape))
        model_shape = a.nchw_shape or a.shape
        if a.perm is not None or v.ndim > len(model_shape):
            self.fail(node, f"a constant of shape {value.shape!r} does not broadcast to {model_shape!r} here")
        v = v.reshape((1,) * (len(model_shape) - v.ndim) + v.shape)
        try:
            np.broadcast_shapes(v.shape, model_shape)
        except ValueError:
            self.fail(node, f"a constant of shape {value.shape!r} does not broadcast to {model_shape!r}")
        if len(model_shape) == 4:
            v = v.transpose(0, 2, 3, 1)
        return np.ascontiguousarray(v)

    def table(self, node):
        t = self.value(node, 0)
        xs, (xz, xu) = self.scale(node, 1, "X_scale"), self.zp(node, 2, "X_zero_point")
        ys, (yz, yu) = self.scale(node, 3, "Y_scale"), self.zp(node, 4, "Y_zero_point", like=t)
        self._check_unsigned(node, t, xu)
        if node.op_type == "QLinearSigmoid":
            table = golden.qlinear_sigmoid_table(xs, xz, ys, yz, unsigned=yu)
        else:
            table = golden.qlinear_leaky_relu_table(_float_attr(node, "alpha", 0.01), xs, xz, ys, yz, unsigned=yu)
        name = self.step_name(node)
        self.emit(node, OnnxStep(name, "qlinear_table", (t.step,), t.shape, (name,), zero_point=yz,
                                 source=f"{MS}.{node.op_type}", params={"unsigned": yu, "table": table}),
                  unsigned=yu, nchw=t.nchw_shape is not None)

    def concat(self, node):
        ys, (yz, yu) = self.scale(node, 0, "Y_scale"), self.zp(node, 1, "Y_zero_point",
                                                                 like=self._image(node, 2))
        parts, scales, zps = [], [], []
        for i in range(2, len(node.input), 3):
            t = self._image(node, i)
            s, (z, u) = self.scale(node, i + 1, "X_scale"), self.zp(node, i + 2, "X_zero_point")
            self._check_unsigned(node, t, u)
            parts.append(t)
            scales.append(s)
            zps.append(z)
        axis = _int_attr(node, "axis", 1)
        if axis not in (1, -3):
            self.fail(node, f"only concatenation along the channels (axis 1) is supported, not axis {axis!r}")
        if len({p.shape[:3] for p in parts}) != 1:
            self.fail(node, "the inputs differ in batch, height or width")
        shape = parts[0].shape[:3] + (sum(p.shape[3] for p in parts),)
        name = self.step_name(node)
        params = {"unsigned": yu, "x_scales": scales, "x_zps": zps, "y_scale": ys, "y_zp": yz}
        self.emit(node, OnnxStep(name, "qlinear_concat", tuple(p.step for p in parts), shape, (name,), zero_point=yz,
                                 source=f"{MS}.QLinearConcat", params=params), unsigned=yu)

    def flatten(self, node):
        t = self.value(node, 0)
        if node.op_type == "Reshape":
            target = self.const(node, 1, "shape").astype(np.int64).reshape(-1).tolist()
            total = int(np.prod(t.shape))
            ok = len(target) == 2 and target[0] in (t.shape[0], 0, -1) and target[1] in (total // t.shape[0], -1)
            if not ok:
                self.fail(node, f"only a reshape to (N, -1) (a flatten) is supported, not {target!r}")
        elif _int_attr(node, "axis", 1) != 1:
            self.fail(node, f"only Flatten with axis 1 is supported, not axis {_int_attr(node, 'axis', 1)!r}")
        if len(t.shape) == 2:
            self.values[node.output[0]] = t
            return
        n, h, w, c = t.shape
        perm = None if h * w == 1 else np.arange(c * h * w).reshape(c, h, w).transpose(1, 2, 0).reshape(-1)
        name = self.step_name(node)
        step = OnnxStep(name, "flatten", (t.step,), (n, h * w * c), (name,), source=node.op_type,
                        params={"unsigned": t.unsigned})
        step.params["tensor"] = node.output[0]
        self.steps.append(step)
        self.values[node.output[0]] = _Tensor(name, (n, h * w * c), t.unsigned, None, perm)


def _op(node) -> str:
    return f"{node.domain}.{node.op_type}" if node.domain not in ("", "ai.onnx") else node.op_type


def _attr(node, name):
    for a in node.attribute:
        if a.name == name:
            return a
    return None


def _int_attr(node, name, default):
    a = _attr(node, name)
    return default if a is None else int(a.i)


def _float_attr(node, name, default):
    a = _attr(node, name)
    return default if a is None else float(a.f)


def _ints_attr(node, name, default):
    a = _attr(node, name)
    return default if a is None else [int(v) for v in a.ints]


def _str_attr(node, name, default):
    a = _attr(node, name)
    return default if a is None else a.s.decode()
