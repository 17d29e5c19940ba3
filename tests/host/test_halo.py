"""Halo plans: hand-worked cases written out in full, and properties on random shapes.

Conventions (see tilelab.reference.halo): indices are positions in the zero-padded input
(N, H + 2p, W + 2p), row-major, ``index = (b·Hp + row)·Wp + col``; the N·H·W non-padded input
sticks and the N·Ho·Wo output sticks are each split into contiguous ranges of ceil(count/cores).
"""

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tilelab.reference.halo import halo_bytes, halo_plan, shard_ranges


def test_two_cores_3x3_pad1():
    # N=1, H=W=4, 3×3, stride 1, pad 1: the padded input is 6×6, index = 6·row + col.
    # Input: 16 sticks, 8 per core. Core 0 holds rows 0-1 (padded rows 1-2, cols 1-4),
    # core 1 holds rows 2-3 (padded rows 3-4, cols 1-4).
    # Output: 4×4 = 16 sticks, 8 per core: core 0 computes output rows 0-1, core 1 rows 2-3.
    # Output row r needs padded rows r..r+2, every column 0..5.
    plan = halo_plan(1, 4, 4, 8, kernel=3, stride=1, padding=1, cores=2)
    assert plan == [
        {
            # needs padded rows 0-3 = indices 0..23
            "core": 0,
            # row 0 entirely; columns 0 and 5 of rows 1-3
            "padding": [0, 1, 2, 3, 4, 5, 6, 11, 12, 17, 18, 23],
            # rows 1-2, columns 1-4: its own input rows 0-1
            "local": [7, 8, 9, 10, 13, 14, 15, 16],
            # row 3, columns 1-4 = input row 2, held by core 1: the lower halo
            "remote": [[19, 1], [20, 1], [21, 1], [22, 1]],
        },
        {
            # needs padded rows 2-5 = indices 12..35
            "core": 1,
            "padding": [12, 17, 18, 23, 24, 29, 30, 31, 32, 33, 34, 35],
            "local": [19, 20, 21, 22, 25, 26, 27, 28],
            # row 2, columns 1-4 = input row 1, held by core 0: the upper halo
            "remote": [[13, 0], [14, 0], [15, 0], [16, 0]],
        },
    ]
    assert halo_bytes(plan, 8) == 8 * 8


def test_halo_reaches_several_cores_away():
    # N=1, H=4, W=2, 3×3, stride 1, pad 1, 8 cores: each core holds ONE input stick and computes
    # ONE output stick, so a 3×3 window spans up to 6 cores. Padded input 6×4, index = 4·row + col;
    # input stick m = 2h + w sits at padded (h+1, w+1) = 4h + w + 5:
    #   m: 0→5, 1→6, 2→9, 3→10, 4→13, 5→14, 6→17, 7→18, and core i holds m = i.
    # Core i computes output (oh, ow) = (i // 2, i % 2): padded rows oh..oh+2, cols ow..ow+2.
    plan = halo_plan(1, 4, 2, 16, kernel=3, stride=1, padding=1, cores=8)
    assert plan == [
        # rows 0-2, cols 0-2 = {0,1,2, 4,5,6, 8,9,10}; row 0 and col 0 are padding
        {"core": 0, "padding": [0, 1, 2, 4, 8], "local": [5], "remote": [[6, 1], [9, 2], [10, 3]]},
        # rows 0-2, cols 1-3 = {1,2,3, 5,6,7, 9,10,11}; row 0 and col 3 are padding
        {"core": 1, "padding": [1, 2, 3, 7, 11], "local": [6], "remote": [[5, 0], [9, 2], [10, 3]]},
        # rows 1-3, cols 0-2: reaches core 0 (two cores back) and core 5 (three ahead)
        {
            "core": 2,
            "padding": [4, 8, 12],
            "local": [9],
            "remote": [[5, 0], [6, 1], [10, 3], [13, 4], [14, 5]],
        },
        {
            "core": 3,
            "padding": [7, 11, 15],
            "local": [10],
            "remote": [[5, 0], [6, 1], [9, 2], [13, 4], [14, 5]],
        },
        {
            "core": 4,
            "padding": [8, 12, 16],
            "local": [13],
            "remote": [[9, 2], [10, 3], [14, 5], [17, 6], [18, 7]],
        },
        {
            "core": 5,
            "padding": [11, 15, 19],
            "local": [14],
            "remote": [[9, 2], [10, 3], [13, 4], [17, 6], [18, 7]],
        },
        # rows 3-5, cols 0-2: row 5 and col 0 are padding
        {"core": 6, "padding": [12, 16, 20, 21, 22], "local": [17], "remote": [[13, 4], [14, 5], [18, 7]]},
        {"core": 7, "padding": [15, 19, 21, 22, 23], "local": [18], "remote": [[13, 4], [14, 5], [17, 6]]},
    ]
    assert halo_bytes(plan, 16) == (3 + 3 + 5 + 5 + 5 + 5 + 3 + 3) * 16


