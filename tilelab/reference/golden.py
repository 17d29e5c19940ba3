"""The numpy golden model: one function per op, integer arithmetic exactly as the hardware does it.

Every RTL op is compared, bit for bit, to exactly one function here. Layouts and widths follow the
numerics contract (see the GUIDE):

- activations NHWC int8; conv weights OHWI ``(Cout, Kh, Kw, Cin // groups)`` int8; linear weights
  ``(Nout, K)`` int8; bias int32 per output channel;
- accumulators are int32 and **wrap around** at 32 bits like the hardware register does (no
  saturation, no error): the products are summed exactly in int64 and reduced modulo 2**32 to
  the signed range at the end. Modular arithmetic makes the order of the additions irrelevant,
  so "sum then add bias then wrap" equals "wrap after every addition";
- requantization per output channel with an int32 multiplier ``M`` and a right shift ``s >= 1``::

      t = (((acc + bias) * M + (1 << (s - 1))) >> s) + zero_point

  with ``>>`` an arithmetic (flooring) shift, then ReLU ``max(t, zero_point)`` (if any), then a
  clamp to ``[-128, 127]``.

Floats appear only where an op is defined in float: :func:`batch_norm_float` (the reference),
and the host-side calibration helpers :func:`quantize_multiplier`, :func:`choose_requant` and
:func:`fold_batch_norm`, which produce integer constants for the hardware but are not computed
by it.

Integer definitions an RTL implementation must match exactly
-----------------------------------------------------------
Rounding division ``rdiv(v, d) = (v + d // 2) // d`` with ``//`` the floor division: round half
up (towards +inf), for negative ``v`` too (``rdiv(-3, 2) == -1``).

- :func:`avg_pool2d`, :func:`global_avg_pool`: ``rdiv(sum of the window, count)``.
- :func:`add_requant`: two independently rounded requantization terms, then one saturation.
- :func:`batch_norm_train`: the eight steps listed in its docstring.
"""

from __future__ import annotations

import numbers
import warnings
from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from tilelab.reference.layers import Conv2dSpec, LinearSpec, PoolSpec, check_int

__all__ = [
    "BN_INVSTD_FRAC_BITS",
    "BN_MAX_COUNT",
    "BN_MEAN_FRAC_BITS",
    "FoldedBatchNorm",
    "INT8_MAX",
    "INT8_MIN",
    "INT32_MAX",
    "INT32_MIN",
    "MAX_SHIFT",
    "add_requant",
    "avg_pool2d",
    "batch_norm_float",
    "batch_norm_terms",
    "batch_norm_train",
    "choose_requant",
    "clipped_fraction",
    "conv2d",
    "flatten",
    "fold_batch_norm",
    "global_avg_pool",
    "linear",
    "max_pool2d",
    "quantize_multiplier",
    "relu",
    "requantize",
    "wrap_int32",
]

INT8_MIN, INT8_MAX = -128, 127
INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
#: Largest requantization shift. With |acc + bias| <= 2**31 and |M| <= 2**31 the product is at
#: most 2**62 in magnitude; adding the rounding term 2**(s - 1) <= 2**61 keeps it below 2**63.
MAX_SHIFT = 62

#: Fractional bits of the batch-norm mean (Q.8) and, doubled, of the variance (Q.16).
BN_MEAN_FRAC_BITS = 8
#: Fractional bits of the batch-norm inverse standard deviation (Q.22).
BN_INVSTD_FRAC_BITS = 22
#: Largest per-channel element count of :func:`batch_norm_train` (keeps ``n·Σx²`` in int64).
BN_MAX_COUNT = 1 << 24
_BN_MAX_GAMMA_FRAC_BITS = 16


# --------------------------------------------------------------------------------------------
# helpers


def wrap_int32(values) -> np.ndarray:
    """Reduce integers modulo 2**32 to the signed int32 range, as a 32-bit register does.

    Parameters
    ----------
    values : array_like of int
        Integers that fit int64.

    Returns
    -------
    numpy.ndarray
        int32, ``((values + 2**31) mod 2**32) - 2**31``.
    """
    v = np.asarray(values, dtype=np.int64)
    return (((v + (1 << 31)) & 0xFFFF_FFFF) - (1 << 31)).astype(np.int32)


def _check_int_array(array, name: str, *, dtype=None) -> np.ndarray:
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, not {type(array).__name__}")
    if dtype is not None and array.dtype != np.dtype(dtype):
        raise TypeError(f"{name} must have dtype {np.dtype(dtype).name!r}, not {array.dtype.name!r}")
    if not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{name} must have an integer dtype, not {array.dtype.name!r}")
    return array


def _check_nhwc(x, name: str = "x") -> np.ndarray:
    _check_int_array(x, name, dtype=np.int8)
    if x.ndim != 4:
        raise ValueError(f"{name} must have 4 dimensions (N, H, W, C), not shape {x.shape!r}")
    return x


