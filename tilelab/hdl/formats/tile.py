"""Bit formats of the compute tile: the program header, the three engines' descriptors, and the
payloads and count events the tile's engines exchange.

These are the only definitions: the RTL decodes them with ``View``s and ``m.Switch``, the host
compiler packs them with ``Struct.const({...}).as_bits()``. Every descriptor occupies
:data:`DESC_BYTES` bytes in external memory (little endian, field 0 at bit 0).

A tile program in external memory::

    byte 0                 ProgramHeader (one descriptor slot)
    header.reader_base     reader_count   × ReadDesc    (one slot each)
    header.compute_base    compute_count  × ComputeDesc
    header.writer_base     writer_count   × WriteDesc
"""

from amaranth.hdl import signed
from amaranth.lib import data, enum

__all__ = ["TILE_COUNTERS", "TILE_STATUS", "DESC_BYTES", "DESC_BITS", "PARAM_RECORD_BYTES", "READ_GANG", "Target",
           "ProgramHeader", "ReadDesc", "ComputeDesc", "WriteDesc", "ParamRecord", "EngineState", "PACK_SLOTS",
           "pack_job_layout", "FetcherEvents", "ReaderEvents", "ComputeEvents", "PackEvents", "WriterEvents"]

#: Size of one descriptor slot in external memory.
DESC_BYTES = 64
DESC_BITS = 8 * DESC_BYTES
#: Bytes per output channel in a parameter page (see :class:`ParamRecord`).
PARAM_RECORD_BYTES = 16
#: Most rows one ganged read moves (:attr:`ReadDesc.gang` is at most its log2).
READ_GANG = 4
#: Most weight tiles whose int8 rows share one output entry (:attr:`ComputeDesc.packed`): an entry
#: holds a row of int32 accumulators, ``PACK_SLOTS`` int8 rows.
PACK_SLOTS = 4


class Target(enum.Enum, shape=2):
    """Which circular buffer a :class:`ReadDesc` fills."""

    ACT = 0     #: activation lanes (one lane per MAC-array row)
    WGT = 1     #: weight lanes (one lane per MAC-array column)
    PARAM = 2   #: per-channel bias / requantization records (one lane per column)


class EngineState(enum.Enum, shape=3):
    """What an engine is doing; exported for the watchdog's diagnosis."""

    IDLE = 0        #: no descriptor
    WAIT_CB = 1     #: waiting on a circular buffer (space or data)
    RUN = 2         #: moving data / computing
    DRAIN = 3       #: waiting for its last operations to complete
    DONE = 4        #: program finished


class ProgramHeader(data.Struct):
    """Byte addresses and lengths of the three descriptor streams."""

    reader_base: 32
    reader_count: 32
    compute_base: 32
    compute_count: 32
    writer_base: 32
    writer_count: 32