def test_1x1_kernel_has_no_halo():
    # 1×1, stride 1, pad 0: output stick j needs exactly input stick j, and both are split the
    # same way (6 sticks over 4 cores: ceil 2 → 2, 2, 2, 0), so everything is local.
    plan = halo_plan(1, 2, 3, 4, kernel=1, cores=4)
    assert plan == [
        {"core": 0, "padding": [], "local": [0, 1], "remote": []},
        {"core": 1, "padding": [], "local": [2, 3], "remote": []},
        {"core": 2, "padding": [], "local": [4, 5], "remote": []},
        {"core": 3, "padding": [], "local": [], "remote": []},  # nothing left to compute
    ]
    # 1×1 stride 2 (ResNet v1 downsampling), 4×4 input: output (r, c) reads input (2r, 2c).
    # Core 0 computes output row 0 → inputs 0 and 2 (input row 0, which it holds: sticks 0-7),
    # core 1 computes output row 1 → inputs 8 and 10 (input row 2, held by core 1: sticks 8-15).
    assert halo_plan(1, 4, 4, 4, kernel=1, stride=2, cores=2) == [
        {"core": 0, "padding": [], "local": [0, 2], "remote": []},
        {"core": 1, "padding": [], "local": [8, 10], "remote": []},
    ]
    assert halo_bytes(plan, 4) == 0


def test_batch_boundary_stride_2_uneven_split():
    # N=2, H=W=3, 3×3, stride 2, pad 1, 3 cores. Padded images are 5×5 (25 sticks each):
    # index = 25·b + 5·row + col. Ho = Wo = (3 + 2 - 3) // 2 + 1 = 2.
    # Input: 18 sticks, 6 per core: core 0 = image 0 rows 0-1, core 1 = image 0 row 2 and
    # image 1 row 0, core 2 = image 1 rows 1-2.
    # Output: 8 sticks, ceil(8/3) = 3 per core: core 0 → (b,oh,ow) = (0,0,0) (0,0,1) (0,1,0),
    # core 1 → (0,1,1) (1,0,0) (1,0,1), core 2 → (1,1,0) (1,1,1).
    # Output (b, oh, ow) reads padded rows 2·oh..2·oh+2 and cols 2·ow..2·ow+2 of image b.
    plan = halo_plan(2, 3, 3, 4, kernel=3, stride=2, padding=1, cores=3)
    assert plan == [
        {
            "core": 0,
            # image 0: rows 0-4 at cols 0-4 except row 3/4 cols 3-4 (not needed): 0-17, 20-22
            "padding": [0, 1, 2, 3, 4, 5, 9, 10, 14, 15, 20, 21, 22],
            "local": [6, 7, 8, 11, 12, 13],  # input rows 0-1 of image 0
            "remote": [[16, 1], [17, 1]],  # input row 2 of image 0, cols 0-1: core 1
        },
        {
            "core": 1,
            # image 0 rows 2-4 cols 2-4, and image 1 rows 0-2 (all columns)
            "padding": [14, 19, 22, 23, 24, 25, 26, 27, 28, 29, 30, 34, 35, 39],
            "local": [17, 18, 31, 32, 33],  # image 0 row 2 cols 1-2, image 1 row 0
            # image 0 row 1 cols 1-2 (core 0); image 1 row 1 (core 2)
            "remote": [[12, 0], [13, 0], [36, 2], [37, 2], [38, 2]],
        },
        {
            "core": 2,
            "padding": [35, 39, 40, 44, 45, 46, 47, 48, 49],
            "local": [36, 37, 38, 41, 42, 43],  # image 1 rows 1-2: all its own
            "remote": [],
        },
    ]


