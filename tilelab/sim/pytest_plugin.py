"""A pytest plugin for cocotb benches against tilelab designs: the ``tilelab_dut`` fixture.

Installed with tilelab (entry point ``pytest11``), so a user's ``pytest`` has it without a
``conftest.py``::

    def test_my_fifo(tilelab_dut):
        outcome = tilelab_dut(MyFifo(), "my_fifo_tests")        # a cocotb test module
        assert outcome == {"passes_everything": "pass"}

Options: ``--tilelab-sim verilator|icarus`` (default verilator) picks the simulator of every
``tilelab_dut`` call, ``--tilelab-waves`` writes a waveform per call into the test's temporary
folder (``outcome.workdir / "waves.fst"`` on Verilator, ``.vcd`` on Icarus). Each call is
:func:`tilelab.sim.run_cocotb_tests` with the test's ``tmp_path`` as its folder; a failing cocotb
test fails the pytest test with the simulator's log.
"""

from __future__ import annotations

import pytest

__all__ = ["tilelab_dut"]


def pytest_addoption(parser):
    group = parser.getgroup("tilelab", "tilelab cocotb benches")
    group.addoption("--tilelab-sim", choices=("verilator", "icarus"), default="verilator",
                    help="simulator of the tilelab_dut fixture (default: verilator)")
    group.addoption("--tilelab-waves", action="store_true", default=False,
                    help="write a waveform per tilelab_dut call into the test's tmp_path")


@pytest.fixture
def tilelab_dut(request, tmp_path):
    """Run a cocotb test module against a design: ``tilelab_dut(design, test_module, **kwargs)``.

    ``kwargs`` are those of :func:`tilelab.sim.run_cocotb_tests` (``name``, ``testcase``,
    ``plusargs``, ``seed``, ...); the simulator and the waveform come from the command line
    unless given. Returns the :class:`~tilelab.sim.runner.CocotbOutcome`; its ``workdir`` (under
    ``tmp_path``) holds ``results.xml``, ``sim.log`` and the waveform.
    """
    from tilelab.sim.builders import fst_supported
    from tilelab.sim.runner import run_cocotb_tests

    sim = request.config.getoption("--tilelab-sim")
    waves = request.config.getoption("--tilelab-waves")
    calls = iter(range(1 << 30))

    def run(design, test_module: str, **kwargs):
        work = tmp_path / f"cocotb{next(calls)}"
        backend = kwargs.pop("backend", sim)
        if waves and "waves" not in kwargs:
            fst = backend == "verilator" and fst_supported()
            kwargs["waves"] = work / ("waves.fst" if fst else "waves.vcd")
        return run_cocotb_tests(design, test_module, backend=backend, workdir=work, **kwargs)

    return run
