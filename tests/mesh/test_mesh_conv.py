"""Conv layers sharded over a mesh of tiles, bit-exact, with halo exchange and weight loading over the NoC."""

import numpy as np
import pytest

from tests.cases import CASE_IDS, CONV_CASES, TILE, seed_of, tensors
from tilelab.api.conv import Requant
from tilelab.api.mesh import conv2d_mesh, parse_mesh, run_mesh_program
from tilelab.compile.mesh import MeshError, _move, compile_conv_mesh
from tilelab.compile.tile import LayoutError
from tilelab.hdl.formats.mesh import MoveOp
from tilelab.pe_models.config import MeshConfig
from tilelab.reference.halo import halo_plan
from tilelab.reference.layers import Conv2dSpec
from tilelab.sim import SimulationStalled

#: The three meshes every sharding is checked on (one Verilator build each), all of the small test tile.
MESHES = {shape: MeshConfig(rows=shape[0], cols=shape[1], tile=TILE, eltwise=shape == (2, 2))
          for shape in ((2, 2), (1, 4), (4, 1))}
COMBOS = [(s, wl) for s in ("height", "width", "block") for wl in ("stream", "multicast")]


def _requant(cout, seed=1):
    rng = np.random.default_rng(seed)
    return Requant(rng.integers(1 << 14, 1 << 15, cout), rng.integers(18, 22, cout), 3)


