"""``tilelab sweep``: a grid of design points, estimated, the best run on the RTL, on Ray."""

from __future__ import annotations

import sys
import time

import click

from tilelab.cli.options import BadInput, Int, check_inputs_outputs, plot_suffixes


class _Progress:
    """One line rewritten in place on a terminal; a log line per point otherwise."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.t0 = time.perf_counter()

    def __call__(self, phase, done, total, point):
        hw = ",".join(f"{k}={v}" for k, v in point["tile"].items()) or "default tile"
        if point["mesh"]:
            hw += " mesh " + ",".join(f"{k}={v}" for k, v in point["mesh"].items())
        if phase == "estimate":
            what = f"{point['estimated_cycles']:,} cyc (estimate)"
        elif "rtl_error" in point:
            what = "refused: " + point["rtl_error"][:60]
        else:
            what = f"{point['rtl_cycles']:,} cyc {'bit-exact' if point['bit_exact'] else 'MISMATCH'}"
        filled = round(24 * done / total) if total else 24
        line = (f"{phase:<8} [{'#' * filled}{'.' * (24 - filled)}] {done:>4}/{total} {point['model']} "
                f"{point['image_size']} {hw}: {what}{' (kept)' if point.get('reused') else ''} "
                f"{time.perf_counter() - self.t0:7.1f}s")
        if self.tty:
            self.stream.write("\r\033[K" + line + ("\n" if done == total else ""))
            self.stream.flush()
        else:
            click.echo(line, err=True)


@click.command("sweep")
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--json", "json_file", type=click.Path(dir_okay=False), required=True,
              help="The results, written as points finish; an existing results file is continued.")
@click.option("--csv", "csv_file", type=click.Path(dir_okay=False), default=None, help="Also one row per point.")
@click.option("--plot", "plot_file", type=click.Path(dir_okay=False), default=None,
              help="Also a plot of the Pareto front (cycles against array MACs, L1 bytes as colour).")
@click.option("--workers", type=Int(lo=1), default=None,
              help="Run the RTL points as Ray tasks on N workers [default: one after the other here].")
@click.option("--ray-address", default=None,
              help="The Ray cluster for --workers (ray.init(address=...)) [default: a local Ray with N CPUs].")
def command(spec, json_file, csv_file, plot_file, workers, ray_address):
    """Estimate every design point of SPEC (a TOML grid) and run the chosen ones on the RTL.

    SPEC lists values per field (model, image_size, [tile] fields, [mesh] rows/cols/shard/
    weight_load); the points are every combination. [run] rtl = "all", "none", "top:N" (the N
    best by the estimate, per model and image size) or "pareto" says which points also run on
    the RTL. An interrupted sweep continues from its --json file.
    """
    from tilelab.net.backends import ExecutionError
    from tilelab.net.sweep import SweepError, load_results, load_spec, run_sweep, write_csv, write_plot

    if ray_address is not None and workers is None:
        raise BadInput("--ray-address is for --workers: give the number of workers to run on the cluster")
    check_inputs_outputs({"SPEC": spec}, {"--json": json_file, "--csv": csv_file, "--plot": plot_file},
                         {"--json": (".json",), "--csv": (".csv",), "--plot": plot_suffixes()})
    try:
        sweep = load_spec(spec)
        load_results(json_file)
        click.echo(f"{spec}: {len(sweep.points)} points, rtl {sweep.rtl!r} ({sweep.sim})"
                   + (f" on {workers} Ray workers" if workers else ""), err=True)
        results = run_sweep(sweep, json_file, workers=workers, ray_address=ray_address, progress=_Progress())
    except (SweepError, ExecutionError) as error:
        raise BadInput(str(error)) from None
    points = results["points"]
    rtl = [p for p in points if p["rtl"]]
    bad = [p["index"] for p in rtl if p.get("bit_exact") is False]
    refused = [p["index"] for p in rtl if "rtl_error" in p]
    if csv_file:
        write_csv(results, csv_file)
    if plot_file:
        write_plot(results, plot_file)
    best = min(points, key=lambda p: (p["layers_not_estimated"] > 0, p["estimated_cycles"]))
    click.echo(f"{len(points)} points estimated, {len(rtl)} on the RTL"
               + (f" ({len(rtl) - len(bad) - len(refused)} bit-exact" + (f", {len(bad)} NOT bit-exact" if bad else "")
                  + (f", {len(refused)} refused" if refused else "") + ")" if rtl else "")
               + f"; fewest estimated cycles: point {best['index']} ({best['estimated_cycles']:,})")
    click.echo("wrote " + ", ".join(f for f in (json_file, csv_file, plot_file) if f))
    if bad:
        click.echo(f"not bit-exact: points {', '.join(map(str, bad))}", err=True)
        sys.exit(1)
