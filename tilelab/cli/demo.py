"""``tilelab demo``: a first look — the MAC array and a conv layer in RTL, checked against numpy."""

from __future__ import annotations

import click

from tilelab.cli.options import SEED, SIM_CHOICES, Int, check_simulator


@click.command("demo")
@click.option("--rows", type=Int(), default=8, show_default=True, help="MAC array rows")
@click.option("--cols", type=Int(), default=8, show_default=True, help="MAC array columns")
@click.option("--sim", "backend", type=click.Choice(SIM_CHOICES), default="verilator",
              show_default=True, help="simulator")
@click.option("--seed", type=SEED, default=0, show_default=True, help="random seed")
def command(rows, cols, backend, seed):
    """Run int8 blocks through the MAC array and a conv layer through the compute tile, vs numpy."""
    import numpy as np

    from tilelab.api.conv import Requant, conv2d
    from tilelab.hdl.mac import MACArray
    from tilelab.pe_models.config import DEFAULT_TILE
    from tilelab.reference import golden
    from tilelab.sim import simulate
    from tilelab.sim.mac_check import mac_array_bench
    from tilelab.sim.speed import format_table, measure

    for name, value in (("rows", rows), ("cols", cols)):
        try:  # the MAC array's and the tile's limits, before anything is built
            MACArray(**{name: value} | {"rows" if name == "cols" else "cols": 8})
            DEFAULT_TILE.replace(**{name: value})
        except (TypeError, ValueError) as error:
            raise click.BadParameter(str(error), param_hint=f"'--{name}'") from None
    check_simulator("--sim", backend)
    ks = [rows, 3 * rows, 1, 2 * rows + 1]
    click.echo(f"1. MAC array {rows}x{cols} on {backend}: {len(ks)} int8 blocks (k = {ks}) vs numpy ...")
    r = simulate(MACArray(rows=rows, cols=cols), mac_array_bench, backend=backend, name="mac_array",
                 args={"rows": rows, "cols": cols, "ks": ks, "seed": seed})
    click.echo(f"   bit-exact: {r.value['rows_checked']} output rows match numpy "
               f"({r.value['macs']} MACs, build {'cached' if r.build_cached else 'new'})")

    cfg = DEFAULT_TILE.replace(rows=rows, cols=cols) if backend != "amaranth" else DEFAULT_TILE.replace(
        rows=rows, cols=cols, ext_words=4096, act_lane_bytes=2048, wgt_lane_bytes=2048, param_lane_bytes=512)
    rng = np.random.default_rng(seed)
    shape = (1, 16, 16, 32) if backend != "amaranth" else (1, 6, 6, 8)
    x = rng.integers(-128, 128, shape, dtype=np.int8)
    w = rng.integers(-128, 128, (2 * shape[3], 3, 3, shape[3]), dtype=np.int8)
    b = rng.integers(-1000, 1000, w.shape[0], dtype=np.int32)
    acc = golden.conv2d(x, w, b, stride=1, padding=1)
    m, s = golden.choose_requant(acc)
    click.echo(f"2. conv 3x3 {shape} -> {w.shape[0]} channels, int8 + ReLU, on a {rows}x{cols} tile ({backend}) ...")
    y, st = conv2d(x, w, b, padding=1, requant=Requant(m, s, 0), activation="relu", config=cfg, sim=backend)
    click.echo(f"   bit-exact: {'yes' if st.bit_exact else 'NO'}; {st.cycles:,} cycles, {st.macs:,} MACs, "
               f"utilization {100 * st.mac_utilization:.1f} %, {st.simulated_macs_per_second / 1e6:.1f} M MAC/s")
    if backend == "verilator":
        click.echo("3. simulator speed with Python idle (autonomous LFSR load on the MAC array):")
        recs = [measure(m, rows, cols) for m in ("tilelab-fast", "cpp-ceiling")]
        for rec in recs:
            rec.ratio_to_ceiling = rec.macs_per_second / recs[1].macs_per_second
        click.echo(format_table(recs))
    if not st.bit_exact:
        raise SystemExit(1)
