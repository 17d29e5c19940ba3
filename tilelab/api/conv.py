"""Run layers on the simulated compute tile: :func:`conv2d` and :func:`linear`.

The host compiles the layer (:mod:`tilelab.compile.tile`), writes the external-memory image,
starts the RTL, waits for done, reads the output and the hardware counters back, and compares the
output with the numpy golden model (:mod:`tilelab.reference.golden`) bit for bit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from tilelab.checks import check_choice
from tilelab.compile.tile import compile_conv
from tilelab.drive import LayerStats, run_image, tile_unit
from tilelab.drive.tile import EXTMEM
from tilelab.pe_models.config import DEFAULT_TILE, TileConfig
from tilelab.reference import golden
from tilelab.reference.layers import Conv2dSpec, LinearSpec
from tilelab.sim import BACKENDS

__all__ = ["Requant", "check_conv_args", "conv2d", "conv_golden", "linear", "run_program"]


@dataclass(frozen=True)
class Requant:
    """Requantization: per-channel (or scalar) ``multiplier`` M, ``shift`` s ≥ 1, ``zero_point``."""

    multiplier: object
    shift: object
    zero_point: int = 0


def run_program(program, config: TileConfig, *, sim: str = "verilator", waves=None, workdir=None,
                stall_cycles: int = 20_000, server=None):
    """Simulate a compiled :class:`~tilelab.compile.tile.TileProgram` on the tile.

    Parameters
    ----------
    program : TileProgram
        The compiled layer.
    config : TileConfig
        The tile it was compiled for.
    sim, waves, workdir, stall_cycles, server
        As :func:`tilelab.drive.run.run_image`.

    Returns
    -------
    (numpy.ndarray, Run)
        The output the program wrote, and the run (counters, simulator result, run seconds).
    """
    check_choice("sim", sim, BACKENDS)
    W = config.ext_bytes
    lo = program.out_addr // W
    hi = (program.out_addr + program.out_bytes - 1) // W
    run = run_image(tile_unit(config), {EXTMEM: program.image}, {EXTMEM: (lo, hi)}, sim=sim, waves=waves,
                    workdir=workdir, stall_cycles=stall_cycles, server=server)
    return program.extract_output(run.dumps[EXTMEM], base=lo * W), run


def check_conv_args(x, w, bias, *, stride, padding, dilation, groups, requant, activation, out):
    """Validate a conv layer's tensors and options before anything is compiled or simulated.

    Returns ``(spec, bias, multiplier, shift, zero_point)``; bias zeros when omitted; multiplier /
    shift ``None`` for ``out="int32"``.
    """
    check_choice("out", out, ("int8", "int32"))
    check_choice("activation", activation, (None, "relu"))
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
           sim: str = "verilator", waves=None, workdir=None, stall_cycles: int = 20_000, server=None):
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
    server : SimServer, optional
        A running simulator process of this tile (:class:`tilelab.drive.SimServer` of
        :func:`tilelab.drive.tile_unit`) instead of a new process for this layer.

    Returns
    -------
    (numpy.ndarray, LayerStats)
        The RTL's output (NHWC) and the run's statistics; ``stats.bit_exact`` compares it with
        :func:`tilelab.reference.golden.conv2d` (+ :func:`~tilelab.reference.golden.requantize`).
    """
    check_choice("sim", sim, BACKENDS)
    if not isinstance(config, TileConfig):
        raise TypeError(f"config must be a TileConfig, not {config!r}")
    spec, bias, mult, shift, zp = check_conv_args(x, w, bias, stride=stride, padding=padding, dilation=dilation,
                                                  groups=groups, requant=requant, activation=activation, out=out)
    program = compile_conv(x, w, bias, spec, config, multiplier=mult, shift=shift, zero_point=zp,
                           relu=activation == "relu", out_int32=out == "int32")
    y, run = run_program(program, config, sim=sim, waves=waves, workdir=workdir, stall_cycles=stall_cycles,
                         server=server)
    want = conv_golden(x, w, bias, spec, mult, shift, zp, activation=activation, out=out)
    exact = y.shape == want.shape and bool(np.array_equal(y, want))
    return y, LayerStats.from_run(run, bit_exact=exact, peak_macs_per_cycle=config.peak_macs_per_cycle,
                                  blocking=asdict(program.blocking))


def linear(x, w, bias=None, *, requant: Requant | None = None, activation: str | None = None, out: str = "int8",
           config: TileConfig = DEFAULT_TILE, sim: str = "verilator", waves=None, workdir=None, server=None):
    """Fully connected layer on the tile (a 1×1 convolution over an N×1×1×K image).

    ``x`` is ``(N, K)`` int8, ``w`` is ``(Nout, K)`` int8; returns ``(output (N, Nout), stats)``.
    ``server`` as in :func:`conv2d`.
    """
    LinearSpec.from_tensors(x, w, bias)
    y, stats = conv2d(x.reshape(x.shape[0], 1, 1, x.shape[1]), w.reshape(w.shape[0], 1, 1, w.shape[1]), bias,
                      requant=requant, activation=activation, out=out, config=config, sim=sim, waves=waves,
                      workdir=workdir, server=server)
    return y.reshape(x.shape[0], w.shape[0]), stats
