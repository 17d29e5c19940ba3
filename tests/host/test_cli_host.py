"""The ``analyze`` and ``halo`` commands, through click's test runner."""

import json

from click.testing import CliRunner

from tilelab.cli.analyze import command as analyze_command
from tilelab.cli.halo import command as halo_command
from tilelab.net.analysis import analyze
from tilelab.reference.halo import halo_plan


def test_analyze_prints_table_and_totals(tmp_path):
    out = tmp_path / "alexnet.json"
    result = CliRunner().invoke(analyze_command, ["alexnet", "--batch", "2", "--json", str(out)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "alexnet: batch 2, image 227x227, 8-bit weights and activations"
    assert lines[1].split() == ["layer", "kind", "output", "weights", "MACs", "activations", "ops/B"]
    assert lines[2].split()[:6] == ["conv1", "conv", "2x55x55x96", "34,848", "210,830,400", "580,800"]
    assert "  weights            60,954,656  (conv 2,332,704 + fc 58,621,952), 60,954,656 bytes" in lines
    assert "  MACs            1,448,813,632  (conv 1,331,569,728 + fc 117,243,904)" in lines
    assert lines[-1] == f"wrote {out}"
    assert json.loads(out.read_text()) == analyze("alexnet", batch=2)


def test_analyze_options_and_errors():
    runner = CliRunner()
    result = runner.invoke(analyze_command, ["resnet50", "--bits", "4", "--image-size", "112"])
    assert result.exit_code == 0, result.output
    assert "resnet50: batch 1, image 112x112, 4-bit weights and activations" in result.output
    assert "12,751,456 bytes" in result.output  # 25,502,912 weights at half a byte
    result = runner.invoke(analyze_command, ["resnet51"])
    assert (
        result.exit_code == 2
        and "'resnet51' is not one of 'alexnet', 'efficientnet_b0', 'mobilenet_v2', 'resnet18', 'resnet50', "
            "'resnext50_32x4d', 'shufflenet_v2', 'vgg16'" in result.output
    )
    result = runner.invoke(analyze_command, ["vgg16", "--image-size", "16"])
    assert result.exit_code == 2
    assert "vgg16 cannot take image_size 16: at layer 'pool5'" in result.output
    result = runner.invoke(analyze_command, ["vgg16", "--bits", "0"])
    assert result.exit_code == 2 and "--bits" in result.output


def test_halo_summary_and_json(tmp_path):
    out = tmp_path / "plan.json"
    args = ["--input", "1,4,4,8", "--kernel", "3", "--stride", "1", "--padding", "1", "--cores", "2"]
    result = CliRunner().invoke(halo_command, [*args, "--json", str(out)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("conv 3x3/1 pad 1 on 1x4x4x8 -> 1x4x4, 2 cores")
    assert lines[3].split() == ["0", "[0,", "8)", "[0,", "8)", "12", "8", "4", "32", "1"]
    assert lines[4].split() == ["1", "[8,", "16)", "[8,", "16)", "12", "8", "4", "32", "0"]
    assert lines[5] == "halo total: 8 sticks, 64 bytes"
    assert json.loads(out.read_text()) == halo_plan(1, 4, 4, 8, kernel=3, stride=1, padding=1, cores=2)


def test_halo_errors():
    runner = CliRunner()
    result = runner.invoke(halo_command, ["--input", "1,4,4", "--kernel", "3", "--cores", "2"])
    assert result.exit_code == 2
    assert "Invalid value for '--input': must be four positive integers N,H,W,C, not '1,4,4'" in result.output
    result = runner.invoke(halo_command, ["--input", "1,2,2,4", "--kernel", "5", "--cores", "2"])
    assert result.exit_code == 2 and "output height -2 is less than 1" in result.output
    result = runner.invoke(halo_command, ["--input", "1,2,2,4", "--kernel", "1", "--cores", "0"])
    assert result.exit_code == 2 and "--cores" in result.output
