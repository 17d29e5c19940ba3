"""A whole conv layer in RTL on one tile, bit-exact against the numpy golden model."""

import re
from itertools import pairwise

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.cases import CASE_IDS, CONV_CASES, TILE, requant_for, seed_of, tensors
from tests.conftest import requires_icarus
from tilelab.api.conv import Requant, conv2d, linear, run_program
from tilelab.compile.tile import LayoutError, compile_conv, row_block_tiles
from tilelab.reference import golden
from tilelab.reference.layers import Conv2dSpec
from tilelab.sim import SimulationStalled


@pytest.mark.parametrize("case", CONV_CASES, ids=CASE_IDS)
def test_conv_bit_exact(case):
    x, wt, b, rq, act = case.layer()
    y, stats = conv2d(x, wt, b, requant=rq, activation=act, out=case.out, config=TILE, pad_value=case.pad_value,
                      **case.conv)
    np.testing.assert_array_equal(y, case.golden(x, wt, b, rq))
    assert stats.bit_exact
    spec = Conv2dSpec.from_tensors(x, wt, b, **case.conv)
    # Counters: the RTL issued exactly the layer's MACs; cycles can't beat the peak rate.
    assert stats.macs == spec.macs
    assert stats.cycles >= spec.macs / TILE.peak_macs_per_cycle
    assert 0 < stats.mac_utilization <= 1
    assert stats.ext_bytes_written == spec.n * spec.ho * spec.wo * spec.cout * (4 if case.out == "int32" else 1)


def test_the_spec_case_n2_16x16x32_s2_64_out():
    x, wt, b = tensors(2, 16, 16, 32, 64, 3, seed=7)
    rq = requant_for(x, wt, b, stride=2, padding=1, dilation=1, groups=1)
    y, stats = conv2d(x, wt, b, stride=2, padding=1, requant=rq, config=TILE)
    acc = golden.conv2d(x, wt, b, stride=2, padding=1)
    np.testing.assert_array_equal(y, golden.requantize(acc, rq.multiplier, rq.shift, rq.zero_point))
    assert stats.bit_exact and stats.macs == 2 * 8 * 8 * 64 * 9 * 32
    assert stats.blocking["row_blocks"] > 1, "the input does not fit one L1 page: the layer must be blocked"