@pytest.mark.parametrize("shape", list(MESHES), ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("shard,weight_load", COMBOS)
def test_sharding_matrix(shape, shard, weight_load):
    # 3x3, stride 2, padding 1: a halo on every shard; 64 input channels (a 16-byte word per slice on
    # four tiles), 2 images, int8 with per-channel requantization and ReLU
    cfg = MESHES[shape]
    x, w, b = tensors(2, 8, 8, 64, 32, 3, seed=seed_of(shape, shard))
    rq = _requant(32)
    y, st = conv2d_mesh(x, w, b, stride=2, padding=1, requant=rq, activation="relu", mesh=cfg, shard=shard,
                        weight_load=weight_load)
    assert st.bit_exact, (shape, shard, weight_load)
    assert y.shape == (2, 4, 4, 32)
    spec = Conv2dSpec.from_tensors(x, w, b, stride=2, padding=1)
    assert st.macs == spec.macs
    assert st.cycles >= spec.macs / st.peak_macs_per_cycle
    assert st.counters["dropped"] == 0 and st.counters["bad_flits"] == 0
    prog = compile_conv_mesh(x, w, b, spec, cfg, shard=shard, weight_load=weight_load,
                             multiplier=np.asarray(rq.multiplier), shift=np.asarray(rq.shift), zero_point=3,
                             relu=True)
    # each weight byte leaves external memory once per layer with multicast; once per tile using it otherwise
    want = prog.weight_bytes_once if weight_load == "multicast" else prog.weight_bytes_stream
    assert st.ext_bytes_read == want
    if weight_load == "stream" and shard == "height" and cfg.tiles > 1:
        assert st.ext_bytes_read == cfg.tiles * prog.weight_bytes_once
    assert st.halo_bytes == prog.halo_bytes
    received = sum(t["flits_received"] for t in st.tiles) * cfg.word_bytes
    assert received >= st.halo_bytes


@pytest.mark.parametrize("shard", ["height", "block"])
def test_1x1_and_depthwise_on_2x2(shard):
    cfg = MESHES[2, 2]
    x, w, b = tensors(1, 8, 8, 32, 64, 1, seed=3)
    y, st = conv2d_mesh(x, w, b, out="int32", mesh=cfg, shard=shard, weight_load="multicast")
    assert st.bit_exact
    # the resident weight blocks are small: each tile waits for all of them and runs one tile program
    assert [t["runs"] for t in st.tiles] == [1] * cfg.tiles
    if shard == "height":
        # a 1x1 kernel needs no neighbour's sticks: no halo, and the data movers send only read requests
        assert st.halo_bytes == 0
        assert sum(t["words_put"] for t in st.tiles) == 0
    xd, wd, bd = tensors(1, 8, 8, 32, 32, 3, groups=32, seed=4)
    y, st = conv2d_mesh(xd, wd, bd, padding=1, groups=32, out="int32", mesh=cfg, shard=shard, weight_load="stream")
    assert st.bit_exact


def test_depthwise_width_shards_read_only_their_own_channels():
    # a depthwise layer's channel slice needs only its own input channels: width tiles take their
    # words from memory and PUT nothing; block tiles PUT only halo sticks (no channel multicast)
    cfg = MESHES[2, 2]
    x, w, b = tensors(1, 8, 8, 32, 32, 3, groups=32, seed=4)
    _, wide = conv2d_mesh(x, w, b, padding=1, groups=32, out="int32", mesh=cfg, shard="width", weight_load="stream")
    assert wide.bit_exact and [t["words_put"] for t in wide.tiles] == [0] * cfg.tiles
    _, blk = conv2d_mesh(x, w, b, padding=1, groups=32, out="int32", mesh=cfg, shard="block", weight_load="stream")
    assert blk.bit_exact
    # the tiles PUT the halo sticks of their own channel slice, nothing more
    assert sum(t["words_put"] for t in blk.tiles) * cfg.tile.ext_bytes <= blk.halo_bytes


@pytest.mark.parametrize("shape", list(MESHES), ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("shard,weight_load", [c for c in COMBOS if c[0] != "height"])
def test_ragged_channels_and_pixels(shape, shard, weight_load):
    # 24 input channels (1.5 NoC words: channel slices of whole words, some tiles hold none), 30
    # output channels (slices of 7 and 8 on four tiles, 15 on two), 49 output pixels (ragged ranges
    # over 2 or 4 grid rows); padding with a non-zero input zero point, int8 output with ReLU
    cfg = MESHES[shape]
    x, w, b = tensors(1, 7, 7, 24, 30, 3, seed=seed_of(shape, shard, "ragged"))
    rq = _requant(30, seed=2)
    y, st = conv2d_mesh(x, w, b, padding=1, requant=rq, activation="relu", mesh=cfg, shard=shard,
                        weight_load=weight_load, pad_value=-7)
    assert st.bit_exact, (shape, shard, weight_load)
    assert y.shape == (1, 7, 7, 30)
    spec = Conv2dSpec.from_tensors(x, w, b, padding=1)
    assert st.macs == spec.macs
    assert st.counters["dropped"] == 0 and st.counters["bad_flits"] == 0
    prog = compile_conv_mesh(x, w, b, spec, cfg, shard=shard, weight_load=weight_load,
                             multiplier=np.asarray(rq.multiplier), shift=np.asarray(rq.shift), zero_point=3,
                             relu=True, pad_value=-7)
    assert st.ext_bytes_read == (prog.weight_bytes_once if weight_load == "multicast" else prog.weight_bytes_stream)
    assert st.halo_bytes == prog.halo_bytes
    # every output pixel and channel is computed by exactly one tile
    cover = np.zeros((spec.n * spec.ho * spec.wo, spec.cout), int)
    for node in prog.nodes.values():
        cover[slice(*node.pixels), slice(*node.channels)] += 1
    assert (cover == 1).all()


def test_halo_two_cores_away():
    # 5x5 kernel, padding 2, a 4-row image on 4 tiles: each tile owns one input row and needs the two
    # rows above and below, so tile 0 reads from tiles 1 and 2 (two away)
    cfg = MESHES[1, 4]
    x, w, b = tensors(1, 4, 4, 16, 16, 5, seed=5)
    plan = halo_plan(1, 4, 4, 16, kernel=5, padding=2, cores=4)
    assert {owner for _, owner in plan[0]["remote"]} == {1, 2}
    y, st = conv2d_mesh(x, w, b, padding=2, out="int32", mesh=cfg, shard="height", weight_load="multicast")
    assert st.bit_exact
    assert st.halo_bytes == sum(len(e["remote"]) for e in plan) * 16


def test_link_counters_and_ports():
    cfg = MESHES[2, 2]
    x, w, b = tensors(1, 8, 8, 32, 32, 3, seed=6)
    _, st = conv2d_mesh(x, w, b, padding=1, out="int32", mesh=cfg, shard="height", weight_load="multicast")
    assert st.bit_exact
    # the multicast plane carried the weights; links are recorded per router port and plane
    assert sum(rec["mcast_flits"] for rec in st.links) > 0
    assert len(st.links) == cfg.rows * (cfg.cols + 1) * 5
    assert st.noc_flits == sum(rec[f"{p}_flits"] for rec in st.links if rec["port"] != "L"
                               for p in ("req", "resp", "mcast"))
    assert sum(p["requests"] for p in st.ports) > 0
    assert all(t["tile_cycles"] <= t["cycles"] for t in st.tiles)


def test_resident_weight_blocks_run_as_two_programs():
    # 64 output channels on the 4-column array are 16 weight blocks of 4 x 576 bytes. With multicast
    # they stay resident back to back; the 15 later blocks (2,220 words with their parameters) take
    # longer to arrive than a second tile program costs, so each tile runs the first block alone as
    # soon as it is there and the other 15 as one program: two RUNs. Streamed: one RUN per block.
    cfg = MESHES[2, 2]
    x, w, b = tensors(1, 8, 8, 64, 64, 3, seed=9)
    _, st = conv2d_mesh(x, w, b, padding=1, out="int32", mesh=cfg, shard="height", weight_load="multicast")
    assert st.bit_exact
    assert [t["runs"] for t in st.tiles] == [2] * cfg.tiles
    _, st = conv2d_mesh(x, w, b, padding=1, out="int32", mesh=cfg, shard="height", weight_load="stream")
    assert st.bit_exact
    assert [t["runs"] for t in st.tiles] == [16] * cfg.tiles
    assert all(t["tile_cycles"] <= t["cycles"] for t in st.tiles)


def test_stalled_mesh_names_the_waiting_node(tmp_path):
    cfg = MESHES[2, 2]
    x, w, b = tensors(1, 8, 8, 32, 32, 3, seed=7)
    spec = Conv2dSpec.from_tensors(x, w, b, padding=1)
    prog = compile_conv_mesh(x, w, b, spec, cfg, shard="height", weight_load="multicast", out_int32=True)
    # make tile (1,1) wait for one more halo transfer than will ever arrive
    node = prog.nodes[1, 1]
    k = next(n for n, d in enumerate(node.moves) if d["op"] == MoveOp.WAIT and d["sem"] == 0)
    d = dict(node.moves[k], count=node.moves[k]["count"] + 1)
    node.image[k * 32:(k + 1) * 32] = np.frombuffer(_move(**d), np.uint8)
    with pytest.raises(SimulationStalled, match=r"tile \(1,1\): data mover WAIT at descriptor \d+, waiting for "
                                                r"semaphore 0 to reach \d+"):
        run_mesh_program(prog, workdir=tmp_path, stall_cycles=3000)


def test_bad_input():
    cfg = MESHES[2, 2]
    x, w, b = tensors(1, 6, 6, 32, 32, 3, seed=8)
    with pytest.raises(MeshError, match="does not fit the NoC"):
        parse_mesh("17x2")
    with pytest.raises(MeshError, match="RxC"):
        parse_mesh("2by2")
    # once refused, now run: 25 output pixels over 4 tiles (ranges of 7, 7, 7, 4), input channel
    # slices of 8 bytes (half a 16-byte NoC word: slices of whole words, two tiles hold none), 31
    # output channels over 2 grid columns (15 and 16)
    x5, w5, b5 = tensors(1, 5, 5, 32, 32, 3, seed=8)
    _, st = conv2d_mesh(x5, w5, b5, padding=1, out="int32", mesh=cfg, shard="height")
    assert st.bit_exact
    _, st = conv2d_mesh(x, w, b, padding=1, out="int32", mesh=cfg, shard="width")
    assert st.bit_exact
    _, st = conv2d_mesh(x, w[:31], b[:31], padding=1, out="int32", mesh=cfg, shard="block")
    assert st.bit_exact
    with pytest.raises(MeshError, match="shard must be one of"):
        conv2d_mesh(x, w, b, out="int32", mesh=cfg, shard="diagonal")
    with pytest.raises(MeshError, match="weight_load must be one of"):
        conv2d_mesh(x, w, b, out="int32", mesh=cfg, weight_load="telepathy")
    with pytest.raises(MeshError, match="no receivers"):
        _move(op=MoveOp.PUT, mcast=1, rect0=(2, 1), rect1=(1, 1), rows=1, words=1)
    # a layer too big for the node memory even when sharded (each node holds a quarter of the input and
    # output: 278 KiB of input window and 512 KiB of int32 output)
    xb, wb, bb = tensors(1, 128, 128, 64, 32, 3, seed=9)
    with pytest.raises(MeshError, match=r"a tile node needs \d+ bytes of node memory .* a node has 524288"):
        conv2d_mesh(xb, wb, bb, padding=1, out="int32", mesh=cfg)
    # a reduction too large for even the smallest block of a tile
    xk, wk, bk = tensors(1, 4, 4, 512, 4, 3, seed=9)
    with pytest.raises(LayoutError, match="cannot fit L1 even at the smallest block"):
        conv2d_mesh(xk, wk, bk, padding=1, out="int32", mesh=cfg)
    with pytest.raises(ValueError, match="for a mesh"):
        conv2d_mesh(x, w, b, out="int32", mesh=cfg, sim="amaranth")


def test_mesh_verilog_has_one_module_per_kind_of_node():
    """Every tile node and every router of a plane kind is one shared Verilog module, instantiated per node."""
    import re

    from tilelab.drive import mesh_unit

    cfg = MESHES[2, 2]
    text = mesh_unit(cfg).design().verilog
    for kind, count in (("tilelab_tile_node", cfg.tiles), ("tilelab_unicast_router", 2 * cfg.rows * (cfg.cols + 1)),
                        ("tilelab_multicast_router", cfg.rows * (cfg.cols + 1))):
        defined = re.findall(rf"^module ({kind}_[0-9a-f]+)\(", text, re.M)
        assert len(defined) == 1, (kind, defined)
        assert len(re.findall(rf"^\s*{defined[0]} \S+ \(", text, re.M)) == count, kind


@pytest.mark.parametrize("shard", ["height", "width", "block"])
@pytest.mark.parametrize("case", CONV_CASES, ids=CASE_IDS)
def test_conv_case_table_on_a_2x2_mesh(case, shard):
    """The tile's case table replayed on a 2x2 mesh with every sharding, bit-exact: ragged pixel
    ranges (whole output rows for the depthwise mode), channel counts that are not whole NoC words
    per slice, fewer channels than slices, grouped and depthwise layers."""
    cfg = MESHES[2, 2]
    x, w, b, rq, act = case.layer()
    kwargs = dict(requant=rq, activation=act, out=case.out, mesh=cfg, shard=shard, weight_load="multicast",
                  pad_value=case.pad_value, **case.conv)
    y, stats = conv2d_mesh(x, w, b, **kwargs)
    np.testing.assert_array_equal(y, case.golden(x, w, b, rq))
    assert stats.bit_exact
    spec = Conv2dSpec.from_tensors(x, w, b, **case.conv)
    assert stats.macs == spec.macs and stats.cycles >= spec.macs / stats.peak_macs_per_cycle
    assert stats.counters["dropped"] == 0 and stats.counters["bad_flits"] == 0
