"""Bit formats of the element-wise / pooling unit: its op codes, descriptor and parameter tables.

These are the only definitions: :class:`~tilelab.pe_models.eltwise.EltwiseUnit` decodes them with
``View``s and ``m.Switch``, the host (:mod:`tilelab.api.ops`) packs them with
``Struct.const({...}).as_bits()``.

A program in external memory is a list of :data:`DESC_BYTES`-byte :class:`EltwiseDesc` slots
from byte 0; the one with ``last`` set ends it. Tensors are NHWC int8 at any byte address,
``C`` bytes per pixel. The unit works on channel chunks of W bytes (W = the port width); for each
chunk it first reads :data:`PARAM_WORDS` ``[op]`` parameter words (W bytes each) from
``params + chunk · PARAM_WORDS[op] · W`` — the per-channel tables below, channels of the chunk
in lane order (the ops of :data:`SHARED_PARAMS` read one table from ``params`` for every chunk).
The host computes the tables, QADD's float32 constants included (as it computes the compute
tile's float requantization scales); the unit does every per-element operation.

Per-channel parameter table of one chunk (word ``k`` = W bytes, lane ``l`` = channel
``chunk · W + l``; an int32 array over the W lanes spans 4 words, an int64 array 8):

- ``ADD``: words 0-3 ``a_mult`` int32, 4-7 ``b_mult`` int32, 8 ``a_shift`` uint8, 9 ``b_shift`` uint8.
- ``BN_APPLY``: words 0-3 ``mean`` int32 (Q.8), 4-11 ``a = gamma · inv`` int64, 12-15 ``beta`` int32.
- ``TABLE``: one table for every chunk (read from ``params`` itself for each): bytes 0-255 (of
  words 0-15) are the int8 outputs for the int8 inputs -128 … 127, in that order
  (:func:`table_params_layout`); word 16, bytes 0-3: the output's bytes per pixel (uint32; 0: ``c``,
  the input's), so that a TABLE can write a channel slice of a wider tensor (QLinearConcat: one
  TABLE per input, ``dst`` at its first channel).
- ``QADD``: one word for every chunk (from ``params`` itself): bytes 0-3 ``ra``, 4-7 ``rb``, 8-11
  ``k``, IEEE float32 (:func:`qadd_params_layout`).
- ``QMUL``: one word for every chunk (from ``params`` itself): bytes 0-3 the scale ``r`` (float32),
  4 ``a_zp``, 5 ``b_zp``, 6 ``y_zp`` (int8) (:func:`qmul_params_layout`).
- ``QAVGPOOL``: one word for every chunk (from ``params`` itself): bytes 0-3 ``x_scale``, 4-7
  ``y_scale``, 8-11 ``float(y_zp)`` (the raw zero point), all float32; byte 12 ``x_zp`` (int8),
  byte 13 bit 0 ``count_include_pad`` (:func:`qavg_params_layout`).
- ``BN_TERMS`` reads two tables per chunk: the chunk's statistics in the **statistics layout**
  below (:data:`STATS_WORDS` words from ``params + chunk · STATS_WORDS · W``: the all-reduce
  totals, as the collective plane writes them back) and its affine table
  (:data:`AFFINE_WORDS` words from ``src_b + chunk · AFFINE_WORDS · W``: words 0-3 ``gamma``
  int32, 4-7 ``beta`` int32). It writes the chunk's BN_APPLY table (16 words) at
  ``dst + chunk · 16 · W``.

**Statistics layout** (what ``BN_STATS`` writes at ``dst + chunk · STATS_WORDS · W`` and
``BN_TERMS`` reads): per chunk, words 0-3 ``Σx`` int32, 4-7 ``Σx² mod 2**16`` int32, 8-11
``Σx² >> 16`` int32, lanes of channels past ``C`` zero. Every value is an int32 lane, so the
statistics of several shards add up lane by lane (the collective plane's wrapping int32 sum,
:data:`~tilelab.hdl.formats.mesh.MoveOp` ``REDUCE``) to the statistics of their union: with at
most 2**24 values per channel in all (``golden.BN_MAX_COUNT``), no lane leaves int32 (``Σx``
≤ 2**31 in magnitude, the low parts' sum < 2**16 · 2**8 for up to 256 shards, ``Σx² >> 16``
≤ 2**22). ``Σx² = low + (high << 16)``.
"""

from amaranth.hdl import signed
from amaranth.lib import data, enum

from . import field_max

