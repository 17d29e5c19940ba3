"""The element-wise unit's estimate against its RTL: pooling, add, ReLU."""

import numpy as np
import pytest

from tests.cases import seed_of
from tilelab.api import ops
from tilelab.drive import SimServer, eltwise_unit
from tilelab.estimate import estimate_eltwise
from tilelab.pe_models.config import DEFAULT_ELTWISE
from tilelab.reference.layers import PoolSpec

#: id, op, input shape, window (kernel, stride, padding) of the pooling ops
CASES = [
    ("maxpool-3x3-s2-pad1", "max_pool", (1, 9, 9, 40), (3, 2, 1)),
    ("maxpool-2x2-n2-c70", "max_pool", (2, 8, 6, 70), (2, 2, 0)),
    ("avgpool-3x3-s1-pad1", "avg_pool", (1, 7, 7, 33), (3, 1, 1)),
    ("global-avgpool-n2", "global_avg_pool", (2, 5, 5, 100), None),
    ("add-c48", "add", (1, 6, 6, 48), None),
    ("relu-c33", "relu", (1, 7, 7, 33), None),
]


@pytest.fixture(scope="module")
def server():
    with SimServer(eltwise_unit(DEFAULT_ELTWISE)) as s:
        yield s


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_eltwise_estimate_matches_rtl(case, server):
    name, op, shape, window = case
    x = np.random.default_rng(seed_of(name)).integers(-128, 128, shape, dtype=np.int8)
    pool = None
    if op in ("max_pool", "avg_pool"):
        k, s, p = window
        pool = PoolSpec.from_tensor(x, k, stride=s, padding=p)
        fn = ops.max_pool2d if op == "max_pool" else ops.avg_pool2d
        _, stats = fn(x, k, stride=s, padding=p, server=server)
    elif op == "global_avg_pool":
        _, stats = ops.global_avg_pool(x, server=server)
    elif op == "add":
        _, stats = ops.add_requant(x, x[::-1], a_mult=1 << 30, a_shift=31, b_mult=3 << 28, b_shift=30, relu=True,
                                   server=server)
    else:
        _, stats = ops.relu(x, zero_point=-2, server=server)
    est = estimate_eltwise(op, shape, pool=pool)
    assert stats.bit_exact
    assert abs(est.cycles - stats.cycles) <= 0.05 * stats.cycles, (est.cycles, stats.cycles)
    assert est.taps == stats.counters["busy"]
    assert (est.ext_bytes_read, est.ext_bytes_written) == (stats.ext_bytes_read, stats.ext_bytes_written)
    assert stats.cycles >= est.physical_bound and est.bound == "read port"


def test_eltwise_estimate_arguments():
    with pytest.raises(ValueError, match="'softmax'"):
        estimate_eltwise("softmax", (1, 4, 4, 8))
    with pytest.raises(TypeError, match="PoolSpec"):
        estimate_eltwise("max_pool", (1, 4, 4, 8))
    with pytest.raises(ValueError, match="more than the unit's 2048"):
        estimate_eltwise("add", (1, 5, 5, 70), config=DEFAULT_ELTWISE.replace(ext_words=64))
