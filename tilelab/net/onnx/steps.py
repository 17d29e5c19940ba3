"""The steps an ONNX model adds to :class:`~tilelab.net.lowering.Step`, and what the RTL lacks for them.

Kept free of the ``onnx`` package so that the backends can read :data:`RTL_MISSING` cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tilelab.net.lowering import Step

__all__ = ["RTL_MISSING", "OnnxStep"]

#: Step ops of imported models that have no RTL implementation yet → what the hardware lacks.
#: A hardware backend refuses them by name (they never silently run on numpy in a hardware run).
#: Every step of an imported model has its RTL now: ``qlinear_table``, ``qlinear_add``, ``qlinear_mul``,
#: ``qlinear_concat`` and ``qlinear_avg_pool`` run on the element-wise unit (``tilelab.api.ops``).
RTL_MISSING: dict[str, str] = {}


@dataclass
class OnnxStep(Step):
    """A :class:`~tilelab.net.lowering.Step` with the parameters of an onnxruntime op.

    Parameters
    ----------
    params : dict
        The op's constants (scales, stored int8 zero points, tables, pooling geometry).
    source : str
        The ONNX op it comes from (e.g. ``"com.microsoft.QLinearAdd"``).
    """

    params: dict = field(default_factory=dict, repr=False)
    source: str = ""

    def describe(self) -> dict:
        d = super().describe()
        d["source"] = self.source
        return d
