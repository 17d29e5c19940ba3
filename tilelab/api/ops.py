"""Run the non-conv ops of a network on the simulated element-wise unit, bit-exact against the golden.

Each function validates its inputs (the golden function's checks plus the unit's limits), writes
one external-memory image (descriptor program, per-channel parameter tables, inputs), starts
:class:`~tilelab.pe_models.eltwise.EltwiseTop`, waits for done without Python in the per-cycle
loop, reads the output region and the hardware counters back, and compares the output with the
one golden function of :mod:`tilelab.reference.golden` that defines the op. Every function returns
``(y, stats)`` with ``stats`` a :class:`~tilelab.drive.LayerStats` (``macs = 0``).
"""

from __future__ import annotations

import numpy as np

from tilelab.checks import check_choice
from tilelab.compile.eltwise import (
    EltwiseImage,
    affine_table,
    bn_shift,
    pack_descs,
    param_table,
    reciprocal,
    tensor_desc,
)
from tilelab.drive import LayerStats, MeshStats, bulk_reduce_unit, eltwise_unit, run_image
from tilelab.drive.mesh import MESH_SIMS
from tilelab.drive.tile import EXTMEM
from tilelab.hdl.formats.eltwise import (
    MAX_BATCH,
    MAX_CHANNELS,
    MAX_DIM,
    MAX_PADDING,
    MAX_STRIDE,
    MAX_WINDOW,
    PARAM_WORDS,
    STATS_WORDS,
    TABLE_ENTRIES,
    TABLE_WORDS,
    TERMS_WORDS,
    EltwiseOp,
    unpack_stats,
)
from tilelab.hdl.memories import node_memory_name
from tilelab.pe_models.config import DEFAULT_ELTWISE, EltwiseConfig, TileConfig
from tilelab.reference import golden
from tilelab.reference.layers import PoolSpec
from tilelab.sim import BACKENDS

__all__ = ["add_requant", "avg_pool2d", "batch_norm_train", "global_avg_pool", "max_pool2d", "noc_all_reduce",
           "qadd_constants", "qlinear_add", "qlinear_avg_pool", "qlinear_concat", "qlinear_mul", "qlinear_table",
           "reciprocal", "relu"]


def _check_config(config, sim, mesh=None):
    if mesh is not None:
        from tilelab.pe_models.config import MeshConfig

        if not isinstance(mesh, MeshConfig):
            raise TypeError(f"mesh must be a MeshConfig, not {mesh!r}")
        if sim not in MESH_SIMS:
            raise ValueError(f"sim must be one of {', '.join(map(repr, MESH_SIMS))} for a mesh, not {sim!r}")
        if config is not None:
            raise ValueError("give either config= (one unit) or mesh= (the units of a mesh), not both")
        if not mesh.eltwise:
            from tilelab.compile.mesh import MeshError

            raise MeshError("this mesh has no element-wise units: build it with MeshConfig(..., eltwise=True)")
        return mesh.eltwise_config
    check_choice("sim", sim, BACKENDS)
    if config is None:
        return DEFAULT_ELTWISE
    if isinstance(config, TileConfig):  # the unit that would sit in this tile: its port and memory
        return EltwiseConfig.beside(config)
    if not isinstance(config, EltwiseConfig):
        raise TypeError(f"config must be an EltwiseConfig or a TileConfig, not {config!r}")
    return config


def _limit(name, value, hi):
    if value > hi:
        raise ValueError(f"{name} must be at most {hi} on the element-wise unit, not {value!r}")


def _run_program(image: np.ndarray, out_lo: int, out_bytes: int, config: EltwiseConfig, sim: str, server=None,
                 stall_cycles: int = 20_000):
    """Run one program on the unit; return ``(out_bytes bytes at out_lo, Run)``."""
    W = config.ext_bytes
    lo, hi = out_lo // W, (out_lo + max(out_bytes, 1) - 1) // W
    run = run_image(eltwise_unit(config), {EXTMEM: image}, {EXTMEM: (lo, hi)}, sim=sim, server=server,
                    stall_cycles=stall_cycles)
    return run.region(EXTMEM, lo, out_lo, out_bytes, W), run


def _exact(y: np.ndarray, want: np.ndarray) -> bool:
    return y.shape == want.shape and bool(np.array_equal(y, want))


def _tensor_limits(n, h, w, c):
    _limit("N", n, MAX_BATCH)
    _limit("H", h, MAX_DIM)
    _limit("W", w, MAX_DIM)
    _limit("C", c, MAX_CHANNELS)


def _check_nonempty(x, name="x"):
    if x.size == 0:
        raise ValueError(f"{name} must hold at least one element, not shape {x.shape!r}")


def _pool(op, x, kernel, stride, padding, sim, config, want_fn, mesh=None, server=None):
    config = _check_config(config, sim, mesh)
    spec = PoolSpec.from_tensor(x, kernel, stride=stride, padding=padding)
    want = want_fn()
    _tensor_limits(spec.n, spec.h, spec.w, spec.c)
    _limit("kernel height", spec.kh, MAX_DIM)
    _limit("kernel width", spec.kw, MAX_DIM)
    _limit("stride", max(spec.stride), MAX_STRIDE)
    _limit("padding", max(spec.padding), MAX_PADDING)
    fields = {"op": op, "n": spec.n, "h": spec.h, "w": spec.w, "c": spec.c, "ho": spec.ho, "wo": spec.wo,
              "kh": spec.kh, "kw": spec.kw, "sh": spec.stride[0], "sw": spec.stride[1],
              "ph": spec.padding[0], "pw": spec.padding[1]}
    if op is EltwiseOp.AVGPOOL:
        bias, mult, shift = reciprocal(spec.kh * spec.kw)
        fields.update(div_bias=bias, div_mult=mult, div_shift=shift)
    return _run_single(fields, x, None, want, config, sim, mesh=mesh, server=server)


