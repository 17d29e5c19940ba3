"""Layer specs: normalization, derived sizes and error messages."""

import dataclasses
import re

import numpy as np
import pytest

from tilelab.checks import check_int
from tilelab.reference.layers import Conv2dSpec, LinearSpec, PoolSpec, as_pair


def test_conv2d_spec_properties():
    spec = Conv2dSpec(n=2, h=56, w=56, cin=64, cout=128, kh=3, kw=3, stride=2, padding=1)
    assert spec.stride == (2, 2) and spec.padding == (1, 1) and spec.dilation == (1, 1)
    assert (spec.ho, spec.wo) == (28, 28)
    assert spec.k_size == 576
    assert spec.weights == 128 * 576
    assert spec.macs == 2 * 28 * 28 * 128 * 576
    assert spec.input_shape == (2, 56, 56, 64)
    assert spec.weight_shape == (128, 3, 3, 64)
    assert spec.output_shape == (2, 28, 28, 128)


def test_conv2d_spec_rectangular_dilated_grouped():
    spec = Conv2dSpec(
        n=1, h=10, w=9, cin=6, cout=4, kh=3, kw=2, stride=(1, 2), padding=(2, 0), dilation=(2, 3), groups=2
    )
    # Ho = (10 + 4 - 2·2 - 1) // 1 + 1 = 10;  Wo = (9 + 0 - 3·1 - 1) // 2 + 1 = 3
    assert (spec.ho, spec.wo) == (10, 3)
    assert spec.weight_shape == (4, 3, 2, 3)
    assert spec.k_size == 18 and spec.macs == 10 * 3 * 4 * 18


def test_conv2d_spec_is_frozen_and_normalizes_numpy_ints():
    spec = Conv2dSpec(n=np.int64(1), h=4, w=4, cin=2, cout=2, kh=1, kw=1, stride=[1, 2])
    assert type(spec.n) is int and spec.stride == (1, 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.n = 2


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(cin=6, groups=4), ValueError, "cin 6 is not divisible by groups 4"),
        (dict(cout=6, groups=4, cin=8), ValueError, "cout 6 is not divisible by groups 4"),
        (
            dict(h=2, kh=5),
            ValueError,
            "output height -2 is less than 1: input height 2 + 2 * padding 0 is "
            "smaller than the dilated kernel height 5",
        ),
        (
            dict(w=5, kw=3, dilation=3),
            ValueError,
            "output width -1 is less than 1: input width 5 + 2 * padding 0 "
            "is smaller than the dilated kernel width 7",
        ),
        (dict(n=0), ValueError, "n must be a positive integer, not 0"),
        (dict(kh=2.0), TypeError, "kh must be a positive integer, not 2.0"),
        (dict(cout=True), TypeError, "cout must be a positive integer, not True"),
        (
            dict(stride=(1, 0)),
            ValueError,
            "stride must be a positive integer or a (height, width) pair of positive integers, not (1, 0)",
        ),
        (
            dict(padding=-1),
            ValueError,
            "padding must be a non-negative integer or a (height, width) pair of "
            "non-negative integers, not -1",
        ),
        (
            dict(padding=(1, 1, 1, 1)),
            TypeError,
            "padding must be a non-negative integer or a (height, width) "
            "pair of non-negative integers, not (1, 1, 1, 1)",
        ),
        (dict(groups=0), ValueError, "groups must be a positive integer, not 0"),
    ],
)
def test_conv2d_spec_errors(kwargs, error, message):
    args = dict(n=1, h=8, w=8, cin=8, cout=8, kh=3, kw=3) | kwargs
    with pytest.raises(error, match=re.escape(message)):
        Conv2dSpec(**args)


def test_conv2d_from_tensors():
    x = np.zeros((2, 9, 9, 6), np.int8)
    w = np.zeros((4, 3, 3, 3), np.int8)
    spec = Conv2dSpec.from_tensors(x, w, np.zeros(4, np.int32), stride=2, padding=1, groups=2)
    assert spec.output_shape == (2, 5, 5, 4) and spec.groups == 2


