"""Estimates of whole networks, step by step, as ``tilelab run`` would run them on one tile.

The steps are the lowering's (:func:`tilelab.net.lowering.plan_steps`: the same names, fusion,
shapes and output formats as :func:`~tilelab.net.lowering.lower`, without its golden calibration
pass): conv2d / linear on the compute tile (:func:`~tilelab.estimate.tile.estimate_conv`),
pooling / add / ReLU on the element-wise unit (:func:`~tilelab.estimate.eltwise.estimate_eltwise`),
flatten on the host (no cycles).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from tilelab.compile.tile import LayoutError
from tilelab.pe_models.config import DEFAULT_ELTWISE, DEFAULT_TILE, EltwiseConfig, MeshConfig, TileConfig

from .eltwise import ELTWISE_OPS, estimate_eltwise
from .mesh import estimate_conv_mesh
from .tile import estimate_conv, estimate_linear, linear_conv_spec

__all__ = ["MESH_SHARDS", "LayerEstimate", "ModelEstimate", "add_estimates", "estimate_model", "estimate_onnx",
           "estimate_steps"]


@dataclass(frozen=True)
class LayerEstimate:
    """The estimate of one lowered step.

    Attributes
    ----------
    index, name, op, shape, out
        The step (``name`` as in ``tilelab run``'s records).
    unit : str
        ``tile`` (conv2d, linear), ``eltwise`` (pooling, add, ReLU), ``mesh`` (a step sharded over a
        mesh) or ``host`` (flatten).
    estimated : bool
        False when the step cannot run on the unit (``note`` says why; its counts are then 0).
    cycles, macs, mac_utilization, ext_bytes_read, ext_bytes_written
        As in ``tilelab run``'s records.
    bound : str or None
        What sets the step (:data:`tilelab.estimate.BOUNDS`; ``read port`` / ``overhead`` on the
        element-wise unit; None on the host).
    physical : dict
        The step's physical lower bounds in cycles (``compute``, ``read``, ``write``).
    physical_ratio : float
        ``cycles`` ÷ the largest physical bound.
    mapping : str or None
        On a mesh: the sharding and weight loading the layer runs with (``height/multicast``...).
    note : str or None
    """

    index: int
    name: str
    op: str
    shape: tuple
    out: str
    unit: str
    estimated: bool
    cycles: int = 0
    macs: int = 0
    mac_utilization: float = 0.0
    ext_bytes_read: int = 0
    ext_bytes_written: int = 0
    bound: str | None = None
    physical: dict = field(default_factory=dict)
    physical_ratio: float = 0.0
    mapping: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class ModelEstimate:
    """The estimates of every step of a network."""

    model: str
    image_size: int
    batch: int
    tile: TileConfig
    eltwise: EltwiseConfig
    layers: list
    mesh: MeshConfig | None = None

    def summary(self) -> dict:
        """Totals and the layers, JSON-friendly (the totals of ``tilelab run``'s summary)."""
        mm = [r for r in self.layers if r.unit in ("tile", "mesh") and r.op in ("conv2d", "linear")]
        mm_cycles = sum(r.cycles for r in mm)
        macs = sum(r.macs for r in self.layers)
        peak = self.tile.peak_macs_per_cycle * (self.mesh.tiles if self.mesh is not None else 1)
        return {
            "model": self.model, "image_size": self.image_size, "batch": self.batch, "tile": self.tile.key(),
            "mesh": [self.mesh.rows, self.mesh.cols] if self.mesh is not None else [1, 1],
            "eltwise": self.eltwise.key(), "layers_estimated": sum(r.estimated for r in self.layers),
            "layers_not_estimated": [r.name for r in self.layers if not r.estimated],
            "total_cycles": sum(r.cycles for r in self.layers), "tile_cycles": mm_cycles,
            "eltwise_cycles": sum(r.cycles for r in self.layers if r.unit == "eltwise"), "total_macs": macs,
            "mac_utilization": macs / (mm_cycles * peak) if mm_cycles else 0.0,
            "bounds": {b: sum(r.cycles for r in self.layers if r.bound == b)
                       for b in dict.fromkeys(r.bound for r in self.layers if r.bound)},
            "layers": [asdict(r) for r in self.layers],
        }


def estimate_steps(steps, config: TileConfig = DEFAULT_TILE, *, eltwise: EltwiseConfig | None = None,
                   mesh: MeshConfig | None = None, shards=None) -> list:
    """Estimate lowered steps (:class:`~tilelab.net.lowering.Step`) one by one.

    Parameters
    ----------
    steps : list of Step
    config : TileConfig
        The compute tile (conv2d, linear).
    eltwise : EltwiseConfig, optional
        The element-wise unit (pooling, add, ReLU); default that of ``tilelab run``
        (:data:`~tilelab.pe_models.eltwise.DEFAULT_ELTWISE`).
    mesh : MeshConfig, optional
        Shard every conv2d / linear step over this mesh of ``config`` tiles, with the first of
        :data:`MESH_SHARDS` its compiler accepts (as ``tilelab run --mesh`` does). The element-wise
        steps, which ``tilelab run`` shards over the mesh's element-wise units, are not estimated
        there (no model yet).
    shards : sequence of (str, str), optional
        The ``(shard, weight_load)`` choices a mesh tries, in order; default :data:`MESH_SHARDS`.

    Returns
    -------
    list of LayerEstimate
    """
    eltwise = DEFAULT_ELTWISE if eltwise is None else eltwise
    out = []
    for i, step in enumerate(steps):
        base = {"index": i, "name": step.name, "op": step.op, "shape": tuple(step.shape), "out": step.out}
        if mesh is not None and step.op in ("conv2d", "linear"):
            out.append(_on_mesh(step, mesh, base, MESH_SHARDS if shards is None else shards))
        elif mesh is not None and step.op in ELTWISE_OPS:
            out.append(LayerEstimate(**base, unit="mesh", estimated=False,
                                     note="element-wise ops sharded over a mesh have no model yet"))
        elif step.op in ("conv2d", "linear"):
            try:
                est = (estimate_conv(step.spec, config, out=step.out) if step.op == "conv2d"
                       else estimate_linear(step.spec, config, out=step.out))
            except LayoutError as error:
                out.append(LayerEstimate(**base, unit="tile", estimated=False, note=str(error)))
                continue
            out.append(LayerEstimate(**base, unit="tile", estimated=True, cycles=est.cycles, macs=est.macs,
                                     mac_utilization=est.mac_utilization, ext_bytes_read=est.ext_bytes_read,
                                     ext_bytes_written=est.ext_bytes_written, bound=est.bound,
                                     physical=dict(est.physical), physical_ratio=est.physical_ratio))
        elif step.op in ELTWISE_OPS:
            shape = step.spec.input_shape if step.op in ("max_pool", "avg_pool") else _input_shape(step, steps)
            try:
                est = estimate_eltwise(step.op, shape, pool=step.spec, config=eltwise)
            except ValueError as error:
                out.append(LayerEstimate(**base, unit="eltwise", estimated=False, note=str(error)))
                continue
            out.append(LayerEstimate(**base, unit="eltwise", estimated=True, cycles=est.cycles,
                                     ext_bytes_read=est.ext_bytes_read, ext_bytes_written=est.ext_bytes_written,
                                     bound=est.bound, physical=dict(est.physical),
                                     physical_ratio=est.physical_ratio))
        elif step.op == "flatten":
            out.append(LayerEstimate(**base, unit="host", estimated=True, note="a reshape on the host"))
        else:
            out.append(LayerEstimate(**base, unit="host", estimated=False, note=f"op {step.op!r} has no model"))
    return out


#: The shardings a mesh tries for a conv2d / linear step, in order (those of ``tilelab run --mesh``).
MESH_SHARDS = (("height", "multicast"), ("block", "multicast"), ("width", "multicast"))


def _on_mesh(step, mesh: MeshConfig, base: dict, shards) -> LayerEstimate:
    from tilelab.compile.mesh import MeshError

    spec = step.spec if step.op == "conv2d" else linear_conv_spec(step.spec)
    errors = []
    for shard, weight_load in shards:
        try:
            est = estimate_conv_mesh(spec, mesh, shard=shard, weight_load=weight_load, out=step.out)
        except (MeshError, LayoutError) as error:
            errors.append(f"{shard}/{weight_load}: {error}")
            continue
        return LayerEstimate(**base, unit="mesh", estimated=True, cycles=est.cycles, macs=est.macs,
                             mac_utilization=est.mac_utilization, ext_bytes_read=est.ext_bytes_read,
                             bound=est.bound if est.bound != "tiles" else est.tile_bound,
                             physical=dict(est.physical), physical_ratio=est.cycles / est.physical_bound,
                             mapping=f"{shard}/{weight_load}")
    return LayerEstimate(**base, unit="mesh", estimated=False, note="fits no sharding: " + "; ".join(errors))


def add_estimates(summary: dict, steps, config: TileConfig, *, mesh: MeshConfig | None = None) -> dict:
    """Put the estimate of every run layer beside its measured cycles (``tilelab run --estimate``).

    Each record of ``summary["layers"]`` (a run's summary, :meth:`~tilelab.net.executor.RunResult.summary`)
    gets ``estimated_cycles``, ``estimate_error`` (``(estimated - measured) / measured``) and
    ``bound``, or None for a step without a model (``estimate_note`` says why); the summary gets
    ``estimate``: the totals over the estimated layers and the layer with the largest error.

    Parameters
    ----------
    summary : dict
        Updated in place and returned.
    steps : list of Step
        The run's lowered steps (the records' ``index`` points into them).
    config : TileConfig
        The tile the run simulated (a mesh: its tiles).
    mesh : MeshConfig, optional
        The mesh the run sharded its conv / linear layers over.
    """
    estimates = estimate_steps(steps, config, mesh=mesh)
    worst, measured, predicted = None, 0, 0
    for record in summary["layers"]:
        est = estimates[record["index"]]
        ok = est.estimated and est.name == record["name"] and record["cycles"] > 0
        record["estimated_cycles"] = est.cycles if ok else None
        record["estimate_error"] = (est.cycles - record["cycles"]) / record["cycles"] if ok else None
        record["bound"] = est.bound if ok else None
        if not ok:
            record["estimate_note"] = est.note or ("no cycles measured" if est.estimated else None)
            continue
        measured += record["cycles"]
        predicted += est.cycles
        if worst is None or abs(record["estimate_error"]) > abs(worst["estimate_error"]):
            worst = record
    summary["estimate"] = {
        "layers": sum(r["estimated_cycles"] is not None for r in summary["layers"]),
        "measured_cycles": measured, "estimated_cycles": predicted,
        "error": (predicted - measured) / measured if measured else None,
        "worst_layer": worst["name"] if worst else None,
        "worst_error": worst["estimate_error"] if worst else None,
    }
    return summary


def _input_shape(step, steps):
    """The shape of a step's first input (the element-wise ops read tensors of their output's shape,
    except global pooling)."""
    if step.op != "global_avg_pool":
        return tuple(step.shape)
    src = step.inputs[0]
    for s in steps:
        if s.name == src:
            return tuple(s.shape)
    raise ValueError(f"step {step.name!r} reads {src!r}, which is not a step")


def estimate_onnx(path, *, batch: int | None = None, config: TileConfig | None = None,
                  eltwise: EltwiseConfig | None = None, mesh: MeshConfig | None = None, shards=None) -> ModelEstimate:
    """Estimate every step of a quantized ONNX model as ``tilelab run FILE.onnx`` runs it.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.onnx`` file (QDQ or QOperator, see :func:`tilelab.net.onnx.load_onnx`).
    batch : int, optional
        Fixes a symbolic batch dimension.
    config : TileConfig, optional
        Default: the default tile with onnxruntime's requantization (``float_requant=True``), the
        tile ``tilelab run`` builds for ONNX models.
    eltwise, mesh, shards : optional
        As in :func:`estimate_steps`. Steps without a model (the quantized add, concat and
        lookup-table ops) are listed as not estimated.

    Raises
    ------
    tilelab.net.onnx.OnnxError
        A file that is not a model tilelab imports (the error names why).
    """
    from pathlib import Path

    from tilelab.net.onnx import load_onnx

    config = DEFAULT_TILE.replace(float_requant=True) if config is None else config
    if not isinstance(config, TileConfig):
        raise TypeError(f"config must be a TileConfig, not {config!r}")
    if mesh is not None and mesh.tile != config:
        raise ValueError("the mesh's tiles must be the config tile")
    m = load_onnx(path, batch=batch)
    shape = m.model_input.shape
    return ModelEstimate(model=Path(path).name, image_size=shape[2], batch=shape[0], tile=config,
                         eltwise=DEFAULT_ELTWISE if eltwise is None else eltwise,
                         layers=estimate_steps(m.steps, config, eltwise=eltwise, mesh=mesh, shards=shards),
                         mesh=mesh)


def estimate_model(model_name: str, *, image_size: int | None = None, batch: int = 1,
                   config: TileConfig = DEFAULT_TILE, eltwise: EltwiseConfig | None = None,
                   mesh: MeshConfig | None = None, shards=None, num_classes: int | None = None) -> ModelEstimate:
    """Estimate every step of a model of :data:`tilelab.net.models.MODELS` on one tile.

    Parameters
    ----------
    model_name : str
    image_size : int, optional
        Default: the model's native size.
    batch : int
    config : TileConfig
    eltwise, mesh, shards : optional
        As in :func:`estimate_steps`.
    num_classes : int, optional
        Outputs of the classifier (default the model's own).

    Raises
    ------
    ValueError
        Unknown model (the known ones listed), an image size the network cannot take.
    """
    from tilelab.net.lowering import plan_steps
    from tilelab.net.models import get_model

    if not isinstance(config, TileConfig):
        raise TypeError(f"config must be a TileConfig, not {config!r}")
    graph = get_model(model_name, image_size=image_size, batch=batch,
                      **({} if num_classes is None else {"num_classes": num_classes}))
    steps = plan_steps(graph)
    shape = graph.nodes[0].shape
    if mesh is not None and mesh.tile != config:
        raise ValueError("the mesh's tiles must be the config tile")
    return ModelEstimate(model=model_name, image_size=shape[1], batch=shape[0], tile=config,
                         eltwise=DEFAULT_ELTWISE if eltwise is None else eltwise,
                         layers=estimate_steps(steps, config, eltwise=eltwise, mesh=mesh, shards=shards),
                         mesh=mesh)
