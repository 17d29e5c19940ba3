"""The hardware a network's steps run on: :class:`TileBackend` (one tile) and :class:`MeshBackend`.

A backend runs one :class:`~tilelab.net.lowering.Step` at a time through the layer calls of
:mod:`tilelab.api` (conv2d / linear on the compute tile or sharded over a mesh, pooling / add /
ReLU on the element-wise unit or over the mesh's nodes) and returns the output and the layer's
statistics. On Verilator a backend keeps one simulator process per unit for the whole run
(:class:`~tilelab.drive.SimServer`), so the process start is paid once, not once per layer.
"""

from __future__ import annotations

import numpy as np

from tilelab.api import ops
from tilelab.api.conv import Requant, conv2d, linear
from tilelab.checks import check_choice
from tilelab.compile.mesh import MeshError
from tilelab.compile.tile import LayoutError
from tilelab.drive import SimServer, eltwise_unit, tile_unit
from tilelab.drive.mesh import MESH_SIMS
from tilelab.net.lowering import GOLDEN_STEPS, RTL_MISSING_STEPS, Step, run_golden_step
from tilelab.pe_models.config import DEFAULT_ELTWISE, DEFAULT_TILE, EltwiseConfig, MeshConfig, TileConfig
from tilelab.sim import BACKENDS

__all__ = ["Backend", "ExecutionError", "MeshBackend", "OPS_STEPS", "ReferenceBackend", "TileBackend",
           "make_backend"]

#: Steps that run on the element-wise / pooling unit, and the :mod:`tilelab.api.ops` function of each.
OPS_STEPS = {"max_pool": ops.max_pool2d, "avg_pool": ops.avg_pool2d, "global_avg_pool": ops.global_avg_pool,
             "add": ops.add_requant, "relu": ops.relu, "qlinear_table": ops.qlinear_table,
             "qlinear_add": ops.qlinear_add, "qlinear_mul": ops.qlinear_mul, "qlinear_concat": ops.qlinear_concat,
             "qlinear_avg_pool": ops.qlinear_avg_pool}
#: Steps that run on the MAC array.
MATRIX_STEPS = ("conv2d", "linear")


class ExecutionError(ValueError):
    """A model cannot be run as asked (unsupported step, bad layer range, refused run directory)."""


class Backend:
    """Runs one :class:`~tilelab.net.lowering.Step` on simulated hardware.

    Subclasses implement :meth:`check` (called for every step of a run before any simulation),
    :meth:`run` and :meth:`describe`.
    """

    #: Short name for reports.
    name = "backend"

    def check(self, steps: list[Step]) -> None:
        """Raise :class:`ExecutionError` if a step cannot run on this backend."""
        raise NotImplementedError

    def run(self, step: Step, inputs: list[np.ndarray]):
        """Run ``step`` on ``inputs``; return ``(output, stats)`` (stats a ``LayerStats`` or None)."""
        raise NotImplementedError

    def describe(self) -> dict:
        """JSON-friendly identity of the hardware (stored in the run manifest)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what a run started (simulator processes); the backend may be used again."""


def _requant(step: Step) -> Requant | None:
    if step.out != "int8":
        return None
    if step.scale is not None:
        return Requant(zero_point=step.zero_point, scale=step.scale)
    return Requant(step.multiplier, step.shift, step.zero_point)


