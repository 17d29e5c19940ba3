"""Mesh generators: one plane of routers wired as an R × C mesh, and the three-plane network.

Counters of every router are read through one address / data port (:func:`counter_address`),
so a simulation that sees only top-level ports can still read them.
"""

from amaranth.hdl import DomainRenamer, Module, Signal
from amaranth.lib import enum, wiring
from amaranth.lib.wiring import In, Out

from tilelab.checks import check_int
from tilelab.hdl.clockgate import gated_domain
from tilelab.hdl.formats.noc import Coord, Direction, flit_layout
from tilelab.noc.common import DIRS, OPPOSITE, LocalSignature, any_of, check_mesh, neighbour
from tilelab.noc.multicast import MulticastRouter
from tilelab.noc.router import UnicastRouter, link_port_name

__all__ = ["Mesh", "Plane", "CounterKind", "counter_address", "local_port_name", "COUNTER_SLOTS"]

#: Counter slots per router: the five ports, then the ejection buffer (``HELD`` only).
COUNTER_SLOTS = 8


class Plane(enum.Enum):
    """Which router a mesh plane is made of."""
    UNICAST = "unicast"
    MULTICAST = "multicast"


class CounterKind(enum.Enum, shape=2):
    """What a counter address reads: flits sent by an output, stall cycles of an output, or
    flits buffered at an input (slot 5: the ejection buffer)."""
    FLITS = 0
    STALLS = 1
    HELD = 2


def counter_address(mesh_cols, x, y, slot, kind):
    """Address of a counter on a mesh's ``cnt_addr`` port.

    Parameters
    ----------
    mesh_cols : int
        Columns of the mesh.
    x, y : int
        Router.
    slot : Direction or int
        Port (5 = ejection buffer, for :attr:`CounterKind.HELD`).
    kind : CounterKind
    """
    slot = slot.value if isinstance(slot, Direction) else slot
    return ((y * mesh_cols + x) * COUNTER_SLOTS + slot) * 4 + CounterKind(kind).value


def local_port_name(x, y):
    """Name of the local-port member of node ``(x, y)``: ``local_{x}_{y}``."""
    return f"local_{x}_{y}"


