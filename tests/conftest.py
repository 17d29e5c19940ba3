"""Shared pytest configuration: simulator availability markers."""

import os

import pytest

from tilelab.sim import icarus_available

# Test simulations are short: compile Verilator models at -O1 (about half the build time of the
# benchmarks' -O2 -march=native; a separate cache entry).
os.environ.setdefault("TILELAB_OPT_FAST", "-O1")

requires_icarus = pytest.mark.skipif(not icarus_available(),
                                     reason="Icarus Verilog (iverilog) is not installed; apt-get install iverilog")

#: Backends every cross-simulator test runs on; Icarus skips with a reason when absent.
ALL_BACKENDS = [
    pytest.param("amaranth", id="amaranth"),
    pytest.param("verilator", id="verilator"),
    pytest.param("icarus", id="icarus", marks=requires_icarus),
]
