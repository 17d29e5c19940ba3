"""Memories with two interchangeable implementations: Amaranth, or a behavioural Verilog model.

Small memories are plain :class:`amaranth.lib.memory.Memory`. Large ones (a tile's L1, external
memory) use the hand-written Verilog models in ``tilelab/hdl/verilog/`` instead: Amaranth's Verilog
back end writes out an initial value for every word, which for a 64 Ki-word memory takes half a
minute and megabytes of text. Both implementations have the same ports and the same timing, and
the tests run the same checks against both (the Verilog model on Verilator/Icarus, the Amaranth
model on Amaranth's simulator).

:class:`ExtMemory` is the external (DRAM-like) memory: byte-addressed, unaligned W-byte reads on
two read ports and a masked write port, loaded and dumped in bulk through files named by plusargs
(Verilog model) or through the ``init`` argument and :attr:`ExtMemory.data` (Amaranth model).
"""

from pathlib import Path

from amaranth.hdl import Cat, Instance, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from tilelab.checks import check_int

__all__ = ["IMPLS", "SRAM", "ExtMemory", "NodeMemory", "VERILOG_DIR", "node_memory_name", "port_memory_name",
           "sram_read_signature", "sram_write_signature"]

#: Folder of the behavioural Verilog models.
VERILOG_DIR = Path(__file__).parent / "verilog"
#: Memory implementations.
IMPLS = ("verilog", "amaranth")


def node_memory_name(row: int, col: int) -> str:
    """Load / dump name of the memory beside the node in grid row ``row``, column ``col`` of a mesh.

    Its plusargs are ``+node_<row>_<col>_init=FILE`` and ``+node_<row>_<col>_dump=FILE``.
    """
    return f"node_{row}_{col}"


def port_memory_name(i: int) -> str:
    """Load / dump name of the memory behind memory port ``i`` of a mesh (``+mem_<i>_init=FILE``)."""
    return f"mem_{i}"




def sram_read_signature(*, addr_width: int, width_bytes: int) -> wiring.Signature:
    """Read port of an :class:`SRAM`, as its user (the initiator) sees it.

    ``en`` and ``addr`` out; ``data`` in, one cycle after a cycle with ``en`` high, held until the
    next read. A user declares ``Out(sram_read_signature(...))``; :attr:`SRAM.read_port` is the
    SRAM's side.
    """
    return wiring.Signature({"en": Out(1), "addr": Out(addr_width), "data": In(8 * width_bytes)})


def sram_write_signature(*, addr_width: int, width_bytes: int) -> wiring.Signature:
    """Write port of an :class:`SRAM`, as its user sees it: ``en``, ``addr``, ``data`` and the byte
    ``mask`` out. :attr:`SRAM.write_port` is the SRAM's side."""
    return wiring.Signature({"en": Out(1), "addr": Out(addr_width), "data": Out(8 * width_bytes),
                             "mask": Out(width_bytes)})


class SRAM(wiring.Component):
    """Simple dual-port SRAM: one synchronous read (1-cycle latency), one byte-masked write.

    A read in the same cycle as a write to the same word returns the old contents.

    Parameters
    ----------
    width_bytes : int
        Bytes per word.
    depth : int
        Words.
    impl : {"verilog", "amaranth"}
        Behavioural Verilog model (any size) or Amaranth ``Memory`` (small sizes).

    Members
    -------
    rd_en, rd_addr, rd_data
        The read port (:attr:`read_port` groups them as a :func:`sram_read_signature` interface).
    wr_en, wr_addr, wr_data, wr_mask
        The write port (:attr:`write_port`: a :func:`sram_write_signature` interface).
    """

    def __init__(self, *, width_bytes: int, depth: int, impl: str = "verilog"):
        check_int("width_bytes", width_bytes, 1, 1024)
        check_int("depth", depth, 1, 1 << 24)
        if impl not in IMPLS:
            raise ValueError(f"impl must be one of {IMPLS!r}, not {impl!r}")
        self.width_bytes, self.depth, self.impl = width_bytes, depth, impl
        aw = max(1, (depth - 1).bit_length())
        self.addr_width = aw
        super().__init__({
            "rd_en": In(1), "rd_addr": In(aw), "rd_data": Out(8 * width_bytes),
            "wr_en": In(1), "wr_addr": In(aw), "wr_data": In(8 * width_bytes), "wr_mask": In(width_bytes),
        })

    @property
    def read_port(self):
        """The read port as an interface (``sram_read_signature(...).flip()``), for ``wiring.connect``."""
        port = sram_read_signature(addr_width=self.addr_width, width_bytes=self.width_bytes).flip().create()
        port.en, port.addr, port.data = self.rd_en, self.rd_addr, self.rd_data
        return port

    @property
    def write_port(self):
        """The write port as an interface (``sram_write_signature(...).flip()``), for ``wiring.connect``."""
        port = sram_write_signature(addr_width=self.addr_width, width_bytes=self.width_bytes).flip().create()
        port.en, port.addr, port.data, port.mask = self.wr_en, self.wr_addr, self.wr_data, self.wr_mask
        return port

    def elaborate(self, platform):
        m = Module()
        if self.impl == "verilog":
            m.submodules.mem = Instance(
                "tilelab_sram", p_W=self.width_bytes, p_AW=self.addr_width, p_DEPTH=self.depth,
                i_clk=_clk(), i_rd_en=self.rd_en, i_rd_addr=self.rd_addr,
                o_rd_data=self.rd_data, i_wr_en=self.wr_en, i_wr_addr=self.wr_addr, i_wr_data=self.wr_data,
                i_wr_mask=self.wr_mask)
            return m
        m.submodules.mem = mem = Memory(shape=8 * self.width_bytes, depth=self.depth, init=[])
        rp = mem.read_port(transparent_for=())
        wp = mem.write_port(granularity=8)
        m.d.comb += [
            rp.en.eq(self.rd_en), rp.addr.eq(self.rd_addr), self.rd_data.eq(rp.data),
            wp.addr.eq(self.wr_addr), wp.data.eq(self.wr_data),
            wp.en.eq(self.wr_mask & self.wr_en.replicate(self.width_bytes)),
        ]
        return m


