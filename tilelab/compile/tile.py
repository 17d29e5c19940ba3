"""Lowering one conv (or linear) layer onto one compute tile: blocking, descriptors, memory image.

The compiler reads the tile's :class:`~tilelab.pe_models.config.TileConfig`, chooses blocks under
the L1 limits, and emits the three descriptor streams (reader, compute, writer) plus an external
memory image holding the program, the input, the weights and the per-channel parameters. The
hardware does the rest: im2col addressing, multiply-accumulate, requantization, the stores.

Blocking (per group, or per channel group of up to W channels in depthwise mode)::

    for each column block of bN = n·C output channels:     weights [K, bN] loaded once (page),
        params for the block                               reused down the column
        for each row block of bM ≤ m·R output pixels:      activations [bM, K] (im2col rows)
            compute m × n math tiles of R × C, K steps     double-buffered pages
            store bM × bN outputs

Row blocks ramp up: 1, 2, 4, … activation tiles, then ``m`` each. The math cannot start before
the first block's activations are in L1, so a one-tile first block exposes the least loading;
each later block loads while the one before it computes (a tile's math takes ``n·K`` cycles, its
load about ``R·K / W``, so a block twice the size of the one computing still arrives in time
whenever the math is at least twice the load).

Pages: an activation page holds ``m·K`` bytes per lane (R lanes), a weight page ``n·K`` bytes per
lane (C lanes); each CB has two pages of half its lane bank. So the L1 limit reads
``K·(bM + bN) ≤ (act_page_bytes·R + wgt_page_bytes·C)`` — the guide's rule, per lane.

For int8 outputs the ``n`` weight tiles of an activation tile share its output entries in groups
of ``PACK_SLOTS`` (``packed``, :func:`_packs`), so the writer stores ``ceil(channels / W)`` pieces
a pixel instead of one per weight tile; the column block's width counts those stores
(:func:`_writer_pieces`). A layer whose taps run (a tap is a whole pixel) reads the same kernel row
of up to ``2 · READ_GANG`` neighbouring output pixels in one W-byte read (:func:`act_gang`, a
pixel gang of ``ReadDesc.gang``), its im2col rows padded to a power of two when that keeps every
kernel row inside one word of its lane (a 3×3 stem of 3 channels: 27 bytes → 32).

Depthwise conv (``groups == cin == cout``) on a tile with the depthwise mode has its own mapping:
channels go in groups of up to W (``ext_bytes``), i.e. W / C weight tiles, so that one pixel of
the group is one external-memory word. The activation CB is a ring over the whole lane bank,
counted in words: per group and image one streaming read loads every input row the layer reads
once, word by word, broadcast to every activation lane. The output rows are cut into blocks: the
first row alone (its tile waits for the fewest rows), the rows that read the last input row alone
(the work left when that row arrives), and between them blocks whose window and the rows the next
block adds fit the ring. A block's window is the input rows its taps reach; each activation tile
waits until the rows its last lane reads have arrived, and when the block is done it pops the rows
the next block no longer reads. The compute engine's per-lane address generator picks every output
pixel's taps out of the window and feeds zeros for taps in the padding. For int8 outputs the
W / C weight tiles of an activation tile share their output entries (``packed``), so the writer
stores a pixel's group of channels in one W-byte write. Weights and parameters load several rows
per read (``gang``), on both memory ports when the command fetcher leaves the second one free.

Grouped convs whose groups have ``g`` input and ``g`` output channels, ``g`` a power of two from
2 to C (:func:`grouped_fits`; ResNeXt, RegNet), use the same mapping with ``k = taps · g`` steps
per tile: in step ``tap · g + j`` column ``c`` multiplies input channel ``(c - c % g) + j`` of its
lane's tap by weight ``w[c, tap, j]`` (the OHWI row of its channel, ``taps · g`` bytes), so the
C columns compute C output channels of C / g groups at once instead of g of one group. Since the
steps per tile are many, the row blocks may also be equal from the first row on (the plan with the
fewest math cycles plus the first tile's wait). Other grouped convs — ``g > C`` (the dense path
already fills the columns), ``g`` not a power of two, different input and output channels per
group, or windows / weights that do not fit L1 — run group by group on the dense path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np
from amaranth.hdl import Shape
from amaranth.utils import exact_log2

from tilelab.hdl.formats.tile import (
    DESC_BYTES,
    PACK_SLOTS,
    PARAM_RECORD_BYTES,
    READ_GANG,
    ComputeDesc,
    ParamRecord,
    ProgramHeader,
    ReadDesc,
    Target,
    WriteDesc,
)
from tilelab.pe_models.config import TileConfig
from tilelab.reference.layers import Conv2dSpec

__all__ = ["LayoutError", "Blocking", "TileProgram", "ProgramLayout", "ProgramStreams", "plan_blocking", "grouped_fits",
           "program_streams", "memory_map", "compile_conv", "param_records", "requant_vectors"]

_ALIGN = 64
EARLY = 1
MIN_BLOCKS = 3


class LayoutError(ValueError):
    """The layer cannot be mapped onto this tile (L1 or external memory too small, field overflow)."""


@dataclass(frozen=True)
class Blocking:
    """The blocking chosen for one layer on one tile."""

    depthwise: bool     #: element-wise MAC mode, channel groups of up to W channels
    groups: int         #: independent problems (conv groups, or channel groups in depthwise mode)
    k: int              #: reduction steps per output (K, or Kh·Kw taps × group_size in depthwise mode)
    row_bytes: int      #: bytes per activation lane row (K), or per window pixel (W) in depthwise mode
    chunk: int          #: bytes gathered per tap (Cin/groups), or per window pixel (W)
    cols_per_group: int  #: output channels per problem
    m: int              #: most activation tiles (of R pixels) in a row block (after the 1, 2, 4, … ramp)
    n: int              #: weight tiles (of C channels) per column block (depthwise: per channel group)
    row_blocks: int     #: row blocks per column block (depthwise: in the whole layer)
    col_blocks: int
    block_rows: int = 0     #: depthwise: the most output rows in a row block (a block never spans two images)
    dw_blocks: tuple = ()   #: depthwise: every row block as (channel group, image, first output row, rows)
    window_rows: int = 0    #: depthwise: at most this many input rows in a block's window (no padding rows)
    window_cols: int = 0    #: depthwise: pixels per window row (the input width)
    group_size: int = 1     #: depthwise mode: input (= output) channels per conv group (1: depthwise)
    split: int = 0          #: dense: log2 of the split-K mode's row groups G (tiles of R / G pixels, k / G steps)


def row_block_tiles(tiles: int, m: int) -> list[int]:
    """Activation tiles per row block for ``tiles`` tiles and blocks of at most ``m``: 1, 2, 4, …, m, m, …."""
    sizes, step = [], 1
    while tiles > 0:
        sizes.append(min(step, m, tiles))
        tiles -= sizes[-1]
        step = min(2 * step, m)
    return sizes


def _ceil(a, b):
    return -(-a // b)


def plan_blocking(spec: Conv2dSpec, config: TileConfig, *, out_int32: bool = False) -> Blocking:
    """Choose blocks for ``spec`` on ``config`` (int8 or, with ``out_int32``, int32 output);
    raise :class:`LayoutError` when nothing fits."""
    if spec.groups > 1 and spec.groups == spec.cin == spec.cout and config.depthwise:
        return _plan_depthwise(spec, config)
    if grouped_fits(spec, config):
        # Small conv groups in the depthwise mode: C output channels of C / g groups per weight
        # tile instead of g; when its windows or weights do not fit L1, the dense mapping.
        try:
            return _plan_depthwise(spec, config)
        except LayoutError:
            pass
    return _plan_dense(spec, config, out_int32=out_int32)


def _plan_dense(spec: Conv2dSpec, config: TileConfig, *, out_int32: bool = False) -> Blocking:
    """The dense (im2col) mapping, group by group."""
    R, C = config.rows, config.cols
    M = spec.n * spec.ho * spec.wo
    taps = spec.kh * spec.kw
    cg = spec.cin // spec.groups
    k, chunk, row_bytes = taps * cg, cg, taps * cg
    groups, cols = spec.groups, spec.cout // spec.groups
    w_row = k
    if k > 0xFFFF or row_bytes > 0xFFFF:
        raise LayoutError(f"reduction size {row_bytes!r} bytes per output exceeds the descriptor limit 65535")
    m_max = config.act_page_bytes // row_bytes
    n_max = config.wgt_page_bytes // w_row
    if m_max < 1 or n_max < 1:
        need = max(row_bytes - config.act_page_bytes, w_row - config.wgt_page_bytes)
        raise LayoutError(
            f"layer needs {row_bytes} bytes per activation lane and {w_row} per weight lane at the smallest "
            f"block ({R}x{C}), but an L1 page holds {config.act_page_bytes} / {config.wgt_page_bytes} "
            f"bytes per lane ({need} bytes short); it cannot fit L1 even at the smallest block")
    max_tiles = _field_range(ComputeDesc, "m").stop - 1
    n_hi = max(1, min(n_max, _ceil(cols, C), max_tiles, config.max_param_tiles))
    W = config.ext_bytes

    # The reader moves one piece of at most W bytes a cycle, a piece never spanning two taps: an
    # im2col row costs taps · ceil(chunk / W) cycles, a weight row ceil(K / W).
    act_row = taps * _ceil(chunk, W)
    wgt_row = _ceil(w_row, W)
    drain = R // config.out_banks       # pack's cycles per tile

    def math(split):
        # the array's cycles: the split-K mode has tiles of R / G pixels with k / G steps (pack
        # taking R / D cycles a tile)
        steps = max(k >> split, drain) if split else k
        return _ceil(M, R >> split) * _ceil(cols, C) * steps

    def cost(n, m, split):
        # Cycle estimate: the longer of math and data movement, plus what cannot overlap (the first
        # weight page, the first activation page, the final drain, and about two drains of the
        # array per column block, where the pipeline restarts on new weights).
        px = R >> split
        col_blocks = _ceil(cols, n * C)
        math_cycles = math(split)
        reader = col_blocks * (n * C * wgt_row + M * act_row)
        exposed = n * C * wgt_row + px * act_row + R + col_blocks * 2 * R     # first row block: one tile
        writer = M * _writer_pieces(cols, n, out_int32, split, config)
        return max(math_cycles, reader, writer) + exposed

    # Split-K (the reduction in G parts on G row groups, see ComputeDesc) when it takes the array
    # fewer cycles (the last tile of pixels is ragged); G divides the reduction (and so every
    # row's byte pitch).
    splits = [s for s in range(exact_log2(config.row_groups) + 1) if k % (1 << s) == 0]
    split = min(splits, key=lambda s: (math(s), s))
    if not split and groups == 1:
        # a pixel gang (ReadDesc.gang) needs every kernel row inside one word of its lane: pad
        # the rows when that makes it possible (a 3×3 stem: 27 bytes a row → 32)
        padded = _gang_row_bytes(spec, row_bytes, W)
        if padded != row_bytes and config.act_page_bytes >= padded:
            row_bytes = padded
            m_max = config.act_page_bytes // row_bytes
    px = R >> split
    m_hi = max(1, min(m_max, _ceil(M, px), max_tiles))
    tiles_m = _ceil(M, px)

    # Several row blocks per column, so activation loads double-buffer behind the math; the best
    # column width by the estimate (wide columns reload activations less, narrow ones expose less
    # weight loading at the start).
    # Small row blocks (at most 4 tiles, ramping up from 1: see row_block_tiles): the first block's
    # activations are the one load that cannot overlap the math, and a block boundary costs only a
    # few cycles.
    m = max(1, min(m_hi, 4, _ceil(tiles_m, 4)))
    n = min(range(1, n_hi + 1), key=lambda nn: (cost(nn, m, split), -nn))
    return Blocking(depthwise=False, groups=groups, k=k, row_bytes=row_bytes, chunk=chunk,
                    cols_per_group=cols, m=m, n=n, row_blocks=len(row_block_tiles(tiles_m, m)),
                    col_blocks=_ceil(cols, n * C), split=split)


def act_gang(spec: Conv2dSpec, chunk: int, row_bytes: int, W: int) -> int:
    """``ReadDesc.gang`` of a dense layer's im2col run reads (0: none): log2 of the most pixels
    of an output row whose same kernel row one W-byte read holds (pixel i's at byte
    ``i · stride_w · chunk``), at most ``2 * READ_GANG``, when the taps run (a tap is a whole pixel,
    no dilation along the width) and no kernel row of any lane row crosses a word of its lane."""
    kw, sw = spec.kw, spec.stride[1]
    run = kw * chunk
    if kw < 2 or spec.dilation[1] != 1 or spec.groups != 1 or chunk != spec.cin or run > W:
        return 0
    g = 0
    while (1 << (g + 1)) <= 2 * READ_GANG and ((1 << (g + 1)) - 1) * sw * chunk + run <= W:
        g += 1
    offsets = {(r * row_bytes) % W for r in range(W)}
    if any((o + ki * run) % W + run > W for o in offsets for ki in range(spec.kh)):
        return 0
    return g


def _gang_row_bytes(spec: Conv2dSpec, row_bytes: int, W: int) -> int:
    """``row_bytes``, or the next power of two up to W when only that lets the reads gang."""
    chunk = spec.cin
    if act_gang(spec, chunk, row_bytes, W):
        return row_bytes
    up = 1 << max(row_bytes - 1, 0).bit_length()
    return up if up <= W and act_gang(spec, chunk, up, W) else row_bytes


def _packs(n_tiles: int, out_int32: bool, split: int, config: TileConfig) -> bool:
    """Whether an activation tile's ``n_tiles`` weight tiles share output entries (``packed``, see
    :class:`~tilelab.hdl.formats.tile.ComputeDesc`): int8 rows, several tiles, no split-K, and an
    output CB that holds a tile's rows."""
    return not out_int32 and n_tiles > 1 and not split and config.out_entries >= config.rows


