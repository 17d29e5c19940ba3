"""Pooling, residual add, ReLU and training-mode batch norm on the element-wise units and the collective
plane of a 2x2 mesh, bit-exact against the golden."""

import re

import numpy as np
import pytest

from tests.mesh.test_mesh_conv import MESHES
from tilelab.api import ops
from tilelab.api.mesh import run_mesh_program
from tilelab.compile.mesh import MeshError, _move
from tilelab.compile.mesh_eltwise import EltwiseNode
from tilelab.hdl.formats.mesh import MoveOp
from tilelab.reference import golden
from tilelab.sim import SimulationStalled

#: The 2x2 test mesh: its nodes have element-wise units (the same build as the conv tests).
MESH = MESHES[2, 2]
W = MESH.word_bytes


def _x(shape, seed=0):
    return np.random.default_rng(seed).integers(-128, 128, shape, dtype=np.int8)


def _check_traffic(stats):
    """The only NoC traffic of a pooling op is its halo: every flit a node received is halo."""
    assert stats.counters["flits_received"] * W == stats.halo_bytes
    assert stats.counters["bad_flits"] == 0 and stats.counters["dropped"] == 0


@pytest.mark.parametrize("op,kernel,stride,padding", [
    ("max", 3, 2, 1),      # the ResNet stem pool
    ("max", 2, 2, 0),      # no halo: each node's windows lie in its own rows
    ("avg", 3, 1, 1),
    ("avg", 7, 1, 3),      # each node owns 2 rows, a window reaches 3 rows away: halo from two nodes away
])
def test_pooling_on_a_2x2_mesh(op, kernel, stride, padding):
    x = _x((2, 8, 8, 16), seed=kernel)
    fn, gold = (ops.max_pool2d, golden.max_pool2d) if op == "max" else (ops.avg_pool2d, golden.avg_pool2d)
    y, stats = fn(x, kernel, stride=stride, padding=padding, mesh=MESH)
    want = gold(x, kernel, stride=stride, padding=padding)
    assert stats.bit_exact and np.array_equal(y, want)
    _check_traffic(stats)
    # every node ran its unit once (each has output rows here)
    assert [t["elt_runs"] for t in stats.tiles] == [1, 1, 1, 1]
    assert [t["runs"] for t in stats.tiles] == [0, 0, 0, 0]
    if (kernel, stride, padding) == (2, 2, 0):
        assert stats.halo_bytes == 0 and stats.noc_flits == 0
    if kernel == 7:
        # node 0 (rows 0-1) needs rows 0..4: rows 2-3 from node 1 and row 4 from node 2, two nodes away
        row = 8 * 16
        assert stats.halo_bytes == 2 * row * sum([3, 2 + 3 - 0, 3 + 2, 3])   # per image, nodes 0..3
    # the units' own counters: every output byte written once
    assert stats.counters["elt.ext_bytes_written"] == want.size


def test_global_average_pool_splits_channels():
    x = _x((2, 5, 3, 40), seed=3)
    y, stats = ops.global_avg_pool(x, mesh=MESH)
    assert stats.bit_exact and np.array_equal(y, golden.global_avg_pool(x))
    assert stats.noc_flits == 0 and stats.halo_bytes == 0
    assert [t["elt_runs"] for t in stats.tiles] == [1, 1, 1, 1]
    assert [t["elt.ext_bytes_written"] for t in stats.tiles] == [2 * 10] * 4


def test_residual_add_and_relu_split_pixels():
    a, b = _x((2, 5, 5, 24), seed=4), _x((2, 5, 5, 24), seed=5)
    rng = np.random.default_rng(6)
    kw = dict(a_mult=rng.integers(1 << 14, 1 << 15, 24), a_shift=15, b_mult=(1 << 14) + 7, b_shift=15,
              zero_point=-3, a_zero_point=2, b_zero_point=-1, relu=True)
    y, stats = ops.add_requant(a, b, mesh=MESH, **kw)
    assert stats.bit_exact and np.array_equal(y, golden.add_requant(a, b, **kw))
    assert stats.noc_flits == 0
    y, stats = ops.relu(a, zero_point=5, mesh=MESH)
    assert stats.bit_exact and np.array_equal(y, golden.relu(a, zero_point=5))
    # 50 pixels over 4 nodes: 12, 13, 12, 13 rows of 24 channels
    assert stats.counters["elt.ext_bytes_written"] == a.size


