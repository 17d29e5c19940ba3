"""Shared modules: one Verilog module for many instances; ``inline=False`` keeps one copy of its C++."""

import subprocess

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from tests.sim import benches
from tilelab.hdl.shared import SharedModules
from tilelab.sim import simulate, to_verilog
from tilelab.sim.toolchain import verilator_env, verilator_root


class _Acc(wiring.Component):
    """Adds ``x`` into ``total`` every cycle."""

    x: In(8)
    total: Out(16)

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.total.eq(self.total + self.x)
        return m


class _Pair(wiring.Component):
    """Two shared ``_Acc`` instances; ``count`` is their sum (1 + 2 per cycle while ``en``)."""

    en: In(1)
    limit: In(16)
    count: Out(16)
    done: Out(1)

    def __init__(self, inline):
        super().__init__()
        self.shared_modules = SharedModules()
        self.inline = inline

    def elaborate(self, platform):
        m = Module()
        a, b = _Acc(), _Acc()
        m.submodules.a = self.shared_modules.instance(a, kind="acc", key="8", inline=self.inline)
        m.submodules.b = self.shared_modules.instance(b, kind="acc", key="8", inline=self.inline)
        run = self.en & (self.count < self.limit)
        m.d.comb += [a.x.eq(run), b.x.eq(run << 1), self.count.eq(a.total + b.total),
                     self.done.eq((self.count >= self.limit) & (self.limit != 0))]
        return m


def test_not_inlined_module_is_marked_once_and_compiled_once(tmp_path):
    design = to_verilog(_Pair(inline=False))
    name = SharedModules().module_name("acc", "8")
    assert design.verilog.count("/*verilator no_inline_module*/") == 1
    header_end = design.verilog.index(");", design.verilog.index(f"module {name}(")) + 2
    assert design.verilog[header_end:].lstrip().startswith("/*verilator no_inline_module*/")
    assert "no_inline_module" not in to_verilog(_Pair(inline=True)).verilog
    (tmp_path / "top.v").write_text(design.verilog)
    subprocess.run([str(verilator_root() / "bin" / "verilator"), "-cc", "-Mdir", str(tmp_path / "obj"),
                    "--top-module", design.top, str(tmp_path / "top.v")], env=verilator_env(), check=True,
                   capture_output=True)
    # Verilator keeps the module as its own class: one copy of its code for both instances.
    assert (tmp_path / "obj" / f"Vtop_{name}.h").exists()


def test_not_inlined_module_simulates_the_same():
    for inline in (True, False):
        r = simulate(_Pair(inline=inline), benches.count_to, backend="verilator", args={"limit": 30})
        assert r.value["count"] == 30, inline
