"""Programs of the element-wise unit: descriptors, parameter tables and the external-memory image.

The unit runs a list of :class:`~tilelab.hdl.formats.eltwise.EltwiseDesc` descriptors from byte 0
of its external memory (the one with ``last`` set ends it); each names its tensors and tables by
byte address. :class:`EltwiseImage` lays out one program's image, :func:`pack_descs` packs the
descriptors with the format's own ``const(...).as_bits()``, and the table builders write the
per-channel-chunk tables that the ops read (``W`` lanes per word, one chunk of ``W`` channels
after another).
"""

from __future__ import annotations

import numpy as np

from tilelab.hdl.formats.eltwise import AFFINE_WORDS, DESC_BYTES, MAX_WINDOW, EltwiseDesc
from tilelab.pe_models.config import EltwiseConfig
from tilelab.reference import golden

__all__ = ["EltwiseImage", "affine_table", "bn_shift", "pack_descs", "param_table", "reciprocal", "tensor_desc"]


class EltwiseImage:
    """An external-memory image under construction: descriptor slots, then W-aligned regions.

    Parameters
    ----------
    config : EltwiseConfig
        The unit (its port width aligns the regions; its memory size bounds the image).
    n_descs : int
        Descriptor slots reserved at byte 0.
    """

    def __init__(self, config: EltwiseConfig, n_descs: int):
        self.W = config.ext_bytes
        self.config = config
        self.chunks = [np.zeros(n_descs * DESC_BYTES, np.uint8)]
        self.size = n_descs * DESC_BYTES
        self.descs = []

    def alloc(self, data: np.ndarray | int) -> int:
        """Place bytes (or reserve ``data`` zero bytes); return the byte address."""
        raw = np.zeros(data, np.uint8) if isinstance(data, int) else np.ascontiguousarray(data).view(np.uint8).ravel()
        addr = self.size
        pad = (-len(raw)) % self.W + self.W  # a spare word: the last chunk's reads run past the end
        self.chunks.append(raw)
        self.chunks.append(np.zeros(pad, np.uint8))
        self.size += len(raw) + pad
        return addr

    def desc(self, **fields):
        """Append a descriptor (:class:`~tilelab.hdl.formats.eltwise.EltwiseDesc` fields)."""
        self.descs.append(fields)

    def build(self) -> np.ndarray:
        """The image (uint8, from address 0).

        Raises
        ------
        ValueError
            When it does not fit the unit's external memory.
        """
        image = np.concatenate(self.chunks)
        code = pack_descs(self.descs)
        image[:len(code)] = np.frombuffer(code, np.uint8)
        if len(image) > self.config.ext_bytes_total:
            raise ValueError(f"the op needs {len(image)} bytes of external memory, more than the unit's "
                             f"{self.config.ext_bytes_total} (ext_words={self.config.ext_words})")
        return image


def pack_descs(descs: list[dict]) -> bytes:
    """The unit's program: :class:`~tilelab.hdl.formats.eltwise.EltwiseDesc` s from field dicts,
    ``last`` set on the final one."""
    return b"".join(EltwiseDesc.const({**fields, "last": int(k == len(descs) - 1)}).as_bits()
                    .to_bytes(DESC_BYTES, "little") for k, fields in enumerate(descs))


def reciprocal(count: int) -> tuple[int, int, int]:
    """Constants that turn the golden's rounded division into a multiply and a shift.

    For every window sum ``S`` with ``|S| <= 128·count``::

        (S + count // 2) // count == ((S + bias) · mult >> shift) - 128

    with ``bias = count // 2 + 128·count`` (so the dividend ``v = S + bias`` is non-negative and
    below ``256·count``), ``shift`` the bit length of ``256·count²`` and
    ``mult = ceil(2**shift / count)``. Exact because ``mult·count - 2**shift = e < count`` and
    ``v·e < 256·count² <= 2**shift``, so the error term ``v·e / (count·2**shift)`` never reaches
    the next multiple of ``1 / count``. ``mult <= 512·count + 1 < 2**26``.

    Parameters
    ----------
    count : int
        Window size, ``1 <= count <= 2**16``.

    Returns
    -------
    (int, int, int)
        ``(bias, mult, shift)``.
    """
    if not isinstance(count, int) or not 1 <= count <= MAX_WINDOW:
        raise ValueError(f"averaging window must hold 1..{MAX_WINDOW} values, not {count!r}")
    shift = (256 * count * count).bit_length()
    mult = -(-(1 << shift) // count)
    return count // 2 + 128 * count, mult, shift


def tensor_desc(n, h, w, c) -> dict:
    """Descriptor fields of an element-wise op over an ``(n, h, w, c)`` tensor (a 1 × 1 window)."""
    return {"n": n, "h": h, "w": w, "c": c, "ho": h, "wo": w, "kh": 1, "kw": 1, "sh": 1, "sw": 1}


def param_table(config: EltwiseConfig, channels: int, arrays) -> np.ndarray:
    """Per-chunk parameter tables: ``arrays`` is a list of ``(values (C,), dtype)`` in table order."""
    W = config.ext_bytes
    chunks = -(-channels // W)
    table = []
    for k in range(chunks):
        for values, dtype in arrays:
            lanes = np.zeros(W, dtype)
            part = values[k * W:(k + 1) * W]
            lanes[:len(part)] = part
            table.append(lanes.view(np.uint8))
    return np.concatenate(table)


def bn_shift(gamma_frac_bits: int) -> int:
    """BN_APPLY's ``bn_shift``: ``T`` of :func:`tilelab.reference.golden.batch_norm_train`."""
    return golden.BN_MEAN_FRAC_BITS + gamma_frac_bits + golden.BN_INVSTD_FRAC_BITS


def affine_table(config: EltwiseConfig, channels: int, gamma, beta) -> np.ndarray:
    """BN_TERMS' affine table (:data:`~tilelab.hdl.formats.eltwise.AFFINE_WORDS` words per chunk)."""
    table = param_table(config, channels, [(np.asarray(gamma, np.int64), np.int32),
                                           (np.asarray(beta, np.int64), np.int32)])
    assert len(table) == -(-channels // config.ext_bytes) * AFFINE_WORDS * config.ext_bytes
    return table