def _per_channel(value, name: str, channels: int, *, lo: int, hi: int) -> np.ndarray:
    """An integer scalar or a ``(channels,)`` integer array with every value in ``[lo, hi]``."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        values = np.asarray(int(value), dtype=object)
    elif isinstance(value, np.ndarray) and np.issubdtype(value.dtype, np.integer):
        if value.shape not in ((), (channels,)):
            raise ValueError(
                f"{name} must be a scalar or have shape {(channels,)!r} (one value per channel), "
                f"not {value.shape!r}"
            )
        values = value
    else:
        raise TypeError(f"{name} must be an integer or an integer numpy array, not {value!r}")
    if values.size and (values.min() < lo or values.max() > hi):  # compared before any cast
        bad = values.min() if values.min() < lo else values.max()
        raise ValueError(f"{name} must lie in [{lo}, {hi}], not {int(bad)!r}")
    return values.astype(np.int64)


def _check_zero_point(zero_point, name: str = "zero_point") -> int:
    if isinstance(zero_point, bool) or not isinstance(zero_point, numbers.Integral):
        raise TypeError(f"{name} must be an integer in [{INT8_MIN}, {INT8_MAX}], not {zero_point!r}")
    if not INT8_MIN <= zero_point <= INT8_MAX:
        raise ValueError(f"{name} must be an integer in [{INT8_MIN}, {INT8_MAX}], not {zero_point!r}")
    return int(zero_point)


def _check_acc(acc, name: str = "acc") -> np.ndarray:
    _check_int_array(acc, name)
    if acc.ndim < 1:
        raise ValueError(f"{name} must have at least 1 dimension (channels last), not shape {acc.shape!r}")
    if acc.size and (acc.min() < INT32_MIN or acc.max() > INT32_MAX):
        bad = acc.min() if acc.min() < INT32_MIN else acc.max()
        raise ValueError(
            f"{name} values must lie in the int32 range [{INT32_MIN}, {INT32_MAX}], not {int(bad)!r}"
        )
    return acc


def _bias_vector(bias, channels: int) -> np.ndarray:
    _check_int_array(bias, "bias", dtype=np.int32)
    if bias.shape != (channels,):
        raise ValueError(f"bias must have shape {(channels,)!r} (one value per channel), not {bias.shape!r}")
    return bias.astype(np.int64)


def _rdiv(values, divisor):
    """Round-half-up integer division ``(values + divisor // 2) // divisor`` (floor division)."""
    return (values + divisor // 2) // divisor


def _scale_term(values: np.ndarray, multiplier: np.ndarray, shift: np.ndarray) -> np.ndarray:
    # ``(v * M + 2**(s-1)) >> s`` in int64; numpy's >> on signed integers is arithmetic (floor).
    return (values * multiplier + (np.int64(1) << (shift - 1))) >> shift


def _finish(t: np.ndarray, zero_point: int, relu: bool) -> np.ndarray:
    if relu:
        t = np.maximum(t, zero_point)
    return np.clip(t, INT8_MIN, INT8_MAX).astype(np.int8)


# --------------------------------------------------------------------------------------------
# matrix ops


def conv2d(x, w, bias=None, *, stride=1, padding=0, dilation=1, groups=1) -> np.ndarray:
    """2-D convolution of NHWC int8 activations with OHWI int8 weights into int32 accumulators.

    ``out[n, oh, ow, co] = wrap32(bias[co] + Σ x_pad[n, oh·sh + i·dh, ow·sw + j·dw, g·cg + c]
    · w[co, i, j, c])`` over ``i < Kh, j < Kw, c < cg``, with ``cg = Cin / groups``,
    ``g = co // (Cout / groups)`` and ``x_pad`` the input with ``padding`` zero rows/columns on
    each side. The sum is exact (int64) and wrapped to int32 at the end (see :func:`wrap_int32`).

    Parameters
    ----------
    x : numpy.ndarray
        int8 ``(N, H, W, Cin)``.
    w : numpy.ndarray
        int8 ``(Cout, Kh, Kw, Cin // groups)``.
    bias : numpy.ndarray, optional
        int32 ``(Cout,)``, added into the accumulator.
    stride, padding, dilation : int or (int, int)
        ``(height, width)``; padding is symmetric.
    groups : int
        ``groups == Cin`` is depthwise.

    Returns
    -------
    numpy.ndarray
        int32 ``(N, Ho, Wo, Cout)``.

    Raises
    ------
    TypeError, ValueError
        From :meth:`Conv2dSpec.from_tensors` on a bad dtype, shape or parameter.
    """
    spec = Conv2dSpec.from_tensors(
        x, w, bias, stride=stride, padding=padding, dilation=dilation, groups=groups
    )
    (ph, pw), (sh, sw), (dh, dw) = spec.padding, spec.stride, spec.dilation
    n, ho, wo, g = spec.n, spec.ho, spec.wo, spec.groups
    cg, og = spec.cin // g, spec.cout // g
    xp = np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)))
    # im2col as a strided view: (N, Hp', Wp', Cin, eh, ew) windows of the dilated kernel extent,
    # then subsampled by the stride (output positions) and the dilation (taps).
    windows = sliding_window_view(xp, (dh * (spec.kh - 1) + 1, dw * (spec.kw - 1) + 1), axis=(1, 2))
    windows = windows[:, ::sh, ::sw, :, ::dh, ::dw]  # (N, Ho, Wo, Cin, Kh, Kw)
    windows = windows.reshape(n, ho, wo, g, cg, spec.kh, spec.kw).transpose(0, 1, 2, 3, 5, 6, 4)
    # Patch order (Kh, Kw, cg) matches the OHWI weight rows; int64 cannot overflow: |Σ| <= K·2**14.
    cols = np.ascontiguousarray(windows, dtype=np.int64).reshape(n * ho * wo, g, spec.k_size)
    wg = w.reshape(g, og, spec.k_size).astype(np.int64)
    if g == 1:
        acc = cols[:, 0, :] @ wg[0].T  # K contiguous in both operands: numpy's fast integer loop
    else:
        acc = np.einsum("mgk,gok->mgo", cols, wg).reshape(n * ho * wo, spec.cout)
    if bias is not None:
        acc += bias.astype(np.int64)
    return wrap_int32(acc).reshape(n, ho, wo, spec.cout)


