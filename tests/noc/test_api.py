"""Host API and CLI of the NoC: argument checking (exact messages) and small end-to-end runs on
Amaranth's simulator."""

import json

import pytest
from click.testing import CliRunner

from tilelab.cli.noc import command
from tilelab.noc import api
from tilelab.noc.collective import CollectiveMesh
from tilelab.noc.mesh import Mesh
from tilelab.noc.multicast import MulticastRouter
from tilelab.noc.router import UnicastRouter


@pytest.mark.parametrize("rect,message", [
    ("0,0,4,1", "rectangle (0, 0, 4, 1) leaves the 4x4 mesh (x in 0..3, y in 0..3)"),
    ("0,0,1,4", "rectangle (0, 0, 1, 4) leaves the 4x4 mesh (x in 0..3, y in 0..3)"),
    ("-1,0,1,1", "rectangle (-1, 0, 1, 1) leaves the 4x4 mesh (x in 0..3, y in 0..3)"),
    ("2,0,1,1", "rectangle (2, 0, 1, 1) is inverted (need x0 <= x1 and y0 <= y1)"),
    ("0,3,1,1", "rectangle (0, 3, 1, 1) is inverted (need x0 <= x1 and y0 <= y1)"),
    ("0,0,1", "rectangle must be 4 comma-separated integers, not '0,0,1'"),
])
def test_bad_rectangles(rect, message):
    with pytest.raises(api.NocError) as e:
        api.multicast("4x4", rect=rect, src="0,0", flits=4, backend="amaranth")
    assert str(e.value) == message


def test_bad_source_mesh_pattern_rate():
    with pytest.raises(api.NocError, match=r"^source \(4,0\) is outside the 4x4 mesh \(x in 0..3, y in 0..3\)$"):
        api.multicast("4x4", rect="0,0,1,1", src="4,0", backend="amaranth")
    with pytest.raises(api.NocError, match=r"^mesh must be ROWSxCOLS such as '8x8', not '8by8'$"):
        api.traffic("8by8")
    with pytest.raises(api.NocError, match=r"^mesh rows must be an integer in \[1, 16\], not 17$"):
        api.traffic("17x2")
    with pytest.raises(api.NocError) as e:
        api.traffic("4x4", pattern="zigzag")
    assert str(e.value) == ("unknown traffic pattern 'zigzag'; choose one of uniform, transpose, bitcomp, "
                            "bitrev, shuffle, tornado, neighbor, hotspot")
    for rate in (0, -0.1, 1.5, float("nan")):
        with pytest.raises(api.NocError, match=r"^rate must be in \(0, 1\], not "):
            api.traffic("4x4", rate=rate)
    with pytest.raises(api.NocError, match=r"^sweep rate must be in \(0, 1\], not 2$"):
        api.sweep("4x4", rates=[0.1, 2])
    with pytest.raises(api.NocError, match=r"^pattern 'transpose' needs a square mesh, not 2x4$"):
        api.traffic("2x4", pattern="transpose")
    with pytest.raises(api.NocError, match=r"^pattern 'bitrev' needs a power-of-two node count, not 3x5$"):
        api.traffic("3x5", pattern="bitrev")
    with pytest.raises(api.NocError, match=r"^reduce op must be 'sum' or 'max', not 'min'$"):
        api.reduce("2x2", op="min")
    with pytest.raises(api.NocError, match=r"^root \(0, 0\) is outside the rectangle \(1, 1, 2, 2\)$"):
        api.reduce("4x4", rect="1,1,2,2", root="0,0")
    with pytest.raises(api.NocError, match=r"^backend must be one of verilator, icarus, amaranth, not 'spice'$"):
        api.traffic("2x2", backend="spice")


