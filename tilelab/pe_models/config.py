"""The frozen configurations of the simulated units: :class:`TileConfig`, :class:`EltwiseConfig`,
:class:`MeshConfig`.

Each is one frozen dataclass that elaborates the RTL and that the host compilers read; each checks
its fields on construction (with :mod:`tilelab.checks`), copies with :meth:`Config.replace` and
names itself with :meth:`Config.key` (the build caches' key).
"""

from dataclasses import dataclass, fields
from dataclasses import replace as _replace

from tilelab.checks import check_bool, check_choice, check_int, check_pow2
from tilelab.hdl.formats.mesh import WORD_ADDR_BITS
from tilelab.hdl.formats.noc import MAX_MESH
from tilelab.hdl.formats.tile import PARAM_RECORD_BYTES

__all__ = ["DEFAULT_ELTWISE", "DEFAULT_TILE", "EXT_PORT_BYTES", "MAX_COLS", "MAX_ROWS", "MEM_IMPLS", "SPLIT_K",
           "Config", "EltwiseConfig", "MeshConfig", "TileConfig"]


#: Widths of an external-memory port, in bytes, that the units' datapaths support.
EXT_PORT_BYTES = (16, 32, 64)
#: Memory models: behavioural Verilog (Verilator / Icarus) or Amaranth (Amaranth's simulator).
MEM_IMPLS = ("verilog", "amaranth")
#: Row groups the split-K mode may have (``TileConfig.split_k``; ``ComputeDesc.split`` holds log2).
SPLIT_K = (1, 2, 4, 8)
#: Largest external memory of a unit, in words.
MAX_EXT_WORDS = 1 << 26
#: Largest mesh of tiles: the NoC's grid, less the column of memory ports at its west edge.
MAX_ROWS = MAX_MESH
MAX_COLS = MAX_MESH - 1


