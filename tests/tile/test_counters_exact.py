# amaranth: UnusedElaboratable=no
"""The tile's L1 counters against an independent count of every L1 bank's write and read enables."""

import numpy as np

from tests.cases import TILE, tensors
from tilelab.compile.tile import compile_conv
from tilelab.pe_models.tile import TileTop
from tilelab.reference import golden
from tilelab.reference.layers import Conv2dSpec
from tilelab.sim.testbench import run_simulation


def test_l1_counters_count_every_bank_access():
    # A 3x3 conv with more output pixels than the output buffer holds, so the reader streams the
    # next input rows while pack writes results: both write L1 in the same cycles.
    x, w, b = tensors(1, 6, 6, 8, 8, 3, seed=4)
    spec = Conv2dSpec.from_tensors(x, w, b, stride=1, padding=1)
    m, sh = golden.choose_requant(golden.conv2d(x, w, b, stride=1, padding=1))
    program = compile_conv(x, w, b, spec, TILE, multiplier=np.full(8, m), shift=np.full(8, sh))
    W = TILE.ext_bytes
    image = np.concatenate([program.image, np.zeros((-len(program.image)) % W, np.uint8)])
    words = [int.from_bytes(image[i:i + W].tobytes(), "little") for i in range(0, len(image), W)]
    dut = TileTop(TILE.replace(mem_impl="amaranth"), init=words)
    tile = dut.unit
    seen = {"writes": 0, "reads": 0, "both": 0}
    lanes = TILE.rows + 2 * TILE.cols        # activation, weight and parameter lane banks; then the output buffers

    async def watch(ctx):
        banks = tile.l1_banks
        async for _clk, _rst, *enables in ctx.tick().sample(*(b.wr_en for b in banks), *(b.rd_en for b in banks)):
            enables, reads = enables[:len(banks)], enables[len(banks):]
            seen["writes"] += sum(enables)
            seen["reads"] += sum(reads)
            seen["both"] += bool(any(enables[:lanes]) and any(enables[lanes:]))

    async def tb(ctx):
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        for _ in range(200_000):
            if ctx.get(dut.done):
                break
            await ctx.tick()
        assert ctx.get(dut.done)
        await ctx.tick()
        assert seen["both"] > 0, "the layer never has the reader and pack write L1 in one cycle"
        assert ctx.get(dut.l1_writes) == seen["writes"]
        assert ctx.get(dut.l1_reads) == seen["reads"]

    run_simulation(dut, tb, processes=[watch])

