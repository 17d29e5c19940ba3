"""``tilelab conv``: run one conv layer on the simulated tile and report."""

from __future__ import annotations

import json
import sys

import click
import numpy as np

from tilelab.cli.options import (
    SEED,
    SIM_CHOICES,
    BadInput,
    Int,
    check_input_fits,
    check_inputs_outputs,
    check_simulator,
    given,
    ints,
    plot_suffixes,
    refuse_unless,
    tile_config,
    tile_fields_given,
)


def _pair(text, name, lo=None):
    vals = ints(text, name, count=(1, 2), lo=lo, what="integers (N or H,W)")
    return vals[0] if len(vals) == 1 else tuple(vals)


def _load(path, what):
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
    except FileNotFoundError:
        raise click.BadParameter(f"{path!r} is not a valid .npy file (no such file)", param_hint=what) from None
    except OSError as exc:
        raise click.BadParameter(f"{path!r} cannot be read ({exc.strerror})", param_hint=what) from None
    if magic != b"\x93NUMPY":
        raise click.BadParameter(f"{path!r} is not a valid .npy file (it does not start with the .npy header)",
                                 param_hint=what)
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise click.BadParameter(f"{path!r} is not a valid .npy file ({exc})", param_hint=what) from None
    if not isinstance(arr, np.ndarray):
        raise click.BadParameter(f"{path!r} holds no single array", param_hint=what)
    return arr


def _requant(text, cout):
    from tilelab.api.conv import Requant

    if text.endswith(".npz"):
        try:
            with np.load(text, allow_pickle=False) as z:
                m, s = z["multiplier"], z["shift"]
                zp = z["zero_point"] if "zero_point" in z else np.int64(0)
        except (OSError, ValueError, KeyError, EOFError) as exc:
            raise click.BadParameter(f"{text!r}: need an .npz with arrays 'multiplier', 'shift' (and optionally "
                                     f"'zero_point') ({exc})", param_hint="--requant") from None
        for name, arr in (("multiplier", m), ("shift", s)):
            if arr.shape not in ((), (cout,)):
                raise click.BadParameter(f"{name} in {text!r} has shape {arr.shape!r}; expected () or ({cout},)",
                                         param_hint="--requant")
        for name, arr in (("multiplier", m), ("shift", s), ("zero_point", zp)):
            if arr.dtype.kind not in "iu":
                raise click.BadParameter(f"{name} in {text!r} has dtype {str(arr.dtype)!r}; expected integers",
                                         param_hint="--requant")
        if zp.shape != ():
            raise click.BadParameter(f"zero_point in {text!r} has shape {zp.shape!r}; expected () (one zero point "
                                     f"for the tensor)", param_hint="--requant")
        return Requant(m.astype(np.int64), s.astype(np.int64), int(zp))
    m, s, zp = ints(text, "--requant", count=3)
    return Requant(m, s, zp)


@click.command("conv")
@click.option("--input", "input_path", type=click.Path(dir_okay=False), help="NHWC int8 input (.npy)")
@click.option("--weights", "weights_path", type=click.Path(dir_okay=False), help="OHWI int8 weights (.npy)")
@click.option("--bias", "bias_path", type=click.Path(dir_okay=False), help="int32 bias (.npy, Cout)")
@click.option("--shape", help="random input N,H,W,C (instead of --input)")
@click.option("--out-channels", type=Int(lo=1), help="random weights: Cout (with --kernel)")
@click.option("--kernel", help="random weights: K or KH,KW")
@click.option("--seed", type=SEED, default=0, show_default=True, help="seed of random tensors")
@click.option("--stride", default="1", show_default=True, help="N or H,W")
@click.option("--padding", default="0", show_default=True, help="N or H,W (zero padding, symmetric)")
@click.option("--dilation", default="1", show_default=True, help="N or H,W")
@click.option("--groups", type=Int(lo=1), default=1, show_default=True)
@click.option("--out", "out_type", type=click.Choice(["int8", "int32"]), default="int32", show_default=True)
@click.option("--requant", help="int8 output: M,SHIFT,ZERO_POINT or an .npz with per-channel arrays")
@click.option("--relu", is_flag=True, help="ReLU after requantization (int8)")
@click.option("--sim", type=click.Choice(SIM_CHOICES), default="verilator", show_default=True)
@click.option("--rows", type=Int(), help="MAC array rows (default: the default tile)")
@click.option("--cols", type=Int(), help="MAC array columns")
@click.option("--tile", "tile_fields", help="tile configuration fields, e.g. rows=8,cols=8,ext_bytes=16 "
              "(see TileConfig)")
