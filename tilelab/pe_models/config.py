"""The one frozen configuration object of the compute tile."""

from dataclasses import asdict, dataclass

from tilelab.hdl.formats.tile import PARAM_RECORD_BYTES

__all__ = ["TileConfig", "DEFAULT_TILE"]


@dataclass(frozen=True)
class TileConfig:
    """Everything that shapes a compute tile; it elaborates the RTL and the host compiler reads it.

    Parameters
    ----------
    rows, cols : int
        MAC array shape R × C (R output pixels × C output channels per math tile).
    ext_bytes : int
        External-memory word and port width W in bytes (power of two, 16..64); also the width of
        the L1 lane banks.
    ext_words : int
        External-memory size in words.
    act_lane_bytes, wgt_lane_bytes : int
        L1 bytes per activation lane (R lanes) and per weight lane (C lanes). Each lane bank holds
        the two pages of its circular buffer (double buffering).
    param_lane_bytes : int
        L1 bytes per parameter lane (C lanes), two pages of per-channel records.
    out_entries : int
        Output circular buffer entries (one output row of C channels each).
    depthwise : bool
        Build the element-wise (depthwise) mode of the MAC array.
    mem_impl : {"verilog", "amaranth"}
        Memory models: behavioural Verilog (Verilator / Icarus) or Amaranth (Amaranth's simulator).
    """

    rows: int = 32
    cols: int = 32
    ext_bytes: int = 64
    ext_words: int = 1 << 16
    act_lane_bytes: int = 32 * 1024
    wgt_lane_bytes: int = 32 * 1024
    param_lane_bytes: int = 1024
    out_entries: int = 64
    depthwise: bool = True
    mem_impl: str = "verilog"

    def __post_init__(self):
        def need(name, ok, limit):
            if not ok:
                raise ValueError(f"{name} must be {limit}, not {getattr(self, name)!r}")

        for name in ("rows", "cols"):
            v = getattr(self, name)
            need(name, isinstance(v, int) and 1 <= v <= 64, "an integer in [1, 64]")
        W = self.ext_bytes
        need("ext_bytes", isinstance(W, int) and W in (16, 32, 64), "16, 32 or 64")
        need("ext_words", isinstance(self.ext_words, int) and 64 <= self.ext_words <= (1 << 26)
             and self.ext_words & (self.ext_words - 1) == 0, "a power of two in [64, 2**26]")
        for name in ("act_lane_bytes", "wgt_lane_bytes", "param_lane_bytes"):
            v = getattr(self, name)
            need(name, isinstance(v, int) and v >= 2 * W and v % (2 * W) == 0 and v <= (1 << 24),
                 f"a multiple of 2*ext_bytes ({2 * W}) up to 2**24")
        need("out_entries", isinstance(self.out_entries, int) and 2 <= self.out_entries <= 4096,
             "an integer in [2, 4096]")
        need("mem_impl", self.mem_impl in ("verilog", "amaranth"), "'verilog' or 'amaranth'")
        if self.depthwise and W % self.cols:
            raise ValueError(f"depthwise mode needs cols ({self.cols!r}) to divide ext_bytes ({W!r})")
        if 4 * self.cols > 4096:
            raise ValueError(f"cols {self.cols!r} too large for the output buffer")

    # Derived geometry -------------------------------------------------------------------------
    @property
    def peak_macs_per_cycle(self) -> int:
        """MACs per cycle at full utilization (R·C)."""
        return self.rows * self.cols

    @property
    def act_page_bytes(self) -> int:
        """Bytes of one activation page per lane (half the lane: two pages)."""
        return self.act_lane_bytes // 2

    @property
    def wgt_page_bytes(self) -> int:
        """Bytes of one weight page per lane."""
        return self.wgt_lane_bytes // 2

    @property
    def param_page_bytes(self) -> int:
        """Bytes of one parameter page per lane."""
        return self.param_lane_bytes // 2

    @property
    def max_param_tiles(self) -> int:
        """Weight tiles (of C channels) whose records fit one parameter page."""
        return self.param_page_bytes // PARAM_RECORD_BYTES

    @property
    def out_entry_bytes(self) -> int:
        """Bytes of one output-CB entry (C int32 values)."""
        return 4 * self.cols

    @property
    def out_banks(self) -> int:
        """Banks the output CB's entries are interleaved over: pack stores that many rows a cycle (two
        when the shapes allow: depthwise layers finish a tile every few steps)."""
        return 2 if self.rows % 2 == 0 and self.out_entries % 2 == 0 else 1

    @property
    def l1_bytes(self) -> int:
        """Total L1 (all lane banks and the output buffer)."""
        return (self.rows * self.act_lane_bytes + self.cols * (self.wgt_lane_bytes + self.param_lane_bytes)
                + self.out_entries * self.out_entry_bytes)

    @property
    def ext_bytes_total(self) -> int:
        """External memory size in bytes."""
        return self.ext_words * self.ext_bytes

    def replace(self, **changes) -> "TileConfig":
        """Return a copy with ``changes``."""
        d = asdict(self)
        d.update(changes)
        return TileConfig(**d)

    def key(self) -> str:
        """A short stable text naming this configuration (for build caches and reports)."""
        d = asdict(self)
        return ",".join(f"{k}={d[k]}" for k in sorted(d))


#: The default tile: 32×32 MACs, 64-byte ports, ~2.1 MB of L1, 4 MiB of external memory. The port
#: width sets the depthwise ceiling (see the README): a 3×3 depthwise layer needs W ≥ 64 for 50 %.
DEFAULT_TILE = TileConfig()
