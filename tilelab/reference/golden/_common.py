"""Shared helpers and constants of the golden ops: the int32 wrap, argument checks, rounding."""

from __future__ import annotations

import numbers

import numpy as np

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


def rdiv(values, divisor):
    """Round-half-up integer division ``(values + divisor // 2) // divisor`` (floor division)."""
    return (values + divisor // 2) // divisor


def _scale_term(values: np.ndarray, multiplier: np.ndarray, shift: np.ndarray) -> np.ndarray:
    # ``(v * M + 2**(s-1)) >> s`` in int64; numpy's >> on signed integers is arithmetic (floor).
    return (values * multiplier + (np.int64(1) << (shift - 1))) >> shift


def _finish(t: np.ndarray, zero_point: int, relu: bool) -> np.ndarray:
    if relu:
        t = np.maximum(t, zero_point)
    return np.clip(t, INT8_MIN, INT8_MAX).astype(np.int8)
