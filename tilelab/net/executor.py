"""Run a lowered model layer by layer on the simulated hardware, check every layer, persist, resume.

:func:`execute` takes a :class:`~tilelab.net.lowering.LoweredModel` and a backend that runs one
step on the hardware. Each step gets the *hardware* outputs of the steps it reads (steps before
the requested range, if any, take their golden outputs), and its output is compared bit for bit
with the golden output of the whole chain (:attr:`LoweredModel.reference`) and, by the runtime,
with the golden op on the same inputs. Per-step records go to a run directory as they finish,
each written atomically (temporary file + rename), so an interrupted run continues from the last
finished step with ``resume=True``.

Backends (:class:`Backend`) are pluggable; :class:`TileBackend` runs conv2d / linear steps on one
compute tile through :mod:`tilelab.api.conv` and pooling / add / relu steps on the
element-wise unit through ``tilelab.api.ops``; :class:`MeshBackend` shards conv2d / linear steps
over a mesh of tiles (:mod:`tilelab.api.mesh`). ``flatten`` has no arithmetic: the NHWC output
is read as ``(N, H·W·C)`` and the step costs no cycles.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tilelab.api import conv as runtime
from tilelab.net.lowering import LoweredModel, Step
from tilelab.pe_models.config import DEFAULT_TILE, TileConfig
from tilelab.sim import BACKENDS

__all__ = [
    "Backend",
    "ExecutionError",
    "MeshBackend",
    "RunDirError",
    "RunResult",
    "TileBackend",
    "atomic_write",
    "execute",
    "make_backend",
    "parse_layers",
    "prepare",
    "parse_mesh",
    "write_json_atomic",
]

RUN_FORMAT = "tilelab-run/1"
MANIFEST = "run.json"
LAYER_DIR = "layers"
#: Ops of the element-wise / pooling unit (``tilelab.api.ops``).
OPS_STEPS = ("max_pool", "avg_pool", "global_avg_pool", "add", "relu")


class ExecutionError(ValueError):
    """A run cannot start: bad layer range, a step the backend cannot run, a bad mesh."""


class RunDirError(ExecutionError):
    """The run directory belongs to another run, or is corrupt."""


# --------------------------------------------------------------------------------------------
# backends


class Backend:
    """Runs one :class:`~tilelab.net.lowering.Step` on simulated hardware.

    Subclasses implement :meth:`check` (called for every step of a run before any simulation)
    and :meth:`run`.
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


def _load_ops():
    try:
        return importlib.import_module("tilelab.api.ops")
    except ModuleNotFoundError as error:
        if error.name != "tilelab.api.ops":
            raise
        return None