class TileBackend(Backend):
    """One compute tile (conv2d, linear) plus the element-wise / pooling unit (the other ops).

    Parameters
    ----------
    config : TileConfig
        The compute tile.
    sim : str
        Simulator backend (``"verilator"``, ``"icarus"``, ``"amaranth"``).
    ops_config : EltwiseConfig, optional
        The element-wise unit (:data:`~tilelab.pe_models.config.DEFAULT_ELTWISE` when None).
    persistent : bool
        Run all conv2d / linear steps in one simulator process and all element-wise steps in
        another (:class:`~tilelab.drive.SimServer`) instead of one process per layer (Verilator
        only; Icarus and Amaranth run a process per layer).
    """

    name = "tile"

    def __init__(self, config: TileConfig = DEFAULT_TILE, *, sim: str = "verilator",
                 ops_config: EltwiseConfig | None = None, persistent: bool = True):
        if not isinstance(config, TileConfig):
            raise TypeError(f"config must be a TileConfig, not {config!r}")
        check_choice("sim", sim, BACKENDS)
        if ops_config is not None and not isinstance(ops_config, EltwiseConfig):
            raise TypeError(f"ops_config must be an EltwiseConfig, not {ops_config!r}")
        self.config = config
        self.sim = sim
        self.ops_config = ops_config or DEFAULT_ELTWISE
        self.persistent = bool(persistent) and sim == "verilator"
        self._servers = {}

    def _server(self, unit):
        """The running simulator process of ``unit`` (started on first use), or None."""
        if not self.persistent:
            return None
        if unit.name not in self._servers:
            self._servers[unit.name] = SimServer(unit, sim=self.sim)
        return self._servers[unit.name]

    def close(self):
        for server in self._servers.values():
            server.close()
        self._servers = {}

    def describe(self) -> dict:
        return {"backend": self.name, "mesh": [1, 1], "tile": self.config.key(),
                "peak_macs_per_cycle": self.config.peak_macs_per_cycle, "ext_bytes_per_cycle": self.config.ext_bytes}

    def check(self, steps):
        from tilelab.net.onnx.steps import RTL_MISSING

        for s in steps:
            if s.op in RTL_MISSING:
                raise ExecutionError(f"step {s.name!r} (op {s.op!r}): the RTL has no {RTL_MISSING[s.op]} yet; "
                                     f"the golden backend (--sim golden) runs it without hardware")
            if s.op in RTL_MISSING_STEPS:
                raise ExecutionError(f"step {s.name!r} (op {s.op!r}): the RTL has no {RTL_MISSING_STEPS[s.op]} "
                                     f"yet; ReferenceBackend (the golden model) runs it without hardware")
            if s.op not in OPS_STEPS and s.op not in MATRIX_STEPS and s.op != "flatten":
                raise ExecutionError(f"step {s.name!r}: the {self.name} backend cannot run op {s.op!r}")
            if s.op in MATRIX_STEPS and s.scale is not None and not self.config.float_requant:
                raise ExecutionError(f"step {s.name!r} ({s.op}) uses onnxruntime's float requantization: the tile "
                                     f"must be built with float_requant=True (--tile float_requant=1)")
            if s.op in MATRIX_STEPS:
                self._check_fits(s)

    def _check_fits(self, step):
        """The step's program, input, weights and output fit the tile's external memory (the
        compiler's own memory map, without tensors), or an error naming the step before any run."""
        from tilelab.compile.tile import memory_map, program_streams
        from tilelab.reference.layers import Conv2dSpec

        s = step.spec
        spec = s if step.op == "conv2d" else Conv2dSpec(n=s.n, h=1, w=1, cin=s.k, cout=s.nout, kh=1, kw=1)
        out_int32 = step.out == "int32"
        try:
            memory_map(program_streams(spec, self.config, out_int32=out_int32), spec, self.config,
                       out_int32=out_int32)
        except LayoutError as error:
            raise ExecutionError(f"step {step.name!r} ({step.op}): {error}") from None

    def run(self, step, inputs):
        if step.op == "flatten":
            x = inputs[0]
            return x.reshape(x.shape[0], -1), None
        if step.op in MATRIX_STEPS:
            kw = {"requant": _requant(step), "activation": "relu" if step.relu else None, "out": step.out,
                  "config": self.config, "sim": self.sim, "server": self._server(tile_unit(self.config))}
            if step.op == "linear":
                return linear(inputs[0], step.weight, step.bias, **kw)
            s = step.spec
            return conv2d(inputs[0], step.weight, step.bias, stride=s.stride, padding=s.padding,
                          dilation=s.dilation, groups=s.groups, pad_value=step.pad_value, **kw)
        if step.op in OPS_STEPS:
            return self._run_op(step, inputs, {"sim": self.sim, "config": self.ops_config,
                                               "server": self._server(eltwise_unit(self.ops_config))})
        raise ExecutionError(f"step {step.name!r}: the {self.name} backend cannot run op {step.op!r}")

    def _run_op(self, step, inputs, where: dict):
        """An element-wise step through its :mod:`tilelab.api.ops` function; ``where`` says on what."""
        fn = OPS_STEPS[step.op]
        if step.op in ("max_pool", "avg_pool"):
            s = step.spec
            return fn(inputs[0], (s.kh, s.kw), stride=s.stride, padding=s.padding, **where)
        if step.op == "global_avg_pool":
            return fn(inputs[0], **where)
        if step.op == "relu":
            return fn(inputs[0], zero_point=step.zero_point, **where)
        if step.op == "qlinear_table":        # an imported model's step (net.onnx.OnnxStep)
            return fn(inputs[0], step.params["table"], **where)
        if step.op == "qlinear_avg_pool":
            p = step.params
            return fn(inputs[0], p["kernel"], stride=p["stride"], padding=p["padding"],
                      count_include_pad=p["count_include_pad"], x_scale=p["x_scale"], x_zero_point=p["x_zp"],
                      y_scale=p["y_scale"], y_zero_point=p["y_zp"], unsigned=p["unsigned"], **where)
        if step.op == "qlinear_concat":
            p = step.params
            return fn(inputs, p["x_scales"], p["x_zps"], p["y_scale"], p["y_zp"], unsigned=p["unsigned"], **where)
        if step.op in ("qlinear_add", "qlinear_mul"):
            p = step.params
            b = p["b_const"] if "b_const" in p else inputs[1]
            return fn(inputs[0], p["a_scale"], p["a_zp"], b, p["b_scale"], p["b_zp"], p["y_scale"], p["y_zp"],
                      unsigned=p["unsigned"], **where)
        return fn(inputs[0], inputs[1], a_mult=step.multiplier, a_shift=step.shift, b_mult=step.multiplier,
                  b_shift=step.shift, zero_point=step.zero_point, relu=step.relu, **where)


