"""Analytical cycle estimates of layers and networks on the compute tile, without simulating it.

:func:`estimate_conv` / :func:`estimate_linear` model one layer on one tile from the compiler's
descriptor streams (:mod:`tilelab.estimate.tile`), :func:`estimate_eltwise` one pooling / add /
ReLU step on the element-wise unit (:mod:`tilelab.estimate.eltwise`), :func:`estimate_model` a
whole network step by step as ``tilelab run`` runs it (:mod:`tilelab.estimate.model`), and
:func:`estimate_conv_mesh` one layer sharded over a mesh of tiles (:mod:`tilelab.estimate.mesh`).
"""

from .eltwise import EltwiseEstimate, estimate_eltwise
from .mesh import MeshEstimate, estimate_conv_mesh, estimate_mesh_program
from .model import LayerEstimate, ModelEstimate, add_estimates, estimate_model, estimate_onnx, estimate_steps
from .tile import BOUNDS, TileEstimate, estimate_conv, estimate_linear, estimate_streams

__all__ = ["BOUNDS", "EltwiseEstimate", "LayerEstimate", "MeshEstimate", "ModelEstimate", "TileEstimate",
           "estimate_conv", "estimate_conv_mesh", "estimate_eltwise", "estimate_linear", "estimate_mesh_program",
           "add_estimates", "estimate_model", "estimate_onnx", "estimate_steps", "estimate_streams"]