def _run_mesh(fields, a, b, want, mesh, sim, params=None):
    """Run one op sharded over the element-wise units of ``mesh`` (:mod:`tilelab.compile.mesh_eltwise`)."""
    from tilelab.api.mesh import run_mesh_program
    from tilelab.compile.mesh_eltwise import compile_eltwise_mesh

    program = compile_eltwise_mesh(fields, a, b, params, want.shape, mesh, pack_descs)
    y, run = run_mesh_program(program, sim=sim)
    return y, MeshStats.from_mesh_run(mesh, run, bit_exact=_exact(y, want), shard=program.shard,
                                      halo_bytes=program.halo_bytes)


def _run_single(fields, a, b, want, config, sim, params=None, mesh=None, server=None):
    if mesh is not None:
        return _run_mesh(fields, a, b, want, mesh, sim, params=params)
    img = EltwiseImage(config, 1)
    fields = dict(fields, src_a=img.alloc(a))
    if b is not None:
        fields["src_b"] = img.alloc(b)
    if params is not None:
        fields["params"] = img.alloc(params)
    fields["dst"] = dst = img.alloc(want.size)
    img.desc(**fields)
    out, run = _run_program(img.build(), dst, want.size, config, sim, server)
    y = out.view(np.int8).reshape(want.shape).copy()
    return y, LayerStats.from_run(run, bit_exact=_exact(y, want))


def max_pool2d(x, kernel, *, stride=None, padding=0, sim="verilator", config=None, mesh=None, server=None):
    """Max pooling on the element-wise unit (golden: :func:`tilelab.reference.golden.max_pool2d`).

    Parameters
    ----------
    x : numpy.ndarray
        int8 ``(N, H, W, C)``.
    kernel : int or (int, int)
        Window.
    stride : int or (int, int), optional
        Defaults to ``kernel``.
    padding : int or (int, int)
        At most ``kernel // 2``; padded positions never win.
    sim : {"verilator", "icarus", "amaranth"}
        Simulator.
    config : EltwiseConfig or TileConfig, optional
        The unit; default :data:`~tilelab.pe_models.config.DEFAULT_ELTWISE`. A ``TileConfig``
        stands for the unit beside that tile (its port width and external memory).
    mesh : MeshConfig, optional
        Run on the element-wise units of this mesh (built with ``eltwise=True``) instead, output
        rows split over the nodes and halo rows moved over the NoC (:mod:`tilelab.compile.mesh_eltwise`);
        the statistics are then a :class:`~tilelab.drive.MeshStats`.
    server : SimServer, optional
        A running simulator process of this unit (:class:`tilelab.drive.SimServer` of
        :func:`tilelab.drive.eltwise_unit`) instead of a new process for this op.

    Returns
    -------
    (numpy.ndarray, LayerStats)
        int8 ``(N, Ho, Wo, C)`` from the RTL, and the run's statistics.
    """
    return _pool(EltwiseOp.MAXPOOL, x, kernel, stride, padding, sim, config,
                 lambda: golden.max_pool2d(x, kernel, stride=stride, padding=padding), mesh, server)


def avg_pool2d(x, kernel, *, stride=None, padding=0, sim="verilator", config=None, mesh=None, server=None):
    """Average pooling (padding counts as 0, rounded half up) on the element-wise unit.

    Golden: :func:`tilelab.reference.golden.avg_pool2d` with ``count_include_pad=True``. The unit
    divides by the window size with :func:`reciprocal` (exact). At most 2**16 values per window.

    Parameters
    ----------
    x, kernel, stride, padding, sim, config, mesh, server
        As in :func:`max_pool2d`.

    Returns
    -------
    (numpy.ndarray, LayerStats)
        int8 ``(N, Ho, Wo, C)`` and the run's statistics.
    """
    return _pool(EltwiseOp.AVGPOOL, x, kernel, stride, padding, sim, config,
                 lambda: golden.avg_pool2d(x, kernel, stride=stride, padding=padding), mesh, server)


def global_avg_pool(x, *, sim="verilator", config=None, mesh=None, server=None):
    """Global average pooling on the element-wise unit (golden: :func:`tilelab.reference.golden.global_avg_pool`).

    Parameters
    ----------
    x : numpy.ndarray
        int8 ``(N, H, W, C)`` with ``H·W <= 2**16``.
    sim, config, mesh, server
        As in :func:`max_pool2d` (on a mesh, channels are split over the nodes).

    Returns
    -------
    (numpy.ndarray, LayerStats)
        int8 ``(N, 1, 1, C)`` and the run's statistics.
    """
    config = _check_config(config, sim, mesh)
    want = golden.global_avg_pool(x)
    _check_nonempty(x)
    n, h, w, c = x.shape
    _tensor_limits(n, h, w, c)
    _limit("H·W", h * w, MAX_WINDOW)
    bias, mult, shift = reciprocal(h * w)
    fields = {"op": EltwiseOp.GLOBAL_AVGPOOL, "n": n, "h": h, "w": w, "c": c, "ho": 1, "wo": 1,
              "div_bias": bias, "div_mult": mult, "div_shift": shift}
    return _run_single(fields, x, None, want, config, sim, mesh=mesh, server=server)


# ------------------------------------------------------------------------------------------------
# element-wise


def _rows(x):
    """``x`` as ``(rows, C)`` (channels last)."""
    channels = x.shape[-1] if x.ndim else 1
    return x.reshape(-1, channels)


