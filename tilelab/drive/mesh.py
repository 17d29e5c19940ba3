"""The mesh of tiles and the bulk all-reduce harness as the driver sees them: :func:`mesh_unit`,
:func:`bulk_reduce_unit`.

A mesh has a memory per tile node (``node_<i>_<j>``) and per memory port (``mem_<i>``). Its
counters are read after done through its read-out port (``sel`` → ``sel_data`` for the tile
nodes and memory ports, ``cnt_addr`` → ``<plane>_cnt`` for every router port), its watchdog
watches one ``progress`` counter and its diagnosis reads every unfinished node's data mover and
tile engines through the same port.
"""

from __future__ import annotations

from tilelab.hdl.formats.mesh import NODE_COUNTERS, PORT_COUNTERS, MoverState
from tilelab.hdl.formats.noc import Direction
from tilelab.hdl.formats.tile import EngineState
from tilelab.hdl.memories import node_memory_name, port_memory_name
from tilelab.noc.mesh import CounterKind, counter_address
from tilelab.pe_models.config import MeshConfig
from tilelab.pe_models.mesh import PLANES, READ_SLOTS

from .unit import Memory, Unit

__all__ = ["MESH_SIMS", "bulk_reduce_unit", "diagnose_bulk_reduce", "diagnose_mesh", "mesh_unit", "read_mesh"]

#: Simulators that run a mesh (its memories are Verilog models).
MESH_SIMS = ("verilator", "icarus")

_SLOT = {name: k for k, name in enumerate(READ_SLOTS)}
#: Read-out slots of one node or memory port (``sel = index * SLOTS + slot``).
SLOTS = 64


async def _read(io, sel):
    io.set("sel", sel)
    await io.tick()
    return io.get("sel_data")


async def _node(io, index, names):
    return {n: await _read(io, index * SLOTS + _SLOT[n]) for n in names}


def _name(enum, value) -> str:
    try:
        return enum(value).name
    except ValueError:
        return str(value)


async def diagnose_mesh(io, *, rows, cols, links=True) -> str:
    """Say what every unfinished tile node waits on (data-mover descriptor, semaphore, all-reduce, tile
    engines)."""
    parts = []
    for i in range(rows):
        for j in range(cols):
            v = await _node(io, i * cols + j, [n for n in READ_SLOTS if n.startswith(("mover.", "status."))])
            state = _name(MoverState, v["mover.state"])
            if state == "DONE":
                continue
            where = f"tile ({i},{j}): data mover {state} at descriptor {v['mover.pc']}"
            if state == "WAIT":
                where += (f", waiting for semaphore {v['mover.wait_sem']} to reach {v['mover.wait_count']} "
                          f"(it is {v['mover.sem_value']})")
            elif state == "REDUCE":
                where += (f", in an all-reduce of {v['mover.reduce_words']} words: {v['mover.reduce_sent']} "
                          f"contributed, {v['mover.reduce_got']} totals received")
            elif state == "RUN":
                eng = {k: _name(EngineState, v[f"status.{k}_state"]) for k in ("reader", "compute", "writer")}
                where += (f", tile reader {eng['reader']} / compute {eng['compute']} / writer {eng['writer']}, "
                          f"CB occupancy act={v['status.act_words']} words, wgt={v['status.wgt_pages']} "
                          f"param={v['status.param_pages']} out={v['status.out_entries']}")
            parts.append(where)
    return "; ".join(parts) if parts else "every data mover has ended (the network or a memory port is busy)"


