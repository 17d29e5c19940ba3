"""Sharding one conv layer over a mesh of tiles: node programs, memory images, halo exchange.

The compiler splits the layer's output over the tiles of a :class:`~tilelab.pe_models.config.MeshConfig`
and writes, for every tile node, a node-memory image: the data mover's
:class:`~tilelab.hdl.formats.mesh.MoveDesc` list (at byte 0), one tile program per weight block
(:func:`~tilelab.compile.tile.compile_conv` on a pixel × channel part of the layer), and the
input sticks the node holds before the layer starts. Weights and parameter records live in the edge
memory ports. The RTL moves everything else over the NoC.

Sharding (``T = R·C`` tiles, grid tile ``(i, j)`` is core ``t = i·C + j``), for any channel count:

``height``
    Output pixels (N·Ho·Wo, row-major) in ``T`` ranges of ``ceil(N·Ho·Wo / T)`` (the last ones
    shorter, trailing ones possibly empty: :func:`~tilelab.reference.halo.shard_ranges`), all
    channels on every tile; the input sticks are held as a height-sharded tensor
    (:func:`~tilelab.reference.halo.halo_plan` ownership) and each owner PUTs the remote sticks a
    core needs (its halo) into that core's memory.
``width``
    Output channels in ``T`` slices ``[t·Cout // T, (t + 1)·Cout // T)``; tile ``t`` holds input
    channel slice ``t`` of every stick and multicasts it to the whole mesh, so every tile then holds
    the full input and computes its output-channel slice.
``block``
    Grid rows split the output pixels (``R`` ranges as in ``height``), grid columns the output
    channels (``C`` slices as in ``width``); tile ``(i, j)`` holds input channel slice ``j`` of the
    sticks grid row ``i`` owns and multicasts it (and the halo sticks other grid rows need from it)
    along the grid row that needs them.

A layer the tile runs in its depthwise mode (depthwise and grouped layers of small groups)
computes whole output rows, so its pixel ranges are ``shard_ranges`` of the ``N·Ho`` output rows.
A tile whose pixel range or channel slice is empty computes nothing (it still forwards the input
it holds and takes part in the multicasts of its rectangle).

Stick layout and input channel slices: an input stick occupies ``S = ceil(Cin / W)·W`` bytes
(``W`` the NoC word, the bytes past ``Cin`` zero), so sticks move as whole NoC words. An input
channel slice is a run of whole words of the stick, not a run of channels: over ``P`` slices
(``T`` for width, ``C`` for block) slice ``k`` is words ``[k·SW // P, (k + 1)·SW // P)`` with
``SW = S / W``, i.e. channels ``[k·SW // P · W, min((k + 1)·SW // P · W, Cin))``. Slices may be
empty (``SW < P``: a 3-channel stem is one word, held and multicast by one tile) or of unequal
sizes; their union is the stored stick, so every tile computing on the assembled input sees the
ordinary layer (``Cin`` channels, weights as given, no padding channels, no extra MACs). The input
slices need not line up with the output-channel slices: width and block multicast every slice to
the tiles that compute on it, which then hold all channels of the sticks they read.

Weight loading: the weights are cut in blocks of ``n·C`` output channels (the tile compiler's
column block).
``stream``: each tile GETs block ``k + 1`` into the other of two staging buffers from its row's
memory port while block ``k`` computes, one tile program per block — weights are never all
resident, and every tile reads every block it uses from external memory.
``multicast``: for each block, one tile asks the memory port to multicast it to every tile that
uses it; the block is read from external memory once and stays resident. When the blocks lie back
to back in node memory (every whole block fills its 64-byte aligned slot), a tile computes all its
blocks in one tile program once they have arrived, or, when the later blocks take longer to arrive
than a second program costs, the first block alone as soon as it is there and the rest in a second
program: one or two array fills and drains instead of one per block.

Addresses: every node has the same memory map (descriptors, tile programs, input, weights,
parameters, output), but its input region holds only its window of the input — the sticks from the
first to the last one it holds or needs — and its output region only its own output pixels; the
tile programs address the whole maps from bases before the windows, with ``S`` bytes per input
stick.

What is refused (:class:`MeshError`, before any simulation): unknown shard or weight-load names,
a node memory or memory port too small for its part, a transfer wider than a move descriptor;
(:class:`~tilelab.compile.tile.LayoutError`) a layer whose smallest block does not fit a tile.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from tilelab.compile.tile import (
    LayoutError,
    ProgramLayout,
    _bits,
    compile_conv,
    param_records,
    plan_blocking,
    requant_vectors,
)
from tilelab.hdl.formats.mesh import MAX_MOVE_ROWS, MAX_MOVE_WORDS, MOVE_DESC_BYTES, MoveDesc, MoveOp
from tilelab.hdl.formats.tile import PARAM_RECORD_BYTES
from tilelab.pe_models.config import MeshConfig
from tilelab.reference.halo import halo_plan, shard_ranges
from tilelab.reference.layers import Conv2dSpec

__all__ = ["MeshError", "MeshImage", "SHARDS", "WEIGHT_LOADS", "NodeImage", "MeshProgram", "compile_conv_mesh"]

SHARDS = ("height", "width", "block")
WEIGHT_LOADS = ("stream", "multicast")

#: Semaphores used by the compiled programs.
SEM_ACT, SEM_WGT = 0, 1


class MeshError(ValueError):
    """The layer cannot be run on this mesh as asked (grid, shard counts, memory, multicast)."""


class MeshImage(Protocol):
    """What runs on a whole mesh (:func:`tilelab.api.mesh.run_mesh_program`): a conv layer's
    :class:`MeshProgram`, an element-wise op's or batch norm's program
    (:mod:`tilelab.compile.mesh_eltwise`), or a test's own.

    Attributes
    ----------
    config : MeshConfig
        The mesh it was compiled for.
    nodes : dict
        ``(i, j)`` → a node part with an ``image`` (node-memory bytes from address 0); nodes not
        named start with empty memories.
    port_image : numpy.ndarray
        The image every memory port is loaded with.
    """

    config: MeshConfig
    nodes: dict
    port_image: np.ndarray

    def out_words(self, node) -> tuple[int, int]:
        """First and last node-memory word of ``node``'s output (dumped after the run)."""

    def assemble(self, dumps: dict):
        """The result from each node's dump ``{(i, j): (first word, bytes)}``."""


