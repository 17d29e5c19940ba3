"""Golden ops of the mobile network families: ReLU6, table activations, channel-wise multiply,
channel concat / split / shuffle.

int8 semantics, exactly:

- :func:`relu6`: ``min(max(x, zero_point), six)`` on int8 values; ``six`` is the int8 code of 6.0.
  With an output scale of ``6 / (127 - zero_point)`` (how a quantized network stores a ReLU6
  output) ``six`` is 127 and ReLU6 equals the ReLU followed by the int8 clamp.
- :func:`activation_table`: the 256-entry int8 table of a float function at a given input and
  output quantization: entry ``i`` (input code ``q = i - 128``) is
  ``clamp(rint(f(x_scale · (q - x_zero_point)) / y_scale) + y_zero_point, -128, 127)``, with ``f``
  evaluated in float64 and ``rint`` rounding half to even. ``f`` is one of :data:`ACTIVATIONS`:
  ``sigmoid(v) = 1 / (1 + exp(-v))``, ``silu(v) = v · sigmoid(v)``,
  ``hard_swish(v) = v · min(max(v + 3, 0), 6) / 6``, ``relu6(v) = min(max(v, 0), 6)``. The table is
  data: the element-wise unit can replay it, and
  :func:`~tilelab.reference.golden.apply_table` (``table[x + 128]``) is the op that uses it.
- :func:`mul_channel` (squeeze-and-excitation's scale): ``x`` NHWC times ``s`` broadcast over H and
  W (shape ``(N, 1, 1, C)``, or ``x``'s own shape), requantized like a conv:
  ``t = ((((x - x_zp) · (s - s_zp)) · M + (1 << (shift - 1))) >> shift) + zero_point`` in int64
  with an arithmetic shift, then the clamp to ``[-128, 127]`` (the product of two 9-bit
  differences fits 17 bits, so nothing wraps).
- :func:`concat_channels`: the inputs side by side along C (a copy: every input keeps its codes).
- :func:`channel_split`: channels ``start .. stop - 1`` (a copy).
- :func:`channel_shuffle`: ShuffleNet's shuffle of ``groups`` groups: output channel
  ``j · groups + g`` is input channel ``g · (C / groups) + j`` (torch's
  ``view(N, g, C/g, H, W).transpose(1, 2)`` on NCHW, here on NHWC).
"""

from __future__ import annotations

import numbers

import numpy as np

from ._common import (
    INT8_MAX,
    INT8_MIN,
    MAX_SHIFT,
    _check_int_array,
    _check_nhwc,
    _check_zero_point,
    _scale_term,
)

__all__ = [
    "ACTIVATIONS",
    "activation_table",
    "channel_shuffle",
    "channel_split",
    "concat_channels",
    "mul_channel",
    "relu6",
]


def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


#: Float functions :func:`activation_table` tabulates (float64 in, float64 out).
ACTIVATIONS = {
    "sigmoid": _sigmoid,
    "silu": lambda v: v * _sigmoid(v),
    "hard_swish": lambda v: v * np.clip(v + 3.0, 0.0, 6.0) / 6.0,
    "relu6": lambda v: np.clip(v, 0.0, 6.0),
}


def relu6(x, *, zero_point=0, six=INT8_MAX) -> np.ndarray:
    """ReLU6 on int8 codes: ``min(max(x, zero_point), six)``.

    Parameters
    ----------
    x : numpy.ndarray
        int8, any shape.
    zero_point : int
        The code of 0.0.
    six : int
        The code of 6.0, in ``[zero_point, 127]`` (127 when the output scale is
        ``6 / (127 - zero_point)``).

    Returns
    -------
    numpy.ndarray
        int8, the shape of ``x``.
    """
    x = _check_int_array(x, "x", dtype=np.int8)
    zero_point = _check_zero_point(zero_point)
    six = _check_zero_point(six, "six")
    if six < zero_point:
        raise ValueError(f"six must be at least zero_point {zero_point!r}, not {six!r}")
    return np.clip(x, zero_point, six).astype(np.int8)


