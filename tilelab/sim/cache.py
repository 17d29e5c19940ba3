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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock

__all__ = ["BuildCache", "CacheStats", "default_cache_dir", "stats"]


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
