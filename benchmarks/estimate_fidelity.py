"""The analytical estimate against the RTL: ResNet-50 layer shapes on the default tile, and small layers
on other tile shapes and port widths.

Usage: python benchmarks/estimate_fidelity.py [--json out.json] [--layers NAME ...] [--tiles] [--no-default]

Each layer runs through the RTL on Verilator (checked bit-exact against numpy) and through
``tilelab.estimate.estimate_conv``; the table gives both cycle counts, the estimate's error, the bound
the estimate names and how far the layer is from its physical bound (cycles ÷ max(MACs ÷ R·C,
bytes read ÷ W, bytes written ÷ W)), and the time the estimate took. The ResNet-50 layers are those
of ``benchmarks/conv_layers.py`` (224×224 sizes; res4 / res5 spatial sizes changed to whole tiles).
``--tiles`` adds small layers on 8×8 and 16×16 tiles with 16- and 32-byte ports (one Verilator
build per tile shape). Goal: |error| ≤ 5 % on every layer.
"""

import argparse
import json
import sys
import time

import numpy as np
from conv_layers import LAYERS

from tilelab.api.conv import Requant, conv2d
from tilelab.drive import SimServer, tile_unit
from tilelab.estimate import estimate_conv
from tilelab.pe_models.config import DEFAULT_TILE, TileConfig
from tilelab.reference import golden
from tilelab.reference.layers import Conv2dSpec

#: Largest |estimate - RTL| / RTL the estimate aims at.
GOAL = 0.05


def _tile(rows, cols, ext_bytes):
    return TileConfig(rows=rows, cols=cols, ext_bytes=ext_bytes, ext_words=1 << 16, act_lane_bytes=8192,
                      wgt_lane_bytes=8192, param_lane_bytes=512, out_entries=2 * rows)


#: Other tile shapes and port widths, at small sizes.
TILES = {"8x8-w16": _tile(8, 8, 16), "8x8-w32": _tile(8, 8, 32), "16x16-w16": _tile(16, 16, 16),
         "16x16-w32": _tile(16, 16, 32)}

#: Small layers for --tiles: name, N, H, Cin, Cout, kernel, stride, padding, groups, out.
SMALL = [
    ("3x3-c32", 1, 12, 32, 32, 3, 1, 1, 1, "int8"),
    ("3x3-s2-c24-n2", 2, 11, 24, 40, 3, 2, 1, 1, "int8"),
    ("1x1-c64-int32", 1, 10, 64, 48, 1, 1, 0, 1, "int32"),
    ("7x7-s2-c3", 1, 20, 3, 16, 7, 2, 3, 1, "int8"),
    ("1x1-cin4", 1, 8, 4, 40, 1, 1, 0, 1, "int8"),
    ("dw-3x3-c64", 1, 12, 64, 64, 3, 1, 1, 64, "int8"),
    ("dw-3x3-s2-c48-int32", 1, 11, 48, 48, 3, 2, 1, 48, "int32"),
]


def _layer(rng, n, h, cin, cout, k, s, p, g, out):
    x = rng.integers(-128, 128, (n, h, h, cin), dtype=np.int8)
    w = rng.integers(-128, 128, (cout, k, k, cin // g), dtype=np.int8)
    b = rng.integers(-1000, 1000, cout, dtype=np.int32)
    rq = None
    if out == "int8":
        m, sh = golden.choose_requant(golden.conv2d(x, w, b, stride=s, padding=p, groups=g))
        rq = Requant(m, sh, 0)
    return x, w, b, rq


def _run(name, config, tile_name, layer, rng, server):
    n, h, cin, cout, k, s, p, g, out = layer
    x, w, b, rq = _layer(rng, n, h, cin, cout, k, s, p, g, out)
    spec = Conv2dSpec.from_tensors(x, w, b, stride=s, padding=p, groups=g)
    t = time.perf_counter()
    est = estimate_conv(spec, config, out=out)
    est_seconds = time.perf_counter() - t
    _, st = conv2d(x, w, b, stride=s, padding=p, groups=g, requant=rq, activation="relu" if rq else None, out=out,
                   config=config, server=server)
    error = (est.cycles - st.cycles) / st.cycles
    rec = {"tile": tile_name, "layer": name, "input": [n, h, h, cin], "kernel": k, "stride": s, "cout": cout,
           "groups": g, "out": out, "bit_exact": st.bit_exact, "rtl_cycles": st.cycles, "estimate_cycles": est.cycles,
           "error": error, "bound": est.bound, "rtl_utilization": st.mac_utilization,
           "estimate_utilization": est.mac_utilization, "physical": est.physical,
           "rtl_physical_ratio": st.cycles / est.physical_bound, "engines": est.engines,
           "estimate_seconds": est_seconds, "rtl_seconds": st.wall_seconds,
           "counters": {k: int(v) for k, v in st.counters.items() if k in est.counters},
           "estimate_counters": est.counters}
    print(f"  {tile_name:10s} {name:20s} RTL {st.cycles:>9,} est {est.cycles:>9,} {100 * error:+6.2f} % "
          f"{est.bound}", file=sys.stderr)
    return rec


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", default="estimate_fidelity.json", help="output JSON")
    ap.add_argument("--layers", nargs="*", help="only these ResNet-50 layer names")
    ap.add_argument("--tiles", action="store_true", help="also small layers on 8x8 / 16x16 tiles, 16- / 32-byte ports")
    ap.add_argument("--no-default", action="store_true", help="skip the ResNet-50 layers on the default tile")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    records = []
    if not args.no_default:
        with SimServer(tile_unit(DEFAULT_TILE)) as server:
            for name, _h_full, h, cin, cout, k, s, p, g in LAYERS:
                if args.layers and name not in args.layers:
                    continue
                records.append(_run(name, DEFAULT_TILE, "32x32-w64", (1, h, cin, cout, k, s, p, g, "int8"), rng,
                                    server))
    if args.tiles:
        for tile_name, config in TILES.items():
            with SimServer(tile_unit(config)) as server:
                for name, *layer in SMALL:
                    records.append(_run(name, config, tile_name, layer, rng, server))

    print(f"{'tile':10s} {'layer':20s} {'input':>14s} {'k':>2s} {'s':>2s} {'Cout':>5s} {'RTL cycles':>11s} "
          f"{'estimate':>11s} {'error':>8s} {'bound':<12s} {'util':>6s} {'x phys':>6s} {'est ms':>7s}")
    for r in records:
        print(f"{r['tile']:10s} {r['layer']:20s} {'x'.join(map(str, r['input'])):>14s} {r['kernel']:2d} "
              f"{r['stride']:2d} {r['cout']:5d} {r['rtl_cycles']:11,d} {r['estimate_cycles']:11,d} "
              f"{100 * r['error']:+7.2f}% {r['bound']:<12s} {100 * r['rtl_utilization']:5.1f}% "
              f"{r['rtl_physical_ratio']:6.2f} {1000 * r['estimate_seconds']:7.1f}")
    worst = max(records, key=lambda r: abs(r["error"]), default=None)
    if worst is not None:
        print(f"worst |error| {100 * abs(worst['error']):.2f} % ({worst['tile']} {worst['layer']}); "
              f"{sum(abs(r['error']) <= GOAL for r in records)}/{len(records)} layers within {100 * GOAL:.0f} %")
    with open(args.json, "w") as f:
        json.dump({"goal": GOAL, "layers": records}, f, indent=2)
    ok = all(r["bit_exact"] for r in records) and all(abs(r["error"]) <= GOAL for r in records)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