def linear(x, w, bias=None) -> np.ndarray:
    """Fully connected layer: ``out[n, o] = wrap32(bias[o] + Σ_k x[n, k] · w[o, k])``.

    Parameters
    ----------
    x : numpy.ndarray
        int8 ``(N, K)``.
    w : numpy.ndarray
        int8 ``(Nout, K)``.
    bias : numpy.ndarray, optional
        int32 ``(Nout,)``.

    Returns
    -------
    numpy.ndarray
        int32 ``(N, Nout)``, wrapped at 32 bits like :func:`conv2d`.
    """
    LinearSpec.from_tensors(x, w, bias)
    acc = x.astype(np.int64) @ w.astype(np.int64).T
    if bias is not None:
        acc += bias.astype(np.int64)
    return wrap_int32(acc)


# --------------------------------------------------------------------------------------------
# requantization


def requantize(acc, multiplier, shift, zero_point=0, *, bias=None, relu=False) -> np.ndarray:
    """Requantize int32 accumulators to int8 by the numerics contract.

    ::

        v = wrap32(acc + bias)                     # the pack unit adds bias in the 32-bit register
        t = ((v * M + (1 << (s - 1))) >> s) + zero_point   # int64, >> arithmetic (floor)
        t = max(t, zero_point)                      # only if relu
        out = clamp(t, -128, 127)

    Full width: ``|v| <= 2**31`` and ``|M| <= 2**31`` give ``|v·M| <= 2**62``; the rounding term
    ``2**(s-1) <= 2**61`` (``s <= 62``), so ``v·M + 2**(s-1) <= 2**62 + 2**61 < 2**63 - 1``: the
    whole expression is exact in int64. After the shift ``|t| <= 2**61 + 128``.

    Parameters
    ----------
    acc : numpy.ndarray
        Integer accumulators (int32 range), channels on the last axis.
    multiplier : int or numpy.ndarray
        ``M``, int32 range, per tensor or per channel ``(C,)``.
    shift : int or numpy.ndarray
        ``s`` in ``[1, 62]``, per tensor or per channel ``(C,)``.
    zero_point : int
        Output zero point in ``[-128, 127]``.
    bias : numpy.ndarray, optional
        int32 ``(C,)``; leave ``None`` if it was added by :func:`conv2d` already.
    relu : bool
        Apply ``max(t, zero_point)`` before the clamp.

    Returns
    -------
    numpy.ndarray
        int8, the shape of ``acc``.
    """
    t = _requant_unclamped(acc, multiplier, shift, zero_point, bias=bias, relu=relu)
    return np.clip(t, INT8_MIN, INT8_MAX).astype(np.int8)


def _requant_unclamped(acc, multiplier, shift, zero_point, *, bias, relu) -> np.ndarray:
    _check_acc(acc)
    channels = acc.shape[-1]
    m = _per_channel(multiplier, "multiplier", channels, lo=INT32_MIN, hi=INT32_MAX)
    s = _per_channel(shift, "shift", channels, lo=1, hi=MAX_SHIFT)
    zp = _check_zero_point(zero_point)
    v = acc.astype(np.int64)
    if bias is not None:
        v = wrap_int32(v + _bias_vector(bias, channels)).astype(np.int64)
    t = _scale_term(v, m, s) + zp
    if relu:
        t = np.maximum(t, zp)
    return t


