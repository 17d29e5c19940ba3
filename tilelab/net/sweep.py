"""Design-space sweeps: a grid of networks × image sizes × tiles × meshes, estimated and run.

A sweep spec (TOML) gives lists of values; the points are their cartesian product::

    model = ["resnet18"]          # built-in networks
    image_size = [32]
    num_classes = [10]            # optional: the classifier's outputs (default the model's own)
    [tile]                        # any TileConfig field
    rows = [8, 16]
    cols = [8, 16]
    [mesh]                        # optional: rows, cols, shard, weight_load
    [run]
    rtl = "top:1"                 # "all", "none", "top:N", "pareto"
    seed = 0
    sim = "verilator"

Every point gets the analytical estimate (:func:`tilelab.estimate.estimate_model`); the points
``rtl`` chooses also run through the RTL (:func:`tilelab.net.executor.execute`), as Ray tasks
on ``workers`` workers (:mod:`tilelab.net.parallel`) or one after the other here. ``top:N``
and ``pareto`` choose within each (model, image size): the N lowest estimated cycles, or the
points no other point beats in estimated cycles, array MACs per cycle and L1 bytes at once;
both leave out points with layers the estimate refused (``layers_not_estimated``: layers that
fit no memory of that hardware, whose ``estimated_cycles`` counts only the other layers).

Results go to a JSON file after each point (written atomically); a sweep started again with
the same file continues: points whose results it holds (matched by their parameters) are not
estimated or run again.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from dataclasses import dataclass, fields
from pathlib import Path

__all__ = ["SWEEP_FORMAT", "Sweep", "SweepError", "choose_rtl", "estimate_point", "load_results", "load_spec",
           "pareto_front", "parse_spec", "point_hardware", "point_id", "rtl_point", "run_sweep", "write_csv",
           "write_plot"]

SWEEP_FORMAT = "tilelab-sweep/1"
#: ``[mesh]`` fields.
MESH_FIELDS = ("rows", "cols", "shard", "weight_load")
#: ``[run]`` fields and their defaults.
RUN_DEFAULTS = {"rtl": "none", "seed": 0, "sim": "verilator"}
#: The objectives of ``pareto`` (all minimized) and of the plot.
OBJECTIVES = ("estimated_cycles", "peak_macs_per_cycle", "l1_bytes")


class SweepError(ValueError):
    """A sweep spec that cannot run (named field, value and limit), or a results file of another kind."""


@dataclass(frozen=True)
class Sweep:
    """A parsed spec: its points (parameter dicts, in grid order) and how to run them."""

    points: list
    rtl: str
    seed: int
    sim: str

    def rtl_count(self) -> int | None:
        """N of ``top:N`` (else None)."""
        return int(self.rtl.split(":")[1]) if self.rtl.startswith("top:") else None


def load_spec(path) -> Sweep:
    """Read and check a TOML spec (:func:`parse_spec`)."""
    import tomllib

    try:
        data = tomllib.loads(Path(path).read_text())
    except OSError as error:
        raise SweepError(f"cannot read the sweep spec {str(path)!r}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise SweepError(f"sweep spec {str(path)!r} is not TOML: {error}") from None
    return parse_spec(data)


def _values(where: str, value) -> list:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise SweepError(f"{where} is an empty list: give at least one value")
    return values


def _kind(where, value, kind):
    ok = isinstance(value, bool) if kind is bool else (isinstance(value, kind) and not isinstance(value, bool))
    if not ok:
        raise SweepError(f"{where} must be {'true or false' if kind is bool else kind.__name__ + 's'}, "
                         f"not {value!r}")
    return value


def parse_spec(data: dict) -> Sweep:
    """Check a spec (a dict as ``tomllib`` reads it) and form its points.

    Everything is checked before anything runs: unknown fields, empty lists, values of the
    wrong kind, models that are not built in, image sizes the network cannot take, tiles and
    meshes their configurations refuse, an unknown ``rtl`` choice.

    Raises
    ------
    SweepError
        Naming the field and the value.
    """
    from tilelab.compile.mesh import SHARDS, WEIGHT_LOADS
    from tilelab.net.models import MODELS, get_model
    from tilelab.pe_models.config import TileConfig

    known = {"model", "image_size", "num_classes", "tile", "mesh", "run"}
    for key in data:
        if key not in known:
            raise SweepError(f"unknown sweep field {key!r}; the fields are {', '.join(sorted(known))}")
    if "model" not in data:
        raise SweepError("the sweep spec names no model (model = [\"resnet18\", ...])")
    models = [_kind("model", m, str) for m in _values("model", data["model"])]
    for m in models:
        if m.endswith(".onnx"):
            raise SweepError(f"model {m!r}: sweeps take built-in networks ({', '.join(sorted(MODELS))}); "
                             f"ONNX models are not swept yet")
        if m not in MODELS:
            raise SweepError(f"unknown model {m!r}; known models: {', '.join(sorted(MODELS))}")
    sizes = [None] if "image_size" not in data else [_kind("image_size", v, int)
                                                       for v in _values("image_size", data["image_size"])]
    classes = [None] if "num_classes" not in data else [_kind("num_classes", v, int)
                                                         for v in _values("num_classes", data["num_classes"])]
    tables = {}
    for table, allowed in (("tile", {f.name: f.type for f in fields(TileConfig)}),
                           ("mesh", dict.fromkeys(MESH_FIELDS)), ("run", RUN_DEFAULTS)):
        given = data.get(table, {})
        if not isinstance(given, dict):
            raise SweepError(f"{table} must be a table ([{table}]), not {given!r}")
        for key in given:
            if key not in allowed:
                raise SweepError(f"unknown {table} field {key!r}; the fields are {', '.join(sorted(allowed))}")
        tables[table] = given
    defaults = TileConfig()
    tile_axes = {}
    for key, value in tables["tile"].items():
        kind = type(getattr(defaults, key))
        tile_axes[key] = [_kind(f"tile.{key}", v, kind) for v in _values(f"tile.{key}", value)]
    mesh_axes = {}
    for key, value in tables["mesh"].items():
        kind, choices = (int, None) if key in ("rows", "cols") else (str, SHARDS if key == "shard" else WEIGHT_LOADS)
        mesh_axes[key] = [_kind(f"mesh.{key}", v, kind) for v in _values(f"mesh.{key}", value)]
        for v in mesh_axes[key]:
            if choices is not None and v not in choices:
                raise SweepError(f"mesh.{key} must be one of {', '.join(choices)}, not {v!r}")
    run = dict(RUN_DEFAULTS, **tables["run"])
    rtl = _kind("run.rtl", run["rtl"], str)
    if rtl not in ("all", "none", "pareto") and not _top(rtl):
        raise SweepError(f"run.rtl must be 'all', 'none', 'pareto' or 'top:N' with N >= 1, not {rtl!r}")
    seed = _kind("run.seed", run["seed"], int)
    if seed < 0:
        raise SweepError(f"run.seed must be a non-negative integer, not {seed}")
    sim = _kind("run.sim", run["sim"], str)
    from tilelab.net.backends import MESH_SIMS
    from tilelab.sim import BACKENDS

    if sim not in BACKENDS:
        raise SweepError(f"run.sim must be one of {', '.join(BACKENDS)}, not {sim!r}")

    points = []
    names = list(tile_axes) + [f"mesh.{k}" for k in mesh_axes]
    for model, size, n in itertools.product(models, sizes, classes):
        extra = {} if n is None else {"num_classes": n}
        try:
            graph = get_model(model, image_size=size, **extra)
        except ValueError as error:
            raise SweepError(f"model {model!r}, image_size {size!r}: {error}") from None
        for combo in itertools.product(*tile_axes.values(), *mesh_axes.values()):
            values = dict(zip(names, combo, strict=True))
            tile = {k: values[k] for k in tile_axes}
            mesh = {k: values[f"mesh.{k}"] for k in mesh_axes}
            point = {"model": model, "image_size": graph.nodes[0].shape[1], **extra, "tile": tile, "mesh": mesh}
            where = ", ".join(f"{k} {v!r}" for k, v in values.items()) or "the default tile"
            try:
                config, mesh_config = point_hardware(point)
            except ValueError as error:
                raise SweepError(f"point {len(points)} ({where}): {error}") from None
            if mesh_config is not None and sim not in MESH_SIMS:
                raise SweepError(f"run.sim: a mesh runs on {', '.join(map(repr, MESH_SIMS))}, not {sim!r}")
            points.append(point)
    return Sweep(points=points, rtl=rtl, seed=seed, sim=sim)


def _top(rtl: str) -> bool:
    head, _, n = rtl.partition(":")
    return head == "top" and n.isdigit() and int(n) >= 1


def point_hardware(point: dict):
    """``(TileConfig, MeshConfig or None)`` of a point (``ValueError`` if a configuration refuses it)."""
    from tilelab.pe_models.config import MeshConfig, TileConfig

    config = TileConfig(**point["tile"])
    rows, cols = point["mesh"].get("rows", 1), point["mesh"].get("cols", 1)
    if (rows, cols) == (1, 1):
        return config, None
    return config, MeshConfig(rows=rows, cols=cols, tile=config, eltwise=True)


def point_id(point: dict) -> str:
    """A point's identity in a results file: a digest of its parameters."""
    return hashlib.sha256(json.dumps(point, sort_keys=True).encode()).hexdigest()[:16]


