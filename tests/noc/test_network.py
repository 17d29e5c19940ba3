"""The three-plane network: overlapping multicasts concurrent with unicast requests, each answered
by an acknowledgement on the response plane by a node that takes no new request until its
acknowledgement is out (the coupling that hangs single-plane chips)."""

import random

from amaranth.sim import Simulator

from tests.cases import seed_of
from tilelab.hdl.formats.noc import Opcode
from tilelab.noc.network import Network


def test_requests_multicasts_and_acks_do_not_deadlock():
    rows, cols = 3, 3
    rng = random.Random(5)
    dut = Network(rows=rows, cols=cols, data_width=16, contexts=0, depth=2, max_packet=2)
    layout = dut.planes["req"].layout
    nodes = [(x, y) for y in range(rows) for x in range(cols)]
    plan = {n: [] for n in nodes}
    expect_acks = {n: [] for n in nodes}
    serial = 0
    for n in nodes:
        for _ in range(6):
            if rng.random() < 0.4:
                x0, x1 = sorted(rng.randrange(cols) for _ in range(2))
                y0, y1 = sorted(rng.randrange(rows) for _ in range(2))
                plan[n].append(("mcast", (x0, y0, x1, y1), serial, rng.randint(1, 2)))
                expect_acks[n] += [serial] * ((x1 - x0 + 1) * (y1 - y0 + 1))
            else:
                d = rng.choice(nodes)
                plan[n].append(("req", (d[0], d[1], d[0], d[1]), serial, rng.randint(1, 2)))
                expect_acks[n].append(serial)
            serial += 1
    acks = {n: [] for n in nodes}
    state = {"sent": 0, "stop": False}

    def flit(op, src, rect, word, last):
        x0, y0, x1, y1 = rect
        return layout.const({"hdr": {"op": op, "src": {"x": src[0], "y": src[1]}, "dst": {"x": x0, "y": y0},
                                     "dst_end": {"x": x1, "y": y1}}, "last": last, "data": word})

    def sender(n):
        async def tb(ctx):
            r = random.Random(seed_of(n))
            for plane, rect, word, length in plan[n]:
                port = dut.port(plane, *n).i
                for k in range(length):
                    while r.random() < 0.3:
                        await ctx.tick()
                    ctx.set(port.valid, 1)
                    ctx.set(port.payload, flit(Opcode.WRITE, n, rect, word, k == length - 1))
                    await ctx.tick().until(port.ready)
                    ctx.set(port.valid, 0)
            state["sent"] += 1
        return tb

    def responder(n):
        # takes request and multicast flits; after each packet it must send the ACK before anything else
        async def tb(ctx):
            r = random.Random(seed_of(n, "sink"))
            req, mc, resp = dut.port("req", *n).o, dut.port("mcast", *n).o, dut.port("resp", *n).i
            while not state["stop"]:
                pick = req if r.random() < 0.5 else mc
                ctx.set(pick.ready, 1)
                _, _, valid, payload = await ctx.tick().sample(pick.valid, pick.payload)
                ctx.set(pick.ready, 0)
                if valid and payload.last:
                    src = (payload.hdr.src.x, payload.hdr.src.y)
                    ctx.set(resp.valid, 1)
                    ctx.set(resp.payload, flit(Opcode.ACK, n, (*src, *src), payload.data, True))
                    await ctx.tick().until(resp.ready)
                    ctx.set(resp.valid, 0)
        return tb

    def ack_sink(n):
        async def tb(ctx):
            port = dut.port("resp", *n).o
            while not state["stop"]:
                ctx.set(port.ready, int(random.random() < 0.7))
                _, _, valid, ready, payload = await ctx.tick().sample(port.valid, port.ready, port.payload)
                if valid and ready:
                    assert payload.hdr.op == Opcode.ACK
                    acks[n].append(payload.data)
        return tb

    async def checker(ctx):
        want = sum(len(v) for v in expect_acks.values())
        for _ in range(20_000):
            if state["sent"] == len(nodes) and sum(len(v) for v in acks.values()) >= want:
                break
            await ctx.tick()
        await ctx.tick().repeat(30)
        state["idle"] = ctx.get(dut.idle)
        state["stop"] = True
        await ctx.tick().repeat(3)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for n in nodes:
        sim.add_testbench(sender(n), background=True)
        sim.add_testbench(responder(n))
        sim.add_testbench(ack_sink(n))
    sim.add_testbench(checker)
    sim.run()
    for n in nodes:
        assert sorted(acks[n]) == sorted(expect_acks[n]), n
    assert state["idle"] == 1