def quantize_multiplier(scale):
    """Represent a real scale as ``M / 2**s`` with an int32 ``M`` and ``1 <= s <= 62``.

    ``M`` is normalized to ``2**30 <= |M| < 2**31`` (31 significant bits) unless the scale is so
    small that ``s`` would exceed 62; then ``s = 62`` and ``M = round(scale · 2**62)`` (possibly 0).
    A zero scale gives ``(0, 1)``.

    Parameters
    ----------
    scale : float or numpy.ndarray
        Real scale(s), ``|scale| < 2**30``.

    Returns
    -------
    (int, int) or (numpy.ndarray, numpy.ndarray)
        ``(M, s)``; Python ints for a scalar input, int32 arrays otherwise.
    """
    values = np.asarray(scale, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise ValueError(f"scale must be finite, not {scale!r}")
    mantissa, exponent = np.frexp(values)  # values = mantissa · 2**exponent, 0.5 <= |mantissa| < 1
    m = np.round(mantissa * 2.0**31).astype(np.int64)
    carry = np.abs(m) == (1 << 31)
    m = np.where(carry, m // 2, m)
    s = 31 - exponent.astype(np.int64) - carry
    small = s > MAX_SHIFT
    m = np.where(small, np.round(np.where(small, values, 0.0) * 2.0**MAX_SHIFT).astype(np.int64), m)
    s = np.where(small, MAX_SHIFT, s)
    s = np.where(m == 0, 1, s)
    if np.any(s < 1):  # |scale| >= 2**30 (after rounding to 31 significant bits)
        raise ValueError(f"scale must be less than 2**30 in magnitude, not {scale!r}")
    if values.ndim == 0:
        return int(m), int(s)
    return m.astype(np.int32), s.astype(np.int32)


def choose_requant(acc, *, bias=None, target_max=INT8_MAX, percentile=99.9, per_channel=True, relu=False):
    """Choose requantization ``(M, s)`` from accumulator statistics (host-side calibration).

    The ``percentile`` of ``|acc + bias|`` (of the positive values only when ``relu``) is mapped to
    ``target_max``, per output channel (last axis) or per tensor; values beyond it clip, so with
    the default 99.9 about 0.1 % of the outputs clip (see :func:`clipped_fraction`). A channel of
    zeros gets the scale ``target_max``. Uses floats: this is calibration, not a hardware op.

    Parameters
    ----------
    acc : numpy.ndarray
        Integer accumulators (int32 range), channels last.
    bias : numpy.ndarray, optional
        int32 ``(C,)`` that :func:`requantize` will add.
    target_max : int
        Output value the percentile maps to, in ``[1, 255]`` (255 for ReLU with zero point -128).
    percentile : float
        In ``(0, 100]``.
    per_channel : bool
        One ``(M, s)`` per channel, or one for the tensor.
    relu : bool
        The outputs go through ReLU: only the positive values matter.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray) or (int, int)
        ``(M, s)``: int32 ``(C,)`` arrays, or Python ints when ``per_channel`` is false.
    """
    _check_acc(acc)
    check_int(target_max, "target_max")
    if target_max > 255:
        raise ValueError(f"target_max must be at most 255, not {target_max!r}")
    if not isinstance(percentile, numbers.Real) or not 0 < percentile <= 100:
        raise ValueError(f"percentile must be a number in (0, 100], not {percentile!r}")
    v = acc.astype(np.int64)
    if bias is not None:
        v = wrap_int32(v + _bias_vector(bias, acc.shape[-1])).astype(np.int64)
    v = v.reshape(-1, acc.shape[-1]) if per_channel else v.reshape(-1, 1)
    magnitudes = np.abs(v).astype(np.float64)
    if relu:
        magnitudes[v <= 0] = np.nan  # only the positive values can reach the top of the range
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN channel: no positive value
        levels = np.nan_to_num(np.nanpercentile(magnitudes, percentile, axis=0), nan=0.0)
    scales = target_max / np.maximum(levels, 1.0)
    m, s = quantize_multiplier(scales)
    if not per_channel:
        return int(m[0]), int(s[0])
    return m, s


def clipped_fraction(acc, multiplier, shift, zero_point=0, *, bias=None, relu=False) -> float:
    """Fraction of the outputs of :func:`requantize` that the int8 clamp changes.

    Parameters
    ----------
    acc, multiplier, shift, zero_point, bias, relu
        As in :func:`requantize`.

    Returns
    -------
    float
        In ``[0, 1]``; 0.0 for an empty ``acc``.
    """
    t = _requant_unclamped(acc, multiplier, shift, zero_point, bias=bias, relu=relu)
    if not t.size:
        return 0.0
    return float(np.count_nonzero((t < INT8_MIN) | (t > INT8_MAX)) / t.size)


# --------------------------------------------------------------------------------------------
# element-wise and pooling ops


def relu(x, *, zero_point=0) -> np.ndarray:
    """ReLU on int8 values with a zero point: ``max(x, zero_point)``.

    Parameters
    ----------
    x : numpy.ndarray
        int8, any shape.
    zero_point : int
        In ``[-128, 127]``.

    Returns
    -------
    numpy.ndarray
        int8, the shape of ``x``.
    """
    _check_int_array(x, "x", dtype=np.int8)
    return np.maximum(x, np.int8(_check_zero_point(zero_point)))


def flatten(x) -> np.ndarray:
    """Flatten NHWC to ``(N, H·W·C)`` in NHWC (channel-fastest) order; no arithmetic.

    Note the order differs from a framework's NCHW flatten; weights of the following linear layer
    must be laid out to match.
    """
    _check_nhwc(x)
    return x.reshape(x.shape[0], -1)


def max_pool2d(x, kernel, *, stride=None, padding=0) -> np.ndarray:
    """Max pooling; padded positions hold -128, so they never win over a real value.

    Parameters
    ----------
    x : numpy.ndarray
        int8 ``(N, H, W, C)``.
    kernel : int or (int, int)
        Window.
    stride : int or (int, int), optional
        Defaults to ``kernel``.
    padding : int or (int, int)
        At most ``kernel // 2``.

    Returns
    -------
    numpy.ndarray
        int8 ``(N, Ho, Wo, C)``.
    """
    spec = PoolSpec.from_tensor(x, kernel, stride=stride, padding=padding)
    (ph, pw), (sh, sw) = spec.padding, spec.stride
    xp = np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)), constant_values=INT8_MIN)
    windows = sliding_window_view(xp, (spec.kh, spec.kw), axis=(1, 2))[:, ::sh, ::sw]
    return windows.max(axis=(-2, -1))