def _shards(point):
    from tilelab.estimate.model import MESH_SHARDS

    mesh = point["mesh"]
    if "shard" not in mesh and "weight_load" not in mesh:
        return None
    return tuple((s, w) for s, w in MESH_SHARDS if s == mesh.get("shard", s) and w == mesh.get("weight_load", w)) \
        or ((mesh.get("shard", "height"), mesh.get("weight_load", "multicast")),)


def estimate_point(point: dict) -> dict:
    """The estimate's totals for one point (``estimated_cycles`` and what the plot and CSV show)."""
    from tilelab.estimate import estimate_model

    config, mesh = point_hardware(point)
    est = estimate_model(point["model"], image_size=point["image_size"], config=config, mesh=mesh,
                         shards=_shards(point), num_classes=point.get("num_classes"))
    s = est.summary()
    tiles = mesh.tiles if mesh is not None else 1
    return {"estimated_cycles": s["total_cycles"], "macs": s["total_macs"],
            "estimated_mac_utilization": s["mac_utilization"],
            "estimated_ext_bytes_read": sum(r.ext_bytes_read for r in est.layers),
            "estimated_ext_bytes_written": sum(r.ext_bytes_written for r in est.layers),
            "layers_not_estimated": len(s["layers_not_estimated"]),
            "peak_macs_per_cycle": tiles * config.peak_macs_per_cycle, "l1_bytes": tiles * config.l1_bytes}


