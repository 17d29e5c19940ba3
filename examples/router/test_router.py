"""cocotb bench of one NoC router (``tilelab verilog router --tile ... --mesh 2x2``).

The router sits at ``AT`` of its plane (the 2×2 mesh of tiles has a third column of memory
ports: 2 rows × 3 columns). Random packets of random length enter at the local port and from the
west, east and south neighbours (:class:`~tilelab.sim.cocotb_buses.LinkSource`, under idle
insertion), for random destinations those inputs may carry under XY routing; every output is
drained under backpressure (link credits returned late, the local output's ``ready`` held low).
The scoreboard checks that every flit leaves by the XY output for its destination, unchanged,
in order per input, packets unbroken (wormhole), with the route for the next router on link
outputs, and that nothing else arrives.
"""

import random
import zlib

import cocotb
from cocotb.triggers import ClockCycles

from tilelab.hdl.formats import Coord, Format, flit_layout
from tilelab.hdl.formats.noc import Direction
from tilelab.sim.cocotb_buses import LinkSink, LinkSource, xy_route
from tilelab.sim.cocotb_streams import StreamSink, StreamSource, bernoulli, start_clock_and_reset

ROWS, COLS = 2, 3            # the plane of a 2x2 mesh: a column of memory ports beside the tiles
AT = (1, 0)
DEPTH = 8                    # flits per queue (the mesh's routers)
STEP = {Direction.N: (0, -1), Direction.S: (0, 1), Direction.E: (1, 0), Direction.W: (-1, 0)}
#: Where each input's packets may go: the neighbour west of AT sends only east-bound, local or
#: south-bound traffic, and so on (XY routing: X first).
DESTINATIONS = {
    "local": [(x, y) for x in range(COLS) for y in range(ROWS)],
    "in_w": [(x, y) for x in range(AT[0], COLS) for y in range(ROWS)],
    "in_e": [(x, y) for x in range(AT[0] + 1) for y in range(ROWS)],
    "in_s": [AT],
}
OUTPUTS = {Direction.N: "out_n", Direction.E: "out_e", Direction.S: "out_s", Direction.W: "out_w",
           Direction.L: "local"}


async def run(dut, *, packets, idle, backpressure, seed):
    rng = random.Random(seed)
    fmt = Format(flit_layout(len(dut.local__i__payload) - Format(flit_layout(1)).width + 1))
    dut.at.value = Format(Coord).pack({"x": AT[0], "y": AT[1]})
    for d in "nesw":
        getattr(dut, f"in_{d}__valid").value = 0
    await start_clock_and_reset(dut)
    sources = {"local": StreamSource(dut, "local__i", idle=bernoulli(idle, seed=seed + 1), format=fmt)}
    for i, name in enumerate(("in_w", "in_e", "in_s")):
        sources[name] = LinkSource(dut, name, credits=DEPTH, idle=bernoulli(idle, seed=seed + 2 + i), format=fmt)
    sinks = {"local": StreamSink(dut, "local__o", backpressure=bernoulli(backpressure, seed=seed + 9), format=fmt)}
    for i, d in enumerate("nesw"):
        sinks[f"out_{d}"] = LinkSink(dut, f"out_{d}", backpressure=bernoulli(backpressure, seed=seed + 10 + i),
                                     format=fmt)

    expected = {name: [] for name in sinks}             # per output: flits in the order each input sent them
    for p in range(packets):
        src = rng.choice(list(sources))
        dst = rng.choice(DESTINATIONS[src])
        route = xy_route(AT, dst)
        length = rng.randint(1, 3)
        hdr = {"op": 0, "src": {"x": rng.randrange(COLS), "y": rng.randrange(ROWS)}, "dst": {"x": dst[0], "y": dst[1]},
               "addr": rng.randrange(1 << 20)}
        for f in range(length):
            flit = fmt.unpack(fmt.pack({"hdr": hdr, "last": int(f == length - 1),
                                        "data": (p << 8 | f) << 16 | rng.randrange(1 << 16)}))   # every field
            if src == "local":
                sources[src].send_nowait(flit)
            else:
                sources[src].send_nowait(flit, route)
            expected[OUTPUTS[route]].append((src, flit, dst))

    for out, flits in expected.items():
        by_input = {src: [f for s, f, _ in flits if s == src] for src in sources}
        sent_by = {fmt.pack(f): s for s, f, _ in flits}
        dst_of = {fmt.pack(f): d for _, f, d in flits}
        packet_from = None                                   # the input whose packet holds this output
        for _ in flits:
            got = await sinks[out].recv()
            flit = got if out == "local" else got.flit
            src = sent_by.get(fmt.pack(flit))
            assert src is not None, f"{out}: a flit nobody sent: {flit}"
            assert packet_from in (None, src), f"{out}: a packet from {packet_from} was broken by {src}"
            assert flit == by_input[src].pop(0), f"{out}: flits of {src} out of order"
            packet_from = None if flit["last"] else src
            if out != "local":                               # the route the next router takes it on
                d = next(k for k, v in OUTPUTS.items() if v == out)
                there = (AT[0] + STEP[d][0], AT[1] + STEP[d][1])
                assert got.route == xy_route(there, dst_of[fmt.pack(flit)]), (out, got)
        assert not any(by_input.values()), f"{out}: missing flits {by_input}"

    for src in sources.values():
        await src.wait()
    await ClockCycles(dut.clk, 30)
    assert all(sink.empty() for sink in sinks.values()), "flits arrived that nobody sent"
    assert int(dut.dropped.value) == 0


@cocotb.test()
async def random_packets(dut):
    await run(dut, packets=60, idle=0.0, backpressure=0.0, seed=zlib.crc32(b"random_packets"))


@cocotb.test()
async def random_packets_with_idle_and_backpressure(dut):
    await run(dut, packets=80, idle=0.3, backpressure=0.6, seed=zlib.crc32(b"random_packets_with_stalls"))
