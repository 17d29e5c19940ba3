"""2D-mesh network-on-chip: routers, meshes, traffic and collectives.

Planes (each a separate physical mesh, so traffic classes never block each other):

* request and response: :class:`~tilelab.noc.mesh.Mesh` of
  :class:`~tilelab.noc.router.UnicastRouter` (XY, wormhole, virtual output queues, credits);
* multicast: :class:`~tilelab.noc.mesh.Mesh` of :class:`~tilelab.noc.multicast.MulticastRouter`
  (rectangle multicast forked in the routers);
* collective: :class:`~tilelab.noc.collective.CollectiveMesh` (all-reduce computed in the routers),
  one per context.

:class:`~tilelab.noc.network.Network` puts the planes together for a mesh of tiles;
:mod:`tilelab.noc.api` runs traffic, sweeps, multicasts and all-reduces on simulated RTL.
"""

from tilelab.noc.collective import CollectiveMesh, CollectiveRouter
from tilelab.noc.mesh import CounterKind, Mesh, Plane, counter_address, local_port_name
from tilelab.noc.multicast import MulticastRouter
from tilelab.noc.network import Network
from tilelab.noc.router import UnicastRouter

__all__ = [
    "CollectiveMesh", "CollectiveRouter", "CounterKind", "Mesh", "MulticastRouter", "Network", "Plane",
    "UnicastRouter", "counter_address", "local_port_name",
]
