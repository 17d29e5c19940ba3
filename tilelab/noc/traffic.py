"""RTL traffic generators, checking sinks and the traffic harness around a unicast mesh.

Python stays out of the per-cycle loop: every node has a :class:`TrafficGenerator` (Bernoulli
packet creation from a per-node xorshift generator, an unbounded-in-spirit source queue of
creation stamps, per-flow sequence numbers) and a :class:`TrafficSink` (per-flow expected
sequence numbers, payload check, latency from the creation stamp, latency histogram), and
:class:`TrafficHarness` sums their events into counters that a host reads after the run.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import enum, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from tilelab.checks import check_pow2
from tilelab.hdl.formats.noc import (
    Opcode,
    TrafficConfig,
    TrafficPattern,
    TrafficPayload,
    flit_layout,
)
from tilelab.noc.common import FifoView, QueueBank, check_mesh
from tilelab.noc.mesh import Mesh

__all__ = [
    "TrafficGenerator", "TrafficSink", "TrafficHarness", "TrafficCounter",
    "pattern_destination", "pattern_error", "latency_bucket", "bucket_upper", "HIST_BUCKETS",
    "TRAFFIC_DATA_WIDTH",
]

#: Payload bits of a traffic flit: exactly a :class:`TrafficPayload`.
TRAFFIC_DATA_WIDTH = TrafficPayload.as_shape().size
#: Buckets of the latency histogram.
HIST_BUCKETS = 128


def latency_bucket(latency):
    """Histogram bucket of a latency (Python ints): 1-cycle buckets below 64, 16-cycle buckets
    to 576, 128-cycle buckets to 4672, then the last bucket."""
    if latency < 64:
        return latency
    if latency < 576:
        return 64 + (latency - 64) // 16
    return min(96 + (latency - 576) // 128, HIST_BUCKETS - 1)


def bucket_upper(bucket):
    """Largest latency in ``bucket`` (the last bucket is open-ended; its lower bound is given)."""
    if bucket < 64:
        return bucket
    if bucket < 96:
        return 64 + (bucket - 64) * 16 + 15
    if bucket < HIST_BUCKETS - 1:
        return 576 + (bucket - 96) * 128 + 127
    return 576 + (bucket - 96) * 128


def _bucket_rtl(m, lat, name):
    b = Signal(range(HIST_BUCKETS), name=name)
    with m.If(lat < 64):
        m.d.comb += b.eq(lat)
    with m.Elif(lat < 576):
        m.d.comb += b.eq(64 + ((lat - 64) >> 4))
    with m.Elif(lat < 576 + 31 * 128):
        m.d.comb += b.eq(96 + ((lat - 576) >> 7))
    with m.Else():
        m.d.comb += b.eq(HIST_BUCKETS - 1)
    return b


def _is_pow2(n):
    return n & (n - 1) == 0


def pattern_error(pattern, rows, cols):
    """Why ``pattern`` cannot run on a rows × cols mesh, or ``None``."""
    pattern = TrafficPattern(pattern)
    if pattern is TrafficPattern.TRANSPOSE and rows != cols:
        return f"pattern 'transpose' needs a square mesh, not {rows}x{cols}"
    if pattern in (TrafficPattern.BITREV, TrafficPattern.SHUFFLE) and not _is_pow2(rows * cols):
        return (f"pattern {pattern.name.lower()!r} needs a power-of-two node count, "
                f"not {rows}x{cols}")
    return None


def pattern_destination(pattern, x, y, rows, cols):
    """Destination ``(x, y)`` of node ``(x, y)`` under a permutation pattern; ``None`` for the
    random patterns (uniform, hotspot)."""
    pattern = TrafficPattern(pattern)
    if pattern in (TrafficPattern.UNIFORM, TrafficPattern.HOTSPOT):
        return None
    if pattern_error(pattern, rows, cols) is not None:
        return (x, y)
    n = rows * cols
    bits = n.bit_length() - 1
    node = y * cols + x
    if pattern is TrafficPattern.TRANSPOSE:
        return (y, x)
    if pattern is TrafficPattern.BITCOMP:
        return (cols - 1 - x, rows - 1 - y)
    if pattern is TrafficPattern.BITREV:
        rev = int(f"{node:0{bits}b}"[::-1], 2) if bits else 0
        return (rev % cols, rev // cols)
    if pattern is TrafficPattern.SHUFFLE:
        rot = ((node << 1) | (node >> (bits - 1))) & (n - 1) if bits else 0
        return (rot % cols, rot // cols)
    if pattern is TrafficPattern.TORNADO:
        return ((x + (cols + 1) // 2 - 1) % cols, (y + (rows + 1) // 2 - 1) % rows)
    assert pattern is TrafficPattern.NEIGHBOR
    return ((x + 1) % cols, (y + 1) % rows)


def _xorshift64(value):
    v = value ^ (value << 13)[:64]
    v = v ^ (v >> 7)
    return v ^ (v << 17)[:64]


def _check_bits(src, seq, index):
    """The ``check`` field of a traffic flit (15 bits) from source index, sequence and flit index."""
    return (seq ^ (src << 5) ^ (index << 11) ^ 0x2A55)[:15]


class TrafficCounter(enum.Enum):
    """Addresses of the traffic harness's ``rd_addr`` / ``rd_data`` read-out (histogram bucket
    ``b`` is at ``HIST + b``)."""
    INJECTED = 0        # packets whose first flit entered the network
    DELIVERED = 1       # packets whose last flit left it (duplicates included)
    DUPLICATED = 2      # packets with a sequence number already seen on their flow
    REORDERED = 3       # packets that skipped ahead of a missing sequence number
    CORRUPT = 4         # flits whose payload check failed
    MISROUTED = 5       # packets delivered to the wrong node
    LAT_SUM = 6         # sum of latencies of measured packets
    LAT_COUNT = 7       # measured packets delivered
    LAT_MAX = 8
    OFFERED_WINDOW = 9  # packets created inside the rate window
    ACCEPTED_WINDOW = 10  # flits delivered inside the rate window
    CREATED = 11        # packets created
    OVERFLOW = 12       # packets not created because a source queue was full
    FINISH_CYCLE = 13   # cycle the run drained
    GEN_END_CYCLE = 14  # cycle every generator had stopped creating
    DROPPED = 15        # packets the mesh dropped (destination outside)
    DELIVERED_FLITS = 16
    INJECTED_FLITS = 17
    WINDOW_CYCLES = 18  # cycles of the rate window: measurement window, while no source has met its quota
    HIST = 128


class TrafficGenerator(wiring.Component):
    """Bernoulli traffic source of one node.

    Each cycle while ``active``, a packet is created with probability ``cfg.rate``: its
    creation cycle (and whether it falls in the measurement window) is queued; the injector
    sends queued packets as ``cfg.pkt_len``-flit packets, holding a flit back for a cycle with
    probability ``cfg.src_stall``.  Destinations come from ``cfg.pattern``.

    Parameters
    ----------
    x, y, rows, cols : int
        Node and mesh size.
    queue_depth : int
        Creation stamps the source queue holds; a creation finding it full is counted in
        ``overflow`` (in quota mode, creation waits instead).

    Members
    -------
    cfg : In(TrafficConfig)
    start : In(1)
        High from the start of the run (seeds the random generator on its first cycle).
    now : In(16)
        Current cycle (mod 2**16).
    active, measuring : In(1)
        Generation window open; measurement window open.
    out : Out(stream.Signature(flit))
    created, offered_window, overflow, injected, injected_flit : Out(1)
        Per-cycle events.
    idle : Out(1)
        Nothing queued nor half sent.
    quota_done : Out(1)
        ``cfg.packets`` packets created (never, when ``cfg.packets`` is 0).
    """

    def __init__(self, *, x, y, rows, cols, queue_depth=256):
        check_mesh(rows, cols)
        check_pow2("traffic queue_depth", queue_depth, 1, 4096)
        self.x, self.y, self.rows, self.cols = x, y, rows, cols
        self.queue_depth = queue_depth
        self.layout = flit_layout(TRAFFIC_DATA_WIDTH)
        super().__init__({
            "cfg": In(TrafficConfig),
            "start": In(1),
            "now": In(16),
            "active": In(1),
            "measuring": In(1),
            "out": Out(stream.Signature(self.layout)),
            "created": Out(1),
            "offered_window": Out(1),
            "overflow": Out(1),
            "injected": Out(1),
            "injected_flit": Out(1),
            "idle": Out(1),
            "quota_done": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        x, y, rows, cols = self.x, self.y, self.rows, self.cols
        node = y * cols + x
        cfg = self.cfg

        # ---- random bits: xorshift64, seeded from the run seed and the node index
        rng = Signal(64, name="rng")
        started = Signal()
        salt = (node * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) & (2**64 - 1)
        with m.If(~started):
            with m.If(self.start):
                m.d.sync += [rng.eq(Cat(cfg.seed, cfg.seed ^ 0x5DEECE66) ^ salt | 1), started.eq(1)]
        with m.Else():
            m.d.sync += rng.eq(_xorshift64(rng))
        r_rate, r_x, r_y, r_stall = rng[0:16], rng[16:32], rng[32:48], rng[48:64]
        r_hot = (rng[8:24] ^ rng[40:56])

        # ---- destination
        dst_x = Signal(4)
        dst_y = Signal(4)
        uni_x = (r_x * cols)[16:20]
        uni_y = (r_y * rows)[16:20]
        hot_x, hot_y = cfg.hot_x, cfg.hot_y
        with m.Switch(cfg.pattern):
            for p in TrafficPattern:
                with m.Case(p):
                    dest = pattern_destination(p, x, y, rows, cols)
                    if dest is not None:
                        m.d.comb += [dst_x.eq(dest[0]), dst_y.eq(dest[1])]
                    elif p is TrafficPattern.HOTSPOT:
                        hot = r_hot < cfg.hot_rate
                        m.d.comb += [dst_x.eq(Mux(hot, hot_x, uni_x)), dst_y.eq(Mux(hot, hot_y, uni_y))]
                    else:
                        m.d.comb += [dst_x.eq(uni_x), dst_y.eq(uni_y)]

        # ---- creation
        bank = m.submodules.queue = QueueBank(width=16 + 1 + 8, queues=1, depth=self.queue_depth)
        queue = FifoView(bank)
        created_count = Signal(32)
        quota = (cfg.packets != 0) & (created_count == cfg.packets)
        m.d.comb += self.quota_done.eq(quota)
        hit = Signal()
        m.d.comb += hit.eq(started & self.active & ~quota & (r_rate < cfg.rate))
        in_quota_mode = cfg.packets != 0
        push = hit & queue.w_rdy
        m.d.comb += [
            queue.w_en.eq(push),
            queue.w_data.eq(Cat(self.now, self.measuring, dst_x, dst_y)),
            self.created.eq(push),
            self.offered_window.eq(hit & self.measuring & (queue.w_rdy | ~in_quota_mode)),
            self.overflow.eq(hit & ~queue.w_rdy & ~in_quota_mode),
        ]
        with m.If(push):
            m.d.sync += created_count.eq(created_count + 1)

        # ---- injection
        stamp, measured = queue.r_data[0:16], queue.r_data[16]
        q_dst_x, q_dst_y = queue.r_data[17:21], queue.r_data[21:25]
        seq_mem = Memory(shape=16, depth=rows * cols, init=[])
        m.submodules.seq_mem = seq_mem
        dst_index = Signal(range(rows * cols))
        m.d.comb += dst_index.eq(q_dst_y * cols + q_dst_x)
        rd = seq_mem.read_port(domain="comb")
        wr = seq_mem.write_port()
        seq = rd.data
        m.d.comb += rd.addr.eq(dst_index)

        index = Signal(4)
        pkt_len = Mux(cfg.pkt_len == 0, 1, cfg.pkt_len)
        last = index == pkt_len - 1
        go = Signal()
        out = self.out
        flit = self.layout(out.payload)
        payload = TrafficPayload(flit.data)
        m.d.comb += [
            out.valid.eq(queue.r_rdy & go),
            flit.hdr.op.eq(Opcode.TEST),
            flit.hdr.src.x.eq(x),
            flit.hdr.src.y.eq(y),
            flit.hdr.dst.x.eq(q_dst_x),
            flit.hdr.dst.y.eq(q_dst_y),
            flit.hdr.dst_end.x.eq(q_dst_x),
            flit.hdr.dst_end.y.eq(q_dst_y),
            flit.last.eq(last),
            payload.seq.eq(seq),
            payload.stamp.eq(stamp),
            payload.measured.eq(measured),
            payload.check.eq(_check_bits(Const(node, 8), seq, index)),
        ]
        fire = out.valid & out.ready
        with m.If(out.valid & ~out.ready):
            m.d.sync += go.eq(1)        # a presented flit stays presented
        with m.Else():
            m.d.sync += go.eq(r_stall >= cfg.src_stall)
        with m.If(fire):
            m.d.sync += index.eq(Mux(last, 0, index + 1))
        m.d.comb += [
            queue.r_en.eq(fire & last),
            wr.addr.eq(dst_index),
            wr.data.eq(seq + 1),
            wr.en.eq(fire & last),
            self.injected.eq(fire & (index == 0)),
            self.injected_flit.eq(fire),
            self.idle.eq(~queue.r_rdy),
        ]
        return m


class TrafficSink(wiring.Component):
    """Checking sink of one node: takes every flit (refusing one for a cycle with probability
    ``stall``), checks destination, payload and per-flow order, and measures latency.

    Members
    -------
    inp : In(stream.Signature(flit))
    start : In(1)
    now : In(16)
    measuring : In(1)
    stall : In(17)
    seed : In(32)
    delivered, delivered_flit, duplicated, reordered, corrupt, misrouted : Out(1)
        Per-cycle events.
    lat_valid : Out(1), latency : Out(16)
        A measured packet finished with this latency.
    hist_addr : In(7), hist_data : Out(32), readout : In(1)
        Latency histogram, readable when ``readout`` is high.
    """

    def __init__(self, *, x, y, rows, cols):
        check_mesh(rows, cols)
        self.x, self.y, self.rows, self.cols = x, y, rows, cols
        self.layout = flit_layout(TRAFFIC_DATA_WIDTH)
        super().__init__({
            "inp": In(stream.Signature(self.layout)),
            "start": In(1),
            "now": In(16),
            "measuring": In(1),
            "stall": In(17),
            "seed": In(32),
            "delivered": Out(1),
            "delivered_flit": Out(1),
            "duplicated": Out(1),
            "reordered": Out(1),
            "corrupt": Out(1),
            "misrouted": Out(1),
            "lat_valid": Out(1),
            "latency": Out(16),
            "hist_addr": In(range(HIST_BUCKETS)),
            "hist_data": Out(32),
            "readout": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        x, y, rows, cols = self.x, self.y, self.rows, self.cols
        node = y * cols + x
        rng = Signal(64)
        started = Signal()
        salt = (node * 0xD1B54A32D192ED03 + 0x8BB84B93962EACC9) & (2**64 - 1)
        with m.If(~started):
            with m.If(self.start):
                m.d.sync += [rng.eq(Cat(self.seed, ~self.seed) ^ salt | 1), started.eq(1)]
        with m.Else():
            m.d.sync += rng.eq(_xorshift64(rng))

        inp = self.inp
        flit = self.layout(inp.payload)
        payload = TrafficPayload(flit.data)
        m.d.comb += inp.ready.eq(started & (rng[20:36] >= self.stall))
        take = inp.valid & inp.ready
        src = Signal(range(rows * cols))
        m.d.comb += src.eq(flit.hdr.src.y * cols + flit.hdr.src.x)

        index = Signal(4)
        with m.If(take):
            m.d.sync += index.eq(Mux(flit.last, 0, index + 1))
        expect = Memory(shape=16, depth=rows * cols, init=[])
        m.submodules.expect = expect
        rd = expect.read_port(domain="comb")
        wr = expect.write_port()
        m.d.comb += rd.addr.eq(src)
        finish = take & flit.last
        diff = (payload.seq - rd.data)[:16]
        m.d.comb += [
            wr.addr.eq(src),
            wr.data.eq(Mux(diff[15], rd.data, payload.seq + 1)),
            wr.en.eq(finish),
            self.delivered.eq(finish),
            self.delivered_flit.eq(take),
            self.duplicated.eq(finish & diff[15]),
            self.reordered.eq(finish & (diff != 0) & ~diff[15]),
            self.corrupt.eq(take & ((payload.check != _check_bits(src, payload.seq, index))
                                    | (flit.hdr.op != Opcode.TEST))),
            self.misrouted.eq(finish & ((flit.hdr.dst.x != x) | (flit.hdr.dst.y != y))),
        ]
        lat = Signal(16)
        m.d.comb += [
            lat.eq(self.now - payload.stamp),
            self.latency.eq(lat),
            self.lat_valid.eq(finish & payload.measured),
        ]
        hist = Memory(shape=32, depth=HIST_BUCKETS, init=[])
        m.submodules.hist = hist
        hrd = hist.read_port(domain="comb")
        hwr = hist.write_port()
        bucket = _bucket_rtl(m, lat, "bucket")
        m.d.comb += [
            hrd.addr.eq(Mux(self.readout, self.hist_addr, bucket)),
            hwr.addr.eq(bucket),
            hwr.data.eq(hrd.data + 1),
            hwr.en.eq(self.lat_valid & ~self.readout),
            self.hist_data.eq(hrd.data),
        ]
        return m


class TrafficHarness(wiring.Component):
    """A unicast mesh with a traffic generator and a checking sink on every node.

    The host resets the design, sets ``cfg`` (a :class:`TrafficConfig`), ``warmup`` and
    ``measure`` and raises ``go``.  Generation runs for ``warmup + measure`` cycles (or until
    every node has created ``cfg.packets`` packets); packets created after ``warmup`` are
    measured.  ``finished`` rises when the network has drained (``drained``) or the watchdog
    fired (``stuck``); the host then reads :class:`TrafficCounter` values on ``rd_addr`` /
    ``rd_data`` (histogram reads need ``readout`` high) and router counters on ``cnt_addr`` /
    ``cnt_data``.

    Parameters
    ----------
    rows, cols : int
        Mesh size.
    depth : int
        Router queue depth.
    queue_depth : int
        Source-queue depth of each generator.
    watchdog : int
        Cycles without progress (while flits are in flight) before ``stuck``.
    """

    def __init__(self, *, rows, cols, depth=8, queue_depth=256, watchdog=1024):
        check_mesh(rows, cols)
        self.rows, self.cols = rows, cols
        self.mesh = Mesh(rows=rows, cols=cols, plane="unicast", data_width=TRAFFIC_DATA_WIDTH, depth=depth,
                         watchdog=watchdog)
        self.gens = {(x, y): TrafficGenerator(x=x, y=y, rows=rows, cols=cols, queue_depth=queue_depth)
                     for y in range(rows) for x in range(cols)}
        self.sinks = {(x, y): TrafficSink(x=x, y=y, rows=rows, cols=cols)
                      for y in range(rows) for x in range(cols)}
        super().__init__({
            "cfg": In(TrafficConfig),
            "go": In(1),
            "warmup": In(32),
            "measure": In(32),
            "rd_addr": In(8),
            "rd_data": Out(64),
            "readout": In(1),
            "cnt_addr": In(16),
            "cnt_data": Out(32),
            "cycle": Out(32),
            "generating": Out(1),
            "drained": Out(1),
            "stuck": Out(1),
            "finished": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.mesh = mesh = self.mesh
        m.d.comb += [mesh.cnt_addr.eq(self.cnt_addr), self.cnt_data.eq(mesh.cnt_data)]

        running = Signal()
        with m.If(self.go):
            m.d.sync += running.eq(1)
        t = self.cycle
        with m.If(running):
            m.d.sync += t.eq(t + 1)
        end = self.warmup + self.measure
        window_open = running & (t < end)
        measuring = Signal()
        m.d.comb += measuring.eq(window_open & (t >= self.warmup))

        gens, sinks = list(self.gens.values()), list(self.sinks.values())
        for (x, y), gen in self.gens.items():
            sink = self.sinks[x, y]
            m.submodules[f"gen_{x}_{y}"] = gen
            m.submodules[f"sink_{x}_{y}"] = sink
            wiring.connect(m, gen.out, mesh.local(x, y).i)
            wiring.connect(m, mesh.local(x, y).o, sink.inp)
            m.d.comb += [
                gen.cfg.eq(self.cfg), gen.start.eq(running), sink.start.eq(running), gen.now.eq(t[:16]),
                gen.active.eq(window_open), gen.measuring.eq(measuring),
                sink.now.eq(t[:16]), sink.measuring.eq(measuring), sink.stall.eq(self.cfg.sink_stall),
                sink.seed.eq(self.cfg.seed), sink.readout.eq(self.readout),
                sink.hist_addr.eq(self.rd_addr[:7]),
            ]

        # rates are measured while every source still creates packets: in quota mode the first
        # source to meet its quota closes the window (after that the offered load drops)
        rate_window = Signal()
        m.d.comb += rate_window.eq(measuring & ~Cat(*(g.quota_done for g in gens)).any())

        def popcount(bits):
            return sum(bits)

        counters = {c: Signal(64, name=f"cnt_{c.name.lower()}") for c in TrafficCounter
                    if c is not TrafficCounter.HIST}
        events = {
            TrafficCounter.INJECTED: [g.injected for g in gens],
            TrafficCounter.INJECTED_FLITS: [g.injected_flit for g in gens],
            TrafficCounter.CREATED: [g.created for g in gens],
            TrafficCounter.OVERFLOW: [g.overflow for g in gens],
            TrafficCounter.OFFERED_WINDOW: [g.offered_window & rate_window for g in gens],
            TrafficCounter.DELIVERED: [s.delivered for s in sinks],
            TrafficCounter.DELIVERED_FLITS: [s.delivered_flit for s in sinks],
            TrafficCounter.DUPLICATED: [s.duplicated for s in sinks],
            TrafficCounter.REORDERED: [s.reordered for s in sinks],
            TrafficCounter.CORRUPT: [s.corrupt for s in sinks],
            TrafficCounter.MISROUTED: [s.misrouted for s in sinks],
            TrafficCounter.LAT_COUNT: [s.lat_valid for s in sinks],
            TrafficCounter.ACCEPTED_WINDOW: [s.delivered_flit & rate_window for s in sinks],
            TrafficCounter.WINDOW_CYCLES: [rate_window],
        }
        for c, bits in events.items():
            m.d.sync += counters[c].eq(counters[c] + popcount(bits))
        m.d.sync += counters[TrafficCounter.LAT_SUM].eq(
            counters[TrafficCounter.LAT_SUM] + sum(Mux(s.lat_valid, s.latency, 0) for s in sinks))
        lat_max = counters[TrafficCounter.LAT_MAX]
        biggest = Const(0, 16)
        for k, s in enumerate(sinks):
            candidate = Mux(s.lat_valid, s.latency, 0)
            step = Signal(16, name=f"lat_max_{k}")
            m.d.comb += step.eq(Mux(candidate > biggest, candidate, biggest))
            biggest = step
        with m.If(biggest > lat_max):
            m.d.sync += lat_max.eq(biggest)
        m.d.comb += counters[TrafficCounter.DROPPED].eq(mesh.dropped)

        quota_all = Cat(*(g.quota_done for g in gens)).all()
        generating = running & (t < end) & ~quota_all
        m.d.comb += self.generating.eq(generating)
        gen_end = counters[TrafficCounter.GEN_END_CYCLE]
        finish = counters[TrafficCounter.FINISH_CYCLE]
        stopped = Signal()
        with m.If(running & ~generating & ~stopped):
            m.d.sync += [stopped.eq(1), gen_end.eq(t)]
        gens_idle = Cat(*(g.idle for g in gens)).all()
        drained = Signal()
        m.d.comb += drained.eq(stopped & gens_idle & mesh.idle & (counters[TrafficCounter.INJECTED]
                                                                    == counters[TrafficCounter.DELIVERED]))
        done = Signal()
        with m.If(drained & ~done):
            m.d.sync += [done.eq(1), finish.eq(t)]
        m.d.comb += [
            self.drained.eq(done),
            self.stuck.eq(mesh.stuck),
            self.finished.eq(done | mesh.stuck),
        ]

        hist_sum = sum(s.hist_data for s in sinks)
        with m.If(self.rd_addr >= TrafficCounter.HIST.value):
            m.d.comb += self.rd_data.eq(hist_sum)
        with m.Else():
            with m.Switch(self.rd_addr):
                for c, sig in counters.items():
                    with m.Case(c.value):
                        m.d.comb += self.rd_data.eq(sig)
        return m