__all__ = ["ELTWISE_COUNTERS", "ELTWISE_STATUS", "AFFINE_WORDS", "DESC_BYTES", "DESC_BITS", "PARAM_WORDS",
           "EltwiseOp", "EltwiseDesc", "EltwiseState", "MAX_BATCH", "MAX_CHANNELS", "MAX_DIM", "MAX_PADDING",
           "MAX_STRIDE", "MAX_WINDOW", "STATS_SPLIT_BITS", "STATS_WORDS", "TERMS_WORDS", "unpack_stats",
           "add_params_layout", "bn_apply_params_layout", "bn_terms_params_layout", "QLINEAR_OPS",
           "SHARED_PARAMS", "TABLE_ENTRIES", "TABLE_WORDS", "qadd_params_layout", "qavg_params_layout",
           "qmul_params_layout", "table_params_layout"]

#: Size of one descriptor slot in external memory.
DESC_BYTES = 64
DESC_BITS = 8 * DESC_BYTES
#: Largest number of values in one averaging window (the reciprocal multiply is exact up to it).
MAX_WINDOW = 1 << 16


class EltwiseOp(enum.Enum, shape=4):
    """What one descriptor computes (see :mod:`tilelab.reference.golden` for each definition)."""

    MAXPOOL = 0         #: window maximum, padding never wins
    AVGPOOL = 1         #: window sum, rounded division by the window size
    GLOBAL_AVGPOOL = 2  #: AVGPOOL with the window = the whole H × W image
    ADD = 3             #: two inputs, each requantized per channel, + zero point, ReLU, saturation
    RELU = 4            #: max(x, zero_point)
    BN_STATS = 5        #: per-channel Σx and Σx² over all pixels of the input (statistics layout)
    BN_APPLY = 6        #: batch-norm step 8 with per-channel mean, a = gamma·inv, beta
    BN_TERMS = 7        #: batch-norm steps 2-7 per channel (two divisions, a square root) → BN_APPLY table
    TABLE = 8           #: a 256-entry int8 lookup table per element (onnxruntime's QLinearSigmoid / LeakyRelu)
    QADD = 9            #: onnxruntime's QLinearAdd: two float32 fused multiply-adds per element, rounded
    QMUL = 10           #: onnxruntime's QLinearMul: an integer product times a float32 scale, rounded
    QAVGPOOL = 11       #: onnxruntime's QLinearAveragePool: float32 sums of dequantized values, two divisions


#: Ops run by the unit's onnxruntime lanes (:class:`~tilelab.pe_models.eltwise.qlinear.QLinearLanes`, on
#: a clock of their own that ticks only while one of them runs).
QLINEAR_OPS = (EltwiseOp.TABLE, EltwiseOp.QADD, EltwiseOp.QMUL, EltwiseOp.QAVGPOOL)


#: Words per channel chunk of the statistics layout (BN_STATS' output, BN_TERMS' first table): 4 of
#: Σx, 4 of Σx² mod 2**16, 4 of Σx² >> 16, all int32.
STATS_WORDS = 12
#: Words per channel chunk of BN_TERMS' affine table (4 of gamma int32, 4 of beta int32).
AFFINE_WORDS = 8
#: Bits of Σx² in the low lane of the statistics layout.
STATS_SPLIT_BITS = 16
#: Parameter words (W bytes each) read per channel chunk, by op (BN_TERMS: both of its tables).
PARAM_WORDS = {op: 0 for op in EltwiseOp} | {EltwiseOp.ADD: 10, EltwiseOp.BN_APPLY: 16,
                                             EltwiseOp.BN_TERMS: STATS_WORDS + AFFINE_WORDS,
                                             EltwiseOp.TABLE: 17, EltwiseOp.QADD: 1, EltwiseOp.QMUL: 1,
                                             EltwiseOp.QAVGPOOL: 1}
#: Ops whose parameter table is one table for every channel chunk (read from ``params`` for each).
SHARED_PARAMS = (EltwiseOp.TABLE, EltwiseOp.QADD, EltwiseOp.QMUL, EltwiseOp.QAVGPOOL)
#: Entries of TABLE's lookup table (one per int8 value), and the words it takes (at W = 16; fewer are used at
#: larger W). TABLE's parameter word TABLE_WORDS holds the output's pixel stride.
TABLE_ENTRIES = 256
TABLE_WORDS = 16
#: Result words written per channel chunk by BN_TERMS (a BN_APPLY table).
TERMS_WORDS = 16


class EltwiseState(enum.Enum, shape=3):
    """What the unit is doing; exported for the watchdog's diagnosis."""

    IDLE = 0    #: waiting for start
    FETCH = 1   #: reading a descriptor
    PARAMS = 2  #: reading a chunk's parameter table
    RUN = 3     #: streaming the chunk's taps
    DRAIN = 4   #: waiting for the pipeline to empty at the end of a chunk
    WRITE = 5   #: writing a chunk's BN_STATS sums or BN_TERMS table
    DONE = 6    #: program finished
    TERMS = 7   #: computing BN_TERMS, one channel after another


