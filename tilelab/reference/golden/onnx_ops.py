"""Golden ops of onnxruntime's quantized kernels (CPU provider, x86-64), one function per op.

Every function reproduces the arithmetic of one onnxruntime kernel bit for bit on int8 storage:
a model's uint8 value ``q`` is stored as ``q - 128`` (its zero points too) and ``unsigned=True``
says so; int8 values are stored as they are. Where onnxruntime computes in float on the *raw*
values (uint8 ``0..255``), the functions rebuild them first, because float rounding depends on
them. All float arithmetic is IEEE float32 with round-to-nearest-even; :func:`fma_f32` is a
fused multiply-add with one rounding (x86 ``vfmadd``), emulated exactly.

What each op computes, and what the RTL needs
---------------------------------------------
``QLinearConv`` / ``QLinearMatMul`` / ``QGemm``
    int32 accumulators, the input zero point folded into the bias (padding holds the zero
    point), then :func:`~tilelab.reference.golden.requantize_float` with the scale
    ``float32(xs·ws) / ys`` (:func:`~tilelab.reference.golden.qlinear_scale`; ``QGemm``:
    ``((alpha·as)·bs) / ys``, :func:`qgemm_scale`). RTL: the tile's pack stage float requant
    mode and the reader's pad value (being added).
``MaxPool`` on 8-bit values
    the window maximum, padding ignored; the uint8 → int8 shift keeps the order, so
    :func:`~tilelab.reference.golden.max_pool2d` is exact. RTL: the element-wise unit has it.
``QLinearGlobalAveragePool`` (:func:`qlinear_global_avg_pool`)
    ``acc = Σx - zp_x·H·W`` (integer; the same on stored values), then ``requantize_float``
    with ``scale = xs / (ys · float(H·W))``. RTL: a depthwise H×W conv with weights 1 and
    bias ``-zp_x·H·W`` on the tile with the float requant mode: the importer lowers it so.
``QLinearAdd`` (:func:`qlinear_add`)
    MLAS's AVX2 kernel, float32 on raw values: ``ra = as / cs``, ``rb = bs / cs``,
    ``k = zc - (ra·za + rb·zb)`` (the inner sum one FMA), ``t = fma(a, ra, fma(b, rb, k))``
    (a one-value ``b``: ``fma(a, ra, k + rb·b)``), round half to even, saturate. RTL: the
    element-wise unit's QADD (``ops.qlinear_add``, :mod:`tilelab.hdl.fpfma`).
``QLinearMul`` (:func:`qlinear_mul`)
    MLAS: ``r = (as·bs) / cs`` in float32; ``t = (float(a - za)·float(b - zb))·r``, round half
    to even, ``+ zc``, saturate. RTL: the element-wise unit's QMUL (``ops.qlinear_mul``).
``QLinearAveragePool`` (:func:`qlinear_avg_pool`)
    float: every input dequantized (``xs·float(x - zx)``), summed in float32 tap by tap (rows,
    then columns), divided by ``float(count)``, then ``rint(y / ys + zy)`` saturated. RTL: the
    element-wise unit's QAVGPOOL (``ops.qlinear_avg_pool``).
``QLinearSigmoid``, ``QLinearLeakyRelu`` (:func:`qlinear_sigmoid_table`, :func:`qlinear_leaky_relu_table`)
    a 256-entry table (``QlinearBuildLookupTable``): each 8-bit value dequantized
    (``xs·float(x - zx)``), the float function applied (sigmoid: MLAS's rational polynomial with
    FMAs, :func:`mlas_logistic`; LeakyRelu: ``x if x >= 0 else alpha·x``), then
    :func:`quantize_linear`. The table is exact here; on the hardware the element-wise unit's
    lookup table replays it (:func:`apply_table`). RTL: the element-wise unit's TABLE
    (``ops.qlinear_table``).
``QLinearConcat`` (:func:`qlinear_concat`)
    per input: a copy when its scale and zero point equal the output's, else the 256-entry
    table of the identity (dequantize, quantize). RTL: one TABLE of the element-wise unit per
    input into its channel slice (``ops.qlinear_concat``; the identity table for a copy).
``QuantizeLinear`` (:func:`quantize_linear`), ``DequantizeLinear`` (:func:`dequantize_linear`)
    host-side conversion of the model's float input and output: ``rint(clamp(x / s)) + zp`` and
    ``float(q - zp) · s``.
"""

