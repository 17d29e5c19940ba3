"""Bad input to every command: one line naming the option and the limit, exit 2, nothing built or changed.

The table pairs each mistake with the exact message it gets (as Verilator's ``*_bad`` tests pair
each error with its text). Every case must end before any build (a generous time bound), print no
traceback and leave every file in the folder byte for byte as it was, with nothing added.
"""

import hashlib
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tilelab.cli import main

X = ["--input", "x.npy", "--weights", "w.npy", "--rows", "4", "--cols", "4"]
R = ["--shape", "1,6,6,5", "--out-channels", "6", "--kernel", "3", "--rows", "4", "--cols", "4"]
RUN = ["run", "resnet50", "--image-size", "32", "--layers", "2:3"]

CASES = [
    # conv: sizes, counts, groups, seeds (zero, negative, wrong type)
    ("conv_rows_zero", ["conv", *R[:6], "--rows", "0", "--cols", "4"],
     "Invalid value for '--rows': rows must be an integer in [1, 64], not 0"),
    ("conv_cols_zero", ["conv", *R[:6], "--rows", "4", "--cols", "0"],
     "Invalid value for '--cols': cols must be an integer in [1, 64], not 0"),
    ("conv_rows_negative", ["conv", *R[:6], "--rows", "-4", "--cols", "4"],
     "Invalid value for '--rows': rows must be an integer in [1, 64], not -4"),
    ("conv_rows_not_int", ["conv", *R[:6], "--rows", "four"],
     "Invalid value for '--rows': rows must be an integer, not 'four'"),
    ("conv_shape_zero", ["conv", "--shape", "0,6,6,5", *R[2:]],
     "--shape must be positive integers, not '0,6,6,5'"),
    ("conv_shape_negative", ["conv", "--shape", "1,-6,6,5", *R[2:]],
     "--shape must be positive integers, not '1,-6,6,5'"),
    ("conv_shape_rank", ["conv", "--shape", "1,6,6", *R[2:]],
     "--shape needs 4 comma-separated integers, not '1,6,6'"),
    ("conv_out_channels_zero", ["conv", *R[:2], "--out-channels", "0", *R[4:]],
     "Invalid value for '--out-channels': out channels must be a positive integer, not 0"),
    ("conv_out_channels_negative", ["conv", *R[:2], "--out-channels", "-2", *R[4:]],
     "Invalid value for '--out-channels': out channels must be a positive integer, not -2"),
    ("conv_kernel_zero", ["conv", *R[:4], "--kernel", "0", *R[6:]],
     "--kernel must be positive integers, not '0'"),
    ("conv_kernel_negative", ["conv", *R[:4], "--kernel", "-1", *R[6:]],
     "--kernel must be positive integers, not '-1'"),
    ("conv_kernel_three_values", ["conv", *R[:4], "--kernel", "3,3,3", *R[6:]],
     "--kernel needs 1 or 2 comma-separated integers (N or H,W), not '3,3,3'"),
    ("conv_kernel_too_large", ["conv", *R[:4], "--kernel", "9", *R[6:]],
     'output height -2 is less than 1: input height 6 + 2 * padding 0 is smaller than the dilated kernel height 9'),
    ("conv_groups_zero", ["conv", *R, "--groups", "0"],
     "Invalid value for '--groups': groups must be a positive integer, not 0"),
    ("conv_groups_negative", ["conv", *R, "--groups", "-1"],
     "Invalid value for '--groups': groups must be a positive integer, not -1"),
    ("conv_groups_not_dividing", ["conv", *R, "--groups", "2"],
     'Invalid value for --groups: input channels 5 not divisible by groups 2'),
    ("conv_stride_zero", ["conv", *R, "--stride", "0"],
     'stride must be a positive integer or a (height, width) pair of positive integers, not 0'),
    ("conv_stride_not_int", ["conv", *R, "--stride", "a"],
     "--stride must be comma-separated integers, not 'a'"),
    ("conv_padding_negative", ["conv", *R, "--padding", "-1"],
     'padding must be a non-negative integer or a (height, width) pair of non-negative integers, not -1'),
    ("conv_dilation_zero", ["conv", *R, "--dilation", "0"],
     'dilation must be a positive integer or a (height, width) pair of positive integers, not 0'),
    ("conv_seed_negative", ["conv", *R, "--seed", "-1"],
     "Invalid value for '--seed': seed must be a non-negative integer, not -1"),
    ("conv_tile_rows_zero", ["conv", *R[:6], "--tile", "rows=0"],
     'Invalid value for --tile: rows must be an integer in [1, 64], not 0'),
    ("conv_mesh_zero", ["conv", *R, "--mesh", "0x2"],
     "Invalid value for '--mesh': mesh 0x2 does not fit the NoC: rows must be 1..16 and cols 1..15"),
    ("conv_mesh_syntax", ["conv", *R, "--mesh", "2by2"],
     "Invalid value for '--mesh': mesh must look like RxC (e.g. 2x2), not '2by2'"),
    # conv: contradicting pairs, options that would do nothing
    ("conv_shape_too_large", ["conv", "--shape", "1,10000,10000,64", *R[2:]],
     "--shape: a tensor 1x10000x10000x64 (6,400,000,000 bytes) does not fit the external memory of the tile "
     "(4,194,304 bytes)"),
    ("conv_weights_too_large", ["conv", "--shape", "1,8,8,4", "--out-channels", "4000", "--kernel", "31", *R[6:]],
     "--out-channels/--kernel: a tensor 4000x31x31x4 (15,376,000 bytes) does not fit the external memory of "
     "the tile (4,194,304 bytes)"),
    ("conv_shape_and_input", ["conv", "--input", "x.npy", *R],
     "--shape contradicts --input: the input's shape is the file's; give one of them"),
    ("conv_out_channels_and_weights", [*["conv"], *X, "--out-channels", "8"],
     "--out-channels contradicts --weights: the weights' shape is the file's; give one of them"),
    ("conv_kernel_and_weights", ["conv", *X, "--kernel", "5"],
     "--kernel contradicts --weights: the weights' shape is the file's; give one of them"),
    ("conv_seed_with_files", ["conv", *X, "--seed", "3"],
     '--seed has no effect: the input and the weights come from files (and the bias from --bias or none)'),
    ("conv_rows_and_tile_rows", ["conv", *X, "--tile", "rows=8"],
     '--rows contradicts --tile rows=...: give the array size once'),
    ("conv_shard_without_mesh", ["conv", *X, "--shard", "width"],
     '--shard applies to a --mesh run only'),
    ("conv_weight_load_without_mesh", ["conv", *X, "--weight-load", "stream"],
     '--weight-load applies to a --mesh run only'),
    ("conv_plot_without_mesh", ["conv", *X, "--plot", "p.png"],
     '--plot draws the NoC links of a --mesh run'),
    ("conv_requant_with_int32", ["conv", *X, "--requant", "1,36,0"],
     '--requant and --relu apply to --out int8'),
    ("conv_relu_with_int32", ["conv", *X, "--relu"],
     '--requant and --relu apply to --out int8'),
    # conv: array files (rank, dtype, shape, corrupt, truncated, missing)
    ("conv_input_rank", ["conv", "--input", "x3.npy", *X[2:]],
     'x must have 4 dimensions (N, H, W, C), not shape (6, 6, 5)'),
    ("conv_weights_rank", ["conv", "--input", "x.npy", "--weights", "w3.npy", *X[4:]],
     'w must have 4 dimensions (Cout, Kh, Kw, Cin / groups), not shape (6, 3, 5)'),
    ("conv_input_dtype", ["conv", "--input", "xf.npy", *X[2:]],
     "x must have dtype 'int8', not 'float32'"),
    ("conv_input_corrupt", ["conv", "--input", "junk.npy", *X[2:]],
     "Invalid value for --input: 'junk.npy' is not a valid .npy file (it does not start with the .npy header)"),
    ("conv_input_truncated", ["conv", "--input", "trunc.npy", *X[2:]],
     "Invalid value for --input: 'trunc.npy' is not a valid .npy file (EOF: reading array header, "
     'expected 118 bytes got 90)'),
    ("conv_input_missing", ["conv", "--input", "missing.npy", *X[2:]],
     "Invalid value for --input: 'missing.npy' is not a valid .npy file (no such file)"),
    ("conv_bias_shape", ["conv", *X, "--bias", "b5.npy"],
     'bias must have shape (6,) (one value per output channel), not (5,)'),
    ("conv_bias_dtype", ["conv", *X, "--bias", "bf.npy"],
     "bias must have dtype 'int32', not 'float32'"),
    ("conv_requant_channels", ["conv", *X, "--out", "int8", "--requant", "rq4.npz"],
     "Invalid value for --requant: multiplier in 'rq4.npz' has shape (4,); expected () or (6,)"),
    ("conv_requant_keys", ["conv", *X, "--out", "int8", "--requant", "rqbad.npz"],
     "Invalid value for --requant: 'rqbad.npz': need an .npz with arrays 'multiplier', 'shift' (and "
     "optionally 'zero_point') ('multiplier is not a file in the archive')"),
    ("conv_requant_zero_point_per_channel", ["conv", *X, "--out", "int8", "--requant", "rqzp.npz"],
     "Invalid value for --requant: zero_point in 'rqzp.npz' has shape (6,); expected () (one zero "
     'point for the tensor)'),
    ("conv_requant_float", ["conv", *X, "--out", "int8", "--requant", "rqf.npz"],
     "Invalid value for --requant: multiplier in 'rqf.npz' has dtype 'float64'; expected integers"),
    ("conv_requant_shift_zero", ["conv", *X, "--out", "int8", "--requant", "1,0,0"],
     'requant shift must be within [1, 62], not 0..0'),
    ("conv_requant_two_values", ["conv", *X, "--out", "int8", "--requant", "1,2"],
     "--requant needs 3 comma-separated integers, not '1,2'"),
    ("conv_requant_zero_point_range", ["conv", *X, "--out", "int8", "--requant", "1,36,300"],
     'requant zero_point must be within [-128, 127], not 300'),
    # conv: outputs (an input overwritten, a missing or non-folder parent, a suffix not honoured)
    ("conv_save_over_input", ["conv", *X, "--save", "x.npy"],
     "--save 'x.npy' would overwrite the --input file"),
    ("conv_json_over_weights", ["conv", *X, "--json", "w.npy"],
     "--json 'w.npy' would overwrite the --weights file"),
    ("conv_save_over_requant", ["conv", *X, "--out", "int8", "--requant", "rq6.npz", "--save", "rq6.npz"],
     "--save 'rq6.npz' would overwrite the --requant file"),
    ("conv_save_and_json_same", ["conv", *X, "--save", "y.npy", "--json", "y.npy"],
     "--json and --save name the same file 'y.npy'"),
    ("conv_save_missing_folder", ["conv", *X, "--save", "nodir/y.npy"],
     "--save 'nodir/y.npy': folder 'nodir' does not exist"),
    ("conv_json_missing_folder", ["conv", *X, "--json", "nodir/s.json"],
     "--json 'nodir/s.json': folder 'nodir' does not exist"),
    ("conv_json_under_a_file", ["conv", *X, "--json", "x.npy/s.json"],
     "--json 'x.npy/s.json': 'x.npy' is not a folder"),
    ("conv_save_is_folder", ["conv", *X, "--save", "notours"],
     "Invalid value for '--save': File 'notours' is a directory."),
    ("conv_waves_missing_folder", ["conv", *X, "--waves", "nodir/w.vcd"],
     "--waves 'nodir/w.vcd': folder 'nodir' does not exist"),
    ("conv_waves_suffix", ["conv", *X, "--waves", "w.txt"],
     "--waves 'w.txt': verilator writes .vcd or .fst waveforms; name the file with that suffix"),
    ("conv_waves_fst_on_icarus", ["conv", *X, "--sim", "icarus", "--waves", "w.fst"],
     "--waves 'w.fst': icarus writes .vcd waveforms; name the file with that suffix"),
    ("conv_waves_over_input", ["conv", *X, "--waves", "x.npy"],
     "--waves 'x.npy': verilator writes .vcd or .fst waveforms; name the file with that suffix"),
    ("conv_plot_suffix", ["conv", *X, "--mesh", "2x2", "--plot", "p.txt"],
     "--plot 'p.txt': the file name must end in one of .avif, .eps, .gif, .jpeg, .jpg, .pdf, .pgf, "
     '.png, .ps, .raw, .rgba, .svg, .svgz, .tif, .tiff, .webp'),
    ("conv_plot_missing_folder", ["conv", *X, "--mesh", "2x2", "--plot", "nodir/p.png"],
     "--plot 'nodir/p.png': folder 'nodir' does not exist"),
    # run
    ("run_unknown_model", ["run", "resnet51"],
     "Invalid value for 'MODEL': unknown model 'resnet51'; known models: alexnet, efficientnet_b0, mobilenet_v2, "
     "resnet18, resnet50, resnext50_32x4d, shufflenet_v2, vgg16"),
    ("run_image_size_zero", ["run", "resnet50", "--image-size", "0"],
     "Invalid value for '--image-size': image size must be a positive integer, not 0"),
    ("run_image_size_too_small", ["run", "vgg16", "--image-size", "16"],
     "Invalid value for '--image-size': vgg16 cannot take image_size 16: at layer 'pool5': output "
     'height 0 is less than 1: input height 1 + 2 * padding 0 is smaller than the window height 2'),
    ("run_image_size_too_large", ["run", "resnet50", "--image-size", "100000"],
     '--image-size: a tensor 1x100000x100000x3 (30,000,000,000 bytes) does not fit the external '
     'memory of the tile (4,194,304 bytes)'),
    ("run_batch_negative", ["run", "resnet50", "--batch", "-1"],
     "Invalid value for '--batch': batch must be a positive integer, not -1"),
    ("run_seed_negative", ["run", "resnet50", "--seed", "-1"],
     "Invalid value for '--seed': seed must be a non-negative integer, not -1"),
    ("run_layers_reversed", [*RUN[:4], "--layers", "5:2"],
     "Invalid value for '--layers': layers '5:2' out of range: the model has 73 layers, need 0 <= A < B <= 73"),
    ("run_layers_syntax", [*RUN[:4], "--layers", "a:b"],
     "Invalid value for '--layers': layers must be A:B with integers A and B, not 'a:b'"),
    ("run_mesh_zero", [*RUN, "--mesh", "0x0"],
     "Invalid value for '--mesh': mesh 0x0 does not fit the NoC: rows must be 1..16 and cols 1..15"),
    ("run_mesh_syntax", [*RUN, "--mesh", "2x2x2"],
     "Invalid value for '--mesh': mesh must look like RxC (e.g. 2x2), not '2x2x2'"),
    ("run_tile_ext_bytes", [*RUN, "--tile", "ext_bytes=0"],
     'Invalid value for --tile: ext_bytes must be one of 16, 32, 64, not 0'),
    ("run_estimate_without_cycles", [*RUN, "--sim", "golden", "--estimate"],
     "--estimate compares the estimate with simulated cycles, and --sim golden simulates none"),
    ("run_out_not_a_run_folder", [*RUN, "--out", "notours"],
     "--out 'notours' is a folder that holds no tilelab run (run.json) and is not empty; choose a new or empty folder"),
    ("run_out_is_a_file", [*RUN, "--out", "afile.txt"],
     "Invalid value for '--out': Directory 'afile.txt' is a file."),
    ("run_out_under_a_file", [*RUN, "--out", "afile.txt/r"],
     "--out 'afile.txt/r': 'afile.txt' is not a folder"),
    ("run_json_missing_folder", [*RUN, "--out", "r", "--json", "nodir/s.json"],
     "--json 'nodir/s.json': folder 'nodir' does not exist"),
    ("run_json_under_a_file", [*RUN, "--out", "r", "--json", "afile.txt/s.json"],
     "--json 'afile.txt/s.json': 'afile.txt' is not a folder"),
    ("run_json_inside_the_run_folder", [*RUN, "--out", "r", "--json", "r/layers/0002.json"],
     "--json 'r/layers/0002.json' is inside the run directory 'r', which tilelab writes (its stats.json holds "
     "the same summary); name a file outside it"),
    ("run_resume_nothing", [*RUN, "--out", "r", "--resume"],
     "--resume: 'r' holds no run to resume (no run.json); run without --resume to start one"),
    ("run_onnx_save_over_the_model", ["run", "m.onnx", "--save", "m.onnx"],
     "--save 'm.onnx' would overwrite the MODEL file"),
    ("run_onnx_save_over_the_input", ["run", "m.onnx", "--input", "x.npy", "--save", "x.npy"],
     "--save 'x.npy' would overwrite the --input file"),
    ("run_onnx_json_missing_folder", ["run", "m.onnx", "--json", "nodir/s.json"],
     "--json 'nodir/s.json': folder 'nodir' does not exist"),
    ("run_onnx_out_not_a_run_folder", ["run", "m.onnx", "--out", "notours"],
     "--out 'notours' is a folder that holds no tilelab run (run.json) and is not empty; choose a new or empty "
     "folder"),
    # noc
    ("noc_traffic_mesh_zero", ["noc", "traffic", "--mesh", "0x2"],
     'mesh rows must be an integer in [1, 16], not 0'),
    ("noc_traffic_packets_zero", ["noc", "traffic", "--mesh", "2x2", "--packets", "0"],
     'packets must be an integer in [1, 2147483648], not 0'),
    ("noc_traffic_rate_zero", ["noc", "traffic", "--mesh", "2x2", "--rate", "0"],
     'rate must be in (0, 1], not 0.0'),
    ("noc_traffic_flits_zero", ["noc", "traffic", "--mesh", "2x2", "--flits", "0"],
     'packet_flits must be an integer in [1, 15], not 0'),
    ("noc_traffic_stall_too_large", ["noc", "traffic", "--mesh", "2x2", "--source-stall", "1.5"],
     'source_stall must be in [0, 1), not 1.5'),
    ("noc_traffic_json_missing_folder", ["noc", "traffic", "--mesh", "2x2", "--json", "nodir/t.json"],
     "--json 'nodir/t.json': folder 'nodir' does not exist"),
    ("noc_sweep_measure_zero", ["noc", "sweep", "--mesh", "2x2", "--measure", "0"],
     'measure must be a positive integer, not 0'),
    ("noc_sweep_plot_suffix", ["noc", "sweep", "--mesh", "2x2", "--plot", "p.txt"],
     "--plot 'p.txt': the file name must end in one of .avif, .eps, .gif, .jpeg, .jpg, .pdf, .pgf, "
     '.png, .ps, .raw, .rgba, .svg, .svgz, .tif, .tiff, .webp'),
    ("noc_sweep_plot_missing_folder", ["noc", "sweep", "--mesh", "2x2", "--plot", "nodir/p.png"],
     "--plot 'nodir/p.png': folder 'nodir' does not exist"),
    ("noc_multicast_src_outside", ["noc", "multicast", "--mesh", "2x2", "--src", "5,5"],
     'source (5,5) is outside the 2x2 mesh (x in 0..1, y in 0..1)'),
    ("noc_multicast_json_under_a_file", ["noc", "multicast", "--mesh", "2x2", "--json", "afile.txt/m.json"],
     "--json 'afile.txt/m.json': 'afile.txt' is not a folder"),
    ("noc_reduce_lanes_too_many", ["noc", "reduce", "--mesh", "2x2", "--lanes", "1000"],
     'lanes must be an integer in [1, 16], not 1000'),
    ("noc_reduce_json_missing_folder", ["noc", "reduce", "--mesh", "2x2", "--json", "nodir/r.json"],
     "--json 'nodir/r.json': folder 'nodir' does not exist"),
    # halo, analyze, estimate, verilog, bench, demo
    ("halo_input_rank", ["halo", "--input", "1,4,4", "--kernel", "3", "--cores", "2"],
     "Invalid value for '--input': must be four positive integers N,H,W,C, not '1,4,4'"),
    ("halo_cores_zero", ["halo", "--input", "1,4,4,8", "--kernel", "3", "--cores", "0"],
     "Invalid value for '--cores': cores must be a positive integer, not 0"),
    ("halo_kernel_too_large", ["halo", "--input", "1,4,4,8", "--kernel", "9", "--cores", "2"],
     'output height -4 is less than 1: input height 4 + 2 * padding 0 is smaller than the dilated kernel height 9'),
    ("halo_json_missing_folder", ["halo", "--input", "1,4,4,8", "--kernel", "3", "--cores", "2", "--json",
                                  "nodir/h.json"],
     "--json 'nodir/h.json': folder 'nodir' does not exist"),
    ("analyze_bits_zero", ["analyze", "vgg16", "--bits", "0"],
     "Invalid value for '--bits': bits must be an integer in [1, 32], not 0"),
    ("analyze_json_missing_folder", ["analyze", "resnet50", "--json", "nodir/a.json"],
     "--json 'nodir/a.json': folder 'nodir' does not exist"),
    ("export_output_suffix", ["export", "resnet18", "-o", "r.txt"],
     "-o 'r.txt': the file name must end in .onnx"),
    ("export_output_missing_folder", ["export", "resnet18", "-o", "nodir/r.onnx"],
     "-o 'nodir/r.onnx': folder 'nodir' does not exist"),
    ("export_activations_with_float", ["export", "resnet18", "--float", "--activations", "int8", "-o", "r.onnx"],
     "Invalid value for '--activations': applies to quantized models only (drop --float)"),
    ("export_image_size_zero", ["export", "resnet18", "--image-size", "0", "-o", "r.onnx"],
     "Invalid value for '--image-size': image size must be a positive integer, not 0"),
    ("estimate_image_size_too_large", ["estimate", "resnet50", "--image-size", "100000"],
     '--image-size: a tensor 1x100000x100000x3 (30,000,000,000 bytes) does not fit the external '
     'memory of the tile (4,194,304 bytes)'),
    ("estimate_onnx_missing", ["estimate", "missing.onnx"],
     "MODEL: cannot read ONNX model 'missing.onnx': No such file or directory"),
    ("estimate_onnx_image_size", ["estimate", "missing.onnx", "--image-size", "32"],
     "--image-size: an ONNX model's input shape is fixed; --image-size does not apply"),
    ("estimate_batch_zero", ["estimate", "resnet50", "--batch", "0"],
     "Invalid value for '--batch': batch must be a positive integer, not 0"),
    ("estimate_json_missing_folder", ["estimate", "resnet50", "--json", "nodir/e.json"],
     "--json 'nodir/e.json': folder 'nodir' does not exist"),
    ("verilog_rows_zero", ["verilog", "mac-array", "--rows", "0", "-o", "m.v"],
     'rows must be an integer in [1, 256], not 0'),
    ("verilog_top_not_an_identifier", ["verilog", "mac-array", "--rows", "4", "--top", "1bad", "-o", "m.v"],
     "Invalid value for '--top': top module name must be a Verilog identifier, not '1bad'"),
    ("verilog_output_missing_folder", ["verilog", "mac-array", "--rows", "4", "-o", "nodir/m.v"],
     "-o 'nodir/m.v': folder 'nodir' does not exist"),
    ("verilog_output_is_folder", ["verilog", "mac-array", "--rows", "4", "-o", "notours"],
     "-o 'notours' is a folder; name a file"),
    ("bench_size_zero", ["bench", "sim-speed", "--size", "0x4"],
     "Invalid value for '--size': size must be positive, not '0x4'"),
    ("bench_size_too_large", ["bench", "sim-speed", "--size", "1000x1000"],
     "Invalid value for '--size': rows must be an integer in [1, 256], not 1000"),
    ("bench_json_missing_folder", ["bench", "sim-speed", "--size", "8x8", "--json", "nodir/b.json"],
     "--json 'nodir/b.json': folder 'nodir' does not exist"),
    ("demo_rows_zero", ["demo", "--rows", "0"],
     "Invalid value for '--rows': rows must be an integer in [1, 256], not 0"),
    ("demo_cols_too_large", ["demo", "--cols", "100"],
     "Invalid value for '--cols': cols must be an integer in [1, 64], not 100"),
    ("demo_seed_negative", ["demo", "--seed", "-1"],
     "Invalid value for '--seed': seed must be a non-negative integer, not -1"),
]