def test_onnxruntime_kernels_split_pixels():
    """TABLE, QADD (two tensors and one value), QMUL and QAVGPOOL on the nodes' element-wise units (their gated
    lanes)."""
    a, b = _x((2, 5, 5, 24), seed=8), _x((2, 5, 5, 24), seed=9)
    table = _x(256, seed=10)
    y, stats = ops.qlinear_table(a, table, mesh=MESH)
    assert stats.bit_exact and np.array_equal(y, golden.apply_table(a, table)) and stats.noc_flits == 0
    args = (0.0213, -3, 0.0478, 5, 0.0561, -9)
    for rhs in (b, np.full((1, 1, 1, 1), 17, np.int8)):
        y, stats = ops.qlinear_add(a, *args[:2], rhs, *args[2:], unsigned=True, mesh=MESH)
        assert stats.bit_exact and np.array_equal(y, golden.qlinear_add(a, *args[:2], rhs, *args[2:], unsigned=True))
    y, stats = ops.qlinear_mul(a, *args[:2], b, *args[2:], mesh=MESH)
    assert stats.bit_exact and np.array_equal(y, golden.qlinear_mul(a, *args[:2], b, *args[2:]))
    assert stats.counters["elt.ext_bytes_written"] == a.size
    # QLinearAveragePool splits output rows like the other pooling ops, halo rows over the NoC
    x = _x((2, 8, 8, 16), seed=11)
    kw = dict(stride=1, padding=1, count_include_pad=False, x_scale=0.0371, x_zero_point=-3, y_scale=0.0213,
              y_zero_point=5)
    y, stats = ops.qlinear_avg_pool(x, 3, mesh=MESH, **kw)
    want = golden.qlinear_avg_pool(x, (3, 3), **dict(kw, stride=(1, 1), padding=(1, 1)))
    assert stats.bit_exact and np.array_equal(y, want) and stats.halo_bytes > 0
    _check_traffic(stats)


def test_more_nodes_than_output_rows():
    """Nodes without output rows stay idle (no ELT), the rest still produce the exact result."""
    x = _x((1, 4, 4, 16), seed=7)
    y, stats = ops.max_pool2d(x, 2, stride=2, mesh=MESH)
    assert stats.bit_exact and np.array_equal(y, golden.max_pool2d(x, 2, stride=2))
    assert sorted(t["elt_runs"] for t in stats.tiles) == [0, 0, 1, 1]


def test_bad_mesh_op_input():
    x = _x((1, 8, 8, 16))
    with pytest.raises(MeshError, match="no element-wise units"):
        ops.max_pool2d(x, 2, mesh=MESHES[1, 4])
    with pytest.raises(MeshError, match=r"a row of W·C = 3·8 = 24 bytes is not a multiple of the 16-byte word"):
        ops.max_pool2d(_x((1, 8, 3, 8)), 3, padding=1, mesh=MESH)
    with pytest.raises(ValueError, match="not both"):
        ops.relu(x, mesh=MESH, config=MESH.tile)
    with pytest.raises(ValueError, match="for a mesh"):
        ops.relu(x, mesh=MESH, sim="amaranth")
    with pytest.raises(TypeError, match="MeshConfig"):
        ops.relu(x, mesh=(2, 2))


# ------------------------------------------------------------------------------------------------
# the collective plane: REDUCE descriptors and training-mode batch norm


