"""The Verilog of a unit, converted once per configuration and tilelab version, then cached."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from tilelab.sim.cache import default_cache_dir
from tilelab.sim.verilog import Design

__all__ = ["cached_design"]

def _sources() -> list[Path]:
    import tilelab

    src = Path(tilelab.__file__).parent
    # The Verilog depends on the HDL blocks, the formats, the NoC and the unit models only.
    return [p for sub in ("hdl", "noc", "pe_models")
            for p in sorted((src / sub).rglob("*.py")) + sorted((src / sub).rglob("*.v"))]


def _verilog_cache_path(kind: str, key: str) -> Path:
    h = hashlib.sha256(key.encode())
    for p in _sources():
        h.update(p.read_bytes())
    return default_cache_dir() / "verilog" / f"{kind}-{h.hexdigest()[:24]}.v"


def _sources_changed_since_loaded() -> bool:
    """A source file is newer than this process's modules: the files on disk (the cache key) may
    not be the code in memory (the Verilog this process would convert), so neither is cached."""
    import tilelab

    return any(p.stat().st_mtime > tilelab.LOADED_AT for p in _sources())


def cached_design(kind: str, key: str, build, top: str) -> Design:
    """Verilog of ``build()`` (a component), converted once per ``key`` and tilelab version, then cached.

    If a source file of the hardware changed after this process loaded its modules (an edit while
    a long run is going), the Verilog is converted from the code in memory and not cached, so that
    a cache entry never holds the Verilog of other sources than its key's.

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

    Returns
    -------
    Design
        The Verilog, with the memory models' Verilog sources as extra sources.
    """
    from tilelab.hdl.memories import VERILOG_DIR
    from tilelab.sim.verilog import to_verilog

    models = tuple(sorted(VERILOG_DIR.glob("*.v")))
    if _sources_changed_since_loaded():
        design = to_verilog(build(), name=top)
        return Design(top=design.top, verilog=design.verilog, extra_sources=models, ports=design.ports)
    path = _verilog_cache_path(kind, key)
    ports_path = path.with_suffix(".ports.json")
    if path.exists() and ports_path.exists():
        ports = tuple(tuple(p) for p in json.loads(ports_path.read_text()))
        return Design(top=top, verilog=path.read_text(), extra_sources=models, ports=ports)
    from tilelab.sim.progress import BuildProgress

    with BuildProgress(f"{top} ({kind})") as progress:
        progress.phase("Amaranth to Verilog")
        design = to_verilog(build(), name=top)
    path.parent.mkdir(parents=True, exist_ok=True)
    for target, text in ((ports_path, json.dumps(design.ports)), (path, design.verilog)):
        tmp = target.with_suffix(f".{time.time_ns()}.tmp")
        tmp.write_text(text)
        tmp.replace(target)
    return Design(top=design.top, verilog=design.verilog, extra_sources=models, ports=design.ports)