def rtl_point(backend_of, point: dict, seed: int, sim: str) -> dict:
    """Run one point's network through the RTL; its totals (``rtl_cycles``, ``bit_exact``, ...).

    ``backend_of(backend)`` returns the backend to use for that hardware (a worker's kept one).
    A network the hardware cannot take gives ``rtl_error`` instead.
    """
    from tilelab.net.backends import ExecutionError, make_backend
    from tilelab.net.executor import execute, prepare

    config, mesh = point_hardware(point)
    shape = (1, 1) if mesh is None else (mesh.rows, mesh.cols)
    t0 = time.perf_counter()
    try:
        backend = backend_of(make_backend(shape, config=config, sim=sim))
        shards = _shards(point)
        if shards is not None:
            backend.shards = shards
        _, lowered, _ = prepare(point["model"], image_size=point["image_size"], seed=seed,
                                num_classes=point.get("num_classes"))
        s = execute(lowered, backend).summary()
    except ExecutionError as error:
        return {"rtl_error": str(error)}
    return {"rtl_cycles": s["total_cycles"], "bit_exact": s["all_bit_exact"],
            "rtl_mac_utilization": s["mac_utilization"],
            "rtl_ext_bytes_read": sum(r["ext_bytes_read"] for r in s["layers"]),
            "rtl_ext_bytes_written": sum(r["ext_bytes_written"] for r in s["layers"]),
            "rtl_seconds": time.perf_counter() - t0}


