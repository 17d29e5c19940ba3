"""The one run pipeline: memory images in, the unit's RTL run, dumps and counters out.

:func:`run_image` is what every layer call uses, whatever the unit: it writes each memory's image
(or, on Amaranth's simulator, builds the memories with it), runs the one bench
(:func:`tilelab.drive.bench.run_bench`) in a simulator process — or hands the images to a running
:class:`~tilelab.drive.server.SimServer` — and returns the dumped words and the counters as a
:class:`Run`.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tilelab.sim import SimResult, simulate
from tilelab.sim.memimage import read_hex, write_hex

from .unit import Unit

__all__ = ["Run", "image_words", "run_image"]

_BENCH = "tilelab.drive.bench:run_bench"


@dataclass(frozen=True)
class Run:
    """What one run of a unit returned.

    Attributes
    ----------
    dumps : dict
        ``{memory name: bytes}``: each dumped memory from the first word of its range.
    counters : dict
        The unit's counters (``run_seconds`` removed).
    result : SimResult
        The simulation's result (``total_seconds`` includes any build and process start).
    run_seconds : float
        Wall seconds from start to done (no reset, no dump).
    """

    dumps: dict
    counters: dict
    result: SimResult
    run_seconds: float

    def region(self, memory: str, lo_word: int, addr: int, size: int, word_bytes: int) -> np.ndarray:
        """``size`` bytes at byte ``addr`` of ``memory``, dumped from word ``lo_word``."""
        offset = addr - lo_word * word_bytes
        return np.frombuffer(self.dumps[memory], np.uint8)[offset:offset + size]


def image_words(image, word_bytes: int) -> list[int]:
    """An image (bytes from address 0) as little-endian words, the last one zero-padded."""
    raw = np.frombuffer(bytes(image), np.uint8) if not isinstance(image, np.ndarray) else image.view(np.uint8).ravel()
    raw = np.concatenate([raw, np.zeros((-len(raw)) % word_bytes, np.uint8)])
    return [int.from_bytes(raw[i:i + word_bytes].tobytes(), "little") for i in range(0, len(raw), word_bytes)]


def run_image(unit: Unit, images: dict, dumps: dict, *, sim: str = "verilator", inputs: dict | None = None,
              waves=None, workdir=None, stall_cycles: int = 20_000, server=None) -> Run:
    """Load ``images`` into ``unit``'s memories, run it until done, and read back ``dumps``.

    Parameters
    ----------
    unit : Unit
        The unit to run.
    images : dict
        ``{memory name: bytes or uint8 array}``, each from address 0; memories not named start
        empty.
    dumps : dict
        ``{memory name: (lo, hi)}``: the inclusive word range of each memory to read back.
    sim : {"verilator", "icarus", "amaranth"}
        Simulator (one of ``unit.sims``).
    inputs : dict, optional
        Input ports held at these values during the run.
    waves : path, optional
        Waveform file.
    workdir : path, optional
        Keep the images, dumps and log there; otherwise a temporary folder, removed after a
        successful run and kept (named in the error) after a failed one.
    stall_cycles : int
        The watchdog's limit: no progress counter moved for this many cycles.
    server : SimServer, optional
        A running simulator process of this unit: the run goes there (``sim``, ``waves`` and
        ``workdir`` are the server's own).

    Returns
    -------
    Run
    """
    unknown = sorted((set(images) | set(dumps)) - {m.name for m in unit.memories})
    if unknown:
        raise ValueError(f"the {unit.name} has no memory {unknown[0]!r}; it has {[m.name for m in unit.memories]!r}")
    if server is not None:
        return server.run_image(unit, images, dumps, inputs=inputs, stall_cycles=stall_cycles)
    unit.check_sim(sim)
    if workdir is None:
        work = Path(tempfile.mkdtemp(prefix=f"tilelab-{unit.name}-"))
        run = _run_in(unit, images, dumps, sim, inputs, waves, work, stall_cycles)
        shutil.rmtree(work, ignore_errors=True)
        return run
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    return _run_in(unit, images, dumps, sim, inputs, waves, work, stall_cycles)


def _run_in(unit, images, dumps, sim, inputs, waves, work, stall_cycles) -> Run:
    plusargs = {}
    for name, (lo, hi) in dumps.items():
        plusargs.update({f"{name}_dump": str(work / f"{name}_dump.hex"), f"{name}_dump_lo": str(lo),
                         f"{name}_dump_hi": str(hi)})
    args = {"plan": unit.plan(), "dumps": list(dumps), "inputs": dict(inputs or {}), "stall_cycles": stall_cycles}
    if sim == "amaranth":
        init = {name: image_words(image, unit.memory(name).word_bytes) for name, image in images.items()}
        res = simulate(unit.build(init), _BENCH, backend="amaranth", workdir=work, plusargs=plusargs, waves=waves,
                       args=args)
    else:
        for name, image in images.items():
            path = work / f"{name}.hex"
            write_hex(path, image, unit.memory(name).word_bytes)
            plusargs[f"{name}_init"] = str(path)
        res = simulate(unit.design(), _BENCH, backend=sim, workdir=work, plusargs=plusargs, waves=waves, args=args)
    counters = dict(res.value)
    run_seconds = float(counters.pop("run_seconds"))
    out = {name: read_hex(work / f"{name}_dump.hex", unit.memory(name).word_bytes) for name in dumps}
    return Run(out, counters, res, run_seconds)
