"""``tilelab run``: a whole CNN layer by layer through the RTL, bit-exact, with resume and reports."""

from __future__ import annotations

import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import click

from tilelab.cli.options import (
    SEED,
    SIM_CHOICES,
    BadInput,
    Int,
    check_input_fits,
    check_inputs_outputs,
    check_run_dir,
    check_simulator,
)
from tilelab.net.models import MODELS


def _bar(done, total, width=24):
    filled = round(width * done / total) if total else width
    return "#" * filled + "." * (width - filled)


@click.command("run")
@click.argument("model")
@click.option("--image-size", type=Int(lo=1), default=None, help="Input height/width [default: the model's own].")
@click.option("--batch", type=Int(lo=1), default=1, show_default=True,
              help="Input batch (an ONNX model: fixes a symbolic batch).")
@click.option("--mesh", default="1x1", show_default=True,
              help="Tiles RxC: 1x1 is one tile; a larger mesh shards each conv/fc layer over its tiles.")
@click.option("--tile", "tile_fields", default=None,
              help="Tile configuration fields, e.g. rows=16,cols=16,ext_bytes=32 [default: the default tile].")
@click.option("--layers", default=None, help="Run steps A:B only (0-based, B exclusive; see the step list).")
@click.option("--seed", type=SEED, default=0, show_default=True,
              help="Seed of the synthetic weights and input.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Run directory [default: runs/MODEL-SIZE-sSEED].")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last finished layer.")
@click.option("--json", "json_file", type=click.Path(dir_okay=False), default=None,
              help="Also write the summary JSON here.")
@click.option("--sim", type=click.Choice([*SIM_CHOICES, "golden"]), default="verilator",
              show_default=True, help="Simulator ('golden': an ONNX model on the numpy golden model, no hardware).")
@click.option("--plots/--no-plots", default=True, show_default=True, help="Write the PNG plots.")
@click.option("--input", "input_file", type=click.Path(dir_okay=False), default=None,
              help="ONNX model: its input .npy in the model's own layout and dtype [default: seeded random].")
@click.option("--save", type=click.Path(dir_okay=False), default=None,
              help="ONNX model: write its output .npy (shape and dtype as onnxruntime returns it).")
@click.option("--workers", type=Int(lo=1), default=None,
              help="Run the layers as Ray tasks on N workers (each from its predecessors' golden outputs) "
                   "[default: one layer after the other in this process].")
@click.option("--ray-address", default=None,
              help="The Ray cluster for --workers (ray.init(address=...)) [default: a local Ray with N CPUs].")
@click.option("--estimate", is_flag=True,
              help="Put tilelab estimate's cycles beside the measured ones: the records, stats.csv, estimate.png.")
