"""Command-line options and checks shared by every command.

Everything a user types is checked here, before any build or simulation: integers and their
limits (worded as :mod:`tilelab.checks` words them), shapes, options that contradict each other or
a given file, output paths (writable, not an input, a suffix the writer honours), run directories
and the chosen simulator. A failed check is a :class:`BadInput`: one line on stderr, exit status 2.
"""

from __future__ import annotations

import os
from dataclasses import fields
from math import prod
from pathlib import Path

import click
from click.core import ParameterSource

from tilelab.checks import check_int

__all__ = ["SEED", "SIM_CHOICES", "TILE_HELP", "BadInput", "Int", "check_input_fits", "check_inputs_outputs",
           "check_output", "check_run_dir", "check_simulator", "given", "ints", "plot_suffixes", "refuse_unless",
           "tile_config", "tile_fields_given"]

#: Help text of every command's ``--tile`` option.
TILE_HELP = "tile fields NAME=VALUE,... (e.g. rows=8,cols=8,ext_bytes=16); see tilelab.pe_models.config.TileConfig"

#: The simulators every ``--sim`` / ``--backend`` option offers.
SIM_CHOICES = ("verilator", "icarus", "amaranth")

_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


class BadInput(click.ClickException):
    """A user's mistake: ``Error: <message>`` on stderr and exit status 2, before anything runs."""

    exit_code = 2


class Int(click.ParamType):
    """An integer option in ``[lo, hi]``, refused in :func:`tilelab.checks.check_int`'s words.

    The name in the message is the option's (``--out-channels`` → ``out channels``), so
    ``--batch 0`` reads ``Invalid value for '--batch': batch must be a positive integer, not 0``.
    """

    name = "integer"

    def __init__(self, lo: int | None = None, hi: int | None = None):
        self.lo, self.hi = lo, hi

    def convert(self, value, param, ctx):
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        else:
            try:
                number = int(str(value).strip(), 10)
            except ValueError:
                self.fail(f"{_what(param)} must be an integer, not {value!r}", param, ctx)
        try:
            return check_int(_what(param), number, self.lo, self.hi)
        except ValueError as error:
            self.fail(str(error), param, ctx)


def _what(param) -> str:
    return (param.name or "value").replace("_", " ") if param is not None else "value"


#: ``--seed``: a non-negative integer (numpy's generators take no negative seeds).
SEED = Int(lo=0)


def ints(text: str, option: str, *, count: int | tuple[int, ...] | None = None, lo: int | None = None,
         what: str = "integers") -> list[int]:
    """``"1,2,3"`` → ``[1, 2, 3]``: comma-separated integers.

    Parameters
    ----------
    text : str
        What the user typed.
    option : str
        The option's name in the message (``"--shape"``).
    count : int or tuple of int, optional
        How many values (one count, or the counts allowed).
    lo : int, optional
        The least value allowed.
    what : str
        What the values are called in the count message (``"integers (N or H,W)"``).

    Returns
    -------
    list of int

    Raises
    ------
    BadInput
        For text that is not integers, the wrong count, or a value below ``lo``.
    """
    try:
        values = [int(v, 10) for v in text.split(",")]
    except ValueError:
        raise BadInput(f"{option} must be comma-separated integers, not {text!r}") from None
    counts = (count,) if isinstance(count, int) else count
    if counts is not None and len(values) not in counts:
        need = " or ".join(str(c) for c in counts)
        raise BadInput(f"{option} needs {need} comma-separated {what}, not {text!r}")
    if lo is not None and min(values) < lo:
        kind = {0: "non-negative integers", 1: "positive integers"}.get(lo, f"integers >= {lo}")
        raise BadInput(f"{option} must be {kind}, not {text!r}")
    return values


def given(ctx: click.Context, name: str) -> bool:
    """Whether the option ``name`` (its parameter name) was given, not left at its default."""
    return ctx.get_parameter_source(name) not in (None, ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP)


def refuse_unless(ctx: click.Context, condition: bool, names, why: str) -> None:
    """Refuse each option of ``names`` that was given while ``condition`` is false: ``--x <why>``.

    So an option never silently does nothing: it takes effect or is refused by name.

    Parameters
    ----------
    ctx : click.Context
    condition : bool
        Whether the options take effect.
    names : iterable of str
        Parameter names (``"weight_load"``).
    why : str
        The rest of the message after the option's flag.

    Raises
    ------
    BadInput
    """
    if condition:
        return
    for name in names:
        if given(ctx, name):
            raise BadInput(f"{_flag(ctx, name)} {why}")


