"""ResNet-50 at 224×224 on the default tile with the layers as Ray tasks on 1, 2, ... workers.

Usage: python benchmarks/resnet50_workers.py [--image-size 224] [--workers 1,2] [--json resnet50_workers.json]

The single-core floor is the network's MACs divided by the fast path's MAC/s on a bare 32×32
MAC array, measured in the same run (``tilelab bench sim-speed --size 32x32 --method
tilelab-fast``): the time one core needs to simulate the MACs alone. Each run (every layer
bit-exact, checked) is timed from the start of the run to its last layer, Ray's start-up
included; a serial run (no Ray) is the reference. Printed per run: wall seconds, the ratio to
the floor, the speed-up over the serial run and the parallel efficiency (speed-up / workers).

Goal: ``--workers 2`` on a 2-core machine in ≤ 0.75 × the single-core floor.
"""

import argparse
import json
import os
import sys
import time

from tilelab.net.backends import TileBackend
from tilelab.net.executor import execute, prepare
from tilelab.sim.speed import run_speed_benchmark

GOAL_RATIO = 0.75


def _timed_run(lowered, workers):
    t0 = time.perf_counter()
    result = execute(lowered, TileBackend(), workers=workers)
    seconds = time.perf_counter() - t0
    if not result.all_bit_exact:
        bad = [r["name"] for r in result.records if not r["bit_exact"]]
        sys.exit(f"not bit-exact with {workers} workers: {', '.join(bad)}")
    return seconds, result.summary()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts (default 1,2)")
    ap.add_argument("--json", default="resnet50_workers.json", help="output JSON")
    args = ap.parse_args(argv)
    counts = [int(v) for v in args.workers.split(",")]

    load = os.getloadavg()
    (speed,) = run_speed_benchmark([(32, 32)], ["tilelab-fast"], log=lambda s: print(s, file=sys.stderr))
    _, lowered, _ = prepare("resnet50", image_size=args.image_size, batch=1, seed=0)
    macs = sum(s.macs for s in lowered.steps)
    floor = macs / speed.macs_per_second
    print(f"single-core floor: {macs:,} MACs / {speed.macs_per_second / 1e6:.1f} M MAC/s = {floor:.1f} s "
          f"(load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {os.cpu_count()} CPUs)")

    runs = []
    serial, summary = _timed_run(lowered, None)
    runs.append({"workers": None, "seconds": serial, "total_cycles": summary["total_cycles"]})
    for n in counts:
        seconds, s = _timed_run(lowered, n)
        assert s["total_cycles"] == summary["total_cycles"], "a parallel run must give the serial run's cycles"
        runs.append({"workers": n, "seconds": seconds, "total_cycles": s["total_cycles"]})
    print(f"{'workers':>8} {'seconds':>9} {'x floor':>8} {'speed-up':>9} {'efficiency':>10}")
    for r in runs:
        r["ratio_to_floor"] = r["seconds"] / floor
        r["speedup"] = serial / r["seconds"]
        r["efficiency"] = r["speedup"] / r["workers"] if r["workers"] else 1.0
        print(f"{r['workers'] or 'serial':>8} {r['seconds']:9.1f} {r['ratio_to_floor']:8.2f} {r['speedup']:9.2f} "
              f"{r['efficiency']:10.2f}")
    two = next((r for r in runs if r["workers"] == 2), None)
    if two is not None:
        print(f"goal: 2 workers in <= {GOAL_RATIO} x floor: {two['ratio_to_floor']:.2f} x "
              f"({'met' if two['ratio_to_floor'] <= GOAL_RATIO else 'not met'})")
    out = {"image_size": args.image_size, "macs": macs, "fast_path_macs_per_second": speed.macs_per_second,
           "floor_seconds": floor, "goal_ratio": GOAL_RATIO, "load_average_before": load,
           "load_average_after": os.getloadavg(), "cpus": os.cpu_count(), "runs": runs}
    with open(args.json, "w") as f:
        json.dump(out, f, indent=2)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
