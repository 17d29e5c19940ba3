"""NoC benchmark: 8×8 mesh, one-flit packets.

Measures zero-load latency and saturation throughput (uniform, transpose, bit-complement) with the
RTL traffic generators, the all-reduce time of M flits and the full-grid multicast rate; prints a
table, writes JSON and a latency-load PNG.

    python benchmarks/noc.py [--out DIR] [--backend verilator]
"""

import argparse
import json
import time
from pathlib import Path

from tilelab.noc import api
from tilelab.sim import icarus_available

GOALS = {
    "zero_load_latency_uniform": ("<=", 16),
    "saturation_uniform": (">=", 0.42),
    "saturation_transpose": (">=", 0.125),
    "saturation_bitcomp": (">=", 0.21),
    "allreduce_cycles_minus_m": ("<=", 75),
    "multicast_min_rate": (">=", 0.9),
}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="benchmarks/results", help="folder for noc.json and noc_latency_load.png")
    ap.add_argument("--backend", default="verilator", help="simulator of the load sweeps")
    ap.add_argument("--short-backend", default=None,
                    help="simulator of the (short) all-reduce and multicast runs; default Icarus when installed "
                         "(its build takes seconds, Verilator's minutes for these 8x8 harnesses)")
    ap.add_argument("--mesh", default="8x8")
    ap.add_argument("--allreduce-flits", type=int, default=64)
    ap.add_argument("--multicast-flits", type=int, default=512)
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    short = args.short_backend or ("icarus" if icarus_available() else args.backend)
    t0 = time.time()
    sweeps = {p: api.sweep(args.mesh, p, backend=args.backend) for p in ("uniform", "transpose", "bitcomp")}
    m = args.allreduce_flits
    red = api.reduce(args.mesh, op="sum", flits=m, seed=1, backend=short)
    mc = api.multicast(args.mesh, src=(0, 0), flits=args.multicast_flits, seed=1, backend=short)
    measured = {
        "zero_load_latency_uniform": sweeps["uniform"]["zero_load_latency"],
        "saturation_uniform": sweeps["uniform"]["saturation_throughput"],
        "saturation_transpose": sweeps["transpose"]["saturation_throughput"],
        "saturation_bitcomp": sweeps["bitcomp"]["saturation_throughput"],
        "allreduce_cycles_minus_m": red["cycles"] - m,
        "multicast_min_rate": mc["min_rate"],
    }
    rows = []
    for key, (cmp, goal) in GOALS.items():
        v = measured[key]
        ok = v is not None and (v <= goal if cmp == "<=" else v >= goal)
        rows.append({"metric": key, "value": v, "goal": f"{cmp} {goal}", "met": ok})
    print(f"{'metric':30} {'value':>10} {'goal':>10}  met")
    for r in rows:
        v = r["value"]
        shown = "-" if v is None else f"{v:.4g}"
        print(f"{r['metric']:30} {shown:>10} {r['goal']:>10}  {'yes' if r['met'] else 'NO'}")
    print(f"allreduce of {m} flits: {red['cycles']} cycles (bit_exact {red['bit_exact']}); multicast of "
          f"{args.multicast_flits} flits to {mc['destinations']} nodes: {mc['cycles']} cycles, "
          f"min {mc['min_rate']:.3f} flits/cycle (bit_exact {mc['bit_exact']})")
    result = {"mesh": args.mesh, "backend": args.backend, "short_backend": short, "table": rows,
              "sweeps": sweeps, "allreduce": red,
              "multicast": {k: v for k, v in mc.items() if k != "delivered"}, "seconds": time.time() - t0}
    (out / "noc.json").write_text(json.dumps(result, indent=2))
    api.plot_sweeps(list(sweeps.values()), out / "noc_latency_load.png")
    print(f"wrote {out / 'noc.json'} and {out / 'noc_latency_load.png'} in {time.time() - t0:.0f} s")
    return result


if __name__ == "__main__":
    main()