@dataclass(frozen=True)
class Config:
    """What every unit configuration can do: copy itself with changes, name itself."""

    def replace(self, **changes):
        """A copy with ``changes`` (checked like a new configuration)."""
        return _replace(self, **changes)

    def key(self) -> str:
        """A short stable text naming this configuration (for build caches and reports)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return ",".join(f"{k}={v.key() if isinstance(v, Config) else v}" for k, v in sorted(values.items()))


@dataclass(frozen=True)
class TileConfig(Config):
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
    float_requant : bool
        Build onnxruntime's float32 requantization into the pack stage
        (:class:`~tilelab.hdl.fpscale.FloatScaleRound` per column), for quantized ONNX models
        (``Requant(scale=...)``). Off by default: it costs about a fifth of the simulation speed
        of the default tile, and the integer requantization needs none of it.
    split_k : {1, 2, 4, 8}
        Most row groups of the split-K mode (1: no split-K mode): the array's rows split into G
        row groups over ``rows / G`` pixels, each group reducing its own bytes of the same pixels
        (each weight lane delivers G bytes a step), so layers with few output pixels (a 7×7 stage,
        a batch-1 fully connected layer) still fill the array. The tile builds
        :attr:`row_groups` of them (the largest power of two up to ``split_k`` that divides
        ``rows``); the compiler picks per layer how many it uses.
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
    float_requant: bool = False
    split_k: int = 8
    mem_impl: str = "verilog"

    def __post_init__(self):
        check_int("rows", self.rows, 1, 64)
        check_int("cols", self.cols, 1, 64)
        W = check_choice("ext_bytes", self.ext_bytes, EXT_PORT_BYTES)
        check_pow2("ext_words", self.ext_words, 64, MAX_EXT_WORDS)
        for name in ("act_lane_bytes", "wgt_lane_bytes", "param_lane_bytes"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 2 * W or v % (2 * W) or v > (1 << 24):
                raise ValueError(f"{name} must be a multiple of 2*ext_bytes ({2 * W}) up to 2**24, not {v!r}")
        check_int("out_entries", self.out_entries, 2, 4096)
        check_bool("depthwise", self.depthwise)
        check_bool("float_requant", self.float_requant)
        check_choice("mem_impl", self.mem_impl, MEM_IMPLS)
        check_choice("split_k", self.split_k, SPLIT_K)
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
    def row_groups(self) -> int:
        """Row groups of the split-K mode the tile is built with: the largest power of two up to
        ``split_k`` that divides ``rows`` and is at least :attr:`out_banks` (1: no split-K mode)."""
        g = self.split_k
        while g > 1 and (self.rows % g or g < self.out_banks):
            g //= 2
        return g

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


#: The default tile: 32×32 MACs, 64-byte ports, ~2.1 MB of L1, 4 MiB of external memory. The port
#: width sets the depthwise ceiling (see the README): a 3×3 depthwise layer needs W ≥ 64 for 50 %.
DEFAULT_TILE = TileConfig()


@dataclass(frozen=True)
class EltwiseConfig(Config):
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
        check_choice("ext_bytes", self.ext_bytes, EXT_PORT_BYTES)
        check_pow2("ext_words", self.ext_words, 64, MAX_EXT_WORDS)
        check_choice("mem_impl", self.mem_impl, MEM_IMPLS)

    @property
    def ext_bytes_total(self) -> int:
        """External memory size in bytes."""
        return self.ext_words * self.ext_bytes

    @classmethod
    def beside(cls, tile: TileConfig) -> "EltwiseConfig":
        """The unit that sits beside ``tile``: its port width, external memory and memory model."""
        return cls(ext_bytes=tile.ext_bytes, ext_words=tile.ext_words, mem_impl=tile.mem_impl)


#: A 32-byte external port (the default tile's is 64 bytes; the two units do not share a memory).
DEFAULT_ELTWISE = EltwiseConfig()


@dataclass(frozen=True)
class MeshConfig(Config):
    """The frozen configuration of a mesh of tiles.

    Parameters
    ----------
    rows, cols : int
        Tile grid (the NoC has one more column, for the memory ports); ``cols`` ≤ 15.
    tile : TileConfig
        Every tile's configuration; ``tile.ext_words`` words of ``tile.ext_bytes`` bytes is the
        size of each node memory (at most 2**20 words: the NoC's word address).
    mem_words : int
        Words per edge memory port (a power of two, at most 2**20).
    depth : int
        NoC router queue depth (a power of two).
    max_packet : int
        Flits per NoC packet (the data movers and memory ports cut transfers into packets).
    eltwise : bool
        Every tile node also holds an element-wise unit
        (:class:`~tilelab.pe_models.eltwise.EltwiseUnit`, started by ``ELT`` descriptors) that
        shares the tile's node-memory ports, and the tile nodes are joined by a collective plane
        (:class:`~tilelab.noc.collective.CollectiveMesh`, :attr:`collective_lanes` int32 lanes:
        one node-memory word per flit) that ``REDUCE`` descriptors use.
    """

    rows: int = 4
    cols: int = 4
    tile: TileConfig = DEFAULT_TILE
    mem_words: int = 1 << 18
    depth: int = 8
    max_packet: int = 4
    eltwise: bool = False

    def __post_init__(self):
        check_int("mesh rows", self.rows, 1, MAX_ROWS)
        check_int("mesh cols", self.cols, 1, MAX_COLS)
        if not isinstance(self.tile, TileConfig):
            raise TypeError(f"tile must be a TileConfig, not {self.tile!r}")
        if self.tile.mem_impl != "verilog":
            raise ValueError("a mesh needs the Verilog memory models (tile.mem_impl='verilog')")
        if self.tile.ext_words > 1 << WORD_ADDR_BITS:
            raise ValueError(f"tile.ext_words = {self.tile.ext_words} exceeds the NoC's word address range "
                             f"(2**{WORD_ADDR_BITS})")
        check_pow2("mem_words", self.mem_words, 64, 1 << WORD_ADDR_BITS)
        check_pow2("depth", self.depth, 2, 64)
        check_int("max_packet", self.max_packet, 1, 15)
        check_bool("eltwise", self.eltwise)

    @property
    def eltwise_config(self) -> EltwiseConfig | None:
        """The configuration of each node's element-wise unit (``None`` without one)."""
        return EltwiseConfig.beside(self.tile) if self.eltwise else None

    @property
    def collective_lanes(self) -> int:
        """int32 lanes per flit of the collective plane (0 without one): a node-memory word."""
        return self.tile.ext_bytes // 4 if self.eltwise else 0

    @property
    def word_bytes(self) -> int:
        """Bytes per NoC flit payload and memory word (the tile's external-port width)."""
        return self.tile.ext_bytes

    @property
    def tiles(self) -> int:
        """Tiles in the grid."""
        return self.rows * self.cols

    def tile_coord(self, i: int, j: int) -> tuple[int, int]:
        """NoC ``(x, y)`` of grid tile ``(i, j)``."""
        return (j + 1, i)

    def port_coord(self, i: int) -> tuple[int, int]:
        """NoC ``(x, y)`` of memory port ``i``."""
        return (0, i)