def pareto_front(rows: list[dict], keys=OBJECTIVES) -> list[int]:
    """Indices of the rows no other row beats (≤ in every key, < in one), all keys minimized."""
    front = []
    for i, a in enumerate(rows):
        if not any(all(b[k] <= a[k] for k in keys) and any(b[k] < a[k] for k in keys)
                   for j, b in enumerate(rows) if j != i):
            front.append(i)
    return front


def choose_rtl(sweep: Sweep, points: list[dict]) -> set[int]:
    """Indices of the points ``sweep.rtl`` sends through the RTL (``points`` carry their estimates)."""
    if sweep.rtl == "none":
        return set()
    if sweep.rtl == "all":
        return set(range(len(points)))
    groups = {}
    for i, p in enumerate(points):
        groups.setdefault((p["model"], p["image_size"]), []).append(i)
    chosen = set()
    for members in groups.values():
        # a point with layers the estimate refused (they fit no memory of its hardware) cannot run
        members = [i for i in members if not points[i]["layers_not_estimated"]]
        if sweep.rtl == "pareto":
            chosen.update(members[k] for k in pareto_front([points[i] for i in members]))
        else:
            chosen.update(sorted(members, key=lambda i: (points[i]["estimated_cycles"], i))[:sweep.rtl_count()])
    return chosen


def load_results(json_file) -> dict:
    """The points of an earlier sweep's results file by id (none if it does not exist).

    Raises
    ------
    SweepError
        For a file that exists and is not a sweep's results.
    """
    path = Path(json_file)
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise SweepError(f"--json {str(json_file)!r} exists but is not readable JSON ({error}); "
                         f"name another file") from None
    if not isinstance(data, dict) or data.get("format") != SWEEP_FORMAT:
        raise SweepError(f"--json {str(json_file)!r} exists and is not a {SWEEP_FORMAT!r} results file; "
                         f"name another file")
    return {p["id"]: p for p in data.get("points", []) if isinstance(p, dict) and "id" in p}


def run_sweep(sweep: Sweep, json_file, *, workers: int | None = None, ray_address: str | None = None,
              progress=None) -> dict:
    """Estimate every point, run the chosen ones on the RTL, write ``json_file`` as points finish.

    Parameters
    ----------
    sweep : Sweep
    json_file : path
        The results; if it holds results of earlier points (a sweep that was interrupted), they
        are kept and those points are not estimated or run again.
    workers : int, optional
        Run the RTL points as Ray tasks on this many workers; default one after the other here.
    ray_address : str, optional
        As :func:`tilelab.net.executor.execute`.
    progress : callable, optional
        ``progress(phase, done, total, point)`` after each point of each phase (``"estimate"``,
        ``"rtl"``); ``point["reused"]`` is True for one taken from the results file.

    Returns
    -------
    dict
        The results (what the JSON holds): ``format``, ``rtl``, ``seed``, ``sim``, ``points``.
    """
    from tilelab.net.executor import write_json_atomic

    old = load_results(json_file)
    points = []
    for i, params in enumerate(sweep.points):
        pid = point_id(params)
        kept = old.get(pid, {})
        points.append(dict(kept, index=i, id=pid, **params))
    results = {"format": SWEEP_FORMAT, "rtl": sweep.rtl, "seed": sweep.seed, "sim": sweep.sim, "points": points}

    def save():
        write_json_atomic(json_file, results)

    for i, p in enumerate(points):
        reused = "estimated_cycles" in p
        if not reused:
            p.update(estimate_point(sweep.points[i]))
            save()
        if progress is not None:
            progress("estimate", i + 1, len(points), dict(p, reused=reused))
    chosen = sorted(choose_rtl(sweep, points))
    for i, p in enumerate(points):
        p["rtl"] = i in chosen
    save()
    todo = [i for i in chosen if "rtl_cycles" not in points[i] and "rtl_error" not in points[i]]
    done = 0
    for i in chosen:
        if i not in todo:
            done += 1
            if progress is not None:
                progress("rtl", done, len(chosen), dict(points[i], reused=True))

    def finish(i, result):
        nonlocal done
        points[i].update(result)
        save()
        done += 1
        if progress is not None:
            progress("rtl", done, len(chosen), dict(points[i], reused=False))

    if todo and workers is None:
        for i in todo:
            finish(i, rtl_point(lambda backend: backend, sweep.points[i], sweep.seed, sweep.sim))
    elif todo:
        from tilelab.net.parallel import WorkerPool, ray_session

        # the points of one design after another, so a worker keeps reusing its build
        order = sorted(todo, key=lambda i: (json.dumps(sweep.points[i]["tile"], sort_keys=True), i))
        with ray_session(workers, ray_address) as ray:
            pool = WorkerPool(ray, workers)
            try:
                tasks = [(i, "call", (rtl_point, sweep.points[i], sweep.seed, sweep.sim)) for i in order]
                for i, result in pool.map(tasks):
                    finish(i, result)
            finally:
                pool.close()
    return results