class _ReduceProgram:
    """Every node: REDUCE ``words`` words at word 8 into word 8 + words, END (a node in ``skip`` only ENDs)."""

    def __init__(self, contributions, words, skip=()):
        self.config, self.words, W = MESH, words, MESH.word_bytes
        self.port_image = np.zeros(4 * W, np.uint8)
        self.nodes = {}
        whole = dict(rect0=MESH.tile_coord(0, 0), rect1=MESH.tile_coord(MESH.rows - 1, MESH.cols - 1))
        for (i, j), data in contributions.items():
            image = np.zeros((8 + 2 * words) * W, np.uint8)
            moves = [] if (i, j) in skip else [_move(op=MoveOp.REDUCE, words=words, local=8, remote=8 + words,
                                                     node=MESH.tile_coord(1, 1), **whole)]
            code = b"".join([*moves, _move(op=MoveOp.END)])
            image[:len(code)] = np.frombuffer(code, np.uint8)
            image[8 * W:(8 + words) * W] = data.view(np.uint8)
            self.nodes[i, j] = EltwiseNode(i=i, j=j, image=image)

    def out_words(self, node):
        return 8 + self.words, 8 + 2 * self.words - 1

    def assemble(self, dumps):
        return {key: np.frombuffer(raw, np.int32) for key, (_, raw) in dumps.items()}


def test_reduce_sums_int32_lanes_across_the_mesh(tmp_path):
    """REDUCE: every node gets the wrapping int32 sum of every node's words, lane by lane (root (1, 1))."""
    rng = np.random.default_rng(8)
    words = 9
    lanes = words * W // 4
    contributions = {(i, j): rng.integers(-(1 << 31), 1 << 31, lanes, dtype=np.int64).astype(np.int32)
                     for i in range(2) for j in range(2)}
    totals, run = run_mesh_program(_ReduceProgram(contributions, words), workdir=tmp_path)
    value = run.counters
    want = golden.wrap_int32(np.sum([v.astype(np.int64) for v in contributions.values()], axis=0))
    for key in contributions:
        np.testing.assert_array_equal(totals[key], want, err_msg=f"node {key}")
    for t in value["tiles"]:
        assert (t["reduces"], t["reduce_flits_sent"], t["reduce_flits_received"]) == (1, words, words)
        assert words <= t["reduce_cycles"] < words + 40     # pipelined: about one word per cycle
        assert t["flits_sent"] == t["flits_received"] == 0   # the other planes carry nothing
    assert value["bad_flits"] == 0 and value["dropped"] == 0


