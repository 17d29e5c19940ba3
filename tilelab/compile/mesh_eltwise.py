"""Element-wise ops (pooling, residual add, ReLU, training-mode batch norm) sharded over the element-wise
units of a mesh.

Every tile node of a mesh built with ``eltwise=True`` has an element-wise unit
(:class:`~tilelab.pe_models.eltwise.EltwiseUnit`) beside its tile, started by an ``ELT``
descriptor of the node's data mover. :func:`compile_eltwise_mesh` splits one op (the full
descriptor fields that :mod:`tilelab.api.ops` builds for a single unit) over the nodes:

``height`` (max / average pooling, onnxruntime's QAVGPOOL)
    Output rows of every image in ``T`` near-equal ranges. Node ``t`` holds input rows
    ``[t·H/T, (t+1)·H/T)`` of every image at the start; the rows of its windows that other nodes
    hold (its halo) are PUT into its memory by their owners over the NoC before its unit starts, so
    each unit pools from its own node memory only. Its descriptors (one per image) see the local
    rows with the top padding that is left after the halo; the bottom padding follows from ``ho``.
``rows`` (residual add, ReLU, and onnxruntime's TABLE / QADD / QMUL)
    The ``N·H·W`` pixels in ``T`` near-equal ranges; no data moves between nodes (every node gets
    its own copy of the op's parameter table).
``channels`` (global average pooling)
    Channels in ``T`` near-equal slices; node ``t`` holds its slice of every pixel.

Every node uses the same memory map: data-mover descriptors at byte 0, the unit's descriptors at
``base`` (the unit sees that byte as its address 0), then the input(s), the parameter table and
the output. The outputs stay in node memory; the host reads them back.

:func:`compile_batch_norm_mesh` compiles training-mode batch norm (``rows`` sharding): node ``k``
holds shard ``k`` of the ``N·H·W`` rows and runs, in parallel with the others, ``ELT`` (BN_STATS
of its shard into the statistics layout) → ``REDUCE`` (the collective plane sums every node's
statistics and writes the totals back into each node's memory) → ``ELT`` (BN_TERMS from the
totals, for its slice of the channels) → ``REDUCE`` (gathers every node's slice of the BN_APPLY
table) → ``ELT`` (BN_APPLY on its shard) → ``END``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tilelab.compile.mesh import MeshError, _move
from tilelab.hdl.formats.eltwise import AFFINE_WORDS, DESC_BYTES, MAX_DIM, STATS_WORDS, TERMS_WORDS, EltwiseOp
from tilelab.hdl.formats.mesh import MAX_MOVE_ROWS, MAX_MOVE_WORDS, MOVE_DESC_BYTES, MoveOp
from tilelab.pe_models.config import MeshConfig

__all__ = ["BatchNormMeshProgram", "EltwiseMeshProgram", "compile_batch_norm_mesh", "compile_eltwise_mesh",
           "mesh_shard_of"]

#: How each op is split over a mesh.
_SHARD = {EltwiseOp.MAXPOOL: "height", EltwiseOp.AVGPOOL: "height", EltwiseOp.ADD: "rows",
          EltwiseOp.RELU: "rows", EltwiseOp.GLOBAL_AVGPOOL: "channels", EltwiseOp.TABLE: "rows",
          EltwiseOp.QADD: "rows", EltwiseOp.QMUL: "rows", EltwiseOp.QAVGPOOL: "height"}
#: Semaphore the halo PUTs count on.
SEM_HALO = 0


def mesh_shard_of(op: EltwiseOp) -> str:
    """The sharding :func:`compile_eltwise_mesh` uses for ``op``."""
    if op not in _SHARD:
        raise MeshError(f"{EltwiseOp(op).name} does not run sharded over a mesh")
    return _SHARD[op]


@dataclass
class EltwiseNode:
    """One node's part: its memory image and where its output pieces are."""

    i: int
    j: int
    image: np.ndarray
    #: (byte address in node memory, shape of the piece, index into the assembled output)
    pieces: list = field(default_factory=list)
    halo_bytes_in: int = 0