@pytest.mark.parametrize(
    "x, w, bias, kwargs, error, message",
    [
        ([0], np.zeros((1, 1, 1, 1), np.int8), None, {}, TypeError, "x must be a numpy array, not list"),
        (np.zeros((1, 4, 4, 2), np.uint8), np.zeros((1, 1, 1, 2), np.int8), None, {}, TypeError,
         "x must have dtype 'int8', not 'uint8'"),
        (np.zeros((4, 4, 2), np.int8), np.zeros((1, 1, 1, 2), np.int8), None, {}, ValueError,
         "x must have 4 dimensions (N, H, W, C), not shape (4, 4, 2)"),
        (np.zeros((1, 4, 4, 2), np.int8), np.zeros((1, 1, 1, 2), np.int32), None, {}, TypeError,
         "w must have dtype 'int8', not 'int32'"),
        (np.zeros((1, 4, 4, 2), np.int8), np.zeros((3, 3, 2), np.int8), None, {}, ValueError,
         "w must have 4 dimensions (Cout, Kh, Kw, Cin / groups), not shape (3, 3, 2)"),
        (np.zeros((1, 4, 4, 2), np.int8), np.zeros((5, 3, 3, 3), np.int8), None, {}, ValueError,
         "w must have shape ('Cout', 'Kh', 'Kw', 2) for x with 2 channels and groups 1, not (5, 3, 3, 3)"),
        (np.zeros((1, 4, 4, 3), np.int8), np.zeros((3, 3, 3, 1), np.int8), None, dict(groups=2), ValueError,
         "x has 3 channels, which is not divisible by groups 2"),
        (np.zeros((1, 4, 4, 2), np.int8), np.zeros((5, 3, 3, 2), np.int8), np.zeros(5, np.float32), {},
         TypeError, "bias must have dtype 'int32', not 'float32'"),
        (np.zeros((1, 4, 4, 2), np.int8), np.zeros((5, 3, 3, 2), np.int8), np.zeros((1, 5), np.int32), {},
         ValueError, "bias must have shape (5,) (one value per output channel), not (1, 5)"),
    ],
)  # fmt: skip
def test_conv2d_from_tensors_errors(x, w, bias, kwargs, error, message):
    with pytest.raises(error, match=re.escape(message)):
        Conv2dSpec.from_tensors(x, w, bias, **kwargs)


def test_linear_spec():
    spec = LinearSpec(n=2, k=2048, nout=1000)
    assert spec.weights == 2_048_000 and spec.macs == 4_096_000 and spec.k_size == 2048
    assert (
        spec.weight_shape == (1000, 2048) and spec.output_shape == (2, 1000) and spec.input_shape == (2, 2048)
    )
    x, w = np.zeros((3, 7), np.int8), np.zeros((5, 7), np.int8)
    assert LinearSpec.from_tensors(x, w, np.zeros(5, np.int32)) == LinearSpec(3, 7, 5)
    with pytest.raises(ValueError, match=re.escape("nout must be a positive integer, not 0")):
        LinearSpec(1, 2, 0)
    with pytest.raises(ValueError, match=re.escape("x must have 2 dimensions (N, K), not shape (7,)")):
        LinearSpec.from_tensors(x[0], w)
    with pytest.raises(
        ValueError, match=re.escape("w must have shape ('Nout', 7) for x with 7 features, not (5, 6)")
    ):
        LinearSpec.from_tensors(x, w[:, :6])


def test_pool_spec():
    spec = PoolSpec(n=1, h=112, w=112, c=64, kh=3, kw=3, stride=2, padding=1)
    assert spec.output_shape == (1, 56, 56, 64) and spec.input_shape == (1, 112, 112, 64)
    assert PoolSpec(n=1, h=7, w=6, c=1, kh=2, kw=3).stride == (2, 3)  # stride defaults to the window
    assert PoolSpec(n=1, h=7, w=6, c=1, kh=2, kw=3).output_shape == (1, 3, 2, 1)
    assert PoolSpec.from_tensor(np.zeros((2, 5, 5, 3), np.int8), 2, stride=1).output_shape == (2, 4, 4, 3)
    with pytest.raises(
        ValueError, match=re.escape("padding width must be at most half the window width 2 (<= 1), not 2")
    ):
        PoolSpec(n=1, h=5, w=5, c=1, kh=2, kw=2, padding=(0, 2))
    message = (
        "output height 0 is less than 1: input height 2 + 2 * padding 0 is smaller than the window height 3"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        PoolSpec(n=1, h=2, w=5, c=1, kh=3, kw=3)
    with pytest.raises(
        TypeError, match=re.escape("kernel must be a positive integer or a (height, width) pair")
    ):
        PoolSpec.from_tensor(np.zeros((1, 4, 4, 1), np.int8), "3")


def test_helpers():
    assert as_pair(3, "k") == (3, 3) and as_pair((0, 2), "p", minimum=0) == (0, 2)
    assert check_int("n", np.int32(4), 1) == 4 and check_int("p", 0, 0) == 0
    with pytest.raises(ValueError, match=re.escape("p must be a non-negative integer, not -1")):
        check_int("p", -1, 0)
