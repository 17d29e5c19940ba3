"""Simulation speed of the element-wise unit's existing ops (Verilator), to compare two builds of the unit.

Usage: python benchmarks/eltwise_sim_speed.py [--reps N] [--json out.json]

Runs ReLU (112×112×128), a residual add (96×96×128) and the 3×3/2 max pool (112×112×64) on a
W = 16 unit with 4 MiB of external memory, ``--reps`` times each in one simulator process
(:class:`~tilelab.drive.SimServer`), every run checked bit-exact, and prints the cycles and the
fastest and median wall time of the RTL run (start to done) per op. Run it on two checkouts in
turn (``PYTHONPATH=<checkout>``), a few rounds each, and compare the minima: the machine's other
load only ever slows a run down.
"""

import argparse
import json
import statistics
import sys

import numpy as np

from tilelab.api import ops
from tilelab.drive import SimServer, eltwise_unit
from tilelab.pe_models.config import EltwiseConfig

UNIT = EltwiseConfig(ext_bytes=16, ext_words=1 << 18)


def _cases():
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, (1, 112, 112, 128), dtype=np.int8)
    a = rng.integers(-128, 128, (1, 96, 96, 128), dtype=np.int8)
    b = rng.integers(-128, 128, (1, 96, 96, 128), dtype=np.int8)
    stem = rng.integers(-128, 128, (1, 112, 112, 64), dtype=np.int8)
    return {
        "relu": lambda s: ops.relu(x, config=UNIT, server=s),
        "add_requant": lambda s: ops.add_requant(a, b, a_mult=1 << 30, a_shift=31, b_mult=3 << 28, b_shift=30,
                                                 relu=True, config=UNIT, server=s),
        "maxpool3x3s2": lambda s: ops.max_pool2d(stem, 3, stride=2, padding=1, config=UNIT, server=s),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3, help="runs per op")
    ap.add_argument("--json", help="output JSON")
    args = ap.parse_args(argv)
    cases = _cases()
    seconds, cycles = {name: [] for name in cases}, {}
    server = SimServer(eltwise_unit(UNIT), sim="verilator")
    try:
        for _ in range(args.reps):
            for name, run in cases.items():
                _, stats = run(server)
                if not stats.bit_exact:
                    print(f"{name}: not bit-exact", file=sys.stderr)
                    return 1
                seconds[name].append(stats.wall_seconds)
                cycles[name] = stats.cycles
    finally:
        server.close()
    print(f"{'op':14} {'cycles':>8} {'min s':>8} {'median s':>9} {'kcycles/s':>10}")
    for name, times in seconds.items():
        print(f"{name:14} {cycles[name]:>8} {min(times):>8.4f} {statistics.median(times):>9.4f} "
              f"{cycles[name] / min(times) / 1e3:>10.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"unit": UNIT.key(), "cycles": cycles, "seconds": seconds}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
