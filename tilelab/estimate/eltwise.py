"""The element-wise / pooling unit's cycles for pooling, residual add and ReLU, in closed form.

The unit (:mod:`tilelab.pe_models.eltwise`) is one sequential state machine that never stalls:
per descriptor it reads the 64-byte descriptor one W-byte word a cycle and decodes it (``64 / W + 2``
cycles), then for each chunk of W channels reads the chunk's parameter table (``words + 1`` cycles,
ADD only), streams one window tap a cycle (padding taps included: they read nothing but take their
cycle) and drains its two-stage pipeline (3 cycles). :func:`tilelab.api.ops` runs each op as one
descriptor.
"""

from __future__ import annotations

from dataclasses import dataclass

from tilelab.hdl.formats.eltwise import DESC_BYTES, PARAM_WORDS, EltwiseOp
from tilelab.pe_models.config import DEFAULT_ELTWISE, EltwiseConfig, TileConfig
from tilelab.reference.layers import PoolSpec

__all__ = ["ELTWISE_OPS", "EltwiseEstimate", "estimate_eltwise"]

#: The lowered steps the element-wise unit runs, and the descriptor op of each.
ELTWISE_OPS = {"max_pool": EltwiseOp.MAXPOOL, "avg_pool": EltwiseOp.AVGPOOL,
               "global_avg_pool": EltwiseOp.GLOBAL_AVGPOOL, "add": EltwiseOp.ADD, "relu": EltwiseOp.RELU}


def _ceil(a, b):
    return -(-a // b)


@dataclass(frozen=True)
class EltwiseEstimate:
    """The estimate of one op on the element-wise unit.

    Attributes
    ----------
    cycles : int
        Predicted cycles (the unit's ``cycles`` counter).
    taps : int
        Window taps streamed (the ``busy`` counter): one a cycle.
    ext_bytes_read, ext_bytes_written, cmd_bytes_read : int
        External-memory traffic (the unit's counters).
    ext_bytes : int
        The port width W.
    ports : int
        Read ports the op streams on (2 for ADD).
    physical : dict
        ``read`` = bytes read ÷ (W · ports), ``write`` = bytes written ÷ W (cycles, rounded up).
    bound : str
        ``read port`` when the taps (one W-byte word a cycle on each port) set the op, else
        ``overhead`` (descriptor, parameter tables and pipeline drains per chunk).
    """

    cycles: int
    taps: int
    ext_bytes_read: int
    ext_bytes_written: int
    cmd_bytes_read: int
    ext_bytes: int
    ports: int
    physical: dict
    bound: str

    @property
    def physical_bound(self) -> int:
        """The larger physical lower bound (cycles)."""
        return max(self.physical.values())

    @property
    def physical_ratio(self) -> float:
        """``cycles / physical_bound``."""
        return self.cycles / self.physical_bound if self.physical_bound else 0.0


def estimate_eltwise(op: str, shape: tuple, *, pool: PoolSpec | None = None,
                     config: EltwiseConfig | TileConfig | None = None) -> EltwiseEstimate:
    """Estimate one element-wise step as :mod:`tilelab.api.ops` runs it.

    Parameters
    ----------
    op : str
        One of :data:`ELTWISE_OPS` (``max_pool``, ``avg_pool``, ``global_avg_pool``, ``add``, ``relu``).
    shape : tuple of int
        The input's shape (NHWC for pooling; any shape, channels last, for ``add`` and ``relu``).
    pool : PoolSpec, optional
        The window of ``max_pool`` / ``avg_pool``.
    config : EltwiseConfig or TileConfig, optional
        The unit (a ``TileConfig`` stands for the unit beside that tile, as in :mod:`tilelab.api.ops`);
        default :data:`~tilelab.pe_models.eltwise.DEFAULT_ELTWISE`.

    Returns
    -------
    EltwiseEstimate

    Raises
    ------
    ValueError
        An unknown op, or an op whose tensors do not fit the unit's external memory (as
        :mod:`tilelab.api.ops` would raise).
    """
    if op not in ELTWISE_OPS:
        raise ValueError(f"op must be one of {', '.join(map(repr, ELTWISE_OPS))}, not {op!r}")
    if config is None:
        config = DEFAULT_ELTWISE
    elif isinstance(config, TileConfig):
        config = EltwiseConfig(ext_bytes=config.ext_bytes, ext_words=config.ext_words)
    elif not isinstance(config, EltwiseConfig):
        raise TypeError(f"config must be an EltwiseConfig or a TileConfig, not {config!r}")
    W = config.ext_bytes
    shape = tuple(int(s) for s in shape)
    c = shape[-1]
    if op in ("max_pool", "avg_pool"):
        if not isinstance(pool, PoolSpec):
            raise TypeError(f"{op} needs pool=PoolSpec(...), not {pool!r}")
        n, h, w = pool.n, pool.h, pool.w
        (kh, kw), (sh, sw), (ph, pw) = (pool.kh, pool.kw), pool.stride, pool.padding
        ho, wo = pool.ho, pool.wo
        taps = n * ho * wo * kh * kw
        # taps inside the input (padding taps read nothing)
        rows = sum(1 for oh in range(ho) for i in range(kh) if 0 <= oh * sh + i - ph < h)
        cols = sum(1 for ow in range(wo) for j in range(kw) if 0 <= ow * sw + j - pw < w)
        real = n * rows * cols
        outputs = n * ho * wo
    elif op == "global_avg_pool":
        n, h, w = shape[0], shape[1], shape[2]
        taps = real = n * h * w
        outputs = n
    else:
        rows = 1
        for s in shape[:-1]:
            rows *= s
        taps = real = outputs = rows
    ports = 2 if op == "add" else 1
    chunks = _ceil(c, W)
    params = PARAM_WORDS[ELTWISE_OPS[op]]
    # the image tilelab.api.ops writes: the descriptor, then the inputs, the table and the output,
    # each W-aligned with a spare word (tilelab.compile.eltwise.EltwiseImage)
    elements = 1
    for s in shape:
        elements *= s
    regions = [elements] * ports + ([chunks * params * W] if params else []) + [outputs * c]
    image = DESC_BYTES + sum(size + (-size) % W + W for size in regions)
    if image > config.ext_bytes_total:
        raise ValueError(f"the op needs {image} bytes of external memory, more than the unit's "
                         f"{config.ext_bytes_total} (ext_words={config.ext_words})")
    desc = DESC_BYTES // W + 2
    per_chunk = (params + 1 if params else 0) + taps + 3
    cycles = desc + chunks * per_chunk
    read = chunks * (real * W * ports + params * W)
    written = outputs * c
    physical = {"read": _ceil(read, W * ports), "write": _ceil(written, W)}
    bound = "read port" if chunks * taps >= cycles - chunks * taps else "overhead"
    return EltwiseEstimate(cycles=cycles, taps=chunks * taps, ext_bytes_read=read, ext_bytes_written=written,
                           cmd_bytes_read=DESC_BYTES, ext_bytes=W, ports=ports, physical=physical, bound=bound)