from __future__ import annotations

import numbers

import numpy as np

from ._common import INT8_MAX, INT8_MIN, _check_int_array
from .conv import requantize_float

__all__ = [
    "apply_table",
    "dequantize_linear",
    "fma_f32",
    "global_avg_pool_scale",
    "mlas_logistic",
    "qgemm_scale",
    "qlinear_add",
    "qlinear_avg_pool",
    "qlinear_concat",
    "qlinear_global_avg_pool",
    "qlinear_leaky_relu_table",
    "qlinear_mul",
    "qlinear_sigmoid_table",
    "qlinear_table",
    "quantize_linear",
]

_F32 = np.float32


def _offset(unsigned: bool) -> int:
    if not isinstance(unsigned, bool):
        raise TypeError(f"unsigned must be a bool, not {unsigned!r}")
    return 128 if unsigned else 0


def _raw(x, unsigned: bool) -> np.ndarray:
    """Stored int8 values → the model's raw 8-bit values (as int32)."""
    return np.asarray(x).astype(np.int32) + _offset(unsigned)


def _from_raw(t, unsigned: bool) -> np.ndarray:
    """Raw 8-bit integers (already saturated to the model's range) → stored int8."""
    return (np.asarray(t, dtype=np.int64) - _offset(unsigned)).astype(np.int8)


def _check_scale(value, name: str) -> np.float32:
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.floating, np.ndarray)):
        raise TypeError(f"{name} must be a float32 scalar, not {value!r}")
    v = np.asarray(value)
    if v.size != 1:
        raise ValueError(f"{name} must be one value (per tensor), not shape {v.shape!r}")
    s = _F32(v.reshape(()))
    if not (np.isfinite(s) and s > 0 and s >= np.finfo(np.float32).tiny):
        raise ValueError(f"{name} must be a positive normal float32, not {float(s)!r}")
    return s


