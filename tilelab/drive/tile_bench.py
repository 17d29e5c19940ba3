"""The bench that runs a compiled program on a tile: start, let the RTL run, dump, read counters.

Python wakes up only every ``check_every`` cycles to look at progress counters (the watchdog); the
tile fetches its descriptors and data from external memory on its own.
"""

from tilelab.hdl.formats.tile import EngineState
from tilelab.pe_models.tile import TILE_COUNTERS, TILE_STATUS

#: Counters whose movement means the tile makes progress.
PROGRESS = ("ext_bytes_read", "mac_steps", "ext_bytes_written", "cmd_bytes_read", "l1_writes")


def diagnose_tile(io) -> str:
    """Say which engine waits on which circular buffer (for the watchdog's error)."""
    def state(name):
        try:
            return EngineState(io.get(name)).name
        except ValueError:
            return str(io.get(name))

    rs, cs, ws = state("reader_state"), state("compute_state"), state("writer_state")
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


async def tile_run_bench(io, *, stall_cycles=20_000, max_cycles=None, check_every=4096):
    """Start the tile, wait for done (watchdog on), dump external memory, return the counters."""
    import time

    await io.reset()
    t0 = time.perf_counter()
    io.set("start", 1)
    await io.tick()
    io.set("start", 0)
    await io.run_until("done", progress=list(PROGRESS), stall_cycles=stall_cycles, max_cycles=max_cycles,
                       check_every=check_every, diagnose=diagnose_tile)
    run_seconds = time.perf_counter() - t0
    io.set("ext_dump", 1)
    await io.tick()
    io.set("ext_dump", 0)
    io.dump_memory("extmem")
    await io.tick()
    out = {name: io.get(name) for name in TILE_COUNTERS}
    out.update({name: io.get(name) for name in TILE_STATUS})
    out["run_seconds"] = run_seconds
    return out
