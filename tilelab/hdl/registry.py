"""The catalogue of blocks that ``tilelab verilog`` can emit, with their parameters.

Each entry names a block, the callable that builds it from keyword parameters, and each
parameter's type, default and help text — the command line options are generated from here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

__all__ = ["Param", "BlockEntry", "BLOCKS", "build_block"]


@dataclass(frozen=True)
class Param:
    """One constructor parameter exposed as a command-line option."""

    name: str
    type: type
    default: object
    help: str


@dataclass(frozen=True)
class BlockEntry:
    """A block: ``factory`` is ``"module:Class"``; ``params`` its options."""

    name: str
    factory: str
    help: str
    params: tuple[Param, ...] = field(default_factory=tuple)

    def build(self, **kwargs):
        """Construct the block with ``kwargs`` (defaults for the rest)."""
        module, _, cls = self.factory.partition(":")
        ctor = getattr(importlib.import_module(module), cls)
        values = {p.name: p.default for p in self.params}
        unknown = set(kwargs) - set(values)
        if unknown:
            raise ValueError(f"block {self.name!r} has no parameter(s) {sorted(unknown)!r}; "
                             f"known: {sorted(values)!r}")
        values.update(kwargs)
        return ctor(**values)


_W = Param("width", int, 8, "payload width in bits")

BLOCKS: dict[str, BlockEntry] = {e.name: e for e in [
    BlockEntry("mac-unit", "tilelab.hdl.mac:MACUnit", "one multiply-accumulate unit", (
        Param("a_width", int, 8, "activation operand width"),
        Param("b_width", int, 8, "weight operand width"),
        Param("acc_width", int, 32, "accumulator width"),
        Param("signed_", bool, True, "signed operands"),
    )),
    BlockEntry("mac-array", "tilelab.hdl.mac:MACArray", "output-stationary R×C MAC array, double-buffered drain", (
        Param("rows", int, 8, "array rows (output pixels per block)"),
        Param("cols", int, 8, "array columns (output channels per block)"),
        Param("a_width", int, 8, "activation operand width"),
        Param("b_width", int, 8, "weight operand width"),
        Param("acc_width", int, 32, "accumulator width"),
        Param("signed_", bool, True, "signed operands"),
        Param("depthwise", bool, False, "add the element-wise (depthwise) mode"),
    )),
    BlockEntry("skid-buffer", "tilelab.hdl.streams:SkidBuffer", "full-throughput register slice", (
        Param("shape", int, 32, "payload width in bits"),
    )),
    BlockEntry("stream-fifo", "tilelab.hdl.streams:StreamFIFO", "stream FIFO", (
        Param("shape", int, 32, "payload width in bits"),
        Param("depth", int, 8, "entries"),
        Param("buffered", bool, True, "registered output"),
    )),
    BlockEntry("arbiter", "tilelab.hdl.streams:RoundRobinArbiter", "round-robin stream arbiter", (
        Param("shape", int, 32, "payload width in bits"),
        Param("n", int, 4, "inputs"),
    )),
    BlockEntry("stream-fork", "tilelab.hdl.streams:StreamFork", "1-to-n stream fork", (
        Param("shape", int, 32, "payload width in bits"),
        Param("n", int, 2, "outputs"),
    )),
    BlockEntry("reduction-tree", "tilelab.hdl.reduce:ReductionTree", "adder / max tree", (
        Param("width", int, 32, "input width"),
        Param("fan_in", int, 8, "inputs"),
        Param("op", str, "sum", "sum or max"),
        Param("pipeline", bool, False, "register every level"),
    )),
    BlockEntry("sram-bank", "tilelab.hdl.sram:SRAMBank", "1R1W SRAM bank with byte enables", (
        Param("width", int, 64, "word width in bits"),
        Param("depth", int, 256, "words"),
    )),
    BlockEntry("banked-memory", "tilelab.hdl.sram:BankedMemory", "banked memory with per-bank arbitration", (
        Param("width", int, 64, "word width in bits"),
        Param("depth", int, 1024, "words"),
        Param("banks", int, 4, "banks (power of two)"),
    )),
    BlockEntry("circular-buffer", "tilelab.hdl.cbuf:CircularBufferController", "circular-buffer page counters", (
        Param("pages", int, 4, "maximum pages"),
    )),
    BlockEntry("address-generator", "tilelab.hdl.addrgen:AffineAddressGenerator", "affine nested-loop addresses", (
        Param("addr_width", int, 32, "address width"),
        Param("loops", int, 6, "nested loops"),
    )),
    BlockEntry("seq-divider", "tilelab.hdl.arith:SeqDivider", "unsigned divider, one quotient bit per cycle", (
        Param("width", int, 64, "operand width"),
    )),
    BlockEntry("seq-isqrt", "tilelab.hdl.arith:SeqIsqrt", "floor square root, one result bit per cycle", (
        Param("width", int, 64, "operand width (even)"),
    )),
]}


def build_block(name: str, **kwargs):
    """Construct block ``name`` from the catalogue with ``kwargs``."""
    try:
        entry = BLOCKS[name]
    except KeyError:
        raise ValueError(f"unknown block {name!r}; known blocks: {', '.join(sorted(BLOCKS))}") from None
    return entry.build(**kwargs)