def avg_pool2d(x, kernel, *, stride=None, padding=0, count_include_pad=True) -> np.ndarray:
    """Integer average pooling, rounding half up.

    ``out = (S + count // 2) // count`` with ``S`` the exact sum of the window (padding counts
    as 0) and ``//`` the floor division, i.e. round half towards +inf for negative sums too.

    - ``count_include_pad=True`` (default): ``count = Kh·Kw`` everywhere, a per-layer constant.
    - ``count_include_pad=False``: ``count`` = number of real (non-padding) input pixels in the
      window, which is smaller at the borders.

    The result always fits int8 (the rounded mean of values in ``[-128, 127]``, padding zeros
    included, stays in that range), so there is no clamp. ``|S| <= Kh·Kw·128``.

    Parameters
    ----------
    x : numpy.ndarray
        int8 ``(N, H, W, C)``.
    kernel, stride, padding
        As in :func:`max_pool2d`.
    count_include_pad : bool
        See above.

    Returns
    -------
    numpy.ndarray
        int8 ``(N, Ho, Wo, C)``.
    """
    spec = PoolSpec.from_tensor(x, kernel, stride=stride, padding=padding)
    (ph, pw), (sh, sw) = spec.padding, spec.stride
    xp = np.pad(x.astype(np.int64), ((0, 0), (ph, ph), (pw, pw), (0, 0)))
    sums = sliding_window_view(xp, (spec.kh, spec.kw), axis=(1, 2))[:, ::sh, ::sw].sum(axis=(-2, -1))
    if count_include_pad:
        count = np.int64(spec.kh * spec.kw)
    else:
        real = np.pad(np.ones((spec.h, spec.w), dtype=np.int64), ((ph, ph), (pw, pw)))
        count = sliding_window_view(real, (spec.kh, spec.kw))[::sh, ::sw].sum(axis=(-2, -1))
        count = count[None, :, :, None]
    return _rdiv(sums, count).astype(np.int8)


def global_avg_pool(x) -> np.ndarray:
    """Global average pooling: ``out[n, 0, 0, c] = (S + count // 2) // count``.

    ``S`` is the exact sum over H and W, ``count = H·W``, ``//`` floor division (round half up,
    as :func:`avg_pool2d`).

    Parameters
    ----------
    x : numpy.ndarray
        int8 ``(N, H, W, C)``.

    Returns
    -------
    numpy.ndarray
        int8 ``(N, 1, 1, C)``.
    """
    _check_nhwc(x)
    sums = x.astype(np.int64).sum(axis=(1, 2), keepdims=True)
    return _rdiv(sums, np.int64(x.shape[1] * x.shape[2])).astype(np.int8)


