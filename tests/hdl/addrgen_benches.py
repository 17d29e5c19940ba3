"""Backend-neutral bench for the affine address generator (Amaranth, Verilator, Icarus)."""

import random

from tilelab.hdl.formats.addrgen import AddrGenDescriptor, AddrGenFormat, expand_outputs
from tilelab.sim.streams import StreamSink, StreamSource, run_streams


def random_descriptors(fmt: AddrGenFormat, seed: int, count: int):
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        loops = rng.randint(1, fmt.loops)
        counts = tuple(rng.randint(1, 4) for _ in range(loops))
        strides = tuple(rng.randint(-20, 20) for _ in range(loops))
        out.append(AddrGenDescriptor(base=rng.randint(200, 400), counts=counts, strides=strides))
    return out


async def addrgen_bench(io, *, addr_width, loops, count_width, seed, count):
    """Random descriptors under idle and backpressure; every output checked against the model."""
    fmt = AddrGenFormat(addr_width=addr_width, loops=loops, count_width=count_width)
    descs = random_descriptors(fmt, seed, count)
    expected = [o for d in descs for o in expand_outputs(d, addr_width=addr_width, loops=loops)]
    await io.reset()
    src = StreamSource("desc", [fmt.pack(d) for d in descs], idle=0.3, seed=seed)
    sink = StreamSink("o", stall=0.3, seed=seed + 1)
    cycles = await run_streams(io, [src], [sink], expect={"o": len(expected)}, max_cycles=20 * len(expected) + 200)
    got = [fmt.decode_output(bits) for bits in sink.items]
    assert len(got) == len(expected)
    for i, (a, b) in enumerate(zip(got, expected, strict=True)):
        assert a == b, f"output {i}: got {a}, expected {b}"
    assert io.get("busy") == 0, "the generator is still busy after its last output"
    return {"outputs": len(got), "cycles": cycles}
