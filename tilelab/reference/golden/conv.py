"""Golden conv2d / linear and the requantization contract (and its host-side calibration)."""

from __future__ import annotations

import numbers
import warnings

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from tilelab.checks import check_int
from tilelab.reference.layers import Conv2dSpec, LinearSpec

from ._common import (
    INT8_MAX,
    INT8_MIN,
    INT32_MAX,
    INT32_MIN,
    MAX_SHIFT,
    _bias_vector,
    _check_acc,
    _check_zero_point,
    _per_channel,
    _scale_term,
    wrap_int32,
)

# --------------------------------------------------------------------------------------------
# matrix ops


def conv2d(x, w, bias=None, *, stride=1, padding=0, dilation=1, groups=1, pad_value=0) -> np.ndarray:
    """2-D convolution of NHWC int8 activations with OHWI int8 weights into int32 accumulators.

    ``out[n, oh, ow, co] = wrap32(bias[co] + Σ x_pad[n, oh·sh + i·dh, ow·sw + j·dw, g·cg + c]
    · w[co, i, j, c])`` over ``i < Kh, j < Kw, c < cg``, with ``cg = Cin / groups``,
    ``g = co // (Cout / groups)`` and ``x_pad`` the input with ``padding`` rows/columns of
    ``pad_value`` on each side (0, or the input's zero point for a quantized model whose real zero
    is not 0). The sum is exact (int64) and wrapped to int32 at the end (see :func:`wrap_int32`).

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
    pad_value : int
        The int8 value of the padding.

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
    pad_value = _check_zero_point(pad_value, "pad_value")
    (ph, pw), (sh, sw), (dh, dw) = spec.padding, spec.stride, spec.dilation
    n, ho, wo, g = spec.n, spec.ho, spec.wo, spec.groups
    cg, og = spec.cin // g, spec.cout // g
    xp = np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)), constant_values=np.int8(pad_value))
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


def check_float_scale(scale, channels: int) -> np.ndarray:
    """``scale`` as a float32 ``(channels,)`` array, every value a positive normal float32.

    Parameters
    ----------
    scale : float or numpy.ndarray
        A scalar or ``(channels,)`` values; a Python float or a float64 array is rounded to float32
        (as an ONNX model stores it); pass float32 values to keep them exactly.
    channels : int

    Returns
    -------
    numpy.ndarray
        float32 ``(channels,)``.

    Raises
    ------
    TypeError, ValueError
        Not a number or a float array; the wrong shape; a value that is not a positive normal
        float32 (zero, negative, subnormal, infinite or NaN), named with its channel.
    """
    if isinstance(scale, numbers.Real) and not isinstance(scale, bool):
        values = np.full(channels, scale, np.float32)
    elif isinstance(scale, np.ndarray) and np.issubdtype(scale.dtype, np.floating):
        if scale.shape not in ((), (1,), (channels,)):
            raise ValueError(
                f"scale must be a scalar or have shape {(channels,)!r} (one value per channel), not {scale.shape!r}"
            )
        values = np.broadcast_to(scale.astype(np.float32), (channels,)).copy()
    else:
        raise TypeError(f"scale must be a float or a float numpy array, not {scale!r}")
    bad = ~(np.isfinite(values) & (values >= np.finfo(np.float32).tiny))
    if bad.any():
        c = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"scale must be a positive normal float32 (at least {float(np.finfo(np.float32).tiny)!r}), "
            f"not {float(values[c])!r} (channel {c})"
        )
    return values


def qlinear_scale(x_scale, w_scale, y_scale) -> np.ndarray:
    """The requantization scale of an ONNX ``QLinearConv`` / ``QLinearMatMul``, as onnxruntime computes it.

    ``(x_scale · w_scale) / y_scale`` in float32, each operation rounded to float32.

    Parameters
    ----------
    x_scale, y_scale : float or numpy.ndarray
        Per-tensor scales of the input and the output.
    w_scale : float or numpy.ndarray
        Per-tensor or per-output-channel scales of the weights.

    Returns
    -------
    numpy.ndarray
        float32, the broadcast shape of the inputs.
    """
    xs, ws, ys = (np.asarray(v, dtype=np.float32) for v in (x_scale, w_scale, y_scale))
    return np.asarray((xs * ws) / ys, dtype=np.float32)


def requantize_float(acc, scale, zero_point=0, *, bias=None, relu=False) -> np.ndarray:
    """Requantize int32 accumulators to int8 with a float32 scale, as onnxruntime does.

    The requantization of onnxruntime's ``QLinearConv`` / ``QLinearMatMul`` kernels (its
    ``MlasRequantizeOutput``), every step in IEEE float32 with round-to-nearest-even::

        v = wrap32(acc + bias)
        f = float32(v) * scale                      # both roundings of float32 arithmetic
        t = round_half_even(f) + zero_point
        t = max(t, zero_point)                      # only if relu
        out = clamp(t, -128, 127)

    (onnxruntime clamps ``f`` to ``[-128 - zero_point, 127 - zero_point]`` before rounding; the
    bounds are integers, so that is the same as clamping after.) A uint8 tensor ``q`` of a model
    is the int8 ``q - 128`` here, with its zero point less 128.

    Parameters
    ----------
    acc : numpy.ndarray
        Integer accumulators (int32 range), channels on the last axis.
    scale : float or numpy.ndarray
        float32 per tensor or per channel ``(C,)``, positive normal values (see
        :func:`check_float_scale`).
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
    t = _requant_float_unclamped(acc, scale, zero_point, bias=bias, relu=relu)
    return np.clip(t, INT8_MIN, INT8_MAX).astype(np.int8)


def _requant_float_unclamped(acc, scale, zero_point, *, bias, relu) -> np.ndarray:
    _check_acc(acc)
    channels = acc.shape[-1]
    sc = check_float_scale(scale, channels)
    zp = _check_zero_point(zero_point)
    v = acc.astype(np.int64)
    if bias is not None:
        v = wrap_int32(v + _bias_vector(bias, channels)).astype(np.int64)
    with np.errstate(over="ignore"):
        f = v.astype(np.float32) * sc           # float32 × float32 → float32 (may be ±inf)
    # Clamp before the conversion so that it cannot overflow; the bounds are integers.
    f = np.clip(f, np.float32(INT8_MIN - zp - 1), np.float32(INT8_MAX - zp + 1))
    t = np.rint(f).astype(np.int64) + zp        # rint: round half to even
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
    check_int("target_max", target_max, 1)
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


def clipped_fraction(acc, multiplier, shift, zero_point=0, *, bias=None, relu=False, scale=None) -> float:
    """Fraction of the outputs of :func:`requantize` (or :func:`requantize_float`) the int8 clamp changes.

    Parameters
    ----------
    acc, multiplier, shift, zero_point, bias, relu
        As in :func:`requantize`.
    scale : float or numpy.ndarray, optional
        Given: the float requantization of :func:`requantize_float` (``multiplier`` and ``shift``
        are then ignored; pass None).

    Returns
    -------
    float
        In ``[0, 1]``; 0.0 for an empty ``acc``.
    """
    if scale is not None:
        t = _requant_float_unclamped(acc, scale, zero_point, bias=bias, relu=relu)
    else:
        t = _requant_unclamped(acc, multiplier, shift, zero_point, bias=bias, relu=relu)
    if not t.size:
        return 0.0
    return float(np.count_nonzero((t < INT8_MIN) | (t > INT8_MAX)) / t.size)
