"""``tilelab run model.onnx``: an imported ONNX model through the executor, with the model's own I/O.

Called by :mod:`tilelab.cli.run` for a MODEL path ending in ``.onnx``. The input is ``--input
x.npy`` in the model's own layout and dtype (e.g. NCHW float32) or, without it, a seeded random
input (``zlib.crc32`` of the model name, and of ``--seed`` when not 0); ``--save y.npy`` writes
the model's output as onnxruntime returns it (same shape and dtype; the host-side tail, e.g.
``DequantizeLinear`` / ``Softmax``, computed on the host and reported as not simulated).
Everything is checked before any simulation; bad input exits with status 2, a layer that is not
bit-exact with 1.
"""

from __future__ import annotations

import sys
import time
import zlib

import numpy as np

__all__ = ["run_onnx"]


def _load_input(path, m):
    from tilelab.net.onnx.importer import OnnxError

    try:
        x = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise OnnxError(f"cannot read {str(path)!r} as a .npy array: {error}") from None
    m.to_input(x)                                     # shape / dtype check, before anything runs
    return x


def run_onnx(path, *, input_file=None, save=None, batch=None, image_size=None, mesh="1x1", tile_fields=None,
             layers=None, seed=0, out_dir=None, resume=False, json_file=None, sim="verilator", plots=True, workers=None,
             ray_address=None, estimate=False):
    """Run the ONNX model at ``path`` as ``tilelab run`` does (see the module docstring).

    Raises
    ------
    click.BadParameter, click.ClickException
        Bad input (exit status 2) or a refused run (status 1), before any simulation.
    """
    import click

    from tilelab.api.mesh import parse_mesh
    from tilelab.cli.options import tile_config
    from tilelab.compile.mesh import MeshError
    from tilelab.net.backends import ExecutionError, make_backend
    from tilelab.net.executor import execute, format_eta, parse_layers
    from tilelab.net.onnx.importer import GoldenBackend, OnnxError, load_onnx
    from tilelab.net.report import write_reports
    from tilelab.pe_models.config import DEFAULT_TILE

    if image_size is not None:
        raise click.BadParameter("an ONNX model's input shape is fixed; --image-size does not apply",
                                 param_hint="'--image-size'")
    if batch is not None and batch < 1:
        raise click.BadParameter(f"batch must be a positive integer, not {batch!r}", param_hint="'--batch'")
    try:
        m = load_onnx(path, batch=batch)
    except OnnxError as error:
        raise click.BadParameter(str(error), param_hint="'MODEL'") from None
    try:
        x = _load_input(input_file, m) if input_file is not None else _random_input(m, seed)
    except OnnxError as error:
        raise click.BadParameter(str(error), param_hint="'--input'") from None
    m = m.with_input(x)
    if sim == "golden":
        backend = GoldenBackend()
    else:
        # quantized ONNX models need onnxruntime's requantization in the pack stage
        base = DEFAULT_TILE.replace(float_requant=True)
        config = base if tile_fields is None else tile_config(base, tile_fields)
        try:
            backend = make_backend(parse_mesh(mesh), config=config, sim=sim)
        except (ExecutionError, MeshError) as error:
            raise click.BadParameter(str(error), param_hint="'--mesh'") from None
    try:
        span = parse_layers(layers, len(m.steps))
    except ExecutionError as error:
        raise click.BadParameter(str(error), param_hint="'--layers'") from None
    n, h = m.model_input.shape[0], m.model_input.shape[2]
    manifest = {"model": m.name, "image_size": h, "batch": n, "seed": zlib.crc32(np.ascontiguousarray(x).tobytes()),
                "onnx": m.describe_io()}
    if out_dir is None:
        out_dir = f"runs/{m.name}-onnx-{manifest['seed']:08x}"
    where = "the golden model (no hardware simulated)" if sim == "golden" else f"{backend.name} ({sim})"
    click.echo(f"{m.name}: ONNX input {m.model_input.name!r} {np.dtype(m.model_input.dtype).name} "
               f"{tuple(m.model_input.shape)!r}; {len(m.steps)} layers, running {span[0]}:{span[1]} on {where}; "
               f"run directory {out_dir}", err=True)
    if m.host_tail:
        click.echo(f"host (not simulated): {', '.join(m.host_tail)}", err=True)
    if not m.matches_ort_default:
        click.echo(f"note: onnxruntime's default session of this model differs from its canonical form by up to "
                   f"{m.ort_default_max_diff:g} (float islands it did not fuse); tilelab equals the canonical form",
                   err=True)

    def progress(done, total, record, eta):
        mark = "resumed" if record.get("resumed") else ("bit-exact" if record["bit_exact"] else "MISMATCH")
        click.echo(f"{done:>3}/{total} {record['name']:<24.24} {record['op']:<16} {mark:<9} {record['cycles']:>9} cyc "
                   f"{100 * record['mac_utilization']:5.1f}% {record['wall_seconds']:6.2f}s ETA {format_eta(eta)}",
                   err=True)

    t0 = time.perf_counter()
    try:
        result = execute(m, backend, layers=span, run_dir=out_dir, resume=resume, manifest=manifest,
                         progress=progress, workers=workers, ray_address=ray_address)
    except ExecutionError as error:
        raise click.ClickException(str(error)) from None
    summary = dict(manifest, **result.summary())
    summary.update({"layer_range": list(span), "sim": sim, "run_dir": str(out_dir),
                    "session_seconds": time.perf_counter() - t0})
    if estimate:
        from tilelab.cli.run import report_estimate

        report_estimate(summary, m.steps, backend)
    write_reports(summary, out_dir, json_file=json_file, plots=plots and sim != "golden")  # no cycles to plot
    bad = [r["name"] for r in summary["layers"] if not r["bit_exact"]]
    click.echo(f"{len(summary['layers'])} layers, {'all bit-exact' if not bad else f'{len(bad)} NOT bit-exact'}; "
               f"{summary['total_cycles']:,} cycles, {summary['total_macs']:,} MACs")
    if save is not None:
        if span[1] != len(m.steps) or m.output_step not in result.outputs:
            raise click.BadParameter("--save needs the model's last layer in --layers", param_hint="'--save'")
        y = m.to_output(result.outputs[m.output_step])
        np.save(save, y, allow_pickle=False)
        click.echo(f"wrote {save}: {y.dtype} {tuple(y.shape)!r} (the model's output)")
    if bad:
        click.echo(f"not bit-exact: {', '.join(bad)}", err=True)
        sys.exit(1)


def _random_input(m, seed):
    if not seed:
        return m.random_input()
    from dataclasses import replace

    return replace(m, name=f"{m.name}:{seed}").random_input()
