"""Training-mode batch norm across a mesh: statistics on the unit, sums in the NoC, normalization on the unit."""

import re

import numpy as np
import pytest

from tests.ops.test_ops import UNIT, tensor
from tilelab.api import ops
from tilelab.reference import golden


def bn_params(channels, seed, *, scale=40, frac_bits=8):
    rng = np.random.default_rng(seed)
    gamma = rng.integers(scale // 2, 2 * scale, channels) << frac_bits
    gamma[::3] *= -1
    beta = rng.integers(-20, 20, channels)
    return np.clip(gamma, -(1 << 15), (1 << 15) - 1), beta


BN_CASES = [
    # id,               shape,          mesh,    eps,  gamma_frac_bits
    ("n2-c20-2x2",      (2, 5, 6, 20),  (2, 2),  1,    8),
    ("odd-rows-c7",     (1, 3, 7, 7),   (2, 2),  300,  4),
    ("c33-eps",         (2, 4, 4, 33),  (2, 2),  5000, 8),
]


@pytest.mark.parametrize("case", BN_CASES, ids=[c[0] for c in BN_CASES])
def test_batch_norm_train_bit_exact(case):
    _, shape, mesh, eps, frac = case
    x = tensor(shape, seed=len(case[0]))
    x[..., 1] = 17  # a constant channel: variance 0, eps alone sets the scale
    gamma, beta = bn_params(shape[3], seed=3, scale=8 if frac == 4 else 40, frac_bits=frac)
    y, stats = ops.batch_norm_train(x, gamma, beta, eps=eps, gamma_frac_bits=frac, mesh=mesh, config=UNIT)
    np.testing.assert_array_equal(y, golden.batch_norm_train(x, gamma, beta, eps=eps, gamma_frac_bits=frac))
    assert stats.counters["noc_totals_exact"] and stats.counters["terms_exact"] and stats.bit_exact
    nodes = mesh[0] * mesh[1]
    rows = shape[0] * shape[1] * shape[2]
    chunks = -(-shape[3] // UNIT.ext_bytes)
    # one BN_STATS per shard; one BN_TERMS, then one BN_APPLY per shard
    assert stats.counters["stats_descs_done"] == nodes and stats.counters["apply_descs_done"] == nodes + 1
    assert stats.counters["stats_busy"] == rows * chunks == stats.counters["apply_busy"]
    # the statistics layout: 12 words per chunk of W channels (Σx, Σx² mod 2**16, Σx² >> 16)
    assert stats.counters["stats_ext_bytes_written"] == 12 * chunks * UNIT.ext_bytes * nodes
    assert stats.counters["apply_ext_bytes_written"] == x.size + chunks * 16 * UNIT.ext_bytes
    # the sequential divider and square root take ~300 cycles per channel
    assert 250 * shape[3] < stats.counters["apply_terms_cycles"] < stats.counters["apply_cycles"]
    flits = -(-12 * chunks * UNIT.ext_bytes // (4 * ops.BN_NOC_LANES))
    assert stats.counters["noc_sent"] == stats.counters["noc_received"] == nodes * flits
    assert stats.cycles == sum(stats.counters[f"{p}_cycles"] for p in ("stats", "noc", "apply"))


def test_batch_norm_train_close_to_float():
    rng = np.random.default_rng(11)
    x = np.clip(np.round(rng.normal(-10, 30, (2, 8, 8, 24))), -128, 127).astype(np.int8)
    gamma, beta = bn_params(24, seed=4, scale=30)
    y, stats = ops.batch_norm_train(x, gamma, beta, eps=1, mesh=(2, 2), config=UNIT)
    assert stats.bit_exact
    ref = np.clip(golden.batch_norm_float(x, gamma / 256, beta, eps=1 / 65536), -128, 127)
    within = np.abs(y.astype(np.float64) - ref) <= 1
    assert within.mean() >= 0.99, f"only {within.mean():.4f} of the outputs within one step of float"


def test_noc_all_reduce_equals_numpy_sums():
    rng = np.random.default_rng(5)
    contributions = {(x, y): rng.integers(-(1 << 31), 1 << 31, 45, dtype=np.int64).astype(np.int32)
                     for y in range(2) for x in range(2)}
    totals, counters = ops.noc_all_reduce(contributions, rows=2, cols=2)
    want = golden.wrap_int32(np.sum([v.astype(np.int64) for v in contributions.values()], axis=0))
    assert set(totals) == set(contributions)
    for node, got in totals.items():
        np.testing.assert_array_equal(got, want, err_msg=f"node {node}")
    assert counters["sent"] == counters["received"] == 4 * 6 and counters["cycles"] > 0


def test_noc_all_reduce_on_amaranth_simulator():
    contributions = {(x, y): np.arange(10, dtype=np.int32) * (1 + x + 2 * y) for y in range(2) for x in range(2)}
    totals, _ = ops.noc_all_reduce(contributions, rows=2, cols=2, sim="amaranth")
    for got in totals.values():
        np.testing.assert_array_equal(got, np.arange(10) * 10)


def test_batch_norm_bad_inputs():
    x = tensor((1, 2, 2, 4), seed=0)
    gamma, beta = np.full(4, 256), np.zeros(4, np.int64)
    with pytest.raises(ValueError, match=re.escape("mesh must be a (rows, cols) pair of integers in [1, 16], "
                                                   "not (0, 2)")):
        ops.batch_norm_train(x, gamma, beta, mesh=(0, 2), config=UNIT)
    with pytest.raises(ValueError, match=re.escape("batch norm over a 3x2 mesh needs at least 6 rows (N·H·W), "
                                                   "not 4")):
        ops.batch_norm_train(x, gamma, beta, mesh=(3, 2), config=UNIT)
    with pytest.raises(ValueError, match=re.escape("gamma must have shape (4,) (one value per channel), not (3,)")):
        ops.batch_norm_train(x, gamma[:3], beta, config=UNIT)
    with pytest.raises(ValueError, match=re.escape("gamma_frac_bits must be at most 16, not 17")):
        ops.batch_norm_train(x, gamma, beta, gamma_frac_bits=17, config=UNIT)


def test_noc_all_reduce_bad_inputs():
    with pytest.raises(ValueError, match=re.escape("contributions must be a dict with one vector per node (x, y) "
                                                   "of the 2x2 mesh")):
        ops.noc_all_reduce({(0, 0): np.zeros(3, np.int32)}, rows=2, cols=2)
    uneven = {(x, y): np.zeros(3 + x, np.int32) for y in range(2) for x in range(2)}
    with pytest.raises(ValueError, match=re.escape("contributions must be 1-D vectors of one non-zero length, "
                                                   "not shapes [(3,), (4,)]")):
        ops.noc_all_reduce(uneven, rows=2, cols=2)