def add_requant(
    a, b, *, a_mult, a_shift, b_mult, b_shift, zero_point=0, a_zero_point=0, b_zero_point=0, relu=False
) -> np.ndarray:
    """Residual add of two int8 tensors with their own scales, saturating to int8.

    Each input is rescaled to the output scale by its own requantization term, rounded half up
    exactly like :func:`requantize`; the terms are added, then the zero point, ReLU and clamp::

        ta = ((a - a_zero_point) * a_mult + (1 << (a_shift - 1))) >> a_shift
        tb = ((b - b_zero_point) * b_mult + (1 << (b_shift - 1))) >> b_shift
        t  = ta + tb + zero_point
        t  = max(t, zero_point)          # only if relu
        out = clamp(t, -128, 127)

    with ``>>`` arithmetic (floor). Widths: ``|a - a_zero_point| <= 255`` (9 bits signed) times a
    32-bit multiplier is < 2**40, so each term is exact in int64 for any shift in ``[1, 62]``.
    With real scales ``a_mult / 2**a_shift = scale_a / scale_out`` (likewise b) the result is
    within 1 output step of the exactly rounded real sum (each term errs by at most 1/2).

    Parameters
    ----------
    a, b : numpy.ndarray
        int8, the same shape, channels last.
    a_mult, b_mult : int or numpy.ndarray
        int32 multipliers, per tensor or per channel.
    a_shift, b_shift : int or numpy.ndarray
        Shifts in ``[1, 62]``, per tensor or per channel.
    zero_point, a_zero_point, b_zero_point : int
        Output and input zero points, in ``[-128, 127]``.
    relu : bool
        Apply ``max(t, zero_point)`` before the clamp.

    Returns
    -------
    numpy.ndarray
        int8, the shape of ``a``.
    """
    _check_int_array(a, "a", dtype=np.int8)
    _check_int_array(b, "b", dtype=np.int8)
    if a.shape != b.shape:
        raise ValueError(f"b must have the shape of a {a.shape!r}, not {b.shape!r}")
    if a.ndim < 1:
        raise ValueError(f"a must have at least 1 dimension (channels last), not shape {a.shape!r}")
    channels = a.shape[-1]
    terms = []
    for name, values, mult, shift, zp in (
        ("a", a, a_mult, a_shift, a_zero_point),
        ("b", b, b_mult, b_shift, b_zero_point),
    ):
        m = _per_channel(mult, f"{name}_mult", channels, lo=INT32_MIN, hi=INT32_MAX)
        s = _per_channel(shift, f"{name}_shift", channels, lo=1, hi=MAX_SHIFT)
        centered = values.astype(np.int64) - _check_zero_point(zp, f"{name}_zero_point")
        terms.append(_scale_term(centered, m, s))
    zp = _check_zero_point(zero_point)
    return _finish(terms[0] + terms[1] + zp, zp, relu)


# --------------------------------------------------------------------------------------------
# batch normalization


def _isqrt(values: np.ndarray) -> np.ndarray:
    """Floor square root of non-negative int64 values, by the digit-by-digit (bit-pair) method.

    Only shifts, additions, subtractions and comparisons, one result bit per iteration (31
    iterations for a 62-bit operand) -- the way a small sequential RTL unit computes it. The
    result is the unique ``r`` with ``r² <= v < (r + 1)²``, so any exact method agrees.
    """
    v = values.astype(np.int64).copy()
    result = np.zeros_like(v)
    bit = np.int64(1) << 62
    while bit:
        trial = result + bit
        take = v >= trial
        v = np.where(take, v - trial, v)
        result = np.where(take, (result >> 1) + bit, result >> 1)
        bit >>= 2
    return result


