"""Run a conv layer sharded over a simulated mesh of tiles: :func:`conv2d_mesh`.

The host compiles the layer (:mod:`tilelab.compile.mesh`), loads every node memory and
memory port in bulk, starts the mesh, waits for done, dumps each node's output region, reads the
tile, node, memory-port and link counters, and compares the output with the numpy golden model.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tilelab.api.conv import LayerStats, Requant, cached_design, check_conv_args, conv_golden
from tilelab.compile.mesh import SHARDS, WEIGHT_LOADS, MeshError, MeshProgram, compile_conv_mesh
from tilelab.pe_models.config import DEFAULT_TILE, TileConfig
from tilelab.pe_models.mesh import MeshConfig, node_memory_name
from tilelab.sim import simulate
from tilelab.sim.memimage import read_hex, write_hex

__all__ = ["MeshStats", "conv2d_mesh", "mesh_design", "mesh_layer_stats", "parse_mesh", "run_mesh_program",
           "MESH_SIMS"]

#: Simulators that run a mesh (its memories are Verilog models).
MESH_SIMS = ("verilator", "icarus")


@dataclass
class MeshStats(LayerStats):
    """What one layer run on a mesh measured (:class:`~tilelab.api.conv.LayerStats` plus the mesh's).

    ``macs`` and the ``tiles`` records come from the tiles' counters; ``ext_bytes_read`` /
    ``ext_bytes_written`` from the memory ports'; ``noc_flits`` sums the flits every router sent
    to a neighbour (all planes); ``links`` has one record per router output port and plane.
    """

    mesh: str = ""
    shard: str = ""
    weight_load: str = ""
    halo_bytes: int = 0
    noc_flits: int = 0
    tiles: list = field(default_factory=list)
    ports: list = field(default_factory=list)
    links: list = field(default_factory=list)


def parse_mesh(mesh) -> tuple[int, int]:
    """``"RxC"`` or ``(R, C)`` → ``(R, C)``, each at least 1."""
    if isinstance(mesh, str):
        parts = mesh.lower().split("x")
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            raise MeshError(f"mesh must look like RxC (e.g. 2x2), not {mesh!r}")
        mesh = tuple(int(p) for p in parts)
    if (not isinstance(mesh, tuple | list) or len(mesh) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in mesh)):
        raise MeshError(f"mesh must be (rows, cols) or 'RxC', not {mesh!r}")
    rows, cols = mesh
    if not (1 <= rows <= 16 and 1 <= cols <= 15):
        raise MeshError(f"mesh {rows}x{cols} does not fit the NoC: rows must be 1..16 and cols 1..15")
    return rows, cols


def mesh_design(config: MeshConfig):
    """The mesh's Verilog (converted once per configuration and tilelab version, then cached)."""
    from tilelab.pe_models.mesh import MeshTop

    return cached_design("mesh", config.key(), lambda: MeshTop(config), "mesh_top")


def _as_config(mesh, tile):
    if isinstance(mesh, MeshConfig):
        if tile is not None and tile != mesh.tile:
            raise ValueError("give the tile configuration either in mesh=MeshConfig(...) or as tile=, not both")
        return mesh
    rows, cols = parse_mesh(mesh)
    return MeshConfig(rows=rows, cols=cols, tile=tile if tile is not None else DEFAULT_TILE)


def conv2d_mesh(x, w, bias=None, *, stride=1, padding=0, dilation=1, groups=1, requant: Requant | None = None,
                activation: str | None = None, out: str = "int8", mesh=(2, 2), tile: TileConfig | None = None,
                shard: str = "height", weight_load: str = "multicast", sim: str = "verilator", waves=None,
                workdir=None, stall_cycles: int = 20_000):
    """Run one conv layer sharded over a simulated mesh of tiles; return ``(output, stats)``.

    Parameters
    ----------
    x, w, bias, stride, padding, dilation, groups, requant, activation, out
        As :func:`tilelab.api.conv.conv2d`.
    mesh : MeshConfig or (int, int) or str
        The mesh (``"2x2"``, ``(1, 4)``...); with a size only, every tile is ``tile``.
    tile : TileConfig, optional
        Tile configuration for a mesh given by its size (default: the default tile).
    shard : {"height", "width", "block"}
        How the layer is split (:mod:`tilelab.compile.mesh`).
    weight_load : {"stream", "multicast"}
        How weights reach the tiles.
    sim : {"verilator", "icarus"}
    waves : path, optional
    workdir : path, optional
        Keep the memory images and dumps there.

    Returns
    -------
    (numpy.ndarray, MeshStats)
    """
    if sim not in MESH_SIMS:
        raise ValueError(f"sim must be one of {', '.join(map(repr, MESH_SIMS))} for a mesh, not {sim!r}")
    if shard not in SHARDS:
        raise MeshError(f"shard must be one of {', '.join(SHARDS)}, not {shard!r}")
    if weight_load not in WEIGHT_LOADS:
        raise MeshError(f"weight_load must be one of {', '.join(WEIGHT_LOADS)}, not {weight_load!r}")
    config = _as_config(mesh, tile)
    spec, bias, mult, shift, zp = check_conv_args(x, w, bias, stride=stride, padding=padding, dilation=dilation,
                                                  groups=groups, requant=requant, activation=activation, out=out)
    program = compile_conv_mesh(x, w, bias, spec, config, shard=shard, weight_load=weight_load, multiplier=mult,
                                shift=shift, zero_point=zp, relu=activation == "relu", out_int32=out == "int32")
    if workdir is None:
        work = Path(tempfile.mkdtemp(prefix="tilelab-mesh-"))
        y, value, res = run_mesh_program(program, sim=sim, waves=waves, workdir=work, stall_cycles=stall_cycles)
        shutil.rmtree(work, ignore_errors=True)
    else:
        work = Path(workdir)
        work.mkdir(parents=True, exist_ok=True)
        y, value, res = run_mesh_program(program, sim=sim, waves=waves, workdir=work, stall_cycles=stall_cycles)
    want = conv_golden(x, w, bias, spec, mult, shift, zp, activation=activation, out=out)
    exact = y.shape == want.shape and bool(np.array_equal(y, want))
    return y, mesh_layer_stats(program, value, res, exact)


def run_mesh_program(program: MeshProgram, *, sim="verilator", waves=None, workdir, stall_cycles=20_000):
    """Simulate a compiled mesh program in folder ``workdir``.

    ``program`` is a :class:`~tilelab.compile.mesh.MeshProgram` or a
    :class:`~tilelab.compile.mesh_eltwise.EltwiseMeshProgram`: node images, the memory-port image, each
    node's output words and the assembly of the output from the dumps.

    Returns ``(output, raw counters, SimResult)``.
    """
    work = Path(workdir)
    cfg = program.config
    W = cfg.word_bytes
    plusargs = {}
    for i in range(cfg.rows):
        path = work / f"mem_{i}.hex"
        write_hex(path, program.port_image, W)
        plusargs[f"mem_{i}_init"] = str(path)
    ranges = {}
    for (i, j), node in program.nodes.items():
        name = node_memory_name(i, j)
        write_hex(work / f"{name}.hex", node.image, W)
        lo, hi = program.out_words(node)
        ranges[i, j] = lo
        plusargs.update({f"{name}_init": str(work / f"{name}.hex"), f"{name}_dump": str(work / f"{name}_out.hex"),
                         f"{name}_dump_lo": str(lo), f"{name}_dump_hi": str(hi)})
    res = simulate(mesh_design(cfg), "tilelab.drive.mesh_bench:mesh_run_bench", backend=sim, workdir=work,
                   plusargs=plusargs, waves=waves,
                   args={"rows": cfg.rows, "cols": cfg.cols, "stall_cycles": stall_cycles})
    dumps = {key: (ranges[key], read_hex(work / f"{node_memory_name(*key)}_out.hex", W)) for key in program.nodes}
    return program.assemble(dumps), dict(res.value), res


def mesh_layer_stats(program, v, res, exact) -> MeshStats:
    """:class:`MeshStats` of a compiled mesh program's run from :func:`run_mesh_program`'s counters."""
    cfg = program.config
    tiles = v["tiles"]
    macs = sum(t["tile.macs"] for t in tiles)
    cycles = int(v["cycles"])
    peak = cfg.tiles * cfg.tile.peak_macs_per_cycle
    wall = float(v["run_seconds"])
    links = v["links"]
    noc_flits = sum(rec[f"{plane}_flits"] for rec in links if rec["port"] != "L" for plane in ("req", "resp", "mcast"))
    counters = {"dropped": v["dropped"], "bad_flits": v["bad_flits"]}
    for name in tiles[0]:
        if name not in ("i", "j"):
            counters[name] = sum(t[name] for t in tiles)
    return MeshStats(
        bit_exact=bool(exact), cycles=cycles, macs=int(macs), peak_macs_per_cycle=peak,
        mac_utilization=macs / (cycles * peak) if cycles else 0.0,
        ext_bytes_read=int(sum(p["bytes_read"] for p in v["ports"])),
        ext_bytes_written=int(sum(p["bytes_written"] for p in v["ports"])),
        wall_seconds=wall, simulated_macs_per_second=macs / wall if wall > 0 else 0.0, simulator=res.backend,
        build_cached=res.build_cached, total_seconds=float(res.total_seconds), counters=counters,
        mesh=f"{cfg.rows}x{cfg.cols}", shard=program.shard, weight_load=program.weight_load,
        halo_bytes=int(program.halo_bytes), noc_flits=int(noc_flits), tiles=tiles, ports=v["ports"], links=links)