def _flat(point: dict) -> dict:
    row = {"index": point["index"], "model": point["model"], "image_size": point["image_size"]}
    if "num_classes" in point:
        row["num_classes"] = point["num_classes"]
    row.update({f"tile.{k}": v for k, v in point["tile"].items()})
    row.update({f"mesh.{k}": v for k, v in point["mesh"].items()})
    skip = {"index", "id", "model", "image_size", "num_classes", "tile", "mesh"}
    row.update({k: v for k, v in point.items() if k not in skip})
    return row


#: The result columns of the CSV, in order (parameter columns come first).
RESULT_COLUMNS = ("estimated_cycles", "macs", "estimated_mac_utilization", "estimated_ext_bytes_read",
                  "estimated_ext_bytes_written", "layers_not_estimated", "peak_macs_per_cycle", "l1_bytes", "rtl",
                  "rtl_cycles", "bit_exact", "rtl_mac_utilization", "rtl_ext_bytes_read", "rtl_ext_bytes_written",
                  "rtl_seconds", "rtl_error")


def write_csv(results: dict, path) -> None:
    """One row per point: its parameters, then :data:`RESULT_COLUMNS` (empty where a point has none)."""
    import csv
    import io

    rows = [_flat(p) for p in results["points"]]
    params = list(dict.fromkeys(k for r in rows for k in r if k not in RESULT_COLUMNS))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=params + list(RESULT_COLUMNS), restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    from tilelab.net.executor import atomic_write

    atomic_write(Path(path), lambda f: f.write(buf.getvalue().encode()))


def write_plot(results: dict, path) -> None:
    """Cycles (RTL where run, else estimated) against array MACs per cycle, L1 bytes as colour;
    the Pareto front of each (model, image size) joined by a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = results["points"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    groups = {}
    for p in points:
        groups.setdefault((p["model"], p["image_size"]), []).append(p)
    markers = "osD^v<>"
    for k, ((model, size), members) in enumerate(groups.items()):
        cycles = [p.get("rtl_cycles", p["estimated_cycles"]) for p in members]
        sc = ax.scatter([p["peak_macs_per_cycle"] for p in members], cycles, c=[p["l1_bytes"] for p in members],
                        marker=markers[k % len(markers)], cmap="viridis", label=f"{model} {size}x{size}")
        front = sorted((members[i] for i in pareto_front(members)), key=lambda p: p["peak_macs_per_cycle"])
        ax.plot([p["peak_macs_per_cycle"] for p in front], [p.get("rtl_cycles", p["estimated_cycles"])
                                                           for p in front], "-", color="C3", lw=1)
    fig.colorbar(sc, ax=ax, label="L1 bytes")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("array MACs per cycle (all tiles)")
    ax.set_ylabel("cycles (RTL where run, else estimated)")
    ax.set_title("design sweep: Pareto front (cycles, MACs, L1 bytes)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