class EltwiseDesc(data.Struct):
    """One op over one tensor (all sizes in elements, addresses in bytes).

    Input ``a`` at ``src_a`` (and ``b`` at ``src_b`` for ADD) is ``(n, h, w, c)``; the output
    at ``dst`` is ``(n, ho, wo, c)``. Windows are ``kh × kw`` with strides ``sh, sw`` and
    padding ``ph, pw`` (ignored for GLOBAL_AVGPOOL and BN_STATS, whose window is the whole
    ``h × w`` image; BN_STATS also sums over ``n``). Element-wise ops use a 1 × 1 window.

    Averaging: ``out = ((S + div_bias) · div_mult >> div_shift) - 128`` with ``S`` the window
    sum; the host chooses ``div_bias = count // 2 + 128 · count`` and ``div_mult``,
    ``div_shift`` so this equals ``(S + count // 2) // count`` exactly (see
    :func:`tilelab.api.ops.reciprocal`).

    QADD (onnxruntime's QLinearAdd on the raw 8-bit values ``a + 128·uint8``, ``b`` likewise)::

        t = fma(a, ra, fma(b, rb, k))       (scalar_b: b is not read, rb = 0 and k holds k + rb·b)
        y = clamp(rint(t) - 128·uint8, -128, 127)

    every operation IEEE float32 with one rounding, round half to even. QMUL (onnxruntime's
    QLinearMul; the differences are the same on stored and raw values)::

        y = clamp(rint(float((a - a_zp) · (b - b_zp)) · r) + y_zp, -128, 127)

    QAVGPOOL (onnxruntime's QLinearAveragePool) over each window, taps in the window's order::

        s = 0;  s = s + x_scale · float(x - x_zp)          (each real tap: a product, a sum)
        y = clamp(rint((s / float(count)) / y_scale + float(y_zp)) - 128·uint8, -128, 127)

    with ``count`` the window size (``count_include_pad``) or its real taps.

    ``zero_point`` is the output zero point (ADD, RELU), ``a_zero_point``/``b_zero_point`` the
    inputs' (ADD); ``relu`` applies ``max(t, zero_point)`` (ADD); ``bn_shift`` is ``T`` of
    :func:`tilelab.reference.golden.batch_norm_train` (BN_APPLY); ``bn_count`` is its ``n`` (values
    per channel) and ``bn_eps`` its ``eps`` (BN_TERMS, over ``c`` channels; its statistics at
    ``params``, its gamma / beta at ``src_b``).
    """

    op: EltwiseOp
    last: 1
    relu: 1
    n: 16
    c: 16
    h: 24
    w: 24
    ho: 24
    wo: 24
    kh: 24
    kw: 24
    sh: 8
    sw: 8
    ph: 8
    pw: 8
    src_a: 32
    src_b: 32
    dst: 32
    params: 32
    uint8: 1
    scalar_b: 1
    zero_point: signed(8)
    a_zero_point: signed(8)
    b_zero_point: signed(8)
    bn_shift: 8
    div_mult: 26
    div_shift: 8
    div_bias: 32
    bn_count: 25
    bn_eps: 31


#: Largest height, width, window or row count of one descriptor.
MAX_DIM = field_max(EltwiseDesc, "h")
#: Largest batch and channel count of one descriptor.
MAX_BATCH = field_max(EltwiseDesc, "n")
MAX_CHANNELS = field_max(EltwiseDesc, "c")
#: Largest stride and padding of one descriptor.
MAX_STRIDE = field_max(EltwiseDesc, "sh")
MAX_PADDING = field_max(EltwiseDesc, "ph")


assert EltwiseDesc.as_shape().size <= DESC_BITS


def add_params_layout(width_bytes: int) -> data.StructLayout:
    """An ``ADD`` chunk's parameter table over the W lanes (:data:`PARAM_WORDS` words)."""
    W = width_bytes
    return data.StructLayout({
        "a_mult": data.ArrayLayout(signed(32), W), "b_mult": data.ArrayLayout(signed(32), W),
        "a_shift": data.ArrayLayout(8, W), "b_shift": data.ArrayLayout(8, W),
    })


def bn_apply_params_layout(width_bytes: int) -> data.StructLayout:
    """A ``BN_APPLY`` chunk's parameter table: ``mean`` (Q.8), ``a = gamma · inv``, ``beta``."""
    W = width_bytes
    return data.StructLayout({
        "mean": data.ArrayLayout(signed(32), W), "a": data.ArrayLayout(signed(64), W),
        "beta": data.ArrayLayout(signed(32), W),
    })