def test_bad_component_parameters():
    with pytest.raises(ValueError, match=r"^mesh rows must be an integer in \[1, 16\], not 0$"):
        Mesh(rows=0, cols=2)
    with pytest.raises(ValueError, match=r"^mesh plane must be 'unicast' or 'multicast', not 'ring'$"):
        Mesh(rows=2, cols=2, plane="ring")
    with pytest.raises(ValueError, match=r"^router depth must be a power of two in \[1, 64\], not 3$"):
        UnicastRouter(x=0, y=0, rows=2, cols=2, depth=3)
    with pytest.raises(ValueError, match=r"^router x must be an integer in \[0, 1\], not 2$"):
        UnicastRouter(x=2, y=0, rows=2, cols=2)
    with pytest.raises(ValueError, match=r"^multicast router depth must be at least max_packet \(8\), not 4$"):
        MulticastRouter(x=0, y=0, rows=2, cols=2, depth=4, max_packet=8)
    with pytest.raises(ValueError, match=r"^collective lanes must be an integer in \[1, 64\], not 0$"):
        CollectiveMesh(rows=2, cols=2, lanes=0)


def test_cli_multicast_and_reduce_json(tmp_path):
    runner = CliRunner()
    out = tmp_path / "mc.json"
    r = runner.invoke(command, ["multicast", "--mesh", "2x3", "--rect", "0,0,2,1", "--src", "1,1", "--flits", "6",
                                "--backend", "amaranth", "--json", str(out)])
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    assert res["bit_exact"] is True
    assert res["delivered"] == {f"{x},{y}": 6 for y in range(2) for x in range(3)}
    assert res["checks"] == {"injected": 36, "delivered": 36, "lost": 0, "duplicated": 0, "misrouted": 0,
                             "reordered_or_corrupt": 0}
    assert "injected 36 delivered 36 lost 0 duplicated 0 misrouted 0 reordered or corrupt 0" in r.output
    assert res["cycles"] > 0
    out = tmp_path / "red.json"
    r = runner.invoke(command, ["reduce", "--mesh", "2x2", "--op", "max", "--flits", "3", "--seed", "9",
                                "--backend", "amaranth", "--json", str(out)])
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    assert res["bit_exact"] is True and res["delivered"] == {"0,0": 3, "1,0": 3, "0,1": 3, "1,1": 3}
    assert res["checks"] == {"injected": 12, "delivered": 12, "lost": 0, "duplicated": 0, "misrouted": 0,
                             "reordered_or_corrupt": 0}


def test_cli_traffic_json(tmp_path):
    out = tmp_path / "t.json"
    r = CliRunner().invoke(command, ["traffic", "--mesh", "2x2", "--pattern", "neighbor", "--rate", "0.5",
                                     "--packets", "40", "--backend", "amaranth", "--json", str(out)])
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    for key in ("injected", "delivered", "lost", "duplicated", "reordered", "avg_latency", "p99_latency",
                "offered_rate", "accepted_rate"):
        assert key in res
    assert res["injected"] == res["delivered"] == 40
    assert res["lost"] == res["duplicated"] == res["reordered"] == 0


def test_cli_usage_errors():
    runner = CliRunner()
    r = runner.invoke(command, ["multicast", "--mesh", "4x4", "--rect", "3,0,1,1", "--backend", "amaranth"])
    assert r.exit_code == 2
    assert "rectangle (3, 0, 1, 1) is inverted (need x0 <= x1 and y0 <= y1)" in r.output
    r = runner.invoke(command, ["traffic", "--mesh", "4x4", "--pattern", "zigzag"])
    assert r.exit_code == 2 and "unknown traffic pattern 'zigzag'" in r.output
    r = runner.invoke(command, ["traffic", "--mesh", "4x4", "--rate", "1.5"])
    assert r.exit_code == 2 and "rate must be in (0, 1], not 1.5" in r.output


def test_flow_checks_count_each_kind_of_fault():
    from tilelab.noc.api import _flow_checks

    # four nodes owed 3 flits each, one outside the rectangle: one short by 1, one with 2 extra,
    # one right count but a wrong hash, and 1 flit at the outside node
    assert _flow_checks([3, 3, 3, 0], [2, 5, 3, 1], [False, False, False, True]) == {
        "injected": 9, "delivered": 8, "lost": 1, "duplicated": 2, "misrouted": 1, "reordered_or_corrupt": 1}