def _check_zp(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        raise TypeError(f"{name} must be an integer in [{INT8_MIN}, {INT8_MAX}], not {value!r}")
    if not INT8_MIN <= int(value) <= INT8_MAX:
        raise ValueError(f"{name} must lie in [{INT8_MIN}, {INT8_MAX}] (stored int8), not {int(value)!r}")
    return int(value)


def fma_f32(a, b, c) -> np.ndarray:
    """``a·b + c`` on float32 values with one rounding (a fused multiply-add), exactly.

    The product of two float32 values is exact in float64; the float64 sum ``s`` and its
    error ``e`` (Knuth's two-sum) hold ``a·b + c`` exactly. Rounding ``s`` to float32 is the
    correct rounding of ``s + e`` except when ``s`` is exactly halfway between two float32
    values and ``e != 0``: then the sign of ``e`` decides.

    Parameters
    ----------
    a, b, c : array_like
        float32 values (broadcast together).

    Returns
    -------
    numpy.ndarray
        float32.
    """
    a64, b64, c64 = (np.asarray(v, _F32).astype(np.float64) for v in (a, b, c))
    p = a64 * b64
    s = p + c64
    bp = s - c64
    e = (p - bp) + (c64 - (s - bp))
    r = s.astype(_F32)
    r64 = r.astype(np.float64)
    # The neighbour of r on the side of s: s is a tie iff it is the midpoint of r and it.
    toward = np.nextafter(r, np.where(s > r64, _F32(np.inf), _F32(-np.inf))).astype(np.float64)
    tie = (s != r64) & (2 * s == r64 + toward) & (e != 0)
    # At a tie the exact value lies beyond the midpoint (round to toward) iff e points to toward.
    fixed = np.where((e > 0) == (toward > r64), toward.astype(_F32), r)
    return np.where(tie, fixed, r).astype(_F32)


def quantize_linear(x, scale, zero_point=0, *, unsigned=False) -> np.ndarray:
    """onnxruntime's ``QuantizeLinear`` (per tensor) to int8 storage.

    ``q = rint(clamp(x / scale, lo - zp, hi - zp)) + zp`` in float32 with round half to even,
    ``[lo, hi]`` the model type's range and ``zp`` its raw zero point (MLAS's
    ``MlasQuantizeLinear``).

    Parameters
    ----------
    x : numpy.ndarray
        float32.
    scale : float
        float32, positive.
    zero_point : int
        Stored int8 zero point.
    unsigned : bool
        The model's type is uint8 (values stored as ``q - 128``).

    Returns
    -------
    numpy.ndarray
        int8, the shape of ``x``.
    """
    if not isinstance(x, np.ndarray) or x.dtype != np.float32:
        raise TypeError(f"x must be a float32 numpy array, not {getattr(x, 'dtype', type(x).__name__)}")
    s = _check_scale(scale, "scale")
    off = _offset(unsigned)
    zp = _check_zp(zero_point, "zero_point") + off
    lo, hi = INT8_MIN + off, INT8_MAX + off
    with np.errstate(over="ignore", invalid="ignore"):
        f = x / s
    f = np.clip(f, _F32(lo - zp), _F32(hi - zp))
    return _from_raw(np.rint(f).astype(np.int64) + zp, unsigned)


def dequantize_linear(q, scale, zero_point=0) -> np.ndarray:
    """onnxruntime's ``DequantizeLinear`` (per tensor): ``float32(q - zp) · scale``.

    The difference is the same on stored and raw values, so no ``unsigned`` is needed.

    Parameters
    ----------
    q : numpy.ndarray
        int8 storage.
    scale : float
    zero_point : int
        Stored int8 zero point.

    Returns
    -------
    numpy.ndarray
        float32.
    """
    _check_int_array(q, "q", dtype=np.int8)
    s = _check_scale(scale, "scale")
    zp = _check_zp(zero_point, "zero_point")
    return (q.astype(np.int32) - zp).astype(_F32) * s


def qgemm_scale(alpha, a_scale, b_scale, y_scale) -> np.ndarray:
    """``QGemm``'s output scales ``((alpha·as)·bs) / ys`` in float32, per column of ``b``.

    Parameters
    ----------
    alpha : float
    a_scale, y_scale : float
    b_scale : float or numpy.ndarray

    Returns
    -------
    numpy.ndarray
        float32 ``(N,)`` or ``(1,)``.
    """
    al = _F32(alpha)
    return ((al * _F32(a_scale)) * np.atleast_1d(np.asarray(b_scale, _F32))) / _F32(y_scale)


def qlinear_global_avg_pool(x, x_scale, x_zero_point, y_scale, y_zero_point) -> np.ndarray:
    """``QLinearGlobalAveragePool`` (MLAS): integer sums, one float32 requantization.

    ``acc = Σ_{h,w} x - zx·H·W`` (the same on stored and raw values), then
    :func:`~tilelab.reference.golden.requantize_float` with ``scale = xs / (ys · float(H·W))``.

    Parameters
    ----------
    x : numpy.ndarray
        int8 NHWC.
    x_scale, y_scale : float
    x_zero_point, y_zero_point : int
        Stored int8 zero points.

    Returns
    -------
    numpy.ndarray
        int8 ``(N, 1, 1, C)``.
    """
    _check_int_array(x, "x", dtype=np.int8)
    if x.ndim != 4:
        raise ValueError(f"x must have 4 dimensions (N, H, W, C), not shape {x.shape!r}")
    scale, hw = global_avg_pool_scale(x_scale, y_scale, x.shape[1] * x.shape[2])
    acc = x.astype(np.int64).sum(axis=(1, 2), keepdims=True) - _check_zp(x_zero_point, "x_zero_point") * hw
    return requantize_float(acc.astype(np.int32), scale, _check_zp(y_zero_point, "y_zero_point"))


def global_avg_pool_scale(x_scale, y_scale, count: int):
    """``(xs / (ys · float(count)), count)`` in float32, as MLAS computes the global average's scale."""
    if not 0 < count < (1 << 24):
        raise ValueError(f"the image size H·W must lie in [1, {(1 << 24) - 1}], not {count!r}")
    return _check_scale(x_scale, "x_scale") / (_check_scale(y_scale, "y_scale") * _F32(count)), count


def _binary_args(a, b):
    _check_int_array(a, "a", dtype=np.int8)
    _check_int_array(b, "b", dtype=np.int8)
    try:
        shape = np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"b of shape {b.shape!r} does not broadcast with a of shape {a.shape!r}") from None
    if shape != a.shape and a.size != 1:
        raise ValueError(f"b of shape {b.shape!r} must broadcast to a's shape {a.shape!r}")
    return shape


