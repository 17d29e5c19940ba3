"""Run the non-conv ops of a network on the simulated element-wise unit, bit-exact against the golden.

Each function validates its inputs (the golden function's checks plus the unit's limits), writes
one external-memory image (descriptor program, per-channel parameter tables, inputs), starts
:class:`~tilelab.pe_models.eltwise.EltwiseTop`, waits for done without Python in the per-cycle
loop, reads the output region and the hardware counters back, and compares the output with the
one golden function of :mod:`tilelab.reference.golden` that defines the op. Every function returns
``(y, stats)`` with ``stats`` a :class:`~tilelab.api.conv.LayerStats` (``macs = 0``).
"""

from __future__ import annotations

import contextlib
import contextvars
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from tilelab.api.conv import LayerStats, cached_design
from tilelab.hdl.formats.eltwise import (
    AFFINE_WORDS,
    DESC_BYTES,
    MAX_DIM,
    MAX_WINDOW,
    PARAM_WORDS,
    STATS_WORDS,
    TERMS_WORDS,
    EltwiseDesc,
    EltwiseOp,
    unpack_stats,
)
from tilelab.pe_models.config import TileConfig
from tilelab.pe_models.eltwise import DEFAULT_ELTWISE, ELTWISE_COUNTERS, ELTWISE_STATUS, EltwiseConfig
from tilelab.reference import golden
from tilelab.reference.layers import PoolSpec
from tilelab.sim import BACKENDS, simulate
from tilelab.sim.memimage import read_hex, write_hex
from tilelab.sim.verilog import Design

__all__ = ["add_requant", "avg_pool2d", "batch_norm_train", "bulk_reduce_bench", "eltwise_design",
           "eltwise_run_bench", "global_avg_pool", "image_runner", "max_pool2d", "noc_all_reduce", "reciprocal",
           "relu"]

#: Largest batch (16-bit field) and channel count (16-bit field) of one descriptor.
MAX_BATCH = (1 << 16) - 1
MAX_CHANNELS = (1 << 16) - 1
#: Largest stride and padding (8-bit fields).
MAX_STRIDE = 255
MAX_PADDING = 255
#: Counters whose movement means the unit makes progress.
PROGRESS = ("busy", "ext_bytes_read", "ext_bytes_written", "cmd_bytes_read", "terms_cycles")


# ------------------------------------------------------------------------------------------------
# design, bench, memory image


def eltwise_design(config: EltwiseConfig) -> Design:
    """The unit's Verilog with its external memory (converted once per configuration, then cached).

    Parameters
    ----------
    config : EltwiseConfig
        Must use ``mem_impl="verilog"``.

    Returns
    -------
    Design
    """
    from tilelab.pe_models.eltwise import EltwiseTop

    if config.mem_impl != "verilog":
        raise ValueError("the Verilog of the unit needs mem_impl='verilog'")
    return cached_design("eltwise", config.key(), lambda: EltwiseTop(config), "eltwise_top")


def _diagnose(io) -> str:
    from tilelab.hdl.formats.eltwise import EltwiseState

    try:
        state = EltwiseState(io.get("state")).name
    except ValueError:
        state = str(io.get("state"))
    return f"eltwise unit {state} after {io.get('descs_done')} descriptors"


async def eltwise_run_bench(io, *, stall_cycles=20_000, check_every=4096):
    """Start the unit, wait for done (watchdog on), dump external memory, return the counters."""
    await io.reset()
    t0 = time.perf_counter()
    io.set("start", 1)
    await io.tick()
    io.set("start", 0)
    await io.run_until("done", progress=list(PROGRESS), stall_cycles=stall_cycles, check_every=check_every,
                       diagnose=_diagnose)
    run_seconds = time.perf_counter() - t0
    io.set("ext_dump", 1)
    await io.tick()
    io.set("ext_dump", 0)
    io.dump_memory("extmem")
    await io.tick()
    out = {name: io.get(name) for name in ELTWISE_COUNTERS + ELTWISE_STATUS}
    out["run_seconds"] = run_seconds
    return out


