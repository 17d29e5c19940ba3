"""The conv case table every level replays: the golden model against a direct loop, the compute tile,
and the mesh of tiles with height and block sharding — as PyMTL3 replays one suite on its
function-level, cycle-level and RTL models.

Inputs are seeded from ``zlib.crc32`` of the case's name (:func:`seed_of`), never ``hash()``, so a
failure reproduces from its test id in any process.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from tilelab.api.conv import Requant
from tilelab.pe_models.config import TileConfig
from tilelab.reference import golden

#: The small tile every test compiles (one Verilator build for the whole suite): a 4×4 array with
#: 4 KiB per lane, so realistic layers need several blocks, and onnxruntime's float requantization.
TILE = TileConfig(rows=4, cols=4, ext_bytes=16, ext_words=1 << 15, act_lane_bytes=4096, wgt_lane_bytes=4096,
                  param_lane_bytes=512, out_entries=16, float_requant=True, split_k=4)


def seed_of(*parts) -> int:
    """A seed from the parts' text: the same in every process and on every machine."""
    return zlib.crc32(repr(parts).encode())


def tensors(n, h, w, cin, cout, k, groups=1, seed=0, kw=None):
    """Random NHWC int8 input, OHWI int8 weights and int32 bias."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, (n, h, w, cin), dtype=np.int8)
    wt = rng.integers(-128, 128, (cout, k, kw or k, cin // groups), dtype=np.int8)
    b = rng.integers(-5000, 5000, cout, dtype=np.int32)
    return x, wt, b


def requant_for(x, w, b, *, stride, padding, dilation, groups, zero_point=-3, pad_value=0, float_scale=False):
    """Per-channel requantization chosen from the layer's golden accumulators (the 99.9th
    percentile of ``|acc|`` maps to 127): integer ``(M, s)``, or with ``float_scale``
    onnxruntime's float32 scales."""
    acc = golden.conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups,
                        pad_value=pad_value)
    if float_scale:
        level = np.percentile(np.abs(acc.reshape(-1, acc.shape[-1]).astype(np.float64)), 99.9, axis=0)
        return Requant(zero_point=zero_point, scale=(127 / np.maximum(level, 1.0)).astype(np.float32))
    m, s = golden.choose_requant(acc)
    return Requant(m, s, zero_point=zero_point)


@dataclass(frozen=True)
class ConvCase:
    """One conv layer of the table."""

    name: str
    n: int
    h: int
    w: int
    cin: int
    cout: int
    k: int
    stride: int
    pad: int
    dil: int
    groups: int
    out: str
    quant: str = "int"      #: "int": integer (M, s) requantization; "ort": onnxruntime's (float scale, padding of zp)

    @property
    def conv(self) -> dict:
        """The convolution's keyword arguments (without the padding value, see :attr:`pad_value`)."""
        return {"stride": self.stride, "padding": self.pad, "dilation": self.dil, "groups": self.groups}

    @property
    def pad_value(self) -> int:
        """The padding's value: an input zero point for the onnxruntime cases, else 0."""
        return seed_of(self.name) % 200 - 100 if self.quant == "ort" else 0

    def tensors(self):
        """``(x, w, bias)`` seeded from the case's name."""
        return tensors(self.n, self.h, self.w, self.cin, self.cout, self.k, self.groups, seed=seed_of(self.name))

    def layer(self):
        """``(x, w, bias, requant, activation)``: int8 cases requantize per channel and apply ReLU
        (the onnxruntime cases: float scales, zero point 5, no ReLU)."""
        x, w, b = self.tensors()
        if self.out == "int32":
            return x, w, b, None, None
        if self.quant == "ort":
            return x, w, b, requant_for(x, w, b, zero_point=5, pad_value=self.pad_value, float_scale=True,
                                        **self.conv), None
        return x, w, b, requant_for(x, w, b, **self.conv), "relu"

    def golden(self, x, w, b, requant):
        """The golden output of the layer."""
        acc = golden.conv2d(x, w, b, pad_value=self.pad_value, **self.conv)
        if self.out == "int32":
            return acc
        if self.quant == "ort":
            return golden.requantize_float(acc, requant.scale, requant.zero_point)
        return golden.requantize(acc, requant.multiplier, requant.shift, requant.zero_point, relu=True)


