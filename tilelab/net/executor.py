"""Run a lowered model layer by layer on the simulated hardware, check every layer, persist, resume.

:func:`execute` takes a :class:`~tilelab.net.lowering.LoweredModel` and a backend that runs one
step on the hardware. Each step gets the *hardware* outputs of the steps it reads (steps before
the requested range, if any, take their golden outputs), and its output is compared bit for bit
with the golden output of the whole chain (:attr:`LoweredModel.reference`) and, by the runtime,
with the golden op on the same inputs. Per-step records go to a run directory as they finish,
each written atomically (temporary file + rename), so an interrupted run continues from the last
finished step with ``resume=True``.

Backends (:class:`~tilelab.net.backends.Backend`) are pluggable: :mod:`tilelab.net.backends` has
one tile and a mesh of tiles. ``flatten`` has no arithmetic: the NHWC output is read as
``(N, H·W·C)`` and the step costs no cycles.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tilelab.net.backends import Backend, ExecutionError
from tilelab.net.lowering import LoweredModel, Step

__all__ = ["RunDirError", "RunResult", "atomic_write", "execute", "format_eta", "output_digest", "parse_layers",
           "prepare", "write_json_atomic"]

RUN_FORMAT = "tilelab-run/1"
MANIFEST = "run.json"
LAYER_DIR = "layers"


class RunDirError(ExecutionError):
    """The run directory belongs to another run, or is corrupt."""


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


def output_digest(y: np.ndarray) -> str:
    """SHA-256 of an output's dtype, shape and bytes: what a layer record stores of its ``.npy``."""
    h = hashlib.sha256(f"{y.dtype.str} {tuple(y.shape)}".encode())
    h.update(np.ascontiguousarray(y).tobytes())
    return h.hexdigest()


class RunDir:
    """A run directory: ``run.json`` (the manifest), ``layers/NNNN.json`` + ``layers/NNNN.npy``.

    A layer counts as finished when its record (written last) exists; every file is written to a
    temporary name and renamed, so no file is ever half-written. Each record holds the digest of
    its output (``output_sha256``); a stored output that no longer matches it is not trusted:
    :meth:`finished` leaves that layer out (so it is run again) and lists it in :attr:`changed`.
    """

    def __init__(self, path):
        self.path = Path(path)
        #: ``(index, file name)`` of each stored output :meth:`finished` found changed on disk.
        self.changed: list[tuple[int, str]] = []

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
            digest = record.get("output_sha256")
            if digest is not None and digest != output_digest(y):
                self.changed.append((i, f"{LAYER_DIR}/{i:04d}.npy"))
                continue
            done[i] = (record, y)
        return done

    def save(self, index: int, record: dict, y: np.ndarray) -> None:
        """Persist one finished step: its output first, then its record (which marks it finished)."""
        atomic_write(self._layer(index, "npy"), lambda f: np.save(f, y, allow_pickle=False))
        write_json_atomic(self._layer(index, "json"), dict(record, output_sha256=output_digest(y)))


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
            manifest: dict | None = None, progress=None, warn=None, workers: int | None = None,
            ray_address: str | None = None) -> RunResult:
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
    warn : callable, optional
        ``warn(message)`` for each stored output of the run directory that no longer matches its
        record's digest (changed on disk): that step is run again (or, before the range, takes its
        golden output) instead of feeding the later steps a changed tensor.
    workers : int, optional
        Run the steps as Ray tasks on this many workers (:mod:`tilelab.net.parallel`): each step
        starts from the golden outputs of its predecessors, so records, outputs and
        ``all_bit_exact`` are those of the serial run; steps are persisted as they finish (in any
        order) and resume skips them alike. Default: one step after the other in this process.
    ray_address : str, optional
        The Ray cluster to run on (``ray.init(address=...)``); default a local Ray with
        ``workers`` CPUs (or the one already running).

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
            for i, name in rd.changed:
                if warn is not None:
                    warn(f"run directory {str(rd.path)!r}: the stored output {name} of layer {i} "
                         f"({steps[i].name!r}) no longer matches its record; "
                         + ("running the layer again" if start <= i < stop else "using its golden output"))
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
        if workers is None:
            _run_steps(model, backend, todo, start, finished, rd, outputs, records, value, progress)
        else:
            _run_steps_parallel(model, backend, todo, start, finished, rd, outputs, records, progress,
                                workers, ray_address)
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


def _run_steps_parallel(model, backend, todo, start, finished, rd, outputs, records, progress, workers,
                        ray_address):
    """As :func:`_run_steps`, with the unfinished steps as Ray tasks fed golden inputs, longest first."""
    from tilelab.net.parallel import WorkerPool, ray_session

    by_index = {i: (dict(finished[i][0], resumed=True), finished[i][1])
                for i in range(start, start + len(todo)) if i in finished}
    eta = _Eta()
    done = 0

    def report(i):
        nonlocal done
        done += 1
        if progress is not None:
            remaining = [s for j, s in enumerate(todo, start=start) if j not in by_index]
            left = eta.estimate(remaining)
            progress(done, len(todo), by_index[i][0], None if left is None else left / workers)

    for i in sorted(by_index):
        report(i)
    todo_run = [(start + k, s) for k, s in enumerate(todo) if start + k not in by_index]
    if todo_run:
        with ray_session(workers, ray_address) as ray:
            pool = WorkerPool(ray, workers)
            try:
                stored, refs = {"input": model.input, **model.reference}, {}

                def golden(name):  # each golden tensor goes to the object store once
                    if name not in refs:
                        refs[name] = ray.put(stored[name])
                    return refs[name]

                shared = ray.put(backend)
                tasks = [(i, "run_step", (shared, step, *[golden(n) for n in step.inputs]))
                         for i, step in sorted(todo_run, key=lambda t: -t[1].macs)]
                for i, (y, stats, wall) in pool.map(tasks):
                    step = model.steps[i]
                    record = _record(i, step, y, stats, model.reference[step.name], wall)
                    eta.add(step.macs, wall, stats is not None)
                    if rd is not None:
                        rd.save(i, record, y)
                    by_index[i] = (record, y)
                    report(i)
            finally:
                pool.close()
    for i in sorted(by_index):
        record, y = by_index[i]
        outputs[model.steps[i].name] = y
        records.append(record)


def format_eta(seconds) -> str:
    """``m:ss`` (or ``?`` when unknown)."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def prepare(model_name: str, *, image_size=None, batch: int = 1, seed: int = 0, num_classes: int | None = None):
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
    num_classes : int, optional
        Outputs of the classifier (default the model's own, 1000); recorded in the manifest
        when given.

    Raises
    ------
    ValueError
        Unknown model (the known ones listed), an image size the network cannot take.
    """
    from tilelab.net.lowering import lower, synthetic_input
    from tilelab.net.models import get_model, init_weights

    extra = {} if num_classes is None else {"num_classes": num_classes}
    graph = get_model(model_name, image_size=image_size, batch=batch, **extra)
    input_shape = graph.nodes[0].shape
    seed = int(seed)
    lowered = lower(graph, init_weights(graph, seed), synthetic_input(input_shape, seed))
    manifest = {"model": model_name, "image_size": input_shape[1], "batch": input_shape[0], "seed": seed, **extra}
    return graph, lowered, manifest
