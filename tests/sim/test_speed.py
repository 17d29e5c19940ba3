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
