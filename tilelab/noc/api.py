"""Host API of the NoC: traffic runs, load sweeps, multicasts and all-reduces on simulated RTL.

Every function builds (or takes from the cache) the RTL harness, runs one bench through
:func:`tilelab.sim.simulate` and turns the counters the hardware kept into a JSON-able dict.
The host never computes what the network computes: it configures, starts, waits and reads back,
and compares with numpy.
"""

import functools
import hashlib
import json
import math
from dataclasses import asdict
from pathlib import Path

import numpy as np

from tilelab.checks import check_int
from tilelab.hdl.formats.noc import (
    MAX_MESH,
    MulticastConfig,
    ReduceConfig,
    ReduceOp,
    TrafficConfig,
    TrafficPattern,
)
from tilelab.noc.traffic import HIST_BUCKETS, bucket_upper, pattern_error

__all__ = [
    "NocError", "parse_mesh", "parse_rect", "parse_coord", "traffic", "sweep", "multicast", "reduce",
    "multicast_data", "reduce_contributions", "fnv_hash", "PATTERNS", "multicast_many", "reduce_many",
    "plot_sweeps", "reduce_golden",
]

#: Pattern names accepted by :func:`traffic` and :func:`sweep`.
PATTERNS = tuple(p.name.lower() for p in TrafficPattern)
_BACKENDS = ("verilator", "icarus", "amaranth")


class NocError(ValueError):
    """Bad input at the NoC API (the message names the value and the limit)."""


# ---------------------------------------------------------------------------- argument checks

def parse_mesh(mesh):
    """``"8x8"`` or ``(rows, cols)`` → ``(rows, cols)``, each 1..16."""
    if isinstance(mesh, str):
        parts = mesh.lower().split("x")
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            raise NocError(f"mesh must be ROWSxCOLS such as '8x8', not {mesh!r}")
        rows, cols = int(parts[0]), int(parts[1])
    else:
        try:
            rows, cols = mesh
        except (TypeError, ValueError):
            raise NocError(f"mesh must be ROWSxCOLS such as '8x8', not {mesh!r}") from None
    for what, v in (("rows", rows), ("cols", cols)):
        _positive(f"mesh {what}", v, MAX_MESH)
    return rows, cols


def _ints(text, n, what):
    if isinstance(text, str):
        parts = text.split(",")
        if len(parts) != n or not all(p.strip().lstrip("-").isdigit() for p in parts):
            raise NocError(f"{what} must be {n} comma-separated integers, not {text!r}")
        return tuple(int(p) for p in parts)
    try:
        vals = tuple(int(v) for v in text)
    except (TypeError, ValueError):
        raise NocError(f"{what} must be {n} integers, not {text!r}") from None
    if len(vals) != n:
        raise NocError(f"{what} must be {n} integers, not {text!r}")
    return vals


def parse_coord(coord, rows, cols, what="source"):
    """``"x,y"`` or ``(x, y)`` inside a rows × cols mesh."""
    x, y = _ints(coord, 2, what)
    if not (0 <= x < cols and 0 <= y < rows):
        raise NocError(f"{what} ({x},{y}) is outside the {rows}x{cols} mesh (x in 0..{cols - 1}, "
                       f"y in 0..{rows - 1})")
    return x, y


def parse_rect(rect, rows, cols):
    """``"x0,y0,x1,y1"`` or a 4-tuple: a non-inverted rectangle inside the mesh."""
    x0, y0, x1, y1 = _ints(rect, 4, "rectangle")
    if x0 > x1 or y0 > y1:
        raise NocError(f"rectangle {(x0, y0, x1, y1)!r} is inverted (need x0 <= x1 and y0 <= y1)")
    if min(x0, y0) < 0 or x1 >= cols or y1 >= rows:
        raise NocError(f"rectangle {(x0, y0, x1, y1)!r} leaves the {rows}x{cols} mesh "
                       f"(x in 0..{cols - 1}, y in 0..{rows - 1})")
    return x0, y0, x1, y1


def _pattern(pattern, rows, cols):
    name = pattern.name.lower() if isinstance(pattern, TrafficPattern) else str(pattern).lower()
    if name not in PATTERNS:
        raise NocError(f"unknown traffic pattern {pattern!r}; choose one of {', '.join(PATTERNS)}")
    p = TrafficPattern[name.upper()]
    err = pattern_error(p, rows, cols)
    if err:
        raise NocError(err)
    return p


