"""cocotb bench of the output-stationary MAC array (``tilelab verilog mac-array --rows 4 --cols 4``).

Random int8 blocks go in under idle insertion, results come out under backpressure, and every
accumulator row is compared with a numpy model; the bench ends by asserting nothing extra arrived.
Payloads are packed and unpacked with :class:`tilelab.hdl.formats.Format`, from the same layouts
the RTL is built from. ``MAC_EXAMPLE_BROKEN_MODEL=1`` breaks the model on purpose: the test must
then fail.
"""

import os
import zlib

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles

from tilelab.hdl.formats import Format
from tilelab.hdl.mac import mac_array_layouts
from tilelab.sim.cocotb_streams import StreamSink, StreamSource, bernoulli, start_clock_and_reset

#: The array's size (``MAC_EXAMPLE_SIZE``, default 4: ``--rows 4 --cols 4``) and how many times the
#: tests' block counts are repeated (``MAC_EXAMPLE_SCALE``, default 1; benchmarks run longer benches).
ROWS = COLS = int(os.environ.get("MAC_EXAMPLE_SIZE", "4"))
SCALE = int(os.environ.get("MAC_EXAMPLE_SCALE", "1"))


def model(a, b):
    """The block's accumulators: ``a`` is (K, ROWS), ``b`` (K, COLS); int32 (ROWS, COLS)."""
    acc = a.astype(np.int64).T @ b.astype(np.int64)
    if os.environ.get("MAC_EXAMPLE_BROKEN_MODEL"):
        acc[0, 0] += 1
    return acc.astype(np.int32)


async def run_blocks(dut, *, blocks, idle, backpressure, seed):
    step_fmt, row_fmt = (Format(layout) for layout in mac_array_layouts(ROWS, COLS))
    assert step_fmt.width == len(dut.i__payload) and row_fmt.width == len(dut.o__payload)
    await start_clock_and_reset(dut)
    src = StreamSource(dut, "i", idle=bernoulli(idle, seed=seed))
    sink = StreamSink(dut, "o", backpressure=bernoulli(backpressure, seed=seed + 1))
    rng = np.random.default_rng(seed)
    expected = []
    for _ in range(blocks):
        k = int(rng.integers(1, 9))
        a = rng.integers(-128, 128, size=(k, ROWS))
        b = rng.integers(-128, 128, size=(k, COLS))
        for step in range(k):
            src.send_nowait(step_fmt.pack({"a": a[step].tolist(), "b": b[step].tolist(),
                                           "first": step == 0, "last": step == k - 1}))
        expected.append(model(a, b))
    for block in expected:
        for r in range(ROWS):
            row = row_fmt.unpack(await sink.recv())
            assert row["index"] == r and row["last"] == (r == ROWS - 1), row
            assert row["row"] == block[r].tolist(), f"row {r}: {row['row']} != {block[r].tolist()}"
    await src.wait()
    await ClockCycles(dut.clk, 30)
    assert sink.empty(), "the array delivered more rows than the blocks have"


@cocotb.test()
async def blocks_without_stalls(dut):
    await run_blocks(dut, blocks=4 * SCALE, idle=0.0, backpressure=0.0, seed=zlib.crc32(b"blocks_without_stalls"))


@cocotb.test()
async def blocks_with_idle_and_backpressure(dut):
    await run_blocks(dut, blocks=6 * SCALE, idle=0.3, backpressure=0.5, seed=zlib.crc32(b"idle_and_backpressure"))
