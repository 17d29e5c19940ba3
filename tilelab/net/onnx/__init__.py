"""ONNX front end: import quantized ONNX models (QDQ or QOperator) as steps the executor runs.

See :mod:`tilelab.net.onnx.importer` for the op mapping and :mod:`tilelab.reference.golden.onnx_ops`
for onnxruntime's arithmetic. The ``onnx`` and ``onnxruntime`` packages are imported only when a
model is loaded.
"""

from __future__ import annotations

from tilelab.net.onnx.steps import RTL_MISSING, OnnxStep

__all__ = ["RTL_MISSING", "GoldenBackend", "OnnxError", "OnnxModel", "OnnxStep", "load_onnx", "run_onnx_step"]


def __getattr__(name):
    if name in ("GoldenBackend", "OnnxError", "OnnxModel", "load_onnx", "run_onnx_step", "SUPPORTED_OPS"):
        from tilelab.net.onnx import importer

        return getattr(importer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
