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

A second requantization, :func:`requantize_float`, is onnxruntime's (float32 scale, round half to
even): the pack stage has both, chosen per layer, so that quantized ONNX models match
onnxruntime bit for bit.

Floats appear only where an op is defined in float: :func:`requantize_float` (IEEE float32, as
the hardware computes it), :func:`batch_norm_float` (the reference),
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

from ._common import (
    BN_INVSTD_FRAC_BITS,
    BN_MAX_COUNT,
    BN_MEAN_FRAC_BITS,
    INT8_MAX,
    INT8_MIN,
    INT32_MAX,
    INT32_MIN,
    MAX_SHIFT,
    rdiv,
    wrap_int32,
)
from .activations import (
    ACTIVATIONS,
    activation_table,
    channel_shuffle,
    channel_split,
    concat_channels,
    mul_channel,
    relu6,
)
from .conv import (
    check_float_scale,
    choose_requant,
    clipped_fraction,
    conv2d,
    linear,
    qlinear_scale,
    quantize_multiplier,
    requantize,
    requantize_float,
)
from .eltwise import add_requant, avg_pool2d, flatten, global_avg_pool, max_pool2d, relu
from .norm import FoldedBatchNorm, batch_norm_float, batch_norm_terms, batch_norm_train, fold_batch_norm, isqrt
from .onnx_ops import (
    apply_table,
    dequantize_linear,
    fma_f32,
    global_avg_pool_scale,
    mlas_logistic,
    qgemm_scale,
    qlinear_add,
    qlinear_avg_pool,
    qlinear_concat,
    qlinear_global_avg_pool,
    qlinear_leaky_relu_table,
    qlinear_mul,
    qlinear_sigmoid_table,
    qlinear_table,
    quantize_linear,
)

__all__ = [
    "ACTIVATIONS",
    "activation_table",
    "channel_shuffle",
    "channel_split",
    "concat_channels",
    "mul_channel",
    "relu6",
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
    "apply_table",
    "avg_pool2d",
    "batch_norm_float",
    "batch_norm_terms",
    "batch_norm_train",
    "check_float_scale",
    "choose_requant",
    "clipped_fraction",
    "conv2d",
    "dequantize_linear",
    "flatten",
    "fma_f32",
    "fold_batch_norm",
    "global_avg_pool",
    "global_avg_pool_scale",
    "isqrt",
    "linear",
    "max_pool2d",
    "mlas_logistic",
    "qgemm_scale",
    "qlinear_add",
    "qlinear_avg_pool",
    "qlinear_concat",
    "qlinear_global_avg_pool",
    "qlinear_leaky_relu_table",
    "qlinear_mul",
    "qlinear_scale",
    "qlinear_sigmoid_table",
    "qlinear_table",
    "quantize_linear",
    "quantize_multiplier",
    "rdiv",
    "relu",
    "requantize",
    "requantize_float",
    "wrap_int32",
]