def test_row_blocks_ramp_up_from_one_tile():
    """The math waits only for a one-tile first row block; each later block at most doubles.

    (The first block's activations are the load nothing overlaps; a block twice the size of the
    one computing still arrives in time when the math takes at least twice the load.)
    """
    assert row_block_tiles(25, 4) == [1, 2, 4, 4, 4, 4, 4, 2]
    assert row_block_tiles(3, 4) == [1, 2]
    assert row_block_tiles(5, 1) == [1] * 5
    assert row_block_tiles(0, 4) == []
    for tiles in range(40):
        for m in range(1, 7):
            sizes = row_block_tiles(tiles, m)
            assert sum(sizes) == tiles and all(1 <= s <= m for s in sizes)
            assert all(b <= 2 * a for a, b in pairwise(sizes))
    # The compiled program: the compute descriptors of every column block follow the ramp.
    from tilelab.hdl.formats.tile import DESC_BYTES, ComputeDesc, ProgramHeader

    x, wt, b = tensors(1, 16, 16, 32, 16, 3, seed=3)
    spec = Conv2dSpec.from_tensors(x, wt, b, padding=1)
    prog = compile_conv(x, wt, b, spec, TILE, out_int32=True)
    blk = prog.blocking
    hdr = ProgramHeader.from_bits(int.from_bytes(prog.image[:DESC_BYTES].tobytes(), "little"))
    ms = [ComputeDesc.from_bits(int.from_bytes(prog.image[at:at + DESC_BYTES].tobytes(), "little")).m
          for at in range(hdr.compute_base, hdr.compute_base + hdr.compute_count * DESC_BYTES, DESC_BYTES)]
    ramp = row_block_tiles(16 * 16 // TILE.rows, blk.m)
    assert blk.m > 1 and ramp[0] == 1 and blk.row_blocks == len(ramp)
    assert ms == ramp * blk.col_blocks

@pytest.mark.parametrize("out", ["int8", "int32"])
def test_depthwise_windows_read_each_input_byte_once(out):
    # Wide rows: an input window of a few rows fills half the activation ring, so each image is
    # cut into several row blocks (and the blocks of the two images never mix).
    n, h, w, c, stride, pad = 2, 13, 40, 6, 1, 1
    x, wt, b = tensors(n, h, w, c, c, 3, groups=c, seed=5)
    rq = requant_for(x, wt, b, stride=stride, padding=pad, dilation=1, groups=c) if out == "int8" else None
    y, stats = conv2d(x, wt, b, stride=stride, padding=pad, groups=c, requant=rq, out=out, config=TILE)
    acc = golden.conv2d(x, wt, b, stride=stride, padding=pad, groups=c)
    want = acc if out == "int32" else golden.requantize(acc, rq.multiplier, rq.shift, rq.zero_point)
    np.testing.assert_array_equal(y, want)
    spec = Conv2dSpec.from_tensors(x, wt, b, stride=stride, padding=pad, groups=c)
    blk = stats.blocking
    assert blk["depthwise"] and blk["row_blocks"] > n
    assert stats.macs == spec.macs
    # The blocks cover every output row of every image and channel group (up to W channels: one
    # group here, of two weight tiles) exactly once.
    assert blk["groups"] == 1 and blk["n"] == 2
    covered = sorted((g, i, oh) for g, i, oh0, rows in blk["dw_blocks"] for oh in range(oh0, oh0 + rows))
    assert covered == [(0, i, oh) for i in range(n) for oh in range(spec.ho)]
    # Per row block and weight tile: 9 steps per tile of R output pixels. External reads: the
    # parameters and weights once, every input byte exactly once (the input rows two neighbouring
    # windows share stay in the activation ring).
    tiles = sum(-(-rows * spec.wo // TILE.rows) for _, _, _, rows in blk["dw_blocks"])
    assert stats.counters["mac_steps"] == 9 * tiles * blk["n"]
    assert stats.ext_bytes_read == c * (16 + 9) + x.size


@pytest.mark.parametrize("h, w, k, stride, padding, message", [
    # three 200-pixel rows of 16 bytes for one output row; the activation lane holds 4096 bytes
    (3, 200, 3, 1, 1, "depthwise layer needs a window of 3x200 pixels of 16 bytes (9600 bytes) per activation "
                      "lane for one output row, but an activation lane holds 4096 bytes"),
    # 1x1 taps, stride 3 over 100-pixel rows: an output row moves 300 words on; the ring holds 256
    (7, 100, 1, 3, 0, "depthwise layer's output row moves 3 input rows of 100 pixels on, more than the activation "
                      "ring holds (256 words of 16 bytes)"),
], ids=["window", "stride"])
def test_depthwise_layer_that_cannot_fit_the_ring(h, w, k, stride, padding, message):
    x, wt, b = tensors(1, h, w, 4, 4, k, groups=4)
    with pytest.raises(LayoutError, match=re.escape(message)):
        conv2d(x, wt, b, stride=stride, padding=padding, groups=4, out="int32", config=TILE)


def test_linear_int8():
    rng = np.random.default_rng(3)
    x = rng.integers(-128, 128, (3, 40), dtype=np.int8)
    w = rng.integers(-128, 128, (10, 40), dtype=np.int8)
    b = rng.integers(-100, 100, 10, dtype=np.int32)
    acc = golden.linear(x, w, b)
    m, s = golden.choose_requant(acc)
    y, stats = linear(x, w, b, requant=Requant(m, s, 0), config=TILE)
    np.testing.assert_array_equal(y, golden.requantize(acc, m, s, 0))
    assert stats.bit_exact and y.shape == (3, 10)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_shapes(data):
    k = data.draw(st.sampled_from([1, 2, 3, 5]), label="k")
    stride = data.draw(st.integers(1, 3), label="stride")
    dil = data.draw(st.integers(1, 2), label="dilation")
    pad = data.draw(st.integers(0, 2), label="padding")
    span = dil * (k - 1) + 1
    h = data.draw(st.integers(max(1, span - 2 * pad), 9), label="h")
    w = data.draw(st.integers(max(1, span - 2 * pad), 9), label="w")
    groups = data.draw(st.sampled_from([1, 2]), label="groups")
    cin = groups * data.draw(st.integers(1, 6), label="cin/g")
    cout = groups * data.draw(st.integers(1, 6), label="cout/g")
    n = data.draw(st.integers(1, 2), label="n")
    x, wt, b = tensors(n, h, w, cin, cout, k, groups, seed=data.draw(st.integers(0, 999), label="seed"))
    y, stats = conv2d(x, wt, b, stride=stride, padding=pad, dilation=dil, groups=groups, out="int32", config=TILE)
    np.testing.assert_array_equal(y, golden.conv2d(x, wt, b, stride=stride, padding=pad, dilation=dil,
                                                   groups=groups))
    assert stats.macs == Conv2dSpec.from_tensors(x, wt, b, stride=stride, padding=pad, dilation=dil,
                                                 groups=groups).macs


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_depthwise_shapes(data):
    k = data.draw(st.sampled_from([1, 2, 3, 5]), label="k")
    stride = data.draw(st.integers(1, 3), label="stride")
    dil = data.draw(st.integers(1, 2), label="dilation")
    pad = data.draw(st.integers(0, 2), label="padding")
    span = dil * (k - 1) + 1
    h = data.draw(st.integers(max(1, span - 2 * pad), 11), label="h")
    w = data.draw(st.integers(max(1, span - 2 * pad), 11), label="w")
    c = data.draw(st.integers(2, 9), label="channels")
    n = data.draw(st.integers(1, 2), label="n")
    x, wt, b = tensors(n, h, w, c, c, k, c, seed=data.draw(st.integers(0, 999), label="seed"))
    y, stats = conv2d(x, wt, b, stride=stride, padding=pad, dilation=dil, groups=c, out="int32", config=TILE)
    np.testing.assert_array_equal(y, golden.conv2d(x, wt, b, stride=stride, padding=pad, dilation=dil, groups=c))
    assert stats.blocking["depthwise"]
    assert stats.macs == Conv2dSpec.from_tensors(x, wt, b, stride=stride, padding=pad, dilation=dil,
                                                 groups=c).macs


@pytest.mark.parametrize("n,h,w,pad", [(1, 1, 1, 1), (2, 4, 3, 2)])
def test_depthwise_outputs_that_read_only_padding(n, h, w, pad):
    # 1x1 kernel at stride 3: with a 1-pixel image and padding 1 the only output reads padding (no
    # input row at all is streamed); with h = 4 and padding 2 the first and last output rows do
    x, wt, b = tensors(n, h, w, 2, 2, 1, 2, seed=5)
    y, _ = conv2d(x, wt, b, stride=3, padding=pad, groups=2, out="int32", config=TILE)
    np.testing.assert_array_equal(y, golden.conv2d(x, wt, b, stride=3, padding=pad, groups=2))


@pytest.mark.parametrize("sim", ["amaranth", pytest.param("icarus", marks=requires_icarus)])
def test_conv_on_other_simulators(sim):
    x, wt, b = tensors(1, 5, 4, 3, 5, 3, seed=1)
    rq = requant_for(x, wt, b, stride=1, padding=1, dilation=1, groups=1)
    small = TILE.replace(ext_words=1024, act_lane_bytes=512, wgt_lane_bytes=512, param_lane_bytes=256)
    y, stats = conv2d(x, wt, b, padding=1, requant=rq, config=small, sim=sim)
    y2, stats2 = conv2d(x, wt, b, padding=1, requant=rq, config=small, sim="verilator")
    assert stats.bit_exact and stats2.bit_exact
    np.testing.assert_array_equal(y, y2)
    # Cycle-accurate on every simulator: the very same cycle count and counters.
    assert stats.cycles == stats2.cycles
    assert stats.counters == stats2.counters


def test_watchdog_names_engine_and_cb(tmp_path):
    from tilelab.hdl.formats.tile import DESC_BYTES, ProgramHeader, WriteDesc

    x, wt, b = tensors(1, 4, 4, 4, 4, 1, seed=2)
    spec = Conv2dSpec.from_tensors(x, wt, b)
    prog = compile_conv(x, wt, b, spec, TILE, out_int32=True)
    # Corrupt the program: the last writer descriptor expects one more tile of rows than compute
    # produces, so the writer waits on the output CB forever.
    hdr = ProgramHeader.from_bits(int.from_bytes(prog.image[:DESC_BYTES].tobytes(), "little"))
    at = hdr.writer_base + (hdr.writer_count - 1) * DESC_BYTES
    desc = WriteDesc.from_bits(int.from_bytes(prog.image[at:at + DESC_BYTES].tobytes(), "little"))
    fields = {f: getattr(desc, f) for f in ("dst", "pix0", "pix_stride", "m", "n", "valid_rows", "valid_cols",
                                           "out_int32")}
    fields["m"] += 1
    prog.image[at:at + DESC_BYTES] = np.frombuffer(
        int(WriteDesc.const(fields).as_bits()).to_bytes(DESC_BYTES, "little"), np.uint8)
    with pytest.raises(SimulationStalled, match=(
            r"no progress for \d+ cycles \(watchdog limit 2000\) at cycle \d+: reader DONE after 6 descriptors; "
            r"compute DONE after 4 descriptors; writer RUN after 3 descriptors; writer waits on CB 'out' \(empty\)")):
        run_program(prog, TILE, stall_cycles=2000, workdir=tmp_path)


# --- bad input: clear errors before any simulation ----------------------------------------------

def test_bad_input_errors():
    x, wt, b = tensors(1, 6, 6, 4, 4, 3)
    with pytest.raises(ValueError, match=re.escape("x has 4 channels, which is not divisible by groups 3")):
        conv2d(x, wt, b, groups=3, out="int32", config=TILE)
    with pytest.raises(ValueError, match=re.escape("w must have shape ('Cout', 'Kh', 'Kw', 2) for x with 4 "
                                                   "channels and groups 2, not (4, 3, 3, 4)")):
        conv2d(x, wt, b, groups=2, out="int32", config=TILE)
    with pytest.raises(TypeError, match=re.escape("x must have dtype 'int8', not 'float32'")):
        conv2d(x.astype(np.float32), wt, b, out="int32", config=TILE)
    with pytest.raises(ValueError, match=re.escape("out must be one of 'int8', 'int32', not 'fp16'")):
        conv2d(x, wt, b, out="fp16", config=TILE)
    with pytest.raises(ValueError, match=re.escape("sim must be one of 'verilator', 'icarus', 'amaranth', not 'vcs'")):
        conv2d(x, wt, b, out="int32", config=TILE, sim="vcs")
    with pytest.raises(ValueError, match=re.escape("out='int8' needs requant=Requant(multiplier, shift, zero_point)")):
        conv2d(x, wt, b, config=TILE)
    with pytest.raises(ValueError, match=re.escape("requant shift must be within [1, 62], not 0..0")):
        conv2d(x, wt, b, requant=Requant(1, 0), config=TILE)


def test_layer_that_cannot_fit_l1():
    x, wt, b = tensors(1, 4, 4, 256, 4, 3)
    with pytest.raises(LayoutError, match=re.escape(
            "layer needs 2304 bytes per activation lane and 2304 per weight lane at the smallest block (4x4), "
            "but an L1 page holds 2048 / 2048 bytes per lane (256 bytes short); it cannot fit L1 even at the "
            "smallest block")):
        conv2d(x, wt, b, padding=1, out="int32", config=TILE)


def test_layer_that_cannot_fit_external_memory():
    x, wt, b = tensors(1, 96, 96, 64, 8, 1)
    with pytest.raises(LayoutError, match=r"the layer needs \d+ bytes of external memory .* the tile has 524288"):
        conv2d(x, wt, b, out="int32", config=TILE)


def test_descriptor_field_overflow_is_a_clear_error():
    # A stride of 300 does not fit ReadDesc.stride_h (8 bits): caught when packing, before simulation.
    x, wt, b = tensors(1, 301, 301, 1, 1, 1)
    with pytest.raises(LayoutError, match=re.escape("ReadDesc.stride_h = 300 does not fit its field (range 0..255)")):
        conv2d(x, wt, b, stride=300, out="int32", config=TILE)


@pytest.mark.parametrize("relu", [False, True])
def test_requant_extremes(relu):
    # Pack's requantization at the edges of what the host accepts: multipliers at both ends of
    # int32, shifts 1 and 62, biases that wrap the int32 accumulator. Pixel 0 is all zeros, so its
    # accumulator is the bias alone: with bias -2**31 and multiplier -2**31 the product is 2**62,
    # the largest magnitude the arithmetic must hold.
    rng = np.random.default_rng(11)
    x = rng.integers(-128, 128, (1, 3, 4, 8), dtype=np.int8)
    x[0, 0, 0] = 0
    wt = rng.integers(-128, 128, (8, 1, 1, 8), dtype=np.int8)
    b = np.array([-2**31, 2**31 - 1, -2**31, 123, 2**31 - 1, -5, 0, -2**31 + 7], dtype=np.int32)
    mult = np.array([-2**31, 2**31 - 1, 2**31 - 1, -2**31, -2**31, 1, -1, 977], dtype=np.int64)
    shift = np.array([1, 62, 31, 1, 62, 1, 2, 40], dtype=np.int64)
    rq = Requant(mult, shift, zero_point=-7)
    y, stats = conv2d(x, wt, b, requant=rq, activation="relu" if relu else None, config=TILE)
    acc = golden.conv2d(x, wt, b)
    np.testing.assert_array_equal(y, golden.requantize(acc, mult, shift, -7, relu=relu))
    assert stats.bit_exact


def test_float_requant_needs_a_tile_built_with_it():
    """onnxruntime's requantization on a tile without it: refused before anything is built."""
    x, wt, b = tensors(1, 5, 5, 4, 4, 3, seed=seed_of("no-float-requant"))
    cfg = TILE.replace(float_requant=False)
    with pytest.raises(ValueError, match=re.escape("Requant(scale=...) (onnxruntime's float requantization) needs a "
                                                   "tile built with float_requant=True; this tile has "
                                                   "float_requant=False")):
        conv2d(x, wt, b, padding=1, requant=Requant(zero_point=0, scale=np.float32(0.01)), config=cfg)


#: The case table's grouped cases and the mapping each must get on the test tile (C = 4):
#: channels per group in the depthwise mode's grouped form (0: the dense path).
GROUPED_FORM = {"grouped-g2": 2, "grouped-g4-s2": 4, "grouped-g4-n2-c12-dil2": 4, "ort-grouped-g2": 2,
                "grouped-g8-dense": 0, "grouped-g3-dense": 0, "groups2": 0}


@pytest.mark.parametrize("name", list(GROUPED_FORM))
def test_grouped_layers_take_the_grouped_form_when_it_fits(name):
    """g = Cin/groups = Cout/groups a power of two up to C: the depthwise mode with taps·g steps a
    tile, each of the C columns computing its own output channel (C / g groups at once); g > C,
    g = 3 and unequal groups fall back to the dense path, group by group. The RTL issues exactly
    the steps the mapping implies."""
    case = next(c for c in CONV_CASES if c.name == name)
    x, wt, b, rq, act = case.layer()
    spec = Conv2dSpec.from_tensors(x, wt, b, **case.conv)
    g = GROUPED_FORM[name]
    y, stats = conv2d(x, wt, b, requant=rq, activation=act, out=case.out, config=TILE, pad_value=case.pad_value,
                      **case.conv)
    np.testing.assert_array_equal(y, case.golden(x, wt, b, rq))
    blk = stats.blocking
    assert blk["depthwise"] == bool(g) and blk["group_size"] == max(g, 1)
    taps = spec.kh * spec.kw
    if g:
        assert blk["k"] == taps * g
        tiles = sum(-(-rows * spec.wo // TILE.rows) for _, _, _, rows in blk["dw_blocks"])
        assert stats.counters["mac_steps"] == taps * g * tiles * blk["n"]
    else:
        cpg = spec.cout // spec.groups
        assert stats.counters["mac_steps"] == (spec.groups * -(-spec.n * spec.ho * spec.wo // TILE.rows)
                                               * -(-cpg // TILE.cols) * taps * spec.cin // spec.groups)


def test_grouped_part_not_in_whole_rows_runs_dense():
    """A part of a grouped layer cut inside an output row or a group (a mesh shard) runs on the
    dense path; whole rows of whole groups keep the grouped form."""
    from tilelab.compile.tile import program_streams

    spec = Conv2dSpec(n=1, h=8, w=6, cin=16, cout=16, kh=3, kw=3, padding=(1, 1), groups=4)
    assert program_streams(spec, TILE).blocking.group_size == 4
    assert program_streams(spec, TILE, pixels=(6, 18), channels=(4, 12)).blocking.group_size == 4
    for part in (dict(pixels=(0, 5)), dict(channels=(2, 16))):
        b = program_streams(spec, TILE, **part).blocking
        assert not b.depthwise and b.group_size == 1, part
