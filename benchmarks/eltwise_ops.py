"""ResNet-50's non-conv ops on the default element-wise unit: cycles, bytes, throughput, simulation speed.

Usage: python benchmarks/eltwise_ops.py [--json out.json] [--ops NAME ...]

Each op runs through the RTL on Verilator (one W = 32-byte unit, the default tile's port width),
is checked bit-exact against numpy, and is reported with its cycles, the unit's throughput in
output bytes per cycle and in input bytes read per cycle, and the wall time of the simulation.
Goals: pooling and element-wise ops stream one W-byte word per cycle on each port they use
(read bytes per cycle ≥ 0.9 · W per port; padding taps read nothing). Batch norm is reported
whole (statistics + NoC all-reduce + per-channel terms + normalization), twice: shards one after
another on one unit (``_2x2``), and in parallel on the units of a 2×2 mesh with its collective
plane (``_mesh2x2``, W = 16). The per-channel terms run on a sequential divider / square root
(~300 cycles per channel), which dominates at small N·H·W; on the mesh each node computes a
quarter of the channels.
"""

import argparse
import json
import sys
import time

import numpy as np

from tilelab.api import ops
from tilelab.pe_models.config import DEFAULT_ELTWISE, MeshConfig, TileConfig

#: The mesh of the parallel batch norm: 2x2 nodes of 8x8 tiles with 16-byte ports and 1 MiB of node
#: memory, each with an element-wise unit, joined by the collective plane.
BN_MESH = MeshConfig(rows=2, cols=2, eltwise=True,
                     tile=TileConfig(rows=8, cols=8, ext_bytes=16, ext_words=1 << 16, act_lane_bytes=8192,
                                     wgt_lane_bytes=8192, param_lane_bytes=1024, out_entries=32))


def _cases(rng):
    def t(*shape):
        return rng.integers(-128, 128, shape, dtype=np.int8)

    stem = t(1, 112, 112, 64)
    a, b = t(1, 56, 56, 256), t(1, 56, 56, 256)
    last = t(1, 7, 7, 2048)
    bn_x = t(2, 28, 28, 64)
    gamma, beta = np.full(64, 30 << 8), np.zeros(64, np.int64)
    return [
        ("maxpool_3x3_s2_stem", 1, lambda: ops.max_pool2d(stem, 3, stride=2, padding=1)),
        ("avgpool_2x2_s2", 1, lambda: ops.avg_pool2d(a, 2, stride=2)),
        ("global_avgpool_7x7x2048", 1, lambda: ops.global_avg_pool(last)),
        ("add_requant_56x56x256", 2, lambda: ops.add_requant(a, b, a_mult=1 << 30, a_shift=31, b_mult=3 << 28,
                                                              b_shift=30, relu=True)),
        ("relu_56x56x256", 1, lambda: ops.relu(a)),
        ("batch_norm_train_2x28x28x64_2x2", 1, lambda: ops.batch_norm_train(bn_x, gamma, beta, mesh=(2, 2))),
        ("batch_norm_train_2x28x28x64_mesh2x2", 1, lambda: ops.batch_norm_train(bn_x, gamma, beta, mesh=BN_MESH)),
    ]


def _jsonable(value):
    """``value`` for JSON: tuple dict keys (per-node records of a mesh, keyed by (i, j)) as "i,j", arrays as lists."""
    if isinstance(value, dict):
        return {",".join(map(str, k)) if isinstance(k, tuple) else k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    return value


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", default="eltwise_ops.json", help="output JSON")
    ap.add_argument("--ops", nargs="*", help="only these op names")
    args = ap.parse_args(argv)
    W = DEFAULT_ELTWISE.ext_bytes
    records = []
    for name, ports, run in _cases(np.random.default_rng(0)):
        if args.ops and name not in args.ops:
            continue
        t0 = time.perf_counter()
        y, stats = run()
        total = time.perf_counter() - t0
        busy = stats.counters.get("busy", stats.counters.get("apply_busy"))
        records.append({
            "op": name, "bit_exact": stats.bit_exact, "cycles": stats.cycles, "busy": busy,
            "out_bytes_per_cycle": y.size / stats.cycles,
            "read_bytes_per_cycle_per_port": stats.ext_bytes_read / stats.cycles / ports,
            "ext_bytes_read": stats.ext_bytes_read, "ext_bytes_written": stats.ext_bytes_written,
            "sim_seconds": stats.wall_seconds, "total_seconds": total, "counters": stats.counters,
        })
        print(f"{name}: done in {total:.1f} s", file=sys.stderr)
    print(f"{'op':34} {'exact':>5} {'cycles':>9} {'out B/cyc':>9} {'rd B/cyc/port':>13} {'sim s':>7}")
    for r in records:
        print(f"{r['op']:34} {str(r['bit_exact']):>5} {r['cycles']:>9} {r['out_bytes_per_cycle']:>9.2f} "
              f"{r['read_bytes_per_cycle_per_port']:>13.2f} {r['sim_seconds']:>7.2f}")
    print(f"(W = {W} bytes per port and cycle)")
    with open(args.json, "w") as f:
        json.dump(_jsonable({"unit": DEFAULT_ELTWISE.key(), "ops": records}), f, indent=1)
    return 0 if all(r["bit_exact"] for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