def table_params_layout(width_bytes: int) -> data.StructLayout:
    """A ``TABLE``'s parameters: ``entries[v + 128]`` is the output for the int8 input ``v``; ``out_c``
    the output's bytes per pixel (0: the input's ``c``)."""
    W = width_bytes
    return data.StructLayout({"entries": data.ArrayLayout(signed(8), TABLE_ENTRIES),
                              "unused": TABLE_WORDS * 8 * W - 8 * TABLE_ENTRIES, "out_c": 32})


def qadd_params_layout(width_bytes: int) -> data.StructLayout:
    """A ``QADD``'s constants: ``ra``, ``rb``, ``k`` as float32 bits."""
    return data.StructLayout({"ra": 32, "rb": 32, "k": 32})


def qmul_params_layout(width_bytes: int) -> data.StructLayout:
    """A ``QMUL``'s constants: the scale ``r`` (float32 bits) and the three zero points."""
    return data.StructLayout({"r": 32, "a_zp": signed(8), "b_zp": signed(8), "y_zp": signed(8)})


def qavg_params_layout(width_bytes: int) -> data.StructLayout:
    """A ``QAVGPOOL``'s constants: the scales and the output zero point (float32 bits), ``x_zp``, the flag."""
    return data.StructLayout({"x_scale": 32, "y_scale": 32, "y_zp": 32, "x_zp": signed(8), "include_pad": 1})


def bn_terms_params_layout(width_bytes: int) -> data.StructLayout:
    """``BN_TERMS``' two tables of a chunk as read: the statistics layout (``sum`` = Σx,
    ``sq_low`` / ``sq_high`` = Σx² mod 2**16 / Σx² >> 16), then the affine table (``gamma``,
    ``beta``)."""
    W = width_bytes
    return data.StructLayout({
        "sum": data.ArrayLayout(signed(32), W), "sq_low": data.ArrayLayout(32, W), "sq_high": data.ArrayLayout(32, W),
        "gamma": data.ArrayLayout(signed(32), W), "beta": data.ArrayLayout(signed(32), W),
    })


for _w in (16, 32, 64):
    for _op, _layout in ((EltwiseOp.ADD, add_params_layout), (EltwiseOp.BN_APPLY, bn_apply_params_layout),
                         (EltwiseOp.BN_TERMS, bn_terms_params_layout)):
        assert _layout(_w).size == PARAM_WORDS[_op] * 8 * _w, (_op, _w)
    for _op, _layout in ((EltwiseOp.TABLE, table_params_layout), (EltwiseOp.QADD, qadd_params_layout),
                         (EltwiseOp.QMUL, qmul_params_layout), (EltwiseOp.QAVGPOOL, qavg_params_layout)):
        assert _layout(_w).size <= PARAM_WORDS[_op] * 8 * _w, (_op, _w)


def unpack_stats(raw, channels: int, word_bytes: int):
    """``(Σx, Σx²)`` per channel, int64 ``(channels,)`` each, from words in the statistics layout.

    Parameters
    ----------
    raw : bytes-like
        ``ceil(channels / word_bytes) · STATS_WORDS`` words of ``word_bytes`` bytes (a BN_STATS
        output or an all-reduce of several).
    channels, word_bytes : int
        Channel count and word width W.
    """
    import numpy as np

    chunks = -(-channels // word_bytes)
    lanes = np.frombuffer(bytes(raw), np.int32)
    if len(lanes) != chunks * STATS_WORDS * word_bytes // 4:
        raise ValueError(f"{channels} channels in the statistics layout take {chunks * STATS_WORDS} words of "
                         f"{word_bytes} bytes, not {len(lanes) * 4} bytes")
    groups = lanes.astype(np.int64).reshape(chunks, 3, word_bytes)   # Σx, low, high; W lanes per chunk
    s1, low, high = (groups[:, g].reshape(-1)[:channels] for g in range(3))
    return s1, low + (high << STATS_SPLIT_BITS)


#: Hardware counters of the unit, in the order of its counter ports (all 48 bits).
ELTWISE_COUNTERS = (
    "cycles",             # cycles from start to done
    "busy",               # cycles the unit issued a data tap
    "ext_bytes_read",     # bytes of tensors and parameter tables read (both ports)
    "ext_bytes_written",  # bytes written (real channels only)
    "cmd_bytes_read",     # bytes of descriptors fetched
    "elements",           # real input elements read on port a (padding taps excluded)
    "terms_cycles",       # cycles spent computing BN_TERMS (sequential divider / square root)
)

#: Status ports read by the watchdog's diagnosis.
ELTWISE_STATUS = ("state", "descs_done")