class _Image:
    """External-memory image under construction: W-aligned regions from byte 0."""

    def __init__(self, config: EltwiseConfig, n_descs: int):
        self.W = config.ext_bytes
        self.config = config
        self.chunks = [np.zeros(n_descs * DESC_BYTES, np.uint8)]
        self.size = n_descs * DESC_BYTES
        self.descs = []

    def alloc(self, data: np.ndarray | int) -> int:
        """Place bytes (or reserve ``data`` zero bytes); return the byte address."""
        raw = np.zeros(data, np.uint8) if isinstance(data, int) else np.ascontiguousarray(data).view(np.uint8).ravel()
        addr = self.size
        pad = (-len(raw)) % self.W + self.W  # a spare word: the last chunk's reads run past the end
        self.chunks.append(raw)
        self.chunks.append(np.zeros(pad, np.uint8))
        self.size += len(raw) + pad
        return addr

    def desc(self, **fields):
        self.descs.append(fields)

    def build(self) -> np.ndarray:
        image = np.concatenate(self.chunks)
        code = pack_descs(self.descs)
        image[:len(code)] = np.frombuffer(code, np.uint8)
        if len(image) > self.config.ext_bytes_total:
            raise ValueError(f"the op needs {len(image)} bytes of external memory, more than the unit's "
                             f"{self.config.ext_bytes_total} (ext_words={self.config.ext_words})")
        return image


def pack_descs(descs: list[dict]) -> bytes:
    """The unit's program: :class:`~tilelab.hdl.formats.eltwise.EltwiseDesc` s from field dicts,
    ``last`` set on the final one."""
    return b"".join(EltwiseDesc.const({**fields, "last": int(k == len(descs) - 1)}).as_bits()
                    .to_bytes(DESC_BYTES, "little") for k, fields in enumerate(descs))


def _check_config(config, sim, mesh=None):
    if mesh is not None:
        from tilelab.api.mesh import MESH_SIMS
        from tilelab.pe_models.mesh import MeshConfig

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
    if sim not in BACKENDS:
        raise ValueError(f"sim must be one of {', '.join(map(repr, BACKENDS))}, not {sim!r}")
    if config is None:
        return DEFAULT_ELTWISE
    if isinstance(config, TileConfig):  # the unit that would sit in this tile: its port and memory
        return EltwiseConfig(ext_bytes=config.ext_bytes, ext_words=config.ext_words, mem_impl=config.mem_impl)
    if not isinstance(config, EltwiseConfig):
        raise TypeError(f"config must be an EltwiseConfig or a TileConfig, not {config!r}")
    return config


def _limit(name, value, hi):
    if value > hi:
        raise ValueError(f"{name} must be at most {hi} on the element-wise unit, not {value!r}")


#: Runs program images instead of a new simulator process each (set by :func:`image_runner`).
_IMAGE_RUNNER: contextvars.ContextVar = contextvars.ContextVar("eltwise_image_runner", default=None)


@contextlib.contextmanager
def image_runner(run):
    """Within the block, Verilog-simulated ops run their programs through ``run`` (e.g.
    :meth:`tilelab.drive.server.EltwiseServer.run_ops_image`, one simulator process for
    many ops) instead of starting a simulator process per op.

    Parameters
    ----------
    run : callable
        ``run(image, out_lo, out_bytes, config, stall_cycles=...)`` →
        ``(memory bytes from out_lo, counters, SimResult)``.
    """
    token = _IMAGE_RUNNER.set(run)
    try:
        yield
    finally:
        _IMAGE_RUNNER.reset(token)


