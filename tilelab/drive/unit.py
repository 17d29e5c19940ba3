"""What the driver needs to know about a simulated unit: :class:`Unit` and :class:`Memory`.

Every unit the host runs — the compute tile, the element-wise unit, the mesh of tiles, the bulk
all-reduce harness — is described once by a :class:`Unit`: how to build its design, which
memories the host loads and dumps, which ports start it and say it is done, which counters move
while it makes progress, which counters are read back, and how a stall is explained. The one run
pipeline (:func:`tilelab.drive.run.run_image`, :class:`tilelab.drive.server.SimServer`) and the one
bench (:mod:`tilelab.drive.bench`) work from that description alone; adding a unit adds a
description, not another copy of the pipeline.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from tilelab.sim import BACKENDS
from tilelab.sim.verilog import Design

from .designs import cached_design

__all__ = ["Memory", "Unit"]


@dataclass(frozen=True)
class Memory:
    """A memory of a unit that the host loads (and maybe dumps) in bulk.

    Attributes
    ----------
    name : str
        The memory model's name: its plusargs are ``+<name>_init``, ``+<name>_dump``,
        ``+<name>_dump_lo`` / ``_hi`` (``tilelab/hdl/verilog/tilelab_nodemem.v``).
    word_bytes : int
        Bytes per memory word (one line of its image file).
    """

    name: str
    word_bytes: int


@dataclass(frozen=True)
class Unit:
    """One simulated unit, described once for the driver.

    Attributes
    ----------
    name : str
        What errors and results call it (``"tile"``, ``"eltwise"``, ``"mesh"``, ...); also the
        Verilog cache's file prefix.
    key : str
        The configuration's key (the Verilog cache key).
    top : str
        Top module name of its Verilog.
    build : callable
        ``build(init)`` returns the component; ``init`` is None for the Verilog design, or
        ``{memory name: [word, ...]}`` for Amaranth's simulator (memories modelled in Amaranth).
    memories : tuple of Memory
        Every memory the host may load or dump.
    counters : tuple of str
        Ports read back after done (when ``read`` is None).
    progress : tuple of str
        Ports whose movement means the unit makes progress (the watchdog's).
    diagnose : str
        ``"module:function"`` of ``async def diagnose(io, **args) -> str``: what waited on what.
    read : str, optional
        ``"module:function"`` of ``async def read(io, **args) -> dict``, reading the counters
        through a read-out port instead of by name.
    args : dict
        JSON-able keyword arguments of ``diagnose`` and ``read``.
    idle : tuple of str
        Input ports set to 0 before reset.
    dump : str
        The port whose one-cycle pulse makes every memory write its dump file.
    reload : str, optional
        The port whose pulse clears every memory and reloads its init file (a unit without one
        cannot be served by a long-lived simulator process).
    sims : tuple of str
        The simulators that can run it.
    """

    name: str
    key: str
    top: str
    build: Callable
    memories: tuple[Memory, ...]
    counters: tuple[str, ...]
    progress: tuple[str, ...]
    diagnose: str
    read: str | None = None
    args: dict = field(default_factory=dict)
    idle: tuple[str, ...] = ()
    dump: str = "ext_dump"
    reload: str | None = None
    sims: tuple[str, ...] = BACKENDS

    def memory(self, name: str) -> Memory:
        """The memory called ``name``."""
        for mem in self.memories:
            if mem.name == name:
                return mem
        raise KeyError(f"the {self.name} has no memory {name!r}; it has {[m.name for m in self.memories]!r}")

    def design(self) -> Design:
        """The unit's Verilog (converted once per configuration and tilelab version, then cached)."""
        return cached_design(self.name, self.key, lambda: self.build(None), self.top)

    def plan(self) -> dict:
        """What the bench needs to know (JSON-able: it travels to the simulator process)."""
        return {"unit": self.name, "counters": list(self.counters), "progress": list(self.progress),
                "diagnose": self.diagnose, "read": self.read, "args": dict(self.args), "idle": list(self.idle),
                "dump": self.dump, "reload": self.reload, "memories": [m.name for m in self.memories]}

    def check_sim(self, sim: str) -> None:
        """Refuse a simulator that cannot run this unit, naming the ones that can."""
        if sim not in self.sims:
            raise ValueError(f"sim must be one of {', '.join(map(repr, self.sims))} for the {self.name}, "
                             f"not {sim!r}")