class MeshBackend(TileBackend):
    """conv2d / linear steps sharded over a mesh of tiles (:func:`tilelab.api.mesh.conv2d_mesh`),
    pooling, residual add and ReLU sharded over the element-wise units of its nodes
    (:mod:`tilelab.compile.mesh_eltwise`). Graphs have no training-mode batch-norm step: the lowering
    folds every batch norm into the conv before it (:mod:`tilelab.net.lowering`); training-mode batch
    norm runs on a mesh through ``ops.batch_norm_train(..., mesh=MeshConfig)``.

    Each layer takes the first of ``shards`` (``(shard, weight_load)`` pairs) the mesh compiler
    accepts for it (checked before that layer simulates; a layer none fits is an error naming it).
    An element-wise step the mesh cannot split (a pooling input row that is not whole NoC words)
    runs on one element-wise unit instead; its counters say where it ran (``on``).

    Parameters
    ----------
    mesh : (int, int)
        Rows and columns of tiles.
    config : TileConfig
        Every tile.
    sim : {"verilator", "icarus"}
    ops_config, persistent
        As :class:`TileBackend` (they apply to the element-wise steps the mesh cannot split).
    shards : sequence of (str, str)
        Sharding / weight-loading choices in order of preference.
    """

    name = "mesh"

    def _check_fits(self, step):
        # a layer is split over the nodes' memories; the mesh compiler checks them (and a layer no
        # sharding fits is an error naming it)
        return

    def __init__(self, mesh, config: TileConfig = DEFAULT_TILE, *, sim: str = "verilator", ops_config=None,
                 persistent: bool = True, shards=(("height", "multicast"), ("block", "multicast"),
                                                  ("width", "multicast"))):
        if sim not in MESH_SIMS:
            raise ExecutionError(f"a mesh runs on {', '.join(map(repr, MESH_SIMS))}, not {sim!r}")
        super().__init__(config, sim=sim, ops_config=ops_config, persistent=persistent)
        try:
            self.mesh = MeshConfig(rows=mesh[0], cols=mesh[1], tile=config, eltwise=True)
        except ValueError as error:
            raise ExecutionError(str(error)) from None
        self.shards = tuple(shards)

    def describe(self) -> dict:
        d = super().describe()
        d.update({"backend": self.name, "mesh": [self.mesh.rows, self.mesh.cols], "mesh_config": self.mesh.key(),
                  "peak_macs_per_cycle": self.mesh.tiles * self.config.peak_macs_per_cycle})
        return d

    def _server(self, unit):
        return None

    def run(self, step, inputs):
        from dataclasses import replace

        if step.op in OPS_STEPS and self.mesh.eltwise:
            try:
                y, stats = self._run_op(step, inputs, {"sim": self.sim, "mesh": self.mesh})
            except MeshError:           # raised by the mesh compiler, before any simulation
                y, stats = super().run(step, inputs)
                return y, replace(stats, counters=dict(stats.counters, on="unit"))
            return y, replace(stats, counters=dict(stats.counters, noc_flits=stats.noc_flits, on="mesh"))
        if step.op not in MATRIX_STEPS:
            return super().run(step, inputs)
        from tilelab.api.mesh import conv2d_mesh

        x, w = inputs[0], step.weight
        if step.op == "linear":
            x, w = x.reshape(x.shape[0], 1, 1, x.shape[1]), w.reshape(w.shape[0], 1, 1, w.shape[1])
            conv = {}
        else:
            s = step.spec
            conv = {"stride": s.stride, "padding": s.padding, "dilation": s.dilation, "groups": s.groups,
                    "pad_value": step.pad_value}
        errors = []
        for shard, weight_load in self.shards:
            try:
                y, stats = conv2d_mesh(x, w, step.bias, requant=_requant(step),
                                       activation="relu" if step.relu else None, out=step.out, mesh=self.mesh,
                                       shard=shard, weight_load=weight_load, sim=self.sim, **conv)
            except (MeshError, LayoutError) as error:  # raised by the compilers, before any simulation
                errors.append(f"{shard}/{weight_load}: {error}")
                continue
            stats = replace(stats, counters=dict(stats.counters, noc_flits=stats.noc_flits, shard=shard,
                                                 weight_load=weight_load))
            return (y.reshape(step.shape) if step.op == "linear" else y), stats
        raise ExecutionError(f"step {step.name!r} ({step.op}) fits no sharding of the {self.mesh.rows}x"
                             f"{self.mesh.cols} mesh: " + "; ".join(errors))