@click.option("--waves", type=click.Path(dir_okay=False), help="waveform file (.fst/.vcd)")
@click.option("--save", type=click.Path(dir_okay=False), help="save the RTL output (.npy format, to exactly this path)")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="write the statistics as JSON")
@click.option("--mesh", help="run on a mesh of RxC tiles (e.g. 2x2) instead of one tile")
@click.option("--shard", type=click.Choice(["height", "width", "block"]), default="height", show_default=True,
              help="mesh: how the layer is split over the tiles")
@click.option("--weight-load", type=click.Choice(["stream", "multicast"]), default="multicast", show_default=True,
              help="mesh: weights streamed to every tile, or read once and multicast")
@click.option("--plot", type=click.Path(dir_okay=False), help="mesh: link-utilization heatmap (.png)")
def command(input_path, weights_path, bias_path, shape, out_channels, kernel, seed, stride, padding, dilation, groups,
            out_type, requant, relu, sim, rows, cols, tile_fields, waves, save, json_path, mesh, shard, weight_load,
            plot):
    """Run one conv layer through the RTL tile (or a mesh of tiles), compare with numpy, print a report.

    Exit status 1 when the RTL output is not bit-exact.
    """
    from tilelab.api.conv import conv2d
    from tilelab.compile.tile import LayoutError
    from tilelab.pe_models.config import DEFAULT_TILE
    from tilelab.reference import golden

    ctx = click.get_current_context()
    # Everything the user gave is checked before any tensor is made, any build or simulation.
    if input_path and shape:
        raise BadInput("--shape contradicts --input: the input's shape is the file's; give one of them")
    if not input_path and not shape:
        raise click.UsageError("give --input X.npy or --shape N,H,W,C")
    if weights_path:
        for name in ("out_channels", "kernel"):
            if given(ctx, name):
                raise BadInput(f"--{name.replace('_', '-')} contradicts --weights: the weights' shape is the "
                               f"file's; give one of them")
    elif not (out_channels and kernel):
        raise click.UsageError("give --weights W.npy or --out-channels and --kernel")
    refuse_unless(ctx, not (input_path and weights_path), ["seed"],
                  "has no effect: the input and the weights come from files (and the bias from --bias or none)")
    refuse_unless(ctx, bool(mesh), ["shard", "weight_load"], "applies to a --mesh run only")
    if plot and not mesh:
        raise click.UsageError("--plot draws the NoC links of a --mesh run")
    if out_type != "int8" and (requant or relu):
        raise click.UsageError("--requant and --relu apply to --out int8")
    for name in ("rows", "cols"):
        if given(ctx, name) and name in tile_fields_given(tile_fields):
            raise BadInput(f"--{name} contradicts --tile {name}=...: give the array size once")
    config = DEFAULT_TILE
    for name, value in (("rows", rows), ("cols", cols)):
        if value is not None:
            try:
                config = config.replace(**{name: value})
            except (TypeError, ValueError) as exc:
                raise click.BadParameter(str(exc), param_hint=f"'--{name}'") from None
    if tile_fields:
        config = tile_config(config, tile_fields)
    mesh_shape = None
    if mesh:
        from tilelab.api.mesh import parse_mesh

        try:
            mesh_shape = parse_mesh(mesh)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="'--mesh'") from None
    kwargs = dict(stride=_pair(stride, "--stride"), padding=_pair(padding, "--padding"),
                  dilation=_pair(dilation, "--dilation"), groups=groups)
    check_simulator("--sim", sim, waves)
    check_inputs_outputs({"--input": input_path, "--weights": weights_path, "--bias": bias_path,
                          "--requant": requant if requant and requant.endswith(".npz") else None},
                         {"--save": save, "--json": json_path, "--waves": waves, "--plot": plot},
                         suffixes={"--plot": plot_suffixes()} if plot else None)

    capacity, where = config.ext_words * config.ext_bytes, "the external memory of the tile"
    if mesh_shape is not None:
        capacity *= mesh_shape[0] * mesh_shape[1]
        where = f"the node memories of the {mesh_shape[0]}x{mesh_shape[1]} mesh"
    rng = np.random.default_rng(seed)
    if input_path:
        x = _load(input_path, "--input")
    else:
        n, h, w, c = ints(shape, "--shape", count=4, lo=1)
        check_input_fits("--shape", (n, h, w, c), capacity, where)
        x = rng.integers(-128, 128, (n, h, w, c), dtype=np.int8)
    if weights_path:
        wt = _load(weights_path, "--weights")
    else:
        k = _pair(kernel, "--kernel", lo=1)
        kh, kw = (k, k) if isinstance(k, int) else k
        cin = x.shape[-1] if x.ndim == 4 else 1
        if cin % groups:
            raise click.BadParameter(f"input channels {cin} not divisible by groups {groups}", param_hint="--groups")
        check_input_fits("--out-channels/--kernel", (out_channels, kh, kw, cin // groups), capacity, where)
        wt = rng.integers(-128, 128, (out_channels, kh, kw, cin // groups), dtype=np.int8)
    bias = _load(bias_path, "--bias") if bias_path else rng.integers(-1000, 1000, wt.shape[0], dtype=np.int32) \
        if not weights_path else None

    rq = None
    if out_type == "int8":
        if requant:
            rq = _requant(requant, wt.shape[0])
        else:
            from tilelab.api.conv import Requant

            try:
                acc = golden.conv2d(x, wt, bias, **kwargs)
            except (TypeError, ValueError) as exc:
                raise click.UsageError(str(exc)) from None
            m, s = golden.choose_requant(acc)
            rq = Requant(m, s, 0)
    try:
        if mesh:
            from tilelab.api.mesh import conv2d_mesh
            from tilelab.pe_models.config import MeshConfig

            mr, mc = mesh_shape
            y, stats = conv2d_mesh(x, wt, bias, requant=rq, activation="relu" if relu else None, out=out_type,
                                   mesh=MeshConfig(rows=mr, cols=mc, tile=config), shard=shard,
                                   weight_load=weight_load, sim=sim, waves=waves, **kwargs)
        else:
            y, stats = conv2d(x, wt, bias, requant=rq, activation="relu" if relu else None, out=out_type,
                              config=config, sim=sim, waves=waves, **kwargs)
    except (TypeError, ValueError, LayoutError) as exc:
        raise click.UsageError(str(exc)) from None
    if save:
        with open(save, "wb") as f:  # exactly the path given (np.save on a name would add ".npy")
            np.save(f, y, allow_pickle=False)
    spec_line = f"{tuple(x.shape)} * {tuple(wt.shape)} -> {tuple(y.shape)} {out_type}"
    where = f"{config.rows}x{config.cols} tile"
    if mesh:
        where = f"{stats.mesh} mesh of {where}s, {stats.shard} sharding, {stats.weight_load} weights"
    click.echo(f"conv {spec_line} on {where}, {sim}")
    click.echo(f"  bit-exact vs numpy : {'yes' if stats.bit_exact else 'NO'}")
    click.echo(f"  cycles             : {stats.cycles:,}")
    click.echo(f"  MACs               : {stats.macs:,} (peak {stats.peak_macs_per_cycle}/cycle)")
    click.echo(f"  MAC utilization    : {100 * stats.mac_utilization:.1f} %")
    click.echo(f"  external bytes     : {stats.ext_bytes_read:,} read, {stats.ext_bytes_written:,} written")
    click.echo(f"  simulation         : {stats.wall_seconds:.2f} s, "
               f"{stats.simulated_macs_per_second / 1e6:.1f} M MAC/s")
    if mesh:
        click.echo(f"  halo bytes         : {stats.halo_bytes:,}")
        click.echo(f"  NoC flits on links : {stats.noc_flits:,}")
        utils = [t["tile.macs"] / max(1, stats.cycles * config.peak_macs_per_cycle) for t in stats.tiles]
        click.echo(f"  per-tile MAC util. : {100 * min(utils):.1f} .. {100 * max(utils):.1f} %")
        if plot:
            from tilelab.net.mesh_plot import plot_link_heatmap

            plot_link_heatmap(stats, plot)
            click.echo(f"  link heatmap       : {plot}")
    if json_path:
        with open(json_path, "w") as f:
            json.dump(stats.as_dict(), f, indent=2)
    if not stats.bit_exact:
        sys.exit(1)
