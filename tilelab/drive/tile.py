"""The compute tile and the element-wise unit as the driver sees them: :func:`tile_unit`, :func:`eltwise_unit`.

Both are a unit joined to one external memory (``extmem``, :class:`~tilelab.pe_models.tile.ExtMemoryTop`)
that the host loads with the program, the data and the parameters, and dumps the output region of.
"""

from __future__ import annotations

from tilelab.hdl.formats.eltwise import ELTWISE_COUNTERS, ELTWISE_STATUS, EltwiseState
from tilelab.hdl.formats.tile import TILE_COUNTERS, TILE_STATUS, EngineState
from tilelab.pe_models.config import EltwiseConfig, TileConfig

from .unit import Memory, Unit

__all__ = ["EXTMEM", "diagnose_eltwise", "diagnose_tile", "eltwise_unit", "tile_unit"]

#: The name of the external memory of a tile or an element-wise unit.
EXTMEM = "extmem"

#: Counters whose movement means the tile makes progress.
TILE_PROGRESS = ("ext_bytes_read", "mac_steps", "ext_bytes_written", "cmd_bytes_read", "l1_writes")
#: Counters whose movement means the element-wise unit makes progress.
ELTWISE_PROGRESS = ("busy", "ext_bytes_read", "ext_bytes_written", "cmd_bytes_read", "terms_cycles")


def _state(enum, value) -> str:
    try:
        return enum(value).name
    except ValueError:
        return str(value)


async def diagnose_tile(io) -> str:
    """Say which engine waits on which circular buffer (the end of the watchdog's error)."""
    rs, cs, ws = (_state(EngineState, io.get(f"{e}_state")) for e in ("reader", "compute", "writer"))
    parts = [
        f"reader {rs} after {io.get('reader_done')} descriptors",
        f"compute {cs} after {io.get('compute_done')} descriptors",
        f"writer {ws} after {io.get('writer_done')} descriptors",
    ]
    pages = {"act": io.get("act_words"), "wgt": io.get("wgt_pages"), "param": io.get("param_pages"),
             "out": io.get("out_entries")}
    waits = []
    if cs == "WAIT_CB":
        empty = [k for k in ("act", "wgt", "param") if pages[k] == 0]
        waits.append(f"compute waits on CB {', '.join(repr(e) for e in empty) or '?'} (empty)")
    if rs == "WAIT_CB":
        # Weight / parameter CBs have two pages; the activation CB counts words (of a ring).
        full = [k for k in ("wgt", "param") if pages[k] == 2] or (["act"] if pages["act"] else [])
        waits.append(f"reader waits for free space in CB {', '.join(repr(f) for f in full) or '?'} (full)")
    if ws == "RUN" and pages["out"] == 0:
        waits.append("writer waits on CB 'out' (empty)")
    occupancy = ", ".join(f"{k}={v}" for k, v in pages.items())
    return "; ".join(parts + waits) + f"; CB occupancy: {occupancy}"


async def diagnose_eltwise(io) -> str:
    """Say where the element-wise unit's state machine stands."""
    return f"eltwise unit {_state(EltwiseState, io.get('state'))} after {io.get('descs_done')} descriptors"


def _ext_unit(name, config, top, make, counters, progress, diagnose) -> Unit:
    def build(init):
        if init is None:
            if config.mem_impl != "verilog":
                raise ValueError(f"the Verilog of the {name} needs mem_impl='verilog', not {config.mem_impl!r}")
            return make(config, init=None)
        return make(config.replace(mem_impl="amaranth"), init=init.get(EXTMEM, []))

    return Unit(name=name, key=config.key(), top=top, build=build, memories=(Memory(EXTMEM, config.ext_bytes),),
                counters=tuple(counters), progress=progress, diagnose=diagnose, reload="ext_load", dump="ext_dump")


def tile_unit(config: TileConfig) -> Unit:
    """The compute tile (:class:`~tilelab.pe_models.tile.TileTop`) with its external memory.

    Parameters
    ----------
    config : TileConfig
        The tile.

    Returns
    -------
    Unit
    """
    from tilelab.pe_models.tile import TileTop

    if not isinstance(config, TileConfig):
        raise TypeError(f"config must be a TileConfig, not {config!r}")
    return _ext_unit("tile", config, "tile_top", TileTop, TILE_COUNTERS + TILE_STATUS, TILE_PROGRESS,
                     "tilelab.drive.tile:diagnose_tile")


def eltwise_unit(config: EltwiseConfig) -> Unit:
    """The element-wise unit (:class:`~tilelab.pe_models.eltwise.EltwiseTop`) with its external memory.

    Parameters
    ----------
    config : EltwiseConfig
        The unit.

    Returns
    -------
    Unit
    """
    from tilelab.pe_models.eltwise import EltwiseTop

    if not isinstance(config, EltwiseConfig):
        raise TypeError(f"config must be an EltwiseConfig, not {config!r}")
    return _ext_unit("eltwise", config, "eltwise_top", EltwiseTop, ELTWISE_COUNTERS + ELTWISE_STATUS,
                     ELTWISE_PROGRESS, "tilelab.drive.tile:diagnose_eltwise")
