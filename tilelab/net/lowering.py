"""Inference lowering: a model :class:`~tilelab.net.graph.Graph` to a list of hardware steps.

:func:`lower` walks the graph once in order, running the numpy golden model on a calibration
input as it goes (a *golden calibration pass*), and emits one :class:`Step` per operation the
hardware executes:

- ``conv2d`` → ``batch_norm`` (→ ``relu``) becomes **one** conv step: the inference-mode batch
  norm is folded into the conv's bias and per-channel requantization at compile time
  (:func:`~tilelab.reference.golden.fold_batch_norm`), the ReLU into the requantization. The batch
  norm's running statistics are those of the conv's accumulators on the calibration input (per
  channel; for the whole tensor when a channel has fewer than :data:`BN_MIN_COUNT` values); its
  ``gamma`` / ``beta`` (from :func:`~tilelab.net.models.init_weights`) have the meaning of
  :func:`~tilelab.reference.golden.batch_norm_train`: ``gamma / 2**8`` output steps per standard
  deviation and ``beta`` output steps, so the folded conv writes int8 in those steps.
- a conv (linear) layer with a fused requantization and no batch norm gets per-channel
  (per-tensor) ``(M, s)`` chosen from its golden accumulators with :func:`~tilelab.reference.golden.choose_requant`
  (the 99.9th percentile of ``|acc + bias|``, of the positive values under ReLU, maps to 127);
  a following ``relu`` node is fused. A layer without requantization writes int32.
- ``add`` gets its own requantization terms for :func:`~tilelab.reference.golden.add_requant`: one
  ``(M, s)`` for both inputs, chosen with :func:`~tilelab.reference.golden.choose_requant` on the
  exact sums ``a + b`` so the sum uses the int8 range.
- ``max_pool``, ``avg_pool``, ``global_avg_pool``, a ``relu`` that could not be fused: one step
  each (the element-wise / pooling unit).
- ``flatten``: a step without arithmetic (NHWC memory read as ``(N, H·W·C)``).
- ``relu6``: the synthetic networks carry no float scales, so a ReLU6 *defines* its input's
  scale: 6.0 is the int8 code 127 (a step is ``6 / 127``, as a quantized network stores a ReLU6
  output). ReLU6 is then ``min(max(t, 0), 127)`` (:func:`~tilelab.reference.golden.relu6` with
  ``six=127``): the ReLU followed by the int8 clamp every requantization ends with. After a conv
  (→ batch norm) it is fused like a ReLU (``relu=True``: the tile's pack stage does it); alone it
  is a ``relu`` step on the element-wise unit.
- ``hard_swish``, ``silu``, ``sigmoid``: a ``table`` step, the 256-entry int8 table of the float
  function (:func:`~tilelab.reference.golden.activation_table`) applied with
  :func:`~tilelab.reference.golden.apply_table`. The input scale is :data:`TABLE_INPUT_SCALE`
  (int8 covers ``[-8, 8)``) with zero point 0; SiLU and hard-swish write the same scale, sigmoid
  writes ``[0, 1]`` as ``1/255`` steps from zero point -128 (1.0 is 127: nothing clamps).
- ``mul`` (squeeze-and-excitation): :func:`~tilelab.reference.golden.mul_channel` of ``x`` and a
  sigmoid output ``s`` (zero point -128), ``M = 257``, ``shift = 16`` (``257 / 2**16`` is
  ``1 / 255`` to 0.002 %): ``round(x · σ)`` in ``x``'s steps (σ <= 1, so nothing clips).
- ``concat``, ``split``, ``channel_shuffle``: one step each, a copy without arithmetic (the
  channel-wise golden ops).

The tile and the element-wise unit cannot run ``table``, ``mul``, ``concat``, ``split`` or
``channel_shuffle`` steps yet (:data:`RTL_MISSING_STEPS` says what each lacks): a hardware
backend refuses them by name before any simulation; the golden model runs them
(:class:`~tilelab.net.backends.ReferenceBackend`).

Every step records the fraction of its outputs the int8 clamp changes (``clipped_fraction``) on
the calibration input, and the golden output of the whole chain (:attr:`LoweredModel.reference`),
which the executor compares the hardware's outputs against.

The ResNets' fc layer keeps the graph's ``requant=True``: it writes **int8** logits with one
requantization ``(M, s)`` chosen from its accumulators like any other layer's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tilelab.net.graph import Graph
from tilelab.reference import golden
from tilelab.reference.layers import Conv2dSpec, LinearSpec, PoolSpec

__all__ = ["BN_EPS", "BN_MIN_COUNT", "GOLDEN_STEPS", "RTL_MISSING_STEPS", "TABLE_INPUT_SCALE", "LoweredModel",
           "LoweringError", "Step", "lower", "plan_steps", "run_golden_step"]

#: Variance epsilon of the folded batch norms, in accumulator steps squared.
BN_EPS = 1e-5
#: Fewest values per channel (N·H·W) the calibration takes per-channel batch-norm statistics from.
BN_MIN_COUNT = 16
#: Fractional bits of the synthetic batch-norm ``gamma`` (as in ``batch_norm_train``'s default).
_GAMMA_FRAC_BITS = 8
#: Real value of one int8 step at the input of a table activation (the int8 range is [-8, 8)).
TABLE_INPUT_SCALE = 1 / 16
#: Output quantization (scale, zero point) of each table activation.
_TABLE_OUTPUT = {"silu": (TABLE_INPUT_SCALE, 0), "hard_swish": (TABLE_INPUT_SCALE, 0), "sigmoid": (1 / 255, -128)}
#: Requantization of the channel-wise multiply by a sigmoid output: ``round(x · (s + 128) · 257 / 2**16)``.
_MUL_MULTIPLIER, _MUL_SHIFT, _MUL_S_ZERO_POINT = 257, 16, -128

#: Step ops of the built-in networks that no hardware unit runs yet → what the hardware lacks.
RTL_MISSING_STEPS = {
    "table": "256-entry lookup table mode in the element-wise unit (SiLU, sigmoid, hard-swish)",
    "mul": "channel-wise multiply with broadcast (squeeze-and-excitation) in the element-wise unit",
    "concat": "channel concatenation (each producer writing its channel slice of the output)",
    "split": "channel slice read (a reader offset and stride over the input's channels)",
    "channel_shuffle": "channel permutation (ShuffleNet's shuffle) in the writer or a copy engine",
}
#: Every step op :func:`run_golden_step` computes.
GOLDEN_STEPS = ("conv2d", "linear", "max_pool", "avg_pool", "global_avg_pool", "add", "relu", "flatten",
                *RTL_MISSING_STEPS)

class LoweringError(ValueError):
    """The graph has a node the inference lowering cannot map to hardware steps."""


@dataclass
class Step:
    """One operation the hardware executes.

    Parameters
    ----------
    name : str
        The name of the first graph node it covers (the conv for a fused conv + BN + ReLU).
    op : str
        One of :data:`GOLDEN_STEPS`: ``conv2d``, ``linear``, ``max_pool``, ``avg_pool``,
        ``global_avg_pool``, ``add``, ``relu``, ``flatten``, ``table``, ``mul``, ``concat``,
        ``split``, ``channel_shuffle``.
    inputs : tuple of str
        Step names it reads (``"input"`` for the model input).
    shape : tuple of int
        Output shape.
    fused : tuple of str
        Graph nodes this step covers, in order.
    spec : Conv2dSpec or LinearSpec or PoolSpec or None
    weight, bias : numpy.ndarray or None
        conv2d / linear: int8 weights and the int32 bias the tile adds (BN folded in).
    multiplier, shift : numpy.ndarray or None
        Per-channel requantization (conv2d / linear with ``out == "int8"``), or the one
        ``(M, s)`` of both add terms (scalars).
    scale : numpy.ndarray or None
        conv2d / linear: float32 per-channel scales of the float requantization
        (:func:`~tilelab.reference.golden.requantize_float`, onnxruntime's) instead of
        ``(multiplier, shift)``, which are then None.
    pad_value : int
        conv2d: the int8 value of the padding (the input's zero point; 0 by default).
    zero_point : int
        Output zero point.
    relu : bool
        ReLU fused into the requantization (conv2d, linear, add).
    out : {"int8", "int32"}
        Output dtype.
    clipped_fraction : float or None
        Fraction of the calibration outputs the int8 clamp changed (None: the step has no clamp).
    attrs : dict
        Parameters of the other steps: ``table`` (int8 ``(256,)``), ``function``, ``x_scale``,
        ``y_scale``, ``y_zero_point`` (table); ``multiplier``, ``shift``, ``s_zero_point`` (mul);
        ``start``, ``stop`` (split); ``groups`` (channel_shuffle).
    """

    name: str
    op: str
    inputs: tuple[str, ...]
    shape: tuple[int, ...]
    fused: tuple[str, ...]
    spec: Conv2dSpec | LinearSpec | PoolSpec | None = None
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    multiplier: object = None
    shift: object = None
    scale: np.ndarray | None = None
    pad_value: int = 0
    zero_point: int = 0
    relu: bool = False
    out: str = "int8"
    clipped_fraction: float | None = None
    attrs: dict = field(default_factory=dict, repr=False)

    @property
    def macs(self) -> int:
        """Multiply-accumulates of a conv2d / linear step (0 otherwise)."""
        return int(self.spec.macs) if self.op in ("conv2d", "linear") else 0

    def describe(self) -> dict:
        """The step's JSON-friendly description (no tensors)."""
        return {"name": self.name, "op": self.op, "inputs": list(self.inputs), "shape": list(self.shape),
                "fused": list(self.fused), "relu": self.relu, "out": self.out, "macs": self.macs,
                "clipped_fraction": self.clipped_fraction}


@dataclass
class LoweredModel:
    """The steps of a model and the golden output of every step on the calibration input.

    Parameters
    ----------
    name : str
        The model name.
    input : numpy.ndarray
        The int8 NHWC calibration input (also the input the executor runs).
    steps : list of Step
        In execution order (topological).
    reference : dict
        Step name → golden output (the whole chain in numpy).
    """

    name: str
    input: np.ndarray
    steps: list[Step]
    reference: dict[str, np.ndarray] = field(repr=False)

    def index(self, name: str) -> int:
        """Position of the step called ``name``."""
        for i, step in enumerate(self.steps):
            if step.name == name:
                return i
        raise KeyError(f"model {self.name!r} has no step {name!r}")


def synthetic_input(shape, seed: int) -> np.ndarray:
    """Deterministic int8 NHWC input for ``seed`` (uniform in ``[-128, 127]``).

    Parameters
    ----------
    shape : tuple of int
    seed : int

    Returns
    -------
    numpy.ndarray
    """
    return np.random.default_rng([int(seed), 0x1A9E7]).integers(-128, 128, tuple(shape), dtype=np.int8)


def run_golden_step(step: Step, inputs: list[np.ndarray]) -> np.ndarray:
    """The golden output of ``step`` for ``inputs`` (the functions of :mod:`tilelab.reference.golden`).

    Parameters
    ----------
    step : Step
    inputs : list of numpy.ndarray
        One per ``step.inputs``.

    Returns
    -------
    numpy.ndarray
    """
    op = step.op
    if op == "conv2d":
        s = step.spec
        acc = golden.conv2d(inputs[0], step.weight, step.bias, stride=s.stride, padding=s.padding,
                            dilation=s.dilation, groups=s.groups, pad_value=step.pad_value)
    elif op == "linear":
        acc = golden.linear(inputs[0], step.weight, step.bias)
    elif op in ("max_pool", "avg_pool"):
        s = step.spec
        pool = golden.max_pool2d if op == "max_pool" else golden.avg_pool2d
        return pool(inputs[0], (s.kh, s.kw), stride=s.stride, padding=s.padding)
    elif op == "global_avg_pool":
        return golden.global_avg_pool(inputs[0])
    elif op == "relu":
        return golden.relu(inputs[0], zero_point=step.zero_point)
    elif op == "flatten":
        return golden.flatten(inputs[0])
    elif op == "add":
        return golden.add_requant(inputs[0], inputs[1], a_mult=step.multiplier, a_shift=step.shift,
                                  b_mult=step.multiplier, b_shift=step.shift, zero_point=step.zero_point,
                                  relu=step.relu)
    elif op == "table":
        return golden.apply_table(inputs[0], step.attrs["table"])
    elif op == "mul":
        a = step.attrs
        return golden.mul_channel(inputs[0], inputs[1], multiplier=a["multiplier"], shift=a["shift"],
                                  zero_point=step.zero_point, s_zero_point=a["s_zero_point"])
    elif op == "concat":
        return golden.concat_channels(inputs)
    elif op == "split":
        return golden.channel_split(inputs[0], step.attrs["start"], step.attrs["stop"])
    elif op == "channel_shuffle":
        return golden.channel_shuffle(inputs[0], step.attrs["groups"])
    else:  # pragma: no cover - Step ops are closed
        raise LoweringError(f"step {step.name!r}: unknown op {op!r}")
    if step.out == "int32":
        return acc
    if step.scale is not None:
        return golden.requantize_float(acc, step.scale, step.zero_point, relu=step.relu)
    return golden.requantize(acc, step.multiplier, step.shift, step.zero_point, relu=step.relu)


def plan_steps(graph: Graph) -> list[Step]:
    """The steps :func:`lower` emits for ``graph``, without weights or calibration.

    Names, ops, inputs, output shapes, specs, the fused nodes, ``relu`` and the output format of
    every step are decided here from the graph alone (what a cost model of the hardware needs);
    :func:`lower` fills in the numbers.

    Parameters
    ----------
    graph : Graph

    Returns
    -------
    list of Step
        In execution order; conv2d / linear steps without weights, bias or requantization yet.

    Raises
    ------
    LoweringError
        A node the lowering cannot map (a batch norm not after a conv, an unknown op), naming it.
    """
    if not isinstance(graph, Graph):
        raise TypeError(f"graph must be a Graph, not {type(graph).__name__}")
    nodes = graph.nodes
    if not nodes or nodes[0].op != "input":
        raise LoweringError(f"graph {graph.name!r} must start with its input node")
    consumers: dict[str, list[str]] = {n.name: [] for n in nodes}
    for n in nodes:
        for i in n.inputs:
            consumers[i].append(n.name)

    def only_consumer(name, *ops):
        c = consumers[name]
        return graph[c[0]] if len(c) == 1 and graph[c[0]].op in ops else None

    alias = {nodes[0].name: "input"}  # graph node → the step whose output it is
    steps: list[Step] = []
    done: set[str] = {nodes[0].name}
    for node in nodes[1:]:
        if node.name in done:
            continue
        ins = tuple(alias[i] for i in node.inputs)
        if node.op in ("conv2d", "linear"):
            # conv → batch norm (folded) → ReLU (fused into the requantization); a ReLU needs int8 outputs
            bn = only_consumer(node.name, "batch_norm") if node.op == "conv2d" else None
            tail = bn.name if bn is not None else node.name
            relu = only_consumer(tail, "relu", "relu6") if (bn is not None or node.requant) else None
            fused = (node.name,) + ((bn.name,) if bn is not None else ()) + ((relu.name,) if relu is not None else ())
            step = Step(node.name, node.op, ins, node.shape, fused, spec=node.spec,
                        relu=node.relu or relu is not None,
                        out="int8" if bn is not None or node.requant else "int32")
        elif node.op == "add":
            step = Step(node.name, "add", ins, node.shape, (node.name,), relu=node.relu)
        elif node.op in ("max_pool", "avg_pool", "global_avg_pool", "relu", "flatten"):
            step = Step(node.name, node.op, ins, node.shape, (node.name,), spec=node.spec)
        elif node.op == "relu6":  # 6.0 is the code 127: the ReLU and the int8 clamp (module docstring)
            step = Step(node.name, "relu", ins, node.shape, (node.name,))
        elif node.op in _TABLE_OUTPUT:
            step = Step(node.name, "table", ins, node.shape, (node.name,), attrs={"function": node.op})
        elif node.op in ("mul", "concat", "split", "channel_shuffle"):
            step = Step(node.name, node.op, ins, node.shape, (node.name,), attrs=dict(node.attrs))
        elif node.op == "batch_norm":
            raise LoweringError(
                f"node {node.name!r} (batch_norm): inference lowering folds a batch norm into the conv "
                f"before it, but it reads {node.inputs[0]!r} ({graph[node.inputs[0]].op})"
            )
        else:
            raise LoweringError(f"node {node.name!r}: cannot lower op {node.op!r}")
        for name in step.fused:
            alias[name] = step.name
            done.add(name)
        steps.append(step)
    return steps


def lower(graph: Graph, params: dict, x: np.ndarray) -> LoweredModel:
    """Lower ``graph`` for inference and calibrate it on ``x`` with the golden model.

    Parameters
    ----------
    graph : Graph
    params : dict
        From :func:`~tilelab.net.models.init_weights`: node name → parameter arrays.
    x : numpy.ndarray
        int8 input of the graph's input shape.

    Returns
    -------
    LoweredModel

    Raises
    ------
    LoweringError
        A node the lowering cannot map (a batch norm not after a conv, a node without its
        parameters, an input of the wrong shape or dtype).
    """
    if not isinstance(graph, Graph):
        raise TypeError(f"graph must be a Graph, not {type(graph).__name__}")
    nodes = graph.nodes
    if not nodes or nodes[0].op != "input":
        raise LoweringError(f"graph {graph.name!r} must start with its input node")
    if not isinstance(x, np.ndarray) or x.dtype != np.int8 or x.shape != nodes[0].shape:
        raise LoweringError(
            f"input must be an int8 array of shape {nodes[0].shape!r}, not "
            f"{getattr(x, 'dtype', type(x).__name__)!s} {getattr(x, 'shape', None)!r}"
        )
    steps = plan_steps(graph)
    values = {"input": x}
    for step in steps:
        args = [values[i] for i in step.inputs]
        out = None
        if step.op in ("conv2d", "linear"):
            out = _lower_matrix(step, graph, params, args)
        elif step.op == "add":
            _lower_add(step, args)
        elif step.op == "table":
            _lower_table(step, args)
        elif step.op == "mul":
            _lower_mul(step, graph, args)
        values[step.name] = run_golden_step(step, args) if out is None else out
    return LoweredModel(graph.name, x, steps, values)


def _params_of(node, params, key):
    try:
        return params[node.name][key]
    except KeyError:
        raise LoweringError(f"node {node.name!r} ({node.op}): parameter {key!r} missing") from None


def _lower_matrix(step: Step, graph: Graph, params, args) -> np.ndarray:
    # Fills in the planned step's weights, bias and requantization; returns its golden output (from
    # the calibration accumulators: what run_golden_step gives, without a second convolution).
    node = graph[step.name]
    weight = _params_of(node, params, "weight")
    bias = params.get(node.name, {}).get("bias") if node.bias else None
    x = args[0]
    if node.op == "conv2d":
        s = node.spec
        acc = golden.conv2d(x, weight, bias, stride=s.stride, padding=s.padding, dilation=s.dilation,
                            groups=s.groups)
    else:
        acc = golden.linear(x, weight, bias)
    step.weight = weight
    bn = graph[step.fused[1]] if len(step.fused) > 1 and graph[step.fused[1]].op == "batch_norm" else None
    if bn is not None:
        gamma = _params_of(bn, params, "gamma").astype(np.float64) / (1 << _GAMMA_FRAC_BITS)
        beta = _params_of(bn, params, "beta").astype(np.float64)
        mean, var = _bn_statistics(acc)
        folded = golden.fold_batch_norm(gamma, beta, mean, var, acc_scale=1.0, out_scale=1.0, eps=BN_EPS,
                                        bias=bias)
        # acc already holds the old bias; the folded bias replaces it.
        base = acc if bias is None else golden.wrap_int32(acc.astype(np.int64) - bias)
        step.bias = folded.bias
        step.multiplier, step.shift = folded.multiplier, folded.shift
        acc = golden.wrap_int32(base.astype(np.int64) + folded.bias)
    elif node.requant:
        step.bias = bias
        # Per output channel for convs; one scale for a linear layer, whose batch of a few rows
        # gives no per-channel statistics (its outputs are the logits).
        step.multiplier, step.shift = golden.choose_requant(acc, relu=step.relu, per_channel=node.op == "conv2d")
    else:
        step.bias = bias
    if step.out == "int32":
        return acc
    step.clipped_fraction = golden.clipped_fraction(acc, step.multiplier, step.shift, 0, relu=step.relu)
    return golden.requantize(acc, step.multiplier, step.shift, 0, relu=step.relu)


def _bn_statistics(acc):
    """Running mean and variance of a batch norm from the calibration accumulators.

    Per channel over N·H·W when there are at least :data:`BN_MIN_COUNT` values per channel;
    otherwise (deep layers of a small image: a single value per channel has no variance) the
    statistics of the whole tensor, the same for every channel.
    """
    a = acc.astype(np.float64).reshape(-1, acc.shape[-1])
    if a.shape[0] >= BN_MIN_COUNT:
        return a.mean(axis=0), a.var(axis=0)
    channels = a.shape[1]
    return np.full(channels, a.mean()), np.full(channels, a.var())


def _lower_add(step: Step, args) -> None:
    # Fills in the planned add step's requantization and its clipped fraction.
    a, b = args
    if a.dtype != np.int8 or b.dtype != np.int8:
        raise LoweringError(f"node {step.name!r} (add): both inputs must be int8, not {a.dtype} and {b.dtype}")
    sums = a.astype(np.int32) + b.astype(np.int32)
    m, s = golden.choose_requant(sums, per_channel=False, relu=step.relu)
    step.multiplier, step.shift = m, s
    # Exact clipped fraction from the golden op itself: an output clamps at the top iff the
    # unclamped value is >= 128, i.e. the same add one step lower still saturates at 127
    # (and likewise one step higher at -128 for the bottom).
    kw = dict(a_mult=m, a_shift=s, b_mult=m, b_shift=s, relu=step.relu)
    top = golden.add_requant(a, b, zero_point=-1, **kw) == golden.INT8_MAX
    bottom = golden.add_requant(a, b, zero_point=1, **kw) == golden.INT8_MIN
    step.clipped_fraction = float(np.count_nonzero(top | bottom) / top.size) if top.size else 0.0


def _lower_table(step: Step, args) -> None:
    # Fills in the table of a planned table step and the fraction of its inputs whose entry clamps.
    function = step.attrs["function"]
    y_scale, y_zero_point = _TABLE_OUTPUT[function]
    x = args[0]
    if x.dtype != np.int8:
        raise LoweringError(f"node {step.name!r} ({function}): the input must be int8, not {x.dtype}")
    table = golden.activation_table(function, TABLE_INPUT_SCALE, 0, y_scale, y_zero_point)
    q = np.arange(golden.INT8_MIN, golden.INT8_MAX + 1, dtype=np.float64)
    raw = np.rint(golden.ACTIVATIONS[function](TABLE_INPUT_SCALE * q) / y_scale) + y_zero_point
    clamps = (raw < golden.INT8_MIN) | (raw > golden.INT8_MAX)
    step.attrs.update(table=table, x_scale=TABLE_INPUT_SCALE, y_scale=y_scale, y_zero_point=y_zero_point)
    step.clipped_fraction = float(np.count_nonzero(clamps[x.astype(np.int32) + 128]) / x.size) if x.size else 0.0


def _lower_mul(step: Step, graph: Graph, args) -> None:
    # The channel-wise multiply scales x by a sigmoid output (codes -128..127 for [0, 1)).
    node = graph[step.name]
    source = graph[node.inputs[1]]
    if source.op != "sigmoid":
        raise LoweringError(
            f"node {step.name!r} (mul): the scale must come from a sigmoid (squeeze-and-excitation), not from "
            f"{source.name!r} ({source.op})"
        )
    x, s = args
    if x.dtype != np.int8 or s.dtype != np.int8:
        raise LoweringError(f"node {step.name!r} (mul): both inputs must be int8, not {x.dtype} and {s.dtype}")
    step.attrs.update(multiplier=_MUL_MULTIPLIER, shift=_MUL_SHIFT, s_zero_point=_MUL_S_ZERO_POINT)
    step.clipped_fraction = 0.0  # |x| · 255 · 257 / 2**16 < |x| + 1/2: never outside int8
