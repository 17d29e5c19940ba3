"""Run a conv layer sharded over a simulated mesh of tiles: :func:`conv2d_mesh`.

The host compiles the layer (:mod:`tilelab.compile.mesh`), loads every node memory and
memory port in bulk, starts the mesh, waits for done, dumps each node's output region, reads the
tile, node, memory-port and link counters, and compares the output with the numpy golden model.
"""

from __future__ import annotations

import numpy as np

from tilelab.api.conv import Requant, check_conv_args, check_float_requant, conv_golden, requant_kwargs
from tilelab.compile.mesh import SHARDS, WEIGHT_LOADS, MeshError, MeshImage, compile_conv_mesh
from tilelab.drive import MeshStats, mesh_unit, run_image
from tilelab.drive.mesh import MESH_SIMS
from tilelab.hdl.memories import node_memory_name, port_memory_name
from tilelab.pe_models.config import DEFAULT_TILE, MAX_COLS, MAX_ROWS, MeshConfig, TileConfig

__all__ = ["MESH_SIMS", "conv2d_mesh", "parse_mesh", "run_mesh_program"]


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
    if not (1 <= rows <= MAX_ROWS and 1 <= cols <= MAX_COLS):
        raise MeshError(f"mesh {rows}x{cols} does not fit the NoC: rows must be 1..{MAX_ROWS} and cols 1..{MAX_COLS}")
    return rows, cols


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
                workdir=None, stall_cycles: int = 20_000, pad_value: int = 0):
    """Run one conv layer sharded over a simulated mesh of tiles; return ``(output, stats)``.

    Parameters
    ----------
    x, w, bias, stride, padding, dilation, groups, requant, activation, out, pad_value
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
    spec, bias, rq = check_conv_args(x, w, bias, stride=stride, padding=padding, dilation=dilation, groups=groups,
                                     requant=requant, activation=activation, out=out, pad_value=pad_value)
    check_float_requant(rq, config.tile)
    program = compile_conv_mesh(x, w, bias, spec, config, shard=shard, weight_load=weight_load,
                                relu=activation == "relu", out_int32=out == "int32", pad_value=int(pad_value),
                                **requant_kwargs(rq))
    y, run = run_mesh_program(program, sim=sim, waves=waves, workdir=workdir, stall_cycles=stall_cycles)
    want = conv_golden(x, w, bias, spec, rq, activation=activation, out=out, pad_value=int(pad_value))
    exact = y.shape == want.shape and bool(np.array_equal(y, want))
    return y, MeshStats.from_mesh_run(config, run, bit_exact=exact, shard=program.shard,
                                      weight_load=program.weight_load, halo_bytes=program.halo_bytes)


def run_mesh_program(program: MeshImage, *, sim="verilator", waves=None, workdir=None, stall_cycles=20_000):
    """Simulate a program compiled for a whole mesh (a :class:`~tilelab.compile.mesh.MeshImage`).

    Every node memory is loaded with its node's image, every memory port with the port image;
    each node's output words are dumped and the program assembles the output from them.

    Parameters
    ----------
    program : MeshImage
        E.g. a :class:`~tilelab.compile.mesh.MeshProgram` (a conv layer) or a
        :class:`~tilelab.compile.mesh_eltwise.EltwiseMeshProgram`.
    sim, waves, workdir, stall_cycles
        As :func:`tilelab.drive.run.run_image`.

    Returns
    -------
    (object, Run)
        What ``program.assemble`` makes of the dumps, and the run (the counters of
        :func:`tilelab.drive.mesh.read_mesh`).
    """
    cfg = program.config
    images = {port_memory_name(i): program.port_image for i in range(cfg.rows)}
    dumps = {}
    for (i, j), node in program.nodes.items():
        images[node_memory_name(i, j)] = node.image
        dumps[node_memory_name(i, j)] = program.out_words(node)
    run = run_image(mesh_unit(cfg), images, dumps, sim=sim, waves=waves, workdir=workdir, stall_cycles=stall_cycles)
    out = program.assemble({key: (dumps[node_memory_name(*key)][0], run.dumps[node_memory_name(*key)])
                            for key in program.nodes})
    return out, run