def _run_image(image: np.ndarray, out_lo: int, out_bytes: int, config: EltwiseConfig, sim: str, *,
               stall_cycles: int = 20_000):
    """Simulate one program; return ``(memory bytes from out_lo, counters, SimResult)``."""
    runner = _IMAGE_RUNNER.get()
    if runner is not None and sim != "amaranth":
        return runner(image, out_lo, out_bytes, config, stall_cycles=stall_cycles)
    W = config.ext_bytes
    work = Path(tempfile.mkdtemp(prefix="tilelab-eltwise-"))
    init, dump = work / "extmem_init.hex", work / "extmem_dump.hex"
    lo, hi = out_lo // W, (out_lo + max(out_bytes, 1) - 1) // W
    plusargs = {"extmem_init": str(init), "extmem_dump": str(dump), "extmem_dump_lo": str(lo),
                "extmem_dump_hi": str(hi)}
    args = {"stall_cycles": stall_cycles}
    if sim == "amaranth":
        from tilelab.pe_models.eltwise import EltwiseTop

        padded = np.concatenate([image, np.zeros((-len(image)) % W, np.uint8)])
        words = [int.from_bytes(padded[i:i + W].tobytes(), "little") for i in range(0, len(padded), W)]
        res = simulate(EltwiseTop(config.replace(mem_impl="amaranth"), init=words),
                       "tilelab.api.ops:eltwise_run_bench", backend="amaranth", workdir=work, plusargs=plusargs,
                       args=args)
    else:
        write_hex(init, image, W)
        res = simulate(eltwise_design(config), "tilelab.api.ops:eltwise_run_bench", backend=sim, workdir=work,
                       plusargs=plusargs, args=args)
    memory = read_hex(dump, W)
    shutil.rmtree(work, ignore_errors=True)
    offset = out_lo - lo * W
    return np.frombuffer(memory, np.uint8)[offset:offset + out_bytes], dict(res.value), res


def _stats(counters: dict, res, bit_exact: bool, extra: dict | None = None) -> LayerStats:
    counters = dict(counters)
    run_seconds = float(counters.pop("run_seconds", res.wall_seconds))
    counters.update(extra or {})
    return LayerStats(
        bit_exact=bool(bit_exact), cycles=int(counters["cycles"]), macs=0, peak_macs_per_cycle=0,
        mac_utilization=0.0, ext_bytes_read=int(counters["ext_bytes_read"]),
        ext_bytes_written=int(counters["ext_bytes_written"]), wall_seconds=run_seconds,
        simulated_macs_per_second=0.0, simulator=res.backend, build_cached=res.build_cached,
        total_seconds=float(res.total_seconds), counters=counters)


def _exact(y: np.ndarray, want: np.ndarray) -> bool:
    return y.shape == want.shape and bool(np.array_equal(y, want))