class TileBackend(Backend):
    """One compute tile (conv2d, linear) plus the element-wise / pooling unit (the other ops).

    Parameters
    ----------
    config : TileConfig
        The compute tile.
    sim : str
        Simulator backend (``"verilator"``, ``"icarus"``, ``"amaranth"``).
    ops_config : object, optional
        Configuration handed to the ``tilelab.api.ops`` functions (their default when None).
    persistent : bool
        Run all conv2d / linear steps in one simulator process
        (:class:`~tilelab.drive.server.TileServer`) and all element-wise steps in another
        (:class:`~tilelab.drive.server.EltwiseServer`) instead of one process per layer
        (Verilator only; Icarus and Amaranth run a process per layer).
    """

    name = "tile"

    def __init__(self, config: TileConfig = DEFAULT_TILE, *, sim: str = "verilator", ops_config=None,
                 persistent: bool = True):
        if not isinstance(config, TileConfig):
            raise TypeError(f"config must be a TileConfig, not {config!r}")
        if sim not in BACKENDS:
            raise ValueError(f"sim must be one of {', '.join(map(repr, BACKENDS))}, not {sim!r}")
        self.config = config
        self.sim = sim
        self.ops_config = ops_config
        self.persistent = bool(persistent) and sim == "verilator"
        self._ops = None
        self._server = None
        self._eltwise_server = None

    def _runner(self):
        if not self.persistent:
            return None
        if self._server is None:
            from tilelab.drive.server import TileServer

            self._server = TileServer(self.config, sim=self.sim)
        return self._server.run_program

    def _ops_runner(self):
        import contextlib

        if not self.persistent or not hasattr(self._ops, "image_runner"):
            return contextlib.nullcontext()
        if self._eltwise_server is None:
            from tilelab.drive.server import EltwiseServer
            from tilelab.pe_models.eltwise import DEFAULT_ELTWISE

            self._eltwise_server = EltwiseServer(self.ops_config or DEFAULT_ELTWISE, sim=self.sim)
        return self._ops.image_runner(self._eltwise_server.run_ops_image)

    def close(self):
        for server in (self._server, self._eltwise_server):
            if server is not None:
                server.close()
        self._server = self._eltwise_server = None

    def describe(self) -> dict:
        return {"backend": self.name, "mesh": [1, 1], "tile": self.config.key(),
                "peak_macs_per_cycle": self.config.peak_macs_per_cycle, "ext_bytes_per_cycle": self.config.ext_bytes}

    def check(self, steps):
        needs = [s for s in steps if s.op in OPS_STEPS]
        if needs:
            self._ops = _load_ops()
            if self._ops is None:
                s = needs[0]
                raise ExecutionError(
                    f"step {s.name!r} ({s.op}) needs the RTL element-wise/pooling unit (tilelab.api.ops), "
                    f"which this tilelab does not have; {len(needs)} step(s) of the run need it"
                )
            missing = sorted({_OPS_FUNCTION[s.op] for s in needs if not hasattr(self._ops, _OPS_FUNCTION[s.op])})
            if missing:
                raise ExecutionError(f"tilelab.api.ops lacks {', '.join(missing)}")

    def run(self, step, inputs):
        matrix = step.op in ("conv2d", "linear")
        kw = {"config": self.config, "sim": self.sim, "runner": self._runner() if matrix else None}
        if step.op == "conv2d":
            s = step.spec
            rq = runtime.Requant(step.multiplier, step.shift, step.zero_point) if step.out == "int8" else None
            return runtime.conv2d(inputs[0], step.weight, step.bias, stride=s.stride, padding=s.padding,
                                  dilation=s.dilation, groups=s.groups, requant=rq,
                                  activation="relu" if step.relu else None, out=step.out, **kw)
        if step.op == "linear":
            rq = runtime.Requant(step.multiplier, step.shift, step.zero_point) if step.out == "int8" else None
            return runtime.linear(inputs[0], step.weight, step.bias, requant=rq,
                                  activation="relu" if step.relu else None, out=step.out, **kw)
        if step.op == "flatten":
            x = inputs[0]
            return x.reshape(x.shape[0], -1), None
        if self._ops is None:
            self.check([step])
        with self._ops_runner():
            return self._run_op(step, inputs)

    def _run_op(self, step, inputs, okw=None):
        ops = self._ops
        okw = okw if okw is not None else {"sim": self.sim, "config": self.ops_config}
        if step.op in ("max_pool", "avg_pool"):
            s = step.spec
            pool = ops.max_pool2d if step.op == "max_pool" else ops.avg_pool2d
            return pool(inputs[0], (s.kh, s.kw), stride=s.stride, padding=s.padding, **okw)
        if step.op == "global_avg_pool":
            return ops.global_avg_pool(inputs[0], **okw)
        if step.op == "relu":
            return ops.relu(inputs[0], zero_point=step.zero_point, **okw)
        if step.op == "add":
            return ops.add_requant(inputs[0], inputs[1], a_mult=step.multiplier, a_shift=step.shift,
                                   b_mult=step.multiplier, b_shift=step.shift, zero_point=step.zero_point,
                                   relu=step.relu, **okw)
        raise ExecutionError(f"step {step.name!r}: the tile backend cannot run op {step.op!r}")


_OPS_FUNCTION = {"max_pool": "max_pool2d", "avg_pool": "avg_pool2d", "global_avg_pool": "global_avg_pool",
                 "add": "add_requant", "relu": "relu"}


def parse_mesh(text) -> tuple[int, int]:
    """``"RxC"`` → ``(R, C)``.

    Raises
    ------
    ExecutionError
        For text that is not two positive integers joined by ``x``.
    """
    parts = str(text).lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ExecutionError(f"mesh must be RxC with positive integers R and C (like 1x1 or 2x2), not {text!r}")
    return int(parts[0]), int(parts[1])


