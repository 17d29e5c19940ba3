"""Benches for the simulation-layer tests (module level, so simulator processes can import them)."""


async def count_to(io, *, limit, stall_at=None):
    """Count to ``limit``; with ``stall_at``, drop ``en`` there so the watchdog must fire."""
    await io.reset()
    io.set("limit", limit)
    io.set("en", 1)
    if stall_at is not None:
        await io.tick(stall_at)
        io.set("en", 0)

    def diagnose(io):
        return f"counter held at {io.get('count')} of {limit} with en={io.get('en') if io.has('en') else '?'}"

    cycles = await io.run_until("done", progress=["count"], stall_cycles=200, check_every=64, diagnose=diagnose)
    return {"cycles": cycles, "count": io.get("count")}


async def wait_for_done(io, *, limit, max_cycles):
    """Wait for ``done`` with :meth:`IO.wait_until` (raises on timeout)."""
    await io.reset()
    io.set("limit", limit)
    io.set("en", 1)
    waited = await io.wait_until("done", 1, max_cycles=max_cycles)
    return {"waited": waited, "count": io.get("count")}


async def fail_assert(io):
    """A bench whose check fails."""
    await io.tick(3)
    assert io.get("count") == 99, f"count is {io.get('count')}, not 99"