def qlinear_add(a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point, *,
                unsigned=False) -> np.ndarray:
    """``QLinearAdd`` as MLAS's AVX2 kernel computes it (float32 on raw values, FMAs).

    ::

        ra = as / ys;  rb = bs / ys                          (float32)
        k  = float(zy) - fma(ra, float(za), rb·float(zb))
        t  = fma(float(a), ra, fma(float(b), rb, k))         (a and b both tensors)
        t  = fma(float(a), ra, k + rb·float(b))              (b one value: one product, one sum)
        t  = fma(float(b), rb, k + ra·float(a))              (a one value)
        y  = saturate(rint(t))                              (round half to even)

    A ``b`` that broadcasts to ``a`` (a bias per channel, say) is the tensor case: onnxruntime
    runs the kernel row by row on the broadcast values.

    Parameters
    ----------
    a, b : numpy.ndarray
        int8 storage; ``b`` broadcasts to ``a`` (or ``a`` is one value).
    a_scale, b_scale, y_scale : float
    a_zero_point, b_zero_point, y_zero_point : int
        Stored int8 zero points.
    unsigned : bool
        The model's type is uint8.

    Returns
    -------
    numpy.ndarray
        int8, the broadcast shape.
    """
    shape = _binary_args(a, b)
    off = _offset(unsigned)
    sa, sb, sy = (_check_scale(v, n) for v, n in ((a_scale, "a_scale"), (b_scale, "b_scale"), (y_scale, "y_scale")))
    za, zb, zy = (_check_zp(v, n) + off for v, n in
                  ((a_zero_point, "a_zero_point"), (b_zero_point, "b_zero_point"), (y_zero_point, "y_zero_point")))
    ra, rb = sa / sy, sb / sy
    k = _F32(zy) - fma_f32(ra, _F32(za), rb * _F32(zb))
    fa, fb = _raw(a, unsigned).astype(_F32), _raw(b, unsigned).astype(_F32)
    if b.size == 1 and a.size != 1:
        t = fma_f32(fa, ra, k + fb.reshape(()) * rb)
    elif a.size == 1 and b.size != 1:
        t = fma_f32(fb, rb, k + fa.reshape(()) * ra)
    else:
        t = fma_f32(fa, ra, fma_f32(np.broadcast_to(fb, shape), rb, k))
    return _saturate_raw(np.broadcast_to(t, shape), unsigned)


def _saturate_raw(t, unsigned):
    off = _offset(unsigned)
    t = np.clip(np.nan_to_num(t, nan=0.0), _F32(-(1 << 30)), _F32(1 << 30))
    return _from_raw(np.clip(np.rint(t).astype(np.int64), INT8_MIN + off, INT8_MAX + off), unsigned)


def qlinear_mul(a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point, *,
                unsigned=False) -> np.ndarray:
    """``QLinearMul`` as MLAS computes it (float32 on the centred values).

    ::

        r = (as · bs) / ys                                     (float32)
        t = (float(a - za) · float(b - zb)) · r                (two roundings)
        y = saturate(rint(t) + zy)                             (round half to even)

    Parameters
    ----------
    a, b : numpy.ndarray
        int8 storage.
    a_scale, b_scale, y_scale : float
    a_zero_point, b_zero_point, y_zero_point : int
        Stored int8 zero points.
    unsigned : bool

    Returns
    -------
    numpy.ndarray
        int8.
    """
    shape = _binary_args(a, b)
    if (a.size == 1) != (b.size == 1):
        raise ValueError("qlinear_mul of a tensor and a single value is not modelled (MLAS has its own kernel for it)")
    b = np.broadcast_to(b, shape)
    off = _offset(unsigned)
    sa, sb, sy = (_check_scale(v, n) for v, n in ((a_scale, "a_scale"), (b_scale, "b_scale"), (y_scale, "y_scale")))
    za, zb, zy = (_check_zp(v, n) for v, n in
                  ((a_zero_point, "a_zero_point"), (b_zero_point, "b_zero_point"), (y_zero_point, "y_zero_point")))
    r = (sa * sb) / sy
    fa = (a.astype(np.int32) - za).astype(_F32)
    fb = (b.astype(np.int32) - zb).astype(_F32)
    t = (fa * fb) * r
    t = np.clip(t, _F32(INT8_MIN + off - (zy + off)), _F32(INT8_MAX + off - (zy + off)))
    return _from_raw(np.rint(t).astype(np.int64) + zy + off, unsigned)


