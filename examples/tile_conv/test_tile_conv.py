"""cocotb bench of the compute tile fed one conv layer through its external-memory port.

``tilelab verilog tile --no-memory --tile rows=4,cols=4,... --top tile_conv`` exports the 4×4
test tile with its external-memory port at the top; the bench is that memory
(:class:`~tilelab.sim.cocotb_buses.ExtMemoryModel`). It compiles a small 3×3 conv with tilelab's
compiler, writes the image (program, input, weights, parameters) into the memory, pulses
``start``, waits for ``done``, reads the output back and compares it bit-exact with the golden
model (:mod:`tilelab.reference.golden`), then checks the tile's own counters against what moved
on the port.
"""

import zlib

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from tilelab.compile.tile import compile_conv
from tilelab.pe_models.config import TileConfig
from tilelab.reference import golden
from tilelab.reference.layers import Conv2dSpec
from tilelab.sim.cocotb_buses import ExtMemoryModel
from tilelab.sim.cocotb_streams import start_clock_and_reset

#: The tile the Verilog was exported for (the suite's 4x4 test tile; ``--tile`` of the export).
TILE = TileConfig(rows=4, cols=4, ext_bytes=16, ext_words=1 << 15, act_lane_bytes=4096, wgt_lane_bytes=4096,
                  param_lane_bytes=512, out_entries=16, float_requant=True, split_k=4)


def layer(seed):
    """A random 3x3, pad-1 conv of a 1x5x5x4 input to 6 channels, requantized to int8 with ReLU."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, (1, 5, 5, 4), dtype=np.int8)
    w = rng.integers(-128, 128, (6, 3, 3, 4), dtype=np.int8)
    b = rng.integers(-5000, 5000, 6, dtype=np.int32)
    acc = golden.conv2d(x, w, b, stride=1, padding=1)
    multiplier, shift = golden.choose_requant(acc)
    return x, w, b, multiplier, shift


@cocotb.test()
async def conv_layer_is_bit_exact(dut):
    x, w, b, multiplier, shift = layer(zlib.crc32(b"conv_layer_is_bit_exact"))
    spec = Conv2dSpec.from_tensors(x, w, b, stride=1, padding=1)
    program = compile_conv(x, w, b, spec, TILE, multiplier=multiplier, shift=shift, relu=True)
    assert len(dut.ext__ra_data) == 8 * TILE.ext_bytes, "the Verilog is of another tile"

    dut.start.value = 0
    memory = ExtMemoryModel(dut, TILE.ext_words * TILE.ext_bytes)
    memory.write(0, program.image.tobytes())
    await start_clock_and_reset(dut)
    dut.start.value = 1
    await RisingEdge(dut.clk)
    dut.start.value = 0
    for _ in range(200_000):
        await RisingEdge(dut.clk)
        await ReadOnly()
        if int(dut.done.value):
            break
    else:
        raise AssertionError(f"no done after 200000 cycles (reader {int(dut.reader_state.value)}, "
                             f"compute {int(dut.compute_state.value)}, writer {int(dut.writer_state.value)})")
    await ClockCycles(dut.clk, 2)

    out = np.frombuffer(memory.read(program.out_addr, program.out_bytes), np.int8).reshape(program.out_shape)
    want = golden.requantize(golden.conv2d(x, w, b, stride=1, padding=1), multiplier, shift, relu=True)
    mismatches = np.argwhere(out != want)
    assert not len(mismatches), f"{len(mismatches)} outputs differ, first at {tuple(mismatches[0])}"
    assert int(dut.macs.value) > 0
    assert int(dut.ext_bytes_written.value) >= program.out_bytes
    assert memory.writes > 0 and memory.reads > 0