def command(model, image_size, batch, mesh, tile_fields, layers, seed, out_dir, resume, json_file, sim, plots,
            input_file, save, workers, ray_address, estimate):
    """Compile MODEL, run it layer by layer on the simulated hardware and check every layer.

    MODEL is a built-in model or a quantized ONNX model (a path ending in .onnx).

    Batch norms are folded into their convs (inference), ReLUs into the requantization; each
    conv/linear runs on the compute tile, each pool/add/relu on the element-wise unit; every
    layer's output is compared bit for bit with the numpy golden model. Writes stats.json,
    stats.csv, utilization.png and roofline.png (with --estimate also estimate.png) into the run
    directory; exits with status 1 if any layer is not bit-exact.
    """
    from tilelab.api.mesh import parse_mesh
    from tilelab.cli.options import tile_config
    from tilelab.compile.mesh import MeshError
    from tilelab.net.backends import ExecutionError, make_backend
    from tilelab.net.executor import RunDirError, execute, format_eta, parse_layers, prepare
    from tilelab.net.lowering import LoweringError
    from tilelab.net.report import write_reports
    from tilelab.pe_models.config import DEFAULT_TILE

    if ray_address is not None and workers is None:
        raise BadInput("--ray-address is for --workers: give the number of workers to run on the cluster")
    if estimate and sim == "golden":
        raise BadInput("--estimate compares the estimate with simulated cycles, and --sim golden simulates none")
    if model.endswith(".onnx"):
        from tilelab.net.onnx.cli import run_onnx

        check_simulator("--sim", sim)
        if out_dir is not None:
            check_run_dir("--out", out_dir)
            _json_outside(json_file, out_dir)
        check_inputs_outputs({"MODEL": model, "--input": input_file}, {"--save": save, "--json": json_file})

        given = click.get_current_context().get_parameter_source("batch") != click.core.ParameterSource.DEFAULT
        return run_onnx(model, input_file=input_file, save=save, batch=batch if given else None,
                        image_size=image_size, mesh=mesh, tile_fields=tile_fields, layers=layers, seed=seed,
                        out_dir=out_dir, resume=resume, json_file=json_file, sim=sim, plots=plots,
                        workers=workers, ray_address=ray_address, estimate=estimate)
    if input_file is not None or save is not None or sim == "golden":
        raise click.BadParameter("--input, --save and --sim golden are for ONNX models (MODEL ending in .onnx)",
                                 param_hint="'MODEL'")
    if model not in MODELS:
        raise click.BadParameter(f"unknown model {model!r}; known models: {', '.join(sorted(MODELS))}",
                                 param_hint="'MODEL'")
    config = DEFAULT_TILE if tile_fields is None else tile_config(DEFAULT_TILE, tile_fields)
    try:
        backend = make_backend(parse_mesh(mesh), config=config, sim=sim)
    except (ExecutionError, MeshError) as error:
        raise click.BadParameter(str(error), param_hint="'--mesh'") from None
    check_simulator("--sim", sim)
    if out_dir is not None:
        check_run_dir("--out", out_dir)
        _json_outside(json_file, out_dir)
    check_inputs_outputs({}, {"--json": json_file})
    from tilelab.net.models import get_model

    try:
        shape = get_model(model, image_size=image_size, batch=batch).nodes[0].shape
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="'--image-size'") from None
    tiles = getattr(backend, "mesh", None)
    tiles = 1 if tiles is None else tiles.rows * tiles.cols
    check_input_fits("--image-size" if image_size is not None else "MODEL", shape, tiles * config.ext_words *
                     config.ext_bytes, "the external memory of the tile" if tiles == 1 else
                     f"the node memories of the {tiles} tiles")
    try:
        _, lowered, manifest = prepare(model, image_size=image_size, batch=batch, seed=seed)
    except LoweringError as error:
        raise click.ClickException(str(error)) from None
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="'--image-size'") from None
    try:
        span = parse_layers(layers, len(lowered.steps))
    except ExecutionError as error:
        raise click.BadParameter(str(error), param_hint="'--layers'") from None
    if out_dir is None:
        out_dir = f"runs/{model}-{manifest['image_size']}-s{seed}"
        check_run_dir("--out", out_dir)
    _json_outside(json_file, out_dir)
    if resume and not (Path(out_dir) / "run.json").exists():
        raise BadInput(f"--resume: {str(out_dir)!r} holds no run to resume (no run.json); run without --resume "
                       f"to start one")
    steps = lowered.steps
    click.echo(f"{model}: image {manifest['image_size']}x{manifest['image_size']}, batch {manifest['batch']}, "
               f"seed {seed}; {len(steps)} layers, running {span[0]}:{span[1]} on "
               f"{_hardware(backend)} ({sim}"
               + (f", {workers} Ray workers" if workers else "") + f"); run directory {out_dir}", err=True)
    def progress(done, total, record, eta):
        mark = "resumed" if record.get("resumed") else ("bit-exact" if record["bit_exact"] else "MISMATCH")
        line = (f"[{_bar(done, total)}] {done:>3}/{total} {record['name']:<24.24} {record['op']:<15} {mark:<9} "
                f"{record['cycles']:>9} cyc {100 * record['mac_utilization']:5.1f}% "
                f"{record['wall_seconds']:6.2f}s ETA {format_eta(eta)}")
        click.echo(line, err=True)

    t0 = time.perf_counter()
    fresh = not (Path(out_dir) / "run.json").exists()
    existed = Path(out_dir).exists()
    created = Path(out_dir)  # the outermost folder this run creates (removed if it finishes no layer)
    while not created.parent.exists():
        created = created.parent
    previous = _exit_on_sigterm()
    try:
        result = execute(lowered, backend, layers=span, run_dir=out_dir, resume=resume, manifest=manifest,
                         progress=progress, warn=lambda message: click.echo(f"warning: {message}", err=True),
                         workers=workers, ray_address=ray_address)
    except RunDirError as error:  # a refused or corrupt run directory: exit status 1
        _forget_unstarted(out_dir, fresh, existed, created)
        raise click.ClickException(str(error)) from None
    except ExecutionError as error:  # hardware that cannot take a layer of the model: bad input
        _forget_unstarted(out_dir, fresh, existed, created)
        raise BadInput(str(error)) from None
    except BaseException:  # Ctrl-C, a kill (SIGTERM), a crash
        _forget_unstarted(out_dir, fresh, existed, created)
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    summary = dict(manifest, **result.summary())
    summary.update({"layer_range": list(span), "sim": sim, "run_dir": str(out_dir),
                    "fc_output": _fc_output(steps)})
    summary["session_seconds"] = time.perf_counter() - t0
    if estimate:
        report_estimate(summary, steps, backend)
    write_reports(summary, out_dir, json_file=json_file, plots=plots)
    bad = [r["name"] for r in summary["layers"] if not r["bit_exact"]]
    click.echo(
        f"{len(summary['layers'])} layers, {'all bit-exact' if not bad else f'{len(bad)} NOT bit-exact'}; "
        f"{summary['total_cycles']:,} cycles, {summary['total_macs']:,} MACs, "
        f"MAC utilization {100 * summary['mac_utilization']:.1f}%, "
        f"{summary['simulated_macs_per_second'] / 1e6:.1f} M simulated MAC/s, "
        f"{summary['wall_seconds']:.1f} s in layers; max clipped {100 * summary['max_clipped_fraction']:.3f}%"
    )
    click.echo(f"wrote {out_dir}/stats.json, stats.csv" + (", utilization.png, roofline.png" if plots else "")
               + (", estimate.png" if plots and estimate else ""))
    if bad:
        click.echo(f"not bit-exact: {', '.join(bad)}", err=True)
        sys.exit(1)


