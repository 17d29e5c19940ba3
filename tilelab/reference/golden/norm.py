"""Golden batch norm: training mode in integers (the RTL's), the float reference, folding."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from tilelab.checks import check_int

from ._common import (
    _BN_MAX_GAMMA_FRAC_BITS,
    BN_INVSTD_FRAC_BITS,
    BN_MAX_COUNT,
    BN_MEAN_FRAC_BITS,
    INT8_MAX,
    INT8_MIN,
    INT32_MAX,
    INT32_MIN,
    _check_int_array,
    _check_nhwc,
    _per_channel,
    rdiv,
)
from .conv import quantize_multiplier

# --------------------------------------------------------------------------------------------
# batch normalization


def isqrt(values: np.ndarray) -> np.ndarray:
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
    check_int("eps", eps, 1)
    if eps > INT32_MAX:
        raise ValueError(f"eps must be at most {INT32_MAX}, not {eps!r}")
    check_int("gamma_frac_bits", gamma_frac_bits, 0)
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
    mean = rdiv(s1 << f, n64)  # 2
    d = n64 * s2 - s1 * s1  # 3
    ssd = rdiv(d, n64)  # 4
    var = rdiv(ssd << (2 * f), n64)  # 5
    inv = isqrt((np.int64(1) << (2 * f + 2 * r)) // (var + eps))  # 6
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