CONV_CASES = [ConvCase(*row) for row in [
    # name,              n, h,  w,  cin, cout, k, stride, pad, dil, groups, out
    ("1x1",              1, 6,  5,  8,   8,    1, 1,      0,   1,   1,      "int32"),
    ("3x3-pad1",         1, 7,  6,  5,   6,    3, 1,      1,   1,   1,      "int8"),
    ("3x3-s2-pad1",      1, 9,  9,  8,   12,   3, 2,      1,   1,   1,      "int32"),
    ("7x7-s2-pad3",      1, 12, 12, 3,   8,    7, 2,      3,   1,   1,      "int8"),
    ("3x3-dil2",         1, 9,  8,  4,   5,    3, 1,      2,   2,   1,      "int32"),
    ("groups2",          1, 6,  6,  6,   10,   3, 1,      1,   1,   2,      "int8"),
    ("depthwise",        1, 8,  7,  8,   8,    3, 1,      1,   1,   8,      "int8"),
    ("depthwise-s2-odd", 1, 9,  9,  6,   6,    3, 2,      1,   1,   6,      "int32"),
    ("dw-pad0-n2-c6",    2, 7,  6,  6,   6,    3, 1,      0,   1,   6,      "int8"),
    ("dw-s2-pad0-c10",   1, 9,  8,  10,  10,   3, 2,      0,   1,   10,     "int32"),
    ("dw-s2-pad1-n2-c5", 2, 8,  9,  5,   5,    3, 2,      1,   1,   5,      "int8"),
    ("dw-dil2-wide",     1, 6,  11, 3,   3,    3, 1,      2,   2,   3,      "int32"),
    ("dw-5x5-s2-pad2",   1, 9,  10, 4,   4,    5, 2,      2,   1,   4,      "int8"),
    ("odd-channels-n2",  2, 5,  5,  7,   9,    3, 1,      1,   1,   1,      "int8"),
    ("blocked",          1, 16, 16, 32,  16,   3, 1,      1,   1,   1,      "int8"),
    # grouped convs with g = Cin/groups = Cout/groups channels per group: g a power of two up to C
    # runs in the depthwise mode's grouped form; other groups (g > C, g not a power of two) fall
    # back to the dense path, group by group
    ("grouped-g2",       1, 7,  6,  8,   8,    3, 1,      1,   1,   4,      "int8"),
    ("grouped-g4-s2",    1, 9,  8,  16,  16,   3, 2,      1,   1,   4,      "int32"),
    ("grouped-g4-n2-c12-dil2", 2, 6, 7, 12, 12, 3, 1,     2,   2,   3,      "int8"),
    ("grouped-g8-dense", 1, 6,  6,  16,  16,   3, 1,      1,   1,   2,      "int8"),
    ("grouped-g3-dense", 1, 6,  6,  12,  12,   3, 1,      1,   1,   4,      "int32"),
    # onnxruntime's requantization (float32 scales) and padding with the input's zero point
    ("ort-7x7-s2-pad3",  1, 12, 12, 3,   8,    7, 2,      3,   1,   1,      "int8", "ort"),
    ("ort-groups2",      1, 6,  6,  6,   10,   3, 1,      1,   1,   2,      "int8", "ort"),
    ("ort-depthwise",    1, 8,  7,  8,   8,    3, 1,      1,   1,   8,      "int8", "ort"),
    ("ort-dw-s2-pad2",   1, 9,  10, 4,   4,    5, 2,      2,   1,   4,      "int8", "ort"),
    ("ort-grouped-g2",   1, 7,  7,  8,   8,    3, 1,      1,   1,   4,      "int8", "ort"),
]]
CASE_IDS = [c.name for c in CONV_CASES]