def _writer_pieces(cols: int, n: int, out_int32: bool, split: int, config: TileConfig) -> int:
    """The writer's stores per output pixel of ``cols`` channels in column blocks of ``n`` weight
    tiles: a store per tile's row, or with ``packed`` per group of PACK_SLOTS tiles."""
    C, W = config.cols, config.ext_bytes
    eb = 4 if out_int32 else 1
    total = 0
    for c0 in range(0, cols, n * C):
        nch = min(n * C, cols - c0)
        width = PACK_SLOTS * C if _packs(_ceil(nch, C), out_int32, split, config) else C
        total += sum(_ceil(min(width, nch - t) * eb, W) for t in range(0, nch, width))
    return total


def grouped_fits(spec: Conv2dSpec, config: TileConfig) -> bool:
    """Whether a grouped conv runs in the depthwise mode's grouped form on ``config``.

    It needs the depthwise mode, as many output as input channels per group, and ``g`` = channels
    per group a power of two from 2 to ``C`` (the array's column select swaps bytes within
    aligned g-byte groups of a lane's C-byte slot). Other grouped convs run group by group on the
    dense (im2col) path. A depthwise conv (``g == 1``) is not counted here.
    """
    g = spec.cin // spec.groups
    return (config.depthwise and spec.groups > 1 and spec.cout // spec.groups == g and 2 <= g <= config.cols
            and g & (g - 1) == 0)


