"""What a layer run measured: :class:`LayerStats` (one unit) and :class:`MeshStats` (a mesh of tiles)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

__all__ = ["LayerStats", "MeshStats"]


@dataclass(frozen=True)
class LayerStats:
    """What one layer run measured; every count comes from the RTL's counters.

    ``mac_utilization`` = macs / (cycles · peak_macs_per_cycle) and ``simulated_macs_per_second`` =
    macs / wall_seconds are derived from the others.

    Attributes
    ----------
    bit_exact : bool
        The RTL's output equals the golden model's, bit for bit.
    cycles, macs : int
        Cycles from start to done; useful multiply-accumulates issued.
    peak_macs_per_cycle : int
        MAC slots per cycle of the hardware (0 for units without a MAC array).
    ext_bytes_read, ext_bytes_written : int
        External-memory traffic.
    wall_seconds : float
        Wall seconds from start to done.
    simulator : str
        The backend.
    build_cached : bool or None
        Whether the simulator build came from the cache.
    total_seconds : float
        Wall seconds of the whole call (builds and process start included).
    counters : dict
        Every counter of the run (and, for composite ops, the checks it made).
    blocking : dict
        The compiler's blocking of the layer, where it has one.
    """

    bit_exact: bool
    cycles: int
    macs: int
    peak_macs_per_cycle: int
    ext_bytes_read: int
    ext_bytes_written: int
    wall_seconds: float
    simulator: str
    build_cached: bool | None = None
    total_seconds: float = 0.0
    counters: dict = field(default_factory=dict)
    blocking: dict = field(default_factory=dict)
    mac_utilization: float = field(init=False)
    simulated_macs_per_second: float = field(init=False)

    def __post_init__(self):
        peak = self.cycles * self.peak_macs_per_cycle
        object.__setattr__(self, "mac_utilization", self.macs / peak if peak else 0.0)
        wall = self.wall_seconds
        object.__setattr__(self, "simulated_macs_per_second", self.macs / wall if wall > 0 else 0.0)

    @classmethod
    def from_run(cls, run, *, bit_exact: bool, peak_macs_per_cycle: int = 0, counters: dict | None = None,
                 **fields) -> LayerStats:
        """The statistics of a :class:`~tilelab.drive.run.Run` whose counters have ``cycles``,
        ``ext_bytes_read``, ``ext_bytes_written`` and (for a MAC array) ``macs``.

        ``counters`` replaces the run's own (e.g. totals over several runs); ``fields`` sets the
        others (``blocking``, ``total_seconds``, ...).
        """
        c = run.counters if counters is None else counters
        values = {"bit_exact": bool(bit_exact), "cycles": int(c["cycles"]), "macs": int(c.get("macs", 0)),
                  "peak_macs_per_cycle": int(peak_macs_per_cycle), "ext_bytes_read": int(c["ext_bytes_read"]),
                  "ext_bytes_written": int(c["ext_bytes_written"]), "wall_seconds": float(run.run_seconds),
                  "simulator": run.result.backend, "build_cached": run.result.build_cached,
                  "total_seconds": float(run.result.total_seconds), "counters": dict(c)}
        values.update(fields)
        return cls(**values)

    def as_dict(self) -> dict:
        """Every field, derived ones included (JSON-able apart from numpy values in ``counters``)."""
        return asdict(self)


@dataclass(frozen=True)
class MeshStats(LayerStats):
    """What one layer run on a mesh measured (:class:`LayerStats` plus the mesh's).

    ``macs`` and the ``tiles`` records come from the tiles' counters; ``ext_bytes_read`` /
    ``ext_bytes_written`` from the memory ports'; ``noc_flits`` sums the flits every router sent
    to a neighbour (all planes); ``links`` has one record per router output port and plane.
    ``shard`` and ``weight_load`` say how the layer was mapped (``weight_load`` is None for ops
    without weights).
    """

    mesh: str = ""
    shard: str = ""
    weight_load: str | None = None
    halo_bytes: int = 0
    noc_flits: int = 0
    tiles: list = field(default_factory=list)
    ports: list = field(default_factory=list)
    links: list = field(default_factory=list)

    @classmethod
    def from_mesh_run(cls, config, run, *, bit_exact: bool, shard: str, weight_load: str | None = None,
                      halo_bytes: int = 0, counters: dict | None = None) -> MeshStats:
        """The statistics of a mesh run (:func:`tilelab.drive.mesh.mesh_unit`'s counters).

        Parameters
        ----------
        config : MeshConfig
            The mesh.
        run : Run
            Its run.
        bit_exact : bool
            The output check.
        shard, weight_load, halo_bytes
            How the layer was mapped.
        counters : dict, optional
            Entries added to the summed per-node counters (checks of composite ops).
        """
        from tilelab.pe_models.mesh import PLANES

        v = run.counters
        tiles = v["tiles"]
        summed = {"dropped": v["dropped"], "bad_flits": v["bad_flits"]}
        for name in tiles[0]:
            if name not in ("i", "j"):
                summed[name] = sum(t[name] for t in tiles)
        summed.update(counters or {})
        noc_flits = sum(rec[f"{plane}_flits"] for rec in v["links"] if rec["port"] != "L" for plane in PLANES)
        return cls(
            bit_exact=bool(bit_exact), cycles=int(v["cycles"]), macs=int(sum(t["tile.macs"] for t in tiles)),
            peak_macs_per_cycle=config.tiles * config.tile.peak_macs_per_cycle,
            ext_bytes_read=int(sum(p["bytes_read"] for p in v["ports"])),
            ext_bytes_written=int(sum(p["bytes_written"] for p in v["ports"])),
            wall_seconds=float(run.run_seconds), simulator=run.result.backend, build_cached=run.result.build_cached,
            total_seconds=float(run.result.total_seconds), counters=summed, mesh=f"{config.rows}x{config.cols}",
            shard=shard, weight_load=weight_load, halo_bytes=int(halo_bytes), noc_flits=int(noc_flits),
            tiles=tiles, ports=v["ports"], links=v["links"])