def batch_norm_train(x, gamma, beta, *, eps=1, gamma_frac_bits=8) -> np.ndarray:
    """Training-mode batch normalization in fixed-point integer steps.

    Statistics are per channel over the ``n = N·H·W`` values of the batch (biased variance).
    ``F = BN_MEAN_FRAC_BITS = 8``, ``R = BN_INVSTD_FRAC_BITS = 22``, ``G = gamma_frac_bits``;
    ``//`` is floor division and ``>>`` an arithmetic shift; every step is exact in int64:

    1. ``S1 = Σ x`` (``|S1| <= 2**31``), ``S2 = Σ x²`` (``<= 2**38``) -- the all-reduce sums.
    2. ``mean = (S1 · 2**F + n // 2) // n``                   mean in Q.8
    3. ``D = n · S2 - S1²``                                   exact, ``0 <= D <= 2**62``
    4. ``ssd = (D + n // 2) // n``                            Σ(x - mean)², ``<= 2**38``
    5. ``var = (ssd · 2**(2F) + n // 2) // n``                variance in Q.16, ``< 2**30``
    6. ``inv = isqrt(2**(2F + 2R) // (var + eps))``           1/sqrt(var + eps) in Q.22, ``<= 2**30``
       (``isqrt`` is the floor square root; ``floor(sqrt(floor(a / b))) == floor(sqrt(a / b))``)
    7. ``a = gamma · inv``                                     Q.(G + 22), ``|a| < 2**45``
    8. per element: ``xc = x · 2**F - mean`` (``|xc| < 2**16``),
       ``y = ((xc · a + 2**(T - 1)) >> T) + beta`` with ``T = F + G + R``
       (``|xc · a| < 2**61``), then clamp to ``[-128, 127]``.

    Steps 2-7 run once per channel (two divisions, one integer square root); step 8 is a
    multiply, add, shift, add and clamp per element. Meaning in real numbers::

        y ≈ gamma / 2**G · (x - mean) / sqrt(var + eps / 2**16) + beta

    i.e. ``gamma`` is in output steps per standard deviation with ``G`` fractional bits, ``beta``
    in output steps (any output zero point folded in) and ``eps`` in units of 2**-16 input steps².

    Parameters
    ----------
    x : numpy.ndarray
        int8 ``(N, H, W, C)``, ``N·H·W <= 2**24``.
    gamma : numpy.ndarray
        Integer ``(C,)`` in the int16 range.
    beta : numpy.ndarray
        Integer ``(C,)`` in the int32 range.
    eps : int
        In ``[1, 2**31 - 1]``; the default 1 is 2**-16 ≈ 1.5e-5 input steps².
    gamma_frac_bits : int
        ``G`` in ``[0, 16]``.

    Returns
    -------
    numpy.ndarray
        int8 ``(N, H, W, C)``.
    """
    _check_nhwc(x)
    channels = x.shape[3]
    n = x.shape[0] * x.shape[1] * x.shape[2]
    if n > BN_MAX_COUNT:
        raise ValueError(f"batch norm needs N·H·W <= {BN_MAX_COUNT} values per channel, not {n!r}")
    g = _bn_vector(gamma, "gamma", channels, lo=-(1 << 15), hi=(1 << 15) - 1)
    bt = _bn_vector(beta, "beta", channels, lo=INT32_MIN, hi=INT32_MAX)
    check_int(eps, "eps")
    if eps > INT32_MAX:
        raise ValueError(f"eps must be at most {INT32_MAX}, not {eps!r}")
    check_int(gamma_frac_bits, "gamma_frac_bits", minimum=0)
    if gamma_frac_bits > _BN_MAX_GAMMA_FRAC_BITS:
        raise ValueError(
            f"gamma_frac_bits must be at most {_BN_MAX_GAMMA_FRAC_BITS}, not {gamma_frac_bits!r}"
        )
    xs = x.astype(np.int64).reshape(n, channels)
    mean, a, t = batch_norm_terms(xs.sum(axis=0), (xs * xs).sum(axis=0), n, g, eps=eps,
                                  gamma_frac_bits=gamma_frac_bits)  # 1-7
    xc = (xs << BN_MEAN_FRAC_BITS) - mean  # 8
    y = ((xc * a + (np.int64(1) << (t - 1))) >> t) + bt
    return np.clip(y, INT8_MIN, INT8_MAX).astype(np.int8).reshape(x.shape)


