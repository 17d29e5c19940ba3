"""cocotb bench of the circular-buffer page counters (``tilelab verilog circular-buffer --pages 4``).

A random producer (reserve, push) and consumer (wait, pop) drive the controller every cycle, now
and then a reconfiguration, an overflowing push or an underflowing pop; every output is compared
each cycle with a model written from the block's documentation (:mod:`tilelab.hdl.cbuf`).
"""

import random
import zlib

import cocotb
from cocotb.triggers import FallingEdge, ReadOnly, ReadWrite, RisingEdge

from tilelab.sim.cocotb_streams import start_clock_and_reset

PAGES = 4
INPUTS = ("cfg_en", "cfg_pages", "reserve_n", "push", "push_n", "wait_n", "pop", "pop_n")


class Model:
    """The counters as the documentation states them."""

    def __init__(self, pages):
        self.pages, self.num, self.occ, self.wr, self.rd = pages, pages, 0, 0, 0
        self.overflow = self.underflow = self.cfg_error = False

    def outputs(self, i):
        space = self.num - self.occ
        return {"num_pages": self.num, "occupancy": self.occ, "space": space, "available": self.occ,
                "can_reserve": int(space >= i["reserve_n"]), "can_wait": int(self.occ >= i["wait_n"]),
                "full": int(space == 0), "empty": int(self.occ == 0), "wr_page": self.wr, "rd_page": self.rd,
                "overflow": int(self.overflow), "underflow": int(self.underflow), "cfg_error": int(self.cfg_error)}

    def step(self, i):
        if i["cfg_en"]:
            if 1 <= i["cfg_pages"] <= self.pages:
                self.__init__(self.pages)
                self.num = i["cfg_pages"]
            else:
                self.cfg_error = True
            return
        space = self.num - self.occ
        push_ok = i["push"] and i["push_n"] <= space
        pop_ok = i["pop"] and i["pop_n"] <= self.occ
        self.overflow |= bool(i["push"] and not push_ok)
        self.underflow |= bool(i["pop"] and not pop_ok)
        if push_ok:
            self.occ += i["push_n"]
            self.wr = (self.wr + i["push_n"]) % self.num
        if pop_ok:
            self.occ -= i["pop_n"]
            self.rd = (self.rd + i["pop_n"]) % self.num


def random_inputs(rng, model):
    """A producer and a consumer that mostly obey the protocol, and sometimes do not."""
    space = model.num - model.occ
    i = {"cfg_en": int(rng.random() < 0.02), "cfg_pages": rng.randrange(0, PAGES + 2),
         "reserve_n": rng.randrange(1, PAGES + 1), "wait_n": rng.randrange(1, PAGES + 1)}
    push_n = rng.randrange(1, PAGES + 1) if rng.random() < 0.05 else rng.randrange(1, max(space, 1) + 1)
    pop_n = rng.randrange(1, PAGES + 1) if rng.random() < 0.05 else rng.randrange(1, max(model.occ, 1) + 1)
    i.update(push=int(rng.random() < 0.4), push_n=push_n, pop=int(rng.random() < 0.4), pop_n=pop_n)
    return i


async def run(dut, cycles, seed):
    for name in INPUTS:
        getattr(dut, name).value = 0
    await start_clock_and_reset(dut)
    rng, model = random.Random(seed), Model(PAGES)
    seen = {"full": 0, "overflow": 0, "push": 0, "pop": 0}
    for cycle in range(cycles):
        i = random_inputs(rng, model)
        for name, value in i.items():
            getattr(dut, name).value = value
        await FallingEdge(dut.clk)
        await ReadOnly()
        want = model.outputs(i)
        got = {name: int(getattr(dut, name).value) for name in want}
        assert got == want, f"cycle {cycle}, inputs {i}: {got} != {want}"
        seen["full"] += want["full"]
        seen["overflow"] += want["overflow"]
        seen["push"] += i["push"] and not i["cfg_en"] and i["push_n"] <= want["space"]
        seen["pop"] += i["pop"] and not i["cfg_en"] and i["pop_n"] <= want["occupancy"]
        model.step(i)
        await RisingEdge(dut.clk)
        await ReadWrite()
    # the random traffic reached the interesting states
    assert all(seen.values()), seen


@cocotb.test()
async def counters_follow_the_model(dut):
    await run(dut, 2000, zlib.crc32(b"counters_follow_the_model"))