def _make_files(folder: Path) -> None:
    """The input files the table refers to, good and bad, and a folder and a file that are the user's."""
    rng = np.random.default_rng(0)
    np.save(folder / "x.npy", rng.integers(-128, 128, (1, 6, 6, 5), dtype=np.int8))
    np.save(folder / "w.npy", rng.integers(-128, 128, (6, 3, 3, 5), dtype=np.int8))
    np.save(folder / "b5.npy", np.zeros(5, np.int32))
    np.save(folder / "bf.npy", np.zeros(6, np.float32))
    np.save(folder / "x3.npy", np.zeros((6, 6, 5), np.int8))
    np.save(folder / "w3.npy", np.zeros((6, 3, 5), np.int8))
    np.save(folder / "xf.npy", np.zeros((1, 6, 6, 5), np.float32))
    (folder / "junk.npy").write_bytes(b"not an npy file")
    (folder / "trunc.npy").write_bytes((folder / "x.npy").read_bytes()[:100])
    np.savez(folder / "rq4.npz", multiplier=np.full(4, 1 << 30), shift=np.full(4, 36))
    np.savez(folder / "rqbad.npz", foo=np.ones(4))
    np.savez(folder / "rqzp.npz", multiplier=np.full(6, 1 << 30), shift=np.full(6, 36),
             zero_point=np.zeros(6, np.int64))
    np.savez(folder / "rqf.npz", multiplier=np.full(6, 1.5e9), shift=np.full(6, 36))
    np.savez(folder / "rq6.npz", multiplier=np.full(6, 1 << 30), shift=np.full(6, 36))
    (folder / "notours").mkdir()
    (folder / "notours" / "keep.txt").write_text("mine")
    (folder / "afile.txt").write_text("mine")


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*"))}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad-input")
    _make_files(folder)
    return folder


