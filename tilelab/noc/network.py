"""The whole NoC of a mesh of tiles: request, response and multicast planes plus collective
contexts, each a separate physical network."""

from amaranth.hdl import Cat, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from tilelab.checks import check_int
from tilelab.noc.collective import CollectiveMesh
from tilelab.noc.common import LocalSignature, check_mesh
from tilelab.noc.mesh import Mesh

__all__ = ["Network", "PLANES"]

#: Unicast / multicast planes of a :class:`Network`, by port-name prefix.
PLANES = {"req": "unicast", "resp": "unicast", "mcast": "multicast"}


class Network(wiring.Component):
    """Request, response and multicast planes and ``contexts`` collective planes over an R × C mesh.

    Requests (writes, reads, semaphore increments) travel on ``req``, their answers (read data,
    acknowledgements) on ``resp`` — so a node that waits to send a response never blocks
    requests — multicasts on ``mcast`` and all-reduces on ``coll{k}``: no traffic class can
    deadlock against another.  A receiver learns what arrived from the header every flit
    carries (``op``, ``src``, ``addr``, ``sem``; :class:`~tilelab.hdl.formats.noc.Header`).

    Parameters
    ----------
    rows, cols : int
        Mesh size, 1..16 each.
    data_width : int
        Payload bits per unicast / multicast flit.
    lanes : int
        int32 lanes per collective flit.
    contexts : int
        Collective planes (collectives that may overlap in time).
    depth : int
        Router queue depth (a power of two).
    max_packet : int
        Longest multicast packet, in flits.

    Members
    -------
    req_{x}_{y}, resp_{x}_{y}, mcast_{x}_{y} : Out(LocalSignature(flit))
        Node ``(x, y)``'s port on each plane: ``.i`` into the network, ``.o`` out of it.
    coll{k}_{x}_{y} : Out(LocalSignature(collective flit))
        Node ``(x, y)``'s port on collective context ``k``.
    dropped : Out(32)
        Packets dropped for a destination outside the mesh, all planes.
    idle, stuck : Out(1)
        Nothing buffered anywhere; some plane's watchdog fired.
    """

    def __init__(self, *, rows, cols, data_width=64, lanes=4, contexts=2, depth=8, max_packet=4, watchdog=1024):
        check_mesh(rows, cols)
        check_int("network contexts", contexts, 0, 4)
        self.rows, self.cols = rows, cols
        self.planes = {name: Mesh(rows=rows, cols=cols, plane=kind, data_width=data_width, depth=depth,
                                  max_packet=max_packet, watchdog=watchdog) for name, kind in PLANES.items()}
        self.collectives = [CollectiveMesh(rows=rows, cols=cols, lanes=lanes, watchdog=watchdog)
                            for _ in range(contexts)]
        members = {}
        for y in range(rows):
            for x in range(cols):
                for name, mesh in self.planes.items():
                    members[f"{name}_{x}_{y}"] = Out(LocalSignature(mesh.layout))
                for k, coll in enumerate(self.collectives):
                    members[f"coll{k}_{x}_{y}"] = Out(LocalSignature(coll.layout))
        members.update({"dropped": Out(32), "idle": Out(1), "stuck": Out(1)})
        super().__init__(members)

    def port(self, plane, x, y):
        """Node ``(x, y)``'s local port on ``plane`` (``"req"``, ``"resp"``, ``"mcast"`` or ``"coll0"``...)."""
        return getattr(self, f"{plane}_{x}_{y}")

    def elaborate(self, platform):
        m = Module()
        for name, mesh in self.planes.items():
            m.submodules[name] = mesh
        for k, coll in enumerate(self.collectives):
            m.submodules[f"coll{k}"] = coll
        for y in range(self.rows):
            for x in range(self.cols):
                for name, mesh in self.planes.items():
                    wiring.connect(m, wiring.flipped(self.port(name, x, y)), mesh.local(x, y))
                for k, coll in enumerate(self.collectives):
                    wiring.connect(m, wiring.flipped(self.port(f"coll{k}", x, y)), coll.local(x, y))
        nets = [*self.planes.values(), *self.collectives]
        m.d.comb += [
            self.dropped.eq(sum(mesh.dropped for mesh in self.planes.values())),
            self.idle.eq(Cat(*(n.idle for n in nets)).all()),
            self.stuck.eq(Cat(*(n.stuck for n in nets)).any()),
        ]
        return m
