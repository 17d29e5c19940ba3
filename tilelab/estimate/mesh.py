"""A conv layer sharded over a mesh of tiles: cycles from the data movers' programs and the tiles'.

The mesh compiler (:func:`tilelab.compile.mesh.compile_conv_mesh`) gives every node's
:class:`~tilelab.hdl.formats.mesh.MoveDesc` list and the pixels × channels of each tile program it
runs. Every tile program is estimated as on one tile (:func:`~tilelab.estimate.tile.estimate_conv`
with the node's input layout), and the rest is modelled as the RTL runs it
(:mod:`tilelab.pe_models.mesh`), in order of time:

* a **data mover** fetches each descriptor (``64 / W + 2`` cycles), issues a GET's read requests
  one row a cycle, streams a PUT one flit a cycle and goes on once the last flit is in the network,
  waits for a semaphore, or resets and starts its tile and waits for it;
* a **memory port** answers one read request at a time, one word a cycle, on the response plane or
  multicast to a rectangle;
* a flit takes one cycle a hop (XY routes, the edge ports in column 0) plus the injection and the
  ejection; a node's network interface stores one arriving flit a cycle, whichever plane it comes
  on, so transfers arriving together at a node queue there (and hold up their senders); the
  semaphore of a transfer counts when its last flit is stored.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from math import ceil

import numpy as np

from tilelab.compile.mesh import MeshProgram, compile_conv_mesh
from tilelab.hdl.formats.mesh import MOVE_DESC_BYTES, MoveOp
from tilelab.pe_models.config import MeshConfig
from tilelab.reference.layers import Conv2dSpec

from .tile import estimate_conv

__all__ = ["MeshEstimate", "estimate_conv_mesh", "estimate_mesh_program"]

#: Cycles from a flit leaving its sender to it being stored by the receiver, besides one a hop.
NOC_LATENCY = 3
#: Flits the network holds on a path (router queues): a sender runs this far ahead of a busy receiver.
NOC_BUFFER = 8


def _ceil(a, b):
    return -(-a // b)


@dataclass(frozen=True)
class MeshEstimate:
    """The estimate of one conv layer on a mesh of tiles.

    Attributes
    ----------
    cycles : int
        Predicted cycles from start to done (the mesh's ``cycles`` counter).
    macs, peak_macs_per_cycle : int
        Useful MACs; R·C of a tile times the tiles.
    nodes : dict
        ``(i, j)`` → ``{"cycles", "tile_cycles", "wait_cycles", "runs"}``: when the node's data
        mover ends, its tile programs' cycles, the cycles it waited for data.
    programs : dict
        ``(i, j)`` → the :class:`~tilelab.estimate.tile.TileEstimate` of each tile program it runs.
    bound : str
        ``tiles`` when the tile programs take most of the critical node's cycles (then
        :attr:`tile_bound` says what sets them), else ``data movement`` (weights, activations and
        halos arriving over the NoC, descriptor fetches).
    tile_bound : str
        The bound of the critical node's longest tile program.
    physical : dict
        Lower bounds no mapping can beat: ``compute`` = MACs ÷ (tiles · R·C), ``memory_ports`` =
        weight bytes read ÷ (ports · W).
    ext_bytes_read : int
        Bytes the memory ports read (weights and parameters).
    """

    cycles: int
    macs: int
    peak_macs_per_cycle: int
    nodes: dict
    programs: dict = field(repr=False)
    bound: str
    tile_bound: str
    physical: dict
    ext_bytes_read: int

    @property
    def mac_utilization(self) -> float:
        """``macs / (cycles · peak)``."""
        return self.macs / (self.cycles * self.peak_macs_per_cycle) if self.cycles else 0.0

    @property
    def physical_bound(self) -> int:
        return max(self.physical.values())


class _Flow:
    """Flits on their way from one sender to one or more receivers (a multicast moves in lockstep)."""

    __slots__ = ("receivers", "left", "flits", "start", "rate", "done", "on_done")

    def __init__(self, receivers, flits, start, on_done):
        self.receivers, self.left, self.flits, self.start = receivers, float(flits), flits, start
        self.rate, self.on_done = 0.0, on_done


class _Sim:
    """Events in order of time, and the network as a fluid: the flows that arrive at a node's network
    interface share its one flit a cycle fairly (max-min), each flow at most one flit a cycle."""

    def __init__(self, config: MeshConfig):
        self.cfg = config
        self.heap = []
        self.seq = 0
        self.flows = []
        self.now = 0.0
        self.port_free = {}
        self.port_queue = {}
        self.port_read = {}
        self.sems = {}
        self.waiters = {}

    def at(self, t, fn, *args):
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, fn, args))

    def run(self):
        while self.heap or self.flows:
            t_event = self.heap[0][0] if self.heap else float("inf")
            t_flow, flow = self._next_completion()
            if t_flow <= t_event:
                self._advance(t_flow)
                self.flows.remove(flow)
                self._share()
                flow.on_done(ceil(t_flow - 1e-9))
            else:
                t, _, fn, args = heapq.heappop(self.heap)
                self._advance(t)
                fn(t, *args)

    # -- the network -----------------------------------------------------------------------------
    def _next_completion(self):
        best, which = float("inf"), None
        for f in self.flows:
            if f.rate > 0:
                t = self.now + f.left / f.rate
                if t < best:
                    best, which = t, f
        return best, which

    def _advance(self, t):
        dt = t - self.now
        if dt > 0:
            for f in self.flows:
                f.left -= f.rate * dt
            self.now = t

    def _share(self):
        """Max-min fair rates: every flow at most 1, every network interface at most 1 in all."""
        frozen = set()
        for f in self.flows:
            f.rate = 0.0
        active = list(self.flows)
        while active:
            # the largest equal increase before a flow reaches 1 or an interface fills up
            load = {}
            for f in active:
                for r in f.receivers:
                    load[r] = load.get(r, 0) + 1
            used = {}
            for f in self.flows:
                for r in f.receivers:
                    used[r] = used.get(r, 0.0) + f.rate
            step = min([1.0 - active[0].rate] + [(1.0 - used[r]) / n for r, n in load.items()])
            for f in active:
                f.rate += step
            full = {r for r in load if used[r] + step * load[r] >= 1.0 - 1e-9}
            frozen = {id(f) for f in active if f.rate >= 1.0 - 1e-9 or any(r in full for r in f.receivers)}
            active = [f for f in active if id(f) not in frozen]

    def send(self, t0, src, receivers, flits, on_done):
        """Flits injected from cycle ``t0`` on; ``on_done(t)`` when the last is stored at every receiver."""
        hop = max(self.hops(src, r) for r in receivers) + NOC_LATENCY
        self.at(t0 + hop, self._start_flow, receivers, flits, on_done)

    def _start_flow(self, t, receivers, flits, on_done):
        self.flows.append(_Flow(receivers, flits, t, on_done))
        self._share()

    @staticmethod
    def hops(a, b):
        return abs(a[0] - b[0]) + abs(a[1] - b[1])

    def transfer(self, t0, src, receivers, flits, sem, signal, sender_done):
        """A transfer whose last flit counts semaphore ``sem`` of every receiver (if ``signal``);
        ``sender_done(t)`` when its last flit has entered the network."""
        hop = max(self.hops(src, r) for r in receivers) + NOC_LATENCY

        def done(t):
            if signal:
                for r in receivers:
                    self.at(t + 1, self.sem_inc, r, sem)
            sender_done(max(t0 + flits - 1, t - hop - NOC_BUFFER))

        self.send(t0, src, receivers, flits, done)

    def request(self, t, node, port, words, dst, sem, signal):
        """A read request flit injected at ``t`` by ``node`` for ``words`` words of memory port ``port``,
        answered to ``dst`` (a list of receivers)."""
        self.at(t + self.hops(node, port) + NOC_LATENCY, self._queue, port, words, dst, sem, signal)

    def _queue(self, t, port, words, dst, sem, signal):
        q = self.port_queue.setdefault(port, [])
        q.append((words, dst, sem, signal))
        if len(q) == 1:         # the port is idle, or finishing its last answer
            self.at(max(t + 1, self.port_free.get(port, 0)), self._serve, port)

    def _serve(self, t, port):
        words, dst, sem, signal = self.port_queue[port][0]
        self.port_read[port] = self.port_read.get(port, 0) + words

        def finished(t_last):
            self.port_queue[port].pop(0)
            self.port_free[port] = t_last + 2
            if self.port_queue[port]:
                self.at(t_last + 2, self._serve, port)

        self.transfer(t + 1, port, dst, words, sem, signal, finished)

    # -- semaphores ------------------------------------------------------------------------------
    def sem_inc(self, t, node, sem):
        key = (node, sem)
        self.sems[key] = self.sems.get(key, 0) + 1
        w = self.waiters.get(key)
        if w is not None and self.sems[key] >= w[0]:
            del self.waiters[key]
            self.sems[key] -= w[0]
            w[1](t + 1)

    def wait(self, t, node, sem, count, resume):
        key = (node, sem)
        if self.sems.get(key, 0) >= count:
            self.sems[key] -= count
            resume(t + 1)
        else:
            self.waiters[key] = (count, resume)


class _Mover:
    """One node's data mover running its descriptors."""

    def __init__(self, sim: _Sim, key, coord, moves, runs):
        self.sim, self.key, self.coord = sim, key, coord
        self.moves, self.runs = moves, runs
        self.pc = 0
        self.fetch = max(1, MOVE_DESC_BYTES // sim.cfg.word_bytes) + 2
        self.wait_cycles = 0
        self.end = None
        self.tile_cycles = 0
        self.phase = 0

    def start(self, t):
        self.sim.at(t, self.step)

    def step(self, t):
        if self.pc >= len(self.moves):
            self.end = t
            return
        d = self.moves[self.pc]
        self.pc += 1
        t += self.fetch                     # in MOVE from here
        sim = self.sim
        op = d["op"]
        if op in (MoveOp.GET, MoveOp.GET_MCAST):
            rows = d["rows"]
            if op == MoveOp.GET_MCAST:
                (x0, y0), (x1, y1) = d["rect0"], d["rect1"]
                dst = [(x, y) for y in range(y0, y1 + 1) for x in range(x0, x1 + 1)]
            else:
                dst = [self.coord]
            for r in range(rows):
                sim.request(t + 1 + r, self.coord, d["node"], d["words"], dst, d["sem"], r == rows - 1)
            sim.at(t + rows + 1, self.step)
        elif op == MoveOp.PUT:
            if d.get("mcast"):
                (x0, y0), (x1, y1) = d["rect0"], d["rect1"]
                dst = [(x, y) for y in range(y0, y1 + 1) for x in range(x0, x1 + 1)]
            else:
                dst = [d["node"]]
            flits = d["rows"] * d["words"]
            sim.transfer(t + 2, self.coord, dst, flits, d["sem"], True, lambda t2: sim.at(t2 + 3, self.step))
        elif op == MoveOp.WAIT:
            begin = t + 1

            def resume(t2, begin=begin):
                self.wait_cycles += max(0, t2 - 1 - begin)
                self.step(t2)

            sim.wait(begin, self.coord, d["sem"], d["count"], resume)
        elif op == MoveOp.SIGNAL:
            sim.at(t + 1 + sim.hops(self.coord, d["node"]) + NOC_LATENCY, sim.sem_inc, d["node"], d["sem"])
            sim.at(t + 1, self.step)
        elif op == MoveOp.RUN:
            cycles = self.runs[self.phase].cycles
            self.phase += 1
            self.tile_cycles += cycles
            sim.at(t + cycles + 3, self.step)
        elif op == MoveOp.END:
            self.end = t
        else:
            raise ValueError(f"node {self.key}: the mesh estimate has no model of {op!r} descriptors")


def estimate_mesh_program(program: MeshProgram, *, out: str = "int8") -> MeshEstimate:
    """Estimate a compiled mesh program (:func:`tilelab.compile.mesh.compile_conv_mesh`).

    Parameters
    ----------
    program : MeshProgram
    out : {"int8", "int32"}
        The layer's output format (as compiled).
    """
    cfg, spec = program.config, program.spec
    tcfg = cfg.tile
    W = cfg.word_bytes
    S = _ceil(spec.cin, W) * W
    sim = _Sim(cfg)
    programs, movers = {}, {}
    for key, node in program.nodes.items():
        runs = [estimate_conv(spec, tcfg, out=out, pixels=node.pixels, channels=ch, x_pix_stride=S, whole_image=False)
                for ch in node.programs]
        programs[key] = runs
        mover = _Mover(sim, key, cfg.tile_coord(*key), node.moves, runs)
        movers[key] = mover
        mover.start(1)
    sim.run()
    stuck = [key for key, m in movers.items() if m.end is None]
    if stuck:
        raise RuntimeError(f"the mesh model is stuck: nodes {stuck} wait on semaphores no transfer signals")
    nodes = {key: {"cycles": m.end - 1, "tile_cycles": m.tile_cycles, "wait_cycles": m.wait_cycles,
                   "runs": len(m.runs)} for key, m in movers.items()}
    cycles = max(n["cycles"] for n in nodes.values()) + 1
    crit = max(nodes, key=lambda k: nodes[k]["cycles"])
    macs = sum(r.macs for runs in programs.values() for r in runs)
    longest = max(programs[crit], key=lambda r: r.cycles, default=None)
    bound = "tiles" if nodes[crit]["tile_cycles"] * 2 >= nodes[crit]["cycles"] else "data movement"
    read = sum(sim.port_read.values()) * W
    physical = {"compute": _ceil(spec.macs, cfg.tiles * tcfg.peak_macs_per_cycle),
                "memory_ports": _ceil(program.weight_bytes_once, cfg.rows * W)}
    return MeshEstimate(cycles=cycles, macs=macs, peak_macs_per_cycle=cfg.tiles * tcfg.peak_macs_per_cycle,
                        nodes=nodes, programs=programs, bound=bound,
                        tile_bound=longest.bound if longest is not None else "overhead", physical=physical,
                        ext_bytes_read=read)


def estimate_conv_mesh(spec: Conv2dSpec, config: MeshConfig, *, shard: str = "height",
                       weight_load: str = "multicast", out: str = "int8") -> MeshEstimate:
    """Estimate one conv layer sharded over a mesh (as :func:`tilelab.api.mesh.conv2d_mesh` runs it).

    Parameters
    ----------
    spec : Conv2dSpec
    config : MeshConfig
    shard : {"height", "width", "block"}
    weight_load : {"stream", "multicast"}
    out : {"int8", "int32"}

    Raises
    ------
    tilelab.compile.mesh.MeshError, tilelab.compile.tile.LayoutError
        As the mesh compiler would.
    """
    if not isinstance(spec, Conv2dSpec):
        raise TypeError(f"spec must be a Conv2dSpec, not {spec!r}")
    if not isinstance(config, MeshConfig):
        raise TypeError(f"config must be a MeshConfig, not {config!r}")
    if out not in ("int8", "int32"):
        raise ValueError(f"out must be 'int8' or 'int32', not {out!r}")
    x = np.zeros(spec.input_shape, np.int8)
    w = np.zeros((spec.cout, spec.kh, spec.kw, spec.cin // spec.groups), np.int8)
    program = compile_conv_mesh(x, w, np.zeros(spec.cout, np.int32), spec, config, shard=shard,
                                weight_load=weight_load, out_int32=out == "int32")
    return estimate_mesh_program(program, out=out)
