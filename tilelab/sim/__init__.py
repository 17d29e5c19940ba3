"""Simulation backends, Verilog generation, build caching and testbench helpers.

The entry point is :func:`simulate`: one component, one bench, any backend.
"""

from .cache import BuildCache, default_cache_dir
from .io import IO, SimulationStalled, SimulationTimeout
from .runner import BACKENDS, SimResult, SimulationError, run_cocotb_tests, simulate
from .toolchain import ToolchainError, icarus_available
from .verilog import Design, to_verilog

__all__ = [
    "BACKENDS", "BuildCache", "Design", "IO", "SimResult", "SimulationError", "SimulationStalled",
    "SimulationTimeout", "ToolchainError", "default_cache_dir", "icarus_available", "run_cocotb_tests", "simulate",
    "to_verilog",
]
