"""The driver: one run pipeline for every simulated unit.

A :class:`Unit` describes a unit once (design, memories, counters, progress, diagnosis);
:func:`run_image` runs memory images on it in a simulator process, a :class:`SimServer` keeps one
process alive across runs, and :class:`LayerStats` / :class:`MeshStats` turn a :class:`Run`'s
counters into what a layer measured. :func:`tile_unit`, :func:`eltwise_unit`, :func:`mesh_unit`
and :func:`bulk_reduce_unit` describe the project's units.
"""

from .mesh import bulk_reduce_unit, mesh_unit
from .run import Run, run_image
from .server import SimServer
from .stats import LayerStats, MeshStats
from .tile import eltwise_unit, tile_unit
from .unit import Memory, Unit

__all__ = ["LayerStats", "Memory", "MeshStats", "Run", "SimServer", "Unit", "bulk_reduce_unit", "eltwise_unit",
           "mesh_unit", "run_image", "tile_unit"]