def _flat_geometry(npix: int) -> dict:
    """ReadDesc geometry of ``npix`` consecutive rows (weights, parameters): a 1×npix image, 1×1 kernel."""
    return dict(kh=1, kw=1, stride_h=1, stride_w=1, dil_h=1, dil_w=1, pad_top=0, pad_left=0, h=1, w=npix, ho=1,
                wo=npix, n0=0, oh0=0, ow0=0)


def _gang(row: int, row_bytes: int, lanes: int, W: int) -> int:
    """``ReadDesc.gang`` for contiguous rows of ``row`` bytes placed ``row_bytes`` apart in their lanes.

    The largest g with 2**g rows in one W-byte read (2**g ≤ :data:`READ_GANG`, 2**g dividing the
    lane count) such that no row crosses a W-byte word of its lane: ``row_bytes`` a power of two up
    to W, or a multiple of W.
    """
    aligned = (row_bytes <= W and row_bytes & (row_bytes - 1) == 0) or row_bytes % W == 0
    g = 0
    while aligned and 2 << g <= READ_GANG and (2 << g) * row <= W and lanes % (2 << g) == 0:
        g += 1
    return g


def _flat_read(target, src, row: int, row_bytes: int, npix: int, lanes: int, W: int) -> tuple:
    """A reader entry loading ``npix`` contiguous rows of ``row`` bytes (weights, parameters), ganged."""
    geo = dict(_flat_geometry(npix), gang=_gang(row, row_bytes, lanes, W))
    return (target, src, row, row, row_bytes, npix, geo)


def _window_rows(spec: Conv2dSpec, out_rows: int) -> int:
    """At most how many input rows ``out_rows`` consecutive output rows read (padding excluded)."""
    return min(spec.h, (out_rows - 1) * spec.stride[0] + (spec.kh - 1) * spec.dilation[0] + 1)


def _dw_weight_pitch(taps: int, W: int) -> int:
    """Bytes between two channels' weights in a weight lane in the depthwise mode, for ``taps``
    weight bytes per channel (taps · g for groups of g channels): a power of two up to W (so rows
    load ganged), else ``taps``."""
    pitch = 1
    while pitch < taps:
        pitch *= 2
    return pitch if pitch <= W else taps


