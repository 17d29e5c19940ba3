"""The bench that runs a compiled layer on a mesh of tiles: start, let the RTL run, dump, read counters.

Python wakes up only every few thousand cycles to look at the mesh's progress counter (the
watchdog); the data movers and tiles run on their own. Counters are read after ``done`` through the
mesh's read-out port.
"""

from tilelab.hdl.formats.mesh import NODE_COUNTERS, PORT_COUNTERS
from tilelab.hdl.formats.noc import Direction
from tilelab.hdl.formats.tile import EngineState
from tilelab.noc.mesh import CounterKind, counter_address
from tilelab.pe_models.mesh import PLANES, READ_SLOTS, MoverState
from tilelab.sim.io import SimulationStalled, SimulationTimeout

__all__ = ["mesh_run_bench", "diagnose_mesh"]

_SLOT = {name: k for k, name in enumerate(READ_SLOTS)}


async def _read(io, sel):
    io.set("sel", sel)
    await io.tick()
    return io.get("sel_data")


async def _node(io, index, names):
    return {n: await _read(io, index * 64 + _SLOT[n]) for n in names}


def _engine(value):
    try:
        return EngineState(value).name
    except ValueError:
        return str(value)


async def diagnose_mesh(io, rows, cols) -> str:
    """Say what every unfinished tile node waits on (data-mover descriptor, semaphore, all-reduce, tile
    engines)."""
    parts = []
    for i in range(rows):
        for j in range(cols):
            v = await _node(io, i * cols + j, [n for n in READ_SLOTS if n.startswith(("mover.", "status."))])
            try:
                state = MoverState(v["mover.state"]).name
            except ValueError:
                state = str(v["mover.state"])
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
                eng = {k: _engine(v[f"status.{k}_state"]) for k in ("reader", "compute", "writer")}
                where += (f", tile reader {eng['reader']} / compute {eng['compute']} / writer {eng['writer']}, "
                          f"CB occupancy act={v['status.act_words']} words, wgt={v['status.wgt_pages']} "
                          f"param={v['status.param_pages']} out={v['status.out_entries']}")
            parts.append(where)
    return "; ".join(parts) if parts else "every data mover has ended (the network or a memory port is busy)"


async def mesh_run_bench(io, *, rows, cols, stall_cycles=20_000, max_cycles=None, links=True):
    """Start every node, wait for done (watchdog on), dump the memories, return all counters."""
    import time

    for port in ("start", "dump", "sel", "cnt_addr"):
        io.set(port, 0)
    await io.reset()
    t0 = time.perf_counter()
    io.set("start", 1)
    await io.tick()
    io.set("start", 0)
    try:
        await io.run_until("done", progress=["progress"], stall_cycles=stall_cycles, max_cycles=max_cycles,
                           check_every=4096)
    except (SimulationStalled, SimulationTimeout) as err:
        detail = await diagnose_mesh(io, rows, cols)
        raise type(err)(f"{err} {detail}".strip()) from None
    run_seconds = time.perf_counter() - t0
    io.set("dump", 1)
    await io.tick()
    io.set("dump", 0)
    await io.tick()

    out = {"run_seconds": run_seconds, "cycles": io.get("cycles"), "dropped": io.get("dropped"),
           "bad_flits": io.get("bad_flits"), "tiles": [], "ports": [], "links": []}
    names = [n for n in READ_SLOTS if n.startswith(("tile.", "node.", "elt."))]
    for i in range(rows):
        for j in range(cols):
            v = await _node(io, i * cols + j, names)
            out["tiles"].append({"i": i, "j": j, **{n.split(".", 1)[1] if n.startswith("node.") else n: v[n]
                                                      for n in names}})
    for i in range(rows):
        base = (rows * cols + i) * 64
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
