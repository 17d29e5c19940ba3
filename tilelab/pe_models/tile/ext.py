"""The external-memory port of a unit (compute tile, element-wise unit) and its simulation top."""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from tilelab.hdl.memories import ExtMemory

__all__ = ["ext_port_signature", "ext_read_signature", "ext_write_signature", "ExtMemoryTop"]


def ext_port_signature(width_bytes: int) -> wiring.Signature:
    """External-memory port of a tile (the initiator side).

    Two read ports (``ra_*``, ``rb_*``: W bytes from any byte address, one cycle later) and a
    byte-masked write port (``wr_*``), as :class:`~tilelab.hdl.memories.ExtMemory` has them.
    """
    W = width_bytes
    return wiring.Signature({
        "ra_en": Out(1), "ra_addr": Out(32), "ra_data": In(8 * W),
        "rb_en": Out(1), "rb_addr": Out(32), "rb_data": In(8 * W),
        "wr_en": Out(1), "wr_addr": Out(32), "wr_data": Out(8 * W), "wr_mask": Out(W),
    })


def ext_read_signature(width_bytes: int) -> wiring.Signature:
    """One external-memory read port as an engine uses it: ``en`` and byte ``addr`` out, the W
    bytes from there in (``data``, one cycle after the cycle with ``en`` high)."""
    return wiring.Signature({"en": Out(1), "addr": Out(32), "data": In(8 * width_bytes)})


def ext_write_signature(width_bytes: int) -> wiring.Signature:
    """The external-memory write port as an engine uses it: bytes ``b`` of ``data`` with ``mask[b]``
    go to byte address ``addr + b`` in a cycle with ``en`` high."""
    W = width_bytes
    return wiring.Signature({"en": Out(1), "addr": Out(32), "data": Out(8 * W), "mask": Out(W)})


class ExtMemoryTop(wiring.Component):
    """A unit with an external-memory port (:func:`ext_port_signature`) joined to its
    :class:`~tilelab.hdl.memories.ExtMemory`: what is simulated. Base of
    :class:`~tilelab.pe_models.tile.TileTop` and :class:`~tilelab.pe_models.eltwise.EltwiseTop`.

    Parameters
    ----------
    config
        The unit's configuration; its ``ext_bytes``, ``ext_words`` and ``mem_impl`` size and select
        the memory model.
    unit : wiring.Component
        Has ``start``, ``done`` and an ``ext`` port; every other port is passed through.
    init : sequence of int, optional
        Initial external-memory words (Amaranth model only; the Verilog model loads the file
        given by the ``+extmem_init=FILE`` plusarg).
    name : str
        Submodule name of the unit.

    Members
    -------
    start, done, and every other port of the unit
    ext_dump : In(1)
        Verilog model: a cycle with it high writes the memory to ``+extmem_dump=FILE``.
    ext_load : In(1)
        Verilog model: a cycle with it high clears the memory and loads ``+extmem_init=FILE``
        again, so one simulation can run several programs.
    """

    _OWN = ("start", "done", "ext_dump", "ext_load")

    def __init__(self, config, unit, *, init=None, name="unit"):
        self.config = config
        self._unit, self._name = unit, name
        #: The unit's :class:`~tilelab.hdl.memories.ExtMemory`.
        self.ext_memory = ExtMemory(width_bytes=config.ext_bytes, depth=config.ext_words, impl=config.mem_impl,
                                    name="extmem", init=init)
        members = {"start": In(1), "done": Out(1), "ext_dump": In(1), "ext_load": In(1)}
        for port, member in unit.signature.members.items():
            if port not in ("start", "done", "ext"):
                members[port] = member
        super().__init__(members)

    @property
    def unit(self):
        """The wrapped unit (e.g. the :class:`~tilelab.pe_models.tile.ComputeTile`), for testbenches
        that look inside it."""
        return self._unit

    @property
    def sim_memories(self):
        """Memories a testbench may dump (Amaranth model, after elaboration): ``{"extmem": MemoryData}``."""
        data = self.ext_memory.data
        return {"extmem": data} if data is not None else {}

    def elaborate(self, platform):
        m = Module()
        unit = self._unit
        m.submodules[self._name] = unit
        m.submodules.ext = ext = self.ext_memory
        p = unit.ext
        m.d.comb += [
            ext.ra_en.eq(p.ra_en), ext.ra_addr.eq(p.ra_addr), p.ra_data.eq(ext.ra_data),
            ext.rb_en.eq(p.rb_en), ext.rb_addr.eq(p.rb_addr), p.rb_data.eq(ext.rb_data),
            ext.wr_en.eq(p.wr_en), ext.wr_addr.eq(p.wr_addr), ext.wr_data.eq(p.wr_data), ext.wr_mask.eq(p.wr_mask),
            ext.dump.eq(self.ext_dump), ext.load.eq(self.ext_load),
            unit.start.eq(self.start), self.done.eq(unit.done),
        ]
        for port in self.signature.members:
            if port not in self._OWN:
                m.d.comb += getattr(self, port).eq(getattr(unit, port))
        return m
