"""The Tensix-like compute tile: L1 lane banks with circular buffers, reader → math → pack → writer.

Data path (one conv layer, or any matrix product, block by block)::

    ext memory ──► reader (im2col gather) ──► act / wgt / param lane banks (CBs, 2 pages each)
                                                    │
                 compute: unpack (lane reads) ──► MAC array (R×C) ──► pack (bias, requant, ReLU)
                                                                           │
    ext memory ◄── writer ◄──────────────────────────────────────────── output CB

* The **reader** (:class:`~.reader.Reader`) runs :class:`~tilelab.hdl.formats.tile.ReadDesc`
  descriptors. Each fills one page of the activation, weight or parameter circular buffer: row
  ``j`` of the block goes to lane ``j % lanes``. For activations a row is the im2col row of an
  output pixel, generated here from the conv parameters (kernel, stride, dilation, padding with
  zero fill, channel slice), so the host never writes an expanded im2col matrix. Each cycle it
  moves one piece of up to W bytes. A broadcast descriptor writes every row to all lanes at once:
  depthwise conv loads its raw input rows that way into the activation ring, each input byte read
  from external memory once. A ganged descriptor moves several short rows (weights, parameters)
  per read, one per lane.
* **Compute** (:class:`~.compute.Compute`) runs :class:`~tilelab.hdl.formats.tile.ComputeDesc`
  descriptors: for each activation tile × weight tile it reads one byte from every activation lane
  and one byte from every weight lane per step and streams the step into the MAC array
  (:class:`~tilelab.hdl.mac.MACArray`). In depthwise mode each activation lane reads C bytes at its
  own address: a per-lane address generator follows the lane's output pixel through the window,
  tap by tap, and unpack feeds zeros for taps in the padding (the array's element-wise mode
  multiplies them with the C channels' weights). The array drains one finished tile while the next
  accumulates. The **pack** stage (:class:`~.pack.Pack`) adds bias, requantizes per channel (the
  numerics contract in the README), applies ReLU, and writes int8 (or int32) rows to the output
  circular buffer.
* The **writer** (:class:`~.writer.Writer`) runs :class:`~tilelab.hdl.formats.tile.WriteDesc`
  descriptors, storing rows to external memory in NHWC order.
* Engines synchronise only through circular-buffer counters (the L1, :class:`~.l1.L1`, holds the
  banks and the counters; engines use :func:`~tilelab.hdl.cbuf.cb_producer_signature` /
  :func:`~tilelab.hdl.cbuf.cb_consumer_signature` ports). A command fetcher
  (:class:`~.fetcher.CommandFetcher`) reads the three descriptor streams from external memory
  (:class:`~tilelab.hdl.formats.tile.ProgramHeader` at byte 0) into per-engine queues, which the
  engines take as ``stream.Signature`` inputs.
* Every engine reports what it adds to the tile's counters as a count-event port (the structs in
  :mod:`tilelab.hdl.formats.tile`); :class:`ComputeTile` sums each counter over its engines.

The tile exposes its external-memory ports; :class:`TileTop` joins it to an
:class:`~tilelab.hdl.memories.ExtMemory` for simulation.
"""

from .ext import ExtMemoryTop, ext_port_signature
from .top import ComputeTile, TileTop

__all__ = ["ComputeTile", "ExtMemoryTop", "TileTop", "ext_port_signature"]
