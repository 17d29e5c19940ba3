"""A backend-neutral handle on a design's top-level ports, for testbenches that run anywhere.

A bench is ``async def bench(io, **args)``. The same bench runs under Amaranth's simulator
(:class:`AmaranthIO`) and under cocotb on Verilator or Icarus (:class:`CocotbIO`).

Timing contract, identical on every backend:

* ``await io.tick(n)`` returns just after the n-th next rising clock edge, when registers hold
  their new values;
* ``io.get(name)`` reads a port (the raw bits as a non-negative int; :meth:`IO.get_signed` for
  two's complement);
* ``io.set(name, value)`` drives an input port from now until it is set again; the design samples
  it at the next rising edge.

Long waits do not wake Python every cycle: :meth:`IO.wait_until` and :meth:`IO.run_until` sleep
on value changes and coarse timers, so an autonomous design runs at the simulator's own speed.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["IO", "AmaranthIO", "CocotbIO", "SimulationStalled", "SimulationTimeout"]


class SimulationStalled(RuntimeError):
    """The design made no progress for the watchdog's number of cycles."""


class SimulationTimeout(RuntimeError):
    """A wait exceeded its cycle budget."""


class IO:
    """Common interface; see the module docstring for the timing contract."""

    #: Folder where a bench may write large results (e.g. ``.npy`` files) for the host.
    workdir: Path
    #: Name of the backend: ``"amaranth"``, ``"verilator"`` or ``"icarus"``.
    backend: str

    def width(self, name: str) -> int:
        """Return the width in bits of port ``name``."""
        raise NotImplementedError

    def get(self, name: str) -> int:
        """Return the raw bits of port ``name`` as a non-negative int."""
        raise NotImplementedError

    def set(self, name: str, value: int) -> None:
        """Drive input port ``name`` with ``value`` (negative values are taken modulo 2**width)."""
        raise NotImplementedError

    async def tick(self, n: int = 1) -> None:
        """Advance ``n`` rising clock edges."""
        raise NotImplementedError

    async def _sleep_until_change(self, names: Sequence[str], max_cycles: int) -> None:
        """Sleep until one of ``names`` may have changed or ``max_cycles`` have passed; end just after an edge."""
        raise NotImplementedError

    async def step(self, *sample: str) -> tuple[int, ...]:
        """Read ``sample`` ports as the design settles before the next edge, then advance one edge.

        The values returned are the ones the design itself sees at that edge, whatever the
        simulator's scheduling: the way to observe valid/ready handshakes from a bench.
        """
        raise NotImplementedError

    @property
    def cycle(self) -> int:
        """Rising edges seen since the bench started."""
        raise NotImplementedError

    def get_signed(self, name: str) -> int:
        """Return port ``name`` interpreted as two's complement."""
        v, w = self.get(name), self.width(name)
        return v - (1 << w) if v >> (w - 1) & 1 else v

    def has(self, name: str) -> bool:
        """Return whether the design has a port called ``name``."""
        try:
            self.width(name)
        except KeyError:
            return False
        return True

    def dump_memory(self, name: str) -> None:
        """Make memory ``name`` write its contents to the file of its ``+<name>_dump`` plusarg.

        Call it in the cycle after pulsing the memory's dump port. The Verilog models write the
        file themselves at that pulse; the Amaranth simulator has no file I/O in the design, so its
        :class:`AmaranthIO` writes the same ``$writememh`` format from the memory's contents.
        """

    async def reset(self, cycles: int = 2) -> None:
        """Hold ``rst`` high for ``cycles`` rising edges (when the design has a reset port)."""
        if self.has("rst"):
            self.set("rst", 1)
            await self.tick(cycles)
            self.set("rst", 0)
        await self.tick()

    async def wait_until(self, name: str, value: int, *, max_cycles: int) -> int:
        """Wait until port ``name`` equals ``value``; return the cycles waited.

        Raises
        ------
        SimulationTimeout
            When ``max_cycles`` pass first; the message names the port and its value.
        """
        start = self.cycle
        while self.get(name) != value:
            left = max_cycles - (self.cycle - start)
            if left <= 0:
                raise SimulationTimeout(
                    f"port {name!r} did not become {value!r} within {max_cycles} cycles "
                    f"(it is {self.get(name)!r} at cycle {self.cycle})")
            await self._sleep_until_change([name], left)
        return self.cycle - start

    async def run_until(self, done: str, *, progress: Sequence[str], stall_cycles: int = 10_000,
                        max_cycles: int | None = None, check_every: int = 1024,
                        diagnose: Callable[[IO], str] | None = None) -> int:
        """Let the design run until port ``done`` is 1, with a watchdog.

        Parameters
        ----------
        done : str
            Port that goes high when the design has finished.
        progress : sequence of str
            Ports (counters, pointers) that change while the design makes progress.
        stall_cycles : int
            The watchdog fires when none of ``progress`` changed for this many cycles.
        max_cycles : int, optional
            Absolute budget.
        check_every : int
            How often, in cycles, Python wakes up to look at ``progress``.
        diagnose : callable, optional
            ``diagnose(io) -> str`` (or an awaitable of it, for a diagnosis that reads through
            ports over several cycles) says what was waiting on what; its text ends the error.

        Returns
        -------
        int
            Cycles until ``done``.
        """
        start = self.cycle
        last = [self.get(p) for p in progress]
        last_change = self.cycle
        while self.get(done) != 1:
            now = self.cycle
            if max_cycles is not None and now - start >= max_cycles:
                detail = await _diagnosis(self, diagnose, "")
                raise SimulationTimeout(f"{done!r} not set after {max_cycles} cycles. {detail}".strip())
            await self._sleep_until_change([done], min(check_every, stall_cycles))
            cur = [self.get(p) for p in progress]
            if cur != last:
                last, last_change = cur, self.cycle
            elif self.cycle - last_change >= stall_cycles:
                detail = await _diagnosis(self, diagnose, "no diagnosis available")
                raise SimulationStalled(
                    f"no progress for {self.cycle - last_change} cycles (watchdog limit {stall_cycles}) "
                    f"at cycle {self.cycle}: {detail}")
        return self.cycle - start


