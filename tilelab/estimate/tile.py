"""The compute tile's cycles from its descriptor streams, engine by engine, without simulating it.

The compiler (:func:`tilelab.compile.tile.program_streams`) gives the exact blocking and the three
descriptor streams. Each engine of :mod:`tilelab.pe_models.tile` is then modelled as the RTL runs
it, with the cost of every descriptor in closed form:

* the **command fetcher** reads the header, then one descriptor at a time into an engine's empty
  queue, round robin (``64 / W + 3`` cycles a descriptor; the engine sees it two cycles later);
* the **reader** spends one cycle waiting for a page, one cycle per W-byte piece (an im2col row
  costs one piece per W-byte word each tap's chunk touches in its lane, or with runs each run of a
  kernel row's adjacent taps, see ``ReadDesc.run``; a ganged flat read moves
  up to 4 rows a piece, 8 on both ports when the fetcher leaves the second one free; a depthwise
  stream one word a cycle while the activation ring has room) and one cycle to push;
* **compute** waits for its pages, then issues one reduction step a cycle per activation tile ×
  weight tile: steps reach the MAC array three cycles later through a four-entry credit queue; a
  tile's last step waits until the array's shadow bank has drained the previous tile (its real
  rows, D a cycle); a new tile starts only when fewer than four tiles wait for pack; a
  depthwise tile waits for the window rows its last lane reads (a grouped conv in the depthwise
  mode is the same engine with ``taps · g`` steps a tile); three cycles between blocks;
* **pack** drains D rows a cycle into the output circular buffer while it has room;
* the **writer** stores a row in ``ceil(bytes / W)`` cycles, pops a tile's padding entry (an odd
  row count with D = 2) in one cycle, and takes its next descriptor in the cycle of the last pop when it is there.

Engines meet only through circular-buffer counts (:class:`~tilelab.estimate.timeline.Track`), as in
the RTL; :func:`~tilelab.estimate.timeline.run_engines` runs them in order of their clocks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from tilelab.compile.tile import ProgramStreams, memory_map, program_streams
from tilelab.hdl.formats.tile import DESC_BYTES, PACK_SLOTS, Target
from tilelab.pe_models.config import DEFAULT_TILE, TileConfig
from tilelab.reference.layers import Conv2dSpec, LinearSpec

from .timeline import Need, Track, run_engines

__all__ = ["BOUNDS", "TileEstimate", "estimate_conv", "estimate_linear", "estimate_streams"]

#: What can set a layer's cycles (see :attr:`TileEstimate.bound`).
BOUNDS = ("array", "array drain", "read port", "write port", "overhead")


def _ceil(a, b):
    return -(-a // b)


@dataclass(frozen=True)
class TileEstimate:
    """The estimate of one layer (or part of a layer) on one compute tile.

    Attributes
    ----------
    cycles : int
        Predicted cycles from start to done (the RTL's ``cycles`` counter).
    macs : int
        Useful multiply-accumulates.
    peak_macs_per_cycle : int
        R·C.
    mac_utilization : float
        ``macs / (cycles · R·C)``.
    ext_bytes_read, ext_bytes_written, cmd_bytes_read : int
        External-memory traffic (exact: the counters the RTL would report).
    ext_bytes : int
        The port width W.
    engines : dict
        Busy cycles of each engine: ``reader`` (pieces moved), ``array`` (reduction steps issued),
        ``array_drain`` (cycles the array needs per tile, ``max(k, R / D)`` summed: steps, or the
        drain of the shadow bank when a tile has fewer steps than that), ``writer`` (pieces
        stored).
    physical : dict
        Lower bounds no mapping can beat: ``compute`` = MACs ÷ (R·C), ``read`` = bytes read ÷ W,
        ``write`` = bytes written ÷ W (cycles, rounded up).
    bound : str
        What sets the layer, one of :data:`BOUNDS`: the largest of the array's steps (``array``),
        its drains when tiles are shorter than a drain (``array drain``), the read port's and the
        write port's busy cycles, and what the engines cannot overlap (``overhead``: the cycles
        beyond the largest of those — first loads, descriptor and pipeline latencies, fill and
        drain of the array).
    counters : dict
        Predicted RTL counters (``cycles``, ``reader_busy``, ``compute_busy``, ``writer_busy``,
        ``compute_wait_cb``, ``macs``, ``mac_steps``, the byte counts).
    blocking : dict
        The compiler's blocking.
    """

    cycles: int
    macs: int
    peak_macs_per_cycle: int
    ext_bytes_read: int
    ext_bytes_written: int
    cmd_bytes_read: int
    ext_bytes: int
    engines: dict
    physical: dict
    bound: str
    counters: dict = field(default_factory=dict)
    blocking: dict = field(default_factory=dict)

    @property
    def mac_utilization(self) -> float:
        """``macs / (cycles · R·C)``."""
        return self.macs / (self.cycles * self.peak_macs_per_cycle) if self.cycles else 0.0

    @property
    def physical_bound(self) -> int:
        """The largest physical lower bound (cycles)."""
        return max(self.physical.values())

    @property
    def physical_ratio(self) -> float:
        """How far the layer is from its physical bound: ``cycles / physical_bound`` (≥ 1)."""
        return self.cycles / self.physical_bound if self.physical_bound else 0.0

    def as_dict(self) -> dict:
        """Every field and the derived ones, JSON-able."""
        d = asdict(self)
        d.update(mac_utilization=self.mac_utilization, physical_bound=self.physical_bound,
                 physical_ratio=self.physical_ratio)
        return d


# ---------------------------------------------------------------------------------------------
# Reader costs


def _pieces(start: int, length: int, W: int) -> int:
    """W-byte words the bytes ``[start, start + length)`` of a lane touch (one reader piece each)."""
    return (start + length - 1) // W - start // W + 1 if length > 0 else 0


def _row_pieces(offset: int, taps: int, chunk: int, W: int) -> int:
    """Pieces of one im2col row placed at lane byte ``offset``: every tap's chunk, split at words."""
    return sum(_pieces(offset + t * chunk, chunk, W) for t in range(taps))


