"""Run layers on the simulated compute tile: :func:`conv2d` and :func:`linear`.

The host compiles the layer (:mod:`tilelab.compile.tile`), writes the external-memory image,
starts the RTL, waits for done, reads the output and the hardware counters back, and compares the
output with the numpy golden model (:mod:`tilelab.reference.golden`) bit for bit.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from tilelab.compile.tile import compile_conv
from tilelab.pe_models.config import DEFAULT_TILE, TileConfig
from tilelab.reference import golden
from tilelab.reference.layers import Conv2dSpec, LinearSpec
from tilelab.sim import BACKENDS, simulate
from tilelab.sim.cache import default_cache_dir
from tilelab.sim.memimage import read_hex, write_hex
from tilelab.sim.verilog import Design

__all__ = ["Requant", "LayerStats", "conv2d", "linear", "tile_design", "cached_design", "check_conv_args",
           "conv_golden"]


@dataclass(frozen=True)
class Requant:
    """Requantization: per-channel (or scalar) ``multiplier`` M, ``shift`` s ≥ 1, ``zero_point``."""

    multiplier: object
    shift: object
    zero_point: int = 0


@dataclass
class LayerStats:
    """What one layer run measured.

    ``mac_utilization`` = macs / (cycles · peak_macs_per_cycle). Counters come from the RTL.
    """

    bit_exact: bool
    cycles: int
    macs: int
    peak_macs_per_cycle: int
    mac_utilization: float
    ext_bytes_read: int
    ext_bytes_written: int
    wall_seconds: float
    simulated_macs_per_second: float
    simulator: str
    build_cached: bool | None = None
    total_seconds: float = 0.0
    counters: dict = field(default_factory=dict)
    blocking: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def _verilog_cache_path(kind: str, key: str) -> Path:
    import tilelab

    src = Path(tilelab.__file__).parent
    h = hashlib.sha256(key.encode())
    # The Verilog depends on the HDL blocks, the formats, the NoC and the tile models only.
    for sub in ("hdl", "noc", "pe_models"):
        for p in sorted((src / sub).rglob("*.py")) + sorted((src / sub).rglob("*.v")):
            h.update(p.read_bytes())
    return default_cache_dir() / "verilog" / f"{kind}-{h.hexdigest()[:24]}.v"


def cached_design(kind: str, key: str, build, top: str) -> Design:
    """Verilog of ``build()`` (a component), converted once per ``key`` and tilelab version, then cached.

    Parameters
    ----------
    kind : str
        File-name prefix (``"tile"``, ``"mesh"``).
    key : str
        The configuration's key (e.g. :meth:`TileConfig.key`).
    build : callable
        Returns the component to convert (only called on a cache miss).
    top : str
        Top module name.
    """
    import json

    from tilelab.hdl.memories import VERILOG_DIR
    from tilelab.sim.verilog import to_verilog

    path = _verilog_cache_path(kind, key)
    ports_path = path.with_suffix(".ports.json")
    models = tuple(sorted(VERILOG_DIR.glob("*.v")))
    if path.exists() and ports_path.exists():
        ports = tuple(tuple(p) for p in json.loads(ports_path.read_text()))
        return Design(top=top, verilog=path.read_text(), extra_sources=models, ports=ports)
    design = to_verilog(build(), name=top)
    path.parent.mkdir(parents=True, exist_ok=True)
    for target, text in ((ports_path, json.dumps(design.ports)), (path, design.verilog)):
        tmp = target.with_suffix(f".{time.time_ns()}.tmp")
        tmp.write_text(text)
        tmp.replace(target)
    return Design(top=design.top, verilog=design.verilog, extra_sources=models, ports=design.ports)


def tile_design(config: TileConfig) -> Design:
    """The tile's Verilog (converted once per configuration and tilelab version, then cached)."""
    from tilelab.pe_models.tile import TileTop

    if config.mem_impl != "verilog":
        raise ValueError("the Verilog of a tile needs mem_impl='verilog'")
    return cached_design("tile", config.key(), lambda: TileTop(config), "tile_top")


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, not {value!r}")