def test_shard_ranges():
    assert shard_ranges(10, 4) == [(0, 3), (3, 6), (6, 9), (9, 10)]
    assert shard_ranges(5, 4) == [(0, 2), (2, 4), (4, 5), (5, 5)]
    assert shard_ranges(8, 2) == [(0, 4), (4, 8)]
    assert shard_ranges(0, 2) == [(0, 0), (0, 0)]


def test_errors():
    with pytest.raises(ValueError, match=re.escape("cores must be a positive integer, not 0")):
        halo_plan(1, 4, 4, 4, kernel=3, cores=0)
    with pytest.raises(
        ValueError,
        match=re.escape(
            "output height 0 is less than 1: input height 2 + 2 * padding 1 is smaller than "
            "the dilated kernel height 5"
        ),
    ):
        halo_plan(1, 2, 4, 4, kernel=5, padding=1, cores=2)
    with pytest.raises(
        TypeError, match=re.escape("kernel must be a positive integer or a (height, width) pair")
    ):
        halo_plan(1, 4, 4, 4, kernel="3", cores=2)
    with pytest.raises(ValueError, match=re.escape("c must be a positive integer, not 0")):
        halo_bytes([], 0)


def brute_force(n, h, w, k, s, p, d, cores):
    """Per core: {padded index: owner or None} for every needed stick, from nested loops."""
    hp, wp = h + 2 * p, w + 2 * p
    ho, wo = (hp - d * (k - 1) - 1) // s + 1, (wp - d * (k - 1) - 1) // s + 1
    owner = {}
    per_input = -(-(n * h * w) // cores)
    position = 0
    for b in range(n):
        for row in range(h):
            for col in range(w):
                owner[(b * hp + row + p) * wp + col + p] = position // per_input
                position += 1
    per_output = -(-(n * ho * wo) // cores)
    needed = [{} for _ in range(cores)]
    position = 0
    for b in range(n):
        for oh in range(ho):
            for ow in range(wo):
                core = position // per_output
                for i in range(k):
                    for j in range(k):
                        index = (b * hp + oh * s + i * d) * wp + ow * s + j * d
                        needed[core][index] = owner.get(index)
                position += 1
    return needed


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 2),
    h=st.integers(1, 6),
    w=st.integers(1, 6),
    k=st.integers(1, 4),
    s=st.integers(1, 3),
    p=st.integers(0, 2),
    d=st.integers(1, 2),
    cores=st.integers(1, 12),
)
def test_properties(n, h, w, k, s, p, d, cores):
    if min(h, w) + 2 * p < d * (k - 1) + 1:
        return
    plan = halo_plan(n, h, w, 3, kernel=k, stride=s, padding=p, dilation=d, cores=cores)
    expected = brute_force(n, h, w, k, s, p, d, cores)
    assert [entry["core"] for entry in plan] == list(range(cores))
    for entry, want in zip(plan, expected, strict=True):
        core = entry["core"]
        remote = [index for index, _ in entry["remote"]]
        for values in (entry["padding"], entry["local"], remote):
            assert values == sorted(values) and len(set(values)) == len(values)
        # every needed stick in exactly one list; together exactly the receptive field
        everything = entry["padding"] + entry["local"] + remote
        assert len(everything) == len(set(everything))
        assert set(everything) == set(want)
        # classification and owners agree with the brute force
        assert all(want[i] is None for i in entry["padding"])
        assert all(want[i] == core for i in entry["local"])
        assert all(want[i] == owner and owner != core for i, owner in entry["remote"])
    assert halo_bytes(plan, 3) == 3 * sum(len(entry["remote"]) for entry in plan)