class MeshBackend(TileBackend):
    """conv2d / linear steps sharded over a mesh of tiles (:func:`tilelab.api.mesh.conv2d_mesh`),
    pooling, residual add and ReLU sharded over the element-wise units of its nodes
    (:mod:`tilelab.compile.mesh_eltwise`). Graphs have no training-mode batch-norm step: the lowering folds
    every batch norm into the conv before it (:mod:`tilelab.net.lowering`); training-mode batch norm
    runs on a mesh through ``ops.batch_norm_train(..., mesh=MeshConfig)``.

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
        As :class:`TileBackend` (``persistent`` applies to the element-wise unit).
    shards : sequence of (str, str)
        Sharding / weight-loading choices in order of preference.
    """

    name = "mesh"

    def __init__(self, mesh, config: TileConfig = DEFAULT_TILE, *, sim: str = "verilator", ops_config=None,
                 persistent: bool = True, shards=(("height", "multicast"), ("block", "multicast"),
                                                  ("width", "multicast"))):
        from tilelab.api.mesh import MESH_SIMS
        from tilelab.pe_models.mesh import MeshConfig

        if sim not in MESH_SIMS:
            raise ExecutionError(f"a mesh runs on {', '.join(map(repr, MESH_SIMS))}, not {sim!r}")
        super().__init__(config, sim=sim, ops_config=ops_config, persistent=persistent)
        self.mesh = MeshConfig(rows=mesh[0], cols=mesh[1], tile=config, eltwise=config.ext_bytes in (16, 32, 64))
        self.shards = tuple(shards)

    def describe(self) -> dict:
        d = super().describe()
        d.update({"backend": self.name, "mesh": [self.mesh.rows, self.mesh.cols], "mesh_config": self.mesh.key(),
                  "peak_macs_per_cycle": self.mesh.tiles * self.config.peak_macs_per_cycle})
        return d

    def _runner(self):
        return None

    def run(self, step, inputs):
        from tilelab.compile.mesh import MeshError

        if step.op in _OPS_FUNCTION and self.mesh.eltwise:
            if self._ops is None:
                self.check([step])
            try:
                y, stats = self._run_op(step, inputs, {"sim": self.sim, "mesh": self.mesh})
            except MeshError:           # raised by the mesh compiler, before any simulation
                y, stats = super().run(step, inputs)
                stats.counters = dict(stats.counters, on="unit")
                return y, stats
            stats.counters = dict(stats.counters, noc_flits=stats.noc_flits, on="mesh")
            return y, stats
        if step.op not in ("conv2d", "linear"):
            return super().run(step, inputs)
        from tilelab.api.mesh import conv2d_mesh

        x, w = inputs[0], step.weight
        if step.op == "linear":
            x, w = x.reshape(x.shape[0], 1, 1, x.shape[1]), w.reshape(w.shape[0], 1, 1, w.shape[1])
            conv = {}
        else:
            s = step.spec
            conv = {"stride": s.stride, "padding": s.padding, "dilation": s.dilation, "groups": s.groups}
        rq = runtime.Requant(step.multiplier, step.shift, step.zero_point) if step.out == "int8" else None
        errors = []
        for shard, weight_load in self.shards:
            try:
                y, stats = conv2d_mesh(x, w, step.bias, requant=rq, activation="relu" if step.relu else None,
                                       out=step.out, mesh=self.mesh, shard=shard, weight_load=weight_load,
                                       sim=self.sim, **conv)
            except MeshError as error:  # raised by the mesh compiler, before any simulation
                errors.append(f"{shard}/{weight_load}: {error}")
                continue
            stats.counters = dict(stats.counters, noc_flits=stats.noc_flits, shard=shard, weight_load=weight_load)
            return (y.reshape(step.shape) if step.op == "linear" else y), stats
        raise ExecutionError(f"step {step.name!r} ({step.op}) fits no sharding of the {self.mesh.rows}x"
                             f"{self.mesh.cols} mesh: " + "; ".join(errors))


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
    rows, cols = mesh
    if (rows, cols) == (1, 1):
        return TileBackend(config, sim=sim, ops_config=ops_config)
    from tilelab.api.mesh import parse_mesh as _check_mesh
    from tilelab.compile.mesh import MeshError

    try:
        _check_mesh((rows, cols))
    except MeshError as error:
        raise ExecutionError(str(error)) from None
    return MeshBackend((rows, cols), config, sim=sim, ops_config=ops_config)


# --------------------------------------------------------------------------------------------
# layer ranges and run directories


