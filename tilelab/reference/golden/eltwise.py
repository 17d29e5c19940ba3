"""Golden element-wise ops: ReLU, flatten, pooling, the requantized residual add."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from tilelab.reference.layers import PoolSpec

from ._common import (
    INT8_MIN,
    INT32_MAX,
    INT32_MIN,
    MAX_SHIFT,
    _check_int_array,
    _check_nhwc,
    _check_zero_point,
    _finish,
    _per_channel,
    _scale_term,
    rdiv,
)

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
    return rdiv(sums, count).astype(np.int8)


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
    return rdiv(sums, np.int64(x.shape[1] * x.shape[2])).astype(np.int8)


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