class Mesh(wiring.Component):
    """An R × C mesh of one kind of router, each node's local port exposed as streams.

    Parameters
    ----------
    rows, cols : int
        Mesh size, 1..16 each.
    plane : Plane or str
        ``"unicast"`` (:class:`~tilelab.noc.router.UnicastRouter`, for request and response
        planes) or ``"multicast"`` (:class:`~tilelab.noc.multicast.MulticastRouter`).
    data_width : int
        Payload bits per flit.
    depth : int, optional
        Flits per router queue (a power of two; default 8).
    max_packet : int
        Multicast plane only: longest packet, in flits.
    watchdog : int
        Cycles without any flit moving, while flits are buffered, before :attr:`stuck` rises.
    shared : SharedModules, optional
        Elaborate one router module for the whole plane (coordinates on an input port) and
        instantiate it at every node; the mesh's Verilog and Verilator's model shrink by the
        number of routers. Verilog simulators only.

    Every router runs on its own gated clock (:func:`tilelab.hdl.clockgate.gated_domain`): it
    ticks only on cycles in which it holds a flit or a flit, credit or injection arrives, so idle
    routers keep their state and cost a compiled simulator almost nothing.

    Members
    -------
    local_{x}_{y} : Out(LocalSignature(flit))
        Node ``(x, y)``: ``.i`` into the network, ``.o`` out of it.
    dropped : Out(32)
        Packets dropped for a destination outside the mesh (all routers).
    idle : Out(1)
        No flit is buffered anywhere.
    stuck : Out(1)
        Flits are buffered but none has moved for ``watchdog`` cycles.
    cnt_addr : In(16), cnt_data : Out(32)
        Counter read-out (combinational), addressed by :func:`counter_address`.
    """

    def __init__(self, *, rows, cols, plane="unicast", data_width=32, depth=None, max_packet=4,
                 watchdog=1024, shared=None):
        check_mesh(rows, cols)
        try:
            plane = Plane(plane)
        except ValueError:
            raise ValueError(f"mesh plane must be 'unicast' or 'multicast', not {plane!r}") from None
        check_int("mesh data_width", data_width, 1)
        check_int("mesh watchdog", watchdog, 1)
        self.rows, self.cols, self.plane = rows, cols, plane
        self.data_width, self.watchdog = data_width, watchdog
        self.depth = depth if depth is not None else 8
        self.max_packet = max_packet
        self.layout = flit_layout(data_width)
        self.shared = shared
        # build the routers now so that bad parameters fail here, not at elaboration
        self.routers = {}
        for y in range(rows):
            for x in range(cols):
                at = {} if shared is not None else {"x": x, "y": y}
                if plane is Plane.UNICAST:
                    self.routers[x, y] = UnicastRouter(**at, rows=rows, cols=cols,
                                                       data_width=data_width, depth=self.depth)
                else:
                    self.routers[x, y] = MulticastRouter(**at, rows=rows, cols=cols,
                                                         data_width=data_width, depth=self.depth,
                                                         max_packet=max_packet)
        members = {local_port_name(x, y): Out(LocalSignature(self.layout))
                   for y in range(rows) for x in range(cols)}
        members.update({
            "dropped": Out(32),
            "idle": Out(1),
            "stuck": Out(1),
            "cnt_addr": In(16),
            "cnt_data": Out(32),
        })
        super().__init__(members)

    def local(self, x, y):
        """The local-port interface of node ``(x, y)``."""
        return getattr(self, local_port_name(x, y))

    def elaborate(self, platform):
        m = Module()
        key = f"{self.plane.value},{self.rows},{self.cols},{self.data_width},{self.depth},{self.max_packet}"
        for (x, y), router in self.routers.items():
            # Each router's clock is gated: it ticks only while it holds a flit or a flit or credit
            # arrives (on every other cycle none of its registers would change).
            clock = f"router_{x}_{y}"
            links = [getattr(router, link_port_name("in", d)).valid for d in DIRS]
            links += [getattr(router, link_port_name("out", d)).credit.any() for d in DIRS]
            gated_domain(m, clock, any_of([h != 0 for h in router.held] + links + [router.local.i.valid]))
            if self.shared is None:
                m.submodules[f"router_{x}_{y}"] = DomainRenamer(clock)(router)
            else:
                kind = f"tilelab_{self.plane.value}_router"
                m.submodules[f"router_{x}_{y}"] = self.shared.instance(router, kind=kind, key=key, domain=clock)
                m.d.comb += router.at.eq(Coord.const({"x": x, "y": y}))
            wiring.connect(m, wiring.flipped(self.local(x, y)), router.local)
            for d in DIRS:
                nx, ny = neighbour(x, y, d)
                if (nx, ny) in self.routers:
                    other = self.routers[nx, ny]
                    wiring.connect(m, getattr(router, link_port_name("out", d)),
                                   getattr(other, link_port_name("in", OPPOSITE[d])))

        routers = list(self.routers.values())
        m.d.comb += self.dropped.eq(sum(r.dropped for r in routers))
        busy = any_of([h != 0 for r in routers for h in r.held])
        moved = any_of([r.moved for r in routers])
        m.d.comb += self.idle.eq(~busy)

        quiet = Signal(range(self.watchdog + 1))
        with m.If(moved | ~busy):
            m.d.sync += quiet.eq(0)
        with m.Elif(quiet != self.watchdog):
            m.d.sync += quiet.eq(quiet + 1)
        m.d.comb += self.stuck.eq(quiet == self.watchdog)

        with m.Switch(self.cnt_addr):
            for (x, y), r in self.routers.items():
                for slot in range(6):
                    if slot < 5:
                        with m.Case(counter_address(self.cols, x, y, slot, CounterKind.FLITS)):
                            m.d.comb += self.cnt_data.eq(r.flits[slot])
                        with m.Case(counter_address(self.cols, x, y, slot, CounterKind.STALLS)):
                            m.d.comb += self.cnt_data.eq(r.stalls[slot])
                    with m.Case(counter_address(self.cols, x, y, slot, CounterKind.HELD)):
                        m.d.comb += self.cnt_data.eq(r.held[slot])
        return m