def reciprocal(count: int) -> tuple[int, int, int]:
    """Constants that turn the golden's rounded division into a multiply and a shift.

    For every window sum ``S`` with ``|S| <= 128·count``::

        (S + count // 2) // count == ((S + bias) · mult >> shift) - 128

    with ``bias = count // 2 + 128·count`` (so the dividend ``v = S + bias`` is non-negative and
    below ``256·count``), ``shift`` the bit length of ``256·count²`` and
    ``mult = ceil(2**shift / count)``. Exact because ``mult·count - 2**shift = e < count`` and
    ``v·e < 256·count² <= 2**shift``, so the error term ``v·e / (count·2**shift)`` never reaches
    the next multiple of ``1 / count``. ``mult <= 512·count + 1 < 2**26``.

    Parameters
    ----------
    count : int
        Window size, ``1 <= count <= 2**16``.

    Returns
    -------
    (int, int, int)
        ``(bias, mult, shift)``.
    """
    if not isinstance(count, int) or not 1 <= count <= MAX_WINDOW:
        raise ValueError(f"averaging window must hold 1..{MAX_WINDOW} values, not {count!r}")
    shift = (256 * count * count).bit_length()
    mult = -(-(1 << shift) // count)
    return count // 2 + 128 * count, mult, shift


def _tensor_limits(n, h, w, c):
    _limit("N", n, MAX_BATCH)
    _limit("H", h, MAX_DIM)
    _limit("W", w, MAX_DIM)
    _limit("C", c, MAX_CHANNELS)


def _check_nonempty(x, name="x"):
    if x.size == 0:
        raise ValueError(f"{name} must hold at least one element, not shape {x.shape!r}")


def _tensor_desc(n, h, w, c):
    return {"n": n, "h": h, "w": w, "c": c, "ho": h, "wo": w, "kh": 1, "kw": 1, "sh": 1, "sw": 1}


# ------------------------------------------------------------------------------------------------
# pooling


def _pool(op, x, kernel, stride, padding, sim, config, want_fn, mesh=None):
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
    return _run_single(fields, x, None, want, config, sim, mesh=mesh)


def _run_mesh(fields, a, b, want, mesh, sim, params=None):
    """Run one op sharded over the element-wise units of ``mesh`` (:mod:`tilelab.compile.mesh_eltwise`)."""
    from tilelab.api.mesh import mesh_layer_stats, run_mesh_program
    from tilelab.compile.mesh_eltwise import compile_eltwise_mesh

    program = compile_eltwise_mesh(fields, a, b, params, want.shape, mesh, pack_descs)
    work = Path(tempfile.mkdtemp(prefix="tilelab-mesh-eltwise-"))
    try:
        y, value, res = run_mesh_program(program, sim=sim, workdir=work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return y, mesh_layer_stats(program, value, res, _exact(y, want))


def _run_single(fields, a, b, want, config, sim, params=None, mesh=None):
    if mesh is not None:
        return _run_mesh(fields, a, b, want, mesh, sim, params=params)
    img = _Image(config, 1)
    fields = dict(fields, src_a=img.alloc(a))
    if b is not None:
        fields["src_b"] = img.alloc(b)
    if params is not None:
        fields["params"] = img.alloc(params)
    fields["dst"] = dst = img.alloc(want.size)
    img.desc(**fields)
    out, counters, res = _run_image(img.build(), dst, want.size, config, sim)
    y = out.view(np.int8).reshape(want.shape).copy()
    return y, _stats(counters, res, _exact(y, want))


def max_pool2d(x, kernel, *, stride=None, padding=0, sim="verilator", config=None, mesh=None):
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
        The unit; default :data:`~tilelab.pe_models.eltwise.DEFAULT_ELTWISE`. A ``TileConfig``
        stands for the unit beside that tile (its port width and external memory).
    mesh : MeshConfig, optional
        Run on the element-wise units of this mesh (built with ``eltwise=True``) instead, output
        rows split over the nodes and halo rows moved over the NoC (:mod:`tilelab.compile.mesh_eltwise`);
        the statistics are then a :class:`~tilelab.api.mesh.MeshStats`.

    Returns
    -------
    (numpy.ndarray, LayerStats)
        int8 ``(N, Ho, Wo, C)`` from the RTL, and the run's statistics.
    """
    return _pool(EltwiseOp.MAXPOOL, x, kernel, stride, padding, sim, config,
                 lambda: golden.max_pool2d(x, kernel, stride=stride, padding=padding), mesh)


def avg_pool2d(x, kernel, *, stride=None, padding=0, sim="verilator", config=None, mesh=None):
    """Average pooling (padding counts as 0, rounded half up) on the element-wise unit.

    Golden: :func:`tilelab.reference.golden.avg_pool2d` with ``count_include_pad=True``. The unit
    divides by the window size with :func:`reciprocal` (exact). At most 2**16 values per window.

    Parameters
    ----------
    x, kernel, stride, padding, sim, config, mesh
        As in :func:`max_pool2d`.

    Returns
    -------
    (numpy.ndarray, LayerStats)
        int8 ``(N, Ho, Wo, C)`` and the run's statistics.
    """
    return _pool(EltwiseOp.AVGPOOL, x, kernel, stride, padding, sim, config,
                 lambda: golden.avg_pool2d(x, kernel, stride=stride, padding=padding), mesh)


def global_avg_pool(x, *, sim="verilator", config=None, mesh=None):
    """Global average pooling on the element-wise unit (golden: :func:`tilelab.reference.golden.global_avg_pool`).

    Parameters
    ----------
    x : numpy.ndarray
        int8 ``(N, H, W, C)`` with ``H·W <= 2**16``.
    sim, config, mesh
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
    return _run_single(fields, x, None, want, config, sim, mesh=mesh)


# ------------------------------------------------------------------------------------------------
# element-wise


def _rows(x):
    """``x`` as ``(rows, C)`` (channels last)."""
    channels = x.shape[-1] if x.ndim else 1
    return x.reshape(-1, channels)


def _param_table(config, channels, arrays):
    """Per-chunk parameter tables: ``arrays`` is a list of ``(values (C,), dtype)`` in table order."""
    W = config.ext_bytes
    chunks = -(-channels // W)
    table = []
    for k in range(chunks):
        for values, dtype in arrays:
            lanes = np.zeros(W, dtype)
            part = values[k * W:(k + 1) * W]
            lanes[:len(part)] = part
            table.append(lanes.view(np.uint8))
    return np.concatenate(table)


def add_requant(a, b, *, a_mult, a_shift, b_mult, b_shift, zero_point=0, a_zero_point=0, b_zero_point=0,
                relu=False, sim="verilator", config=None, mesh=None):
    """Residual add of two int8 tensors with their own requantization, on the element-wise unit.

    Golden: :func:`tilelab.reference.golden.add_requant` (same arguments and checks). Multipliers and
    shifts may be per tensor or per channel; the unit reads them as per-channel tables.

    Parameters
    ----------
    a, b : numpy.ndarray
        int8, the same shape, channels last (at most 65535 channels).
    a_mult, b_mult, a_shift, b_shift, zero_point, a_zero_point, b_zero_point, relu
        As in the golden function.
    sim, config, mesh
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

    params = _param_table(config, channels, [
        (vec(a_mult), np.int32), (vec(b_mult), np.int32), (vec(a_shift), np.uint8), (vec(b_shift), np.uint8)])
    assert len(params) == -(-channels // config.ext_bytes) * PARAM_WORDS[EltwiseOp.ADD] * config.ext_bytes
    fields = {"op": EltwiseOp.ADD, **_tensor_desc(1, rows, 1, channels), "relu": int(relu),
              "zero_point": zero_point, "a_zero_point": a_zero_point, "b_zero_point": b_zero_point}
    return _run_single(fields, ra, rb, want, config, sim, params=params, mesh=mesh)


def relu(x, *, zero_point=0, sim="verilator", config=None, mesh=None):
    """ReLU ``max(x, zero_point)`` on the element-wise unit (golden: :func:`tilelab.reference.golden.relu`).

    Parameters
    ----------
    x : numpy.ndarray
        int8, any shape (channels last).
    zero_point : int
        In ``[-128, 127]``.
    sim, config, mesh
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
    fields = {"op": EltwiseOp.RELU, **_tensor_desc(1, rows, 1, channels), "zero_point": zero_point}
    return _run_single(fields, rx, None, want, config, sim, mesh=mesh)


# ------------------------------------------------------------------------------------------------
# batch norm (training mode) across a mesh

#: All-reduce of the statistics on :func:`noc_all_reduce`'s separate design (``mesh=(R, C)``):
#: int32 lanes per flit and words per node memory. The statistics travel in the unit's
#: statistics layout (:mod:`tilelab.hdl.formats.eltwise`: Σx, Σx² mod 2**16 and Σx² >> 16 as
#: int32 lanes), whose lanes add up exactly.
BN_NOC_LANES = 8
BN_NOC_DEPTH = 2048


def _bulk_reduce_design(rows, cols, lanes, depth) -> Design:
    from tilelab.noc.bulk import BulkReduceHarness

    return cached_design("bulk-reduce", f"{rows},{cols},{lanes},{depth}",
                         lambda: BulkReduceHarness(rows=rows, cols=cols, lanes=lanes, depth=depth), "bulk_reduce")


async def bulk_reduce_bench(io, *, flits, names, stall_cycles=5_000):
    """Start the all-reduce of the loaded contributions, wait for done, dump every node memory."""
    await io.reset()
    io.set("flits", flits)
    io.set("start", 1)
    await io.tick()
    io.set("start", 0)
    await io.run_until("done", progress=["sent", "received"], stall_cycles=stall_cycles,
                       diagnose=lambda io: f"all-reduce: {io.get('sent')} flits sent, {io.get('received')} "
                                           f"delivered, stuck={io.get('stuck')}")
    io.set("dump", 1)
    await io.tick()
    io.set("dump", 0)
    for name in names:
        io.dump_memory(name)
    await io.tick()
    return {name: io.get(name) for name in ("cycles", "sent", "received")}


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
    from tilelab.noc.bulk import BulkReduceHarness, node_memory_name

    _check_mesh((rows, cols))
    if sim not in BACKENDS:
        raise ValueError(f"sim must be one of {', '.join(map(repr, BACKENDS))}, not {sim!r}")
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
    words = {}
    for key, vector in contributions.items():
        v = np.zeros(flits * lanes, np.int32)
        v[:length] = vector
        words[key] = v
    work = Path(tempfile.mkdtemp(prefix="tilelab-bulk-reduce-"))
    plusargs, names = {}, []
    for (x, y), v in words.items():
        name = node_memory_name(x, y)
        names.append(name)
        plusargs.update({f"{name}_init": str(work / f"{name}_init.hex"), f"{name}_dump": str(work / f"{name}_dump.hex"),
                         f"{name}_dump_lo": str(flits), f"{name}_dump_hi": str(2 * flits - 1)})
        write_hex(work / f"{name}_init.hex", v.view(np.uint8), 4 * lanes)
    args = {"flits": flits, "names": names}
    if sim == "amaranth":
        init = {key: [int.from_bytes(v[i * lanes:(i + 1) * lanes].tobytes(), "little") for i in range(flits)]
                for key, v in words.items()}
        design = BulkReduceHarness(rows=rows, cols=cols, lanes=lanes, depth=depth, mem_impl="amaranth", init=init)
    else:
        design = _bulk_reduce_design(rows, cols, lanes, depth)
    res = simulate(design, "tilelab.api.ops:bulk_reduce_bench", backend=sim, workdir=work, plusargs=plusargs,
                   args=args)
    totals = {}
    for (x, y) in words:
        raw = read_hex(work / f"{node_memory_name(x, y)}_dump.hex", 4 * lanes)
        totals[x, y] = np.frombuffer(raw, np.int32)[:length].copy()
    shutil.rmtree(work, ignore_errors=True)
    return totals, dict(res.value)


def _check_mesh(mesh):
    if (not isinstance(mesh, tuple) or len(mesh) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 16 for v in mesh)):
        raise ValueError(f"mesh must be a (rows, cols) pair of integers in [1, 16], not {mesh!r}")
    return mesh


def batch_norm_train(x, gamma, beta, *, eps=1, gamma_frac_bits=8, mesh=(2, 2), sim="verilator", config=None):
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

    Returns
    -------
    (numpy.ndarray, LayerStats)
        int8 ``(N, H, W, C)``. ``stats.bit_exact`` holds when the all-reduce totals equal numpy's
        ``Σx`` and ``Σx²`` at every node, the RTL's per-channel mean and ``a`` equal
        :func:`tilelab.reference.golden.batch_norm_terms` (at every node) and the output equals the
        golden; ``stats.counters`` has the checks ``noc_totals_exact`` and ``terms_exact``.
        On a mesh the statistics are a :class:`~tilelab.api.mesh.MeshStats` (per-node
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
    from tilelab.pe_models.mesh import MeshConfig

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
    img = _Image(config, nodes)
    src = img.alloc(xs)
    out0 = img.alloc(nodes * stats_bytes)
    for k, (lo, hi) in enumerate(shards):
        img.desc(op=EltwiseOp.BN_STATS, **_tensor_desc(1, hi - lo, 1, channels), src_a=src + lo * channels,
                 dst=out0 + k * stats_bytes)
    raw, stats_counters, stats_res = _run_image(img.build(), out0, nodes * stats_bytes, config, sim)
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
    img = _Image(config, 1 + nodes)
    src = img.alloc(xs)
    terms_in = img.alloc(totals[0, 0])
    affine = img.alloc(_affine_table(config, channels, gamma, beta))
    table_bytes = chunks * TERMS_WORDS * W
    table = img.alloc(xs.size + table_bytes)
    dst = table + table_bytes
    img.desc(op=EltwiseOp.BN_TERMS, c=channels, params=terms_in, src_b=affine, dst=table, bn_count=count, bn_eps=eps)
    shift = _bn_shift(gamma_frac_bits)
    for lo, hi in shards:
        img.desc(op=EltwiseOp.BN_APPLY, **_tensor_desc(1, hi - lo, 1, channels), src_a=src + lo * channels,
                 dst=dst + lo * channels, params=table, bn_shift=shift)
    out, apply_counters, apply_res = _run_image(img.build(), table, table_bytes + xs.size, config, sim)
    y = out[table_bytes:].view(np.int8).reshape(x.shape).copy()
    terms_exact = _terms_exact(out[:table_bytes], channels, W, want_s1, want_s2, count, gamma, eps, gamma_frac_bits)

    counters = {}
    for prefix, values in (("stats", stats_counters), ("noc", noc_counters), ("apply", apply_counters)):
        counters.update({f"{prefix}_{k}": v for k, v in values.items()})
    counters["noc_totals_exact"] = noc_exact
    counters["terms_exact"] = terms_exact
    total = {
        "cycles": stats_counters["cycles"] + noc_counters["cycles"] + apply_counters["cycles"],
        "ext_bytes_read": stats_counters["ext_bytes_read"] + apply_counters["ext_bytes_read"],
        "ext_bytes_written": stats_counters["ext_bytes_written"] + apply_counters["ext_bytes_written"],
        "run_seconds": stats_counters["run_seconds"] + apply_counters["run_seconds"],
    }
    stats = _stats(total, apply_res, noc_exact and terms_exact and _exact(y, want), counters)
    stats.total_seconds = float(stats_res.total_seconds + apply_res.total_seconds)
    return y, stats


def _bn_shift(gamma_frac_bits):
    """BN_APPLY's ``bn_shift``: ``T`` of :func:`tilelab.reference.golden.batch_norm_train`."""
    return golden.BN_MEAN_FRAC_BITS + gamma_frac_bits + golden.BN_INVSTD_FRAC_BITS


def _affine_table(config, channels, gamma, beta):
    """BN_TERMS' affine table (:data:`~tilelab.hdl.formats.eltwise.AFFINE_WORDS` words per chunk)."""
    table = _param_table(config, channels, [(np.asarray(gamma, np.int64), np.int32),
                                            (np.asarray(beta, np.int64), np.int32)])
    assert len(table) == -(-channels // config.ext_bytes) * AFFINE_WORDS * config.ext_bytes
    return table


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
    from tilelab.api.mesh import mesh_layer_stats, run_mesh_program
    from tilelab.compile.mesh_eltwise import compile_batch_norm_mesh

    unit = _check_config(config, sim, mesh)
    want = golden.batch_norm_train(x, gamma, beta, eps=eps, gamma_frac_bits=gamma_frac_bits)
    n, h, w, channels = x.shape
    count = n * h * w
    _limit("C", channels, MAX_CHANNELS)
    xs = x.reshape(count, channels)
    program = compile_batch_norm_mesh(xs, _affine_table(unit, channels, gamma, beta), eps=eps,
                                      bn_shift=_bn_shift(gamma_frac_bits), config=mesh, pack=pack_descs)
    work = Path(tempfile.mkdtemp(prefix="tilelab-mesh-bn-"))
    try:
        (y, received, tables), value, res = run_mesh_program(program, sim=sim, workdir=work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    y = y.reshape(x.shape)
    want_s1 = xs.astype(np.int64).sum(axis=0)
    want_s2 = (xs.astype(np.int64) ** 2).sum(axis=0)
    totals = {key: unpack_stats(raw, channels, unit.ext_bytes) for key, raw in received.items()}
    noc_exact = all(np.array_equal(s1, want_s1) and np.array_equal(s2, want_s2) for s1, s2 in totals.values())
    terms_exact = all(_terms_exact(raw, channels, unit.ext_bytes, want_s1, want_s2, count, gamma, eps,
                                   gamma_frac_bits) for raw in tables.values())
    stats = mesh_layer_stats(program, value, res, noc_exact and terms_exact and _exact(y, want))
    stats.counters.update(noc_totals_exact=bool(noc_exact), terms_exact=bool(terms_exact), totals=totals)
    return y, stats
