"""MAC unit and MAC array: exact against numpy, under stalls, on every simulator."""

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import ALL_BACKENDS
from tilelab.hdl.mac import MACArray, MACUnit
from tilelab.sim import simulate
from tilelab.sim.mac_check import mac_array_bench
from tilelab.sim.testbench import run_simulation


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_mac_array_matches_numpy_under_stalls(backend):
    # One small fixed configuration shared by all three simulators (one Verilator build).
    r = simulate(MACArray(rows=3, cols=4, depthwise=True), mac_array_bench, backend=backend, name="mac_array",
                 args={"rows": 3, "cols": 4, "ks": [1, 5, 2, 7, 3, 1, 4], "seed": 11, "depthwise": True})
    assert r.value["rows_checked"] == 3 * 7
    assert r.value["macs"] == 12 * (1 + 5 + 2 + 7 + 3 + 1 + 4)


@settings(max_examples=8, deadline=None)
@given(rows=st.integers(1, 4), cols=st.integers(1, 4), ks=st.lists(st.integers(1, 6), min_size=1, max_size=4),
       seed=st.integers(0, 1000))
def test_mac_array_random_shapes_amaranth(rows, cols, ks, seed):
    r = simulate(MACArray(rows=rows, cols=cols), mac_array_bench, backend="amaranth",
                 args={"rows": rows, "cols": cols, "ks": ks, "seed": seed, "idle": 0.4, "stall": 0.5})
    assert r.value["rows_checked"] == rows * len(ks)


def test_mac_array_back_to_back_blocks_keep_full_throughput():
    # k >= rows: the drain of one block overlaps the next, so no input cycle is lost.
    rows, cols, ks = 4, 3, [4, 4, 4, 4, 6]
    r = simulate(MACArray(rows=rows, cols=cols), mac_array_bench, backend="amaranth",
                 args={"rows": rows, "cols": cols, "ks": ks, "seed": 5, "idle": 0.0, "stall": 0.0})
    # Every step is one cycle; the last block's drain adds rows cycles.
    assert r.value["cycles"] <= sum(ks) + rows + 1


def test_mac_array_drains_two_rows_per_transfer():
    # drain_rows=2 (the compute tile's pack takes two rows a cycle): rows r and r + 1 per
    # transfer, exact under idle cycles and backpressure, and a block drains in rows / 2 cycles.
    r = simulate(MACArray(rows=4, cols=3, depthwise=True, drain_rows=2), mac_array_bench, backend="amaranth",
                 args={"rows": 4, "cols": 3, "ks": [1, 3, 2, 5], "seed": 4, "depthwise": True, "drain_rows": 2})
    assert r.value["rows_checked"] == 4 * 4
    fast = simulate(MACArray(rows=4, cols=3, drain_rows=2), mac_array_bench, backend="amaranth",
                    args={"rows": 4, "cols": 3, "ks": [2, 2, 2, 2], "seed": 5, "idle": 0.0, "stall": 0.0,
                          "drain_rows": 2})
    # k = 2 = rows / 2: the drain of one block overlaps the next; the last drain adds rows / 2 cycles.
    assert fast.value["cycles"] <= 8 + 2 + 1


def test_mac_array_drains_only_the_counted_rows():
    # drain_count: a block's last step says how many rows are real (0: all); only those leave the
    # shadow bank, so a partial block frees it in ceil(count / drain_rows) transfers
    counts = [3, 0, 1, 4, 2]
    r = simulate(MACArray(rows=4, cols=3, drain_rows=2, drain_count=True), mac_array_bench, backend="amaranth",
                 args={"rows": 4, "cols": 3, "ks": [1, 2, 1, 3, 1], "seed": 7, "drain_rows": 2, "counts": counts})
    assert r.value["rows_checked"] == 3 + 4 + 1 + 4 + 2
    fast = simulate(MACArray(rows=4, cols=3, drain_count=True), mac_array_bench, backend="amaranth",
                    args={"rows": 4, "cols": 3, "ks": [1] * 6, "seed": 8, "idle": 0.0, "stall": 0.0,
                          "counts": [1] * 6})
    # one-step blocks of one real row each: one cycle a block, not rows
    assert fast.value["rows_checked"] == 6 and fast.value["cycles"] <= 6 + 4


def test_mac_unit_accumulates_and_clears():
    dut = MACUnit(a_width=8, b_width=8, acc_width=20)
    rng = np.random.default_rng(1)
    a, b = rng.integers(-128, 128, 50), rng.integers(-128, 128, 50)
    clear = rng.random(50) < 0.2

    async def tb(ctx):
        acc = 0
        for i in range(50):
            ctx.set(dut.a, int(a[i]))
            ctx.set(dut.b, int(b[i]))
            en = i % 7 != 3
            ctx.set(dut.en, en)
            ctx.set(dut.clear, bool(clear[i]))
            await ctx.tick()
            if en:
                acc = (0 if clear[i] else acc) + int(a[i]) * int(b[i])
            assert ctx.get(dut.acc) == acc

    run_simulation(dut, tb)


@pytest.mark.parametrize("kwargs, message", [
    ({"rows": 0}, "rows must be an integer in [1, 256], not 0"),
    ({"cols": -2}, "cols must be an integer in [1, 256], not -2"),
    ({"cols": 300}, "cols must be an integer in [1, 256], not 300"),
    ({"acc_width": 12}, "acc_width 12 cannot hold the 8x8-bit product; it must be at least 16"),
    ({"a_width": 0}, "a_width must be an integer in [1, 32], not 0"),
    ({"rows": 2.5}, "rows must be an integer in [1, 256], not 2.5"),
    ({"rows": 3, "drain_rows": 2}, "drain_rows must be 1 or 2 and divide rows (3), not 2"),
    ({"drain_rows": 4}, "drain_rows must be 1 or 2 and divide rows (8), not 4"),
])
def test_mac_array_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        MACArray(**kwargs)


def test_mac_unit_bad_parameters():
    with pytest.raises(ValueError, match=re.escape("acc_width 15 cannot hold the 8x8-bit product; it must be at "
                                                   "least 16")):
        MACUnit(acc_width=15)