def _clk():
    from amaranth.hdl import ClockSignal

    return ClockSignal("sync")


class ExtMemory(wiring.Component):
    """External memory: byte-addressed, unaligned W-byte reads and masked writes.

    Parameters
    ----------
    width_bytes : int
        Bytes per word W (a power of two, 4..128).
    depth : int
        Words.
    impl : {"verilog", "amaranth"}
        The Verilog model loads ``+<name>_init=FILE`` at time 0 (and again in a cycle with
        ``load`` high) and, in a cycle with ``dump`` high, writes ``+<name>_dump=FILE``
        (``$readmemh`` / ``$writememh`` format). The Amaranth
        model takes its contents from ``init`` and exposes :attr:`data` to testbenches.
    name : str
        Plusarg prefix of the Verilog model.
    init : sequence of int, optional
        Initial words (Amaranth model only).

    Members
    -------
    ra_en, ra_addr, ra_data, rb_en, rb_addr, rb_data
        Two read ports: W bytes from any byte address, one cycle later.
    wr_en, wr_addr, wr_data, wr_mask
        Write port: bytes ``b`` with ``wr_mask[b]`` go to byte address ``wr_addr + b``.
    dump
        Verilog model: write the contents to the dump file.
    load
        Verilog model: clear the memory and load the init file again (the Amaranth model ignores it).
    """

    def __init__(self, *, width_bytes: int = 16, depth: int = 1024, impl: str = "verilog", name: str = "extmem",
                 init=None):
        check_int("width_bytes", width_bytes, 4, 128)
        if width_bytes & (width_bytes - 1):
            raise ValueError(f"width_bytes must be a power of two, not {width_bytes!r}")
        check_int("depth", depth, 2, 1 << 26)
        if impl not in IMPLS:
            raise ValueError(f"impl must be one of {IMPLS!r}, not {impl!r}")
        if not name.isidentifier():
            raise ValueError(f"name must be an identifier, not {name!r}")
        if init is not None and impl != "amaranth":
            raise ValueError("init is only for the Amaranth model; the Verilog model loads its file by plusarg")
        self.width_bytes, self.depth, self.impl, self.name = width_bytes, depth, impl, name
        self._init = list(init) if init is not None else []
        if len(self._init) > depth:
            raise ValueError(f"init has {len(self._init)} words, more than the depth {depth}")
        self.data = None
        W = width_bytes
        super().__init__({
            "ra_en": In(1), "ra_addr": In(32), "ra_data": Out(8 * W),
            "rb_en": In(1), "rb_addr": In(32), "rb_data": Out(8 * W),
            "wr_en": In(1), "wr_addr": In(32), "wr_data": In(8 * W), "wr_mask": In(W),
            "dump": In(1), "load": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        W = self.width_bytes
        logw = W.bit_length() - 1
        if self.impl == "verilog":
            m.submodules.mem = Instance(
                "tilelab_extmem", p_W=W, p_LOGW=logw, p_DEPTH=self.depth, p_NAME=self.name,
                i_clk=_clk(), i_ra_en=self.ra_en, i_ra_addr=self.ra_addr, o_ra_data=self.ra_data,
                i_rb_en=self.rb_en, i_rb_addr=self.rb_addr, o_rb_data=self.rb_data,
                i_wr_en=self.wr_en, i_wr_addr=self.wr_addr, i_wr_data=self.wr_data, i_wr_mask=self.wr_mask,
                i_dump=self.dump, i_load=self.load)
            return m

        m.submodules.mem = mem = Memory(shape=8 * W, depth=self.depth, init=self._init)
        self.data = mem.data  # MemoryData: testbenches use ctx.get / ctx.set(self.data[i])
        aw = (self.depth - 1).bit_length()

        def word(addr):
            return (addr >> logw)[:aw] if aw else 0

        for port in ("ra", "rb"):
            en, addr, out = getattr(self, f"{port}_en"), getattr(self, f"{port}_addr"), getattr(self, f"{port}_data")
            lo = mem.read_port(transparent_for=())
            hi = mem.read_port(transparent_for=())
            off = Signal(max(1, logw), name=f"{port}_off")
            m.d.comb += [lo.en.eq(en), hi.en.eq(en), lo.addr.eq(word(addr)), hi.addr.eq(word(addr) + 1)]
            with m.If(en):
                m.d.sync += off.eq(addr[:logw])
            m.d.comb += out.eq((Cat(lo.data, hi.data) >> (off * 8))[:8 * W])

        off = self.wr_addr[:logw]
        mask2 = Signal(2 * W)
        data2 = Signal(16 * W)
        m.d.comb += [
            mask2.eq(self.wr_mask << off),
            data2.eq(self.wr_data << (off * 8)),
        ]
        wlo = mem.write_port(granularity=8)
        whi = mem.write_port(granularity=8)
        m.d.comb += [
            wlo.addr.eq(word(self.wr_addr)), whi.addr.eq(word(self.wr_addr) + 1),
            wlo.data.eq(data2[:8 * W]), whi.data.eq(data2[8 * W:]),
            wlo.en.eq(mask2[:W] & self.wr_en.replicate(W)), whi.en.eq(mask2[W:] & self.wr_en.replicate(W)),
        ]
        return m


class NodeMemory(wiring.Component):
    """A mesh node's memory: :class:`ExtMemory`'s three ports plus two word-addressed ports.

    The tile of a node uses the byte-addressed ``ra`` / ``rb`` / ``wr`` ports exactly as it
    would use an :class:`ExtMemory`; the node's data mover reads whole words through ``rc`` and
    its network interface writes whole words through ``wd``. Every port can be used every cycle.
    Verilog model only (``tilelab_nodemem``; plusargs as :class:`ExtMemory`).

    Parameters
    ----------
    width_bytes : int
        Bytes per word W (a power of two, 4..128).
    depth : int
        Words.
    name : str
        Plusarg prefix.

    Members
    -------
    ra_*, rb_*, wr_*, dump, load
        As :class:`ExtMemory`.
    rc_en, rc_addr, rc_data
        Word read (``rc_addr`` is a word address), data one cycle later.
    wd_en, wd_addr, wd_data
        Whole-word write at word address ``wd_addr``.
    """

    def __init__(self, *, width_bytes: int = 16, depth: int = 1024, name: str = "nodemem"):
        check_int("width_bytes", width_bytes, 4, 128)
        if width_bytes & (width_bytes - 1):
            raise ValueError(f"width_bytes must be a power of two, not {width_bytes!r}")
        check_int("depth", depth, 2, 1 << 26)
        if not name.isidentifier():
            raise ValueError(f"name must be an identifier, not {name!r}")
        self.width_bytes, self.depth, self.name = width_bytes, depth, name
        W = width_bytes
        super().__init__({
            "ra_en": In(1), "ra_addr": In(32), "ra_data": Out(8 * W),
            "rb_en": In(1), "rb_addr": In(32), "rb_data": Out(8 * W),
            "wr_en": In(1), "wr_addr": In(32), "wr_data": In(8 * W), "wr_mask": In(W),
            "rc_en": In(1), "rc_addr": In(32), "rc_data": Out(8 * W),
            "wd_en": In(1), "wd_addr": In(32), "wd_data": In(8 * W),
            "dump": In(1), "load": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        W = self.width_bytes
        ports = {}
        for name, member in self.signature.members.items():
            prefix = "i" if member.flow == In else "o"
            ports[f"{prefix}_{name}"] = getattr(self, name)
        m.submodules.mem = Instance("tilelab_nodemem", p_W=W, p_LOGW=W.bit_length() - 1, p_DEPTH=self.depth,
                                    p_NAME=self.name, i_clk=_clk(), **ports)
        return m
