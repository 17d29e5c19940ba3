"""Layer specifications: the shapes and parameters of one conv, linear or pooling layer.

A spec is a frozen dataclass that is valid by construction: ``__post_init__`` normalizes the
``int``-or-pair arguments to ``(height, width)`` tuples and calls :meth:`validate`, so a spec that
exists is a layer that can be computed. Tensor layouts follow the numerics contract:

- activations NHWC int8,
- conv weights OHWI ``(Cout, Kh, Kw, Cin // groups)`` int8, linear weights ``(Nout, K)`` int8,
- bias int32 ``(Cout,)``.

Output sizes use floor division (no "ceil mode")::

    Ho = (H + 2·ph - dh·(Kh - 1) - 1) // sh + 1
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from tilelab.checks import check_int

__all__ = ["Conv2dSpec", "LinearSpec", "PoolSpec", "as_pair"]


def as_pair(value, name: str, *, minimum: int = 1) -> tuple[int, int]:
    """Normalize an ``int`` or an ``(h, w)`` pair of ints to a ``(h, w)`` tuple.

    Parameters
    ----------
    value : int or tuple of int
        A single integer (used for both dimensions) or a pair ``(h, w)``.
    name : str
        The name used in the error message.
    minimum : int
        The smallest accepted value of each element.

    Raises
    ------
    TypeError
        If ``value`` is neither an integer nor a pair of integers.
    ValueError
        If an element is smaller than ``minimum``.
    """
    kind = {0: "non-negative", 1: "positive"}.get(minimum, f">= {minimum}")
    message = f"{name} must be a {kind} integer or a (height, width) pair of {kind} integers, not {value!r}"
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        items = (value, value)
    elif isinstance(value, (tuple, list)) and len(value) == 2:
        items = tuple(value)
    else:
        raise TypeError(message)
    for item in items:
        if isinstance(item, bool) or not isinstance(item, numbers.Integral):
            raise TypeError(message)
        if item < minimum:
            raise ValueError(message)
    return int(items[0]), int(items[1])


def _check_array(array, name: str, *, dtype, ndim: int, layout: str) -> np.ndarray:
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, not {type(array).__name__}")
    if array.dtype != np.dtype(dtype):
        raise TypeError(f"{name} must have dtype {np.dtype(dtype).name!r}, not {array.dtype.name!r}")
    if array.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions {layout}, not shape {array.shape!r}")
    return array


def _check_bias(bias, cout: int) -> None:
    if bias is None:
        return
    if not isinstance(bias, np.ndarray):
        raise TypeError(f"bias must be a numpy array, not {type(bias).__name__}")
    if bias.dtype != np.int32:
        raise TypeError(f"bias must have dtype 'int32', not {bias.dtype.name!r}")
    if bias.shape != (cout,):
        raise ValueError(
            f"bias must have shape {(cout,)!r} (one value per output channel), not {bias.shape!r}"
        )


def _output_size(size: int, pad: int, kernel: int, stride: int, dilation: int) -> int:
    return (size + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1


@dataclass(frozen=True)
class Conv2dSpec:
    """One 2-D convolution: NHWC int8 input, OHWI int8 weights, int32 accumulators.

    Parameters
    ----------
    n, h, w, cin : int
        Input batch, height, width and channels.
    cout : int
        Output channels.
    kh, kw : int
        Kernel height and width.
    stride, padding, dilation : int or (int, int)
        Per dimension ``(height, width)``; an ``int`` applies to both. Padding is symmetric
        (the same number of zero rows above and below, zero columns left and right).
    groups : int
        Grouped convolution: input and output channels split into ``groups`` contiguous groups;
        ``groups == cin`` is depthwise.

    Raises
    ------
    TypeError, ValueError
        From :meth:`validate`, on construction.
    """

    n: int
    h: int
    w: int
    cin: int
    cout: int
    kh: int
    kw: int
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1

    def __post_init__(self):
        object.__setattr__(self, "stride", as_pair(self.stride, "stride"))
        object.__setattr__(self, "padding", as_pair(self.padding, "padding", minimum=0))
        object.__setattr__(self, "dilation", as_pair(self.dilation, "dilation"))
        self.validate()

    def validate(self) -> None:
        """Check the spec describes a computable convolution.

        Raises
        ------
        TypeError
            If a size is not an integer.
        ValueError
            If a size is not positive, the channels are not divisible by ``groups`` or the
            output would be smaller than 1×1.
        """
        for name in ("n", "h", "w", "cin", "cout", "kh", "kw", "groups"):
            object.__setattr__(self, name, check_int(name, getattr(self, name), 1))
        if self.cin % self.groups:
            raise ValueError(f"cin {self.cin!r} is not divisible by groups {self.groups!r}")
        if self.cout % self.groups:
            raise ValueError(f"cout {self.cout!r} is not divisible by groups {self.groups!r}")
        (ph, pw), (dh, dw) = self.padding, self.dilation
        for axis, size, pad, kernel, dil, out in (
            ("height", self.h, ph, self.kh, dh, self.ho),
            ("width", self.w, pw, self.kw, dw, self.wo),
        ):
            if out < 1:
                raise ValueError(
                    f"output {axis} {out!r} is less than 1: input {axis} {size!r} + 2 * padding {pad!r} "
                    f"is smaller than the dilated kernel {axis} {dil * (kernel - 1) + 1!r}"
                )

    @property
    def ho(self) -> int:
        """Output height."""
        return _output_size(self.h, self.padding[0], self.kh, self.stride[0], self.dilation[0])

    @property
    def wo(self) -> int:
        """Output width."""
        return _output_size(self.w, self.padding[1], self.kw, self.stride[1], self.dilation[1])

    @property
    def k_size(self) -> int:
        """Reduction length of one output value: ``kh · kw · cin / groups``."""
        return self.kh * self.kw * (self.cin // self.groups)

    @property
    def weights(self) -> int:
        """Number of multiply weights (no bias): ``cout · k_size``."""
        return self.cout * self.k_size

    @property
    def macs(self) -> int:
        """Multiply-accumulates of the whole layer: ``n · ho · wo · cout · k_size``."""
        return self.n * self.ho * self.wo * self.cout * self.k_size

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        """NHWC input shape."""
        return (self.n, self.h, self.w, self.cin)

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        """OHWI weight shape ``(cout, kh, kw, cin // groups)``."""
        return (self.cout, self.kh, self.kw, self.cin // self.groups)

    @property
    def output_shape(self) -> tuple[int, int, int, int]:
        """NHWC output shape."""
        return (self.n, self.ho, self.wo, self.cout)

    @classmethod
    def from_tensors(cls, x, w, bias=None, *, stride=1, padding=0, dilation=1, groups=1) -> Conv2dSpec:
        """Build the spec of ``conv2d(x, w, bias)`` after checking dtypes and shapes.

        Parameters
        ----------
        x : numpy.ndarray
            NHWC int8 input.
        w : numpy.ndarray
            OHWI int8 weights ``(Cout, Kh, Kw, Cin // groups)``.
        bias : numpy.ndarray, optional
            int32 ``(Cout,)``.
        stride, padding, dilation, groups
            As in :class:`Conv2dSpec`.

        Raises
        ------
        TypeError
            If an argument is not a numpy array of the right dtype.
        ValueError
            If a shape disagrees; the message names the array, the expected and the actual shape.
        """
        _check_array(x, "x", dtype=np.int8, ndim=4, layout="(N, H, W, C)")
        _check_array(w, "w", dtype=np.int8, ndim=4, layout="(Cout, Kh, Kw, Cin / groups)")
        groups = check_int("groups", groups, 1)
        n, h, wd, cin = x.shape
        if cin % groups:
            raise ValueError(f"x has {cin!r} channels, which is not divisible by groups {groups!r}")
        if w.shape[3] != cin // groups:
            expected = ("Cout", "Kh", "Kw", cin // groups)
            raise ValueError(
                f"w must have shape {expected!r} for x with {cin!r} channels and groups {groups!r}, "
                f"not {w.shape!r}"
            )
        cout, kh, kw, _ = w.shape
        _check_bias(bias, cout)
        return cls(
            n=n, h=h, w=wd, cin=cin, cout=cout, kh=kh, kw=kw,
            stride=stride, padding=padding, dilation=dilation, groups=groups,
        )  # fmt: skip


@dataclass(frozen=True)
class LinearSpec:
    """One fully connected layer: int8 ``(n, k)`` input, int8 ``(nout, k)`` weights.

    Parameters
    ----------
    n : int
        Batch.
    k : int
        Input features.
    nout : int
        Output features.
    """

    n: int
    k: int
    nout: int

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Check every size is a positive integer.

        Raises
        ------
        TypeError, ValueError
            If a size is not a positive integer.
        """
        for name in ("n", "k", "nout"):
            object.__setattr__(self, name, check_int(name, getattr(self, name), 1))

    @property
    def k_size(self) -> int:
        """Reduction length of one output value."""
        return self.k

    @property
    def weights(self) -> int:
        """Number of multiply weights (no bias)."""
        return self.nout * self.k

    @property
    def macs(self) -> int:
        """Multiply-accumulates of the whole layer."""
        return self.n * self.k * self.nout

    @property
    def input_shape(self) -> tuple[int, int]:
        """Input shape ``(n, k)``."""
        return (self.n, self.k)

    @property
    def weight_shape(self) -> tuple[int, int]:
        """Weight shape ``(nout, k)``."""
        return (self.nout, self.k)

    @property
    def output_shape(self) -> tuple[int, int]:
        """Output shape ``(n, nout)``."""
        return (self.n, self.nout)

    @classmethod
    def from_tensors(cls, x, w, bias=None) -> LinearSpec:
        """Build the spec of ``linear(x, w, bias)`` after checking dtypes and shapes.

        Raises
        ------
        TypeError
            If an argument is not a numpy array of the right dtype.
        ValueError
            If a shape disagrees; the message names the array, the expected and the actual shape.
        """
        _check_array(x, "x", dtype=np.int8, ndim=2, layout="(N, K)")
        _check_array(w, "w", dtype=np.int8, ndim=2, layout="(Nout, K)")
        n, k = x.shape
        if w.shape[1] != k:
            raise ValueError(f"w must have shape ('Nout', {k!r}) for x with {k!r} features, not {w.shape!r}")
        _check_bias(bias, w.shape[0])
        return cls(n=n, k=k, nout=w.shape[0])


@dataclass(frozen=True)
class PoolSpec:
    """One 2-D pooling window over an NHWC tensor (max or average; the spec is only the shape).

    Parameters
    ----------
    n, h, w, c : int
        Input batch, height, width and channels.
    kh, kw : int
        Window height and width.
    stride : int or (int, int), optional
        Defaults to the window size.
    padding : int or (int, int)
        Symmetric padding, at most half the window (``padding <= kernel // 2``), so every window
        holds at least one real input value.
    """

    n: int
    h: int
    w: int
    c: int
    kh: int
    kw: int
    stride: tuple[int, int] | None = None
    padding: tuple[int, int] = (0, 0)

    def __post_init__(self):
        for name in ("kh", "kw"):
            object.__setattr__(self, name, check_int(name, getattr(self, name), 1))
        stride = (self.kh, self.kw) if self.stride is None else self.stride
        object.__setattr__(self, "stride", as_pair(stride, "stride"))
        object.__setattr__(self, "padding", as_pair(self.padding, "padding", minimum=0))
        self.validate()

    def validate(self) -> None:
        """Check the window fits.

        Raises
        ------
        TypeError
            If a size is not an integer.
        ValueError
            If a size is not positive, the padding exceeds half the window or the output would
            be smaller than 1×1.
        """
        for name in ("n", "h", "w", "c", "kh", "kw"):
            object.__setattr__(self, name, check_int(name, getattr(self, name), 1))
        for axis, size, pad, kernel, out in (
            ("height", self.h, self.padding[0], self.kh, self.ho),
            ("width", self.w, self.padding[1], self.kw, self.wo),
        ):
            if pad > kernel // 2:
                raise ValueError(
                    f"padding {axis} must be at most half the window {axis} {kernel!r} "
                    f"(<= {kernel // 2!r}), not {pad!r}"
                )
            if out < 1:
                raise ValueError(
                    f"output {axis} {out!r} is less than 1: input {axis} {size!r} + 2 * padding {pad!r} "
                    f"is smaller than the window {axis} {kernel!r}"
                )

    @property
    def ho(self) -> int:
        """Output height."""
        return _output_size(self.h, self.padding[0], self.kh, self.stride[0], 1)

    @property
    def wo(self) -> int:
        """Output width."""
        return _output_size(self.w, self.padding[1], self.kw, self.stride[1], 1)

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        """NHWC input shape."""
        return (self.n, self.h, self.w, self.c)

    @property
    def output_shape(self) -> tuple[int, int, int, int]:
        """NHWC output shape."""
        return (self.n, self.ho, self.wo, self.c)

    @classmethod
    def from_tensor(cls, x, kernel, *, stride=None, padding=0) -> PoolSpec:
        """Build the spec of pooling ``x`` (NHWC int8) with a ``kernel`` window.

        Raises
        ------
        TypeError
            If ``x`` is not an int8 numpy array or a size is not an integer.
        ValueError
            If ``x`` is not 4-D or the window does not fit.
        """
        _check_array(x, "x", dtype=np.int8, ndim=4, layout="(N, H, W, C)")
        kh, kw = as_pair(kernel, "kernel")
        n, h, w, c = x.shape
        return cls(n=n, h=h, w=w, c=c, kh=kh, kw=kw, stride=stride, padding=padding)
