"""``tilelab conv --mesh``: the mesh report, JSON with per-tile and per-link counters, the heatmap."""

import json
from dataclasses import asdict

from click.testing import CliRunner

from tests.cases import TILE
from tilelab.cli import main

TILE_OPTION = ",".join(f"{k}={int(v)}" for k, v in asdict(TILE).items() if k not in ("mem_impl", "depthwise"))


def test_conv_on_a_mesh(tmp_path):
    out, png = tmp_path / "m.json", tmp_path / "links.png"
    r = CliRunner().invoke(main, ["conv", "--shape", "1,8,8,32", "--out-channels", "32", "--kernel", "3",
                                  "--padding", "1", "--out", "int8", "--relu", "--tile", TILE_OPTION,
                                  "--mesh", "2x2", "--shard", "block", "--weight-load", "stream",
                                  "--json", str(out), "--plot", str(png)])
    assert r.exit_code == 0, r.output
    assert "2x2 mesh of 4x4 tiles, block sharding, stream weights" in r.output
    assert "bit-exact vs numpy : yes" in r.output
    stats = json.loads(out.read_text())
    for key in ("bit_exact", "cycles", "macs", "peak_macs_per_cycle", "mac_utilization", "ext_bytes_read",
                "ext_bytes_written", "wall_seconds", "simulated_macs_per_second", "simulator", "halo_bytes",
                "noc_flits", "tiles", "links", "ports"):
        assert key in stats, key
    assert stats["bit_exact"] is True and stats["peak_macs_per_cycle"] == 4 * 16
    assert len(stats["tiles"]) == 4 and stats["halo_bytes"] > 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_mesh_options_bad_input():
    runner = CliRunner()
    r = runner.invoke(main, ["conv", "--shape", "1,128,128,64", "--out-channels", "32", "--kernel", "3",
                             "--padding", "1", "--out", "int32", "--tile", TILE_OPTION, "--mesh", "2x2"])
    assert r.exit_code == 2 and "a node has 524288" in r.output
    r = runner.invoke(main, ["conv", "--shape", "1,8,8,32", "--out-channels", "32", "--kernel", "3",
                             "--mesh", "20x2"])
    assert r.exit_code == 2 and "does not fit the NoC" in r.output
    r = runner.invoke(main, ["conv", "--shape", "1,8,8,32", "--out-channels", "32", "--kernel", "3",
                             "--plot", "x.png"])
    assert r.exit_code == 2 and "--plot draws the NoC links of a --mesh run" in r.output
    r = runner.invoke(main, ["conv", "--shape", "1,8,8,32", "--out-channels", "32", "--kernel", "3",
                             "--tile", "rows=4,colz=4"])
    assert r.exit_code == 2 and "expected NAME=VALUE" in r.output
