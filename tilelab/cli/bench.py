"""``tilelab bench ...``: the benchmarks, runnable from the command line."""

from __future__ import annotations

import json

import click


def _parse_size(text: str) -> tuple[int, int]:
    try:
        r, c = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"size must look like RxC (e.g. 8x8), not {text!r}", param_hint="'--size'") from None
    if r < 1 or c < 1:
        raise click.BadParameter(f"size must be positive, not {text!r}", param_hint="'--size'")
    return r, c


@click.group("bench")
def command():
    """Run a benchmark; each prints a table and can write JSON."""


@command.command("sim-speed")
@click.option("--size", "sizes", multiple=True, default=("8x8", "32x32"), show_default=True,
              help="MAC array size RxC (repeatable)")
@click.option("--method", "methods", multiple=True, help="restrict to these methods (repeatable); default all")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="write the records as JSON")
def sim_speed(sizes, methods, json_path):
    """Simulated MAC/s of the R×C MAC array under every simulation method vs the C++ ceiling."""
    from tilelab.cli.options import check_inputs_outputs
    from tilelab.sim.speed import METHODS, format_table, run_speed_benchmark

    check_inputs_outputs({}, {"--json": json_path})
    for m in methods:
        if m not in METHODS:
            raise click.BadParameter(f"method must be one of {', '.join(METHODS)}, not {m!r}", param_hint="'--method'")
    from tilelab.hdl.mac import MACArray

    shapes = [_parse_size(s) for s in sizes]
    for rows, cols in shapes:
        try:  # the array's own limits, before anything is built
            MACArray(rows=rows, cols=cols)._MustUse__silence = True     # only its checks are used
        except (TypeError, ValueError) as exc:
            raise click.BadParameter(str(exc), param_hint="'--size'") from None
    records = run_speed_benchmark(shapes, methods or METHODS,
                                  log=lambda s: click.echo(s, err=True))
    click.echo(format_table(records))
    if json_path:
        with open(json_path, "w") as f:
            json.dump([r.as_dict() for r in records], f, indent=2)
        click.echo(f"wrote {json_path}", err=True)