def _flag(ctx, name) -> str:
    for param in ctx.command.params:
        if param.name == name:
            return param.opts[0]
    return name


def _same(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and a.samefile(b)
    except OSError:
        return False


def _writable(folder: Path) -> bool:
    """Whether files can be created in ``folder``."""
    return os.access(folder, os.W_OK | os.X_OK)


def _one_of(items) -> str:
    items = list(items)
    return " or ".join(items) if len(items) <= 2 else "one of " + ", ".join(items)


def check_output(option: str, path, *, suffixes=None) -> Path:
    """Check that the file ``path`` can be written, before anything runs.

    Parameters
    ----------
    option : str
        The option's name in the message (``"--json"``).
    path : path-like
    suffixes : sequence of str, optional
        The suffixes the writer honours (lower case, with the dot); default any.

    Returns
    -------
    Path

    Raises
    ------
    BadInput
        A suffix not in ``suffixes``, a path that is a folder, a folder that does not exist or is
        a file, or a place that cannot be written.
    """
    p = Path(path)
    if suffixes is not None and p.suffix.lower() not in suffixes:
        raise BadInput(f"{option} {str(path)!r}: the file name must end in {_one_of(suffixes)}")
    if p.is_dir():
        raise BadInput(f"{option} {str(path)!r} is a folder; name a file")
    folder = p.parent
    if not folder.exists():
        raise BadInput(f"{option} {str(path)!r}: folder {str(folder)!r} does not exist")
    if not folder.is_dir():
        raise BadInput(f"{option} {str(path)!r}: {str(folder)!r} is not a folder")
    if not _writable(folder) or (p.exists() and not os.access(p, os.W_OK)):
        raise BadInput(f"{option} {str(path)!r} cannot be written (permission denied)")
    return p


def check_inputs_outputs(inputs: dict, outputs: dict, suffixes: dict | None = None) -> None:
    """Check every output path of a command against the others and against its input files.

    Parameters
    ----------
    inputs : dict
        Option name → input file path (None when not given).
    outputs : dict
        Option name → output file path (None when not given); each is checked with
        :func:`check_output`.
    suffixes : dict, optional
        Option name → the suffixes its writer honours.

    Raises
    ------
    BadInput
        An output that cannot be written, that would overwrite an input file, or two outputs
        naming the same file.
    """
    suffixes = suffixes or {}
    seen: dict[Path, str] = {}
    for option, path in outputs.items():
        if path is None:
            continue
        p = check_output(option, path, suffixes=suffixes.get(option))
        for in_option, in_path in inputs.items():
            if in_path is not None and (_same(p, Path(in_path)) or p.resolve() == Path(in_path).resolve()):
                raise BadInput(f"{option} {str(path)!r} would overwrite the {in_option} file")
        key = p.resolve()
        if key in seen:
            raise BadInput(f"{option} and {seen[key]} name the same file {str(path)!r}")
        seen[key] = option


def check_run_dir(option: str, path, *, marker: str = "run.json") -> Path:
    """Check that ``path`` can be a run directory: new, empty, or one that holds a run (``marker``).

    A folder with other files in it is not ours and is refused, so nothing of the user's is
    replaced; so is a path under a file, or a folder that cannot be written.

    Parameters
    ----------
    option : str
        The option's name in the message (``"--out"``).
    path : path-like
    marker : str
        The file that makes a folder a run directory.

    Returns
    -------
    Path

    Raises
    ------
    BadInput
        For any of the above.
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise BadInput(f"{option} {str(path)!r} is a file, not a folder")
    if p.is_dir():
        if not (p / marker).exists() and any(p.iterdir()):
            raise BadInput(f"{option} {str(path)!r} is a folder that holds no tilelab run ({marker}) and is not "
                           f"empty; choose a new or empty folder")
        if not _writable(p):
            raise BadInput(f"{option} {str(path)!r} cannot be written (permission denied)")
        return p
    parent = p.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise BadInput(f"{option} {str(path)!r}: {str(parent)!r} is not a folder")
    if not _writable(parent):
        raise BadInput(f"{option} {str(path)!r} cannot be created in {str(parent)!r} (permission denied)")
    return p


def check_simulator(option: str, sim: str, waves=None) -> None:
    """Check that the simulator ``sim`` is installed and can write the waveform file ``waves``.

    Verilator writes ``.vcd`` or ``.fst`` (by the suffix; FST needs the lz4 headers), Icarus and
    Amaranth's simulator write VCD only, so they need a ``.vcd`` name.

    Parameters
    ----------
    option : str
        The option that chose the simulator (``"--sim"``, ``"--backend"``).
    sim : str
        One of :data:`SIM_CHOICES`.
    waves : path-like, optional
        The waveform file asked for.

    Raises
    ------
    BadInput
        Icarus chosen but not installed, a waveform suffix the simulator does not write, FST
        without the lz4 headers.
    """
    from tilelab.sim import icarus_available

    # (the suffix first: it is wrong whether or not the simulator is installed)
    allowed = (".vcd", ".fst") if sim == "verilator" else (".vcd",)
    suffix = Path(waves).suffix.lower() if waves is not None else None
    if waves is not None and suffix not in allowed:
        raise BadInput(f"--waves {str(waves)!r}: {sim} writes {_one_of(allowed)} waveforms; "
                       f"name the file with that suffix")
    if sim == "icarus" and not icarus_available():
        raise BadInput(f"{option} icarus: Icarus Verilog (iverilog, vvp) is not installed; apt-get install iverilog, "
                       f"or choose --sim verilator")
    if waves is None:
        return
    from tilelab.sim.builders import fst_supported

    if suffix == ".fst" and not fst_supported():
        raise BadInput(f"--waves {str(waves)!r}: FST waveforms need the lz4 headers (apt-get install liblz4-dev); "
                       f"or name a .vcd file")


def plot_suffixes() -> tuple[str, ...]:
    """The file suffixes matplotlib can save a figure as (``.png``, ``.pdf``, ``.svg``, ...)."""
    from matplotlib.backend_bases import FigureCanvasBase

    return tuple(sorted(f".{s}" for s in FigureCanvasBase.get_supported_filetypes()))


def check_input_fits(option: str, shape, capacity: int, where: str) -> None:
    """Refuse an int8 tensor of ``shape`` larger than the ``capacity`` bytes of memory it is loaded into.

    Parameters
    ----------
    option : str
        The option that sets the size (``"--image-size"``).
    shape : sequence of int
    capacity : int
        Bytes; from the hardware's configuration, so the limit named is the hardware's.
    where : str
        What the memory is called (``"the external memory of the tile"``).

    Raises
    ------
    BadInput
        ``"<option>: a tensor NxHxWxC (B bytes) does not fit <where> (C bytes)"``.
    """
    need = prod(shape)
    if need > capacity:
        dims = "x".join(str(v) for v in shape)
        raise BadInput(f"{option}: a tensor {dims} ({need:,} bytes) does not fit {where} ({capacity:,} bytes)")


def tile_config(config, text):
    """``config`` with the fields that ``--tile NAME=VALUE,...`` text sets.

    Every name must be a field of the configuration and every value of its kind (integers in any
    base Python reads, booleans as true/false, 1/0, yes/no, on/off); the result is checked like any
    new configuration. Anything else is a :class:`click.BadParameter` naming the item.
    """
    known = {f.name: f.type for f in fields(config)}
    changes = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or key not in known:
            raise click.BadParameter(f"{item!r}: expected NAME=VALUE with NAME one of {', '.join(sorted(known))}",
                                     param_hint="--tile")
        if key in changes:
            raise click.BadParameter(f"{key} is given twice", param_hint="--tile")
        if key == "mem_impl":
            changes[key] = value
        elif isinstance(getattr(config, key), bool):      # depthwise, float_requant
            if value.lower() not in _TRUE + _FALSE:
                raise click.BadParameter(f"{key} must be true or false, not {value!r}", param_hint="--tile")
            changes[key] = value.lower() in _TRUE
        else:
            try:
                changes[key] = int(value, 0)
            except ValueError:
                raise click.BadParameter(f"{key} must be an integer, not {value!r}", param_hint="--tile") from None
    try:
        return config.replace(**changes)
    except (TypeError, ValueError) as exc:
        raise click.BadParameter(str(exc), param_hint="--tile") from None


def tile_fields_given(text) -> set[str]:
    """The field names a ``--tile`` text sets (for options that contradict them)."""
    return {item.partition("=")[0].strip() for item in text.split(",")} if text else set()
