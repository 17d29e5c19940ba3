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


async def mac_array_bench(io, *, rows, cols, ks, seed, idle=0.3, stall=0.3, depthwise=False, drain_rows=1,
                          counts=None):
    """Feed random blocks with idle cycles and backpressure; assert every row exactly (``drain_rows``
    rows per output transfer). With ``counts`` (an array built with ``drain_count``) block ``i``
    drains only its first ``counts[i]`` rows (0: all), in ``ceil(counts[i] / drain_rows)`` transfers."""
    lin, lout = mac_array_layouts(rows, cols, depthwise=depthwise, drain_rows=drain_rows,
                                  drain_count=counts is not None)
    blocks = mac_blocks(rows, cols, ks, seed, depthwise)
    drained = [c or rows for c in counts] if counts is not None else [rows] * len(blocks)
    items = []
    for i, (a, b, a2, dw) in enumerate(blocks):
        k = len(a)
        for s in range(k):
            fields = {"a": a[s].tolist(), "b": b[s].tolist(), "first": int(s == 0), "last": int(s == k - 1)}
            if counts is not None:
                fields["count"] = counts[i] if s == k - 1 else 0
            if depthwise:
                fields["dw"] = int(dw)
                fields["a2"] = a2[s].tolist()
            items.append(lin.const(fields).as_bits())
    await io.reset()
    src = StreamSource("i", items, idle=idle, seed=seed)
    sink = StreamSink("o", stall=stall, seed=seed + 1)
    per_block = [-(-n // drain_rows) for n in drained]
    cycles = await run_streams(io, [src], [sink], expect={"o": sum(per_block)},
                               max_cycles=50 * len(items) + 500)
    want = expected_rows(blocks)
    # (block, transfer within it) of every output transfer
    where = [(i, t) for i, n in enumerate(per_block) for t in range(n)]
    checked = 0
    for (i, t), bits in zip(where, sink.items, strict=True):
        v = lout.from_bits(bits)
        first = t * drain_rows
        assert v.index == first, f"block {i} transfer {t}: index {v.index} != {first}"
        assert v.last == int(t == per_block[i] - 1), f"block {i} transfer {t}: last flag {v.last}"
        for j, field in enumerate(("row", "row1")[:drain_rows]):
            if first + j >= drained[i]:
                continue            # a padding row of the last transfer
            got = [getattr(v, field)[c] for c in range(cols)]
            want_row = want[i * rows + first + j]
            assert got == want_row, f"block {i} row {first + j}: got {got}, expected {want_row}"
            checked += 1
    return {"cycles": cycles, "rows_checked": checked, "macs": io.get("macs")}