@pytest.mark.parametrize("args, message", [pytest.param(a, m, id=n) for n, a, m in CASES])
def test_bad_input(files, monkeypatch, args, message):
    monkeypatch.chdir(files)
    before = _snapshot(files)
    t0 = time.perf_counter()
    r = CliRunner().invoke(main, args)
    seconds = time.perf_counter() - t0
    assert r.exit_code == 2, r.output
    assert r.stderr == f"Error: {message}\n"
    assert r.stdout == "" and "Traceback" not in r.output
    assert seconds < 10, f"{seconds:.1f} s: did it build?"
    assert _snapshot(files) == before


def test_every_command_is_in_the_table():
    commands = {args[0] if args[0] not in ("noc", "verilog", "bench") else " ".join(args[:2]) for _, args, _ in CASES}
    assert {"conv", "run", "noc traffic", "noc sweep", "noc multicast", "noc reduce", "halo", "analyze", "estimate",
            "verilog mac-array", "bench sim-speed", "demo"} <= commands


def test_a_simulator_that_is_not_installed_is_refused_before_anything(files, monkeypatch, tmp_path):
    import tilelab.sim

    monkeypatch.chdir(files)
    monkeypatch.setattr(tilelab.sim, "icarus_available", lambda: False)
    message = ("Error: --sim icarus: Icarus Verilog (iverilog, vvp) is not installed; apt-get install iverilog, "
               "or choose --sim verilator\n")
    before = _snapshot(files)
    r = CliRunner().invoke(main, ["conv", *X, "--sim", "icarus"])
    assert r.exit_code == 2 and r.stderr == message
    out = tmp_path / "run"
    r = CliRunner().invoke(main, [*RUN, "--sim", "icarus", "--out", str(out)])
    assert r.exit_code == 2 and r.stderr == message
    r = CliRunner().invoke(main, ["noc", "reduce", "--mesh", "2x2", "--backend", "icarus"])
    assert r.exit_code == 2 and r.stderr == message.replace("--sim icarus:", "--backend icarus:")
    assert not out.exists() and _snapshot(files) == before


