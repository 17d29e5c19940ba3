"""ResNet-50 at 224×224, batch 1, layer by layer through the RTL on the default tile, bit-exact.

Usage: python benchmarks/resnet50.py [--image-size 224] [--json resnet50.json] [--out DIR] [--process-per-layer]

Every layer (53 convs with batch norm and ReLU folded in, the fc, the max pool, 16 residual adds,
the global average pool) runs on the simulated hardware and is compared bit for bit with the
numpy golden model. Prints the total wall seconds, cycles, average MAC utilization and simulated
MAC/s, and where the wall time goes:

- ``lowering``: building the graph, synthetic weights, the golden calibration pass (numpy);
- ``host``: per layer, compiling the program, writing the memory image, the golden check and
  reading the output back (executor wall time minus the simulator call);
- ``sim process``: per layer, the simulator process outside the measured run: process start,
  the embedded Python and cocotb, loading the memory image, reset, dumping the output;
- ``simulated cycles``: start to done of the RTL (Python asleep);
- Verilator builds: cached (content-keyed) after the first run; the table says whether any
  layer had to build.

By default the conv/fc layers share one simulator process and the element-wise layers another
(:mod:`tilelab.drive.server`); ``--process-per-layer`` starts one per layer, for comparison.

Goal: ≤ 60 s wall on a 2-core machine.
"""

import argparse
import json
import sys
import time
from collections import defaultdict

from tilelab.net.backends import TileBackend
from tilelab.net.executor import execute, prepare

GOAL_SECONDS = 60.0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--json", default="resnet50.json", help="output JSON")
    ap.add_argument("--out", default=None, help="run directory (per-layer outputs; default: none)")
    ap.add_argument("--process-per-layer", action="store_true", help="a simulator process per layer")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    _, lowered, manifest = prepare("resnet50", image_size=args.image_size, batch=1, seed=0)
    t_lower = time.perf_counter() - t0
    backend = TileBackend(persistent=not args.process_per_layer)
    by_op = defaultdict(lambda: {"layers": 0, "wall": 0.0, "sim_total": 0.0, "run": 0.0, "cycles": 0})
    builds = []

    stats_of = {}
    run_layer = backend.run

    def run(step, inputs):  # keep each layer's LayerStats for the time breakdown
        y, stats = run_layer(step, inputs)
        stats_of[step.name] = stats
        return y, stats

    backend.run = run

    def progress(done, total, record, eta):
        print(f"\r{done:>3}/{total} {record['name']:<24} ETA {eta or 0:5.0f} s ", end="", file=sys.stderr)

    t1 = time.perf_counter()
    result = execute(lowered, backend, run_dir=args.out, manifest=manifest, progress=progress)
    t_run = time.perf_counter() - t1
    print(file=sys.stderr)
    for r in result.records:
        s = stats_of.get(r["name"])
        b = by_op[r["op"]]
        b["layers"] += 1
        b["wall"] += r["wall_seconds"]
        b["cycles"] += r["cycles"]
        if s is not None:
            b["sim_total"] += s.total_seconds
            b["run"] += s.wall_seconds
            builds.append(bool(s.build_cached))
    summary = result.summary()
    total_wall = t_lower + t_run
    sim_total = sum(b["sim_total"] for b in by_op.values())
    run_total = sum(b["run"] for b in by_op.values())
    layer_wall = sum(b["wall"] for b in by_op.values())
    breakdown = {
        "lowering_seconds": t_lower,
        "host_seconds": layer_wall - sim_total,
        "sim_process_seconds": sim_total - run_total,
        "simulated_cycles_seconds": run_total,
        "executor_other_seconds": t_run - layer_wall,
    }
    mode = "one process per layer" if args.process_per_layer else "one simulator process per unit"
    print(f"ResNet-50 {args.image_size}x{args.image_size}, batch 1, one {backend.config.rows}x"
          f"{backend.config.cols} tile, Verilator, {mode}")
    print(f"{'op':<16} {'layers':>6} {'cycles':>12} {'wall s':>8} {'sim proc s':>10} {'RTL run s':>9}")
    for op, b in by_op.items():
        print(f"{op:<16} {b['layers']:>6} {b['cycles']:>12,} {b['wall']:>8.1f} {b['sim_total'] - b['run']:>10.1f} "
              f"{b['run']:>9.1f}")
    print(f"all layers bit-exact      : {'yes' if summary['all_bit_exact'] else 'NO'}")
    print(f"total wall seconds        : {total_wall:.1f}  (goal <= {GOAL_SECONDS:.0f})")
    for k, v in breakdown.items():
        print(f"  {k:<24}: {v:.1f}")
    print(f"Verilator builds          : {'all cached' if all(builds) else f'{builds.count(False)} built'}")
    print(f"total cycles              : {summary['total_cycles']:,}")
    print(f"total MACs                : {summary['total_macs']:,}")
    print(f"MAC utilization           : {100 * summary['mac_utilization']:.1f} % (MACs / conv+fc cycles / peak); "
          f"mean over layers {100 * summary['mean_layer_mac_utilization']:.1f} %")
    print(f"simulated MAC/s           : {summary['simulated_macs_per_second'] / 1e6:.1f} M (start to done); "
          f"{summary['total_macs'] / total_wall / 1e6:.1f} M over the whole wall time")
    out = dict(manifest, **summary)
    out.update({"total_wall_seconds": total_wall, "breakdown": breakdown, "goal_seconds": GOAL_SECONDS,
                "by_op": by_op, "builds_cached": all(builds),
                "process_per_layer": args.process_per_layer})
    with open(args.json, "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    print(f"wrote {args.json}")
    return 0 if summary["all_bit_exact"] else 1


if __name__ == "__main__":
    sys.exit(main())