def _ceil(a, b):
    return -(-a // b)


@dataclass
class NodeImage:
    """One tile node's compiled part of the layer."""

    i: int
    j: int
    image: np.ndarray                 #: node-memory bytes from address 0
    pixels: tuple[int, int]           #: output pixels computed here
    channels: tuple[int, int]         #: output channels computed here
    moves: list = field(default_factory=list)   #: the MoveDesc field dicts, in order
    phases: int = 0
    halo_bytes_in: int = 0            #: bytes of remote sticks this node receives
    act_bytes_in: int = 0             #: input bytes this node receives over the NoC (halo included)
    programs: list = field(default_factory=list)  #: (first channel, end channel) of each RUN's tile program


@dataclass
class MeshProgram:
    """A layer compiled for a mesh: node images, the memory-port image and the output map."""

    config: MeshConfig
    spec: Conv2dSpec
    shard: str
    weight_load: str
    nodes: dict                       #: (i, j) → NodeImage
    port_image: np.ndarray            #: the image every memory port is loaded with
    out_addr: int                     #: byte address of the output region (a node's first output pixel)
    out_dtype: np.dtype
    halo_bytes: int
    weight_bytes_once: int            #: weight + parameter bytes of all blocks, each counted once
    weight_bytes_stream: int          #: what stream mode reads (every tile its blocks)
    multicasts: list = field(default_factory=list)  #: (rect0, rect1, port) per multicast block

    @property
    def out_shape(self):
        s = self.spec
        return (s.n, s.ho, s.wo, s.cout)

    @property
    def out_row_bytes(self):
        return self.spec.cout * self.out_dtype.itemsize

    def out_words(self, node: NodeImage) -> tuple[int, int]:
        """First and last word of ``node``'s output bytes (for the dump)."""
        W = self.config.word_bytes
        p0, p1 = node.pixels
        lo = self.out_addr
        hi = self.out_addr + max(p1 - p0, 1) * self.out_row_bytes - 1
        return lo // W, hi // W

    def assemble(self, dumps: dict) -> np.ndarray:
        """The output tensor from each node's dump ``{(i, j): (first_word, bytes)}``."""
        W = self.config.word_bytes
        s = self.spec
        M = s.n * s.ho * s.wo
        y = np.zeros((M, s.cout), self.out_dtype)
        for key, node in self.nodes.items():
            first, raw = dumps[key]
            p0, p1 = node.pixels
            c0, c1 = node.channels
            start = self.out_addr - first * W
            buf = np.frombuffer(raw, np.uint8)[start:start + (p1 - p0) * self.out_row_bytes]
            part = buf.view(self.out_dtype).reshape(p1 - p0, s.cout)
            y[p0:p1, c0:c1] = part[:, c0:c1]
        return y.reshape(self.out_shape)


def _move(**fields) -> bytes:
    rect0, rect1 = fields.get("rect0"), fields.get("rect1")
    if fields.get("op") in (MoveOp.GET_MCAST,) or fields.get("mcast"):
        if rect0 is None or rect1 is None or rect0[0] > rect1[0] or rect0[1] > rect1[1]:
            raise MeshError(f"multicast to an empty rectangle {rect0}..{rect1}: no receivers")
    d = dict(fields)
    for key in ("node", "rect0", "rect1"):
        if key in d:
            x, y = d[key]
            d[key] = {"x": x, "y": y}
    return _bits(MoveDesc, d, MOVE_DESC_BYTES)


def _runs(values: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs ``[start, stop)`` of consecutive integers in a sorted array."""
    if len(values) == 0:
        return []
    breaks = np.nonzero(np.diff(values) != 1)[0]
    starts = np.concatenate([[values[0]], values[breaks + 1]])
    stops = np.concatenate([values[breaks] + 1, [values[-1] + 1]])
    return list(zip(starts.tolist(), stops.tolist(), strict=True))


def _unpadded(spec: Conv2dSpec, padded: np.ndarray) -> np.ndarray:
    """Non-padded stick numbers (row-major N, H, W) of padded indices (all non-padding)."""
    (ph, pw) = spec.padding
    hp, wp = spec.h + 2 * ph, spec.w + 2 * pw
    n, rest = np.divmod(np.asarray(padded, np.int64), hp * wp)
    r, c = np.divmod(rest, wp)
    return (n * spec.h + (r - ph)) * spec.w + (c - pw)


def compile_conv_mesh(x, w, bias, spec: Conv2dSpec, config: MeshConfig, *, shard: str = "height",
                      weight_load: str = "multicast", multiplier=None, shift=None, zero_point: int = 0,
                      relu: bool = False, out_int32: bool = False, scale=None, pad_value: int = 0) -> MeshProgram:
    """Compile one conv layer for a mesh (see the module docstring).

    Parameters
    ----------
    x, w, bias : numpy.ndarray
        NHWC int8 input, OHWI int8 weights, int32 bias (already checked against ``spec``).
    spec : Conv2dSpec
    config : MeshConfig
    shard : {"height", "width", "block"}
    weight_load : {"stream", "multicast"}
    multiplier, shift, zero_point, relu, out_int32, scale, pad_value
        As :func:`~tilelab.compile.tile.compile_conv`.

    Raises
    ------
    MeshError
        Node memory or memory-port space too small, a transfer beyond the descriptor limit (each
        message names the value and the limit).
    LayoutError
        A tile cannot hold even the smallest block of the layer.
    """
    if shard not in SHARDS:
        raise MeshError(f"shard must be one of {', '.join(SHARDS)}, not {shard!r}")
    if weight_load not in WEIGHT_LOADS:
        raise MeshError(f"weight_load must be one of {', '.join(WEIGHT_LOADS)}, not {weight_load!r}")
    cfg, tcfg = config, config.tile
    R, C, T = cfg.rows, cfg.cols, cfg.tiles
    W = cfg.word_bytes
    M = spec.n * spec.ho * spec.wo
    cout, cin = spec.cout, spec.cin
    eb = 4 if out_int32 else 1
    b = plan_blocking(spec, tcfg, out_int32=out_int32)
    if scale is not None:       # the float requantization: the scale's bits in the multiplier field
        multiplier = np.asarray(scale, np.float32).reshape(-1).view(np.int32)
    multiplier, shift = requant_vectors(multiplier, shift, cout)

    S = _ceil(cin, W) * W                   # bytes per stored input stick
    SW = S // W
    sticks = spec.n * spec.h * spec.w

    # ---- what each tile computes, and which input it holds at the start --------------------------
    # Output pixels are split in ranges of ceil size (the halo plan's shards); a depthwise-mode layer
    # computes whole output rows, so its ranges are whole rows. Output channels are split in slices
    # of floor(c·Cout / parts) boundaries; input channel slices are runs of whole NoC words of the
    # stick (see the module docstring). A range or slice may be empty: that tile computes nothing.
    rows_only = b.depthwise

    def pixel_ranges(parts):
        if rows_only:
            return [(r0 * spec.wo, r1 * spec.wo) for r0, r1 in shard_ranges(spec.n * spec.ho, parts)]
        return shard_ranges(M, parts)

    def channel_slice(k, parts):
        return k * cout // parts, (k + 1) * cout // parts

    cores = {}                              # (i, j) -> (pixels, channels)
    if shard == "height":
        out_ranges = pixel_ranges(T)
        for t in range(T):
            cores[divmod(t, C)] = (out_ranges[t], (0, cout))
        groups_of = T
    elif shard == "width":
        out_ranges = None
        for t in range(T):
            cores[divmod(t, C)] = ((0, M), channel_slice(t, T))
        groups_of = 1
    else:
        out_ranges = pixel_ranges(R)
        for i in range(R):
            for j in range(C):
                cores[i, j] = (out_ranges[i], channel_slice(j, C))
        groups_of = R
    slice_parts = {"height": 1, "width": T, "block": C}[shard]

    # A grouped (or depthwise) layer's output channels read only their groups' input channels: a
    # width / block tile then holds the words of those channels (neighbouring slices may share a
    # word) and nothing is multicast across channel slices.
    own_channels = spec.groups > 1 and shard != "height"

    def word_slice(k):
        """Words ``[w0, w1)`` of every stick that input channel slice ``k`` is (possibly none)."""
        if own_channels:
            c0, c1 = channel_slice(k, slice_parts)
            if c1 == c0:
                return 0, 0
            cin_g, cout_g = cin // spec.groups, cout // spec.groups
            return (c0 // cout_g) * cin_g // W, _ceil(((c1 - 1) // cout_g + 1) * cin_g, W)
        return k * SW // slice_parts, (k + 1) * SW // slice_parts

    def slice_bytes(k):
        """The input bytes ``[b0, b1)`` of a stick in input channel slice ``k``."""
        w0, w1 = word_slice(k)
        return w0 * W, min(w1 * W, cin)

    # halo: needed sticks of each pixel group and their owners (height: per tile; block: per grid row)
    plan = None
    if shard != "width":
        plan = halo_plan(spec.n, spec.h, spec.w, spec.cin, kernel=(spec.kh, spec.kw), stride=spec.stride,
                         padding=spec.padding, dilation=spec.dilation, cores=groups_of, out_ranges=out_ranges)
    own_size = _ceil(sticks, groups_of)

    # ---- weight blocks ------------------------------------------------------------------------
    w_row = w[0].size                       # bytes per output channel (OHWI row)
    phase_ch = b.n * tcfg.cols if not b.depthwise else tcfg.cols
    slices = sorted({ch for _, ch in cores.values()})
    blocks = []                             # (c0, c1) in slice order
    for c0, c1 in slices:
        blocks += [(a, min(a + phase_ch, c1)) for a in range(c0, c1, phase_ch)]

    def align(v, a=64):
        a = max(a, W)
        return _ceil(v, a) * a

    recs = param_records(bias, multiplier, shift)
    w_bytes = w.reshape(cout, -1).view(np.uint8)
    port = bytearray()
    block_at = {}                           # block -> (w byte addr, w bytes, p byte addr, p bytes)
    for (c0, c1) in blocks:
        wa = align(len(port))
        port += bytes(wa - len(port)) + w_bytes[c0:c1].tobytes()
        pa = align(len(port))
        port += bytes(pa - len(port)) + recs[c0 * PARAM_RECORD_BYTES:c1 * PARAM_RECORD_BYTES]
        block_at[c0, c1] = (wa, (c1 - c0) * w_row, pa, (c1 - c0) * PARAM_RECORD_BYTES)
    port += bytes(align(len(port)) - len(port))
    if len(port) > cfg.mem_words * W:
        raise MeshError(f"the weights and parameters need {len(port)} bytes of memory-port space; a port has "
                        f"{cfg.mem_words * W}")
    port_image = np.frombuffer(bytes(port), np.uint8).copy()

    def words(nbytes):
        return _ceil(nbytes, W)

    weight_once = sum(words(wb) * W + words(pb) * W for (_, wb, _, pb) in block_at.values())
    weight_stream = 0

    wmax = max(block_at[blk][1] for blk in blocks)
    pmax = max(block_at[blk][3] for blk in blocks)
    w_slot, p_slot = align(wmax), align(pmax)
    # With multicast a node's blocks all stay resident, in consecutive slots. When every whole block
    # fills its slot exactly, the blocks lie back to back and one tile program can compute several
    # (one array fill and drain instead of one per block). A node waits for all its blocks and runs
    # them in one program when the later blocks arrive in less time than a second program's fill and
    # drain (or while the node still waits for its activations); otherwise the first block runs alone
    # as soon as it has arrived and the others follow in one program.
    back_to_back = (weight_load == "multicast" and phase_ch * w_row == w_slot
                    and phase_ch * PARAM_RECORD_BYTES == p_slot)
    # cycles a second tile program costs: start, array fill and drain, and reading the input again
    # (measured on 8x8 tiles: 600-650)
    run_overhead = 8 * (tcfg.rows + tcfg.cols) + 512

    def run_groups(mine, act_words):
        count = len(mine)
        if not back_to_back or count < 2:
            return [[k] for k in range(count)]
        later = sum(words(block_at[blk][1]) + words(block_at[blk][3]) for blk in mine[1:])
        if later <= run_overhead + act_words:
            return [list(range(count))]
        return [[0], list(range(1, count))]

    # ---- per-node move lists (addresses symbolic until the map is known) -----------------------
    def node_blocks(ch):
        return [blk for blk in blocks if ch[0] <= blk[0] and blk[1] <= ch[1]]

    # multicast groups: the tiles that use a block (same channel slice)
    users = {}
    for key, (_, ch) in cores.items():
        users.setdefault(ch, []).append(key)

    def rect_of(keys):
        i0, i1 = min(k[0] for k in keys), max(k[0] for k in keys)
        j0, j1 = min(k[1] for k in keys), max(k[1] for k in keys)
        if len(keys) != (i1 - i0 + 1) * (j1 - j0 + 1):
            raise MeshError(f"the tiles sharing a weight block {sorted(keys)} do not form a rectangle")
        return cfg.tile_coord(i0, j0), cfg.tile_coord(i1, j1)

    # each node's input window: the sticks it holds or needs, [lo, hi), stored from the start of its
    # input region (node memory holds a node's shard and halo, not the whole input map)
    window = {}
    if shard == "width":
        window = {key: (0, sticks) for key in cores}
    else:
        for g, entry in enumerate(plan):
            lo, hi = min(g * own_size, sticks), min((g + 1) * own_size, sticks)
            need = _unpadded(spec, np.asarray(entry["local"] + [r[0] for r in entry["remote"]], np.int64))
            held = [*need.tolist(), *((lo, hi - 1) if hi > lo else ())]
            win = (min(held), max(held) + 1) if held else (0, 0)
            for key in cores:
                if (key[0] * C + key[1] if shard == "height" else key[0]) == g:
                    window[key] = win

    def x_word(key, u):
        """Word offset of stick ``u`` in ``key``'s input region."""
        return (u - window[key][0]) * SW

    # activation transfers: (sender key) -> list of PUT dicts; (receiver key) -> count
    act_puts = {key: [] for key in cores}
    act_count = {key: 0 for key in cores}
    halo_in = {key: 0 for key in cores}
    act_in = {key: 0 for key in cores}
    halo_total = 0

    def put(sender, receivers, u0, col_w, rows, words_, stride_w, *, mcast):
        # sticks from u0 on (word col_w of each), from the sender's window to the receivers' (all of a
        # multicast's receivers share one window); rows split into descriptors of at most MAX_MOVE_ROWS
        if words_ > MAX_MOVE_WORDS:
            raise MeshError(f"a transfer of {words_} words per row exceeds the descriptor limit {MAX_MOVE_WORDS}")
        local_w = x_word(sender, u0) + col_w
        remote_w = x_word(receivers[0], u0) + col_w
        assert all(window[rk] == window[receivers[0]] for rk in receivers)
        for r0 in range(0, rows, MAX_MOVE_ROWS):
            nr = min(MAX_MOVE_ROWS, rows - r0)
            d = dict(op=MoveOp.PUT, sem=SEM_ACT, mcast=int(mcast), rows=nr, words=words_,
                     local=("x", local_w + r0 * stride_w), remote=("x", remote_w + r0 * stride_w),
                     local_stride=stride_w, remote_stride=stride_w)
            if mcast:
                d["rect0"], d["rect1"] = rect_of(receivers)
                d["node"] = d["rect0"]
            else:
                d["node"] = cfg.tile_coord(*receivers[0])
            act_puts[sender].append(d)
            for rk in receivers:
                act_count[rk] += 1
                act_in[rk] += nr * words_ * W

    initial = {key: [] for key in cores}    # (byte offset in x region, bytes)
    x_bytes = x.reshape(sticks, cin).view(np.uint8)

    if shard == "height":
        for t, entry in enumerate(plan):
            key = divmod(t, C)
            lo, hi = min(t * own_size, sticks), min((t + 1) * own_size, sticks)
            for u in range(lo, hi):
                initial[key].append((x_word(key, u) * W, x_bytes[u].tobytes()))
            remote = np.asarray(entry["remote"], np.int64).reshape(-1, 2)
            for owner in sorted(set(remote[:, 1].tolist())):
                us = np.sort(_unpadded(spec, remote[remote[:, 1] == owner, 0]))
                for u0, u1 in _runs(us):
                    put(divmod(owner, C), [key], u0, 0, 1, (u1 - u0) * SW, 0, mcast=False)
                    halo_in[key] += (u1 - u0) * cin
                    halo_total += (u1 - u0) * cin
    elif shard == "width":
        everyone = list(cores)
        for t in range(T):
            key = divmod(t, C)
            w0, w1 = word_slice(t)
            if w1 == w0:
                continue
            b0, b1 = slice_bytes(t)
            for u in range(sticks):
                initial[key].append((u * S + b0, x_bytes[u, b0:b1].tobytes()))
            if not own_channels:
                put(key, everyone, 0, w0, sticks, w1 - w0, SW, mcast=True)
    else:
        for i_dst, entry in enumerate(plan):
            need = np.asarray(entry["local"] + [r[0] for r in entry["remote"]], np.int64)
            us = np.sort(_unpadded(spec, need))
            owners = us // own_size
            for k in sorted(set(owners.tolist())):
                runs = _runs(us[owners == k])
                for j in range(C):
                    w0, w1 = word_slice(j)
                    if w1 == w0 or (own_channels and k == i_dst):
                        continue
                    # the slice goes to the grid row's tiles (grouped: to the tile of its own column)
                    to = [(i_dst, j)] if own_channels else [(i_dst, jj) for jj in range(C)]
                    for u0, u1 in runs:
                        put((k, j), to, u0, w0, u1 - u0, w1 - w0, SW, mcast=not own_channels)
                if k != i_dst:
                    n_remote = sum(u1 - u0 for u0, u1 in runs)
                    for jj in range(C):
                        b0, b1 = slice_bytes(jj) if own_channels else (0, cin)
                        halo_in[i_dst, jj] += n_remote * (b1 - b0)
                        halo_total += n_remote * (b1 - b0) if own_channels else 0
                    halo_total += 0 if own_channels else n_remote * cin
        for i in range(R):
            lo, hi = min(i * own_size, sticks), min((i + 1) * own_size, sticks)
            for j in range(C):
                b0, b1 = slice_bytes(j)
                if b1 <= b0:
                    continue
                for u in range(lo, hi):
                    initial[i, j].append((x_word((i, j), u) * W + b0, x_bytes[u, b0:b1].tobytes()))

    # ---- programs, memory map ----------------------------------------------------------------
    x_size = align(max(hi - lo for lo, hi in window.values()) * S)
    out_size = align(max(p1 - p0 for (p0, p1), _ in cores.values()) * cout * eb)
    max_blocks = max(len(node_blocks(ch)) for _, ch in cores.values())
    if weight_load == "stream":
        w_slots, p_slots = 2, 2
    else:
        w_slots, p_slots = max_blocks, max_blocks

    nodes = {}
    multicasts = []
    mc_issued = set()
    for key in sorted(cores):
        i, j = key
        pixels, ch = cores[key]
        idle = pixels[0] == pixels[1]       # no output pixels (more shards than pixels or rows)
        # an idle node still receives the blocks multicast to its rectangle, but streams none
        mine = [] if idle and weight_load == "stream" else node_blocks(ch)
        moves = []
        my_port = cfg.port_coord(i)
        # weights: first block(s)
        ukeys = users[ch]
        if weight_load == "multicast":
            rect0, rect1 = rect_of(ukeys)
            issuer = min(ukeys)
            src_port = cfg.port_coord(sorted(users).index(ch) % R)
            if key == issuer:
                for k, blk in enumerate(mine):
                    wa, wb, pa, pb = block_at[blk]
                    for (src, nb, dst) in ((wa, wb, ("w", k)), (pa, pb, ("p", k))):
                        moves.append(dict(op=MoveOp.GET_MCAST, sem=SEM_WGT, node=src_port, rect0=rect0, rect1=rect1,
                                          rows=1, words=words(nb), local=dst, remote=src // W))
                if ch not in mc_issued:
                    mc_issued.add(ch)
                    multicasts.extend((rect0, rect1, src_port) for _ in mine)
        else:
            for blk in mine[:1]:
                wa, wb, pa, pb = block_at[blk]
                moves.append(dict(op=MoveOp.GET, sem=SEM_WGT, node=my_port, rows=1, words=words(wb),
                                  local=("w", 0), remote=wa // W))
                moves.append(dict(op=MoveOp.GET, sem=SEM_WGT, node=my_port, rows=1, words=words(pb),
                                  local=("p", 0), remote=pa // W))
            weight_stream += sum(words(block_at[blk][1]) * W + words(block_at[blk][3]) * W for blk in mine)
        # activations
        moves.extend(act_puts[key])
        if act_count[key]:
            moves.append(dict(op=MoveOp.WAIT, sem=SEM_ACT, count=act_count[key]))
        groups = [] if idle else run_groups(mine, act_in[key] // W)
        if idle and mine:
            moves.append(dict(op=MoveOp.WAIT, sem=SEM_WGT, count=2 * len(mine)))
        for g, blks in enumerate(groups):
            moves.append(dict(op=MoveOp.WAIT, sem=SEM_WGT, count=2 * len(blks)))
            k = blks[-1]
            if weight_load == "stream" and k + 1 < len(mine):
                wa, wb, pa, pb = block_at[mine[k + 1]]
                slot = (k + 1) % 2
                moves.append(dict(op=MoveOp.GET, sem=SEM_WGT, node=my_port, rows=1, words=words(wb),
                                  local=("w", slot), remote=wa // W))
                moves.append(dict(op=MoveOp.GET, sem=SEM_WGT, node=my_port, rows=1, words=words(pb),
                                  local=("p", slot), remote=pa // W))
            moves.append(dict(op=MoveOp.RUN, phase=g))
        moves.append(dict(op=MoveOp.END))
        slot_of = (lambda k: k % 2) if weight_load == "stream" else (lambda k: k)
        nodes[key] = (moves, [(mine[blks[0]][0], mine[blks[-1]][1], slot_of(blks[0])) for blks in groups], pixels, ch)

    # sizes: moves, then programs (compiled once with placeholder addresses to learn their size)
    def program(key, pixels, run, base):
        # the tile addresses the whole input and output maps; a node holds only its window of each,
        # so their bases lie before the window (below zero, taken modulo 2**32 as the tile's address
        # arithmetic wraps; the tile reads and writes only inside the windows)
        c0, c1, slot = run
        lay = ProgramLayout(x_addr=x_at - window[key][0] * S - base, x_pix_stride=S,
                            w_addr=w_at + slot * w_slot - base, p_addr=p_at + slot * p_slot - base,
                            out_addr=out_at - pixels[0] * cout * eb - base)
        return compile_conv(x, w, bias, spec, tcfg, multiplier=multiplier, shift=shift, zero_point=zero_point,
                            relu=relu, out_int32=out_int32, pixels=pixels, channels=(c0, c1), layout=lay,
                            scale=scale, pad_value=pad_value).image

    x_at = w_at = p_at = out_at = 0
    sizes = {}
    for key, (moves, runs, pixels, _ch) in nodes.items():
        prog_sizes = [len(program(key, pixels, run, 0)) for run in runs]
        sizes[key] = (align(len(moves) * MOVE_DESC_BYTES), [align(s) for s in prog_sizes])
    code = max(m + sum(p) for m, p in sizes.values())
    x_at = align(code)
    w_at = x_at + x_size
    p_at = w_at + w_slots * w_slot
    out_at = align(p_at + p_slots * p_slot)
    end = out_at + out_size + 2 * W
    if end > tcfg.ext_bytes_total:
        raise MeshError(f"a tile node needs {end} bytes of node memory (code {code}, input {x_size}, weights "
                        f"{w_slots} x {w_slot}, parameters {p_slots} x {p_slot}, output {out_size}); a node has "
                        f"{tcfg.ext_bytes_total}")

    images = {}
    for key, (moves, runs, pixels, ch) in nodes.items():
        i, j = key
        img = np.zeros(out_at, np.uint8)
        mbytes, psizes = sizes[key]
        pbase = mbytes
        bases = []
        for k, run in enumerate(runs):
            prog = program(key, pixels, run, pbase)
            img[pbase:pbase + len(prog)] = prog
            bases.append(pbase)
            pbase += psizes[k]
        packed = []
        for d in moves:
            d = dict(d)
            for fld in ("local", "remote"):
                v = d.get(fld)
                if isinstance(v, tuple):
                    region, off = v
                    if region == "x":
                        d[fld] = x_at // W + off
                    elif region == "w":
                        d[fld] = (w_at + off * w_slot) // W
                    else:
                        d[fld] = (p_at + off * p_slot) // W
            if d["op"] == MoveOp.RUN:
                d["tile_base"] = bases[d.pop("phase")]
            packed.append(_move(**d))
        code_bytes = b"".join(packed)
        img[:len(code_bytes)] = np.frombuffer(code_bytes, np.uint8)
        for off, data in initial[key]:
            img[x_at + off:x_at + off + len(data)] = np.frombuffer(data, np.uint8)
        images[key] = NodeImage(i=i, j=j, image=img, pixels=pixels, channels=ch, moves=moves, phases=len(runs),
                                halo_bytes_in=halo_in[key], act_bytes_in=act_in[key],
                                programs=[(c0, c1) for c0, c1, _ in runs])

    if not any(img.phases for img in images.values()):
        raise LayoutError("no tile has work")
    return MeshProgram(config=cfg, spec=spec, shard=shard, weight_load=weight_load, nodes=images,
                       port_image=port_image, out_addr=out_at, out_dtype=np.dtype(np.int32 if out_int32 else np.int8),
                       halo_bytes=halo_total, weight_bytes_once=weight_once, weight_bytes_stream=weight_stream,
                       multicasts=multicasts)