def test_a_run_that_finishes_no_layer_leaves_nothing_behind(monkeypatch, tmp_path):
    """The run directory (new, or an empty folder of the user's) is as it was when the first layer fails."""
    from tilelab.net.backends import TileBackend

    def fail(self, step, inputs):
        raise RuntimeError("the simulator died")

    monkeypatch.setattr(TileBackend, "run", fail)
    new, empty = tmp_path / "new" / "run", tmp_path / "empty"
    empty.mkdir()
    for out in (new, empty):
        r = CliRunner().invoke(main, [*RUN, "--out", str(out), "--no-plots"])
        assert r.exit_code == 1 and isinstance(r.exception, RuntimeError)
    assert not (tmp_path / "new").exists()
    assert empty.is_dir() and list(empty.iterdir()) == []


def test_fst_waves_without_the_lz4_headers_are_refused(files, monkeypatch):
    import tilelab.sim.builders

    monkeypatch.chdir(files)
    monkeypatch.setattr(tilelab.sim.builders, "fst_supported", lambda: False)
    r = CliRunner().invoke(main, ["conv", *X, "--waves", "w.fst"])
    assert r.exit_code == 2
    assert r.stderr == ("Error: --waves 'w.fst': FST waveforms need the lz4 headers (apt-get install liblz4-dev); "
                        "or name a .vcd file\n")
    assert not (files / "w.fst").exists()


