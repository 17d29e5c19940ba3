"""``tilelab demo``: a first look — the MAC array in Verilator, checked against numpy, with its speed."""

from __future__ import annotations

import click


@click.command("demo")
@click.option("--rows", default=8, show_default=True, help="MAC array rows")
@click.option("--cols", default=8, show_default=True, help="MAC array columns")
@click.option("--sim", "backend", type=click.Choice(["verilator", "icarus", "amaranth"]), default="verilator",
              show_default=True, help="simulator")
@click.option("--seed", default=0, show_default=True, help="random seed")
def command(rows, cols, backend, seed):
    """Run random int8 blocks through the R×C MAC array, compare to numpy, report the speed."""
    from tilelab.hdl.mac import MACArray
    from tilelab.sim import simulate
    from tilelab.sim.mac_check import mac_array_bench
    from tilelab.sim.speed import format_table, measure

    ks = [rows, 3 * rows, 1, 2 * rows + 1]
    click.echo(f"MAC array {rows}x{cols} on {backend}: {len(ks)} int8 blocks (k = {ks}) vs numpy ...")
    r = simulate(MACArray(rows=rows, cols=cols), mac_array_bench, backend=backend, name="mac_array",
                 args={"rows": rows, "cols": cols, "ks": ks, "seed": seed})
    click.echo(f"  bit-exact: {r.value['rows_checked']} output rows match numpy "
               f"({r.value['macs']} MACs, {r.value['cycles']} cycles, build {'cached' if r.build_cached else 'new'})")
    click.echo("speed with Python idle (autonomous LFSR load):")
    recs = [measure(m, rows, cols) for m in ("tilelab-fast", "cpp-ceiling")]
    recs[0].ratio_to_ceiling = recs[0].macs_per_second / recs[1].macs_per_second
    recs[1].ratio_to_ceiling = 1.0
    click.echo(format_table(recs))
