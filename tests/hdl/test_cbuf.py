# amaranth: UnusedElaboratable=no
"""CircularBufferController against a Python model, and as a producer/consumer handshake."""

import random
import re
from dataclasses import dataclass

import pytest
from amaranth.back import verilog
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In
from hypothesis import given, settings
from hypothesis import strategies as st

from tilelab.hdl.cbuf import CircularBufferController, cb_consumer_signature, cb_producer_signature
from tilelab.hdl.lint import lint_verilog
from tilelab.sim.testbench import Stall, run_simulation


@dataclass
class CBModel:
    """Cycle-level model of the controller (the module docstring is its specification)."""

    pages: int
    num_pages: int = 0
    occupancy: int = 0
    wr_page: int = 0
    rd_page: int = 0
    overflow: bool = False
    underflow: bool = False
    cfg_error: bool = False

    def __post_init__(self):
        self.num_pages = self.pages

    def outputs(self, reserve_n, wait_n):
        space = self.num_pages - self.occupancy
        return {
            "num_pages": self.num_pages, "occupancy": self.occupancy, "space": space,
            "available": self.occupancy, "can_reserve": space >= reserve_n,
            "can_wait": self.occupancy >= wait_n, "full": space == 0, "empty": self.occupancy == 0,
            "wr_page": self.wr_page, "rd_page": self.rd_page, "overflow": self.overflow,
            "underflow": self.underflow, "cfg_error": self.cfg_error,
        }

    def step(self, *, cfg_en=0, cfg_pages=0, push=0, push_n=0, pop=0, pop_n=0):
        if cfg_en:
            if 1 <= cfg_pages <= self.pages:
                self.__init__(self.pages)
                self.num_pages = cfg_pages
            else:
                self.cfg_error = True
            return
        space = self.num_pages - self.occupancy
        push_ok = push and push_n <= space
        pop_ok = pop and pop_n <= self.occupancy
        self.overflow |= bool(push and not push_ok)
        self.underflow |= bool(pop and not pop_ok)
        if push_ok:
            self.occupancy += push_n
            self.wr_page = (self.wr_page + push_n) % self.num_pages
        if pop_ok:
            self.occupancy -= pop_n
            self.rd_page = (self.rd_page + pop_n) % self.num_pages


OUTPUTS = ("num_pages", "occupancy", "space", "available", "can_reserve", "can_wait", "full", "empty",
           "wr_page", "rd_page", "overflow", "underflow", "cfg_error")


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 9), st.integers(0, 2**32 - 1))
def test_against_model(pages, seed):
    dut = CircularBufferController(pages=pages)
    model = CBModel(pages)
    rng = random.Random(seed)
    limit = (1 << (pages).bit_length()) - 1         # largest value the n ports can carry

    async def tb(ctx):
        for _ in range(150):
            command = {
                "cfg_en": int(rng.random() < 0.05),
                "cfg_pages": rng.randint(0, limit),
                "push": int(rng.random() < 0.5),
                "push_n": rng.randint(0, min(limit, model.num_pages + 1)),
                "pop": int(rng.random() < 0.5),
                "pop_n": rng.randint(0, min(limit, model.num_pages + 1)),
            }
            reserve_n, wait_n = rng.randint(0, limit), rng.randint(0, limit)
            for name, value in command.items():
                ctx.set(getattr(dut, name), value)
            ctx.set(dut.reserve_n, reserve_n)
            ctx.set(dut.wait_n, wait_n)
            expected = model.outputs(reserve_n, wait_n)
            assert {name: ctx.get(getattr(dut, name)) for name in OUTPUTS} == \
                {name: int(value) for name, value in expected.items()}
            model.step(**command)
            await ctx.tick()

    run_simulation(dut, tb)


def test_overflow_and_underflow_leave_state_alone():
    dut = CircularBufferController(pages=4)

    async def tb(ctx):
        ctx.set(dut.pop, 1)
        ctx.set(dut.pop_n, 1)                      # pop from an empty CB
        await ctx.tick()
        ctx.set(dut.pop, 0)
        assert ctx.get(dut.underflow) and ctx.get(dut.empty) and ctx.get(dut.rd_page) == 0
        ctx.set(dut.push, 1)
        ctx.set(dut.push_n, 3)
        await ctx.tick()
        ctx.set(dut.push_n, 2)                     # 3 + 2 > 4 pages
        await ctx.tick()
        ctx.set(dut.push, 0)
        assert ctx.get(dut.overflow)
        assert ctx.get(dut.occupancy) == 3 and ctx.get(dut.wr_page) == 3 and ctx.get(dut.space) == 1
        ctx.set(dut.cfg_en, 1)
        ctx.set(dut.cfg_pages, 5)                  # above the maximum of 4: ignored
        await ctx.tick()
        assert ctx.get(dut.cfg_error) and ctx.get(dut.num_pages) == 4 and ctx.get(dut.occupancy) == 3
        ctx.set(dut.cfg_pages, 2)
        await ctx.tick()
        ctx.set(dut.cfg_en, 0)
        assert not (ctx.get(dut.cfg_error) or ctx.get(dut.overflow) or ctx.get(dut.underflow))
        assert ctx.get(dut.num_pages) == 2 and ctx.get(dut.empty) and ctx.get(dut.space) == 2

    run_simulation(dut, tb)