def test_a_mesh_that_cannot_take_a_layer_is_bad_input_and_leaves_no_run(tmp_path):
    out = tmp_path / "run"
    # tiles of 4 KiB node memory: every sharding of the first conv needs more
    r = CliRunner().invoke(main, [*RUN, "--out", str(out), "--mesh", "3x3", "--tile", "ext_words=64"])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert r.stderr.splitlines()[-1].startswith("Error: step 'layer1.0.conv1' (conv2d) fits no sharding of the 3x3 "
                                                "mesh: height/multicast: a tile node needs 6848 bytes of node memory")
    assert r.stderr.count("a node has 4096") == 3
    assert not out.exists()


def test_a_run_killed_before_its_first_layer_leaves_nothing_behind(monkeypatch, tmp_path):
    """SIGTERM (a kill) cleans up like Ctrl-C: the new run directory is gone, the old handler is back."""
    import os
    import signal

    from tilelab.net.backends import TileBackend

    def killed(self, step, inputs):
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("SIGTERM did not stop the run")

    monkeypatch.setattr(TileBackend, "run", killed)
    before = signal.getsignal(signal.SIGTERM)
    out = tmp_path / "run"
    r = CliRunner().invoke(main, [*RUN, "--out", str(out), "--no-plots"])
    assert r.exit_code == 128 + signal.SIGTERM, r.output
    assert not out.exists()
    assert signal.getsignal(signal.SIGTERM) is before


def test_an_output_folder_that_cannot_be_written_is_refused(files, monkeypatch):
    import tilelab.cli.options

    monkeypatch.chdir(files)
    monkeypatch.setattr(tilelab.cli.options, "_writable", lambda folder: False)
    before = _snapshot(files)
    r = CliRunner().invoke(main, ["conv", *X, "--json", "s.json"])
    assert r.exit_code == 2 and r.stderr == "Error: --json 's.json' cannot be written (permission denied)\n"
    r = CliRunner().invoke(main, [*RUN, "--out", "new/run"])
    assert r.exit_code == 2 and r.stderr == "Error: --out 'new/run' cannot be created in '.' (permission denied)\n"
    assert _snapshot(files) == before
