"""When is tilelab's ports-only Verilator build faster than cocotb's runner default (``--public-flat-rw``)?

Usage: python benchmarks/cocotb_bench_speed.py [--size 16] [--scale 40] [--json cocotb_bench_speed.json]

Two kinds of bench on one R×C MAC array, each with both visibilities:

* RTL-bound: the speed bench of ``tilelab bench sim-speed`` (Python idle while the RTL runs a
  million cycles), through cocotb's own runner (``--public-flat-rw``) and tilelab's ports-only path;
* Python-bound: the cocotb bench of ``examples/mac_array`` (a StreamSource and a StreamSink
  driving the ports every cycle), through :func:`tilelab.sim.run_cocotb_tests` with
  ``visibility="all"`` (what ``--public-flat-rw`` makes visible) and ``visibility="ports"``.

The table gives each run's seconds (build time excluded; the same work both ways), simulated
cycles per second where the bench counts them, and the speed-up over the full-visibility build.
"""

from __future__ import annotations

import argparse
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "mac_array"


def python_bound(size: int, scale: int, visibility: str) -> dict:
    """Run the example bench; the sum of cocotb's per-test real time."""
    import shutil

    from tilelab.hdl.mac import MACArray
    from tilelab.sim import run_cocotb_tests

    sys.path.insert(0, str(EXAMPLE))
    outcome = run_cocotb_tests(MACArray(rows=size, cols=size), "test_mac_array", name="mac_array",
                               visibility=visibility, keep=True,
                               extra_env={"MAC_EXAMPLE_SIZE": str(size), "MAC_EXAMPLE_SCALE": str(scale)})
    assert set(outcome.values()) == {"pass"}, outcome
    cases = list(ET.parse(outcome.workdir / "results.xml").iter("testcase"))
    shutil.rmtree(outcome.workdir)
    return {"seconds": sum(float(c.get("time")) for c in cases), "cycles_per_s": None}


def rtl_bound(size: int, method: str, cycles: int) -> dict:
    from tilelab.sim.speed import measure

    record = measure(method, size, size, cycles=cycles)
    return {"seconds": record.wall_seconds, "cycles_per_s": record.cycles_per_second}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=16, help="rows = cols of the MAC array")
    ap.add_argument("--scale", type=int, default=40, help="MAC_EXAMPLE_SCALE of the Python-bound bench")
    ap.add_argument("--cycles", type=int, default=2_000_000, help="cycles of the RTL-bound bench")
    ap.add_argument("--json", default="cocotb_bench_speed.json")
    args = ap.parse_args(argv)
    rows = []
    for bench, runs in (
        ("RTL-bound (speed bench)",
         [("cocotb runner (--public-flat-rw)", lambda: rtl_bound(args.size, "cocotb-runner", args.cycles)),
          ("tilelab ports-only", lambda: rtl_bound(args.size, "tilelab-fast", args.cycles))]),
        ("Python-bound (examples/mac_array)",
         [("visibility=all (= --public-flat-rw)", lambda: python_bound(args.size, args.scale, "all")),
          ("tilelab ports-only", lambda: python_bound(args.size, args.scale, "ports"))]),
    ):
        results = [(how, run()) for how, run in runs]
        base = results[0][1]["seconds"]             # the same work both ways
        for how, r in results:
            rows.append({"bench": bench, "how": how, "size": args.size, **r, "speedup": base / r["seconds"]})
    print(f"{'bench':<36} {'how':<36} {'seconds':>8} {'cycles/s':>10} {'speed-up':>8}")
    for r in rows:
        rate = f"{r['cycles_per_s']:10.0f}" if r["cycles_per_s"] else f"{'-':>10}"
        print(f"{r['bench']:<36} {r['how']:<36} {r['seconds']:8.2f} {rate} {r['speedup']:7.2f}x")
    Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
