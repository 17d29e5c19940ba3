"""Quantized ONNX networks through the RTL on the default tile, compared with onnxruntime.

Usage: python benchmarks/onnx_models.py [--models vgg16 alexnet ...] [--image-size 224]
       [--activations uint8] [--json onnx_models.json]

Each built-in network is exported as a float32 ONNX model with seeded weights
(:func:`tilelab.net.onnx.export.export_onnx`), quantized by onnxruntime the way users quantize
(``quantize_static``, QDQ, per-channel int8 weights, seeded calibration), imported
(:func:`tilelab.net.onnx.load_onnx`) and run layer by layer on the default tile built with
onnxruntime's requantization (``float_requant=True``) and the element-wise unit. Per model the
table gives: steps, whether every layer is bit-exact against the golden chain, whether the output
equals onnxruntime's own session of the quantized model bit for bit, simulated cycles, MAC
utilization and wall seconds (export and quantization, import, the run). A model with a step the
RTL lacks is reported as refused, with the step named, and nothing of it is simulated.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def run_model(name, image_size, activations, backend, workdir):
    import onnxruntime as ort

    from tilelab.net.backends import ExecutionError
    from tilelab.net.executor import execute
    from tilelab.net.models import get_model
    from tilelab.net.onnx import load_onnx
    from tilelab.net.onnx.export import calibration_inputs, export_onnx, quantize_onnx

    row = {"model": name, "image_size": image_size, "activations": activations}
    t0 = time.perf_counter()
    graph = get_model(name, image_size=image_size)
    path = quantize_onnx(export_onnx(graph, seed=0), Path(workdir) / f"{name}.onnx", activations=activations)
    t1 = time.perf_counter()
    model = load_onnx(path)
    x = calibration_inputs(graph.nodes[0].shape[:1] + (3, image_size, image_size), seed=7, count=1)[0]
    model = model.with_input(x)
    t2 = time.perf_counter()
    row.update(export_seconds=t1 - t0, import_seconds=t2 - t1, steps=len(model.steps))
    try:
        backend.check(model.steps)
    except ExecutionError as error:
        row.update(status="refused", reason=str(error))
        return row
    result = execute(model, backend)
    t3 = time.perf_counter()
    y = model.to_output(result.outputs[model.output_step])
    (want,) = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    summary = result.summary()
    row.update(status="ran", run_seconds=t3 - t2, all_bit_exact=bool(summary["all_bit_exact"]),
               equals_onnxruntime=bool(y.dtype == want.dtype and np.array_equal(y, want)),
               max_abs_diff=float(np.max(np.abs(y.astype(np.float64) - want.astype(np.float64)))),
               total_cycles=int(summary["total_cycles"]), total_macs=int(summary["total_macs"]),
               mac_utilization=float(summary["mac_utilization"]))
    return row


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", default=["alexnet", "vgg16", "resnet18", "resnet50", "mobilenet_v2"])
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--activations", choices=["uint8", "int8"], default="uint8")
    ap.add_argument("--json", default="onnx_models.json", help="output JSON")
    args = ap.parse_args(argv)

    from tilelab.net.backends import TileBackend
    from tilelab.pe_models.config import DEFAULT_TILE

    backend = TileBackend(DEFAULT_TILE.replace(float_requant=True), sim="verilator")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            print(f"{name} ...", file=sys.stderr)
            rows.append(run_model(name, args.image_size, args.activations, backend, tmp))
    backend.close()
    print(f"{'model':<14} {'steps':>5} {'status':<8} {'bit-exact':>9} {'== ort':>6} {'cycles':>13} {'util':>6} "
          f"{'export s':>8} {'run s':>7}")
    for r in rows:
        if r["status"] != "ran":
            print(f"{r['model']:<14} {r['steps']:>5} refused  {r['reason']}")
            continue
        print(f"{r['model']:<14} {r['steps']:>5} {'ran':<8} {'yes' if r['all_bit_exact'] else 'NO':>9} "
              f"{'yes' if r['equals_onnxruntime'] else 'NO':>6} {r['total_cycles']:>13,} "
              f"{100 * r['mac_utilization']:>5.1f}% {r['export_seconds']:>8.1f} {r['run_seconds']:>7.1f}")
    with open(args.json, "w") as f:
        json.dump({"tile": DEFAULT_TILE.replace(float_requant=True).key(), "models": rows}, f, indent=2)
        f.write("\n")
    print(f"wrote {args.json}")
    ran = [r for r in rows if r["status"] == "ran"]
    return 0 if all(r["all_bit_exact"] and r["equals_onnxruntime"] for r in ran) else 1


if __name__ == "__main__":
    sys.exit(main())
