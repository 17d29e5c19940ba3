"""ResNet-50 layer shapes sharded over a mesh of tiles: height vs block sharding, stream vs multicast.

Usage: python benchmarks/mesh_layers.py [--mesh 4x4] [--tile rows=8,cols=8,...] [--size S]
       [--layers NAME ...] [--json out.json] [--png out.png]

For each layer (ResNet-50 channels and kernels, spatial size scaled to ``--size`` so the 16 tiles'
shards stay small; stride-2 layers get twice that) and each of the four choices, the layer runs
through the RTL on Verilator, is checked bit-exact against numpy, and is reported with cycles, MAC
utilization, external bytes read, NoC flits on router-to-router links, halo bytes and simulated
MAC/s, plus that speed's ratio to the plain C++ Verilator loop of a bare MAC array with as many MACs
as the whole mesh (the sim-speed benchmark's ceiling). A layer none of whose choices fits node
memory at ``--size`` (every node holds the whole input and output maps' address ranges) runs at
half the size, and so on down to 8; the table's ``size`` column says which. A choice the layer
cannot use (a channel slice that is not whole NoC words, shard counts that do not divide) is
reported with the reason.
Goals: ≥ 85 % utilization on the 3×3 and 1×1 layers with the better choice; simulated MAC/s ≥ 50 %
of the ceiling.
"""

import argparse
import json
import math
import sys
import time

import numpy as np

from tilelab.api.conv import Requant
from tilelab.api.mesh import conv2d_mesh, parse_mesh
from tilelab.compile.mesh import MeshError
from tilelab.compile.tile import LayoutError
from tilelab.pe_models.config import MeshConfig, TileConfig
from tilelab.reference import golden
from tilelab.sim.speed import measure

# name, Cin, Cout, kernel, stride, padding (ResNet-50 v1 layers, one of each kind)
LAYERS = [
    ("res2_1x1_64", 64, 64, 1, 1, 0),
    ("res2_3x3_64", 64, 64, 3, 1, 1),
    ("res2_1x1_256", 64, 256, 1, 1, 0),
    ("res3_1x1_s2", 256, 128, 1, 2, 0),
    ("res3_3x3_128", 128, 128, 3, 1, 1),
    ("res4_3x3_256", 256, 256, 3, 1, 1),
    ("res5_1x1_2048", 512, 2048, 1, 1, 0),
]
CHOICES = [(s, wl) for s in ("height", "block") for wl in ("stream", "multicast")]
#: The tile of the benchmark mesh: the single tile's 32x32 array with a 32-byte port and 8 MiB of
#: node memory; 16 of them make 16384 MACs. Each node's control (queues, address generators, pack,
#: data mover, routers) costs about the same per cycle whatever the array size, so the simulated
#: MAC/s of a mesh follows its MACs per node: with 8x8 tiles the control, not the arrays, sets the
#: speed (``--tile rows=8,cols=8,...`` measures that).
BENCH_TILE = TileConfig(rows=32, cols=32, ext_bytes=32, ext_words=1 << 18, act_lane_bytes=16384,
                        wgt_lane_bytes=16384, param_lane_bytes=1024, out_entries=64)


def _tile(text):
    if not text:
        return BENCH_TILE
    changes = {}
    for item in text.split(","):
        key, _, value = item.partition("=")
        changes[key.strip()] = int(value, 0)
    return BENCH_TILE.replace(**changes)