def parse_layers(text, count: int) -> tuple[int, int]:
    """``"A:B"`` (either side may be empty) → ``(A, B)`` with ``0 <= A < B <= count``.

    Steps are numbered from 0 in execution order; ``B`` is exclusive, like a Python slice.

    Raises
    ------
    ExecutionError
        For bad syntax or a range out of ``[0, count]``.
    """
    if text is None:
        return 0, count
    parts = str(text).split(":")
    if len(parts) != 2:
        raise ExecutionError(f"layers must be A:B (step indices, B exclusive), not {text!r}")
    try:
        a = int(parts[0]) if parts[0].strip() else 0
        b = int(parts[1]) if parts[1].strip() else count
    except ValueError:
        raise ExecutionError(f"layers must be A:B with integers A and B, not {text!r}") from None
    if not 0 <= a < b <= count:
        raise ExecutionError(f"layers {text!r} out of range: the model has {count} layers, need 0 <= A < B <= {count}")
    return a, b


def atomic_write(path: Path, write) -> None:
    """Write ``path`` through ``write(file)`` into a temporary file of the same folder, then rename."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json_atomic(path, data) -> None:
    """Write ``data`` as JSON to ``path`` via a temporary file and a rename."""
    atomic_write(Path(path), lambda f: f.write((json.dumps(data, indent=2) + "\n").encode()))


class RunDir:
    """A run directory: ``run.json`` (the manifest), ``layers/NNNN.json`` + ``layers/NNNN.npy``.

    A layer counts as finished when its record (written last) exists; every file is written to a
    temporary name and renamed, so no file is ever half-written.
    """

    def __init__(self, path):
        self.path = Path(path)

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST

    def _layer(self, index: int, ext: str) -> Path:
        return self.path / LAYER_DIR / f"{index:04d}.{ext}"

    def exists(self) -> bool:
        return self.manifest_path.exists()

    def read_manifest(self) -> dict:
        try:
            manifest = json.loads(self.manifest_path.read_text())
        except (OSError, ValueError) as error:
            raise RunDirError(f"run directory {str(self.path)!r} is corrupt: cannot read {MANIFEST}: {error}") from None
        if not isinstance(manifest, dict) or manifest.get("format") != RUN_FORMAT:
            raise RunDirError(
                f"run directory {str(self.path)!r} is corrupt: {MANIFEST} is not a {RUN_FORMAT!r} manifest"
            )
        return manifest

    def check(self, manifest: dict, *, resume: bool) -> bool:
        """Check (without writing) that the directory can take the run ``manifest``.

        Returns True if it already holds that run (``resume``), False if it holds none.
        """
        if not self.exists():
            return False
        if not resume:
            raise RunDirError(
                f"run directory {str(self.path)!r} already holds a run: pass resume (--resume) to continue "
                f"it, or choose another directory"
            )
        old = self.read_manifest()
        for key in ("model", "image_size", "batch", "seed", "hardware", "steps"):
            if old.get(key) != manifest[key]:
                shown = "the layer list" if key == "steps" else f"{key} {old.get(key)!r}"
                mine = "" if key == "steps" else f" (this run: {manifest[key]!r})"
                raise RunDirError(
                    f"run directory {str(self.path)!r} belongs to a different run: {shown}{mine}; "
                    f"choose another directory"
                )
        return True

    def create(self, manifest: dict) -> None:
        """Create the directory and write the manifest."""
        (self.path / LAYER_DIR).mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.manifest_path, manifest)

    def finished(self, steps: list[Step]) -> dict[int, tuple[dict, np.ndarray]]:
        """Records and outputs of the finished steps, checked against ``steps``."""
        done = {}
        for i, step in enumerate(steps):
            record_path = self._layer(i, "json")
            if not record_path.exists():
                continue
            where = f"run directory {str(self.path)!r} is corrupt: layer {i} ({step.name!r})"
            try:
                record = json.loads(record_path.read_text())
            except (OSError, ValueError) as error:
                raise RunDirError(f"{where}: cannot read {record_path.name}: {error}") from None
            if not isinstance(record, dict) or record.get("name") != step.name:
                raise RunDirError(f"{where}: {record_path.name} is not that layer's record")
            try:
                y = np.load(self._layer(i, "npy"), allow_pickle=False)
            except (OSError, ValueError) as error:
                raise RunDirError(f"{where}: cannot read its output {i:04d}.npy: {error}") from None
            want = (tuple(step.shape), np.dtype(np.int32 if step.out == "int32" else np.int8))
            if (y.shape, y.dtype) != want:
                raise RunDirError(f"{where}: output {y.dtype} {y.shape!r}, expected {want[1]} {want[0]!r}")
            done[i] = (record, y)
        return done

    def save(self, index: int, record: dict, y: np.ndarray) -> None:
        """Persist one finished step: its output first, then its record (which marks it finished)."""
        atomic_write(self._layer(index, "npy"), lambda f: np.save(f, y, allow_pickle=False))
        write_json_atomic(self._layer(index, "json"), record)


# --------------------------------------------------------------------------------------------
# execution


@dataclass
class RunResult:
    """What :func:`execute` returns.

    Parameters
    ----------
    records : list of dict
        One per step of the range, in order (resumed ones included, ``"resumed": True``).
    outputs : dict
        Step name → hardware output (of the steps of the range).
    hardware : dict
        The backend's description.
    """

    model: str
    records: list[dict]
    outputs: dict = field(repr=False)
    hardware: dict = field(default_factory=dict)
    session_seconds: float = 0.0

    @property
    def all_bit_exact(self) -> bool:
        return all(r["bit_exact"] for r in self.records)

    def summary(self) -> dict:
        """Totals and the records as one JSON-friendly dict."""
        records = self.records
        total_cycles = sum(r["cycles"] for r in records)
        total_macs = sum(r["macs"] for r in records)
        mm = [r for r in records if r["op"] in ("conv2d", "linear")]
        mm_cycles = sum(r["cycles"] for r in mm)
        peak = self.hardware.get("peak_macs_per_cycle", 0)
        run_seconds = sum(r["run_seconds"] for r in mm)
        return {
            "model": self.model,
            "hardware": self.hardware,
            "all_bit_exact": self.all_bit_exact,
            "layers_run": len(records),
            "total_cycles": total_cycles,
            "total_macs": total_macs,
            "wall_seconds": sum(r["wall_seconds"] for r in records),
            "session_seconds": self.session_seconds,
            "mac_utilization": total_macs / (mm_cycles * peak) if mm_cycles and peak else 0.0,
            "mean_layer_mac_utilization": (sum(r["mac_utilization"] for r in mm) / len(mm)) if mm else 0.0,
            "simulated_macs_per_second": total_macs / run_seconds if run_seconds else 0.0,
            "max_clipped_fraction": max((r["clipped_fraction"] or 0.0 for r in records), default=0.0),
            "layers": records,
        }


def _record(index, step, y, stats, reference, wall) -> dict:
    exact = y.shape == reference.shape and y.dtype == reference.dtype and bool(np.array_equal(y, reference))
    s = stats
    return {
        "index": index,
        "name": step.name,
        "op": step.op,
        "fused": list(step.fused),
        "shape": list(step.shape),
        "out": step.out,
        "bit_exact": bool(exact and (s is None or s.bit_exact)),
        "cycles": int(s.cycles) if s else 0,
        "macs": int(s.macs) if s else 0,
        "expected_macs": step.macs,
        "mac_utilization": float(s.mac_utilization) if s else 0.0,
        "ext_bytes_read": int(s.ext_bytes_read) if s else 0,
        "ext_bytes_written": int(s.ext_bytes_written) if s else 0,
        "noc_flits": int(s.counters.get("noc_flits", 0)) if s else 0,
        "halo_bytes": int(getattr(s, "halo_bytes", 0)) if s else 0,
        "on": s.counters.get("on") if s else None,
        "wall_seconds": float(wall),
        "run_seconds": float(s.wall_seconds) if s else 0.0,
        "simulated_macs_per_second": float(s.simulated_macs_per_second) if s else 0.0,
        "clipped_fraction": step.clipped_fraction,
        "simulator": s.simulator if s else None,
        "build_cached": s.build_cached if s else None,
    }


class _Eta:
    """Remaining time from the finished steps: wall ≈ a + b·MACs (a: per-run fixed cost)."""

    def __init__(self):
        self.samples = []

    def add(self, macs, seconds, ran_hardware):
        if ran_hardware:
            self.samples.append((macs, seconds))

    def estimate(self, remaining: list[Step]) -> float | None:
        if not self.samples:
            return None
        a = min(s for _, s in self.samples)
        macs = sum(m for m, _ in self.samples)
        b = max(0.0, sum(s - a for _, s in self.samples)) / macs if macs else 0.0
        return sum((a if st.op != "flatten" else 0.0) + b * st.macs for st in remaining)


def execute(model: LoweredModel, backend: Backend, *, layers=None, run_dir=None, resume: bool = False,
            manifest: dict | None = None, progress=None) -> RunResult:
    """Run the steps of ``model`` (all, or the range ``layers``) on ``backend``, layer by layer.

    Everything that can be checked is checked before the first simulation: the range, the run
    directory (same model / size / seed / hardware, readable records and outputs), and that the
    backend can run every step of the range.

    Parameters
    ----------
    model : LoweredModel
    backend : Backend
    layers : (int, int), optional
        Step range ``[A, B)``; default all. Steps before ``A`` feed the range with their outputs
        from the run directory if it has them, else with their golden outputs.
    run_dir : path, optional
        Where finished steps are persisted. Without it nothing is written (no resume).
    resume : bool
        Continue the run in ``run_dir``: finished steps are loaded, not run again.
    manifest : dict, optional
        Run identity (``model``, ``image_size``, ``batch``, ``seed``) stored in / checked against
        the run directory; the backend's description and the step names are added.
    progress : callable, optional
        ``progress(done, total, record, eta_seconds)`` after each step (``eta_seconds`` None when
        unknown); an exception it raises stops the run (the finished steps stay persisted).

    Returns
    -------
    RunResult
    """
    t_session = time.perf_counter()
    steps = model.steps
    start, stop = (0, len(steps)) if layers is None else layers
    if not (0 <= start < stop <= len(steps)):
        raise ExecutionError(f"layers {start}:{stop} out of range: the model has {len(steps)} layers")
    todo = steps[start:stop]
    rd = RunDir(run_dir) if run_dir is not None else None
    finished = {}
    if rd is not None:
        full = {"format": RUN_FORMAT, "model": model.name, "image_size": None, "batch": None, "seed": None}
        full.update(manifest or {})
        full["hardware"] = backend.describe()
        full["steps"] = [s.name for s in steps]
        if rd.check(full, resume=resume):
            finished = rd.finished(steps)
    backend.check([s for i, s in enumerate(steps) if start <= i < stop and i not in finished])
    if rd is not None and not rd.exists():
        rd.create(full)

    outputs: dict[str, np.ndarray] = {"input": model.input}
    records = []
    index_of = {s.name: i for i, s in enumerate(steps)}

    def value(name):
        if name in outputs:
            return outputs[name]
        i = index_of[name]
        return finished[i][1] if i in finished else model.reference[name]

    try:
        _run_steps(model, backend, todo, start, finished, rd, outputs, records, value, progress)
    finally:
        backend.close()
    del outputs["input"]
    return RunResult(model.name, records, outputs, backend.describe(), time.perf_counter() - t_session)


def _run_steps(model, backend, todo, start, finished, rd, outputs, records, value, progress):
    eta = _Eta()
    for k, step in enumerate(todo):
        i = start + k
        if i in finished:
            record, y = finished[i]
            record = dict(record, resumed=True)
        else:
            inputs = [value(n) for n in step.inputs]
            t0 = time.perf_counter()
            y, stats = backend.run(step, inputs)
            wall = time.perf_counter() - t0
            record = _record(i, step, y, stats, model.reference[step.name], wall)
            eta.add(step.macs, wall, stats is not None)
            if rd is not None:
                rd.save(i, record, y)
        outputs[step.name] = y
        records.append(record)
        if progress is not None:
            remaining = [s for j, s in enumerate(todo[k + 1:], start=i + 1) if j not in finished]
            progress(k + 1, len(todo), record, eta.estimate(remaining))


def format_eta(seconds) -> str:
    """``m:ss`` (or ``?`` when unknown)."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def prepare(model_name: str, *, image_size=None, batch: int = 1, seed: int = 0):
    """Build, initialize and lower a model: ``(graph, lowered model, manifest)``.

    The input and the weights are synthetic and deterministic in ``seed``
    (:func:`~tilelab.net.lowering.synthetic_input`, :func:`~tilelab.net.models.init_weights`).

    Parameters
    ----------
    model_name : str
        One of :data:`tilelab.net.models.MODELS`.
    image_size : int, optional
        Default: the model's native size.
    batch, seed : int

    Raises
    ------
    ValueError
        Unknown model (the known ones listed), an image size the network cannot take.
    """
    from tilelab.net.lowering import lower, synthetic_input
    from tilelab.net.models import get_model, init_weights

    graph = get_model(model_name, image_size=image_size, batch=batch)
    input_shape = graph.nodes[0].shape
    seed = int(seed)
    lowered = lower(graph, init_weights(graph, seed), synthetic_input(input_shape, seed))
    manifest = {"model": model_name, "image_size": input_shape[1], "batch": input_shape[0], "seed": seed}
    return graph, lowered, manifest