def _rate(rate, what="rate"):
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate <= 1:
        raise NocError(f"{what} must be in (0, 1], not {rate!r}")
    return float(rate)


def _probability(p, what):
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1:
        raise NocError(f"{what} must be in [0, 1), not {p!r}")
    return float(p)


def _positive(what, n, hi=None):
    """:func:`tilelab.checks.check_int` from 1, raising :class:`NocError` (a bad command-line value)."""
    try:
        return check_int(what, n, 1, hi)
    except (TypeError, ValueError) as error:
        raise NocError(str(error)) from None


def _backend(backend):
    if backend not in _BACKENDS:
        raise NocError(f"backend must be one of {', '.join(_BACKENDS)}, not {backend!r}")
    return backend


def _threshold(p):
    return min(65536, int(round(p * 65536)))


# ---------------------------------------------------------------------------- designs

def _source_digest():
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    # the RTL sources only: host-side edits must not force a new conversion
    for f in sorted(root.glob("*.py")) + [root.parent / "hdl" / "formats" / "noc.py"]:
        if f.name not in ("api.py", "benches.py"):
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


@functools.cache
def _design(kind, backend, **params):
    """The harness component (Amaranth backend) or its Verilog (cached on disk by source hash)."""
    from tilelab.noc.harness import CollectiveHarness, MulticastHarness
    from tilelab.noc.traffic import TrafficHarness

    classes = {"traffic": TrafficHarness, "multicast": MulticastHarness, "reduce": CollectiveHarness}
    if backend == "amaranth":
        return classes[kind](**params)
    from tilelab.sim import Design, default_cache_dir, to_verilog

    key = hashlib.sha256(json.dumps([kind, params, _source_digest()], sort_keys=True).encode()).hexdigest()[:24]
    folder = Path(default_cache_dir()) / "noc-verilog"
    path = folder / f"{kind}-{key}.json"
    if path.exists():
        d = json.loads(path.read_text())
        return Design(top=d["top"], verilog=d["verilog"], extra_sources=tuple(Path(p) for p in d["extra_sources"]),
                      ports=tuple(tuple(p) for p in d["ports"]))
    design = to_verilog(classes[kind](**params))
    folder.mkdir(parents=True, exist_ok=True)
    d = asdict(design)
    d["extra_sources"] = [str(p) for p in design.extra_sources]
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(d))
    tmp.replace(path)
    return design


def _run(kind, params, bench, args, backend, timeout_seconds=None):
    from tilelab.sim import simulate

    design = _design(kind, backend, **params)
    return simulate(design, bench, backend=backend, args=args, timeout_seconds=timeout_seconds)


# ---------------------------------------------------------------------------- traffic

def _p99(hist):
    total = sum(hist)
    if not total:
        return None
    need = math.ceil(0.99 * total)
    acc = 0
    for b, n in enumerate(hist):
        acc += n
        if acc >= need:
            return bucket_upper(b)
    return bucket_upper(HIST_BUCKETS - 1)


def _traffic_run(rows, cols, *, pattern, rate, packets, warmup, measure, seed, packet_flits, source_stall,
                 sink_stall, hotspot, hotspot_fraction, backend, depth, max_cycles, watchdog=1024, links=False):
    cfg = TrafficConfig.const({
        "rate": _threshold(rate / packet_flits), "pattern": pattern, "seed": seed & 0xFFFFFFFF,
        "packets": packets, "pkt_len": packet_flits, "src_stall": _threshold(source_stall),
        "sink_stall": _threshold(sink_stall), "hot_x": hotspot[0], "hot_y": hotspot[1],
        "hot_rate": _threshold(hotspot_fraction),
    }).as_bits()
    res = _run("traffic", {"rows": rows, "cols": cols, "depth": depth, "watchdog": watchdog},
               "tilelab.noc.benches:traffic_bench",
               {"rows": rows, "cols": cols, "cfg": cfg, "warmup": warmup, "measure": measure,
                "max_cycles": max_cycles, "watchdog": watchdog, "links": links}, backend)
    return res.value