def plot(records, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = list(dict.fromkeys(r["layer"] for r in records))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    width = 0.8 / len(CHOICES)
    for k, (shard, wl) in enumerate(CHOICES):
        get = {r["layer"]: r for r in records if r["shard"] == shard and r["weight_load"] == wl and r["ok"]}
        xs = [i + (k - 1.5) * width for i in range(len(layers))]
        for ax, key, scale in ((axes[0], "mac_utilization", 100), (axes[1], "ext_bytes_read", 1 / 1024),
                               (axes[2], "noc_flits", 1 / 1000)):
            ax.bar(xs, [get[name][key] * scale if name in get else 0 for name in layers], width,
                   label=f"{shard} / {wl}")
    for ax, title in zip(axes, ("MAC utilization (%)", "external bytes read (KiB)", "NoC link flits (k)"),
                         strict=True):
        ax.set_xticks(range(len(layers)), layers, rotation=35, ha="right", fontsize=8)
        ax.set_title(title)
    axes[0].axhline(85, color="k", lw=0.8, ls="--")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_layer(rng, config, ceiling, name, cin, cout, k, s, p, size):
    """Run one layer at output size ``size`` with every choice; one record per choice."""
    h = size * s
    x = rng.integers(-128, 128, (1, h, h, cin), dtype=np.int8)
    w = rng.integers(-128, 128, (cout, k, k, cin), dtype=np.int8)
    b = rng.integers(-1000, 1000, cout, dtype=np.int32)
    m, sh = golden.choose_requant(golden.conv2d(x, w, b, stride=s, padding=p))
    records = []
    for shard, wl in CHOICES:
        rec = {"layer": name, "size": size, "input": [1, h, h, cin], "cout": cout, "kernel": k, "stride": s,
               "shard": shard, "weight_load": wl}
        t = time.perf_counter()
        try:
            _, st = conv2d_mesh(x, w, b, stride=s, padding=p, requant=Requant(m, sh, 0), activation="relu",
                                mesh=config, shard=shard, weight_load=wl)
        except (MeshError, LayoutError) as exc:
            rec.update(ok=False, reason=str(exc))
            records.append(rec)
            print(f"  {name:14s} {shard:6s} {wl:9s} n/a: {exc}", file=sys.stderr)
            continue
        rec.update(ok=True, bit_exact=st.bit_exact, cycles=st.cycles, macs=st.macs,
                   mac_utilization=st.mac_utilization, ext_bytes_read=st.ext_bytes_read,
                   noc_flits=st.noc_flits, halo_bytes=st.halo_bytes, wall_seconds=st.wall_seconds,
                   simulated_macs_per_second=st.simulated_macs_per_second,
                   ratio_to_ceiling=st.simulated_macs_per_second / ceiling, total_seconds=time.perf_counter() - t)
        records.append(rec)
        print(f"  {name:14s} {shard:6s} {wl:9s} {'ok' if st.bit_exact else 'MISMATCH'} "
              f"util {100 * st.mac_utilization:5.1f} %", file=sys.stderr)
    return records


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mesh", default="4x4")
    ap.add_argument("--tile", help="tile fields to change, e.g. rows=4,cols=4")
    ap.add_argument("--size", type=int, default=112,
                    help="output height and width of each layer (per-tile work grows with it: at 112 each of "
                         "16 tiles gets 784 output pixels, 24.5 passes of a 32-row array; at 28 it gets 49 "
                         "and measures mostly fill and drain)")
    ap.add_argument("--layers", nargs="*", help="only these layer names")
    ap.add_argument("--json", default="mesh_layers.json")
    ap.add_argument("--png", default="mesh_layers.png")
    args = ap.parse_args(argv)
    rows, cols = parse_mesh(args.mesh)
    tile = _tile(args.tile)
    config = MeshConfig(rows=rows, cols=cols, tile=tile)
    side = int(math.isqrt(config.tiles * tile.peak_macs_per_cycle))
    ceiling = measure("cpp-ceiling", side, config.tiles * tile.peak_macs_per_cycle // side).macs_per_second
    print(f"mesh {rows}x{cols} of {tile.rows}x{tile.cols} tiles; C++ ceiling of a bare {side}x"
          f"{config.tiles * tile.peak_macs_per_cycle // side} MAC array: {ceiling / 1e6:.1f} M MAC/s", file=sys.stderr)
    rng = np.random.default_rng(0)
    records = []
    for name, cin, cout, k, s, p in LAYERS:
        if args.layers and name not in args.layers:
            continue
        size = args.size
        while True:
            layer = run_layer(rng, config, ceiling, name, cin, cout, k, s, p, size)
            if size <= 8 or any(r["ok"] or "node memory" not in r["reason"] for r in layer):
                break
            print(f"  {name}: no choice fits node memory at size {size}; trying {size // 2}", file=sys.stderr)
            size //= 2
        records += layer

    hdr = (f"{'layer':14s} {'size':>4s} {'shard':6s} {'weights':9s} {'exact':5s} {'cycles':>9s} {'util':>6s} "
           f"{'ext rd':>9s} "
           f"{'flits':>8s} {'halo':>7s} {'MMAC/s':>7s} {'ceil':>5s}")
    print(hdr)
    print("-" * len(hdr))
    for r in records:
        if not r["ok"]:
            print(f"{r['layer']:14s} {r['size']:4d} {r['shard']:6s} {r['weight_load']:9s} n/a   {r['reason'][:60]}")
            continue
        print(f"{r['layer']:14s} {r['size']:4d} {r['shard']:6s} {r['weight_load']:9s} "
              f"{'yes' if r['bit_exact'] else 'NO':5s} "
              f"{r['cycles']:9d} {100 * r['mac_utilization']:5.1f}% {r['ext_bytes_read']:9d} {r['noc_flits']:8d} "
              f"{r['halo_bytes']:7d} {r['simulated_macs_per_second'] / 1e6:7.1f} {100 * r['ratio_to_ceiling']:4.1f}%")
    best = {}
    for r in records:
        if r["ok"] and r["mac_utilization"] > best.get(r["layer"], {"mac_utilization": -1})["mac_utilization"]:
            best[r["layer"]] = r
    print("best choice per layer: " + ", ".join(f"{n} (size {r['size']}) {r['shard']}/{r['weight_load']} "
                                                f"{100 * r['mac_utilization']:.1f}%" for n, r in best.items()))
    with open(args.json, "w") as f:
        json.dump({"mesh": args.mesh, "tile": tile.key(), "ceiling_macs_per_second": ceiling, "layers": records},
                  f, indent=2)
    plot(records, args.png)
    print(f"wrote {args.json} and {args.png}")
    return 0 if all(r.get("bit_exact", True) for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
