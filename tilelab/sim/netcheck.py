"""A faster, equivalent combinational-cycle check for Amaranth's netlist.

Amaranth checks every design for combinational cycles bit by bit (``Netlist.check_comb_cycles``):
it walks, for every output bit of every cell, the nets that bit depends on. For arithmetic,
comparison, shift, ``Part`` and ``Matches`` cells every output bit depends on *every* input bit,
so a 32×32 MAC array's adders and multipliers make the walk visit tens of millions of edges, most
of them to nets already known to be acyclic: about a third of converting the default compute tile.

:func:`fast_comb_check` replaces the method, while a conversion runs, with the same depth-first
walk that visits such a cell's inputs once: after one output bit of the cell has walked all its
inputs without finding a cycle, every input net is known to be acyclic, so the cell's other bits
(which depend on exactly the same nets) cannot close a cycle either. Every other cell is walked as
Amaranth walks it, and a cycle is reported with Amaranth's own message and exception. The
replacement is used only with the Amaranth release it was written against (0.5); any other
release keeps its own check.
"""

from __future__ import annotations

import contextlib

__all__ = ["fast_comb_check"]

_BITWISE = ("&", "|", "^")


def _bit_independent(cell) -> bool:
    """Whether every output bit of ``cell`` has the same combinational inputs (all of them)."""
    from amaranth.hdl import _nir

    if isinstance(cell, _nir.Operator):
        if len(cell.inputs) == 1:
            return cell.operator != "~"
        if len(cell.inputs) == 2:
            return cell.operator not in _BITWISE
        return False
    return isinstance(cell, (_nir.Part, _nir.Matches))


def _check_comb_cycles(self):
    from amaranth.hdl import _ast, _nir

    class Cycle:
        def __init__(self, start):
            self.start = start
            self.path = []

    checked = set()
    busy = set()
    cells_done = set()      # bit-independent cells whose inputs are all checked
    bit_independent = {}

    def traverse(net):
        if net in checked:
            return None
        if net in busy:
            return Cycle(net)
        busy.add(net)
        cycle = None
        if net.is_const:
            pass
        elif net.is_late:
            cycle = traverse(self.connections[net])
            if cycle is not None:
                sig, bit = self.late_to_signal[net]
                cycle.path.append((sig, bit, sig.src_loc))
        elif net.cell not in cells_done:
            cell = self.cells[net.cell]
            for src, src_loc in cell.comb_edges_to(net.bit):
                cycle = traverse(src)
                if cycle is not None:
                    cycle.path.append((cell, net.bit, src_loc))
                    break
            if cycle is None:
                indep = bit_independent.get(net.cell)
                if indep is None:
                    indep = bit_independent[net.cell] = _bit_independent(cell)
                if indep:
                    cells_done.add(net.cell)
        if cycle is not None and cycle.start == net:
            msg = ["Combinational cycle detected, path:\n"]
            for obj, bit, src_loc in reversed(cycle.path):
                if isinstance(obj, _ast.Signal):
                    obj = f"signal {obj.name}"
                elif isinstance(obj, _nir.Operator):
                    obj = f"operator {obj.operator}"
                else:
                    obj = f"cell {obj.__class__.__qualname__}"
                src_loc = "<unknown>:0" if src_loc is None else f"{src_loc[0]}:{src_loc[1]}"
                msg.append(f"  {src_loc}: {obj} bit {bit}\n")
            raise _nir.CombinationalCycle("".join(msg))
        busy.remove(net)
        checked.add(net)
        return cycle

    for cell_idx, cell in enumerate(self.cells):
        for net in cell.output_nets(cell_idx):
            assert traverse(net) is None
    for value in self.signals.values():
        for net in value:
            assert traverse(net) is None


def _supported() -> bool:
    import amaranth
    from amaranth.hdl import _nir

    return (amaranth.__version__.startswith("0.5.")
            and all(hasattr(_nir, n) for n in ("Netlist", "Operator", "Part", "Matches", "CombinationalCycle")))


@contextlib.contextmanager
def fast_comb_check():
    """Use the faster combinational-cycle check while the ``with`` block converts designs."""
    if not _supported():
        yield
        return
    from amaranth.hdl import _nir

    original = _nir.Netlist.check_comb_cycles
    _nir.Netlist.check_comb_cycles = _check_comb_cycles
    try:
        yield
    finally:
        _nir.Netlist.check_comb_cycles = original
