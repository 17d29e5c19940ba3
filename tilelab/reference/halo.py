"""Halo plan for a sharded convolution: which input sticks each core needs, and from whom.

Definitions
-----------
- A **stick** is one pixel's ``C`` values. Sticks are numbered 0-based in row-major order.
- **Needed indices** are positions in the zero-padded input of shape ``(N, H + 2·ph, W + 2·pw)``:
  ``index = (n · Hp + hp) · Wp + wp``. Output sticks are numbered likewise in ``(N, Ho, Wo)``.
- **Shards.** ``count`` sticks split over ``cores`` into contiguous ranges of
  ``size = ceil(count / cores)``: core ``i`` gets ``[i·size, min((i + 1)·size, count))``, so every
  range but the last non-empty one is full, the last is smaller and, when ``cores`` does not
  divide evenly, trailing cores may get nothing (``count=5, cores=4``: 2, 2, 1, 0). See
  :func:`shard_ranges`.
- **Ownership.** The input is held the way a real height-sharded tensor is: the ``N·H·W``
  *non-padded* input sticks, in row-major order, are split into shards, and each is mapped to its
  index in the padded input. Padding sticks are owned by no core: they are generated (zeros) by
  the reader, never stored or sent.
- **Outputs.** The ``N·Ho·Wo`` output sticks are split into shards the same way; core ``i``
  computes its output range and so needs the union of the receptive fields of those outputs.

For core ``i`` the plan lists, sorted ascending, the needed padded indices that are
``"padding"``, the ``"local"`` ones core ``i`` holds, and the ``"remote"`` ones as
``[index, owner_core]`` pairs. A core with an empty output range needs nothing.
"""

from __future__ import annotations

import numpy as np

from tilelab.checks import check_int
from tilelab.reference.layers import Conv2dSpec, as_pair

__all__ = ["halo_bytes", "halo_plan", "shard_ranges"]


def shard_ranges(count: int, cores: int) -> list[tuple[int, int]]:
    """Split ``count`` items into ``cores`` contiguous ``[start, stop)`` ranges of ceil size.

    Parameters
    ----------
    count : int
        Number of items, ``>= 0``.
    cores : int
        Number of ranges, ``>= 1``.

    Returns
    -------
    list of (int, int)
        ``cores`` ranges; range ``i`` is ``[i·size, min((i + 1)·size, count))`` clipped to be
        empty (``start == stop == count``) past the end, with ``size = ceil(count / cores)``.
    """
    count = check_int("count", count, 0)
    cores = check_int("cores", cores, 1)
    size = -(-count // cores)
    return [(min(i * size, count), min((i + 1) * size, count)) for i in range(cores)]


def halo_plan(n, h, w, c, *, kernel, stride=1, padding=0, dilation=1, cores, out_ranges=None) -> list[dict]:
    """For every core, the padded input sticks its output shard needs: padding, local, remote.

    Parameters
    ----------
    n, h, w, c : int
        Input batch, height, width and channels (``c`` only validated; a plan is per stick).
    kernel, stride, padding, dilation : int or (int, int)
        Convolution window, per ``(height, width)``; padding is symmetric.
    cores : int
        Number of cores the input and the output are sharded over.
    out_ranges : list of (int, int), optional
        The output sticks ``[start, stop)`` each core computes, one range per core (e.g. whole
        output rows); default :func:`shard_ranges` of the ``N·Ho·Wo`` outputs. The input is
        owned as always (ceil-size shards of the non-padded sticks).

    Returns
    -------
    list of dict
        One ``{"core": i, "padding": [...], "local": [...], "remote": [[index, owner], ...]}``
        per core, every list sorted ascending by index; plain Python ints (JSON-ready).

    Raises
    ------
    TypeError, ValueError
        If a size is not a positive integer, the output would be smaller than 1×1, or
        ``out_ranges`` are not ``cores`` ranges inside the output.
    """
    kh, kw = as_pair(kernel, "kernel")
    cores = check_int("cores", cores, 1)
    spec = Conv2dSpec(
        n=n, h=h, w=w, cin=c, cout=c, kh=kh, kw=kw, stride=stride, padding=padding, dilation=dilation
    )
    (ph, pw), (sh, sw), (dh, dw) = spec.padding, spec.stride, spec.dilation
    hp, wp = spec.h + 2 * ph, spec.w + 2 * pw
    ho, wo = spec.ho, spec.wo

    # Owner of every padded stick (-1 for padding), from the shards of the non-padded sticks.
    owner = np.full((spec.n, hp, wp), -1, dtype=np.int64)
    flat = np.arange(spec.n * spec.h * spec.w).reshape(spec.n, spec.h, spec.w)
    in_size = -(-flat.size // cores)
    owner[:, ph : ph + spec.h, pw : pw + spec.w] = flat // in_size
    owner = owner.reshape(-1)

    taps = ((np.arange(kh) * dh)[:, None] * wp + (np.arange(kw) * dw)[None, :]).reshape(-1)
    plan = []
    if out_ranges is None:
        out_ranges = shard_ranges(spec.n * ho * wo, cores)
    out_ranges = [(int(a), int(b)) for a, b in out_ranges]
    if len(out_ranges) != cores or not all(0 <= a <= b <= spec.n * ho * wo for a, b in out_ranges):
        raise ValueError(f"out_ranges must be {cores} ranges inside the {spec.n * ho * wo} output sticks, "
                         f"not {out_ranges}")
    for core, (start, stop) in enumerate(out_ranges):
        out = np.arange(start, stop)
        b, rest = np.divmod(out, ho * wo)
        oh, ow = np.divmod(rest, wo)
        corner = (b * hp + oh * sh) * wp + ow * sw  # padded index of each window's top-left tap
        needed = np.unique((corner[:, None] + taps[None, :]).reshape(-1))
        owners = owner[needed]
        remote = (owners >= 0) & (owners != core)
        plan.append(
            {
                "core": core,
                "padding": needed[owners < 0].tolist(),
                "local": needed[owners == core].tolist(),
                "remote": np.stack([needed[remote], owners[remote]], axis=1).tolist(),
            }
        )
    return plan


def halo_bytes(plan, c, *, bytes_per_element=1) -> int:
    """Bytes moved between cores by a plan: remote sticks × ``c`` × ``bytes_per_element``.

    Parameters
    ----------
    plan : list of dict
        From :func:`halo_plan` (or a sub-list, e.g. one core's entry, for a per-core figure).
    c : int
        Channels per stick.
    bytes_per_element : int
        1 for int8 activations.

    Returns
    -------
    int
        Total over the entries of ``plan``; padding and local sticks move nothing.
    """
    c = check_int("c", c, 1)
    bytes_per_element = check_int("bytes_per_element", bytes_per_element, 1)
    return sum(len(entry["remote"]) for entry in plan) * c * bytes_per_element