def test_reduce_diagnosis_names_the_waiting_nodes(tmp_path):
    """A node that never contributes: the watchdog names every node stuck in its REDUCE."""
    contributions = {(i, j): np.ones(4 * W // 4, np.int32) for i in range(2) for j in range(2)}
    with pytest.raises(SimulationStalled) as err:
        run_mesh_program(_ReduceProgram(contributions, 4, skip={(1, 0)}), workdir=tmp_path, stall_cycles=3000)
    text = str(err.value)
    for node in ("(0,0)", "(0,1)", "(1,1)"):
        assert re.search(rf"tile {re.escape(node)}: data mover REDUCE at descriptor 0, in an all-reduce of 4 "
                         r"words: \d contributed, 0 totals received", text), text
    assert "tile (1,0)" not in text


def _bn_params(channels, seed, scale=40):
    rng = np.random.default_rng(seed)
    gamma = rng.integers(scale // 2, 2 * scale, channels) << 8
    gamma[::3] *= -1
    return gamma, rng.integers(-20, 20, channels)


def test_batch_norm_train_on_a_2x2_mesh():
    """Statistics on every node's unit, sums in the collective plane, terms and normalization per node."""
    x = _x((1, 3, 7, 20), seed=9)       # 21 rows: shards of 5, 5, 5, 6; 20 channels: a partial chunk
    x[..., 1] = 17                       # a constant channel: variance 0, eps alone sets the scale
    gamma, beta = _bn_params(20, seed=3)
    y, stats = ops.batch_norm_train(x, gamma, beta, eps=300, mesh=MESH)
    np.testing.assert_array_equal(y, golden.batch_norm_train(x, gamma, beta, eps=300))
    assert stats.bit_exact and stats.counters["noc_totals_exact"] and stats.counters["terms_exact"]
    # the totals every node received, decoded from its memory, are numpy's sums
    xs = x.reshape(-1, 20).astype(np.int64)
    assert set(stats.counters["totals"]) == {(0, 0), (0, 1), (1, 0), (1, 1)}
    for node, (s1, s2) in stats.counters["totals"].items():
        np.testing.assert_array_equal(s1, xs.sum(axis=0), err_msg=f"node {node}")
        np.testing.assert_array_equal(s2, (xs * xs).sum(axis=0), err_msg=f"node {node}")
    # two chunks of 16 channels: 2·12 words of statistics, 2·16 of BN_APPLY table; BN_TERMS of chunk 0
    # (16 channels) on node (0, 1), of chunk 1 (4 channels) on node (1, 1); the others have none
    words = 2 * 12 + 2 * 16
    for t in stats.tiles:
        terms = {(0, 1): 16, (1, 1): 4}.get((t["i"], t["j"]), 0)
        assert (t["elt_runs"], t["runs"], t["reduces"]) == (2 + (terms > 0), 0, 2)
        assert t["reduce_flits_sent"] == t["reduce_flits_received"] == words
        assert t["flits_received"] == 0
        assert 250 * terms <= t["elt.terms_cycles"] <= 350 * terms    # ~300 cycles per channel
    assert stats.noc_flits == 0 and stats.counters["bad_flits"] == 0
    # every node's BN_APPLY wrote its shard and BN_STATS its statistics; the table was written once
    assert stats.counters["elt.ext_bytes_written"] == x.size + (4 * 2 * 12 + 2 * 16) * W


def test_batch_norm_train_on_a_mesh_is_close_to_float():
    rng = np.random.default_rng(11)
    x = np.clip(np.round(rng.normal(-10, 30, (2, 8, 8, 24))), -128, 127).astype(np.int8)
    gamma, beta = _bn_params(24, seed=4, scale=30)
    y, stats = ops.batch_norm_train(x, gamma, beta, eps=1, mesh=MESH)
    assert stats.bit_exact
    ref = np.clip(golden.batch_norm_float(x, gamma / 256, beta, eps=1 / 65536), -128, 127)
    within = np.abs(y.astype(np.float64) - ref) <= 1
    assert within.mean() >= 0.99, f"only {within.mean():.4f} of the outputs within one step of float"


def test_batch_norm_mesh_bad_input():
    """Refused before any simulation, naming the value and the limit."""
    gamma, beta = _bn_params(8, seed=0)
    with pytest.raises(MeshError, match=re.escape("batch norm over a 2x2 mesh needs at least 4 rows (N·H·W), one "
                                                  "per node, not 3")):
        ops.batch_norm_train(_x((1, 1, 3, 8)), gamma, beta, mesh=MESH)
    c = 12_000
    gamma, beta = _bn_params(c, seed=0)
    with pytest.raises(MeshError, match=rf"batch norm of 4 rows x {c} channels over the 2x2 mesh needs \d+ bytes "
                                        rf"of node memory per node; a node has {MESH.tile.ext_bytes_total}"):
        ops.batch_norm_train(_x((1, 2, 2, c)), gamma, beta, mesh=MESH)
    with pytest.raises(MeshError, match="no element-wise units"):
        ops.batch_norm_train(_x((1, 2, 2, 8)), gamma[:8], beta[:8], mesh=MESHES[1, 4])
    with pytest.raises(ValueError, match="not both"):
        ops.batch_norm_train(_x((1, 2, 2, 8)), gamma[:8], beta[:8], mesh=MESH, config=MESH.tile)
