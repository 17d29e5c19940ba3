"""``tilelab sweep``: a grid of design points, every point estimated, the chosen ones on the RTL
(the 4×4 test tile, the only shape built: the other points are estimated only), JSON / CSV / plot,
resume, and specs refused by name before anything runs."""

import json
from dataclasses import fields

import pytest
from click.testing import CliRunner

from tests.cases import TILE
from tilelab.cli import main as cli
from tilelab.net.sweep import SweepError, choose_rtl, load_spec, pareto_front, parse_spec, run_sweep

#: The test tile's fields, as a sweep spec's [tile] table.
TILE_FIELDS = {f.name: getattr(TILE, f.name) for f in fields(TILE) if f.name != "mem_impl"}


def _spec(rtl="top:1", **tile):
    """MobileNetV2 at 16×16 with 10 classes (it fits the test tile) over the test tile and tiles
    with fewer columns (estimated only: ``top:1`` picks the test tile, the fastest)."""
    table = dict({k: [v] for k, v in TILE_FIELDS.items()}, **tile)
    lines = ['model = ["mobilenet_v2"]', "image_size = [16]", "num_classes = [10]", "[tile]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in table.items()]
    lines += ["[run]", f'rtl = "{rtl}"', "seed = 3"]
    return "\n".join(lines) + "\n"


@pytest.fixture
def spec_file(tmp_path):
    path = tmp_path / "spec.toml"
    path.write_text(_spec(cols=[4, 2, 1]))
    return path


def test_the_grid_and_its_checks(spec_file):
    sweep = load_spec(spec_file)
    assert [p["tile"]["cols"] for p in sweep.points] == [4, 2, 1]
    assert all(p["model"] == "mobilenet_v2" and p["image_size"] == 16 and p["num_classes"] == 10
               for p in sweep.points)
    assert (sweep.rtl, sweep.seed, sweep.sim) == ("top:1", 3, "verilator")
    grid = parse_spec({"model": ["resnet18", "mobilenet_v2"], "image_size": [32, 64],
                       "tile": {"rows": [8, 16], "cols": [8]}, "mesh": {"rows": [1, 2], "cols": [2]}})
    assert len(grid.points) == 2 * 2 * 2 * 2 and grid.rtl == "none"
    assert grid.points[0] == {"model": "resnet18", "image_size": 32, "tile": {"rows": 8, "cols": 8},
                              "mesh": {"rows": 1, "cols": 2}}


@pytest.mark.parametrize("data, message", [
    ({"model": ["resnet18"], "colour": [1]},
     "unknown sweep field 'colour'; the fields are image_size, mesh, model, num_classes, run, tile"),
    ({"image_size": [32]}, 'the sweep spec names no model (model = ["resnet18", ...])'),
    ({"model": []}, "model is an empty list: give at least one value"),
    ({"model": ["resnet51"]}, "unknown model 'resnet51'; known models: alexnet, efficientnet_b0, mobilenet_v2, "
                              "resnet18, resnet50, resnext50_32x4d, shufflenet_v2, vgg16"),
    ({"model": ["resnet18"], "tile": {"rows": []}}, "tile.rows is an empty list: give at least one value"),
    ({"model": ["resnet18"], "tile": {"row": [8]}}, "unknown tile field 'row'; the fields are act_lane_bytes, "
     "cols, depthwise, ext_bytes, ext_words, float_requant, mem_impl, out_entries, param_lane_bytes, rows, "
     "split_k, wgt_lane_bytes"),
    ({"model": ["resnet18"], "tile": {"rows": ["8"]}}, "tile.rows must be ints, not '8'"),
    ({"model": ["resnet18"], "tile": {"depthwise": [1]}}, "tile.depthwise must be true or false, not 1"),
    ({"model": ["resnet18"], "image_size": [0]}, "model 'resnet18', image_size 0: image_size must be a positive "
                                                 "integer, not 0"),
    ({"model": ["resnet18"], "mesh": {"shard": ["diagonal"]}},
     "mesh.shard must be one of height, width, block, not 'diagonal'"),
    ({"model": ["resnet18"], "run": {"rtl": "best"}},
     "run.rtl must be 'all', 'none', 'pareto' or 'top:N' with N >= 1, not 'best'"),
    ({"model": ["resnet18"], "run": {"rtl": "top:0"}},
     "run.rtl must be 'all', 'none', 'pareto' or 'top:N' with N >= 1, not 'top:0'"),
    ({"model": ["resnet18"], "run": {"sim": "modelsim"}},
     "run.sim must be one of verilator, icarus, amaranth, not 'modelsim'"),
    ({"model": ["model.onnx"]}, "model 'model.onnx': sweeps take built-in networks (alexnet, efficientnet_b0, "
     "mobilenet_v2, resnet18, resnet50, resnext50_32x4d, shufflenet_v2, vgg16); ONNX models are not swept yet"),
])
def test_bad_specs_are_refused_by_name(data, message):
    with pytest.raises(SweepError) as info:
        parse_spec(data)
    assert str(info.value) == message


def test_a_tile_its_configuration_refuses_names_the_point():
    with pytest.raises(SweepError, match=r"^point 1 \(rows 8, cols 0\): "):
        parse_spec({"model": ["resnet18"], "tile": {"rows": [8], "cols": [8, 0]}})


def test_pareto_and_top_choices():
    rows = [{"estimated_cycles": c, "peak_macs_per_cycle": m, "l1_bytes": b, "model": "m", "image_size": 8,
             "layers_not_estimated": x} for c, m, b, x in
            [(100, 16, 10, 0), (50, 64, 10, 0), (60, 64, 10, 0), (40, 16, 10, 2), (100, 16, 20, 0)]]
    assert pareto_front(rows) == [3] and pareto_front(rows[:3] + rows[4:]) == [0, 1]
    sweep = parse_spec({"model": ["resnet18"], "run": {"rtl": "pareto"}})
    assert choose_rtl(sweep, rows) == {0, 1}           # point 3 has layers that fit no memory
    assert choose_rtl(parse_spec({"model": ["resnet18"], "run": {"rtl": "top:2"}}), rows) == {1, 2}
    assert choose_rtl(parse_spec({"model": ["resnet18"], "run": {"rtl": "all"}}), rows) == {0, 1, 2, 3, 4}


def test_sweep_on_ray_estimates_all_runs_the_best_and_resumes(spec_file, local_ray, tmp_path):
    out = tmp_path / "sweep.json"
    runner = CliRunner()
    args = ["sweep", str(spec_file), "--json", str(out), "--csv", str(tmp_path / "s.csv"), "--plot",
            str(tmp_path / "s.png"), "--workers", "2"]
    r = runner.invoke(cli, args)
    assert r.exit_code == 0, r.output
    assert "3 points estimated, 1 on the RTL (1 bit-exact); fewest estimated cycles: point 0" in r.output
    assert r.stderr.count("estimate [") == 3 and r.stderr.count("rtl      [") == 1
    data = json.loads(out.read_text())
    assert data["format"] == "tilelab-sweep/1" and data["rtl"] == "top:1"
    points = data["points"]
    assert [p["tile"]["cols"] for p in points] == [4, 2, 1] and [p["rtl"] for p in points] == [True, False, False]
    assert all(p["estimated_cycles"] > 0 and p["layers_not_estimated"] == 0 for p in points)
    assert points[0]["estimated_cycles"] < points[1]["estimated_cycles"] < points[2]["estimated_cycles"]
    assert [p["peak_macs_per_cycle"] for p in points] == [16, 8, 4]
    best = points[0]
    assert best["bit_exact"] is True and best["rtl_cycles"] > 0 and 0 < best["rtl_mac_utilization"] <= 1
    assert best["rtl_ext_bytes_read"] > 0 and "rtl_cycles" not in points[1]
    rows = (tmp_path / "s.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert header[:5] == ["index", "model", "image_size", "num_classes", "tile.rows"] and len(rows) == 4
    first = dict(zip(header, rows[1].split(","), strict=True))
    assert (first["tile.cols"], first["rtl_cycles"], first["bit_exact"]) == ("4", str(best["rtl_cycles"]), "True")
    assert dict(zip(header, rows[2].split(","), strict=True))["rtl_cycles"] == ""
    assert (tmp_path / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # again: nothing is estimated or run again
    r = runner.invoke(cli, args)
    assert r.exit_code == 0, r.output
    assert r.stderr.count("(kept)") == 4
    assert json.loads(out.read_text()) == data

    # an interrupted sweep (the file lacks point 2 and the RTL result): only those are done
    cut = dict(data, points=[dict(points[0]), points[1]])
    for key in [k for k in cut["points"][0] if k.startswith("rtl_") or k == "bit_exact"]:
        del cut["points"][0][key]
    out.write_text(json.dumps(cut))
    seen = []
    again = run_sweep(load_spec(spec_file), out, progress=lambda phase, done, total, p: seen.append(
        (phase, p["index"], p["reused"])))
    assert seen == [("estimate", 0, True), ("estimate", 1, True), ("estimate", 2, False), ("rtl", 0, False)]
    strip = ("rtl_seconds",)
    assert [{k: v for k, v in p.items() if k not in strip} for p in again["points"]] == [
        {k: v for k, v in p.items() if k not in strip} for p in points]


def test_cli_sweep_bad_input(spec_file, tmp_path):
    runner = CliRunner()
    r = runner.invoke(cli, ["sweep", str(spec_file), "--json", str(tmp_path / "s.txt")])
    txt = str(tmp_path / "s.txt")
    assert r.exit_code == 2 and r.output == f"Error: --json {txt!r}: the file name must end in .json\n"
    bad = tmp_path / "bad.toml"
    bad.write_text('model = ["resnet18"]\n[tile]\nrows = []\n')
    r = runner.invoke(cli, ["sweep", str(bad), "--json", str(tmp_path / "s.json")])
    assert r.exit_code == 2 and r.output == "Error: tile.rows is an empty list: give at least one value\n"
    assert not (tmp_path / "s.json").exists()
    r = runner.invoke(cli, ["sweep", str(spec_file), "--json", str(tmp_path / "s.json"), "--ray-address", "auto"])
    assert r.exit_code == 2 and "--ray-address is for --workers" in r.output
    other = tmp_path / "other.json"
    other.write_text("{}")
    r = runner.invoke(cli, ["sweep", str(spec_file), "--json", str(other)])
    assert r.exit_code == 2 and r.output == (f"Error: --json {str(other)!r} exists and is not a 'tilelab-sweep/1' "
                                             f"results file; name another file\n")
