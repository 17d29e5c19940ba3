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


@pytest.fixture(scope="session")
def local_ray():
    """A local Ray with 2 CPUs for the whole session (no dashboard, a small object store), shut down
    at the end; ``tilelab.net.parallel`` uses it instead of starting its own."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=128 * 1024 * 1024, logging_level="WARNING",
             log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()
