"""Backend-neutral benches for the memory models."""

import random


async def extmem_bench(io, *, width, depth, ops, seed):
    """Random unaligned reads and masked writes against a Python byte-array model."""
    rng = random.Random(seed)
    model = bytearray(width * depth)  # both models start all-zero
    await io.reset()
    pending = None
    mism = []
    for i in range(ops):
        kind = rng.random()
        addr = rng.randrange(0, width * (depth - 1))
        io.set("wr_en", 0)
        io.set("ra_en", 0)
        io.set("rb_en", 0)
        if kind < 0.5:
            data = rng.getrandbits(8 * width)
            mask = rng.getrandbits(width)
            io.set("wr_en", 1)
            io.set("wr_addr", addr)
            io.set("wr_data", data)
            io.set("wr_mask", mask)
            # reads in the same cycle see the old contents
            raddr = rng.randrange(0, width * (depth - 1))
            io.set("ra_en", 1)
            io.set("ra_addr", raddr)
            old = int.from_bytes(model[raddr:raddr + width], "little")
            for b in range(width):
                if mask >> b & 1:
                    model[addr + b] = (data >> (8 * b)) & 0xFF
            await io.tick()
            pending = ("ra_data", raddr, old)
        else:
            port = "ra" if kind < 0.75 else "rb"
            io.set(f"{port}_en", 1)
            io.set(f"{port}_addr", addr)
            await io.tick()
            pending = (f"{port}_data", addr, int.from_bytes(model[addr:addr + width], "little"))
        got = io.get(pending[0])
        if got != pending[2]:
            mism.append((i, pending[1], hex(got), hex(pending[2])))
    assert not mism, f"{len(mism)} mismatches, first: {mism[:3]}"
    return {"ops": ops}