def batch_norm_terms(s1, s2, n, gamma, *, eps, gamma_frac_bits):
    """Steps 2-7 of :func:`batch_norm_train`: per-channel terms from the all-reduce sums.

    Parameters
    ----------
    s1, s2 : numpy.ndarray
        int64 ``(C,)``: ``Σx`` and ``Σx²`` over the ``n`` values of each channel.
    n : int
        Values per channel, ``1 <= n <= BN_MAX_COUNT``.
    gamma : numpy.ndarray
        Integer ``(C,)``, int16 range (already checked).
    eps, gamma_frac_bits : int
        As in :func:`batch_norm_train` (already checked).

    Returns
    -------
    (numpy.ndarray, numpy.ndarray, int)
        ``mean`` (Q.8, int64 ``(C,)``), ``a = gamma · inv`` (int64 ``(C,)``) and the shift
        ``T = F + G + R`` of step 8.
    """
    f, r = BN_MEAN_FRAC_BITS, BN_INVSTD_FRAC_BITS
    s1 = np.asarray(s1, np.int64)
    s2 = np.asarray(s2, np.int64)
    n64 = np.int64(n)
    mean = _rdiv(s1 << f, n64)  # 2
    d = n64 * s2 - s1 * s1  # 3
    ssd = _rdiv(d, n64)  # 4
    var = _rdiv(ssd << (2 * f), n64)  # 5
    inv = _isqrt((np.int64(1) << (2 * f + 2 * r)) // (var + eps))  # 6
    a = np.asarray(gamma, np.int64) * inv  # 7
    return mean, a, f + gamma_frac_bits + r


def _bn_vector(value, name: str, channels: int, *, lo: int, hi: int) -> np.ndarray:
    _check_int_array(value, name)
    if value.shape != (channels,):
        raise ValueError(
            f"{name} must have shape {(channels,)!r} (one value per channel), not {value.shape!r}"
        )
    return _per_channel(value, name, channels, lo=lo, hi=hi)


def batch_norm_float(x, gamma, beta, eps=1e-5) -> np.ndarray:
    """Float64 reference batch normalization (training mode, biased variance), channels last.

    ``y = gamma · (x - mean) / sqrt(var + eps) + beta`` with mean and variance per channel over
    every axis but the last.

    Parameters
    ----------
    x : array_like
        Any numeric ``(..., C)``.
    gamma, beta : array_like
        ``(C,)`` or scalars.
    eps : float
        Added to the variance.

    Returns
    -------
    numpy.ndarray
        float64, the shape of ``x``.
    """
    values = np.asarray(x, dtype=np.float64)
    axes = tuple(range(values.ndim - 1))
    mean = values.mean(axis=axes)
    var = values.var(axis=axes)
    return np.asarray(gamma, np.float64) * (values - mean) / np.sqrt(var + eps) + np.asarray(beta, np.float64)


class FoldedBatchNorm(NamedTuple):
    """Conv bias and requantization that apply an inference-mode batch norm (see :func:`fold_batch_norm`)."""

    bias: np.ndarray
    multiplier: np.ndarray
    shift: np.ndarray


def fold_batch_norm(gamma, beta, mean, var, *, acc_scale, out_scale, eps=1e-5, bias=None) -> FoldedBatchNorm:
    """Fold an inference-mode batch norm that follows a conv into its bias and requantization.

    The conv's real output is ``z = acc_scale · (acc + bias)``; the batch norm computes
    ``y = gamma · (z - mean) / sqrt(var + eps) + beta`` (running statistics, real units) and the
    output is ``q = round(y / out_scale) + zero_point``. With ``e = gamma / sqrt(var + eps)``::

        q = m · (acc + bias') + zero_point,  m = e · acc_scale / out_scale,
        bias' = round(bias + (beta / e - mean) / acc_scale)

    and ``m`` becomes ``(M, s)`` by :func:`quantize_multiplier`, so
    ``requantize(acc, M, s, zero_point, bias=bias')`` applies conv bias, batch norm and output
    scaling at once. Host-side planning in float; the hardware sees only integers.

    Parameters
    ----------
    gamma, beta, mean, var : array_like
        Per channel ``(C,)``; ``gamma`` must be non-zero (a zero channel cannot be folded).
    acc_scale : float or array_like
        Real value of one accumulator step (input scale × weight scale), per tensor or ``(C,)``.
    out_scale : float
        Real value of one output step.
    eps : float
        Added to the variance.
    bias : numpy.ndarray, optional
        The conv's int32 bias ``(C,)`` in accumulator steps.

    Returns
    -------
    FoldedBatchNorm
        ``(bias, multiplier, shift)``: int32 ``(C,)`` arrays.
    """
    gamma, beta, mean, var = (
        np.atleast_1d(np.asarray(v, dtype=np.float64)) for v in (gamma, beta, mean, var)
    )
    channels = gamma.shape[0]
    for name, v in (("gamma", gamma), ("beta", beta), ("mean", mean), ("var", var)):
        if v.shape != (channels,):
            raise ValueError(f"{name} must have shape {(channels,)!r} like gamma, not {v.shape!r}")
    if np.any(gamma == 0):
        raise ValueError(f"gamma must be non-zero to fold, not 0 at channel {int(np.argmax(gamma == 0))!r}")
    if np.any(var + eps <= 0):
        raise ValueError(f"var + eps must be positive, not {float(np.min(var + eps))!r}")
    acc_scale = np.broadcast_to(np.asarray(acc_scale, dtype=np.float64), (channels,))
    if np.any(acc_scale <= 0) or not out_scale > 0:
        raise ValueError(
            f"acc_scale and out_scale must be positive, not {acc_scale.min()!r} and {out_scale!r}"
        )
    old_bias = (
        np.zeros(channels) if bias is None else _bn_vector(bias, "bias", channels, lo=INT32_MIN, hi=INT32_MAX)
    )
    e = gamma / np.sqrt(var + eps)
    new_bias = np.floor(old_bias + (beta / e - mean) / acc_scale + 0.5)
    if np.any(np.abs(new_bias) > INT32_MAX):
        raise ValueError(f"folded bias exceeds the int32 range: {float(np.max(np.abs(new_bias)))!r}")
    m, s = quantize_multiplier(e * acc_scale / out_scale)
    return FoldedBatchNorm(new_bias.astype(np.int32), m, s)
