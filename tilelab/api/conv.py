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

__all__ = ["Requant", "check_conv_args", "check_float_requant", "conv2d", "conv_golden", "linear", "requant_kwargs",
           "run_program"]


@dataclass(frozen=True)
class Requant:
    """Requantization of int8 outputs.

    Either the integer one (:func:`~tilelab.reference.golden.requantize`): per-channel (or
    scalar) ``multiplier`` M and ``shift`` s ≥ 1; or onnxruntime's float one
    (:func:`~tilelab.reference.golden.requantize_float`): a float32 ``scale`` per channel (or
    scalar), with ``multiplier`` and ``shift`` None. ``zero_point``: the output's.
    """

    multiplier: object = None
    shift: object = None
    zero_point: int = 0
    scale: object = None

    @property
    def is_float(self) -> bool:
        """The float (onnxruntime) requantization."""
        return self.scale is not None


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


def check_conv_args(x, w, bias, *, stride, padding, dilation, groups, requant, activation, out, pad_value=0):
    """Validate a conv layer's tensors and options before anything is compiled or simulated.

    Returns ``(spec, bias, requant)``: bias zeros when omitted; ``requant`` a :class:`Requant` with
    per-channel arrays (``(Cout,)`` int64 multiplier and shift, or float32 scale), None for
    ``out="int32"``.
    """
    check_choice("out", out, ("int8", "int32"))
    check_choice("activation", activation, (None, "relu"))
    spec = Conv2dSpec.from_tensors(x, w, bias, stride=stride, padding=padding, dilation=dilation, groups=groups)
    if isinstance(pad_value, bool) or not isinstance(pad_value, (int, np.integer)) or not -128 <= pad_value <= 127:
        raise ValueError(f"pad_value must be an integer in [-128, 127], not {pad_value!r}")
    if bias is None:
        bias = np.zeros(spec.cout, np.int32)
    if out == "int32":
        if activation is not None:
            raise ValueError("activation applies to out='int8' only")
        return spec, bias, None
    if requant is None:
        raise ValueError("out='int8' needs requant=Requant(multiplier, shift, zero_point)")
    if not -128 <= int(requant.zero_point) <= 127:
        raise ValueError(f"requant zero_point must be within [-128, 127], not {requant.zero_point!r}")
    if requant.is_float:
        if requant.multiplier is not None or requant.shift is not None:
            raise ValueError("requant takes either scale (the float requantization) or multiplier and shift, "
                             "not both")
        scale = golden.check_float_scale(requant.scale, spec.cout)
        return spec, bias, Requant(zero_point=int(requant.zero_point), scale=scale)
    if requant.multiplier is None or requant.shift is None:
        raise ValueError("requant needs multiplier and shift (or a scale)")
    mult = np.broadcast_to(np.asarray(requant.multiplier, np.int64), (spec.cout,))
    shift = np.broadcast_to(np.asarray(requant.shift, np.int64), (spec.cout,))
    if np.any(shift < 1) or np.any(shift > 62):
        raise ValueError(f"requant shift must be within [1, 62], not {int(shift.min())}..{int(shift.max())}")
    if np.any(mult < -(1 << 31)) or np.any(mult >= (1 << 31)):
        raise ValueError("requant multiplier must fit int32")
    return spec, bias, Requant(mult, shift, int(requant.zero_point))


def check_float_requant(requant: Requant | None, config: TileConfig) -> None:
    """Refuse a float requantization on a tile built without it (before anything is built)."""
    if requant is not None and requant.is_float and not config.float_requant:
        raise ValueError("Requant(scale=...) (onnxruntime's float requantization) needs a tile built with "
                         "float_requant=True; this tile has float_requant=False")


def requant_kwargs(requant: Requant | None) -> dict:
    """The compiler's keyword arguments for a checked :class:`Requant` (or None: int32 output)."""
    if requant is None:
        return {"multiplier": None, "shift": None, "zero_point": 0}
    if requant.is_float:
        return {"scale": requant.scale, "zero_point": requant.zero_point}
    return {"multiplier": requant.multiplier, "shift": requant.shift, "zero_point": requant.zero_point}


def conv_golden(x, w, bias, spec, requant: Requant | None, *, activation, out, pad_value=0):
    """The golden output of a conv layer checked by :func:`check_conv_args`."""
    acc = golden.conv2d(x, w, bias, stride=spec.stride, padding=spec.padding, dilation=spec.dilation,
                        groups=spec.groups, pad_value=pad_value)
    if out == "int32":
        return acc
    relu = activation == "relu"
    if requant.is_float:
        return golden.requantize_float(acc, requant.scale, requant.zero_point, relu=relu)
    return golden.requantize(acc, requant.multiplier, requant.shift, requant.zero_point, relu=relu)


def conv2d(x, w, bias=None, *, stride=1, padding=0, dilation=1, groups=1, requant: Requant | None = None,
           activation: str | None = None, out: str = "int8", config: TileConfig = DEFAULT_TILE,
           sim: str = "verilator", waves=None, workdir=None, stall_cycles: int = 20_000, server=None,
           pad_value: int = 0):
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
        Per-channel or scalar requantization for ``out="int8"`` (required there): integer
        ``(multiplier, shift)`` or onnxruntime's float32 ``scale``.
    activation : {None, "relu"}
        Applied after requantization (int8 output only).
    out : {"int8", "int32"}
        Requantized int8 output, or the int32 accumulators plus bias.
    pad_value : int
        The int8 value the padding reads as (0; the input's zero point for a quantized model).
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
        :func:`tilelab.reference.golden.conv2d` (+ :func:`~tilelab.reference.golden.requantize`
        or :func:`~tilelab.reference.golden.requantize_float`).
    """
    check_choice("sim", sim, BACKENDS)
    if not isinstance(config, TileConfig):
        raise TypeError(f"config must be a TileConfig, not {config!r}")
    spec, bias, rq = check_conv_args(x, w, bias, stride=stride, padding=padding, dilation=dilation, groups=groups,
                                     requant=requant, activation=activation, out=out, pad_value=pad_value)
    check_float_requant(rq, config)
    program = compile_conv(x, w, bias, spec, config, relu=activation == "relu", out_int32=out == "int32",
                           pad_value=int(pad_value), **requant_kwargs(rq))
    y, run = run_program(program, config, sim=sim, waves=waves, workdir=workdir, stall_cycles=stall_cycles,
                         server=server)
    want = conv_golden(x, w, bias, spec, rq, activation=activation, out=out, pad_value=int(pad_value))
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
