"""Check the MAC array against numpy on any backend (used by the tests and ``tilelab demo``)."""

from __future__ import annotations

import numpy as np

from tilelab.hdl.mac import mac_array_layouts

from .streams import StreamSink, StreamSource, run_streams


def mac_blocks(rows, cols, ks, seed, depthwise=False):
    """Return random blocks: a list of (a [k, rows], b [k, cols], a2 [k, rows, cols] or None, dw)."""
    rng = np.random.default_rng(seed)
    blocks = []
    for i, k in enumerate(ks):
        a = rng.integers(-128, 128, size=(k, rows))
        b = rng.integers(-128, 128, size=(k, cols))
        dw = bool(depthwise and i % 2 == 1)
        a2 = rng.integers(-128, 128, size=(k, rows, cols)) if depthwise else None
        blocks.append((a, b, a2, dw))
    return blocks


def expected_rows(blocks):
    """Return the numpy golden output rows of ``blocks``, in drain order."""
    out = []
    for a, b, a2, dw in blocks:
        if dw:
            acc = np.einsum("krc,kc->rc", a2, b)
        else:
            acc = a.T @ b
        out.extend(acc.tolist())
    return out


async def mac_array_bench(io, *, rows, cols, ks, seed, idle=0.3, stall=0.3, depthwise=False, drain_rows=1):
    """Feed random blocks with idle cycles and backpressure; assert every row exactly (``drain_rows``
    rows per output transfer)."""
    lin, lout = mac_array_layouts(rows, cols, depthwise=depthwise, drain_rows=drain_rows)
    blocks = mac_blocks(rows, cols, ks, seed, depthwise)
    items = []
    for a, b, a2, dw in blocks:
        k = len(a)
        for s in range(k):
            fields = {"a": a[s].tolist(), "b": b[s].tolist(), "first": int(s == 0), "last": int(s == k - 1)}
            if depthwise:
                fields["dw"] = int(dw)
                fields["a2"] = a2[s].tolist()
            items.append(lin.const(fields).as_bits())
    await io.reset()
    src = StreamSource("i", items, idle=idle, seed=seed)
    sink = StreamSink("o", stall=stall, seed=seed + 1)
    per_block = rows // drain_rows
    cycles = await run_streams(io, [src], [sink], expect={"o": per_block * len(blocks)},
                               max_cycles=50 * len(items) + 500)
    want = expected_rows(blocks)
    for t, bits in enumerate(sink.items):
        v = lout.from_bits(bits)
        first = (t % per_block) * drain_rows
        assert v.index == first, f"transfer {t}: index {v.index} != {first}"
        assert v.last == int(t % per_block == per_block - 1), f"transfer {t}: last flag {v.last}"
        for i, field in enumerate(("row", "row1")[:drain_rows]):
            n = t * drain_rows + i
            got = [getattr(v, field)[c] for c in range(cols)]
            assert got == want[n], f"row {n}: got {got}, expected {want[n]}"
    return {"cycles": cycles, "rows_checked": len(sink.items) * drain_rows, "macs": io.get("macs")}