@pytest.mark.parametrize("seed, configured", [(0, None), (1, 5), (2, 3)])
def test_producer_consumer(seed, configured):
    """Tensix-style kernels: pages are consumed in the order produced, and nothing is left over."""
    pages = 6
    dut = CircularBufferController(pages=pages)
    num_pages = configured or pages
    rng = random.Random(seed)
    batches = [rng.randint(1, num_pages) for _ in range(40)]
    total = sum(batches)
    written, read = [], []
    ring = [None] * num_pages                      # the "L1" pages the engines share
    started = []

    async def configure(ctx):
        if configured:
            ctx.set(dut.cfg_en, 1)
            ctx.set(dut.cfg_pages, configured)
            await ctx.tick()
            ctx.set(dut.cfg_en, 0)
        started.append(True)

    async def producer(ctx):
        while not started:
            await ctx.tick()
        idle = Stall(0.4, 3, seed)
        sequence = 0
        for n in batches:
            ctx.set(dut.reserve_n, n)                                  # cb_reserve_back(n)
            await ctx.tick().until(dut.can_reserve)
            base = ctx.get(dut.wr_page)
            for k in range(n):                                         # write the pages
                if cycles := idle.cycles():
                    await ctx.tick().repeat(cycles)
                page = (base + k) % num_pages
                assert ring[page] is None, "producer overwrote an unread page"
                ring[page] = sequence
                written.append(sequence)
                sequence += 1
            ctx.set(dut.push, 1)                                       # cb_push_back(n)
            ctx.set(dut.push_n, n)
            await ctx.tick()
            ctx.set(dut.push, 0)

    async def consumer(ctx):
        # Both sides use the same block sizes (as Tensix kernels do: with different ones a producer
        # waiting for space and a consumer waiting for pages can deadlock); the consumer frees each
        # block in random pieces.
        while not started:
            await ctx.tick()
        stall = Stall(0.4, 4, seed + 1)
        for n in batches:
            ctx.set(dut.wait_n, n)                                     # cb_wait_front(n)
            await ctx.tick().until(dut.can_wait)
            base = ctx.get(dut.rd_page)
            for k in range(n):
                if cycles := stall.cycles():
                    await ctx.tick().repeat(cycles)
                page = (base + k) % num_pages
                assert ring[page] is not None, "consumer read a page that was not pushed"
                read.append(ring[page])
                ring[page] = None
            while n:
                piece = rng.randint(1, n)
                ctx.set(dut.pop, 1)                                    # cb_pop_front(piece)
                ctx.set(dut.pop_n, piece)
                await ctx.tick()
                ctx.set(dut.pop, 0)
                n -= piece
        await ctx.tick().repeat(4)
        assert ctx.get(dut.empty) and ctx.get(dut.occupancy) == 0 and ctx.get(dut.space) == num_pages
        assert not (ctx.get(dut.overflow) or ctx.get(dut.underflow) or ctx.get(dut.cfg_error))
        assert ctx.get(dut.wr_page) == ctx.get(dut.rd_page) == total % num_pages

    run_simulation(dut, configure, producer, consumer)
    assert read == written == list(range(total))


def test_bad_params():
    with pytest.raises(ValueError, match=re.escape("pages must be a positive integer, not 0")):
        CircularBufferController(pages=0)
    with pytest.raises(TypeError, match=re.escape("pages must be a positive integer, not '4'")):
        CircularBufferController(pages="4")


@pytest.mark.verilator
def test_verilator_lint():
    lint_verilog(verilog.convert(CircularBufferController(pages=8), name="cbuf"), "cbuf")


class _ViaPorts(wiring.Component):
    """A controller reached only through its producer and consumer interfaces."""

    def __init__(self, pages):
        self._pages = pages
        super().__init__({"producer": In(cb_producer_signature(pages)), "consumer": In(cb_consumer_signature(pages))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.cb = cb = CircularBufferController(pages=self._pages)
        wiring.connect(m, wiring.flipped(self.producer), cb.producer)
        wiring.connect(m, wiring.flipped(self.consumer), cb.consumer)
        return m


def test_producer_and_consumer_interfaces():
    dut = _ViaPorts(4)
    p, c = dut.producer, dut.consumer

    async def tb(ctx):
        ctx.set(p.reserve_n, 3)
        ctx.set(c.wait_n, 1)
        assert ctx.get(p.can_reserve) and ctx.get(p.space) == 4 and not ctx.get(c.can_wait)
        ctx.set(p.push, 1)
        ctx.set(p.push_n, 3)
        await ctx.tick()
        ctx.set(p.push, 0)
        assert ctx.get(p.wr_page) == 3 and ctx.get(p.space) == 1 and not ctx.get(p.can_reserve)
        assert ctx.get(c.can_wait) and ctx.get(c.available) == 3
        ctx.set(c.pop, 1)
        ctx.set(c.pop_n, 2)
        await ctx.tick()
        ctx.set(c.pop, 0)
        assert ctx.get(c.rd_page) == 2 and ctx.get(c.available) == 1 and ctx.get(p.space) == 3

    run_simulation(dut, tb)