def add_requant(a, b, *, a_mult, a_shift, b_mult, b_shift, zero_point=0, a_zero_point=0, b_zero_point=0,
                relu=False, sim="verilator", config=None, mesh=None, server=None):
    """Residual add of two int8 tensors with their own requantization, on the element-wise unit.

    Golden: :func:`tilelab.reference.golden.add_requant` (same arguments and checks). Multipliers and
    shifts may be per tensor or per channel; the unit reads them as per-channel tables.

    Parameters
    ----------
    a, b : numpy.ndarray
        int8, the same shape, channels last (at most 65535 channels).
    a_mult, b_mult, a_shift, b_shift, zero_point, a_zero_point, b_zero_point, relu
        As in the golden function.
    sim, config, mesh, server
        As in :func:`max_pool2d` (on a mesh, the pixels are split over the nodes).

    Returns
    -------
    (numpy.ndarray, LayerStats)
        int8, the shape of ``a``, and the run's statistics.
    """
    config = _check_config(config, sim, mesh)
    if not isinstance(relu, bool):
        raise TypeError(f"relu must be a bool, not {relu!r}")
    want = golden.add_requant(a, b, a_mult=a_mult, a_shift=a_shift, b_mult=b_mult, b_shift=b_shift,
                              zero_point=zero_point, a_zero_point=a_zero_point, b_zero_point=b_zero_point,
                              relu=relu)
    _check_nonempty(a, "a")
    ra, rb = _rows(a), _rows(b)
    rows, channels = ra.shape
    _limit("rows (elements / channels)", rows, MAX_DIM)
    _limit("C", channels, MAX_CHANNELS)

    def vec(v):
        return np.broadcast_to(np.asarray(v, np.int64), (channels,))

    params = param_table(config, channels, [
        (vec(a_mult), np.int32), (vec(b_mult), np.int32), (vec(a_shift), np.uint8), (vec(b_shift), np.uint8)])
    assert len(params) == -(-channels // config.ext_bytes) * PARAM_WORDS[EltwiseOp.ADD] * config.ext_bytes
    fields = {"op": EltwiseOp.ADD, **tensor_desc(1, rows, 1, channels), "relu": int(relu),
              "zero_point": zero_point, "a_zero_point": a_zero_point, "b_zero_point": b_zero_point}
    return _run_single(fields, ra, rb, want, config, sim, params=params, mesh=mesh, server=server)


def relu(x, *, zero_point=0, sim="verilator", config=None, mesh=None, server=None):
    """ReLU ``max(x, zero_point)`` on the element-wise unit (golden: :func:`tilelab.reference.golden.relu`).

    Parameters
    ----------
    x : numpy.ndarray
        int8, any shape (channels last).
    zero_point : int
        In ``[-128, 127]``.
    sim, config, mesh, server
        As in :func:`max_pool2d` (on a mesh, the pixels are split over the nodes).

    Returns
    -------
    (numpy.ndarray, LayerStats)
        int8, the shape of ``x``, and the run's statistics.
    """
    config = _check_config(config, sim, mesh)
    want = golden.relu(x, zero_point=zero_point)
    _check_nonempty(x)
    rx = _rows(x)
    rows, channels = rx.shape
    _limit("rows (elements / channels)", rows, MAX_DIM)
    _limit("C", channels, MAX_CHANNELS)
    fields = {"op": EltwiseOp.RELU, **tensor_desc(1, rows, 1, channels), "zero_point": zero_point}
    return _run_single(fields, rx, None, want, config, sim, mesh=mesh, server=server)


def qlinear_table(x, table, *, sim="verilator", config=None, mesh=None, server=None):
    """A 256-entry int8 lookup table applied to every element, on the element-wise unit.

    onnxruntime's table ops (``QLinearSigmoid``, ``QLinearLeakyRelu``, a requantizing input of
    ``QLinearConcat``: :func:`tilelab.reference.golden.qlinear_table` builds their tables) and any
    other unary int8 → int8 function. The unit reads the table once per channel chunk and looks
    every value up in it, W values a cycle (golden: :func:`tilelab.reference.golden.apply_table`).

    Parameters
    ----------
    x : numpy.ndarray
        int8, any shape (channels last).
    table : numpy.ndarray
        int8 ``(256,)``: ``table[v + 128]`` is the output for the input ``v``.
    sim, config, mesh, server
        As in :func:`max_pool2d` (on a mesh, the pixels are split over the nodes).

    Returns
    -------
    (numpy.ndarray, LayerStats)
        int8, the shape of ``x``, and the run's statistics.
    """
    config = _check_config(config, sim, mesh)
    want = golden.apply_table(x, table)
    _check_nonempty(x)
    rx = _rows(x)
    rows, channels = rx.shape
    _limit("rows (elements / channels)", rows, MAX_DIM)
    _limit("C", channels, MAX_CHANNELS)
    fields = {"op": EltwiseOp.TABLE, **tensor_desc(1, rows, 1, channels)}
    return _run_single(fields, rx, None, want, config, sim, params=_table_params(config, table), mesh=mesh,
                       server=server)


def _table_params(config, table, out_c=0):
    """TABLE's parameter words: the 256 entries, then the output's bytes per pixel (0: the input's)."""
    W = config.ext_bytes
    params = np.zeros(PARAM_WORDS[EltwiseOp.TABLE] * W, np.uint8)
    params[:TABLE_ENTRIES] = np.asarray(table, np.int8).view(np.uint8)
    params[TABLE_WORDS * W:TABLE_WORDS * W + 4] = np.array([out_c], np.uint32).view(np.uint8)
    return params


#: QAVGPOOL's scales lie in [2**-QAVG_SCALE_EXP, 2**QAVG_SCALE_EXP]: then no sum, quotient or
#: result leaves the normal float32 range, whatever the 8-bit values and the window (≤ 2**16 values).
QAVG_SCALE_EXP = 40


def qlinear_avg_pool(x, kernel, *, stride=None, padding=0, count_include_pad=False, x_scale, x_zero_point,
                     y_scale, y_zero_point, unsigned=False, sim="verilator", config=None, mesh=None, server=None):
    """onnxruntime's ``QLinearAveragePool`` on the element-wise unit, bit for bit.

    Per window the unit dequantizes each real tap (``xs·float(x - zx)``), adds it to a float32
    sum tap by tap (rows, then columns), divides by ``float(count)`` and by ``ys``, adds the
    output zero point and rounds half to even, every step one float32 rounding
    (:mod:`tilelab.hdl.fpfma`; golden: :func:`tilelab.reference.golden.qlinear_avg_pool`).

    Parameters
    ----------
    x : numpy.ndarray
        int8 ``(N, H, W, C)``.
    kernel, stride, padding
        As in :func:`max_pool2d`.
    count_include_pad : bool
        Divide by the window size (else by the real values in the window).
    x_scale, x_zero_point, y_scale, y_zero_point, unsigned
        As in the golden function; the scales lie in ``[2**-40, 2**40]``.
    sim, config, mesh, server
        As in :func:`max_pool2d` (on a mesh, output rows are split over the nodes).

    Returns
    -------
    (numpy.ndarray, LayerStats)
        int8 ``(N, Ho, Wo, C)`` and the run's statistics.
    """
    config = _check_config(config, sim, mesh)
    if not isinstance(count_include_pad, bool):
        raise TypeError(f"count_include_pad must be a bool, not {count_include_pad!r}")
    spec = PoolSpec.from_tensor(x, kernel, stride=stride, padding=padding)
    want = golden.qlinear_avg_pool(x, (spec.kh, spec.kw), stride=spec.stride, padding=spec.padding,
                                   count_include_pad=count_include_pad, x_scale=x_scale, x_zero_point=x_zero_point,
                                   y_scale=y_scale, y_zero_point=y_zero_point, unsigned=unsigned)
    for name, value in (("x_scale", x_scale), ("y_scale", y_scale)):
        v = np.float32(value)
        if not 2.0 ** -QAVG_SCALE_EXP <= v <= 2.0 ** QAVG_SCALE_EXP:
            raise ValueError(f"{name} must lie in [2**-{QAVG_SCALE_EXP}, 2**{QAVG_SCALE_EXP}] on the element-wise "
                             f"unit, not {float(v)!r}")
    _tensor_limits(spec.n, spec.h, spec.w, spec.c)
    _limit("kernel height", spec.kh, MAX_DIM)
    _limit("kernel width", spec.kw, MAX_DIM)
    _limit("window (kernel height · width)", spec.kh * spec.kw, MAX_WINDOW)
    _limit("stride", max(spec.stride), MAX_STRIDE)
    _limit("padding", max(spec.padding), MAX_PADDING)
    off = 128 if unsigned else 0
    params = np.zeros(PARAM_WORDS[EltwiseOp.QAVGPOOL] * config.ext_bytes, np.uint8)
    params[:12] = np.array([x_scale, y_scale, y_zero_point + off], np.float32).view(np.uint8)
    params[12] = np.int8(x_zero_point).view(np.uint8)
    params[13] = int(count_include_pad)
    fields = {"op": EltwiseOp.QAVGPOOL, "n": spec.n, "h": spec.h, "w": spec.w, "c": spec.c, "ho": spec.ho,
              "wo": spec.wo, "kh": spec.kh, "kw": spec.kw, "sh": spec.stride[0], "sw": spec.stride[1],
              "ph": spec.padding[0], "pw": spec.padding[1], "uint8": int(unsigned)}
    return _run_single(fields, x, None, want, config, sim, params=params, mesh=mesh, server=server)


def qlinear_concat(inputs, x_scales, x_zero_points, y_scale, y_zero_point, *, unsigned=False, sim="verilator",
                   config=None, mesh=None, server=None):
    """onnxruntime's ``QLinearConcat`` along the channels, on the element-wise unit.

    One TABLE descriptor per input writes its channel slice of the output (the table's output
    stride is the output's channel count): the identity table for an input whose scale and zero
    point equal the output's (a copy), else onnxruntime's requantization table of the identity
    (:func:`tilelab.reference.golden.qlinear_table`). Golden:
    :func:`tilelab.reference.golden.qlinear_concat`.

    Parameters
    ----------
    inputs : sequence of numpy.ndarray
        int8, the same shape but for the last axis (channels).
    x_scales, x_zero_points, y_scale, y_zero_point, unsigned
        As in :func:`tilelab.reference.golden.qlinear_concat`.
    sim, config, server
        As in :func:`max_pool2d`.
    mesh : MeshConfig, optional
        Not supported: a :class:`~tilelab.compile.mesh.MeshError` before any simulation.

    Returns
    -------
    (numpy.ndarray, LayerStats)
        int8, the concatenation's shape, and the run's statistics.
    """
    if mesh is not None:
        from tilelab.compile.mesh import MeshError

        raise MeshError("QLinearConcat does not run sharded over a mesh (one unit runs it)")
    config = _check_config(config, sim)
    inputs = list(inputs)
    if not inputs:
        raise ValueError("inputs must hold at least one tensor")
    for i, x in enumerate(inputs):
        if not isinstance(x, np.ndarray) or x.dtype != np.int8 or x.ndim < 1:
            raise TypeError(f"inputs[{i}] must be an int8 numpy array with a channel axis, not "
                            f"{getattr(x, 'dtype', type(x).__name__)} of shape {getattr(x, 'shape', None)!r}")
        if x.shape[:-1] != inputs[0].shape[:-1]:
            raise ValueError(f"inputs[{i}] of shape {x.shape!r} differs from inputs[0] of shape "
                             f"{inputs[0].shape!r} in more than the channels (the last axis)")
    want = golden.qlinear_concat(inputs, x_scales, x_zero_points, y_scale, y_zero_point, unsigned=unsigned)
    _check_nonempty(want)
    out_c = want.shape[-1]
    rows = want.size // out_c
    _limit("rows (elements / channels)", rows, MAX_DIM)
    _limit("C", out_c, MAX_CHANNELS)
    img = EltwiseImage(config, len(inputs))
    sources = [img.alloc(_rows(x)) for x in inputs]
    dst = img.alloc(want.size)
    c0 = 0
    for x, src, s, z in zip(inputs, sources, x_scales, x_zero_points, strict=True):
        c = x.shape[-1] if x.ndim else 1
        if np.float32(s) == np.float32(y_scale) and int(z) == int(y_zero_point):
            table = np.arange(-128, 128).astype(np.int8)          # a copy
        else:
            table = golden.qlinear_table(lambda v: v, s, z, y_scale, y_zero_point, unsigned=unsigned)
        img.desc(op=EltwiseOp.TABLE, **tensor_desc(1, rows, 1, c), src_a=src, dst=dst + c0,
                 params=img.alloc(_table_params(config, table, out_c)))
        c0 += c
    out, run = _run_program(img.build(), dst, want.size, config, sim, server)
    y = out.view(np.int8).reshape(want.shape).copy()
    return y, LayerStats.from_run(run, bit_exact=_exact(y, want))


#: Largest magnitude of QADD's float32 constants: far from overflow, whatever the 8-bit values.
QADD_MAX_CONSTANT = 2.0 ** 100


def _qadd_constant(name, value, *, zero_ok=False):
    v = np.float32(value)
    tiny = np.finfo(np.float32).tiny
    ok = np.isfinite(v) and abs(v) <= QADD_MAX_CONSTANT and (abs(v) >= tiny or (zero_ok and v == 0))
    if not ok:
        what = "finite float32" if zero_ok else "normal float32"
        raise ValueError(f"{name} = {float(v)!r} must be a {what} of magnitude at most 2**100 on the element-wise "
                         f"unit")
    return v


def qadd_constants(a_scale, a_zero_point, b_scale, b_zero_point, y_scale, y_zero_point, *, unsigned=False,
                   b_value=None):
    """QADD's per-layer float32 constants ``(ra, rb, k)`` as MLAS computes them.

    ``ra = as / ys``, ``rb = bs / ys``, ``k = float(zy) - fma(ra, float(za), rb·float(zb))`` on the
    raw zero points; with one value ``b`` (``b_value``, stored int8) its term joins the constant
    as MLAS's scalar kernel adds it: ``k + rb·float(b)`` (two roundings), and ``rb`` becomes 0.
    The arguments are those of :func:`tilelab.reference.golden.qlinear_add` (checked there).

    Returns
    -------
    (numpy.float32, numpy.float32, numpy.float32)

    Raises
    ------
    ValueError
        A constant the unit cannot take (not normal, or beyond 2**100 in magnitude), naming it.
    """
    off = 128 if unsigned else 0
    f32 = np.float32
    ra = _qadd_constant("a_scale / y_scale", f32(a_scale) / f32(y_scale))
    rb = _qadd_constant("b_scale / y_scale", f32(b_scale) / f32(y_scale))
    k = f32(y_zero_point + off) - golden.fma_f32(ra, f32(a_zero_point + off), rb * f32(b_zero_point + off))
    if b_value is not None:
        k, rb = k + f32(int(b_value) + off) * rb, f32(0)
    return ra, rb, _qadd_constant("the constant term k", k, zero_ok=True)


def qlinear_add(a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point, *, unsigned=False,
                sim="verilator", config=None, mesh=None, server=None):
    """onnxruntime's ``QLinearAdd`` on the element-wise unit, bit for bit.

    The unit computes MLAS's AVX2 kernel per element in float32 with fused multiply-adds and no
    floating-point unit (:class:`~tilelab.hdl.fpfma.IntFloatFma`): on the raw 8-bit values
    ``t = fma(a, ra, fma(b, rb, k))``, then ``rint(t)`` saturated (golden:
    :func:`tilelab.reference.golden.qlinear_add`); the host computes the layer's constants
    (:func:`qadd_constants`). A ``b`` that broadcasts to ``a`` (a constant per channel, say) is
    streamed at ``a``'s shape, as onnxruntime runs it; a single value ``b`` (or ``a``) is MLAS's
    scalar kernel: its term is folded into ``k`` and the unit reads one input.

    Parameters
    ----------
    a, b : numpy.ndarray
        int8 storage, channels last; ``b`` broadcasts to ``a`` (or ``a`` is one value).
    a_scale, a_zero_point, b_scale, b_zero_point, y_scale, y_zero_point, unsigned
        As in :func:`tilelab.reference.golden.qlinear_add`.
    sim, config, mesh, server
        As in :func:`max_pool2d` (on a mesh, the pixels are split over the nodes).

    Returns
    -------
    (numpy.ndarray, LayerStats)
        int8, the broadcast shape, and the run's statistics.
    """
    config = _check_config(config, sim, mesh)
    with np.errstate(over="ignore", invalid="ignore"):   # constants out of range are refused below
        want = golden.qlinear_add(a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point,
                                  unsigned=unsigned)
    if a.size == 1 and b.size != 1:     # MLAS swaps the operands: the tensor is the one streamed
        a, b = b, a
        a_scale, a_zero_point, b_scale, b_zero_point = b_scale, b_zero_point, a_scale, a_zero_point
    scalar = b.size == 1 and a.size != 1
    with np.errstate(over="ignore", invalid="ignore"):
        ra, rb, k = qadd_constants(a_scale, a_zero_point, b_scale, b_zero_point, y_scale, y_zero_point,
                                   unsigned=unsigned, b_value=int(b.reshape(-1)[0]) if scalar else None)
    a = np.broadcast_to(a, want.shape)
    rows_a = _rows(np.ascontiguousarray(a))
    rows, channels = rows_a.shape
    _limit("rows (elements / channels)", rows, MAX_DIM)
    _limit("C", channels, MAX_CHANNELS)
    rows_b = None if scalar else _rows(np.ascontiguousarray(np.broadcast_to(b, want.shape)))
    params = np.zeros(PARAM_WORDS[EltwiseOp.QADD] * config.ext_bytes, np.uint8)
    params[:12] = np.array([ra, rb, k], np.float32).view(np.uint8)
    fields = {"op": EltwiseOp.QADD, **tensor_desc(1, rows, 1, channels), "uint8": int(unsigned),
              "scalar_b": int(scalar)}
    return _run_single(fields, rows_a, rows_b, want, config, sim, params=params, mesh=mesh, server=server)


def qlinear_mul(a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point, *, unsigned=False,
                sim="verilator", config=None, mesh=None, server=None):
    """onnxruntime's ``QLinearMul`` of two tensors on the element-wise unit, bit for bit.

    Per element the unit multiplies the centred values ``(a - za)·(b - zb)`` (an integer, exact
    in float32), scales it by ``r = (as·bs) / ys`` and rounds half to even exactly as the compute
    tile's float requantization does (:class:`~tilelab.hdl.fpscale.FloatScaleRound`), adds ``zy``
    and saturates (golden: :func:`tilelab.reference.golden.qlinear_mul`). The host computes ``r``.

    Parameters
    ----------
    a, b : numpy.ndarray
        int8 storage, channels last; ``b`` broadcasts to ``a`` (not a single value: MLAS has another
        kernel for that).
    a_scale, a_zero_point, b_scale, b_zero_point, y_scale, y_zero_point, unsigned
        As in :func:`tilelab.reference.golden.qlinear_mul`.
    sim, config, mesh, server
        As in :func:`max_pool2d` (on a mesh, the pixels are split over the nodes).

    Returns
    -------
    (numpy.ndarray, LayerStats)
        int8, the shape of ``a``, and the run's statistics.

    Raises
    ------
    ValueError
        Bad arguments (the golden's checks), or a scale ``r`` that is not a positive normal float32.
    """
    config = _check_config(config, sim, mesh)
    with np.errstate(over="ignore", under="ignore"):    # a scale out of range is refused below
        want = golden.qlinear_mul(a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point,
                                  unsigned=unsigned)
        r = (np.float32(a_scale) * np.float32(b_scale)) / np.float32(y_scale)
    if not (np.isfinite(r) and r >= np.finfo(np.float32).tiny):
        raise ValueError(f"(a_scale · b_scale) / y_scale = {float(r)!r} must be a positive normal float32 on the "
                         f"element-wise unit")
    rows_a = _rows(np.ascontiguousarray(np.broadcast_to(a, want.shape)))
    rows, channels = rows_a.shape
    _limit("rows (elements / channels)", rows, MAX_DIM)
    _limit("C", channels, MAX_CHANNELS)
    rows_b = _rows(np.ascontiguousarray(np.broadcast_to(b, want.shape)))
    params = np.zeros(PARAM_WORDS[EltwiseOp.QMUL] * config.ext_bytes, np.uint8)
    params[:4] = np.array([r], np.float32).view(np.uint8)
    params[4:7] = np.array([a_zero_point, b_zero_point, y_zero_point], np.int8).view(np.uint8)
    fields = {"op": EltwiseOp.QMUL, **tensor_desc(1, rows, 1, channels)}
    return _run_single(fields, rows_a, rows_b, want, config, sim, params=params, mesh=mesh, server=server)


# ------------------------------------------------------------------------------------------------
# batch norm (training mode) across a mesh

#: All-reduce of the statistics on :func:`noc_all_reduce`'s separate design (``mesh=(R, C)``):
#: int32 lanes per flit and words per node memory. The statistics travel in the unit's
#: statistics layout (:mod:`tilelab.hdl.formats.eltwise`: Σx, Σx² mod 2**16 and Σx² >> 16 as
#: int32 lanes), whose lanes add up exactly.
BN_NOC_LANES = 8
BN_NOC_DEPTH = 2048


def noc_all_reduce(contributions: dict, *, rows: int, cols: int, sim: str = "verilator"):
    """Sum per-node int32 vectors in the NoC's in-network reduction RTL; every node's totals come back.

    Parameters
    ----------
    contributions : dict
        ``{(x, y): int32 array (L,)}`` for every node of the ``rows × cols`` mesh, all the same
        length ``L``.
    rows, cols : int
        Mesh size.
    sim : {"verilator", "icarus", "amaranth"}
        Simulator.

    Returns
    -------
    (dict, dict)
        ``{(x, y): int32 totals (L,)}`` as delivered to each node (wrapping int32 sums), and the
        run's counters (``cycles``, ``sent``, ``received`` flits).
    """
    _check_mesh((rows, cols))
    check_choice("sim", sim, BACKENDS)
    nodes = {(x, y) for y in range(rows) for x in range(cols)}
    if not isinstance(contributions, dict) or set(contributions) != nodes:
        raise ValueError(f"contributions must be a dict with one vector per node (x, y) of the {rows}x{cols} mesh")
    lengths = {np.shape(v) for v in contributions.values()}
    if len(lengths) != 1 or len(next(iter(lengths))) != 1 or next(iter(lengths))[0] < 1:
        raise ValueError(f"contributions must be 1-D vectors of one non-zero length, not shapes {sorted(lengths)!r}")
    lanes, depth = BN_NOC_LANES, BN_NOC_DEPTH
    length = next(iter(lengths))[0]
    flits = -(-length // lanes)
    if 2 * flits > depth:
        raise ValueError(f"the all-reduce needs {2 * flits} words per node, more than the {depth} it has")
    images = {}
    for (x, y), vector in contributions.items():
        v = np.zeros(flits * lanes, np.int32)
        v[:length] = vector
        images[node_memory_name(y, x)] = v.view(np.uint8)
    run = run_image(bulk_reduce_unit(rows, cols, lanes, depth), images, dict.fromkeys(images, (flits, 2 * flits - 1)),
                    sim=sim, inputs={"flits": flits}, stall_cycles=5_000)
    totals = {(x, y): np.frombuffer(run.dumps[node_memory_name(y, x)], np.int32)[:length].copy() for (x, y) in nodes}
    return totals, dict(run.counters)


def _check_mesh(mesh):
    if (not isinstance(mesh, tuple) or len(mesh) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 16 for v in mesh)):
        raise ValueError(f"mesh must be a (rows, cols) pair of integers in [1, 16], not {mesh!r}")
    return mesh


def batch_norm_train(x, gamma, beta, *, eps=1, gamma_frac_bits=8, mesh=(2, 2), sim="verilator", config=None,
                     server=None):
    """Training-mode batch norm: per-shard statistics, summed in the NoC, then normalization, all in RTL.

    The ``N·H·W`` rows of ``x`` are split into ``R·C`` contiguous shards, one per mesh node.

    With ``mesh=MeshConfig(..., eltwise=True)`` everything runs on that mesh, every node in
    parallel (:func:`tilelab.compile.mesh_eltwise.compile_batch_norm_mesh`): node ``k`` (grid tile
    ``(k // C, k % C)``) holds shard ``k`` and its data mover runs ``ELT`` (BN_STATS: the shard's
    per-channel ``Σx``, ``Σx²`` in the statistics layout of :mod:`tilelab.hdl.formats.eltwise`)
    → ``REDUCE`` (the mesh's collective plane sums them across all nodes, rows then the column,
    and broadcasts the totals back into every node's memory) → ``ELT`` (BN_TERMS: steps 2-7 of
    :func:`tilelab.reference.golden.batch_norm_train` from the totals, two divisions and an integer
    square root per channel, for the node's slice of the channels) → ``REDUCE`` (gathers the
    slices into the whole BN_APPLY table at every node) → ``ELT`` (BN_APPLY: step 8 on the
    shard) → ``END``. The host only loads the node memories and reads them back.

    With ``mesh=(R, C)`` (the default) the same steps run on one simulated unit and a separate
    all-reduce design: BN_STATS for every shard one after another, the statistics words moved
    unchanged into :func:`noc_all_reduce` (node ``(x, y)`` takes shard ``y·C + x``), node
    (0, 0)'s totals into BN_TERMS, then BN_APPLY per shard.

    Parameters
    ----------
    x : numpy.ndarray
        int8 ``(N, H, W, C)``, at least one row per node.
    gamma, beta, eps, gamma_frac_bits
        As in :func:`tilelab.reference.golden.batch_norm_train`.
    mesh : MeshConfig or (int, int)
        The mesh that runs it (``eltwise=True``; Verilator or Icarus), or ``(rows, cols)`` (1..16
        each) of the shards for the sequential path.
    sim : str
        Simulator (``"verilator"``, ``"icarus"``; ``"amaranth"`` too for ``mesh=(R, C)``).
    config : EltwiseConfig or TileConfig, optional
        The unit of the sequential path, as in :func:`max_pool2d` (not with a ``MeshConfig``).
    server : SimServer, optional
        The sequential path's element-wise unit as a running simulator process (as in
        :func:`max_pool2d`).

    Returns
    -------
    (numpy.ndarray, LayerStats)
        int8 ``(N, H, W, C)``. ``stats.bit_exact`` holds when the all-reduce totals equal numpy's
        ``Σx`` and ``Σx²`` at every node, the RTL's per-channel mean and ``a`` equal
        :func:`tilelab.reference.golden.batch_norm_terms` (at every node) and the output equals the
        golden; ``stats.counters`` has the checks ``noc_totals_exact`` and ``terms_exact``.
        On a mesh the statistics are a :class:`~tilelab.drive.MeshStats` (per-node
        counters in ``stats.tiles``, ``REDUCE`` ones included) and ``stats.counters["totals"]``
        holds each node's received totals ``{(i, j): (Σx, Σx²)}``. Sequentially ``stats.cycles`` is
        the statistics run + the all-reduce + the apply run, and ``stats.counters`` has each
        phase's counters (``stats_*``, ``noc_*``, ``apply_*`` (BN_TERMS + BN_APPLY)).

    Raises
    ------
    ValueError
        Bad arguments (the golden's checks), fewer rows than nodes, more channels than the
        all-reduce or a node memory holds; on a mesh a :class:`~tilelab.compile.mesh.MeshError`
        (a ``ValueError``) before any simulation.
    """
    from tilelab.pe_models.config import MeshConfig

    if isinstance(mesh, MeshConfig):
        return _batch_norm_mesh(x, gamma, beta, eps, gamma_frac_bits, mesh, sim, config)
    config = _check_config(config, sim)
    want = golden.batch_norm_train(x, gamma, beta, eps=eps, gamma_frac_bits=gamma_frac_bits)
    rows_mesh, cols_mesh = _check_mesh(mesh)
    nodes = rows_mesh * cols_mesh
    channels = x.shape[3]
    count = x.shape[0] * x.shape[1] * x.shape[2]
    if count < nodes:
        raise ValueError(f"batch norm over a {rows_mesh}x{cols_mesh} mesh needs at least {nodes} rows "
                         f"(N·H·W), not {count!r}")
    _limit("C", channels, MAX_CHANNELS)
    _limit("rows per shard", -(-count // nodes), MAX_DIM)
    W = config.ext_bytes
    chunks = -(-channels // W)
    stats_bytes = chunks * STATS_WORDS * W
    flits = -(-stats_bytes // (4 * BN_NOC_LANES))
    if 2 * flits > BN_NOC_DEPTH:
        most = BN_NOC_DEPTH // 2 * 4 * BN_NOC_LANES // (STATS_WORDS * W) * W
        raise ValueError(f"batch norm over the NoC takes at most {most} channels, not {channels!r}")
    xs = x.reshape(count, channels)
    bounds = np.linspace(0, count, nodes + 1).astype(np.int64)
    shards = [(int(lo), int(hi)) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]

    # 1. per-shard statistics on the unit, in the statistics layout
    img = EltwiseImage(config, nodes)
    src = img.alloc(xs)
    out0 = img.alloc(nodes * stats_bytes)
    for k, (lo, hi) in enumerate(shards):
        img.desc(op=EltwiseOp.BN_STATS, **tensor_desc(1, hi - lo, 1, channels), src_a=src + lo * channels,
                 dst=out0 + k * stats_bytes)
    raw, stats_run = _run_program(img.build(), out0, nodes * stats_bytes, config, sim, server)
    contributions = {(k % cols_mesh, k // cols_mesh): raw[k * stats_bytes:(k + 1) * stats_bytes].view(np.int32)
                     for k in range(nodes)}

    # 2. all-reduce in the NoC: the words as they are
    totals, noc_counters = noc_all_reduce(contributions, rows=rows_mesh, cols=cols_mesh, sim=sim)
    want_s1 = xs.astype(np.int64).sum(axis=0)
    want_s2 = (xs.astype(np.int64) ** 2).sum(axis=0)
    noc_exact = True
    for vector in totals.values():
        s1, s2 = unpack_stats(vector.tobytes(), channels, W)
        noc_exact &= bool(np.array_equal(s1, want_s1) and np.array_equal(s2, want_s2))

    # 3. + 4. per-channel terms (BN_TERMS) from node (0, 0)'s totals, then every shard normalized
    # (BN_APPLY), on the unit
    img = EltwiseImage(config, 1 + nodes)
    src = img.alloc(xs)
    terms_in = img.alloc(totals[0, 0])
    affine = img.alloc(affine_table(config, channels, gamma, beta))
    table_bytes = chunks * TERMS_WORDS * W
    table = img.alloc(xs.size + table_bytes)
    dst = table + table_bytes
    img.desc(op=EltwiseOp.BN_TERMS, c=channels, params=terms_in, src_b=affine, dst=table, bn_count=count, bn_eps=eps)
    shift = bn_shift(gamma_frac_bits)
    for lo, hi in shards:
        img.desc(op=EltwiseOp.BN_APPLY, **tensor_desc(1, hi - lo, 1, channels), src_a=src + lo * channels,
                 dst=dst + lo * channels, params=table, bn_shift=shift)
    out, apply_run = _run_program(img.build(), table, table_bytes + xs.size, config, sim, server)
    y = out[table_bytes:].view(np.int8).reshape(x.shape).copy()
    terms_exact = _terms_exact(out[:table_bytes], channels, W, want_s1, want_s2, count, gamma, eps, gamma_frac_bits)

    s, a = stats_run.counters, apply_run.counters
    counters = {"cycles": s["cycles"] + noc_counters["cycles"] + a["cycles"],
                "ext_bytes_read": s["ext_bytes_read"] + a["ext_bytes_read"],
                "ext_bytes_written": s["ext_bytes_written"] + a["ext_bytes_written"]}
    for prefix, values in (("stats", s), ("noc", noc_counters), ("apply", a)):
        counters.update({f"{prefix}_{k}": v for k, v in values.items()})
    counters.update(noc_totals_exact=noc_exact, terms_exact=terms_exact)
    return y, LayerStats.from_run(apply_run, bit_exact=noc_exact and terms_exact and _exact(y, want),
                                  counters=counters, wall_seconds=stats_run.run_seconds + apply_run.run_seconds,
                                  total_seconds=stats_run.result.total_seconds + apply_run.result.total_seconds)


def _terms_exact(raw, channels, W, s1, s2, count, gamma, eps, gamma_frac_bits) -> bool:
    """Whether a BN_APPLY table written by BN_TERMS holds the golden's per-channel mean and ``a``."""
    chunks = -(-channels // W)
    words = np.frombuffer(bytes(raw), np.uint8).reshape(chunks, TERMS_WORDS, W)
    rtl_mean = words[:, 0:4].reshape(chunks, -1).view(np.int32).reshape(-1)[:channels]
    rtl_a = words[:, 4:12].reshape(chunks, -1).view(np.int64).reshape(-1)[:channels]
    mean, a, _ = golden.batch_norm_terms(s1, s2, count, np.asarray(gamma, np.int64), eps=eps,
                                         gamma_frac_bits=gamma_frac_bits)
    return bool(np.array_equal(rtl_mean, mean) and np.array_equal(rtl_a, a))


def _batch_norm_mesh(x, gamma, beta, eps, gamma_frac_bits, mesh, sim, config):
    """:func:`batch_norm_train` on the nodes of ``mesh`` (see there)."""
    from tilelab.api.mesh import run_mesh_program
    from tilelab.compile.mesh_eltwise import compile_batch_norm_mesh

    unit = _check_config(config, sim, mesh)
    want = golden.batch_norm_train(x, gamma, beta, eps=eps, gamma_frac_bits=gamma_frac_bits)
    n, h, w, channels = x.shape
    count = n * h * w
    _limit("C", channels, MAX_CHANNELS)
    xs = x.reshape(count, channels)
    program = compile_batch_norm_mesh(xs, affine_table(unit, channels, gamma, beta), eps=eps,
                                      bn_shift=bn_shift(gamma_frac_bits), config=mesh, pack=pack_descs)
    (y, received, tables), run = run_mesh_program(program, sim=sim)
    y = y.reshape(x.shape)
    want_s1 = xs.astype(np.int64).sum(axis=0)
    want_s2 = (xs.astype(np.int64) ** 2).sum(axis=0)
    totals = {key: unpack_stats(raw, channels, unit.ext_bytes) for key, raw in received.items()}
    noc_exact = all(np.array_equal(s1, want_s1) and np.array_equal(s2, want_s2) for s1, s2 in totals.values())
    terms_exact = all(_terms_exact(raw, channels, unit.ext_bytes, want_s1, want_s2, count, gamma, eps,
                                   gamma_frac_bits) for raw in tables.values())
    return y, MeshStats.from_mesh_run(mesh, run, bit_exact=noc_exact and terms_exact and _exact(y, want),
                                      shard="rows", counters={"noc_totals_exact": bool(noc_exact),
                                                                     "terms_exact": bool(terms_exact),
                                                                     "totals": totals})