class ReadDesc(data.Struct):
    """Gather ``npix`` rows into the lanes of CB ``target`` (reader engine; one CB page).

    Row ``j`` (0-based) is output pixel ``(n0, oh0, ow0) + j`` in row-major (n, oh, ow) order; it
    lands in lane ``j % lanes`` at byte ``(j // lanes) * row_bytes`` of the page. A row is the
    im2col row of that pixel: for each tap (kh, kw), ``chunk`` bytes read from
    ``src + ((n * h + ih) * w + iw) * pix_stride`` with ``ih = oh * stride_h - pad_top + kh * dil_h``
    and ``iw = ow * stride_w - pad_left + kw * dil_w``, or ``chunk`` bytes of ``pad_value`` when
    (ih, iw) is outside the input (0, or the input's zero point of a quantized model). Weights and
    parameters use the same path as a 1×``npix`` "image" with a 1×1 kernel.
    ``row_bytes`` may exceed ``kh * kw * chunk``: the rest of each row is left as it is.

    The activation CB counts W-byte words (``ext_bytes``), its whole lane bank being one ring: an
    ``ACT`` descriptor reserves ``words`` words from the CB's write position, fills them from there
    on (wrapping at the end of the lane) and pushes them when done. With ``stream`` (a broadcast
    of one word per row) it instead reserves and pushes word by word, as the rows arrive, so the
    consumer may start on the first rows and one descriptor may load more than the ring holds.
    Weight and parameter CBs have two pages; ``words`` is unused for them.

    With ``gang`` = g > 0 a flat descriptor (1×1 kernel over a 1×npix image whose rows are
    contiguous: ``pix_stride == chunk``) moves 2**g rows per cycle: one read of ``2**g * chunk``
    bytes (at most W) feeds 2**g consecutive lanes, row ``j + i`` going to lane ``(j + i) % lanes``
    at the same lane byte. The compiler only uses it when 2**g divides the lane count and no row
    crosses a W-byte word of its lane.

    With ``run`` (the compiler sets it when a tap's ``chunk`` is the whole pixel, ``pix_stride``,
    and ``dil_w`` is 1, so that a kernel row's taps are adjacent in memory and in the lane) the
    taps of a kernel row move as *runs*: from tap ``kj`` on, every tap inside the input up to the
    row's end or the input's right edge (or, in the padding, every tap up to the input's left edge
    or the row's end) is one run of ``taps · chunk`` bytes, cut only at the lane's W-byte words. A
    3-channel stem's 7-tap kernel row is then one or two reads instead of seven.

    With ``run`` and ``gang`` = g > 0 (an ``ACT`` descriptor without ``split``) a read also carries
    the next pixels' same kernel row (a *pixel gang*): at a kernel row's first tap, inside the
    input, the read of that pixel's run holds pixel ``i``'s run at byte ``i · stride_w · chunk``
    for up to 2**g pixels (at most ``2 * READ_GANG``) — as many as have whole runs inside the
    input and are in the same lane round, output row and descriptor — and each goes to its own
    lane at the same lane byte. The compiler uses it only when
    ``(2**g - 1) · stride_w · chunk + kw · chunk ≤ W`` and no kernel row crosses a W-byte word of
    its lane (padding ``row_bytes`` to a power of two when that makes it so: a 3×3 stem's 27 bytes
    to 32), so a 3-channel 3×3/2 stem reads its three kernel rows for eight pixels in three cycles.

    With ``split`` = s > 0 (the split-K mode of :class:`ComputeDesc`, G = 2**s) an ``ACT``
    descriptor fills ``lanes / G`` lane groups of G adjacent lanes: row ``j`` goes to every lane of
    group ``j % (lanes / G)`` in one write, at byte ``(j // (lanes / G)) * row_bytes``.

    With ``bcast`` every row is written to *all* lanes of the CB at byte ``j * row_bytes`` (one
    write to every lane bank in the same cycle). Depthwise conv loads its raw input window this way
    (a 1×1 kernel over the zero-padded input, each input byte read once per window): every MAC-array
    row then finds the taps of its own output pixel in its own lane (see :class:`ComputeDesc`).
    """

    target: Target
    bcast: 1
    gang: 3
    stream: 1
    run: 1          #: merge a kernel row's adjacent taps into runs (see above)
    kh: 8
    kw: 8
    stride_h: 8
    stride_w: 8
    dil_h: 8
    dil_w: 8
    pad_top: 8
    pad_left: 8
    src: 32
    pix_stride: 32
    chunk: 16
    row_bytes: 16
    h: 16
    w: 16
    ho: 16
    wo: 16
    n0: 16
    oh0: 16
    ow0: 16
    npix: 16
    words: 32       #: ACT: W-byte words reserved in, filled and pushed to the activation CB
    pad_value: signed(8)    #: the byte read for a tap outside the input
    split: 2        #: ACT, split-K mode: log2 G; row j goes to the G lanes ``(j % (lanes / G)) · G + i``


