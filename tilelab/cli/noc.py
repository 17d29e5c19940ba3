"""``tilelab noc``: traffic, load sweeps, multicast and all-reduce on the simulated mesh NoC."""

import json

import click

from tilelab.cli.options import SIM_CHOICES, check_inputs_outputs, check_simulator, plot_suffixes
from tilelab.noc import api

__all__ = ["command"]

_BACKEND = click.option("--backend", type=click.Choice(SIM_CHOICES), default="verilator",
                        show_default=True, help="Simulator.")


def _emit(result, json_file, lines):
    for line in lines:
        click.echo(line)
    if json_file:
        with open(json_file, "w") as f:
            json.dump(result, f, indent=2)
        click.echo(f"wrote {json_file}")


def _checks_line(c):
    return (f"injected {c['injected']} delivered {c['delivered']} lost {c['lost']} duplicated {c['duplicated']} "
            f"misrouted {c['misrouted']} reordered or corrupt {c['reordered_or_corrupt']}")


def _call(fn, outputs=None, **kwargs):
    check_simulator("--backend", kwargs["backend"])
    check_inputs_outputs({}, outputs or {},
                         {"--plot": plot_suffixes()} if (outputs or {}).get("--plot") else None)
    try:
        return fn(**kwargs)
    except api.NocError as exc:
        raise click.UsageError(str(exc)) from None


@click.group("noc")
def command():
    """Mesh network-on-chip: XY routers, rectangle multicast, in-network all-reduce."""


@command.command("traffic")
@click.option("--mesh", default="8x8", show_default=True, help="ROWSxCOLS.")
@click.option("--pattern", default="uniform", show_default=True, help=", ".join(api.PATTERNS))
@click.option("--rate", type=float, default=0.1, show_default=True, help="Offered flits/node/cycle, in (0, 1].")
@click.option("--packets", type=int, default=1000, show_default=True, help="Packets over the whole mesh.")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--flits", "packet_flits", type=int, default=1, show_default=True, help="Flits per packet.")
@click.option("--source-stall", type=float, default=0.0, show_default=True)
@click.option("--sink-stall", type=float, default=0.0, show_default=True)
@click.option("--json", "json_file", type=click.Path(dir_okay=False), help="Write the result as JSON.")
@_BACKEND
def traffic(mesh, pattern, rate, packets, seed, packet_flits, source_stall, sink_stall, json_file, backend):
    """Bernoulli traffic with RTL generators and per-flow checkers."""
    r = _call(api.traffic, {"--json": json_file}, mesh=mesh, pattern=pattern, rate=rate, packets=packets, seed=seed,
              packet_flits=packet_flits, source_stall=source_stall, sink_stall=sink_stall, backend=backend)
    lat = "n/a" if r["avg_latency"] is None else f"{r['avg_latency']:.2f}"
    _emit(r, json_file, [
        f"{r['mesh']} {r['pattern']} rate {r['rate']}: injected {r['injected']} delivered {r['delivered']} "
        f"lost {r['lost']} duplicated {r['duplicated']} reordered {r['reordered']}",
        f"latency avg {lat} p99 {r['p99_latency']} max {r['max_latency']} cycles; "
        f"offered {r['offered_rate']:.4f} accepted {r['accepted_rate']:.4f} flits/node/cycle",
    ])
    if r["lost"] or r["duplicated"] or r["reordered"] or r["corrupt"] or r["misrouted"]:
        raise SystemExit(1)


@command.command("sweep")
@click.option("--mesh", default="8x8", show_default=True)
@click.option("--pattern", default="uniform", show_default=True, help=", ".join(api.PATTERNS))
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--warmup", type=int, default=1000, show_default=True)
@click.option("--measure", type=int, default=2000, show_default=True)
@click.option("--json", "json_file", type=click.Path(dir_okay=False))
@click.option("--plot", "plot_file", type=click.Path(dir_okay=False), help="Latency-load curve (PNG).")
@_BACKEND
def sweep(mesh, pattern, seed, warmup, measure, json_file, plot_file, backend):
    """Latency against offered load up to saturation."""
    r = _call(api.sweep, {"--json": json_file, "--plot": plot_file}, mesh=mesh, pattern=pattern, seed=seed,
              warmup=warmup, measure=measure, backend=backend)
    lines = [f"{'offered':>8} {'accepted':>8} {'avg lat':>8} {'p99':>6}  ok"]
    for q in r["points"]:
        avg = "-" if q["avg_latency"] is None else f"{q['avg_latency']:.1f}"
        lines.append(f"{q['offered_rate']:8.3f} {q['accepted_rate']:8.3f} {avg:>8} {q['p99_latency']!s:>6}  "
                     f"{'yes' if q['ok'] else 'no'}")
    sat = r["saturation_throughput"]
    lines.append(f"zero-load latency {r['zero_load_latency']:.2f} cycles; saturation throughput "
                 f"{sat if sat is None else round(sat, 4)} flits/node/cycle")
    if plot_file:
        api.plot_sweeps([r], plot_file)
        lines.append(f"wrote {plot_file}")
    _emit(r, json_file, lines)


@command.command("multicast")
@click.option("--mesh", default="8x8", show_default=True)
@click.option("--rect", default=None, help="x0,y0,x1,y1 (default: the whole mesh).")
@click.option("--src", default="0,0", show_default=True, help="x,y")
@click.option("--flits", type=int, default=64, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--json", "json_file", type=click.Path(dir_okay=False))
@_BACKEND
def multicast(mesh, rect, src, flits, seed, json_file, backend):
    """Multicast to a rectangle, forked in the routers."""
    r = _call(api.multicast, {"--json": json_file}, mesh=mesh, rect=rect, src=src, flits=flits, seed=seed,
              backend=backend)
    _emit(r, json_file, [
        f"{r['mesh']} multicast {r['flits']} flits from {tuple(r['src'])} to {tuple(r['rect'])}: "
        f"{r['cycles']} cycles, bit_exact {r['bit_exact']}, {r['destinations']} destinations, "
        f"min rate {r['min_rate']:.3f} flits/cycle",
        _checks_line(r["checks"]),
    ])
    if not r["bit_exact"]:
        raise SystemExit(1)


@command.command("reduce")
@click.option("--mesh", default="8x8", show_default=True)
@click.option("--op", type=click.Choice(["sum", "max"]), default="sum", show_default=True)
@click.option("--flits", type=int, default=16, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--lanes", type=int, default=4, show_default=True, help="int32 lanes per flit.")
@click.option("--json", "json_file", type=click.Path(dir_okay=False))
@_BACKEND
def reduce(mesh, op, flits, seed, lanes, json_file, backend):
    """All-reduce (row, column, broadcast back) computed in the routers."""
    r = _call(api.reduce, {"--json": json_file}, mesh=mesh, op=op, flits=flits, seed=seed, lanes=lanes, backend=backend)
    _emit(r, json_file, [
        f"{r['mesh']} all-reduce {r['op']} of {r['flits']} flits x {r['lanes']} lanes: {r['cycles']} cycles, "
        f"bit_exact {r['bit_exact']}",
        _checks_line(r["checks"]),
    ])
    if not r["bit_exact"]:
        raise SystemExit(1)
