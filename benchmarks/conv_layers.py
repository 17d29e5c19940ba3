"""ResNet-50 layer shapes on the default compute tile: utilization, cycles, bytes, simulation speed.

Usage: python benchmarks/conv_layers.py [--json out.json] [--layers NAME ...]

Layers run at their sizes in ResNet-50 at 224×224 (the 14×14 and 7×7 stages and the batch-1
fully connected layer included: the split-K mode fills the array where few output pixels would
leave most rows idle). Each layer runs through the RTL on
Verilator, is checked bit-exact against numpy, and is reported with its MAC utilization, cycles,
external bytes, simulated MAC/s and that speed's ratio to the plain C++ Verilator loop of a bare
MAC array of the same size (the sim-speed benchmark's ceiling).
Goals: ≥ 90 % utilization on 3×3 and 1×1 layers with channels ≥ the array size, ≥ 50 % on
depthwise 3×3, simulated MAC/s ≥ 50 % of the ceiling. The ``wr bound`` column is the utilization
the single W-byte write port allows for the layer's output bytes (macs / (output bytes / W · R·C),
at most 100 %): 56 % for depthwise 3×3 on the default tile (64-byte port).
"""

import argparse
import json
import sys
import time

import numpy as np

from tilelab.api.conv import Requant, conv2d
from tilelab.pe_models.config import DEFAULT_TILE
from tilelab.reference import golden
from tilelab.sim.speed import measure

# name, H (input at 224x224), Cin, Cout, kernel, stride, padding, groups.
LAYERS = [
    ("conv1_7x7_s2", 224, 3, 64, 7, 2, 3, 1),
    ("res2_1x1_64", 56, 64, 64, 1, 1, 0, 1),
    ("res2_3x3_64", 56, 64, 64, 3, 1, 1, 1),
    ("res2_1x1_256", 56, 64, 256, 1, 1, 0, 1),
    ("res3_1x1_s2", 56, 256, 128, 1, 2, 0, 1),
    ("res3_3x3_128", 28, 128, 128, 3, 1, 1, 1),
    ("res4_3x3_256", 14, 256, 256, 3, 1, 1, 1),
    ("res4_1x1_1024", 14, 256, 1024, 1, 1, 0, 1),
    ("res5_3x3_512", 7, 512, 512, 3, 1, 1, 1),
    ("res5_1x1_2048", 7, 512, 2048, 1, 1, 0, 1),
    ("fc_2048_1000", 1, 2048, 1000, 1, 1, 0, 1),    # the batch-1 fc as a 1x1 conv
    ("dw_3x3_128", 28, 128, 128, 3, 1, 1, 128),
    # MobileNetV2's 3x3/2 stem (pixel gangs), a 1x1 expansion (packed rows) and small depthwise maps.
    ("mb_stem_3x3_s2", 224, 3, 32, 3, 2, 1, 1),
    ("mb_1x1_16_96", 112, 16, 96, 1, 1, 0, 1),
    ("dw_3x3_384_14", 14, 384, 384, 3, 1, 1, 384),
    ("dw_3x3_960_7", 7, 960, 960, 3, 1, 1, 960),
    # ResNeXt-50 32x4d's grouped 3x3 convs (32 groups of 4 / 8 / 16 / 32 channels), at their 224x224 sizes.
    ("rx2_3x3_g32", 56, 128, 128, 3, 1, 1, 32),
    ("rx3_3x3_g32", 28, 256, 256, 3, 1, 1, 32),
    ("rx4_3x3_g32", 14, 512, 512, 3, 1, 1, 32),
    ("rx5_3x3_g32", 7, 1024, 1024, 3, 1, 1, 32),
]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", default="conv_layers.json", help="output JSON")
    ap.add_argument("--layers", nargs="*", help="only these layer names")
    args = ap.parse_args(argv)
    cfg = DEFAULT_TILE
    ceiling = measure("cpp-ceiling", cfg.rows, cfg.cols).macs_per_second
    print(f"C++ ceiling, bare {cfg.rows}x{cfg.cols} MAC array: {ceiling / 1e6:.1f} M MAC/s", file=sys.stderr)
    rng = np.random.default_rng(0)
    records = []
    for name, h, cin, cout, k, s, p, g in LAYERS:
        if args.layers and name not in args.layers:
            continue
        x = rng.integers(-128, 128, (1, h, h, cin), dtype=np.int8)
        w = rng.integers(-128, 128, (cout, k, k, cin // g), dtype=np.int8)
        b = rng.integers(-1000, 1000, cout, dtype=np.int32)
        acc = golden.conv2d(x, w, b, stride=s, padding=p, groups=g)
        m, sh = golden.choose_requant(acc)
        t = time.perf_counter()
        y, st = conv2d(x, w, b, stride=s, padding=p, groups=g, requant=Requant(m, sh, 0), activation="relu",
                       config=cfg)
        rec = {
            "layer": name, "input": [1, h, h, cin], "kernel": k, "stride": s, "cout": cout, "groups": g,
            "bit_exact": st.bit_exact, "cycles": st.cycles, "macs": st.macs, "mac_utilization": st.mac_utilization,
            "ext_bytes_read": st.ext_bytes_read, "ext_bytes_written": st.ext_bytes_written,
            "wall_seconds": st.wall_seconds, "simulated_macs_per_second": st.simulated_macs_per_second,
            "ratio_to_ceiling": st.simulated_macs_per_second / ceiling, "total_seconds": time.perf_counter() - t,
            "write_port_bound": min(1.0, st.macs / (-(-st.ext_bytes_written // cfg.ext_bytes)
                                                    * cfg.peak_macs_per_cycle)),
        }
        records.append(rec)
        print(f"  {name:15s} {'ok' if st.bit_exact else 'MISMATCH'} util {100 * st.mac_utilization:5.1f} % "
              f"{st.simulated_macs_per_second / 1e6:6.1f} M MAC/s", file=sys.stderr)
    hdr = (f"{'layer':15s} {'input':>16s} {'k':>2s} {'s':>2s} {'Cout':>5s} {'exact':>5s} {'cycles':>10s} "
           f"{'util':>6s} {'wr bound':>8s} {'ext rd':>10s} {'ext wr':>9s} {'MAC/s':>8s} {'/ceil':>6s}")
    print(hdr)
    for r in records:
        print(f"{r['layer']:15s} {'x'.join(map(str, r['input'])):>16s} {r['kernel']:2d} {r['stride']:2d} "
              f"{r['cout']:5d} {'yes' if r['bit_exact'] else 'NO':>5s} {r['cycles']:10,d} "
              f"{100 * r['mac_utilization']:5.1f}% {100 * r['write_port_bound']:7.1f}% "
              f"{r['ext_bytes_read']:10,d} {r['ext_bytes_written']:9,d} "
              f"{r['simulated_macs_per_second'] / 1e6:7.1f}M {100 * r['ratio_to_ceiling']:5.1f}%")
    with open(args.json, "w") as f:
        json.dump({"tile": cfg.key(), "ceiling_macs_per_second": ceiling, "layers": records}, f, indent=2)
    return 0 if all(r["bit_exact"] for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
