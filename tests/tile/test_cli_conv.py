"""The ``tilelab conv`` command: files in, report and JSON out, exit status."""

import json
import subprocess
import sys

import numpy as np

from tilelab.reference import golden

TILE_ARGS = ["--rows", "4", "--cols", "4"]


def run(*args, cwd):
    return subprocess.run([sys.executable, "-m", "tilelab", "conv", *args], capture_output=True, text=True, cwd=cwd)


def test_conv_from_files_int8_per_channel_requant(tmp_path):
    rng = np.random.default_rng(5)
    x = rng.integers(-128, 128, (1, 6, 6, 5), dtype=np.int8)
    w = rng.integers(-128, 128, (6, 3, 3, 5), dtype=np.int8)
    b = rng.integers(-300, 300, 6, dtype=np.int32)
    acc = golden.conv2d(x, w, b, padding=1)
    m, s = golden.choose_requant(acc)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "w.npy", w)
    np.save(tmp_path / "b.npy", b)
    np.savez(tmp_path / "rq.npz", multiplier=m, shift=s, zero_point=np.int64(2))
    proc = run("--input", "x.npy", "--weights", "w.npy", "--bias", "b.npy", "--padding", "1", "--out", "int8",
               "--requant", "rq.npz", "--relu", "--save", "y.npy", "--json", "stats.json", *TILE_ARGS, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "bit-exact vs numpy : yes" in proc.stdout
    y = np.load(tmp_path / "y.npy")
    np.testing.assert_array_equal(y, golden.requantize(acc, m, s, 2, relu=True))
    stats = json.loads((tmp_path / "stats.json").read_text())
    for key in ("bit_exact", "cycles", "macs", "peak_macs_per_cycle", "mac_utilization", "ext_bytes_read",
                "ext_bytes_written", "wall_seconds", "simulated_macs_per_second", "simulator"):
        assert key in stats, key
    assert stats["bit_exact"] is True and stats["simulator"] == "verilator"
    assert stats["macs"] == 6 * 6 * 6 * 9 * 5
    assert abs(stats["mac_utilization"] - stats["macs"] / (stats["cycles"] * stats["peak_macs_per_cycle"])) < 1e-12


def test_conv_random_scalar_requant(tmp_path):
    proc = run("--shape", "1,5,5,4", "--out-channels", "3", "--kernel", "3", "--stride", "2", "--out", "int8",
               "--requant", "1073741824,36,0", *TILE_ARGS, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "bit-exact vs numpy : yes" in proc.stdout


def test_conv_bad_inputs(tmp_path):
    (tmp_path / "junk.npy").write_bytes(b"not an npy file")
    proc = run("--input", "junk.npy", "--out-channels", "2", "--kernel", "1", cwd=tmp_path)
    assert proc.returncode == 2
    assert "'junk.npy' is not a valid .npy file" in proc.stderr
    np.save(tmp_path / "xf.npy", np.zeros((1, 4, 4, 2), np.float32))
    proc = run("--input", "xf.npy", "--out-channels", "2", "--kernel", "1", cwd=tmp_path)
    assert proc.returncode == 2 and "x must have dtype 'int8', not 'float32'" in proc.stderr
    proc = run("--shape", "1,4,4,6", "--out-channels", "4", "--kernel", "3", "--groups", "4", cwd=tmp_path)
    assert proc.returncode == 2 and "input channels 6 not divisible by groups 4" in proc.stderr
    proc = run("--shape", "1,4,4", "--out-channels", "4", "--kernel", "3", cwd=tmp_path)
    assert proc.returncode == 2 and "--shape needs 4 comma-separated integers" in proc.stderr


def test_conv_writes_outputs_exactly_where_named(tmp_path):
    """--save writes .npy data to exactly the path given (no ".npy" added); an output over an input is
    refused before anything runs and the input stays as it was."""
    rng = np.random.default_rng(7)
    x = rng.integers(-128, 128, (1, 4, 4, 3), dtype=np.int8)
    w = rng.integers(-128, 128, (2, 1, 1, 3), dtype=np.int8)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "w.npy", w)
    proc = run("--input", "x.npy", "--weights", "w.npy", "--save", "y.bin", *TILE_ARGS, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "y.bin.npy").exists()
    np.testing.assert_array_equal(np.load(tmp_path / "y.bin"), golden.conv2d(x, w, None))
    before = (tmp_path / "x.npy").read_bytes()
    proc = run("--input", "x.npy", "--weights", "w.npy", "--save", "x.npy", *TILE_ARGS, cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr == "Error: --save 'x.npy' would overwrite the --input file\n"
    assert (tmp_path / "x.npy").read_bytes() == before