def _check_scale(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, not {value!r}")
    value = float(value)
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, not {value!r}")
    return value


def activation_table(function, x_scale, x_zero_point, y_scale, y_zero_point) -> np.ndarray:
    """The 256-entry int8 table of ``function`` at the given input and output quantization.

    Parameters
    ----------
    function : str
        One of :data:`ACTIVATIONS` (``"sigmoid"``, ``"silu"``, ``"hard_swish"``, ``"relu6"``).
    x_scale : float
        Real value of one input step.
    x_zero_point : int
        Input code of 0.0 (int8).
    y_scale : float
        Real value of one output step.
    y_zero_point : int
        Output code of 0.0 (int8).

    Returns
    -------
    numpy.ndarray
        int8 ``(256,)``: entry ``q + 128`` is the output code of input code ``q`` (see the
        module docstring for the exact formula).
    """
    if function not in ACTIVATIONS:
        known = ", ".join(repr(k) for k in ACTIVATIONS)
        raise ValueError(f"unknown activation {function!r}; known: {known}")
    x_scale = _check_scale(x_scale, "x_scale")
    y_scale = _check_scale(y_scale, "y_scale")
    x_zero_point = _check_zero_point(x_zero_point, "x_zero_point")
    y_zero_point = _check_zero_point(y_zero_point, "y_zero_point")
    q = np.arange(INT8_MIN, INT8_MAX + 1, dtype=np.float64)
    y = ACTIVATIONS[function](x_scale * (q - x_zero_point))
    t = np.rint(y / y_scale) + y_zero_point
    return np.clip(t, INT8_MIN, INT8_MAX).astype(np.int8)


def _check_shift(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if not 1 <= int(value) <= MAX_SHIFT:
        raise ValueError(f"{name} must be in [1, {MAX_SHIFT}], not {value!r}")
    return int(value)


def mul_channel(x, s, *, multiplier, shift, zero_point=0, x_zero_point=0, s_zero_point=0) -> np.ndarray:
    """Channel-wise multiply with broadcast over H and W, requantized to int8.

    Parameters
    ----------
    x : numpy.ndarray
        int8 NHWC ``(N, H, W, C)``.
    s : numpy.ndarray
        int8 ``(N, 1, 1, C)`` (one scale per image and channel) or ``x``'s shape.
    multiplier : int
        int32 multiplier ``M`` in ``[0, 2**31 - 1]``.
    shift : int
        Right shift in ``[1, MAX_SHIFT]``.
    zero_point, x_zero_point, s_zero_point : int
        Output and input zero points (int8).

    Returns
    -------
    numpy.ndarray
        int8 NHWC, the shape of ``x``: ``clamp(requant((x - x_zp) · (s - s_zp)) + zero_point)``.
    """
    x = _check_nhwc(x)
    s = _check_int_array(s, "s", dtype=np.int8)
    n, _, _, c = x.shape
    if s.shape not in ((n, 1, 1, c), x.shape):
        raise ValueError(f"s must have shape {(n, 1, 1, c)!r} or {x.shape!r}, not {s.shape!r}")
    if isinstance(multiplier, bool) or not isinstance(multiplier, numbers.Integral):
        raise TypeError(f"multiplier must be an integer, not {multiplier!r}")
    if not 0 <= int(multiplier) <= (1 << 31) - 1:
        raise ValueError(f"multiplier must be in [0, {(1 << 31) - 1}], not {multiplier!r}")
    shift = _check_shift(shift, "shift")
    zero_point = _check_zero_point(zero_point)
    x_zero_point = _check_zero_point(x_zero_point, "x_zero_point")
    s_zero_point = _check_zero_point(s_zero_point, "s_zero_point")
    product = (x.astype(np.int64) - x_zero_point) * (s.astype(np.int64) - s_zero_point)
    t = _scale_term(product, np.int64(multiplier), np.int64(shift)) + zero_point
    return np.clip(t, INT8_MIN, INT8_MAX).astype(np.int8)


def concat_channels(inputs) -> np.ndarray:
    """Concatenate NHWC tensors along C.

    Parameters
    ----------
    inputs : sequence of numpy.ndarray
        At least one; int8 NHWC with the same N, H and W.

    Returns
    -------
    numpy.ndarray
        int8 ``(N, H, W, ΣC)``.
    """
    inputs = list(inputs)
    if not inputs:
        raise ValueError("inputs must hold at least one tensor")
    for i, x in enumerate(inputs):
        _check_nhwc(x, f"inputs[{i}]")
        if x.shape[:3] != inputs[0].shape[:3]:
            raise ValueError(f"inputs[{i}] has N, H, W {x.shape[:3]!r}, inputs[0] {inputs[0].shape[:3]!r}")
    return np.concatenate(inputs, axis=-1)


def channel_split(x, start, stop) -> np.ndarray:
    """Channels ``start .. stop - 1`` of an NHWC tensor.

    Parameters
    ----------
    x : numpy.ndarray
        int8 NHWC.
    start, stop : int
        ``0 <= start < stop <= C``.

    Returns
    -------
    numpy.ndarray
        int8 ``(N, H, W, stop - start)``, a copy.
    """
    x = _check_nhwc(x)
    c = x.shape[3]
    for name, v in (("start", start), ("stop", stop)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise TypeError(f"{name} must be an integer, not {v!r}")
    if not 0 <= start < stop <= c:
        raise ValueError(f"channel range {start!r}:{stop!r} must satisfy 0 <= start < stop <= {c} (the channels)")
    return x[..., int(start):int(stop)].copy()


def channel_shuffle(x, groups) -> np.ndarray:
    """ShuffleNet's channel shuffle: output channel ``j · groups + g`` is input ``g · (C / groups) + j``.

    Parameters
    ----------
    x : numpy.ndarray
        int8 NHWC.
    groups : int
        Divides C.

    Returns
    -------
    numpy.ndarray
        int8, the shape of ``x``.
    """
    x = _check_nhwc(x)
    n, h, w, c = x.shape
    if isinstance(groups, bool) or not isinstance(groups, numbers.Integral):
        raise TypeError(f"groups must be an integer, not {groups!r}")
    if groups < 1 or c % groups:
        raise ValueError(f"groups must be a positive divisor of the {c} channels, not {groups!r}")
    g = int(groups)
    return x.reshape(n, h, w, g, c // g).transpose(0, 1, 2, 4, 3).reshape(n, h, w, c).copy()