async def _diagnosis(io, diagnose, default: str) -> str:
    """The text of ``diagnose(io)`` (awaited when it is awaitable), or ``default`` without one."""
    if diagnose is None:
        return default
    detail = diagnose(io)
    if inspect.isawaitable(detail):
        detail = await detail
    return detail


class AmaranthIO(IO):
    """:class:`IO` on Amaranth's simulator (wraps a testbench ``ctx``)."""

    backend = "amaranth"

    def __init__(self, ctx, ports: dict[str, object], workdir: Path, *, component=None, plusargs=None):
        from amaranth.hdl import Value

        self._component = component
        self._plusargs = dict(plusargs or {})
        self._ctx = ctx
        self._ports = {k: Value.cast(v) for k, v in ports.items()}
        self._cycle = 0
        self.workdir = workdir

    def width(self, name):
        return len(self._ports[name])

    def get(self, name):
        v = self._ctx.get(self._ports[name])
        return int(v) & ((1 << len(self._ports[name])) - 1)

    def set(self, name, value):
        sig = self._ports[name]
        w = len(sig)
        value = int(value) & ((1 << w) - 1)
        if sig.shape().signed and value >> (w - 1):
            value -= 1 << w
        self._ctx.set(sig, value)

    async def tick(self, n=1):
        if n > 0:
            await self._ctx.tick().repeat(n)
            self._cycle += n

    async def _sleep_until_change(self, names, max_cycles):
        await self.tick(1)

    def dump_memory(self, name):
        path = self._plusargs.get(f"{name}_dump")
        memories = getattr(self._component, "sim_memories", {}) if self._component is not None else {}
        if path is None:
            return
        if name not in memories:
            raise KeyError(f"the design has no simulation memory {name!r}; it has {sorted(memories)!r}")
        mem = memories[name]
        from amaranth.hdl import Shape

        digits = (Shape.cast(mem.shape).width + 3) // 4
        lo = int(self._plusargs.get(f"{name}_dump_lo", 0))
        hi = int(self._plusargs.get(f"{name}_dump_hi", mem.depth - 1))
        words = [int(self._ctx.get(mem[i])) for i in range(lo, hi + 1)]
        Path(path).write_text("".join(f"{w & ((1 << (4 * digits)) - 1):0{digits}x}\n" for w in words))

    async def step(self, *sample):
        values = tuple(self.get(n) for n in sample)
        await self.tick(1)
        return values

    @property
    def cycle(self):
        return self._cycle


class CocotbIO(IO):
    """:class:`IO` on cocotb (Verilator or Icarus); wraps the ``dut`` handle.

    Cycles are counted from simulation time, so a long sleep costs one Python wake-up.
    """

    def __init__(self, dut, *, clock_period_ns: int, backend: str, workdir: Path):
        import cocotb.triggers as t

        self._t = t
        self._dut = dut
        self._period = clock_period_ns
        self._handles = {}
        self._t0 = None
        self.backend = backend
        self.workdir = workdir

    async def start(self):
        """Align to the first rising edge (call once, after the clock was started)."""
        await self._t.RisingEdge(self._h("clk"))
        await self._t.ReadWrite()
        self._t0 = cocotb_time_ns()

    def _h(self, name):
        try:
            return self._handles[name]
        except KeyError:
            pass
        try:
            h = getattr(self._dut, name)
        except AttributeError:
            raise KeyError(name) from None
        self._handles[name] = h
        return h

    def width(self, name):
        return len(self._h(name))

    def get(self, name):
        v = self._h(name).value
        try:
            return v.to_unsigned() if hasattr(v, "to_unsigned") else int(v)
        except ValueError:
            # X/Z bits (Icarus evaluates some combinational blocks only on their first input
            # change) read as 0, as in two-state simulators.
            return int("".join(ch if ch in "01" else "0" for ch in str(v)), 2)

    def set(self, name, value):
        h = self._h(name)
        h.value = int(value) & ((1 << len(h)) - 1)

    async def tick(self, n=1):
        t = self._t
        if n <= 0:
            return
        clk = self._h("clk")
        if n > 2:
            # One Python wake-up for a long stretch: sleep to mid-cycle before the n-th edge.
            await t.Timer(self._period * n - self._period // 2, unit="ns")
            await t.RisingEdge(clk)
        else:
            for _ in range(n):
                await t.RisingEdge(clk)
        await t.ReadWrite()

    async def step(self, *sample):
        t = self._t
        clk = self._h("clk")
        await t.FallingEdge(clk)
        await t.ReadOnly()
        values = tuple(self.get(n) for n in sample)
        await t.RisingEdge(clk)
        await t.ReadWrite()
        return values

    async def _sleep_until_change(self, names, max_cycles):
        t = self._t
        clk = self._h("clk")
        if max_cycles > 1:
            timer = t.Timer(self._period * (max_cycles - 1) + self._period // 2, unit="ns")
            await t.First(timer, *(t.ValueChange(self._h(n)) for n in names))
        await t.RisingEdge(clk)
        await t.ReadWrite()

    @property
    def cycle(self):
        return round((cocotb_time_ns() - self._t0) / self._period)


def cocotb_time_ns() -> float:
    """Current simulation time in ns (cocotb)."""
    from cocotb.simtime import get_sim_time

    return get_sim_time("ns")