class ComputeDesc(data.Struct):
    """One output block on the math engine: ``m`` activation tiles × ``n`` weight tiles.

    For each activation tile ``ta`` (R pixels) and weight tile ``tw`` (C channels), ``k`` steps
    stream through the MAC array and the pack stage writes the tile's real output rows (at most
    R; see :class:`WriteDesc`) to the output CB.
    The engine waits for ``act_wait`` words of the activation CB (counted in W-byte words from its
    read position, which is the page's byte 0) and pops ``act_pop`` words when done. With
    ``packed`` (int8 output) the ``n`` weight tiles of an activation tile share output entries
    in groups of ``PACK_SLOTS``: row ``r`` of tile ``tw`` fills bytes ``(tw % PACK_SLOTS) * cols ..``
    of its group's entry ``r``, and a group's entries are pushed with its last tile.

    In depthwise mode (``dw``) the activation page holds a raw input window (``bcast``
    :class:`ReadDesc`: whole input rows, pixel ``i`` of the window at word ``i``, up to W
    channels each, the same in every lane; the window may wrap around the end of the lane) and a
    step reads ``cols`` bytes per lane, each lane at its own address: lane ``r`` computes output
    pixel ``p = ta * rows + r`` of the block, ``(oh, ow) = divmod(p, dw_wo)``, and reads tap
    ``k = ki * kw + kj`` of weight tile ``tw`` at byte ``pix_r + tap_k + tw * cols`` of the page,
    or ``pad_value`` bytes when the tap's input row / column is outside ``dw_h`` × ``dw_w`` (the
    padding is never stored). Before each activation tile the engine waits until the activation CB holds the
    window rows its last lane reads: ``(ih + dw_span) * dw_w`` words, ``ih`` being that lane's
    first tap row (at most ``act_wait``, at least 0), so a block may start while its window is
    still arriving (a ``stream`` read). The address generator keeps ``pix_r`` and the tap's input row and
    column per lane incrementally: lane 0 starts at ``dw_origin`` (row ``dw_ih0``, column
    ``dw_iw0``); one pixel further adds ``dw_sw`` words and ``dw_sw`` columns; ``rows`` pixels
    further adds ``dw_adv`` bytes, ``dw_ih_adv`` rows and ``dw_iw_adv`` columns with
    ``ow += dw_qw``; when ``ow`` wraps past ``dw_wo``, ``dw_wrap`` bytes and ``dw_sh`` rows more
    and ``dw_iw_wrap`` columns less. ``tap_k`` adds ``dw_dw`` words (``dw_dw`` columns) per kernel
    column and ``dw_tap_row`` bytes more (next kernel row: ``dw_dh`` rows) after each ``dw_kw``
    columns.

    Grouped convs with ``g = 2**dw_group`` input and output channels per group (g ≤ cols) use the
    same mode with ``k = taps · g``: step ``k = tap · g + j`` reads tap ``tap`` as above, and
    column ``c`` multiplies byte ``(c - c % g) + j`` of its lane's ``cols``-byte slot (the j-th
    input channel of its own group) by byte ``k`` of its weight row — the OHWI row
    ``w[channel, tap, j]``. ``dw_group = 0`` is depthwise: column ``c`` takes byte ``c``.

    Split-K mode (``split`` = s > 0, G = 2**s, dense only): the array's rows form G row groups
    (row ``r`` is in group ``r % G``) over ``rows / G`` pixels (row ``r`` computes pixel
    ``r // G`` of the tile), so a tile has ``rows / G`` pixels, ``valid_rows`` counts pixels, and
    step ``k`` reads reduction byte ``k · G + r % G`` of lane ``r`` (every lane of a pixel's group
    holds its im2col row, see :class:`ReadDesc`) and bytes ``k · G .. k · G + G - 1`` of each
    weight lane, byte ``g`` for row group ``g``: ``k`` is the reduction size / G (the reduction and
    the rows' byte pitches multiples of G). Pack adds the G rows of a pixel before the bias and
    writes ``rows / G`` entries per tile.
    """

    m: 8
    n: 8
    k: 16
    a_row_bytes: 16
    w_row_bytes: 16
    valid_rows: 16    #: output rows (pixels) of the block that are real; the rest are padding
    valid_cols: 16    #: output channels of the block that are real
    zero_point: signed(8)
    dw: 1
    out_int32: 1
    relu: 1
    packed: 1
    pop_wgt: 1
    pop_param: 1
    float_requant: 1  #: onnxruntime's float32 requantization (scale bits in ParamRecord.multiplier)
    dw_group: 3       #: depthwise mode: log2 of the input channels per conv group (0: depthwise)
    act_wait: 24      #: activation CB words the block reads (from the CB's read position)
    act_pop: 24       #: activation CB words popped when the block is done
    dw_wo: 16         #: output pixels per output row (depthwise addressing)
    dw_qw: 16         #: rows % dw_wo: column advance of a lane from one tile to the next
    dw_kw: 8          #: kernel columns
    dw_adv: 32        #: bytes a lane advances from one tile to the next, before a row wrap
    dw_wrap: signed(32)     #: bytes added when a lane's column wraps to the next output row
    dw_tap_row: signed(32)  #: bytes added after the last kernel column, to the next kernel row
    dw_origin: signed(32)   #: page byte of the block's first output pixel's first tap (padding: outside)
    dw_ih0: signed(16)      #: input row of that tap (negative in the top padding)
    dw_iw0: signed(16)      #: its input column (minus the left padding)
    dw_sh: 8                #: stride: input rows from one output row to the next
    dw_sw: 8                #: stride: input columns from one output column to the next
    dw_dh: 8                #: dilation: input rows from one kernel row to the next
    dw_dw: 8                #: dilation: input columns from one kernel column to the next
    dw_ih_adv: 16           #: input rows a lane advances from one tile to the next, before a wrap
    dw_iw_adv: 16           #: input columns a lane advances from one tile to the next, before a wrap
    dw_iw_wrap: 16          #: input columns subtracted on a wrap to the next output row
    dw_h: 16                #: input height: taps outside [0, dw_h) x [0, dw_w) read as zero
    dw_w: 16                #: input width
    dw_span: signed(16)     #: window rows up to a lane's last tap row: its first tap row + dw_span
    pad_value: signed(8)    #: the byte a depthwise tap in the padding reads
    split: 2                #: split-K mode: log2 of the row groups (0: off)


