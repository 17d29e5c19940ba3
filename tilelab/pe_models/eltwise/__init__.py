"""The element-wise / pooling unit: pooling, residual add, ReLU, batch norm and onnxruntime's element-wise
kernels (lookup tables, QLinearAdd, QLinearMul, QLinearAveragePool) on NHWC int8 tensors.

An autonomous engine beside the compute tile's engines. After ``start`` it fetches
:class:`~tilelab.hdl.formats.eltwise.EltwiseDesc` descriptors from external memory (byte 0 on)
and runs each one over a tensor in external memory, W channels (one port word) per cycle::

    for chunk of W channels:            (parameter table of the chunk read first, if the op has one)
      for n, oh, ow:                    (output pixels; one for GLOBAL_AVGPOOL / BN_STATS per image)
        for i, j in the window:         one W-byte read per cycle on port a (and b for ADD, QADD, QMUL);
                                        padding taps read nothing and count as the op's pad value
          accumulate per lane (max, sum, Σx and Σx²)
        on the last tap: finish per lane (divide, requantize, normalize, clamp) and write W bytes

The pipeline is two stages deep (read → accumulate/finish → write) and never stalls: the
external memory answers every read one cycle later and takes one write per cycle. The last chunk
of a tensor whose channel count is not a multiple of W writes only its real channels (byte mask).
BN_STATS writes the chunk's sums (12 words) after the chunk's taps. BN_TERMS reads no tensor: it
runs batch-norm steps 2-7 for each channel of the chunk in turn on one sequential divider and one
square-root unit (:mod:`tilelab.hdl.arith`, about 290 cycles per channel) and writes the chunk's
BN_APPLY table (16 words).

TABLE, QADD, QMUL and QAVGPOOL (:data:`~tilelab.hdl.formats.eltwise.QLINEAR_OPS`) run on
:class:`~.qlinear.QLinearLanes`, a component on a gated clock of its own (``eltq``) that ticks only
in the cycles it takes a parameter or data word: its lookup tables and float32 multiply-adds
(:mod:`tilelab.hdl.fpfma`) cost the simulation nothing while the unit runs the other ops. Their
results come a cycle later, so these ops write three stages after the read.

:class:`EltwiseUnit` is the control (descriptor and parameter fetch, the read / accumulate /
write pipeline); the window walk is :class:`~.taps.EltwiseTaps`, the per-lane math
:class:`~.lanes.EltwiseLanes` (and :class:`~.qlinear.QLinearLanes`) and BN_TERMS' sequential unit
:class:`~.terms.BnTerms`, components of their own.

:class:`EltwiseTop` joins the unit to an :class:`~tilelab.hdl.memories.ExtMemory` for simulation,
like :class:`~tilelab.pe_models.tile.TileTop`.
"""

from .unit import EltwiseTop, EltwiseUnit

__all__ = ["EltwiseTop", "EltwiseUnit"]