def run_program(program, config: TileConfig, *, sim: str = "verilator", waves=None, workdir=None,
                stall_cycles: int = 20_000):
    """Simulate a compiled :class:`~tilelab.compile.tile.TileProgram`.

    Returns ``(output, counters, SimResult, run_seconds)``; ``run_seconds`` is the wall time from
    start to done (no reset, no memory dump).
    """
    _check_choice("sim", sim, BACKENDS)
    if workdir is None:
        # Memory images are megabytes each: keep nothing unless the caller asked for a folder
        # (except when the run fails: its folder is named in the error and kept for inspection).
        work = Path(tempfile.mkdtemp(prefix="tilelab-tile-"))
        result = _run_program_in(program, config, sim, waves, work, stall_cycles)
        shutil.rmtree(work, ignore_errors=True)
        return result
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    return _run_program_in(program, config, sim, waves, work, stall_cycles)


def _run_program_in(program, config, sim, waves, work, stall_cycles):
    init, dump = work / "extmem_init.hex", work / "extmem_dump.hex"
    W = config.ext_bytes
    lo = program.out_addr // W
    hi = (program.out_addr + program.out_bytes - 1) // W
    plusargs = {"extmem_init": str(init), "extmem_dump": str(dump), "extmem_dump_lo": str(lo),
                "extmem_dump_hi": str(hi)}
    if sim == "amaranth":
        from tilelab.pe_models.tile import TileTop

        cfg = config.replace(mem_impl="amaranth")
        image = np.concatenate([program.image, np.zeros((-len(program.image)) % W, np.uint8)])
        words = [int.from_bytes(image[i:i + W].tobytes(), "little") for i in range(0, len(image), W)]
        design = TileTop(cfg, init=words)
        res = simulate(design, "tilelab.drive.tile_bench:tile_run_bench", backend="amaranth", workdir=work,
                       plusargs=plusargs, waves=waves, args={"stall_cycles": stall_cycles})
    else:
        write_hex(init, program.image, W)
        res = simulate(tile_design(config), "tilelab.drive.tile_bench:tile_run_bench", backend=sim, workdir=work,
                       plusargs=plusargs, waves=waves, args={"stall_cycles": stall_cycles})
    memory = read_hex(dump, W)
    counters = dict(res.value)
    run_seconds = counters.pop("run_seconds", res.wall_seconds)
    return program.extract_output(memory, base=lo * W), counters, res, run_seconds


def _stats(counters, res, config, run_seconds, bit_exact, blocking) -> LayerStats:
    cycles = int(counters["cycles"])
    macs = int(counters["macs"])
    peak = config.peak_macs_per_cycle
    wall = float(run_seconds)
    return LayerStats(
        bit_exact=bool(bit_exact), cycles=cycles, macs=macs, peak_macs_per_cycle=peak,
        mac_utilization=macs / (cycles * peak) if cycles else 0.0,
        ext_bytes_read=int(counters["ext_bytes_read"]), ext_bytes_written=int(counters["ext_bytes_written"]),
        wall_seconds=wall, simulated_macs_per_second=macs / wall if wall > 0 else 0.0, simulator=res.backend,
        build_cached=res.build_cached, total_seconds=float(res.total_seconds), counters=dict(counters),
        blocking=blocking)


def check_conv_args(x, w, bias, *, stride, padding, dilation, groups, requant, activation, out):
    """Validate a conv layer's tensors and options before anything is compiled or simulated.

    Returns ``(spec, bias, multiplier, shift, zero_point)``; bias zeros when omitted; multiplier /
    shift ``None`` for ``out="int32"``.
    """
    _check_choice("out", out, ("int8", "int32"))
    _check_choice("activation", activation, (None, "relu"))
    spec = Conv2dSpec.from_tensors(x, w, bias, stride=stride, padding=padding, dilation=dilation, groups=groups)
    if bias is None:
        bias = np.zeros(spec.cout, np.int32)
    if out == "int32":
        if activation is not None:
            raise ValueError("activation applies to out='int8' only")
        return spec, bias, None, None, 0
    if requant is None:
        raise ValueError("out='int8' needs requant=Requant(multiplier, shift, zero_point)")
    mult = np.broadcast_to(np.asarray(requant.multiplier, np.int64), (spec.cout,))
    shift = np.broadcast_to(np.asarray(requant.shift, np.int64), (spec.cout,))
    if np.any(shift < 1) or np.any(shift > 62):
        raise ValueError(f"requant shift must be within [1, 62], not {int(shift.min())}..{int(shift.max())}")
    if np.any(mult < -(1 << 31)) or np.any(mult >= (1 << 31)):
        raise ValueError("requant multiplier must fit int32")
    if not -128 <= int(requant.zero_point) <= 127:
        raise ValueError(f"requant zero_point must be within [-128, 127], not {requant.zero_point!r}")
    return spec, bias, mult, shift, int(requant.zero_point)