class WriteDesc(data.Struct):
    """Store one output block from the output CB to external memory (writer engine).

    Entry order matches :class:`ComputeDesc`: for ``ta`` in ``m``, for ``tw`` in ``n``, ``rows``
    rows. Row ``r`` of tile (ta, tw) is output pixel ``pix0 + ta * rows + r`` and goes to
    ``dst + pixel * pix_stride + tw * cols * elem_bytes``; only the first ``valid_rows`` pixels and
    ``valid_cols`` channels of the block are written. A tile has one entry per real row: the MAC
    array drains only a tile's real rows, and pack writes them D (the output banks) a transfer,
    so an odd count leaves one padding entry, popped without a store in a cycle of its own. With
    ``packed`` (see :class:`ComputeDesc`) each group of ``PACK_SLOTS`` weight tiles of an activation
    tile shares its entries, up to ``PACK_SLOTS * cols`` channels each, one store per pixel and
    group. In the split-K mode (``split`` = s, see :class:`ComputeDesc`) a tile has ``rows >> s``
    pixels and one entry per real pixel.
    """

    dst: 32
    pix0: 32
    pix_stride: 32
    m: 8
    n: 8
    valid_rows: 16
    valid_cols: 16
    out_int32: 1
    packed: 1
    split: 2
    _pad0: 4


