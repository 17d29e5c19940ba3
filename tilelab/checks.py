"""Argument checks for the whole package: one wording for every limit, the bad value shown with ``{!r}``.

Every configuration, block constructor and layer call checks its arguments with these, so a limit
reads the same wherever it is hit. This module imports nothing of the package (every layer,
``hdl`` included, may use it).
"""

from __future__ import annotations

import numbers

__all__ = ["check_bool", "check_choice", "check_int", "check_pow2"]


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _range(lo, hi) -> str:
    if lo is not None and hi is not None:
        return f"in [{lo}, {hi}]"
    if lo is not None:
        return f">= {lo}"
    if hi is not None:
        return f"<= {hi}"
    return ""


def _kind(lo, hi) -> str:
    """``"a positive integer"``, ``"an integer in [0, 7]"``, ...: what an integer check asks for."""
    if hi is None and lo in (0, 1):
        return "a non-negative integer" if lo == 0 else "a positive integer"
    limit = _range(lo, hi)
    return f"an integer {limit}" if limit else "an integer"


def check_int(name: str, value, lo: int | None = None, hi: int | None = None) -> int:
    """Return ``value`` as an ``int`` if it is an integer in ``[lo, hi]`` (either bound optional).

    Parameters
    ----------
    name : str
        What the error calls the value.
    value : object
        Python and numpy integers are accepted; ``bool`` is not.
    lo, hi : int, optional
        Inclusive bounds.

    Returns
    -------
    int

    Raises
    ------
    TypeError
        For anything but an integer.
    ValueError
        For an integer out of range.

    Both say ``"<name> must be <kind>, not <value!r>"``, the kind being ``an integer in [lo, hi]``,
    ``a positive integer`` (``lo=1``), ``a non-negative integer`` (``lo=0``), ``an integer >= lo``
    or ``an integer <= hi``.
    """
    if not _is_int(value):
        raise TypeError(f"{name} must be {_kind(lo, hi)}, not {value!r}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ValueError(f"{name} must be {_kind(lo, hi)}, not {value!r}")
    return int(value)


def check_pow2(name: str, value, lo: int = 1, hi: int | None = None) -> int:
    """Return ``value`` if it is a power of two in ``[lo, hi]``.

    Raises
    ------
    ValueError
        ``"<name> must be a power of two in [lo, hi], not <value!r>"``.
    """
    if (not _is_int(value) or value < max(lo, 1) or (hi is not None and value > hi) or value & (value - 1)):
        raise ValueError(f"{name} must be a power of two {_range(lo, hi)}, not {value!r}")
    return int(value)


def check_choice(name: str, value, choices):
    """Return ``value`` if it is one of ``choices``.

    Raises
    ------
    ValueError
        ``"<name> must be one of 'a', 'b', not <value!r>"``.
    """
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, not {value!r}")
    return value


def check_bool(name: str, value) -> bool:
    """Return ``value`` if it is a ``bool``.

    Raises
    ------
    TypeError
        ``"<name> must be a bool, not <value!r>"``.
    """
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, not {value!r}")
    return value