def qlinear_avg_pool(x, kernel, *, stride, padding, count_include_pad, x_scale, x_zero_point, y_scale,
                     y_zero_point, unsigned=False) -> np.ndarray:
    """``QLinearAveragePool`` (onnxruntime's ``qlinear_pool.cc``): float32 sums of dequantized values.

    Each input value is dequantized, ``xs · float(x - zx)``; a window's real (non-padding) values
    are added in float32 one by one, rows outer, columns inner, starting from 0; the sum is
    divided by ``float(count)`` (the kernel size with ``count_include_pad``, else the real
    values); then ``y = saturate(rint(sum / ys + float(zy)))`` on the raw zero point.

    Parameters
    ----------
    x : numpy.ndarray
        int8 NHWC.
    kernel, stride, padding : (int, int)
        Symmetric padding.
    count_include_pad : bool
    x_scale, y_scale : float
    x_zero_point, y_zero_point : int
        Stored int8 zero points.
    unsigned : bool

    Returns
    -------
    numpy.ndarray
        int8 NHWC.
    """
    _check_int_array(x, "x", dtype=np.int8)
    n, h, w, c = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    xs, ys = _check_scale(x_scale, "x_scale"), _check_scale(y_scale, "y_scale")
    zx = _check_zp(x_zero_point, "x_zero_point")
    zy = _check_zp(y_zero_point, "y_zero_point") + _offset(unsigned)
    deq = xs * (x.astype(np.int32) - zx).astype(_F32)
    ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    out = np.empty((n, ho, wo, c), np.int8)
    for oh in range(ho):
        h0 = oh * sh - ph
        hs, he = max(h0, 0), min(h0 + kh, h)
        for ow in range(wo):
            w0 = ow * sw - pw
            ws, we = max(w0, 0), min(w0 + kw, w)
            acc = np.zeros((n, c), _F32)
            for i in range(hs, he):
                for j in range(ws, we):
                    acc = acc + deq[:, i, j, :]
            count = kh * kw if count_include_pad else (he - hs) * (we - ws)
            y = acc / _F32(count)
            out[:, oh, ow, :] = _saturate_raw(y / ys + _F32(zy), unsigned)
    return out


_LOGISTIC = tuple(_F32(v) for v in (
    4.37031012579801e-11, 1.15627324459942e-07, 6.08574864600143e-05, 8.51377133304701e-03,
    2.48287947061529e-01, 6.10247389755681e-13, 5.76102136993427e-09, 6.29106785017040e-06,
    1.70198817374094e-03, 1.16817656904453e-01, 9.93151921023180e-01))


def mlas_logistic(x) -> np.ndarray:
    """MLAS's float32 logistic function (the FMA3 kernel): Eigen's rational polynomial.

    ``v = clamp(x, -18, 18)``; ``p = v · (((a9·v² + a7)·v² + a5)·v² + a3)·v² + a1)`` and
    ``q = ((((b10·v² + b8)·v² + b6)·v² + b4)·v² + b2)·v² + b0``, every ``·+`` one FMA; the
    result is ``clamp(p / q + 0.5, 0, 1)``.

    Parameters
    ----------
    x : numpy.ndarray
        float32.

    Returns
    -------
    numpy.ndarray
        float32.
    """
    a9, a7, a5, a3, a1, b10, b8, b6, b4, b2, b0 = _LOGISTIC
    v = np.clip(np.asarray(x, _F32), _F32(-18), _F32(18))
    v2 = v * v
    p = fma_f32(v2, a9, a7)
    for coef in (a5, a3, a1):
        p = fma_f32(p, v2, coef)
    p = p * v
    q = fma_f32(v2, b10, b8)
    for coef in (b6, b4, b2, b0):
        q = fma_f32(q, v2, coef)
    return np.clip(p / q + _F32(0.5), _F32(0), _F32(1))