def _plan_depthwise(spec: Conv2dSpec, config: TileConfig) -> Blocking:
    R, C, W = config.rows, config.cols, config.ext_bytes
    cg = spec.cin // spec.groups                # channels per conv group (1: depthwise)
    taps = spec.kh * spec.kw
    ring = config.act_lane_bytes // W           # the activation ring in words: window pixels
    max_tiles = _field_range(ComputeDesc, "m").stop - 1
    one = _window_rows(spec, 1) * spec.w
    if one > ring:
        raise LayoutError(
            f"depthwise layer needs a window of {_window_rows(spec, 1)}x{spec.w} pixels of {W} bytes "
            f"({one * W} bytes) per activation lane for one output row, but an activation lane holds "
            f"{config.act_lane_bytes} bytes")
    n_t = _ceil(min(W, spec.cout), C)
    if n_t * _dw_weight_pitch(taps * cg, W) > config.wgt_page_bytes:
        raise LayoutError(f"depthwise layer needs {n_t * _dw_weight_pitch(taps * cg, W)} bytes per weight lane, but "
                          f"an L1 page holds {config.wgt_page_bytes}")
    # Blocks: a window and the rows the next block adds fit the ring together (the reader streams
    # them while the block computes); among those sizes the one with the fewest activation tiles
    # (every tile of R pixels costs R / 2 pack cycles per weight tile, real pixels or not), then
    # the largest. The first output row is a block of its own (its tile waits only for the input
    # rows of one output row), and so are the last rows, those that read the image's last input
    # row: their tiles are the work left when the last row arrives, so they should be few.
    sh, ph, reach = spec.stride[0], spec.padding[0], (spec.kh - 1) * spec.dilation[0]
    tail = sum(1 for oh in range(spec.ho) if oh * sh - ph + reach >= spec.h - 1)

    def ok(rows):
        # the window fits the ring, and so do the rows a block drops (a stride may skip rows)
        return (max(_window_rows(spec, rows), rows * sh) * spec.w <= ring
                and _ceil(rows * spec.wo, R) <= max_tiles)

    def fits(rows):
        adds = min(rows * sh, _window_rows(spec, rows))
        return ok(rows) and (_window_rows(spec, rows) + adds) * spec.w <= ring

    if not ok(1):
        raise LayoutError(f"depthwise layer's output row moves {sh} input rows of {spec.w} pixels on, more than the "
                          f"activation ring holds ({ring} words of {W} bytes)")
    tail = tail if 0 < tail < spec.ho - 1 and ok(tail) else 0

    rest = spec.ho - 1 - tail

    def split(rows):
        parts = _ceil(rest, rows)
        return [rows] * (parts - 1) + [rest - rows * (parts - 1)] if rest else []

    best = min((r for r in range(1, max(rest, 1) + 1) if r == 1 or fits(r)),
               key=lambda r: (sum(_ceil(x * spec.wo, R) for x in split(r)), -r))
    sizes = [1] + split(best) + ([tail] if tail else [])
    if cg > 1:
        # Grouped: a tile's taps·g steps per weight tile outweigh the wait for its rows, so the
        # plan may also be blocks of equal size from the first row on; the one with the fewest
        # math cycles plus the rows the first tile waits for.
        def uniform(rows):
            parts = _ceil(spec.ho, rows)
            return [rows] * (parts - 1) + [spec.ho - rows * (parts - 1)]

        def cost(plan):
            first = _window_rows(spec, min(plan[0], _ceil(R, spec.wo))) * spec.w
            return sum(_ceil(x * spec.wo, R) for x in plan) * n_t * max(taps * cg, R // 2) + first

        plans = [sizes] + [uniform(r) for r in range(1, spec.ho + 1) if r == 1 or ok(r)]
        sizes = min(plans, key=lambda plan: (cost(plan), -plan[0]))
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    groups = _ceil(spec.cout, W)
    blocks = [(g, n, oh0, rows) for g in range(groups) for n in range(spec.n)
              for oh0, rows in zip(starts, sizes, strict=True)]
    return Blocking(depthwise=True, groups=groups, k=taps * cg, row_bytes=W, chunk=W, group_size=cg,
                    cols_per_group=min(W, spec.cout), m=_ceil(max(sizes) * spec.wo, R), n=n_t,
                    row_blocks=spec.n * len(sizes), col_blocks=1, block_rows=max(sizes),
                    window_rows=_window_rows(spec, max(sizes)), window_cols=spec.w, dw_blocks=tuple(blocks))


@dataclass
class TileProgram:
    """A compiled layer: the external-memory image and where the output will be.

    Attributes
    ----------
    image : numpy.ndarray
        uint8 bytes of external memory from address 0 (program, input, weights, parameters).
    out_addr, out_shape, out_dtype
        Where the writer stores the output (NHWC) and its shape / dtype.
    blocking : Blocking
    descriptors : dict
        Counts of reader / compute / writer descriptors.
    """

    image: np.ndarray
    out_addr: int
    out_shape: tuple
    out_dtype: np.dtype
    blocking: Blocking
    spec: Conv2dSpec
    descriptors: dict = field(default_factory=dict)

    @property
    def out_bytes(self) -> int:
        return int(np.prod(self.out_shape)) * np.dtype(self.out_dtype).itemsize

    def extract_output(self, memory: bytes | np.ndarray, *, base: int = 0) -> np.ndarray:
        """Slice the output tensor out of an external-memory dump that starts at byte ``base``."""
        start = self.out_addr - base
        raw = np.frombuffer(memory, dtype=np.uint8)[start:start + self.out_bytes]
        return raw.view(self.out_dtype).reshape(self.out_shape).copy()




@dataclass(frozen=True)
class ProgramLayout:
    """Where a program's data already is (for a tile whose memory is filled by others, e.g. a mesh node).

    All byte addresses in the tile's view. ``x_addr`` holds the whole NHWC input with
    ``x_pix_stride`` bytes per pixel (≥ Cin; the input of every pixel the program reads must be
    there); ``w_addr`` / ``p_addr`` hold the weights (OHWI rows) and parameter records of the
    program's channels only, from its first channel on; ``out_addr`` receives the whole NHWC
    output (the program writes its pixels × channels). ``x_addr`` and ``out_addr`` may be
    negative when only a window of the input or output is in memory: the tile's address
    arithmetic wraps modulo the width of the descriptors' ``src`` / ``dst`` fields (2**32), and the
    program touches only the pixels it reads and writes.
    """

    x_addr: int
    x_pix_stride: int
    w_addr: int
    p_addr: int
    out_addr: int


def _field_range(struct, name) -> range:
    """The values field ``name`` of ``struct`` can hold (from the layout itself)."""
    shape = Shape.cast(struct.as_shape()[name].shape)
    if shape.signed:
        return range(-(1 << (shape.width - 1)), 1 << (shape.width - 1))
    return range(1 << shape.width)


def _bits(struct, fields, size=DESC_BYTES) -> bytes:
    """Pack ``fields`` with ``struct``; every integer must fit its field, or :class:`LayoutError`."""
    for name, value in fields.items():
        if isinstance(value, int) and value not in _field_range(struct, name):
            r = _field_range(struct, name)
            raise LayoutError(f"{struct.__name__}.{name} = {value!r} does not fit its field "
                              f"(range {r.start}..{r.stop - 1})")
    return int(struct.const(fields).as_bits()).to_bytes(size, "little")


def requant_vectors(multiplier, shift, cout: int):
    """Per-channel int64 ``(multiplier, shift)`` of length ``cout``; ones when not given (int32 output)."""
    multiplier = np.ones(cout, np.int64) if multiplier is None else multiplier
    shift = np.ones(cout, np.int64) if shift is None else shift
    return (np.broadcast_to(np.asarray(multiplier, np.int64), (cout,)),
            np.broadcast_to(np.asarray(shift, np.int64), (cout,)))


def param_records(bias, multiplier, shift) -> bytes:
    """The parameter page bytes (:class:`~tilelab.hdl.formats.tile.ParamRecord` per channel)."""
    return b"".join(_bits(ParamRecord, dict(bias=int(bias[c]), multiplier=int(multiplier[c]), shift=int(shift[c])),
                          PARAM_RECORD_BYTES) for c in range(len(bias)))


@dataclass(frozen=True)
class ProgramStreams:
    """The descriptor streams of one compiled layer, before they are packed into a memory image.

    Attributes
    ----------
    blocking : Blocking
    reader : list of tuple
        ``(target, (symbol, offset), pix_stride, chunk, row_bytes, npix, geometry)`` per
        :class:`~tilelab.hdl.formats.tile.ReadDesc`: ``symbol`` is ``"x"``, ``"w"`` or ``"p"`` (input,
        weights, parameters), ``geometry`` the descriptor's other fields.
    compute, writer : list of dict
        The fields of every :class:`~tilelab.hdl.formats.tile.ComputeDesc` /
        :class:`~tilelab.hdl.formats.tile.WriteDesc` (writer ``dst`` relative to the output).
    """

    blocking: Blocking
    reader: list
    compute: list
    writer: list


def program_streams(spec: Conv2dSpec, config: TileConfig, *, zero_point: int = 0, relu: bool = False,
                    out_int32: bool = False, pixels: tuple[int, int] | None = None,
                    channels: tuple[int, int] | None = None, x_pix_stride: int | None = None,
                    float_requant: bool = False, pad_value: int = 0) -> ProgramStreams:
    """The blocking and the three descriptor streams of a layer (what :func:`compile_conv` packs).

    Cheap and deterministic: no tensors, no memory image, no descriptor packing. Arguments as in
    :func:`compile_conv`; ``x_pix_stride`` is the input's bytes per pixel (default ``spec.cin``).
    """
    R, C, W = config.rows, config.cols, config.ext_bytes
    b = plan_blocking(spec, config, out_int32=out_int32)
    M = spec.n * spec.ho * spec.wo
    eb = 4 if out_int32 else 1
    cout = spec.cout
    p_lo, p_hi = pixels if pixels is not None else (0, M)
    c_lo, c_hi = channels if channels is not None else (0, cout)
    g = b.group_size
    if g > 1 and (p_lo % spec.wo or p_hi % spec.wo or c_lo % g or c_hi % g):
        # the grouped form computes whole output rows of whole groups; a part cut elsewhere (a
        # mesh shard) runs on the dense path
        b = _plan_dense(spec, config, out_int32=out_int32)
    if not (0 <= p_lo < p_hi <= M and 0 <= c_lo < c_hi <= cout):
        raise LayoutError(f"pixels {p_lo}..{p_hi} / channels {c_lo}..{c_hi} outside the layer's {M} output "
                          f"pixels / {cout} channels (or empty)")
    if b.depthwise and (p_lo % spec.wo or p_hi % spec.wo):
        raise LayoutError(f"a depthwise layer computes whole output rows: pixels {p_lo}..{p_hi} are not multiples "
                          f"of the output width {spec.wo}")


    reader, compute, writer = [], [], []
    sh, sw = spec.stride
    ph, pw = spec.padding
    dh, dw = spec.dilation

    def read_desc(target, src, pix_stride, chunk, row_bytes, npix, *, conv, p0=0):
        if conv:
            n0, rem = divmod(p0, spec.ho * spec.wo)
            oh0, ow0 = divmod(rem, spec.wo)
            # a kernel row's taps are adjacent (in memory and in the lane) when a tap is a whole pixel
            geo = dict(kh=spec.kh, kw=spec.kw, stride_h=sh, stride_w=sw, dil_h=dh, dil_w=dw, pad_top=ph,
                       pad_left=pw, h=spec.h, w=spec.w, ho=spec.ho, wo=spec.wo, n0=n0, oh0=oh0, ow0=ow0,
                       pad_value=pad_value, run=int(dw == 1 and chunk == pix_stride and spec.kw > 1))
        else:
            geo = _flat_geometry(npix)
        # Field ranges are checked against ReadDesc itself when the descriptor is packed.
        return (target, src, pix_stride, chunk, row_bytes, npix, geo)

    # Symbolic addresses first (sources are patched once the map is known).
    x_sym, w_sym, p_sym = "x", "w", "p"
    x_stride = spec.cin if x_pix_stride is None else x_pix_stride
    if b.depthwise:
        _depthwise_streams(spec, config, b, reader, compute, writer, zero_point=zero_point, relu=relu,
                           out_int32=out_int32, pixels=(p_lo, p_hi), channels=(c_lo, c_hi), x_stride=x_stride)
    else:
        px = R >> b.split                       # pixels per tile (split-K: R / G)
        row_starts = [p_lo]
        for tiles in row_block_tiles(_ceil(p_hi - p_lo, px), b.m):
            row_starts.append(min(row_starts[-1] + tiles * px, p_hi))
        page_words = config.act_page_bytes // W
        cpg = b.cols_per_group
        # (first channel, channels) of each conv group's part inside the channel range
        problems = [(max(g * cpg, c_lo), min((g + 1) * cpg, c_hi) - max(g * cpg, c_lo))
                    for g in range(c_lo // cpg, (c_hi - 1) // cpg + 1)]
        for c_first, nch_group in problems:
            g = c_first // cpg
            # Reader order: a column block's parameters and weights go before the previous block's
            # last EARLY row blocks of activations (their pages are free by then), so the reader
            # loads them while the array still works and the next column block does not wait.
            col_reads = []
            for c0 in range(0, nch_group, b.n * C):
                nch = min(b.n * C, nch_group - c0)
                ch0 = c_first + c0                      # first absolute output channel of the block
                w_row = b.k
                loads = [_flat_read(Target.PARAM, (p_sym, (ch0 - c_lo) * PARAM_RECORD_BYTES),
                                 PARAM_RECORD_BYTES, PARAM_RECORD_BYTES, nch, C, W),
                      _flat_read(Target.WGT, (w_sym, (ch0 - c_lo) * w_row), w_row, w_row, nch, C, W)]
                acts = []
                col_reads.append((loads, acts))
                for rb, (p0, p1) in enumerate(pairwise(row_starts)):
                    npix = p1 - p0
                    act = read_desc(Target.ACT, (x_sym, g * b.chunk), x_stride, b.chunk, b.row_bytes, npix,
                                    conv=True, p0=p0)
                    act[-1]["words"] = page_words       # one page of the activation CB
                    act[-1]["split"] = b.split
                    if act[-1]["run"] and not b.split:
                        act[-1]["gang"] = act_gang(spec, b.chunk, b.row_bytes, W)
                    acts.append(act)
                    last_rb = rb == len(row_starts) - 2
                    m_t = _ceil(npix, px)
                    n_t = _ceil(nch, C)
                    packed = _packs(n_t, out_int32, b.split, config)
                    compute.append(dict(m=m_t, n=n_t, k=b.k >> b.split, a_row_bytes=b.row_bytes, w_row_bytes=w_row,
                                        valid_rows=npix, valid_cols=nch, zero_point=zero_point, dw=0,
                                        out_int32=int(out_int32), relu=int(relu), act_wait=page_words,
                                        act_pop=page_words, pop_wgt=int(last_rb), pop_param=int(last_rb),
                                        split=b.split, packed=int(packed)))
                    writer.append(dict(dst=ch0 * eb, pix0=p0, pix_stride=cout * eb, m=m_t, n=n_t, valid_rows=npix,
                                       valid_cols=nch, out_int32=int(out_int32), split=b.split, packed=int(packed)))
            held = []
            for loads, acts in col_reads:
                reader.extend(loads)
                reader.extend(held)
                cut = len(acts) - EARLY if len(acts) > MIN_BLOCKS else len(acts)
                reader.extend(acts[:cut])
                held = acts[cut:]
            reader.extend(held)
    for d in compute:       # the output format and the padding byte are the layer's
        d.update(float_requant=int(float_requant), pad_value=pad_value)
    return ProgramStreams(blocking=b, reader=reader, compute=compute, writer=writer)


def memory_map(streams: ProgramStreams, spec: Conv2dSpec, config: TileConfig, *, out_int32: bool = False,
               layout: ProgramLayout | None = None) -> dict:
    """Where :func:`compile_conv` puts a program and its data in external memory (byte addresses).

    The header at 0, the reader, compute and writer descriptors (``reader_base``, ``compute_base``,
    ``writer_base``; ``program_bytes`` in all); without a ``layout`` also the whole input, weights,
    parameter records and output (``x_addr``, ``w_addr``, ``p_addr``, ``out_addr``) and the image's
    ``end``.

    Raises
    ------
    LayoutError
        The image does not fit the tile's external memory.
    """
    W = config.ext_bytes

    def align(v):
        return _ceil(v, _ALIGN) * _ALIGN

    where = {"reader_base": DESC_BYTES}
    where["compute_base"] = where["reader_base"] + DESC_BYTES * len(streams.reader)
    where["writer_base"] = where["compute_base"] + DESC_BYTES * len(streams.compute)
    where["program_bytes"] = addr = where["writer_base"] + DESC_BYTES * len(streams.writer)
    if layout is not None:
        return where
    x_size, w_size = spec.n * spec.h * spec.w * spec.cin, spec.weights
    where["x_addr"] = x_addr = align(addr)
    addr = x_addr + x_size
    where["w_addr"] = w_addr = align(addr + W)
    addr = w_addr + w_size
    where["p_addr"] = p_addr = align(addr + W)
    addr = p_addr + spec.cout * PARAM_RECORD_BYTES
    where["out_addr"] = out_addr = align(addr + W)
    out_bytes = spec.n * spec.ho * spec.wo * spec.cout * (4 if out_int32 else 1)
    where["end"] = end = align(out_addr + out_bytes + 2 * W)
    if end > config.ext_bytes_total:
        raise LayoutError(f"the layer needs {end} bytes of external memory (input {x_size}, weights {w_size}, "
                          f"output {out_bytes}, program {where['program_bytes']}); the tile has "
                          f"{config.ext_bytes_total}")
    return where


def compile_conv(x: np.ndarray, w: np.ndarray, bias: np.ndarray, spec: Conv2dSpec, config: TileConfig, *,
                 multiplier=None, shift=None, zero_point: int = 0, relu: bool = False,
                 out_int32: bool = False, pixels: tuple[int, int] | None = None,
                 channels: tuple[int, int] | None = None, layout: ProgramLayout | None = None,
                 scale=None, pad_value: int = 0) -> TileProgram:
    """Compile one conv layer (or the part of it given by ``pixels`` × ``channels``) for one tile.

    Parameters
    ----------
    x, w, bias : numpy.ndarray
        NHWC int8 input, OHWI int8 weights, int32 bias (already checked against ``spec``).
    spec : Conv2dSpec
    config : TileConfig
    multiplier, shift : numpy.ndarray of int, shape (Cout,)
        Requantization per output channel (int8 output).
    zero_point : int
        Output zero point.
    relu : bool
        ReLU in the pack stage.
    out_int32 : bool
        Store int32 accumulators (+ bias) instead of requantized int8.
    pixels, channels : (int, int), optional
        Compute only output pixels ``[p0, p1)`` (row-major over N, Ho, Wo) and output channels
        ``[c0, c1)``; default all. Depthwise layers compute whole output rows (``p0``, ``p1``
        multiples of Wo).
    layout : ProgramLayout, optional
        The data is placed by someone else: the image then holds only the program (header at
        byte 0), with the descriptors pointing into ``layout``; ``x``, ``w`` and ``bias`` are only
        used for their shapes and (parameters) values of the program's channels.
    scale : numpy.ndarray of float32, shape (Cout,), optional
        onnxruntime's float requantization instead of ``(multiplier, shift)`` (checked values:
        :func:`~tilelab.reference.golden.check_float_scale`).
    pad_value : int
        The int8 value of the padding (the input's zero point).
    """
    cout = spec.cout
    c_lo = channels[0] if channels is not None else 0
    streams = program_streams(spec, config, zero_point=zero_point, relu=relu, out_int32=out_int32, pixels=pixels,
                              channels=channels, x_pix_stride=layout.x_pix_stride if layout is not None else None,
                              float_requant=scale is not None, pad_value=int(pad_value))
    b, reader, compute, writer = streams.blocking, streams.reader, streams.compute, streams.writer
    if scale is not None:
        # the scale's float32 bits go where the integer multiplier would (ParamRecord.multiplier)
        multiplier = np.asarray(scale, np.float32).reshape(-1).view(np.int32)
    multiplier, shift = requant_vectors(multiplier, shift, cout)
    x_sym, w_sym, p_sym = "x", "w", "p"

    where = memory_map(streams, spec, config, out_int32=out_int32, layout=layout)
    r_base, c_base, wr_base = where["reader_base"], where["compute_base"], where["writer_base"]
    w_row_bytes = spec.kh * spec.kw * (spec.cin // spec.groups)
    if layout is not None:
        image = np.zeros(where["program_bytes"], np.uint8)
        base = {x_sym: layout.x_addr, w_sym: layout.w_addr, p_sym: layout.p_addr}
        out_addr = layout.out_addr
    else:
        x_addr, w_addr, p_addr, out_addr = where["x_addr"], where["w_addr"], where["p_addr"], where["out_addr"]
        image = np.zeros(where["end"], np.uint8)
        image[x_addr:x_addr + x.size] = x.reshape(-1).view(np.uint8)
        image[w_addr:w_addr + w.size] = w.reshape(-1).view(np.uint8)
        rec = param_records(bias, multiplier, shift)
        image[p_addr:p_addr + len(rec)] = np.frombuffer(rec, np.uint8)
        # the descriptors address the program's first channel
        base = {x_sym: x_addr, w_sym: w_addr + c_lo * w_row_bytes, p_sym: p_addr + c_lo * PARAM_RECORD_BYTES}

    hdr = _bits(ProgramHeader, dict(reader_base=r_base, reader_count=len(reader), compute_base=c_base,
                                    compute_count=len(compute), writer_base=wr_base, writer_count=len(writer)))
    image[0:DESC_BYTES] = np.frombuffer(hdr, np.uint8)
    for i, (target, (sym, off), pix_stride, chunk, row_bytes, npix, geo) in enumerate(reader):
        d = dict(target=target, src=(base[sym] + off) % _field_range(ReadDesc, "src").stop, pix_stride=pix_stride,
                 chunk=chunk, row_bytes=row_bytes, npix=npix, **geo)
        d.setdefault("bcast", 0)
        d.setdefault("gang", 0)
        d.setdefault("words", 0)
        d.setdefault("stream", 0)
        a = r_base + i * DESC_BYTES
        image[a:a + DESC_BYTES] = np.frombuffer(_bits(ReadDesc, d), np.uint8)
    for i, d in enumerate(compute):
        d = dict(d)
        d["zero_point"] = int(d["zero_point"])
        d["pad_value"] = int(d.get("pad_value", 0))
        a = c_base + i * DESC_BYTES
        image[a:a + DESC_BYTES] = np.frombuffer(_bits(ComputeDesc, d), np.uint8)
    for i, d in enumerate(writer):
        d = dict(d)
        d["dst"] = (d["dst"] + out_addr) % _field_range(WriteDesc, "dst").stop
        a = wr_base + i * DESC_BYTES
        image[a:a + DESC_BYTES] = np.frombuffer(_bits(WriteDesc, d), np.uint8)

    return TileProgram(image=image, out_addr=out_addr, out_shape=(spec.n, spec.ho, spec.wo, cout),
                       out_dtype=np.dtype(np.int32 if out_int32 else np.int8), blocking=b, spec=spec,
                       descriptors={"reader": len(reader), "compute": len(compute), "writer": len(writer)})




def _depthwise_streams(spec: Conv2dSpec, config: TileConfig, b: Blocking, reader, compute, writer, *,
                       zero_point, relu, out_int32, pixels, channels, x_stride):
    """Descriptors of a depthwise layer (see the module docstring): windows, taps, stores.

    Only output rows inside ``pixels`` (whole rows) and channel groups of up to W channels from
    ``channels[0]`` on; weights and parameters are addressed from channel ``channels[0]``; input
    pixels are ``x_stride`` bytes apart.
    """
    c_lo, c_hi = channels
    row_lo, row_hi = pixels[0] // spec.wo, pixels[1] // spec.wo      # global output rows n·Ho + oh
    R, C, W = config.rows, config.cols, config.ext_bytes
    sh, sw = spec.stride
    ph, pw = spec.padding
    dh, dw = spec.dilation
    taps = spec.kh * spec.kw
    g = b.group_size
    w_pitch = _dw_weight_pitch(taps * g, W)
    eb = 4 if out_int32 else 1
    wo, w = spec.wo, spec.w
    P = W                                   # bytes per window pixel (one lane word)
    col = sw * P                            # bytes from one output column to the next in the window
    row = sh * w * P                        # ... from one output row to the next
    addressing = dict(
        dw_wo=wo, dw_qw=R % wo, dw_kw=spec.kw,
        dw_adv=(R // wo) * row + (R % wo) * col, dw_wrap=row - wo * col,
        dw_tap_row=dh * w * P - spec.kw * dw * P, dw_iw0=-pw, dw_sh=sh, dw_sw=sw, dw_dh=dh, dw_dw=dw,
        dw_ih_adv=(R // wo) * sh, dw_iw_adv=(R % wo) * sw, dw_iw_wrap=wo * sw, dw_h=spec.h, dw_w=w)
    # the planned row blocks (the same for every channel group), clipped to the pixel range
    blocks = []
    for n, oh0, rows in (blk[1:] for blk in b.dw_blocks if blk[0] == 0):
        lo, hi = max(n * spec.ho + oh0, row_lo), min(n * spec.ho + oh0 + rows, row_hi)
        if lo < hi:
            blocks.append((n, lo - n * spec.ho, hi - lo))

    def rows_of(oh0, rows):
        """First input row of the block's taps (may be padding) and the window's rows inside the image."""
        first = oh0 * sh - ph
        return first, max(first, 0), min((oh0 + rows - 1) * sh - ph + (spec.kh - 1) * dh, spec.h - 1)

    # Reader order: a group's parameters and weights come before the rows of the previous group's
    # last block (their CB pages are free by then), so the next group's first tile does not wait
    # for them when the previous group ends.
    held = []       # the previous group's last stream entries, held back
    for ch0 in range(c_lo, c_hi, P):
        nch = min(P, c_hi - ch0)
        n_t = _ceil(nch, C)
        packed = _packs(n_t, out_int32, 0, config)
        reader.append(_flat_read(Target.PARAM, ("p", (ch0 - c_lo) * PARAM_RECORD_BYTES), PARAM_RECORD_BYTES,
                                 PARAM_RECORD_BYTES, nch, C, W))
        reader.append(_flat_read(Target.WGT, ("w", (ch0 - c_lo) * taps * g), taps * g, w_pitch, nch, C, W))
        reader.extend(held)
        held = []
        # The activation CB is a ring of input rows (whole rows of the image, W bytes per pixel,
        # broadcast to every lane), streamed in once per image: rows [first, last] of it, as far as
        # the image's blocks read. A block waits tile by tile for the rows it reads, and pops the
        # rows before the next block's window (the last block of the image: all the rest).
        for n in sorted({blk[0] for blk in blocks}):
            mine = [(i, blk) for i, blk in enumerate(blocks) if blk[0] == n]
            spans = [rows_of(oh0, rows) for _, (_, oh0, rows) in mine]
            last_row = max(bottom for _, _, bottom in spans)
            first_row = min(min(top for _, top, _ in spans), last_row + 1)
            per_desc = max(1, _field_range(ReadDesc, "npix").stop // w - 1)
            # the rows only the group's last block reads go in a stream entry of their own
            tail = spans[-2][2] + 1 if n == blocks[-1][0] and len(spans) > 1 else last_row + 1
            cuts = sorted({*range(first_row, last_row + 1, per_desc), *([tail] if first_row < tail <= last_row
                                                                        else [])})
            # (no cuts when the blocks read padding only, e.g. a 1-pixel image at stride > 1)
            for r0, r1 in zip(cuts, cuts[1:] + [last_row + 1] if cuts else [], strict=True):
                geo = dict(_flat_geometry((r1 - r0) * w), bcast=1, stream=1)
                entry = (Target.ACT, ("x", (n * spec.h + r0) * w * x_stride + ch0), x_stride, nch, P,
                         (r1 - r0) * w, geo)
                (held if r0 >= tail else reader).append(entry)
            tops = [min(top, last_row + 1) for _, top, _ in spans] + [last_row + 1]
            for j, ((i, (_, oh0, rows)), (first, _, bottom)) in enumerate(zip(mine, spans, strict=True)):
                top = tops[j]
                last = i == len(blocks) - 1
                p0 = (n * spec.ho + oh0) * wo
                npix = rows * wo
                m_t = _ceil(npix, R)
                compute.append(dict(m=m_t, n=n_t, k=taps * g, a_row_bytes=0, w_row_bytes=w_pitch, valid_rows=npix,
                                    valid_cols=nch, zero_point=zero_point, dw=1, dw_group=g.bit_length() - 1,
                                    out_int32=int(out_int32),
                                    relu=int(relu), packed=int(packed), act_wait=max(0, bottom - top + 1) * w,
                                    act_pop=(tops[j + 1] - top) * w, pop_wgt=int(last), pop_param=int(last),
                                    dw_origin=((first - top) * w - pw) * P, dw_ih0=first,
                                    dw_span=(spec.kh - 1) * dh + 1 - top, **addressing))
                writer.append(dict(dst=ch0 * eb, pix0=p0, pix_stride=spec.cout * eb, m=m_t, n=n_t,
                                   valid_rows=npix, valid_cols=nch, out_int32=int(out_int32), packed=int(packed)))
    reader.extend(held)