@dataclass
class EltwiseMeshProgram:
    """An element-wise op compiled for a mesh (runs with :func:`~tilelab.api.mesh.run_mesh_program`)."""

    config: MeshConfig
    op: EltwiseOp
    shard: str
    nodes: dict                       #: (i, j) → EltwiseNode
    port_image: np.ndarray            #: memory ports are not used: a few zero words
    out_shape: tuple                  #: shape of the op's int8 output
    piece_shape: tuple                #: the output's shape as the pieces index it
    halo_bytes: int = 0

    def out_words(self, node: EltwiseNode) -> tuple[int, int]:
        """First and last word of ``node``'s output pieces (for the dump)."""
        W = self.config.word_bytes
        if not node.pieces:
            return 0, 0
        lo = min(addr for addr, _, _ in node.pieces)
        hi = max(addr + int(np.prod(shape)) for addr, shape, _ in node.pieces) - 1
        return lo // W, hi // W

    def assemble(self, dumps: dict) -> np.ndarray:
        """The int8 output from each node's dump ``{(i, j): (first_word, bytes)}``."""
        W = self.config.word_bytes
        y = np.zeros(self.piece_shape, np.int8)
        for key, node in self.nodes.items():
            first, raw = dumps[key]
            buf = np.frombuffer(raw, np.int8)
            for addr, shape, index in node.pieces:
                start = addr - first * W
                y[index] = buf[start:start + int(np.prod(shape))].reshape(shape)
        return y.reshape(self.out_shape)


