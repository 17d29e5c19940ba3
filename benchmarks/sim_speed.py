"""Simulator speed benchmark: the R×C MAC array under every method vs a plain C++ Verilator loop.

Usage: python benchmarks/sim_speed.py [--size 8x8 --size 32x32] [--json out/sim_speed.json]
(the same as ``tilelab bench sim-speed``). Goal: tilelab's fast path ≥ 70 % of the ceiling at 32×32.
"""

import sys

from tilelab.cli.bench import sim_speed

if __name__ == "__main__":
    sys.exit(sim_speed.main(args=sys.argv[1:] or ["--json", "sim_speed.json"], prog_name="sim_speed.py",
                            standalone_mode=True))
