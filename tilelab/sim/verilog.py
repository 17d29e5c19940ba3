"""Verilog generation from Amaranth components."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from amaranth.back import verilog as _verilog
from amaranth.lib import wiring

__all__ = ["Design", "to_verilog", "port_names"]


@dataclass(frozen=True)
class Design:
    """A component converted to Verilog, ready for a simulator build.

    Attributes
    ----------
    top : str
        Name of the top-level module.
    verilog : str
        The generated Verilog.
    extra_sources : tuple of Path
        Hand-written Verilog files the design instantiates (e.g. memory models).
    ports : tuple of (str, int)
        Top-level ports and their widths, as flattened Verilog names.
    """

    top: str
    verilog: str
    extra_sources: tuple[Path, ...] = field(default_factory=tuple)
    ports: tuple[tuple[str, int], ...] = field(default_factory=tuple)

    def sources_text(self) -> str:
        """Return the Verilog and every extra source, concatenated, for hashing."""
        return self.verilog + "".join(Path(p).read_text() for p in self.extra_sources)


def port_names(component: wiring.Component) -> dict[str, object]:
    """Map flattened Verilog port names (``a__b__c``) of ``component`` to its Amaranth values."""
    names = {}
    for path, _member, value in component.signature.flatten(component):
        names["__".join(str(p) for p in path)] = value
    return names


def to_verilog(component: wiring.Component, *, name: str = "top",
               extra_sources: tuple[Path, ...] | list[Path] = ()) -> Design:
    """Convert ``component`` to Verilog with ``amaranth.back.verilog``.

    Parameters
    ----------
    component : wiring.Component
        The design. Extra Verilog files may also be announced by the component itself through
        an attribute ``verilog_sources`` (a sequence of paths).
    name : str
        Name of the top module.
    extra_sources : sequence of Path
        Hand-written Verilog files to compile alongside.
    """
    if not isinstance(component, wiring.Component):
        raise TypeError(f"only wiring.Component designs can be simulated, not {component!r}")
    if not name.isidentifier():
        raise ValueError(f"top module name must be a Verilog identifier, not {name!r}")
    text = _verilog.convert(component, name=name, emit_src=False)
    extra = tuple(Path(p) for p in (*getattr(component, "verilog_sources", ()), *extra_sources))
    # Behavioural Verilog models that the design instantiates (tilelab/hdl/verilog/<module>.v).
    from tilelab.hdl.memories import VERILOG_DIR

    for model in sorted(VERILOG_DIR.glob("*.v")):
        if re.search(rf"^\s*{model.stem}\b", text, re.M) and model not in extra:
            extra += (model,)
    from amaranth.hdl import Value

    ports = [(p, 1) for p in ("clk", "rst") if re.search(rf"^\s*input\s+(wire\s+)?{p}\s*;", text, re.M)]
    for port, value in port_names(component).items():
        ports.append((port, len(Value.cast(value))))
    return Design(top=name, verilog=text, extra_sources=extra, ports=tuple(ports))
