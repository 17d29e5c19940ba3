"""Constrained-random conv layers on two small tiles, checked bit for bit against a direct reference.

A seeded generator (seeds from ``zlib.crc32`` of the case name, so a failure names a reproducible
case) draws dense, grouped (also with equal input and output channels per group, 2, 3, 4 or 8 of
them) and depthwise layers: kernels 1-7 and rectangular, strides 1-3 and
padding up to kernel-1 per axis, dilation, batch 1-2, channel counts that are not multiples of the
array or the port width, int32 and int8 outputs (per-tensor and per-channel requantization, ReLU,
zero points). Every output is compared with a loop-by-loop convolution and requantization written
here, independent of ``tilelab.reference.golden``. A layer the tile cannot take must be refused with
a clear error (``ValueError`` / ``LayoutError`` naming the limit), never answered wrongly. The MACs
per layer are bounded and each tile runs its layers in one simulator process, so the whole file
takes seconds on the two tiles the suite already builds.
"""

import random
import zlib

import numpy as np
import pytest

from tests.cases import TILE
from tilelab.api.conv import Requant, conv2d
from tilelab.compile.tile import LayoutError
from tilelab.drive import SimServer, tile_unit
from tilelab.pe_models.config import DEFAULT_TILE
from tilelab.reference import golden

#: The two tiles: the suite's 4x4 test tile (16-byte ports, small L1) and the default tile's memories
#: with a 4x4 array (64-byte ports), the one ``tests/tile/test_cli_conv.py`` builds.
TILES = {"test-tile": TILE, "default-4x4": DEFAULT_TILE.replace(rows=4, cols=4)}
LAYERS_PER_TILE = 10
MAX_MACS = 150_000


def random_layer(rng: random.Random) -> dict:
    """One layer within the bounds of the module docstring and at most ``MAX_MACS`` MACs."""
    while True:
        kind = rng.choice(["dense", "grouped", "grouped-equal", "depthwise"])
        kh, kw = rng.randint(1, 7), rng.randint(1, 7)
        sh, sw = rng.randint(1, 3), rng.randint(1, 3)
        ph, pw = rng.randint(0, kh - 1), rng.randint(0, kw - 1)
        dh, dw = (rng.randint(1, 2), rng.randint(1, 2)) if rng.random() < 0.3 else (1, 1)
        n = rng.randint(1, 2)
        h, w = rng.randint(1, 12), rng.randint(1, 12)
        if kind == "depthwise":
            cin = cout = groups = rng.randint(1, 72)
        elif kind == "grouped-equal":     # as many input as output channels per group (ResNeXt)
            cg = rng.choice([2, 3, 4, 8])
            groups = rng.randint(2, 72 // cg)
            cin = cout = groups * cg
        elif kind == "grouped":
            groups = rng.randint(2, 4)
            cin, cout = groups * rng.randint(1, 72 // groups), groups * rng.randint(1, 72 // groups)
        else:
            groups, cin, cout = 1, rng.randint(1, 72), rng.randint(1, 72)
        ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
        wo = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
        if ho < 1 or wo < 1 or n * ho * wo * cout * kh * kw * (cin // groups) > MAX_MACS:
            continue
        out = rng.choice(["int32", "int8-tensor", "int8-channel"])
        return dict(kind=kind, n=n, h=h, w=w, cin=cin, cout=cout, kh=kh, kw=kw, stride=(sh, sw), padding=(ph, pw),
                    dilation=(dh, dw), groups=groups, out=out, relu=out != "int32" and rng.random() < 0.5,
                    zero_point=rng.randint(-20, 20) if out != "int32" else 0)


def direct_conv(x, w, b, *, stride, padding, dilation, groups) -> np.ndarray:
    """int32 accumulators by the definition: every output pixel, every tap, zero padding."""
    n, h, wd, cin = x.shape
    cout, kh, kw, cg = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    wo = (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    xp = np.zeros((n, h + 2 * ph, wd + 2 * pw, cin), np.int64)
    xp[:, ph:ph + h, pw:pw + wd] = x
    acc = np.zeros((n, ho, wo, cout), np.int64) + b.astype(np.int64)
    per_group = cout // groups
    for i in range(kh):
        for j in range(kw):
            rows = xp[:, i * dh:i * dh + sh * (ho - 1) + 1:sh, j * dw:j * dw + sw * (wo - 1) + 1:sw]
            for g in range(groups):
                xs = rows[..., g * cg:(g + 1) * cg]
                ws = w[g * per_group:(g + 1) * per_group, i, j].astype(np.int64)
                acc[..., g * per_group:(g + 1) * per_group] += xs @ ws.T
    return ((acc + (1 << 31)) % (1 << 32) - (1 << 31)).astype(np.int32)  # int32 accumulators wrap


def direct_requant(acc, m, s, zero_point, relu) -> np.ndarray:
    """The README's contract in Python integers (no width limit)."""
    cout = acc.shape[-1]
    m = np.broadcast_to(np.asarray(m, np.int64), (cout,))
    s = np.broadcast_to(np.asarray(s, np.int64), (cout,))
    out = np.empty(acc.shape, np.int8)
    for idx, a in np.ndenumerate(acc):
        c = idx[-1]
        t = ((int(a) * int(m[c]) + (1 << (int(s[c]) - 1))) >> int(s[c])) + zero_point
        if relu:
            t = max(t, zero_point)
        out[idx] = min(127, max(-128, t))
    return out


@pytest.mark.parametrize("tile_name", list(TILES))
def test_random_layers_bit_exact_or_refused(tile_name):
    config = TILES[tile_name]
    outcomes = []
    with SimServer(tile_unit(config)) as server:
        for k in range(LAYERS_PER_TILE):
            case = f"random-layer-{tile_name}-{k}"
            rng = random.Random(zlib.crc32(case.encode()))
            layer = random_layer(rng)
            data = np.random.default_rng(zlib.crc32(case.encode()))
            x = data.integers(-128, 128, (layer["n"], layer["h"], layer["w"], layer["cin"]), dtype=np.int8)
            wt = data.integers(-128, 128, (layer["cout"], layer["kh"], layer["kw"], layer["cin"] // layer["groups"]),
                               dtype=np.int8)
            b = data.integers(-3000, 3000, layer["cout"], dtype=np.int32)
            conv = {key: layer[key] for key in ("stride", "padding", "dilation", "groups")}
            acc = direct_conv(x, wt, b, **conv)
            rq = None
            if layer["out"] != "int32":
                m, s = golden.choose_requant(acc, per_channel=layer["out"] == "int8-channel")
                rq = Requant(m, s, layer["zero_point"])
            try:
                y, stats = conv2d(x, wt, b, requant=rq, activation="relu" if layer["relu"] else None,
                                  out="int32" if rq is None else "int8", config=config, server=server, **conv)
            except (ValueError, LayoutError) as error:  # refused: a clear message, nothing run
                assert str(error), (case, layer)
                outcomes.append((case, "refused", str(error)))
                continue
            want = acc if rq is None else direct_requant(acc, rq.multiplier, rq.shift, rq.zero_point, layer["relu"])
            assert y.dtype == want.dtype and y.shape == want.shape, (case, layer)
            assert np.array_equal(y, want), (case, layer)
            assert stats.bit_exact, (case, layer)
            outcomes.append((case, "bit-exact", ""))
    print(f"{tile_name}: " + ", ".join(f"{case} {result}" for case, result, _ in outcomes))
    assert sum(o[1] == "bit-exact" for o in outcomes) >= LAYERS_PER_TILE // 2, outcomes