def qlinear_table(fn, x_scale, x_zero_point, y_scale, y_zero_point, *, unsigned=False) -> np.ndarray:
    """The 256-entry table of ``QlinearBuildLookupTable`` for a float32 function ``fn``.

    Entry ``v + 128`` holds the stored output for the stored input ``v`` (``v`` in
    ``[-128, 127]``): ``quantize_linear(fn(xs · float(x - zx)), ys, zy)``.

    Parameters
    ----------
    fn : callable
        float32 array → float32 array.
    x_scale, y_scale : float
    x_zero_point, y_zero_point : int
        Stored int8 zero points.
    unsigned : bool

    Returns
    -------
    numpy.ndarray
        int8 ``(256,)``.
    """
    xs = _check_scale(x_scale, "x_scale")
    zx = _check_zp(x_zero_point, "x_zero_point")
    stored = np.arange(INT8_MIN, INT8_MAX + 1, dtype=np.int32)
    deq = xs * (stored - zx).astype(_F32)
    out = np.asarray(fn(deq), _F32)
    return quantize_linear(out, y_scale, y_zero_point, unsigned=unsigned)


def qlinear_sigmoid_table(x_scale, x_zero_point, y_scale, y_zero_point, *, unsigned=False) -> np.ndarray:
    """``QLinearSigmoid``'s table (:func:`qlinear_table` of :func:`mlas_logistic`)."""
    return qlinear_table(mlas_logistic, x_scale, x_zero_point, y_scale, y_zero_point, unsigned=unsigned)


def qlinear_leaky_relu_table(alpha, x_scale, x_zero_point, y_scale, y_zero_point, *, unsigned=False) -> np.ndarray:
    """``QLinearLeakyRelu``'s table: ``x if x >= 0 else alpha·x`` in float32."""
    al = _F32(alpha)
    return qlinear_table(lambda v: np.where(v >= 0, v, al * v).astype(_F32), x_scale, x_zero_point, y_scale,
                         y_zero_point, unsigned=unsigned)


def apply_table(x, table) -> np.ndarray:
    """Look every stored int8 value up in a 256-entry table (``table[x + 128]``).

    Parameters
    ----------
    x : numpy.ndarray
        int8.
    table : numpy.ndarray
        int8 ``(256,)``.

    Returns
    -------
    numpy.ndarray
        int8, the shape of ``x``.
    """
    _check_int_array(x, "x", dtype=np.int8)
    _check_int_array(table, "table", dtype=np.int8)
    if table.shape != (256,):
        raise ValueError(f"table must have shape (256,), not {table.shape!r}")
    return table[x.astype(np.int32) + 128]


def qlinear_concat(inputs, x_scales, x_zero_points, y_scale, y_zero_point, *, unsigned=False) -> np.ndarray:
    """``QLinearConcat`` along the channels (the last axis of NHWC).

    An input whose scale and zero point equal the output's is copied; any other goes through
    the identity's 256-entry table (:func:`qlinear_table`).

    Parameters
    ----------
    inputs : sequence of numpy.ndarray
        int8, the same shape but for the last axis.
    x_scales : sequence of float
    x_zero_points : sequence of int
        Stored int8 zero points.
    y_scale : float
    y_zero_point : int
    unsigned : bool

    Returns
    -------
    numpy.ndarray
        int8.
    """
    parts = []
    for x, s, z in zip(inputs, x_scales, x_zero_points, strict=True):
        if _F32(s) == _F32(y_scale) and int(z) == int(y_zero_point):
            parts.append(x)
        else:
            parts.append(apply_table(x, qlinear_table(lambda v: v, s, z, y_scale, y_zero_point, unsigned=unsigned)))
    return np.concatenate(parts, axis=-1)