def report_estimate(summary, steps, backend):
    """``--estimate``: the estimate beside every record (:func:`tilelab.estimate.model.add_estimates`)
    and one line on stderr with the totals and the largest error."""
    from tilelab.estimate.model import add_estimates

    add_estimates(summary, steps, backend.config, mesh=getattr(backend, "mesh", None))
    e = summary["estimate"]
    if not e["layers"]:
        click.echo("estimate: no layer of the run has a model", err=True)
        return
    click.echo(f"estimate: {e['layers']} layers, {e['estimated_cycles']:,} cycles estimated vs "
               f"{e['measured_cycles']:,} measured ({100 * e['error']:+.2f} %); largest error "
               f"{e['worst_layer']} ({100 * e['worst_error']:+.2f} %)", err=True)


def _exit_on_sigterm():
    """Turn SIGTERM into ``SystemExit`` (so a killed run cleans up like Ctrl-C); the old handler."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    return signal.signal(signal.SIGTERM, stop)


def _json_outside(json_file, out_dir):
    if json_file is not None and Path(out_dir).resolve() in Path(json_file).resolve().parents:
        raise BadInput(f"--json {str(json_file)!r} is inside the run directory {str(out_dir)!r}, which tilelab "
                       f"writes (its stats.json holds the same summary); name a file outside it")


def _forget_unstarted(out_dir, fresh, existed, created):
    """A run that this call started and that finished no layer leaves nothing behind."""
    path = Path(out_dir)
    if not fresh or any((path / "layers").glob("*.json")):
        return
    if existed:
        for name in ("run.json", "layers"):
            target = path / name
            if target.is_dir():
                shutil.rmtree(target, ignore_errors=True)
            elif target.exists():
                target.unlink()
    else:
        shutil.rmtree(created, ignore_errors=True)


def _fc_output(steps):
    last = [s for s in steps if s.op == "linear"]
    return last[-1].out if last else None


def _hardware(backend):
    tile = f"{backend.config.rows}x{backend.config.cols}"
    mesh = getattr(backend, "mesh", None)
    return f"a {mesh.rows}x{mesh.cols} mesh of {tile} tiles" if mesh is not None else f"one {tile} tile"