def traffic(mesh="8x8", pattern="uniform", rate=0.1, packets=1000, *, seed=1, packet_flits=1,
            source_stall=0.0, sink_stall=0.0, hotspot=None, hotspot_fraction=0.25, backend="verilator",
            depth=8, max_cycles=None, links=False):
    """Run synthetic traffic on a unicast mesh with RTL generators and checkers.

    Parameters
    ----------
    mesh : str or (int, int)
        ``"RxC"``.
    pattern : str
        One of :data:`PATTERNS`.
    rate : float
        Offered load in flits per node per cycle, in (0, 1] (Bernoulli packet creation at
        ``rate / packet_flits``).
    packets : int
        Packets to send over the whole mesh (rounded up to a multiple of the node count).
    seed : int
    packet_flits : int
        Flits per packet, 1..15.
    source_stall, sink_stall : float
        Probability, in [0, 1), that a source holds back a flit / a sink refuses one for a cycle.
    hotspot : (int, int), optional
        Hot node of the ``hotspot`` pattern (default: the centre).
    hotspot_fraction : float
        Share of hotspot-pattern packets sent to the hot node.
    backend : str
        ``"verilator"``, ``"icarus"`` or ``"amaranth"``.
    depth : int
        Router queue depth.
    links : bool
        Also return ``links``: flits sent and stall cycles of every router output port.

    Returns
    -------
    dict
        ``injected``, ``delivered``, ``lost``, ``duplicated``, ``reordered`` (per source →
        destination flow), ``corrupt``, ``misrouted``, ``dropped``, ``avg_latency``,
        ``p99_latency`` (from the RTL latency histogram: exact below 64 cycles, upper edge of a
        16-cycle bucket up to 576, of a 128-cycle bucket beyond), ``max_latency`` (cycles from
        creation, source queueing included, to the last flit's delivery),
        ``offered_rate`` and ``accepted_rate`` (flits created / delivered per node per cycle,
        counted in RTL while every source is still creating packets), ``cycles`` (until
        drained), ``drained``.
    """
    rows, cols = parse_mesh(mesh)
    p = _pattern(pattern, rows, cols)
    rate = _rate(rate)
    _positive("packets", packets, 2**31)
    _positive("packet_flits", packet_flits, 15)
    source_stall = _probability(source_stall, "source_stall")
    sink_stall = _probability(sink_stall, "sink_stall")
    hotspot_fraction = _probability(hotspot_fraction, "hotspot_fraction")
    hot = parse_coord(hotspot, rows, cols, "hotspot") if hotspot is not None else (cols // 2, rows // 2)
    _backend(backend)
    n = rows * cols
    per_node = -(-packets // n)
    if max_cycles is None:
        slow = 1.0 / ((1 - source_stall) * (1 - sink_stall))
        max_cycles = int(per_node * packet_flits / rate * 2 * slow + per_node * packet_flits * n * slow + 20_000)
    v = _traffic_run(rows, cols, pattern=p, rate=rate, packets=per_node, warmup=0, measure=2**32 - 1,
                     seed=seed, packet_flits=packet_flits, source_stall=source_stall, sink_stall=sink_stall,
                     hotspot=hot, hotspot_fraction=hotspot_fraction, backend=backend, depth=depth,
                     max_cycles=max_cycles, links=links)
    unique = v["delivered"] - v["duplicated"]
    window = max(v["window_cycles"], 1)
    end = v["finish_cycle"] if not v["timed_out"] else v["cycle"]
    return {
        "mesh": f"{rows}x{cols}", "pattern": p.name.lower(), "rate": rate, "seed": seed,
        "packet_flits": packet_flits,
        "injected": v["injected"], "delivered": v["delivered"], "lost": v["injected"] - unique,
        "duplicated": v["duplicated"], "reordered": v["reordered"], "corrupt": v["corrupt"],
        "misrouted": v["misrouted"], "dropped": v["dropped"],
        "avg_latency": v["lat_sum"] / v["lat_count"] if v["lat_count"] else None,
        "p99_latency": _p99(v["hist"]), "max_latency": v["lat_max"],
        "offered_rate": v["offered_window"] * packet_flits / (n * window),
        "accepted_rate": v["accepted_window"] / (n * window),
        "cycles": end, "drained": not v["timed_out"],
        **({"links": [{"x": x, "y": y, "port": p, "flits": f, "stall_cycles": st} for x, y, p, f, st in v["links"]]}
           if links else {}),
    }


def sweep(mesh="8x8", pattern="uniform", *, rates=None, warmup=1000, measure=2000, seed=1, packet_flits=1,
          backend="verilator", depth=8, resolution=0.01, max_rate=1.0):
    """Latency against offered load, up to saturation.

    Each point runs ``warmup`` cycles, measures packets created during ``measure`` cycles and
    drains.  A point *keeps up* when the accepted rate is within 5 % of the offered rate, no
    source queue overflowed, and its average latency is at most three times the zero-load latency
    (bounded); saturation is the highest rate that keeps up.  Without ``rates`` the sweep steps
    by 0.05 until a point fails, then bisects to ``resolution``.

    Returns
    -------
    dict
        ``points`` (``offered_rate``, ``accepted_rate``, ``avg_latency``, ``p99_latency``, ``ok``
        per rate), ``zero_load_latency`` (cycles, at a load of 0.01), ``saturation_throughput``
        (flits/node/cycle: the accepted rate of the saturation point).
    """
    rows, cols = parse_mesh(mesh)
    p = _pattern(pattern, rows, cols)
    _positive("warmup", warmup)
    _positive("measure", measure)
    _backend(backend)
    if rates is not None:
        rates = [_rate(r, "sweep rate") for r in rates]
    n = rows * cols
    hot = (cols // 2, rows // 2)
    cache = {}

    def point(rate):
        rate = round(rate, 6)
        if rate not in cache:
            v = _traffic_run(rows, cols, pattern=p, rate=rate, packets=0, warmup=warmup, measure=measure,
                             seed=seed, packet_flits=packet_flits, source_stall=0.0, sink_stall=0.0,
                             hotspot=hot, hotspot_fraction=0.25, backend=backend, depth=depth,
                             max_cycles=warmup + measure + 200_000)
            window = max(v["window_cycles"], 1)
            offered = v["offered_window"] * packet_flits / (n * window)
            accepted = v["accepted_window"] / (n * window)
            avg = v["lat_sum"] / v["lat_count"] if v["lat_count"] else None
            cache[rate] = {"rate": rate, "offered_rate": offered, "accepted_rate": accepted,
                           "avg_latency": avg, "p99_latency": _p99(v["hist"]), "max_latency": v["lat_max"],
                           "overflow": v["overflow"], "drained": not v["timed_out"],
                           "lost": v["injected"] - (v["delivered"] - v["duplicated"]),
                           "reordered": v["reordered"], "duplicated": v["duplicated"]}
        return cache[rate]

    zero = point(0.01)
    zero_load = zero["avg_latency"]

    def keeps_up(pt):
        ok = (pt["drained"] and pt["overflow"] == 0 and pt["avg_latency"] is not None
              and pt["accepted_rate"] >= 0.95 * pt["offered_rate"]
              and pt["avg_latency"] <= 3 * zero_load)
        pt["ok"] = bool(ok)
        return ok

    keeps_up(zero)
    if rates is None:
        good, bad = 0.01, None
        r = 0.05
        while r <= max_rate + 1e-9:
            if keeps_up(point(r)):
                good = r
                r = round(r + 0.05, 6)
            else:
                bad = r
                break
        if bad is not None:
            while bad - good > resolution + 1e-9:
                mid = round((good + bad) / 2, 4)
                if keeps_up(point(mid)):
                    good = mid
                else:
                    bad = mid
        # one point past saturation shows the knee of the curve
        if bad is not None:
            point(min(max_rate, bad + 0.05))
    else:
        for r in rates:
            keeps_up(point(r))
    pts = sorted(cache.values(), key=lambda q: q["rate"])
    for q in pts:
        keeps_up(q)
    ok_pts = [q for q in pts if q["ok"]]
    sat = max(ok_pts, key=lambda q: q["rate"]) if ok_pts else None
    return {
        "mesh": f"{rows}x{cols}", "pattern": p.name.lower(), "packet_flits": packet_flits,
        "warmup": warmup, "measure": measure, "seed": seed,
        "zero_load_latency": zero_load,
        "saturation_rate": sat["rate"] if sat else None,
        "saturation_throughput": sat["accepted_rate"] if sat else None,
        "points": pts,
    }


def plot_sweeps(sweeps, path, *, title=None):
    """Draw latency against offered load for one or more :func:`sweep` results into a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for s in sweeps:
        pts = [q for q in s["points"] if q["avg_latency"] is not None]
        ax.plot([q["offered_rate"] for q in pts], [q["avg_latency"] for q in pts], marker="o", ms=3,
                label=f"{s['pattern']} (sat. {s['saturation_throughput'] or 0:.3f})")
    ax.set_xlabel("offered load (flits/node/cycle)")
    ax.set_ylabel("average latency (cycles)")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(title or f"{sweeps[0]['mesh']} mesh, XY routing, one-flit packets")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------------------- multicast

_FNV_OFFSET, _FNV_PRIME = 0x811C9DC5, 0x01000193
_MC_STEP = 0x85EBCA6B
_MC_MUL = 0x9E3779B1


def fnv_hash(words):
    """FNV-1a over 32-bit words, as the RTL receivers compute it."""
    h = _FNV_OFFSET
    for w in words:
        h = ((h ^ (int(w) & 0xFFFFFFFF)) * _FNV_PRIME) & 0xFFFFFFFF
    return h


def multicast_data(seed, flits):
    """Data words the multicast source sends (flit ``k``: ``seed * C1 + k * C2`` mod 2**32)."""
    k = np.arange(flits, dtype=np.uint64)
    return ((np.uint64(seed & 0xFFFFFFFF) * np.uint64(_MC_MUL) + k * np.uint64(_MC_STEP))
            & np.uint64(0xFFFFFFFF)).astype(np.uint32)


def _mc_cfg(rect, src, flits, seed):
    x0, y0, x1, y1 = rect
    return MulticastConfig.const({
        "src": {"x": src[0], "y": src[1]}, "rect0": {"x": x0, "y": y0}, "rect1": {"x": x1, "y": y1},
        "flits": flits, "seed": seed & 0xFFFFFFFF}).as_bits()


def _flow_checks(expected, got, hash_ok):
    """The per-flow tally of a multicast or a reduction, in the words of :func:`traffic`'s report.

    ``expected`` / ``got``: flits per node; ``hash_ok``: per node, whether the flits that arrived
    hash to the expected sequence (the hash is order-sensitive, so a reordered or corrupt flit
    shows there). ``injected`` counts the flits owed to the destinations; ``misrouted`` the flits
    at nodes outside them.
    """
    inside = [e > 0 for e in expected]
    return {
        "injected": sum(expected),
        "delivered": sum(min(g, e) for g, e in zip(got, expected, strict=True)),
        "lost": sum(max(0, e - g) for g, e in zip(got, expected, strict=True)),
        "duplicated": sum(max(0, g - e) for g, e, i in zip(got, expected, inside, strict=True) if i),
        "misrouted": sum(g for g, i in zip(got, inside, strict=True) if not i),
        "reordered_or_corrupt": sum(1 for g, e, ok, i in zip(got, expected, hash_ok, inside, strict=True)
                                    if i and g == e and not ok),
    }


def _mc_report(rows, cols, rect, src, flits, seed, v):
    x0, y0, x1, y1 = rect
    want = fnv_hash(multicast_data(seed, flits))
    per = {}
    exact = True
    rates = []
    expected, got, hash_ok = [], [], []
    for n, node in enumerate(v["nodes"]):
        x, y = n % cols, n // cols
        inside = x0 <= x <= x1 and y0 <= y <= y1
        per[f"{x},{y}"] = node["flits"]
        expected.append(flits if inside else 0)
        got.append(node["flits"])
        hash_ok.append(node["hash"] == want)
        if inside:
            exact &= node["flits"] == flits and node["hash"] == want
            span = node["last_cycle"] - node["first_cycle"] + 1
            rates.append(flits / span if span > 0 else 0.0)
        else:
            exact &= node["flits"] == 0
    return {
        "mesh": f"{rows}x{cols}", "rect": list(rect), "src": list(src), "flits": flits, "seed": seed,
        "cycles": v["cycles"], "bit_exact": bool(exact and v["done"]),
        "delivered": per, "destinations": len(rates), "checks": _flow_checks(expected, got, hash_ok),
        "min_rate": min(rates) if rates else None,
        "avg_rate": sum(rates) / len(rates) if rates else None,
    }


def multicast(mesh="8x8", rect=None, src=(0, 0), flits=64, *, seed=1, backend="verilator", max_packet=4,
              depth=8):
    """Multicast ``flits`` flits from ``src`` to every node of ``rect`` on the multicast plane.

    Returns
    -------
    dict
        ``cycles`` (from start to the last flit delivered anywhere), ``bit_exact`` (every node of
        the rectangle got exactly the sent words, in order — a hash compared with numpy — and no
        other node got anything), ``delivered`` (flits per node ``"x,y"``), ``min_rate`` /
        ``avg_rate`` (flits per cycle at each destination between its first and last flit).
    """
    rows, cols = parse_mesh(mesh)
    rect = parse_rect(rect if rect is not None else (0, 0, cols - 1, rows - 1), rows, cols)
    src = parse_coord(src, rows, cols)
    _positive("flits", flits, 65535)
    _backend(backend)
    params = {"rows": rows, "cols": cols, "max_packet": max_packet, "depth": depth}
    res = _run("multicast", params, "tilelab.noc.benches:multicast_bench",
               {"rows": rows, "cols": cols, "cfg": _mc_cfg(rect, src, flits, seed),
                "max_cycles": 20 * flits + 2000, "watchdog": 1024}, backend)
    return _mc_report(rows, cols, rect, src, flits, seed, res.value)


def multicast_many(mesh, cases, *, backend="verilator", max_packet=4, depth=8):
    """Run several multicasts ``(rect, src, flits, seed)`` on one simulator process."""
    rows, cols = parse_mesh(mesh)
    cases = [(parse_rect(r, rows, cols), parse_coord(s, rows, cols), _positive("flits", f, 65535), seed)
             for r, s, f, seed in cases]
    params = {"rows": rows, "cols": cols, "max_packet": max_packet, "depth": depth}
    res = _run("multicast", params, "tilelab.noc.benches:multicast_sweep_bench",
               {"rows": rows, "cols": cols, "cfgs": [_mc_cfg(*c) for c in cases],
                "max_cycles": 20 * max(c[2] for c in cases) + 2000, "watchdog": 1024}, backend)
    return [_mc_report(rows, cols, *c, v) for c, v in zip(cases, res.value, strict=True)]


# ---------------------------------------------------------------------------- reduce

_LCG_A, _LCG_C = 1664525, 1013904223


def reduce_contributions(rows, cols, flits, lanes, seed, rect=None):
    """Contributions the RTL generators send: ``{(x, y): int32 array (flits, lanes)}``.

    Lane ``l`` of node ``n`` starts at ``seed ^ (n * 0x9E3779B1 + l * 0x7F4A7C15)`` and advances
    as the LCG ``v = v * 1664525 + 1013904223 (mod 2**32)`` once per flit.
    """
    x0, y0, x1, y1 = rect if rect is not None else (0, 0, cols - 1, rows - 1)
    out = {}
    for y in range(y0, y1 + 1):
        for x in range(x0, x1 + 1):
            n = y * cols + x
            v = np.array([(seed ^ ((n * 0x9E3779B1 + lane * 0x7F4A7C15) & 0xFFFFFFFF)) & 0xFFFFFFFF
                          for lane in range(lanes)], dtype=np.uint64)
            rows_out = np.empty((flits, lanes), dtype=np.uint64)
            for k in range(flits):
                rows_out[k] = v
                v = (v * np.uint64(_LCG_A) + np.uint64(_LCG_C)) & np.uint64(0xFFFFFFFF)
            out[x, y] = rows_out.astype(np.uint32).view(np.int32)
    return out


def reduce_golden(op, contributions):
    """numpy totals: wrapping int32 sum, or max."""
    stack = np.stack(list(contributions.values())).astype(np.int64)
    if ReduceOp(op) is ReduceOp.SUM:
        return (stack.sum(axis=0) & 0xFFFFFFFF).astype(np.uint32).view(np.int32)
    return stack.max(axis=0).astype(np.int32)


def _op(op):
    if isinstance(op, ReduceOp):
        return op
    try:
        return ReduceOp[str(op).upper()]
    except KeyError:
        raise NocError(f"reduce op must be 'sum' or 'max', not {op!r}") from None


def _reduce_specs(rows, cols, op, flits, seed, rect, root, also):
    def spec(op, flits, seed, rect, root):
        op = _op(op)
        _positive("flits", flits, 65535)
        rect = parse_rect(rect if rect is not None else (0, 0, cols - 1, rows - 1), rows, cols)
        x0, y0, x1, y1 = rect
        root = parse_coord(root, rows, cols, "root") if root is not None else ((x0 + x1) // 2, (y0 + y1) // 2)
        if not (x0 <= root[0] <= x1 and y0 <= root[1] <= y1):
            raise NocError(f"root {root!r} is outside the rectangle {rect!r}")
        return op, flits, seed, rect, root

    specs = [spec(op, flits, seed, rect, root)]
    if also is not None:
        a = dict(also)
        specs.append(spec(a.get("op", op), a.get("flits", flits), a.get("seed", seed + 1), a.get("rect"),
                          a.get("root")))
    return specs


def _reduce_cfgs(specs):
    cfgs = []
    for op_, flits_, seed_, rect_, root_ in specs:
        x0, y0, x1, y1 = rect_
        cfgs.append(ReduceConfig.const({
            "enable": 1, "op": op_, "root": {"x": root_[0], "y": root_[1]}, "rect0": {"x": x0, "y": y0},
            "rect1": {"x": x1, "y": y1}, "flits": flits_, "seed": seed_ & 0xFFFFFFFF}).as_bits())
    while len(cfgs) < 2:
        cfgs.append(0)
    return cfgs


def _reduce_report(rows, cols, lanes, specs, v):
    reports = []
    for (op_, flits_, seed_, rect_, root_), ctx in zip(specs, v["contexts"], strict=False):
        contrib = reduce_contributions(rows, cols, flits_, lanes, seed_, rect_)
        total = reduce_golden(op_, contrib)
        want = fnv_hash(total.view(np.uint32).reshape(-1))
        x0, y0, x1, y1 = rect_
        exact = bool(v["done"])
        per = {}
        expected, got, hash_ok = [], [], []
        for n, node in enumerate(ctx["nodes"]):
            x, y = n % cols, n // cols
            per[f"{x},{y}"] = node["flits"]
            expected.append(flits_ if x0 <= x <= x1 and y0 <= y <= y1 else 0)
            got.append(node["flits"])
            hash_ok.append(node["hash"] == want)
            if x0 <= x <= x1 and y0 <= y <= y1:
                exact &= node["flits"] == flits_ and node["hash"] == want
            else:
                exact &= node["flits"] == 0
        reports.append({"mesh": f"{rows}x{cols}", "op": op_.name.lower(), "flits": flits_, "lanes": lanes,
                        "seed": seed_, "rect": list(rect_), "root": list(root_), "cycles": ctx["cycles"],
                        "bit_exact": exact, "delivered": per, "checks": _flow_checks(expected, got, hash_ok)})
    out = reports[0]
    if len(reports) > 1:
        out["second"] = reports[1]
    return out


def reduce(mesh="8x8", op="sum", flits=16, seed=1, *, lanes=4, rect=None, root=None, also=None,
           backend="verilator"):
    """All-reduce on the collective plane: every node of ``rect`` (default: the whole mesh)
    contributes ``flits`` flits of ``lanes`` int32 lanes (generated in RTL from ``seed``); the
    routers reduce along rows to the root's column, down it to ``root`` (default: the centre),
    and broadcast the totals back.

    ``also`` runs a second collective at the same time on the second context: a dict with any
    of ``op``, ``flits``, ``seed``, ``rect``, ``root``.

    Returns
    -------
    dict
        ``cycles`` (start to the last total delivered), ``bit_exact`` (every participant's totals
        hash equals numpy's and no other node got anything), ``delivered`` (flits per node), and
        ``second`` for ``also``.
    """
    return reduce_many(mesh, [dict(op=op, flits=flits, seed=seed, rect=rect, root=root, also=also)],
                       lanes=lanes, backend=backend)[0]


def reduce_many(mesh, runs, *, lanes=4, backend="verilator"):
    """Several :func:`reduce` runs (dicts of its keyword arguments) in one simulator process."""
    rows, cols = parse_mesh(mesh)
    _backend(backend)
    _positive("lanes", lanes, 16)
    all_specs = [_reduce_specs(rows, cols, r.get("op", "sum"), r.get("flits", 16), r.get("seed", 1),
                               r.get("rect"), r.get("root"), r.get("also")) for r in runs]
    longest = max(s[1] for specs in all_specs for s in specs)
    res = _run("reduce", {"rows": rows, "cols": cols, "lanes": lanes}, "tilelab.noc.benches:reduce_many_bench",
               {"rows": rows, "cols": cols, "runs": [_reduce_cfgs(s) for s in all_specs],
                "max_cycles": 4 * longest + 4000}, backend)
    return [_reduce_report(rows, cols, lanes, specs, v) for specs, v in zip(all_specs, res.value, strict=True)]
