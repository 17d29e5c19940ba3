"""Build and run an example's bench on its exported Verilog with cocotb's own runner (``cocotb_tools.runner``).

``python run_with_cocotb_runner.py EXAMPLE [verilator|icarus]``: EXAMPLE is an example's folder
(``mac_array``, ``circular_buffer``, ``router``, ``tile_conv``) holding ``EXAMPLE.v`` (written by
the ``tilelab verilog`` command in its README) and the bench ``test_EXAMPLE.py``; the top module
is ``EXAMPLE``. Results go to ``EXAMPLE/build_<sim>/results.xml``; the exit code is non-zero when a
test fails.
"""

import sys
from pathlib import Path

from cocotb_tools.check_results import get_results
from cocotb_tools.runner import get_runner

folder = Path(sys.argv[1]).resolve()
sim = sys.argv[2] if len(sys.argv) > 2 else "verilator"
name = folder.name
runner = get_runner(sim)
build = folder / f"build_{sim}"
runner.build(sources=[folder / f"{name}.v"], hdl_toplevel=name, build_dir=build, timescale=("1ns", "1ps"))
results = runner.test(hdl_toplevel=name, test_module=f"test_{name}", test_dir=folder, build_dir=build,
                      timescale=("1ns", "1ps"), results_xml=str(build / "results.xml"))
tests, failed = get_results(results)
print(f"{name} on {sim}: {tests - failed} of {tests} tests passed ({results})")
sys.exit(1 if failed else 0)
