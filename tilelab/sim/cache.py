"""A process-safe on-disk cache of simulator builds.

A build is keyed by a hash of everything that determines it (Verilog text, extra sources, flags,
tool versions). The first process to ask builds into a temporary folder and renames it into
place under a file lock; every later request, from this or another process, is a hit.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock

__all__ = ["BuildCache", "CacheEntry", "CacheStats", "clear_cache", "default_cache_dir", "list_cache", "stats",
           "write_info"]


def default_cache_dir() -> Path:
    """Return the cache folder: ``$TILELAB_CACHE_DIR``, else ``$XDG_CACHE_HOME/tilelab``, else ``~/.cache/tilelab``."""
    if env := os.environ.get("TILELAB_CACHE_DIR"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tilelab"


@dataclass
class CacheStats:
    """Hits and misses of the build cache in this process."""

    hits: int = 0
    misses: int = 0
    build_seconds: float = 0.0
    keys: list[str] = field(default_factory=list)


stats = CacheStats()


class BuildCache:
    """Builds keyed by content hash, safe under concurrent processes.

    Parameters
    ----------
    root : path-like, optional
        Cache folder; :func:`default_cache_dir` when omitted.
    """

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else default_cache_dir()

    @staticmethod
    def key(kind: str, parts: dict) -> str:
        """Return the hash key of a build of ``kind`` described by JSON-able ``parts``."""
        text = json.dumps({"kind": kind, **parts}, sort_keys=True, default=str)
        return f"{kind}-{hashlib.sha256(text.encode()).hexdigest()[:24]}"

    def get_or_build(self, key: str, build: Callable[[Path], None], *, marker: str = "BUILD_OK") -> tuple[Path, bool]:
        """Return ``(folder, hit)`` for ``key``, calling ``build(tmpdir)`` on a miss.

        ``build`` fills a fresh temporary folder; on success it is renamed to the final folder
        and a marker file written last, so a crashed build is never taken for a finished one.
        """
        import time

        final = self.root / key
        if (final / marker).exists():
            stats.hits += 1
            return final, True
        self.root.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.root / f"{key}.lock")):
            if (final / marker).exists():
                stats.hits += 1
                return final, True
            if final.exists():
                shutil.rmtree(final)
            tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=self.root))
            start = time.perf_counter()
            try:
                build(tmp)
                (tmp / marker).write_text("ok\n")
                os.replace(tmp, final)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            stats.misses += 1
            stats.build_seconds += time.perf_counter() - start
            stats.keys.append(key)
        return final, False


def write_info(folder: Path, info: dict) -> None:
    """Describe a build in its folder (``info.json``: what it is, when it was made, phase times)."""
    (Path(folder) / "info.json").write_text(json.dumps({**info, "created": time.time()}, default=str))


@dataclass(frozen=True)
class CacheEntry:
    """One entry of the build cache, as :func:`list_cache` finds it.

    Attributes
    ----------
    name : str
        The entry's key (a build folder) or file name (converted Verilog).
    kind : str
        ``"verilator"``, ``"icarus"``, ``"verilator-runtime"``, ``"verilog"`` (a unit converted
        to Verilog) or ``"unknown"``.
    top : str
        The unit (``tile``, ``mesh``, ...) or top module it holds, where known.
    bytes : int
        Size on disk.
    created : float
        Modification time (seconds since the epoch).
    path : Path
        Where it is.
    """

    name: str
    kind: str
    top: str
    bytes: int
    created: float
    path: Path


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def list_cache(root: str | os.PathLike | None = None) -> list[CacheEntry]:
    """Every finished build and converted design in the cache, oldest first."""
    root = Path(root) if root is not None else default_cache_dir()
    found = []
    if not root.is_dir():
        return found
    for path in root.iterdir():
        if path.name.startswith(".") or path.suffix == ".lock":
            continue
        if path.name == "verilog" and path.is_dir():
            for v in path.glob("*.v"):
                ports = v.with_suffix(".ports.json")
                size = _size(v) + (_size(ports) if ports.exists() else 0)
                found.append(CacheEntry(v.name, "verilog", v.name.split("-")[0], size, v.stat().st_mtime, v))
            continue
        if not path.is_dir() or not (path / "BUILD_OK").exists():
            continue
        info = {}
        if (path / "info.json").exists():
            try:
                info = json.loads((path / "info.json").read_text())
            except ValueError:
                info = {}
        kind = info.get("kind") or path.name.rsplit("-", 1)[0]
        sources = (v.stem for v in sorted(path.glob("*.v")) if not v.name.startswith("extra"))
        top = (info.get("label") or "").split(" ")[0] or info.get("top") or next(sources, "")
        found.append(CacheEntry(path.name, kind if kind in ("verilator", "icarus", "verilator-runtime") else "unknown",
                                str(top), _size(path), path.stat().st_mtime, path))
    return sorted(found, key=lambda e: e.created)


def clear_cache(root: str | os.PathLike | None = None) -> tuple[int, int]:
    """Remove every build and converted design from the cache; return ``(entries, bytes)`` removed.

    Builds in progress in other processes (their temporary folders and locks) are left alone.
    """
    entries = list_cache(root)
    for entry in entries:
        if entry.path.is_dir():
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            entry.path.unlink(missing_ok=True)
            entry.path.with_suffix(".ports.json").unlink(missing_ok=True)
    return len(entries), sum(e.bytes for e in entries)
