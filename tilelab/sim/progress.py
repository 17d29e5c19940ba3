"""Visible waiting: what a build is building, its phase and the time it has taken.

A first build of a big unit takes minutes. :class:`BuildProgress` says so while it happens: on a
terminal one status line redrawn every second (``building tile_top (Verilator): C++ compile
0:42, total 1:05``), elsewhere (a log file, CI) one line when each phase starts and one when the
build ends. ``TILELAB_BUILD_PROGRESS=0`` silences it.
"""

from __future__ import annotations

import os
import sys
import threading
import time

__all__ = ["BuildProgress"]


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m}:{s:02d}"


class BuildProgress:
    """Report the phases of one build on ``stream`` (standard error by default).

    Parameters
    ----------
    what : str
        What is being built, e.g. ``"tile_top (Verilator)"``.
    stream : file, optional
        Where to write; standard error when omitted.
    enabled : bool, optional
        Whether to write anything; by default unless ``TILELAB_BUILD_PROGRESS=0``.

    Attributes
    ----------
    seconds : dict of str to float
        The wall time of every finished phase, by phase name.

    Use as a context manager; call :meth:`phase` at the start of each phase.
    """

    def __init__(self, what: str, *, stream=None, enabled: bool | None = None):
        self.what = what
        self.stream = sys.stderr if stream is None else stream
        self.enabled = os.environ.get("TILELAB_BUILD_PROGRESS", "1") != "0" if enabled is None else enabled
        self.tty = self.enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.seconds: dict[str, float] = {}
        self._phase = None
        self._phase_start = self._start = time.perf_counter()
        self._stop = threading.Event()
        self._thread = None
        self._lock = threading.Lock()

    def __enter__(self):
        self._start = time.perf_counter()
        if self.tty:
            self._thread = threading.Thread(target=self._redraw, daemon=True)
            self._thread.start()
        return self

    def _write(self, text: str):
        with self._lock:
            self.stream.write(text)
            self.stream.flush()

    def _status(self) -> str:
        now = time.perf_counter()
        return (f"building {self.what}: {self._phase or 'starting'} {_clock(now - self._phase_start)}, "
                f"total {_clock(now - self._start)}")

    def _redraw(self):
        while not self._stop.wait(1.0):
            self._write("\r\033[K" + self._status())

    def _end_phase(self):
        if self._phase is not None:
            self.seconds[self._phase] = time.perf_counter() - self._phase_start

    def phase(self, name: str) -> None:
        """Start phase ``name`` (ending the previous one)."""
        self._end_phase()
        self._phase, self._phase_start = name, time.perf_counter()
        if self.enabled and not self.tty:
            self._write(f"tilelab: building {self.what}: {name} ...\n")

    def __exit__(self, exc_type, exc, tb):
        self._end_phase()
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if not self.enabled:
            return
        total = time.perf_counter() - self._start
        parts = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in self.seconds.items())
        verb = "built" if exc_type is None else "failed to build"
        self._write(("\r\033[K" if self.tty else "") + f"tilelab: {verb} {self.what} in {total:.0f} s ({parts})\n")
