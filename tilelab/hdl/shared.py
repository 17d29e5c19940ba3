"""Shared modules: elaborate a component once and instantiate its Verilog module many times.

Amaranth writes one Verilog module per *instance* of a component, so a mesh of 16 identical tile
nodes becomes 16 copies of the tile in the Verilog, and Verilator compiles (and the simulation's
instruction cache holds) 16 copies of the same C++. A :class:`SharedModules` registry converts a
component to Verilog once, under a module name, and returns an ``Instance`` of that module for
each use; the component object itself stays the *proxy* the parent connects to (its port signals
are wired to the instance's ports). Every instance must therefore be identical: whatever differs
per instance (coordinates, names) has to be an input port. Verilator still inlines every module by
default (one copy of the C++ per instance); ``instance(..., inline=False)`` keeps a module's C++ to
one copy.

The registry's modules are appended to the design's Verilog by
:func:`tilelab.sim.verilog.to_verilog` when the top component has a ``shared_modules``
attribute. Shared modules exist only in Verilog: Amaranth's own simulator cannot run a design
that uses them.
"""

import hashlib
import re

from amaranth.back import verilog
from amaranth.hdl import ClockSignal, Instance, ResetSignal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In

__all__ = ["SharedModules"]


class SharedModules:
    """Verilog modules converted once and instantiated by name.

    Attributes
    ----------
    texts : dict of str to str
        Module name → its Verilog (the module and its submodules).
    """

    def __init__(self):
        self.texts: dict[str, str] = {}
        self.instances: dict[str, int] = {}

    def module_name(self, kind: str, key: str) -> str:
        """The module name for a component of ``kind`` whose configuration is ``key``."""
        if not kind.isidentifier():
            raise ValueError(f"shared module kind must be an identifier, not {kind!r}")
        return f"{kind}_{hashlib.sha256(key.encode()).hexdigest()[:10]}"

    def instance(self, component: wiring.Component, *, kind: str, key: str, domain: str = "sync",
                 inline: bool = True) -> Instance:
        """An ``Instance`` of ``component``'s shared module, its ports wired to ``component``'s members.

        Parameters
        ----------
        component : wiring.Component
            The proxy: the parent drives and reads its members as if it were a submodule; it is
            elaborated only the first time its module is needed.
        kind : str
            Module name prefix (a Verilog identifier).
        key : str
            Everything that determines the component's hardware; components with equal ``kind``
            and ``key`` must elaborate to the same module.
        domain : str
            The clock domain whose clock and reset drive the instance's ``sync`` domain.
        inline : bool
            ``False`` marks the module ``no_inline_module`` for Verilator, which then compiles its
            C++ once for all instances instead of once per instance (a 2x2 mesh of default tiles:
            76 MB of C++ instead of 132 MB). For big modules used many times; small ones (routers)
            simulate faster inlined.
        """
        if not isinstance(component, wiring.Component):
            raise TypeError(f"a shared module must be a wiring.Component, not {component!r}")
        name = self.module_name(kind, key)
        component._MustUse__silence = True      # a proxy: its hardware is the instance
        if name not in self.texts:
            text = verilog.convert(component, name=name, emit_src=False)
            if not inline:
                body = text.index(");", text.index(f"module {name}(")) + 2
                text = text[:body] + "\n  /*verilator no_inline_module*/" + text[body:]
            self.texts[name] = text
        self.instances[name] = self.instances.get(name, 0) + 1
        text = self.texts[name]
        head = text[text.index(f"module {name}("):]
        head = head[:head.index(");")]
        ports = {}
        for port, signal in (("clk", ClockSignal(domain)), ("rst", ResetSignal(domain))):
            if re.search(rf"\b{port}\b", head):
                ports[f"i_{port}"] = signal
        for path, member, value in component.signature.flatten(component):
            port = "__".join(str(p) for p in path)
            ports[("i_" if member.flow == In else "o_") + port] = Value.cast(value)
        return Instance(name, **ports)

    def verilog(self) -> str:
        """All shared modules' Verilog, in the order they were first used."""
        return "".join(self.texts.values())