def _tap_runs(geo: dict, oh: int, ow: int) -> tuple:
    """The runs of taps (``ReadDesc.run``) of output pixel ``(oh, ow)``, kernel row by kernel row:
    in the padding, every tap up to the input's left edge or the row's end; inside, every tap up
    to the row's end or the input's right edge."""
    kw = geo["kw"]
    out = []
    for ki in range(geo["kh"]):
        ih = oh * geo["stride_h"] - geo["pad_top"] + ki * geo["dil_h"]
        if not 0 <= ih < geo["h"]:
            out.append(kw)
            continue
        kj = 0
        while kj < kw:
            iw = ow * geo["stride_w"] - geo["pad_left"] + kj
            left = kw - kj
            t = left if iw >= geo["w"] else min(left, -iw if iw < 0 else geo["w"] - iw)
            out.append(t)
            kj += t
    return tuple(out)


def _run_row_pieces(offset: int, runs: tuple, chunk: int, W: int) -> int:
    """Pieces of one im2col row read as ``runs`` of taps, placed at lane byte ``offset``."""
    total = 0
    for t in runs:
        total += _pieces(offset, t * chunk, W)
        offset += t * chunk
    return total


def _act_pieces(npix: int, p0: int, taps: int, chunk: int, row_bytes: int, geo: dict, R: int, W: int) -> int:
    """RUN cycles of an im2col activation read of ``npix`` rows from output pixel ``p0`` on."""
    n, cache = 0, {}
    if not geo.get("run", 0):
        for rnd in range(_ceil(npix, R)):
            off = (rnd * row_bytes) % W
            if off not in cache:
                cache[off] = _row_pieces(off, taps, chunk, W)
            n += min(R, npix - rnd * R) * cache[off]
        return n
    ho, wo = geo["ho"], geo["wo"]
    gang = 1 << geo["gang"] if geo.get("gang", 0) else 0
    sw, kw, pl, w = geo["stride_w"], geo["kw"], geo["pad_left"], geo["w"]
    runs_of = {}
    j = 0
    while j < npix:
        p = p0 + j
        oh, ow = (p // wo) % ho, p % wo
        iw = ow * sw - pl
        if gang and iw >= 0:
            # a pixel gang (ReadDesc.gang): the next pixels' same kernel row in the same read, while
            # their runs are whole and they are in this lane round and output row
            cnt = 1 + sum(1 for i in range(1, gang) if iw + i * sw + kw <= w and j % R + i < R and ow + i < wo
                          and j + i < npix)
            if cnt > 1:
                n += geo["kh"]          # one read per kernel row (no row crosses a lane word)
                j += cnt
                continue
        if (oh, ow) not in runs_of:
            runs_of[oh, ow] = _tap_runs(geo, oh, ow)
        key = ((j // R) * row_bytes % W, runs_of[oh, ow])
        if key not in cache:
            cache[key] = _run_row_pieces(key[0], key[1], chunk, W)
        n += cache[key]
        j += 1
    return n


def _flat_pieces(npix: int, chunk: int, row_bytes: int, lanes: int, W: int) -> int:
    """Pieces of an unganged read of ``npix`` rows: row ``j`` at lane byte ``(j // lanes) * row_bytes``."""
    total, cache = 0, {}
    for rnd in range(_ceil(npix, lanes)):
        off = (rnd * row_bytes) % W
        if off not in cache:
            cache[off] = _pieces(off, chunk, W)
        total += min(lanes, npix - rnd * lanes) * cache[off]
    return total


def _ganged_cycles(npix: int, gang: int, lanes: int, port_b_busy) -> int:
    """Cycles of a ganged flat read of ``npix`` rows; ``port_b_busy(i)`` says whether the fetcher
    holds the second port in the read's cycle ``i`` (then no dual read)."""
    g = 1 << gang
    j = lane = cycles = 0
    while j < npix:
        left = npix - j
        dual = (not port_b_busy(cycles)) and left > g and lane % (2 * g) == 0 and lane + 2 * g <= lanes
        cnt = min(left, 2 * g if dual else g)
        j += cnt
        lane += cnt
        if lane >= lanes:
            lane = 0
        cycles += 1
    return cycles


def _im2col_counts(geo: dict, pixels: int):
    """Cumulative in-image taps of the first ``pixels`` output pixels (index 0: none) of an im2col
    geometry: a tap in the padding reads nothing."""
    ho, wo = geo["ho"], geo["wo"]
    p = np.arange(pixels)
    oh, ow = (p // wo) % ho, p % wo
    ki = np.arange(geo["kh"]) * geo["dil_h"] - geo["pad_top"]
    kj = np.arange(geo["kw"]) * geo["dil_w"] - geo["pad_left"]
    ih = oh[:, None] * geo["stride_h"] + ki[None, :]
    iw = ow[:, None] * geo["stride_w"] + kj[None, :]
    rows = ((ih >= 0) & (ih < geo["h"])).sum(axis=1)
    cols = ((iw >= 0) & (iw < geo["w"])).sum(axis=1)
    return np.concatenate([[0], np.cumsum(rows * cols)])


# ---------------------------------------------------------------------------------------------
# Engines


class _Engine:
    """An engine of the tile: its descriptors, the deliveries of its queue, its loads."""

    def __init__(self, descs):
        self.descs = descs
        self.count = len(descs)
        self.delivered = Track()     # descriptors in the queue (the cycle the engine sees each)
        self.loads = []              # the cycle the engine took each descriptor
        self.clock = 0               # a lower bound of the cycle it takes its next descriptor
        self.done = False

    def ready(self):
        return True


class _Fetcher:
    """The command fetcher: the header, then descriptors round robin into empty queues."""

    def __init__(self, engines, W):
        self.engines = engines
        self.words = DESC_BYTES // W
        self.left = [e.count for e in engines]
        self.fetched = [0] * len(engines)
        self.free_at = self.words + 3           # the header: chosen at 0, in by words + 2
        self.rr = 0
        self.clock = self.free_at
        self.done = False
        self.port_b = []                        # cycles [a, b] the fetcher holds read port b
        self.port_b.append((1, self.words))
        self._choice = None

    def _empty_since(self, i):
        e = self.engines[i]
        if self.fetched[i] > len(e.loads):
            return None                         # full: the engine has not taken it yet
        return e.loads[-1] + 1 if e.loads else 0

    def ready(self, force=False):
        known, unknown = [], []
        for i in range(len(self.engines)):
            if not self.left[i]:
                continue
            since = self._empty_since(i)
            (known if since is not None else unknown).append((i, since))
        if not known:
            self._choice = None
            return False
        c = max(self.free_at, min(s for _, s in known))
        if not force and any(self.engines[i].clock + 1 <= c for i, _ in unknown):
            self._choice = None
            return False
        cands = {i for i, s in known if s <= c}
        for off in range(3):
            i = (self.rr + off) % 3
            if i in cands:
                self._choice = (c, i)
                return True
        return False

    def run(self):
        while any(self.left):
            yield None
            if self._choice is None:
                self.ready(force=True)
            c, i = self._choice
            self._choice = None
            w = self.words
            self.port_b.append((c + 1, c + w))
            self.engines[i].delivered.add(c + w + 4, 1)
            self.fetched[i] += 1
            self.left[i] -= 1
            self.free_at = c + w + 3
            self.clock = self.free_at
            self.rr = (i + 1) % 3

    def port_b_busy(self, start):
        """A function of the cycle offset from ``start``: does the fetcher hold port b then.

        The fetches decided so far, and the ones to come for every queue known to be empty, one
        after another (the engines that have not taken their descriptor yet are taken not to ask
        in the meantime).
        """
        spans = [(a - start, b - start) for a, b in self.port_b[-3:] if b >= start]
        empties = []
        for i, e in enumerate(self.engines):
            if not self.left[i]:
                continue
            since = self._empty_since(i)
            if since is None and self.fetched[i] == len(e.loads) + 1 and not e.loads:
                # an engine that has not started takes its first descriptor as soon as it is there
                since = e.delivered.when(self.fetched[i]) + 1
            if since is not None:
                empties.append(since)
        empties.sort()
        c = self.free_at
        for since in empties:
            c = max(c, since)
            spans.append((c + 1 - start, c + self.words - start))
            c += self.words + 3
        return lambda i: any(a <= i <= b for a, b in spans)


class _CBs:
    """The tile's circular-buffer counts."""

    def __init__(self):
        self.act_push, self.act_pop = Track(), Track()
        self.wgt_push, self.wgt_pop = Track(), Track()
        self.par_push, self.par_pop = Track(), Track()
        self.out_push, self.out_pop = Track(), Track()


class _Reader(_Engine):
    def __init__(self, descs, cbs, config, fetcher_ref):
        super().__init__(descs)
        self.cbs, self.cfg, self.fetcher_ref = cbs, config, fetcher_ref
        self.busy = self.wait = 0
        self.bytes = 0
        self.finish = 0
        self._taps = None       # cumulative in-image taps per output pixel (one geometry per program)
        self.pixels = max([(g["n0"] * g["ho"] + g["oh0"]) * g["wo"] + g["ow0"] + npix
                           for target, *_, npix, g in descs if target == Target.ACT and not g.get("stream", 0)],
                          default=0)

    def run(self):
        cfg, cbs = self.cfg, self.cbs
        W, R, C = cfg.ext_bytes, cfg.rows, cfg.cols
        ring = cfg.act_lane_bytes // W
        prev = None
        for i, (target, _src, _stride, chunk, row_bytes, npix, geo) in enumerate(self.descs):
            r = yield Need(self.delivered, i + 1)
            load = r if prev is None else (prev if r <= prev else max(r, prev + 1))
            self.loads.append(load)
            taps = geo["kh"] * geo["kw"]
            stream = geo.get("stream", 0)
            gang = geo.get("gang", 0)
            words = geo.get("words", 0)
            # RUN cycles (not for a stream: it goes word by word with the ring)
            if stream:
                n = npix
            elif target == Target.ACT:
                p0 = (geo["n0"] * geo["ho"] + geo["oh0"]) * geo["wo"] + geo["ow0"]
                # (split-K: R / G lane groups)
                n = _act_pieces(npix, p0, taps, chunk, row_bytes, geo, R >> geo.get("split", 0), W)
            elif gang:
                n = None        # known once the run starts (the fetcher's use of port b)
            else:
                n = _flat_pieces(npix, chunk, row_bytes, C, W)
            self.clock = load + 2 + (n or 0)
            c = load + 1                        # the first cycle in WAIT_CB
            if target == Target.ACT and not stream:
                t = yield Need(cbs.act_pop, cbs.act_push.total + words - ring)
                c = max(c, t)
            elif target == Target.WGT:
                c = max(c, (yield Need(cbs.wgt_pop, cbs.wgt_push.total - 1)))
            elif target == Target.PARAM:
                c = max(c, (yield Need(cbs.par_pop, cbs.par_push.total - 1)))
            self.wait += c - load
            start = c + 1
            if n is None:
                n = _ganged_cycles(npix, gang, C, self.fetcher_ref().port_b_busy(start))
            if stream:
                # word k may go at cycle x once the pops seen by then reach k - ring + 1; words whose
                # pops arrived together go one a cycle
                x = start - 1
                k = cbs.act_push.total
                left = npix
                while left:
                    v = k - ring + 1
                    t = yield Need(cbs.act_pop, v)
                    nx = max(x + 1, t)
                    self.wait += nx - (x + 1)
                    run = min(left, cbs.act_pop.span(v) - v + 1)
                    cbs.act_push.add(nx + 2, run, batch=1, period=1)
                    x = nx + run - 1
                    k += run
                    left -= run
                    self.clock = x
                drain = x + 1
                self.bytes += npix * chunk
            else:
                drain = start + n
                if target == Target.ACT:
                    cbs.act_push.add(drain + 1, words)
                    p0 = (geo["n0"] * geo["ho"] + geo["oh0"]) * geo["wo"] + geo["ow0"]
                    if self._taps is None or len(self._taps) <= p0 + npix:
                        self._taps = _im2col_counts(geo, self.pixels)
                    self.bytes += int(self._taps[p0 + npix] - self._taps[p0]) * chunk
                elif target == Target.WGT:
                    cbs.wgt_push.add(drain + 1, 1)
                    self.bytes += npix * chunk
                else:
                    cbs.par_push.add(drain + 1, 1)
                    self.bytes += npix * chunk
            self.busy += n
            prev = drain
            self.clock = drain
        self.finish = prev if prev is not None else 0


class _Compute(_Engine):
    def __init__(self, descs, cbs, config):
        super().__init__(descs)
        self.cbs, self.cfg = cbs, config
        self.busy = self.wait = self.wait_out = 0
        self.drain_cycles = 0
        self.finish = 0

    def run(self):
        cfg, cbs = self.cfg, self.cbs
        R, E, D = cfg.rows, cfg.out_entries, cfg.out_banks
        i_prev = -10            # the last step's issue cycle
        acc = [-10] * 4         # accept cycles of the last four steps
        drains = []             # per tile: the cycle its last rows left the array
        entries = 0             # output-CB entries of the tiles so far
        act_popped = wgt_popped = par_popped = 0
        prev = None
        for j, d in enumerate(self.descs):
            r = yield Need(self.delivered, j + 1)
            load = r if prev is None else max(r, prev + 1)
            self.loads.append(load)
            self.clock = load + 2
            c = load + 1
            if not d["dw"]:
                c = max(c, (yield Need(cbs.act_push, act_popped + d["act_wait"])))
            c = max(c, (yield Need(cbs.wgt_push, wgt_popped + 1)))
            c = max(c, (yield Need(cbs.par_push, par_popped + 1)))
            self.wait += c - load
            start = c + 1
            m_t, n_t, k = d["m"], d["n"], d["k"]
            packed = d.get("packed", 0)
            # split-K tiles: R / G entries, pixel i's written with transfer (i + 1)·F - 1 (F = G / D)
            split = d.get("split", 0)
            px, F = R >> split, max(1, (1 << split) // D)
            for ta in range(m_t):
                # the array drains the tile's real rows (split-K: G per real pixel), D a transfer;
                # pack writes an entry per row (an odd count: a padding one), split-K one per pixel
                vr = min(px, d["valid_rows"] - ta * px)
                per_drain = _ceil(vr << split, D)
                ents = vr if split else per_drain * D
                ready = start
                if d["dw"]:
                    need = _dw_need(d, ta, R)
                    t = yield Need(cbs.act_push, act_popped + need)
                    ready = max(ready, t)
                for tw in range(n_t):
                    T = len(drains)
                    first_min = max(ready, drains[T - 4] + 1 if T >= 4 else 0)
                    shadow = drains[T - 1] if T else 0
                    lo = start if ta == tw == 0 else i_prev + 1
                    i0 = max(lo, first_min, acc[0] + 1)
                    # (a depthwise tile waiting for its window rows counts as waiting for a CB)
                    late = min(i0, ready) - lo if ready > lo else 0
                    self.wait += late
                    self.wait_out += i0 - lo - late
                    i_last, a_last, acc = _steps(i0, k, acc, shadow)
                    self.wait_out += i_last - i0 - (k - 1)
                    self.busy += k
                    self.drain_cycles += max(k, per_drain)
                    i_prev = i_last
                    # pack: D rows a cycle from the cycle after the last step, while the CB has room
                    push = not packed or tw == n_t - 1 or tw % PACK_SLOTS == PACK_SLOTS - 1
                    base = entries
                    first = a_last + 1
                    need_last = base + ents - E
                    # (with fewer entries than rows, pack waits for the writer's pops of this tile)
                    t = (yield Need(cbs.out_pop, need_last)) if need_last <= base else None
                    if t is not None and t <= first + F - 1:
                        d_last = first + per_drain - 1
                        if push and split:
                            cbs.out_push.add(first + F, ents, batch=1, period=F)
                        elif push:
                            cbs.out_push.add(first + 1, ents, batch=D, period=1)
                    else:
                        dq = first - 1
                        for q in range(per_drain):
                            if split and (q + 1) % F:
                                dq = max(dq + 1, first + q)         # no entry written: no room needed
                                continue
                            got = (q + 1) // F if split else q * D + D
                            t = yield Need(cbs.out_pop, base + got - E)
                            dq = max(dq + 1, first + q, t)
                            if push:
                                cbs.out_push.add(dq + 1, 1 if split else D)
                        d_last = dq
                    drains.append(d_last)
                    if push:
                        entries += ents
                    self.clock = i_prev
            drain = i_prev + 1
            if d["dw"]:
                drain = max(drain, (yield Need(cbs.act_push, act_popped + d["act_pop"])))
            cbs.act_pop.add(drain + 1, d["act_pop"])
            act_popped += d["act_pop"]
            if d["pop_wgt"]:
                cbs.wgt_pop.add(drain + 1, 1)
                wgt_popped += 1
            if d["pop_param"]:
                cbs.par_pop.add(drain + 1, 1)
                par_popped += 1
            prev = drain
            self.clock = drain + 1
        self.finish = drains[-1] if drains else 0


def _steps(i0: int, k: int, acc: list, shadow: int):
    """Issue and accept cycles of a tile's ``k`` steps, the first issued at ``i0`` at the earliest.

    A step is issued at most once a cycle and when fewer than four issued steps wait for the array
    (``acc``: accept cycles of the last four); it reaches the array three cycles later, which takes
    at most one a cycle, and the tile's last step only once the shadow bank is free (``shadow``).
    Returns the last step's issue and accept cycles and the new ``acc``.
    """
    if k >= 4 and acc[3] - acc[0] == 3 and acc[0] < i0:
        # the steps before went one a cycle and this tile starts after them: it flows too
        i = i0 + k - 1
        a = max(i + 3, shadow)
        return i, a, [i, i + 1, i + 2, a]
    i, a = i0 - 1, acc[-1]
    steady = j = 0
    while j < k:
        if steady >= 4 and k - 1 - j >= 4:
            # the pipeline flows: one step a cycle, each in the array three cycles after its issue
            i += k - 1 - j
            a = i + 3
            acc = [a - 3, a - 2, a - 1, a]
            j = k - 1
            continue
        i = max(i + 1, acc[0] + 1)
        a = max(i + 3, a + 1)
        if j == k - 1:
            a = max(a, shadow)
        steady = steady + 1 if a == i + 3 else 0
        acc = acc[1:] + [a]
        j += 1
    return i, a, acc


def _dw_need(d: dict, ta: int, R: int) -> int:
    """Activation-CB words a depthwise tile waits for: the window rows its last lane reads."""
    p = ta * R + R - 1
    ih = d["dw_ih0"] + (p // d["dw_wo"]) * d["dw_sh"]
    return max(0, min(d["act_wait"], (ih + d["dw_span"]) * d["dw_w"]))


class _Writer(_Engine):
    def __init__(self, descs, cbs, config):
        super().__init__(descs)
        self.cbs, self.cfg = cbs, config
        self.busy = 0
        self.bytes = 0
        self.finish = 0

    def run(self):
        cfg, cbs = self.cfg, self.cbs
        R, C, W, E = cfg.rows, cfg.cols, cfg.ext_bytes, cfg.out_entries
        entries = 0
        last_pop = None         # the cycle of the last pop, and its pieces (0: a padding entry)
        last_p = 0
        for w, d in enumerate(self.descs):
            r = yield Need(self.delivered, w + 1)
            if last_pop is None:
                load = r
                pop_min = load + 1
            elif r <= last_pop:
                load = last_pop                 # taken in the cycle of the last pop
                pop_min = last_pop + max(last_p, 1)
            else:
                load = max(r, last_pop + max(last_p, 1) + 1)
                pop_min = load + 1
            self.loads.append(load)
            self.clock = pop_min
            eb = 4 if d["out_int32"] else 1
            packed = d.get("packed", 0)
            n_tiles = _ceil(d["n"], PACK_SLOTS) if packed else d["n"]     # packed: groups of tiles
            tile_cols = PACK_SLOTS * C if packed else C
            px = R >> d.get("split", 0)     # rows of a tile (split-K: R / G)
            D = cfg.out_banks
            for ta in range(d["m"]):
                vr = min(px, d["valid_rows"] - ta * px)
                ents = vr if d.get("split", 0) else _ceil(vr, D) * D      # entries: see _Compute
                for tw in range(n_tiles):
                    ncols = min(tile_cols, d["valid_cols"] - tw * tile_cols)
                    P = _ceil(ncols * eb, W)
                    p0 = max(pop_min, (yield Need(cbs.out_push, entries + 1)))
                    if cbs.out_push.total >= entries + vr:
                        # the tile's rows are in: one pop every P cycles once the last one is there
                        p0 = max(p0, cbs.out_push.when(entries + vr) - P * (vr - 1))
                        cbs.out_pop.add(p0, vr, batch=1, period=P)
                        last_pop = p0 + P * (vr - 1)
                    else:
                        # pack waits for these pops (fewer entries than rows): row by row
                        last_pop = p0 - P
                        for row in range(vr):
                            last_pop = max(last_pop + P, (yield Need(cbs.out_push, entries + row + 1)))
                            cbs.out_pop.add(last_pop, 1)
                    last_p = P
                    pop_min = last_pop + P
                    rest = ents - vr
                    while rest:
                        part = min(rest, E)
                        t = yield Need(cbs.out_push, entries + ents - rest + part)
                        ps = max(pop_min, t)
                        cbs.out_pop.add(ps, part)
                        last_pop, last_p = ps, 0
                        pop_min = ps + 1
                        rest -= part
                    self.busy += vr * P
                    self.bytes += vr * ncols * eb
                    entries += ents
                    self.clock = pop_min
        self.finish = last_pop + max(last_p, 1) if last_pop is not None else 0


# ---------------------------------------------------------------------------------------------


def estimate_streams(streams: ProgramStreams, config: TileConfig, *, macs: int) -> TileEstimate:
    """Estimate a compiled program (:func:`~tilelab.compile.tile.program_streams`) on ``config``.

    Parameters
    ----------
    streams : ProgramStreams
    config : TileConfig
    macs : int
        The useful MACs of the program (for the utilization and the physical bound).
    """
    cbs = _CBs()
    fetcher = None
    reader = _Reader(streams.reader, cbs, config, lambda: fetcher)
    compute = _Compute(streams.compute, cbs, config)
    writer = _Writer(streams.writer, cbs, config)
    fetcher = _Fetcher([reader, compute, writer], config.ext_bytes)
    run_engines([fetcher, reader, compute, writer])
    R, C, W = config.rows, config.cols, config.ext_bytes
    # done: the writer's last piece, then one cycle to DONE and one to raise done
    cycles = max(writer.finish + 2, reader.finish + 2, compute.finish + 2)
    n_desc = len(streams.reader) + len(streams.compute) + len(streams.writer)
    steps = compute.busy
    engines = {"reader": reader.busy, "array": steps, "array_drain": compute.drain_cycles, "writer": writer.busy}
    physical = {"compute": _ceil(macs, R * C), "read": _ceil(reader.bytes, W), "write": _ceil(writer.bytes, W)}
    terms = {"array": steps, "array drain": compute.drain_cycles, "read port": reader.busy,
             "write port": writer.busy}
    top = max(terms, key=terms.get)
    overhead = cycles - terms[top]
    bound = "overhead" if overhead > terms[top] else top
    counters = {"cycles": cycles, "reader_busy": reader.busy, "reader_wait_cb": reader.wait,
                "compute_busy": steps, "compute_wait_cb": compute.wait, "compute_wait_out": compute.wait_out,
                "writer_busy": writer.busy, "macs": macs, "mac_steps": steps,
                "ext_bytes_read": reader.bytes, "ext_bytes_written": writer.bytes,
                "cmd_bytes_read": (1 + n_desc) * DESC_BYTES}
    return TileEstimate(cycles=cycles, macs=macs, peak_macs_per_cycle=R * C, ext_bytes_read=reader.bytes,
                        ext_bytes_written=writer.bytes, cmd_bytes_read=(1 + n_desc) * DESC_BYTES, ext_bytes=W,
                        engines=engines, physical=physical, bound=bound, counters=counters,
                        blocking=asdict(streams.blocking))


def _part_macs(spec: Conv2dSpec, pixels, channels) -> int:
    M = spec.n * spec.ho * spec.wo
    p0, p1 = pixels if pixels is not None else (0, M)
    c0, c1 = channels if channels is not None else (0, spec.cout)
    return (p1 - p0) * (c1 - c0) * spec.k_size


def estimate_conv(spec: Conv2dSpec, config: TileConfig = DEFAULT_TILE, *, out: str = "int8",
                  pixels: tuple[int, int] | None = None, channels: tuple[int, int] | None = None,
                  x_pix_stride: int | None = None, whole_image: bool = True) -> TileEstimate:
    """Estimate one conv layer (or its ``pixels`` × ``channels`` part) on one compute tile.

    Parameters
    ----------
    spec : Conv2dSpec
        The layer's shapes.
    config : TileConfig
        The tile.
    out : {"int8", "int32"}
        Output format (int32 rows are four times as long for the writer).
    pixels, channels, x_pix_stride
        As in :func:`tilelab.compile.tile.compile_conv`.
    whole_image : bool
        The layer's whole input, weights and output are in the tile's external memory (as
        :func:`~tilelab.api.conv.conv2d` places them): check that they fit.

    Returns
    -------
    TileEstimate

    Raises
    ------
    tilelab.compile.tile.LayoutError
        The layer does not fit the tile's L1 or external memory (as :func:`~tilelab.api.conv.conv2d`
        would raise).
    """
    if not isinstance(spec, Conv2dSpec):
        raise TypeError(f"spec must be a Conv2dSpec, not {spec!r}")
    if not isinstance(config, TileConfig):
        raise TypeError(f"config must be a TileConfig, not {config!r}")
    if out not in ("int8", "int32"):
        raise ValueError(f"out must be 'int8' or 'int32', not {out!r}")
    streams = program_streams(spec, config, out_int32=out == "int32", pixels=pixels, channels=channels,
                              x_pix_stride=x_pix_stride)
    if whole_image:
        memory_map(streams, spec, config, out_int32=out == "int32")
    return estimate_streams(streams, config, macs=_part_macs(spec, pixels, channels))


def linear_conv_spec(spec: LinearSpec) -> Conv2dSpec:
    """The 1×1 convolution over an N×1×1×K image that :func:`~tilelab.api.conv.linear` runs."""
    return Conv2dSpec(n=spec.n, h=1, w=1, cin=spec.k, cout=spec.nout, kh=1, kw=1)


def estimate_linear(spec: LinearSpec, config: TileConfig = DEFAULT_TILE, *, out: str = "int8") -> TileEstimate:
    """Estimate a fully connected layer (run as a 1×1 convolution, as :func:`~tilelab.api.conv.linear`)."""
    if not isinstance(spec, LinearSpec):
        raise TypeError(f"spec must be a LinearSpec, not {spec!r}")
    return estimate_conv(linear_conv_spec(spec), config, out=out)