class ParamRecord(data.Struct):
    """Per-output-channel parameters, :data:`PARAM_RECORD_BYTES` bytes in a parameter page.

    With :attr:`ComputeDesc.float_requant` ``multiplier`` holds the IEEE float32 bits of the
    channel's scale and ``shift`` is unused.
    """

    bias: signed(32)
    multiplier: signed(32)
    shift: 8
    _pad0: 56


def pack_job_layout(cols: int) -> data.StructLayout:
    """What the compute engine tells pack about each tile it issues (one per R×C output tile).

    ``params``: the records of the tile's ``cols`` channels; ``zero_point``, ``relu``,
    ``out_int32`` and ``float_requant``: the output format (from the :class:`ComputeDesc`). With
    packed tiles ``slot`` is the tile's place in the shared output entries and ``push`` marks the
    group's last tile (its rows push the entries); otherwise ``slot`` is 0 and every tile pushes.
    ``split``: the tile's split-K mode (log2 of the rows pack adds into one entry).
    """
    return data.StructLayout({
        "params": data.ArrayLayout(ParamRecord, cols),
        "zero_point": signed(8), "relu": 1, "out_int32": 1, "float_requant": 1, "slot": range(PACK_SLOTS),
        "push": 1, "split": 2,
    })


# Count events: what each engine adds to the tile's counters in one cycle (0 when it adds nothing).
# Every field is named after its counter (``TILE_COUNTERS`` in :mod:`tilelab.pe_models.tile`); the
# tile sums a counter's fields over its engines.

class FetcherEvents(data.Struct):
    """Count events of the command fetcher."""

    cmd_bytes_read: 16


class ReaderEvents(data.Struct):
    """Count events of the reader engine."""

    reader_busy: 1
    reader_wait_cb: 1
    ext_bytes_read: 16
    l1_writes: 16


class ComputeEvents(data.Struct):
    """Count events of the compute engine."""

    compute_busy: 1
    compute_wait_cb: 1
    compute_wait_out: 1
    macs: 16
    mac_steps: 1
    l1_reads: 16


class PackEvents(data.Struct):
    """Count events of the pack stage."""

    pack_wait_cb: 1
    l1_writes: 16


class WriterEvents(data.Struct):
    """Count events of the writer engine."""

    writer_busy: 1
    writer_wait_cb: 1
    ext_bytes_written: 16
    l1_reads: 16


for _s in (ProgramHeader, ReadDesc, ComputeDesc, WriteDesc):
    assert _s.as_shape().size <= DESC_BITS, _s
assert ParamRecord.as_shape().size == 8 * PARAM_RECORD_BYTES


#: Hardware counters of a tile, in the order of its ``counters`` ports (all 48 bits).
TILE_COUNTERS = (
    "cycles",            # cycles from start to done
    "reader_busy",       # cycles the reader moved data
    "reader_wait_cb",    # cycles the reader waited for a free page
    "compute_busy",      # cycles compute issued steps
    "compute_wait_cb",   # cycles compute waited for act / wgt / param pages
    "compute_wait_out",  # cycles compute had a step ready but the operand queue was full
    "pack_wait_cb",      # cycles pack held a row because the output CB was full
    "writer_busy",       # cycles the writer wrote to external memory
    "writer_wait_cb",    # cycles the writer waited for output rows
    "macs",              # useful multiply-accumulates issued (real pixels x real channels)
    "mac_steps",         # reduction steps issued to the array (each R*C MAC slots)
    "l1_reads",          # L1 lane-bank / output-buffer word reads
    "l1_writes",         # L1 word writes
    "ext_bytes_read",    # bytes of activations, weights and parameters read from external memory
    "ext_bytes_written",  # bytes of outputs written to external memory
    "cmd_bytes_read",    # bytes of descriptors fetched
)

#: Status ports read by the watchdog's diagnosis.
TILE_STATUS = ("reader_state", "compute_state", "writer_state", "act_words", "wgt_pages", "param_pages",
               "out_entries", "reader_done", "compute_done", "writer_done")