def conv_golden(x, w, bias, spec, mult, shift, zero_point, *, activation, out):
    """The golden output of a conv layer checked by :func:`check_conv_args`."""
    acc = golden.conv2d(x, w, bias, stride=spec.stride, padding=spec.padding, dilation=spec.dilation,
                        groups=spec.groups)
    if out == "int32":
        return acc
    return golden.requantize(acc, mult, shift, zero_point, relu=activation == "relu")


def conv2d(x, w, bias=None, *, stride=1, padding=0, dilation=1, groups=1, requant: Requant | None = None,
           activation: str | None = None, out: str = "int8", config: TileConfig = DEFAULT_TILE,
           sim: str = "verilator", waves=None, workdir=None, stall_cycles: int = 20_000, runner=None):
    """Run one conv layer on the simulated tile; return ``(output, stats)``.

    Parameters
    ----------
    x : numpy.ndarray
        NHWC int8 input.
    w : numpy.ndarray
        OHWI int8 weights ``(Cout, Kh, Kw, Cin // groups)``.
    bias : numpy.ndarray, optional
        int32 ``(Cout,)``; zeros when omitted.
    stride, padding, dilation, groups
        Convolution parameters (int or (h, w) pairs; symmetric padding).
    requant : Requant, optional
        Per-channel or scalar requantization for ``out="int8"`` (required there).
    activation : {None, "relu"}
        Applied after requantization (int8 output only).
    out : {"int8", "int32"}
        Requantized int8 output, or the int32 accumulators plus bias.
    config : TileConfig
        The tile to simulate.
    sim : {"verilator", "icarus", "amaranth"}
        Simulator.
    waves : path, optional
        Waveform file.
    runner : callable, optional
        Runs the compiled program instead of :func:`run_program` (a new simulator process), e.g.
        :meth:`tilelab.drive.server.TileServer.run_program` of a running simulator.

    Returns
    -------
    (numpy.ndarray, LayerStats)
        The RTL's output (NHWC) and the run's statistics; ``stats.bit_exact`` compares it with
        :func:`tilelab.reference.golden.conv2d` (+ :func:`~tilelab.reference.golden.requantize`).
    """
    _check_choice("sim", sim, BACKENDS)
    if not isinstance(config, TileConfig):
        raise TypeError(f"config must be a TileConfig, not {config!r}")
    spec, bias, mult, shift, zp = check_conv_args(x, w, bias, stride=stride, padding=padding, dilation=dilation,
                                                  groups=groups, requant=requant, activation=activation, out=out)
    program = compile_conv(x, w, bias, spec, config, multiplier=mult, shift=shift, zero_point=zp,
                           relu=activation == "relu", out_int32=out == "int32")
    y, counters, res, run_seconds = (runner or run_program)(program, config, sim=sim, waves=waves, workdir=workdir,
                                                            stall_cycles=stall_cycles)
    want = conv_golden(x, w, bias, spec, mult, shift, zp, activation=activation, out=out)
    exact = y.shape == want.shape and bool(np.array_equal(y, want))
    return y, _stats(counters, res, config, run_seconds, exact, asdict(program.blocking))


def linear(x, w, bias=None, *, requant: Requant | None = None, activation: str | None = None, out: str = "int8",
           config: TileConfig = DEFAULT_TILE, sim: str = "verilator", waves=None, workdir=None, runner=None):
    """Fully connected layer on the tile (a 1×1 convolution over an N×1×1×K image).

    ``x`` is ``(N, K)`` int8, ``w`` is ``(Nout, K)`` int8; returns ``(output (N, Nout), stats)``.
    ``runner`` as in :func:`conv2d`.
    """
    LinearSpec.from_tensors(x, w, bias)
    y, stats = conv2d(x.reshape(x.shape[0], 1, 1, x.shape[1]), w.reshape(w.shape[0], 1, 1, w.shape[1]), bias,
                      requant=requant, activation=activation, out=out, config=config, sim=sim, waves=waves,
                      workdir=workdir, runner=runner)
    return y.reshape(x.shape[0], w.shape[0]), stats