class ReferenceBackend(Backend):
    """The numpy golden model of a built-in network's steps: **no hardware is simulated** (no stats).

    Runs every step op of :data:`~tilelab.net.lowering.GOLDEN_STEPS` with
    :func:`~tilelab.net.lowering.run_golden_step`, including those no hardware unit has yet
    (:data:`~tilelab.net.lowering.RTL_MISSING_STEPS`): for checking a network's lowering end to end.
    """

    name = "golden"

    def check(self, steps):
        for s in steps:
            if s.op not in GOLDEN_STEPS:
                raise ExecutionError(f"step {s.name!r}: the {self.name} backend cannot run op {s.op!r}")

    def run(self, step, inputs):
        return run_golden_step(step, inputs), None

    def describe(self) -> dict:
        return {"backend": self.name, "simulated": False, "note": "numpy golden model, no hardware simulated",
                "peak_macs_per_cycle": 0}


def make_backend(mesh=(1, 1), *, config: TileConfig = DEFAULT_TILE, sim: str = "verilator", ops_config=None):
    """The backend for a mesh of ``R × C`` tiles: :class:`TileBackend` for 1×1, else :class:`MeshBackend`.

    Parameters
    ----------
    mesh : (int, int)
        Tiles.
    config, sim, ops_config
        As in :class:`TileBackend`.

    Raises
    ------
    ExecutionError
        For a mesh the NoC cannot hold, or a simulator that cannot run a mesh.
    """
    from tilelab.api.mesh import parse_mesh

    try:
        rows, cols = parse_mesh(mesh)
    except MeshError as error:
        raise ExecutionError(str(error)) from None
    if (rows, cols) == (1, 1):
        return TileBackend(config, sim=sim, ops_config=ops_config)
    return MeshBackend((rows, cols), config, sim=sim, ops_config=ops_config)
