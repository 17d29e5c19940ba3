"""The element-wise unit's configuration, counters and status ports."""

from dataclasses import asdict, dataclass

__all__ = ["ELTWISE_COUNTERS", "ELTWISE_STATUS", "EltwiseConfig", "DEFAULT_ELTWISE"]

#: Hardware counters of the unit, in the order of its counter ports (all 48 bits).
ELTWISE_COUNTERS = (
    "cycles",             # cycles from start to done
    "busy",               # cycles the unit issued a data tap
    "ext_bytes_read",     # bytes of tensors and parameter tables read (both ports)
    "ext_bytes_written",  # bytes written (real channels only)
    "cmd_bytes_read",     # bytes of descriptors fetched
    "elements",           # real input elements read on port a (padding taps excluded)
    "terms_cycles",       # cycles spent computing BN_TERMS (sequential divider / square root)
)

#: Status ports read by the watchdog's diagnosis.
ELTWISE_STATUS = ("state", "descs_done")


@dataclass(frozen=True)
class EltwiseConfig:
    """The one frozen description of an element-wise unit and its simulated external memory.

    Parameters
    ----------
    ext_bytes : int
        External-memory word and port width W in bytes (16, 32 or 64): channels per cycle.
    ext_words : int
        External-memory size in words (a power of two).
    mem_impl : {"verilog", "amaranth"}
        External memory model: behavioural Verilog (Verilator / Icarus) or Amaranth.
    """

    ext_bytes: int = 32
    ext_words: int = 1 << 17
    mem_impl: str = "verilog"

    def __post_init__(self):
        def need(name, ok, limit):
            if not ok:
                raise ValueError(f"{name} must be {limit}, not {getattr(self, name)!r}")

        need("ext_bytes", isinstance(self.ext_bytes, int) and self.ext_bytes in (16, 32, 64), "16, 32 or 64")
        need("ext_words", isinstance(self.ext_words, int) and 64 <= self.ext_words <= (1 << 26)
             and self.ext_words & (self.ext_words - 1) == 0, "a power of two in [64, 2**26]")
        need("mem_impl", self.mem_impl in ("verilog", "amaranth"), "'verilog' or 'amaranth'")

    @property
    def ext_bytes_total(self) -> int:
        """External memory size in bytes."""
        return self.ext_words * self.ext_bytes

    def replace(self, **changes) -> "EltwiseConfig":
        """Return a copy with ``changes``."""
        return EltwiseConfig(**(asdict(self) | changes))

    def key(self) -> str:
        """A short stable text naming this configuration (for build caches and reports)."""
        d = asdict(self)
        return ",".join(f"{k}={d[k]}" for k in sorted(d))


#: A 32-byte external port (the default tile's is 64 bytes; the two units do not share a memory).
DEFAULT_ELTWISE = EltwiseConfig()