async def read_mesh(io, *, rows, cols, links=True) -> dict:
    """Every counter of the mesh: per tile node, per memory port and (``links``) per router port and plane."""
    out = {"cycles": io.get("cycles"), "dropped": io.get("dropped"), "bad_flits": io.get("bad_flits"),
           "tiles": [], "ports": [], "links": []}
    names = [n for n in READ_SLOTS if n.startswith(("tile.", "node.", "elt."))]
    for i in range(rows):
        for j in range(cols):
            v = await _node(io, i * cols + j, names)
            out["tiles"].append({"i": i, "j": j, **{n.split(".", 1)[1] if n.startswith("node.") else n: v[n]
                                                      for n in names}})
    for i in range(rows):
        base = (rows * cols + i) * SLOTS
        out["ports"].append({"i": i, **{n: await _read(io, base + k) for k, n in enumerate(PORT_COUNTERS)}})
    if links:
        ncols = cols + 1
        for y in range(rows):
            for x in range(ncols):
                for d in Direction:
                    rec = {"x": x, "y": y, "port": d.name}
                    for kind in (CounterKind.FLITS, CounterKind.STALLS):
                        io.set("cnt_addr", counter_address(ncols, x, y, d, kind))
                        await io.tick()
                        for plane in PLANES:
                            rec[f"{plane}_{kind.name.lower()}"] = io.get(f"{plane}_cnt")
                    out["links"].append(rec)
    assert set(NODE_COUNTERS) <= set(out["tiles"][0])
    return out


def mesh_unit(config: MeshConfig) -> Unit:
    """The mesh of tiles (:class:`~tilelab.pe_models.mesh.MeshTop`) with its node and port memories.

    Parameters
    ----------
    config : MeshConfig
        The mesh.

    Returns
    -------
    Unit
        Verilator and Icarus only (its memories are Verilog models).
    """
    from tilelab.pe_models.mesh import MeshTop

    if not isinstance(config, MeshConfig):
        raise TypeError(f"config must be a MeshConfig, not {config!r}")

    def build(init):
        if init is not None:
            raise ValueError("the mesh's memories are Verilog models: it runs on 'verilator' or 'icarus'")
        return MeshTop(config)

    W = config.word_bytes
    memories = (*(Memory(node_memory_name(i, j), W) for i in range(config.rows) for j in range(config.cols)),
                *(Memory(port_memory_name(i), W) for i in range(config.rows)))
    return Unit(name="mesh", key=config.key(), top="mesh_top", build=build, memories=memories, counters=(),
                progress=("progress",), diagnose="tilelab.drive.mesh:diagnose_mesh",
                read="tilelab.drive.mesh:read_mesh",
                args={"rows": config.rows, "cols": config.cols}, idle=("dump", "sel", "cnt_addr"), dump="dump",
                sims=MESH_SIMS)


async def diagnose_bulk_reduce(io) -> str:
    """Say how far the all-reduce came."""
    return f"all-reduce: {io.get('sent')} flits sent, {io.get('received')} delivered, stuck={io.get('stuck')}"


def bulk_reduce_unit(rows: int, cols: int, lanes: int, depth: int) -> Unit:
    """The bulk all-reduce harness (:class:`~tilelab.noc.bulk.BulkReduceHarness`): one memory per node.

    Parameters
    ----------
    rows, cols : int
        Mesh size.
    lanes : int
        int32 lanes per flit (a memory word).
    depth : int
        Words per node memory.

    Returns
    -------
    Unit
        Its run takes the input ``flits``.
    """
    from tilelab.noc.bulk import BulkReduceHarness

    def build(init):
        if init is None:
            return BulkReduceHarness(rows=rows, cols=cols, lanes=lanes, depth=depth)
        return BulkReduceHarness(rows=rows, cols=cols, lanes=lanes, depth=depth, mem_impl="amaranth", init=init)

    memories = tuple(Memory(node_memory_name(y, x), 4 * lanes) for y in range(rows) for x in range(cols))
    return Unit(name="bulk-reduce", key=f"{rows},{cols},{lanes},{depth}", top="bulk_reduce", build=build,
                memories=memories, counters=("cycles", "sent", "received"), progress=("sent", "received"),
                diagnose="tilelab.drive.mesh:diagnose_bulk_reduce", dump="dump")
