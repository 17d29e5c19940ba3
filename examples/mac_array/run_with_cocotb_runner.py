"""Build and run ``test_mac_array`` on ``mac_array.v`` with cocotb's own runner (``cocotb_tools.runner``).

``python run_with_cocotb_runner.py [verilator|icarus]`` after ``tilelab verilog mac-array --rows 4 --cols 4
-o mac_array.v``; results go to ``build_<sim>/results.xml``.
"""

import sys
from pathlib import Path

from cocotb_tools.runner import get_runner

here = Path(__file__).resolve().parent
sim = sys.argv[1] if len(sys.argv) > 1 else "verilator"
runner = get_runner(sim)
build = here / f"build_{sim}"
runner.build(sources=[here / "mac_array.v"], hdl_toplevel="mac_array", build_dir=build, timescale=("1ns", "1ps"))
runner.test(hdl_toplevel="mac_array", test_module="test_mac_array", test_dir=here, build_dir=build,
            timescale=("1ns", "1ps"), results_xml=str(build / "results.xml"))
