"""Verilog generation from Amaranth components."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from amaranth.back import verilog as _verilog
from amaranth.lib import wiring

from tilelab.hdl.lint import waive_in_file

from .netcheck import fast_comb_check

__all__ = ["Design", "clocked_wrapper", "port_names", "to_verilog", "verilog_models"]


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
        an attribute ``verilog_sources`` (a sequence of paths), and modules it elaborated once
        for many instances through ``shared_modules`` (a :class:`tilelab.hdl.shared.SharedModules`).
    name : str
        Name of the top module.
    extra_sources : sequence of Path
        Hand-written Verilog files to compile alongside.

    Returns
    -------
    Design
        The Verilog carries Verilator metacomments that waive the default warnings Amaranth's
        output trips without being wrong (:func:`tilelab.hdl.lint.waive_in_file`), so
        ``verilator --lint-only`` with its default warnings passes it as it is.
    """
    if not isinstance(component, wiring.Component):
        raise TypeError(f"only wiring.Component designs can be simulated, not {component!r}")
    if not name.isidentifier():
        raise ValueError(f"top module name must be a Verilog identifier, not {name!r}")
    with fast_comb_check():
        text = top_text = _verilog.convert(component, name=name, emit_src=False)
    # Modules the design elaborated once and instantiated by name (tilelab.hdl.shared).
    shared = getattr(component, "shared_modules", None)
    if shared is not None:
        text += shared.verilog()
    extra = tuple(Path(p) for p in (*getattr(component, "verilog_sources", ()), *extra_sources))
    extra += tuple(model for model in verilog_models(text) if model not in extra)
    from amaranth.hdl import Value

    ports = [(p, 1) for p in ("clk", "rst") if re.search(rf"^\s*input\s+(wire\s+)?{p}\s*;", top_text, re.M)]
    for port, value in port_names(component).items():
        ports.append((port, len(Value.cast(value))))
    return Design(top=name, verilog=waive_in_file(text), extra_sources=extra, ports=tuple(ports))


def verilog_models(verilog_text: str) -> tuple[Path, ...]:
    """The behavioural Verilog models (``tilelab/hdl/verilog/<module>.v``) that ``verilog_text``
    instantiates, directly or through another model."""
    from tilelab.hdl.memories import VERILOG_DIR

    found_all: tuple[Path, ...] = ()
    searched = verilog_text
    while True:         # models may instantiate other models: repeat until nothing new is referenced
        found = tuple(model for model in sorted(VERILOG_DIR.glob("*.v"))
                      if model not in found_all and re.search(rf"^\s*{model.stem}\b", searched, re.M))
        if not found:
            return found_all
        found_all += found
        searched = "".join(model.read_text() for model in found)


_DECL = re.compile(r"^\s*(input|output)\s+(?:wire\s+|reg\s+)?(?:signed\s+)?(\[(\d+):(\d+)\]\s*)?([A-Za-z_][\w$]*)\s*;",
                   re.M)


def top_port_directions(design: Design) -> dict[str, tuple[str, int]]:
    """Return ``{port: (direction, width)}`` of the design's top module, read from its Verilog."""
    start = re.search(rf"^module {re.escape(design.top)}\s*\(", design.verilog, re.M)
    if start is None:
        raise ValueError(f"module {design.top!r} not found in the Verilog")
    end = design.verilog.index("endmodule", start.end())
    ports = {}
    for mt in _DECL.finditer(design.verilog, start.end(), end):
        width = int(mt.group(3)) - int(mt.group(4)) + 1 if mt.group(2) else 1
        ports[mt.group(5)] = (mt.group(1), width)
    return ports


def clocked_wrapper(design: Design, *, period_ns: int = 10, name: str = "tilelab_tb") -> Design:
    """Wrap ``design`` in a top module that generates its clock itself.

    The wrapper has every port of ``design`` except ``clk``, which becomes an internal register
    toggled every ``period_ns / 2`` ns (``--timing`` on Verilator). No simulator callback runs per
    clock edge unless a testbench waits for one, so an autonomous design runs at the simulator's own
    speed; testbenches still see ``clk`` (it is made visible) and may wait on its edges.
    """
    dirs = top_port_directions(design)
    if "clk" not in dirs:
        raise ValueError(f"design {design.top!r} has no clk port to drive")
    lines = [f"module {name} ("]
    names = [p for p in dirs if p != "clk"]
    lines.append("    " + ", ".join(names))
    lines.append(");")
    for p in names:
        d, w = dirs[p]
        rng = f" [{w - 1}:0]" if w > 1 else ""
        lines.append(f"  {d} wire{rng} {p};")
    lines.append("  reg clk = 1'b0;")
    lines.append(f"  always #{period_ns // 2} clk = ~clk;")
    conns = ", ".join([".clk(clk)"] + [f".{p}({p})" for p in names])
    lines.append(f"  {design.top} dut ({conns});")
    lines.append("endmodule")
    wrapper = "\n".join(lines) + "\n"
    ports = tuple([("clk", 1)] + [(p, dirs[p][1]) for p in names])
    return Design(top=name, verilog=design.verilog + "\n" + wrapper, extra_sources=design.extra_sources,
                  ports=ports)