def _ceil(a, b):
    return -(-a // b)


def _split(count: int, parts: int) -> list[tuple[int, int]]:
    return [(t * count // parts, (t + 1) * count // parts) for t in range(parts)]


def compile_eltwise_mesh(fields: dict, a: np.ndarray, b: np.ndarray | None, params: np.ndarray | None,
                         out_shape: tuple, config: MeshConfig, pack) -> EltwiseMeshProgram:
    """Split one element-wise op over the element-wise units of a mesh (see the module docstring).

    Parameters
    ----------
    fields : dict
        The op's :class:`~tilelab.hdl.formats.eltwise.EltwiseDesc` fields for the whole tensor, as
        for one unit (addresses left out).
    a, b : numpy.ndarray
        int8 inputs in the layout ``fields`` describes (``b`` for ADD only).
    params : numpy.ndarray or None
        The op's parameter table (bytes), copied into every node.
    out_shape : tuple
        Shape of the op's int8 output.
    config : MeshConfig
        Must have ``eltwise=True``.
    pack : callable
        ``pack(list of field dicts) -> bytes``: the unit's descriptor list.

    Raises
    ------
    MeshError
        The mesh has no element-wise units, a row of the input is not whole NoC words (pooling),
        or a node's memory is too small.
    """
    if not config.eltwise:
        raise MeshError("this mesh has no element-wise units: build it with MeshConfig(..., eltwise=True)")
    op = EltwiseOp(fields["op"])
    shard = mesh_shard_of(op)
    W = config.word_bytes
    R, C, T = config.rows, config.cols, config.tiles
    keys = [divmod(t, C) for t in range(T)]
    n, h, w, c = (int(fields[k]) for k in ("n", "h", "w", "c"))
    ho, wo = int(fields["ho"]), int(fields["wo"])

    def align(v, al=64):
        al = max(al, W)
        return _ceil(v, al) * al

    descs = {key: [] for key in keys}       # the unit's descriptors per node (addresses relative to base)
    pieces = {key: [] for key in keys}      # (region, byte offset, shape, index)
    initial = {key: [] for key in keys}     # (region, byte offset, bytes)
    puts = {key: [] for key in keys}        # PUT descriptors per sender
    expect = {key: 0 for key in keys}       # PUTs each node waits for
    halo_in = {key: 0 for key in keys}
    a_bytes = np.ascontiguousarray(a).view(np.uint8).ravel()
    b_bytes = None if b is None else np.ascontiguousarray(b).view(np.uint8).ravel()

    if shard == "height":
        piece_shape = (n, ho, wo, c)
        rb = w * c                          # bytes per input row
        if rb % W:
            raise MeshError(f"pooling over a mesh moves whole input rows as NoC words: a row of W·C = {w}·{c} = "
                            f"{rb} bytes is not a multiple of the {W}-byte word")
        kh, sh, ph = int(fields["kh"]), int(fields["sh"]), int(fields["ph"])
        orb = wo * c                        # bytes per output row
        a_size, out_size = n * h * rb, n * ho * orb
        own = _split(h, T)
        for t, key in enumerate(keys):
            r_own = own[t]
            for img in range(n):
                lo = (img * h + r_own[0]) * rb
                initial[key].append(("a", lo, a_bytes[lo:(img * h + r_own[1]) * rb]))
        for t, key in enumerate(keys):
            r0, r1 = _split(ho, T)[t]
            if r0 == r1:
                continue
            top = r0 * sh - ph
            lo, hi = max(0, top), min(h, (r1 - 1) * sh - ph + kh)
            for owner, (o0, o1) in enumerate(own):
                s0, s1 = max(lo, o0), min(hi, o1)
                if owner == t or s0 >= s1:
                    continue
                words = (s1 - s0) * rb // W
                if words > MAX_MOVE_WORDS or n > MAX_MOVE_ROWS:
                    raise MeshError(f"a halo of {words} words per image exceeds the descriptor limit "
                                    f"{MAX_MOVE_WORDS}")
                puts[keys[owner]].append(dict(op=MoveOp.PUT, sem=SEM_HALO, node=config.tile_coord(*key), rows=n,
                                              words=words, local=("a", s0 * rb // W), remote=("a", s0 * rb // W),
                                              local_stride=h * rb // W, remote_stride=h * rb // W))
                expect[key] += 1
                halo_in[key] += n * (s1 - s0) * rb
            for img in range(n):
                d = dict(fields, n=1, h=hi - lo, ho=r1 - r0, ph=max(0, -top), src_a=("a", (img * h + lo) * rb),
                         dst=("out", (img * ho + r0) * orb))
                if params is not None:
                    d["params"] = ("params", 0)
                descs[key].append(d)
                pieces[key].append(("out", (img * ho + r0) * orb, (r1 - r0, wo, c), (img, slice(r0, r1))))
    elif shard == "rows":
        rows = h                            # the ops describe (1, rows, 1, C)
        piece_shape = (rows, c)
        parts = _split(rows, T)
        a_size = out_size = max(p1 - p0 for p0, p1 in parts) * c
        for key, (p0, p1) in zip(keys, parts, strict=True):
            if p0 == p1:
                continue
            initial[key].append(("a", 0, a_bytes[p0 * c:p1 * c]))
            d = dict(fields, h=p1 - p0, ho=p1 - p0, src_a=("a", 0), dst=("out", 0))
            if b_bytes is not None:
                initial[key].append(("b", 0, b_bytes[p0 * c:p1 * c]))
                d["src_b"] = ("b", 0)
            if params is not None:
                d["params"] = ("params", 0)
            descs[key].append(d)
            pieces[key].append(("out", 0, (p1 - p0, c), slice(p0, p1)))
    else:                                   # channels
        piece_shape = (n, c)
        parts = _split(c, T)
        width = max(c1 - c0 for c0, c1 in parts)
        a_size, out_size = n * h * w * width, n * width
        x = np.asarray(a).reshape(n * h * w, c)
        for key, (c0, c1) in zip(keys, parts, strict=True):
            if c0 == c1:
                continue
            initial[key].append(("a", 0, np.ascontiguousarray(x[:, c0:c1]).view(np.uint8).ravel()))
            descs[key].append(dict(fields, c=c1 - c0, src_a=("a", 0), dst=("out", 0)))
            pieces[key].append(("out", 0, (n, c1 - c0), (slice(None), slice(c0, c1))))

    # ---- data-mover programs and the memory map ------------------------------------------------
    moves = {}
    for key in keys:
        mv = list(puts[key])
        if expect[key]:
            mv.append(dict(op=MoveOp.WAIT, sem=SEM_HALO, count=expect[key]))
        if descs[key]:
            mv.append(dict(op=MoveOp.ELT))
        mv.append(dict(op=MoveOp.END))
        moves[key] = mv
    base = align(max(len(mv) for mv in moves.values()) * MOVE_DESC_BYTES)
    at = {}
    cursor = align(base + max(len(d) for d in descs.values()) * DESC_BYTES)
    for region, size in (("a", a_size), ("b", a_size if b is not None else 0),
                         ("params", 0 if params is None else len(params)), ("out", out_size)):
        at[region] = cursor
        cursor = align(cursor + size + W)   # a spare word: the unit's last reads may run past a region
    if cursor > config.tile.ext_bytes_total:
        raise MeshError(f"{op.name} over the {R}x{C} mesh needs {cursor} bytes of node memory per node; a node "
                        f"has {config.tile.ext_bytes_total}")

    def resolve(v, relative):
        if isinstance(v, tuple):
            region, off = v
            return at[region] + off - (base if relative else 0)
        return v

    nodes = {}
    for key in keys:
        img = np.zeros(cursor, np.uint8)
        packed = []
        for d in moves[key]:
            d = dict(d)
            for fld in ("local", "remote"):
                if isinstance(d.get(fld), tuple):
                    d[fld] = (at[d[fld][0]] // W) + d[fld][1]
            if d["op"] == MoveOp.ELT:
                d["tile_base"] = base
            packed.append(_move(**d))
        code = b"".join(packed)
        img[:len(code)] = np.frombuffer(code, np.uint8)
        if descs[key]:
            unit = pack([{k: resolve(v, True) for k, v in d.items()} for d in descs[key]])
            img[base:base + len(unit)] = np.frombuffer(unit, np.uint8)
        for region, off, data in initial[key]:
            img[at[region] + off:at[region] + off + len(data)] = data
        if params is not None and descs[key]:
            img[at["params"]:at["params"] + len(params)] = params
        nodes[key] = EltwiseNode(i=key[0], j=key[1], image=img, halo_bytes_in=halo_in[key],
                                 pieces=[(at[region] + off, shape, index) for region, off, shape, index in pieces[key]])
    return EltwiseMeshProgram(config=config, op=op, shard=shard, nodes=nodes, port_image=np.zeros(4 * W, np.uint8),
                              out_shape=tuple(out_shape), piece_shape=piece_shape, halo_bytes=sum(halo_in.values()))


@dataclass
class BatchNormMeshProgram:
    """Training-mode batch norm compiled for a mesh (runs with
    :func:`~tilelab.api.mesh.run_mesh_program`; see :func:`compile_batch_norm_mesh`)."""

    config: MeshConfig
    nodes: dict                       #: (i, j) → EltwiseNode (its pieces: the shard's output)
    port_image: np.ndarray            #: memory ports are not used: a few zero words
    channels: int
    shards: dict                      #: (i, j) → (first row, end row) of the node's shard
    at: dict                          #: region name → byte address in every node's memory
    reduce_words: int                 #: words each node contributes to the all-reduce of the statistics
    term_chunks: dict                 #: (i, j) → (first, end) channel chunk whose BN_TERMS the node computes

    @property
    def stats_bytes(self) -> int:
        """Bytes of one node's statistics (and of the totals it receives)."""
        return self.reduce_words * self.config.word_bytes

    def out_words(self, node: EltwiseNode) -> tuple[int, int]:
        """First and last word dumped: the totals, the affine and BN_APPLY tables and the output."""
        W = self.config.word_bytes
        return self.at["totals"] // W, (self.at["out"] + self._rows(node) * self.channels - 1) // W

    def _rows(self, node):
        lo, hi = self.shards[node.i, node.j]
        return hi - lo

    def assemble(self, dumps: dict):
        """``(y (rows, C) int8, {(i, j): totals bytes}, {(i, j): BN_APPLY table bytes})`` from each
        node's dump ``{(i, j): (first_word, bytes)}``."""
        W = self.config.word_bytes
        count = max(hi for _, hi in self.shards.values())
        y = np.zeros((count, self.channels), np.int8)
        totals, tables = {}, {}
        table_bytes = -(-self.channels // W) * TERMS_WORDS * W
        for key in self.nodes:
            first, raw = dumps[key]
            buf = np.frombuffer(raw, np.uint8)
            lo, hi = self.shards[key]
            start = {name: addr - first * W for name, addr in self.at.items()}
            out = buf[start["out"]:start["out"] + (hi - lo) * self.channels]
            y[lo:hi] = out.view(np.int8).reshape(hi - lo, self.channels)
            totals[key] = buf[start["totals"]:start["totals"] + self.stats_bytes].tobytes()
            tables[key] = buf[start["table"]:start["table"] + table_bytes].tobytes()
        return y, totals, tables


def compile_batch_norm_mesh(xs: np.ndarray, affine: np.ndarray, *, eps: int, bn_shift: int, config: MeshConfig,
                            pack) -> BatchNormMeshProgram:
    """Compile training-mode batch norm for the element-wise units and the collective plane of a mesh.

    Node ``k`` (grid tile ``(k // C, k % C)``, ``T`` nodes) holds rows ``[k·rows/T, (k+1)·rows/T)``
    of ``xs`` and, in parallel with the others, runs

    1. ``ELT`` BN_STATS: its shard's statistics (the statistics layout of
       :mod:`tilelab.hdl.formats.eltwise`);
    2. ``REDUCE`` of the statistics over the whole mesh (root at its centre): every node receives
       the totals;
    3. ``ELT`` BN_TERMS on its slice of the channel chunks (chunks ``[k·K/T, (k+1)·K/T)`` of
       ``K``; a node without chunks skips it) into its own copy of the BN_APPLY table, zero
       elsewhere — the sequential divider and square root take ~300 cycles per channel, so the
       slices run ``T`` times faster than every node computing every channel;
    4. ``REDUCE`` of those tables: each word is one node's entry plus zeros, so the sum is the
       whole table at every node (an all-gather; the int64 ``a`` of the table is two int32 lanes,
       which a sum with zeros leaves exact);
    5. ``ELT`` BN_APPLY of its shard with the whole table; ``END``.

    No data moves between nodes but the two all-reduces.

    Parameters
    ----------
    xs : numpy.ndarray
        int8 ``(rows, C)``: the ``N·H·W`` rows of the input.
    affine : numpy.ndarray
        BN_TERMS' affine table (gamma, beta per chunk; bytes), copied into every node.
    eps : int
        BN_TERMS' ``bn_eps``.
    bn_shift : int
        BN_APPLY's ``bn_shift``.
    config : MeshConfig
        Must have ``eltwise=True`` (element-wise units and the collective plane).
    pack : callable
        ``pack(list of field dicts) -> bytes``: the unit's descriptor list.

    Returns
    -------
    BatchNormMeshProgram

    Raises
    ------
    MeshError
        The mesh has no element-wise units, there are fewer rows than nodes, a shard has more
        rows than a descriptor takes, or the statistics, tables, shard and output do not fit a
        node memory.
    """
    if not config.eltwise:
        raise MeshError("this mesh has no element-wise units: build it with MeshConfig(..., eltwise=True)")
    W = config.word_bytes
    R, C, T = config.rows, config.cols, config.tiles
    count, channels = xs.shape
    if count < T:
        raise MeshError(f"batch norm over a {R}x{C} mesh needs at least {T} rows (N·H·W), one per node, "
                        f"not {count}")
    keys = [divmod(t, C) for t in range(T)]
    shards = dict(zip(keys, _split(count, T), strict=True))
    most = max(hi - lo for lo, hi in shards.values())
    if most > MAX_DIM:
        raise MeshError(f"a shard of {most} rows exceeds the element-wise unit's limit of {MAX_DIM} rows")
    chunks = _ceil(channels, W)
    slices = dict(zip(keys, _split(chunks, T), strict=True))
    words, table_words = chunks * STATS_WORDS, chunks * TERMS_WORDS
    if table_words > MAX_MOVE_WORDS:
        raise MeshError(f"the all-reduces of {channels} channels take {table_words} words, more than a REDUCE "
                        f"descriptor moves ({MAX_MOVE_WORDS})")

    def align(v, al=64):
        al = max(al, W)
        return _ceil(v, al) * al

    whole = dict(node=config.tile_coord((R - 1) // 2, (C - 1) // 2), rect0=config.tile_coord(0, 0),
                 rect1=config.tile_coord(R - 1, C - 1))
    base = align(6 * MOVE_DESC_BYTES)
    bases = [base + k * DESC_BYTES for k in range(3)]      # one unit program (one descriptor) per ELT
    at, cursor = {}, align(bases[-1] + DESC_BYTES)
    for region, size in (("a", most * channels), ("stats", words * W), ("totals", words * W),
                         ("affine", chunks * AFFINE_WORDS * W), ("part", table_words * W),
                         ("table", table_words * W), ("out", most * channels)):
        at[region] = cursor
        cursor = align(cursor + size + W)   # a spare word: the unit's last reads may run past a region
    if cursor > config.tile.ext_bytes_total:
        raise MeshError(f"batch norm of {count} rows x {channels} channels over the {R}x{C} mesh needs {cursor} "
                        f"bytes of node memory per node; a node has {config.tile.ext_bytes_total}")
    assert len(affine) == chunks * AFFINE_WORDS * W

    nodes = {}
    for key in keys:
        lo, hi = shards[key]
        k0, k1 = slices[key]
        rows = hi - lo
        moves = [
            _move(op=MoveOp.ELT, tile_base=bases[0]),
            _move(op=MoveOp.REDUCE, words=words, local=at["stats"] // W, remote=at["totals"] // W, **whole),
            *([_move(op=MoveOp.ELT, tile_base=bases[1])] if k1 > k0 else []),
            _move(op=MoveOp.REDUCE, words=table_words, local=at["part"] // W, remote=at["table"] // W, **whole),
            _move(op=MoveOp.ELT, tile_base=bases[2]),
            _move(op=MoveOp.END),
        ]
        tensor = {"n": 1, "h": rows, "w": 1, "c": channels, "ho": rows, "wo": 1, "kh": 1, "kw": 1, "sh": 1, "sw": 1}
        units = [
            dict(op=EltwiseOp.BN_STATS, **tensor, src_a=at["a"] - bases[0], dst=at["stats"] - bases[0]),
            dict(op=EltwiseOp.BN_TERMS, c=min(k1 * W, channels) - k0 * W, bn_count=count, bn_eps=eps,
                 params=at["totals"] + k0 * STATS_WORDS * W - bases[1],
                 src_b=at["affine"] + k0 * AFFINE_WORDS * W - bases[1],
                 dst=at["part"] + k0 * TERMS_WORDS * W - bases[1]),
            dict(op=EltwiseOp.BN_APPLY, **tensor, src_a=at["a"] - bases[2], dst=at["out"] - bases[2],
                 params=at["table"] - bases[2], bn_shift=bn_shift),
        ]
        img = np.zeros(cursor, np.uint8)
        code = b"".join(moves)
        img[:len(code)] = np.frombuffer(code, np.uint8)
        for b, d in zip(bases, units, strict=True):
            img[b:b + DESC_BYTES] = np.frombuffer(pack([d]), np.uint8)
        img[at["a"]:at["a"] + rows * channels] = np.ascontiguousarray(xs[lo:hi]).view(np.uint8).ravel()
        img[at["affine"]:at["affine"] + len(affine)] = affine
        nodes[key] = EltwiseNode(i=key[0], j=key[1], image=img, pieces=[(at["out"], (rows, channels), slice(lo, hi))])
    return BatchNormMeshProgram(config=config, nodes=nodes, port_image=np.zeros(4 * W, np.uint8), channels=channels,
                                shards=shards, at=at, reduce_words=words, term_chunks=slices)
