"""The speed benchmark's load keeps its array busy every cycle, at any number of rows."""

import pytest

from tilelab.sim import simulate
from tilelab.sim.speed import BLOCK_K, MacArrayLoad, speed_bench


@pytest.mark.parametrize("rows, cols", [(4, 3), (BLOCK_K + 8, 2)])
def test_load_never_stalls_the_array(rows, cols):
    """MACs = cycles × rows × cols exactly: a stall in any cycle would lose a step's MACs.

    Blocks shorter than the array's rows (the load used 64-step blocks for every size) stall a
    taller array while it drains; the C++ ceiling's MAC check caught that on a 128-row array.
    """
    cycles = 3 * (BLOCK_K + 8) + 5
    r = simulate(MacArrayLoad(rows=rows, cols=cols), speed_bench, backend="amaranth", args={"cycles": cycles})
    assert r.value["cycles"] == cycles
    assert r.value["macs"] == cycles * rows * cols


def test_rounds_count_every_cycle():
    """``repeats`` rounds of ``cycles``: the load counts every round, and the bench reports each round's wall."""
    r = simulate(MacArrayLoad(rows=4, cols=3), speed_bench, backend="amaranth", args={"cycles": 150, "repeats": 3})
    assert r.value["cycles"] == 450
    assert r.value["macs"] == 450 * 12
    assert len(r.value["walls"]) == 3 and r.value["wall"] == min(r.value["walls"])


def test_ceiling_is_the_fast_paths_model():
    """The C++ loop and the fast path run the same cycles on the same Verilator flags."""
    from tilelab.sim.builders import model_flags
    from tilelab.sim.speed import _CPP_MAIN, measure

    assert "--timescale" in model_flags() and "repeats" in _CPP_MAIN
    fast = measure("tilelab-fast", 4, 3, cycles=5000, repeats=2)
    ceiling = measure("cpp-ceiling", 4, 3, cycles=5000, repeats=2)
    assert fast.cycles == ceiling.cycles == 5000
