"""Built-in networks exported to ONNX, quantized by onnxruntime, imported back: the golden chain
equals onnxruntime's output bit for bit (the RTL runs the same steps, see test_onnx_rtl.py)."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from tilelab.net.models import get_model  # noqa: E402
from tilelab.net.onnx import load_onnx  # noqa: E402
from tilelab.net.onnx.export import calibration_inputs, export_onnx, quantize_onnx  # noqa: E402
from tilelab.net.onnx.importer import golden_chain  # noqa: E402


def _session(model):
    data = model if isinstance(model, (str, bytes)) else model.SerializeToString()
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


def test_float_export_runs_in_onnxruntime_with_the_graphs_shapes():
    g = get_model("resnet18", image_size=32)
    model = export_onnx(g, seed=1)
    x = calibration_inputs((1, 3, 32, 32), seed=5, count=1)[0]
    (y,) = _session(model).run(None, {"x": x})
    assert y.shape == g.output.shape and y.dtype == np.float32 and np.isfinite(y).all()
    again = export_onnx(g, seed=1)
    assert again.SerializeToString() == model.SerializeToString()          # seeded: the same bytes
    assert export_onnx(g, seed=2).SerializeToString() != model.SerializeToString()


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_quantized_export_imports_and_equals_onnxruntime(tmp_path, name):
    g = get_model(name, image_size=32)
    path = quantize_onnx(export_onnx(g, seed=0), tmp_path / f"{name}.onnx")
    m = load_onnx(path)
    x = calibration_inputs((1, 3, 32, 32), seed=9, count=1)[0]
    ours = m.to_output(golden_chain(m.steps, m.to_input(x))[m.output_step])
    (want,) = _session(path).run(None, {"x": x})
    assert ours.dtype == want.dtype and ours.shape == want.shape
    np.testing.assert_array_equal(ours, want)
    assert sum(s.op == "conv2d" for s in m.steps) >= 10


def test_quantize_refuses_a_bad_activation_type(tmp_path):
    with pytest.raises(ValueError, match="activations must be 'uint8' or 'int8', not 'int4'"):
        quantize_onnx(export_onnx(get_model("resnet18", image_size=32)), tmp_path / "q.onnx", activations="int4")


def test_cli_export_writes_a_model_that_tilelab_run_imports(tmp_path):
    from click.testing import CliRunner

    from tilelab.cli import main

    out = tmp_path / "r18.onnx"
    result = CliRunner().invoke(main, ["export", "resnet18", "--image-size", "32", "-o", str(out)],
                                standalone_mode=False)
    assert result.exit_code == 0, result.output
    assert result.output == (f"resnet18: quantized (uint8 activations, int8 per-channel weights), input x float32 "
                             f"1x3x32x32 (NCHW) -> {out}\n")
    m = load_onnx(out)
    assert m.steps[0].op == "conv2d" and m.steps[-1].op == "linear"


def test_a_layer_too_large_for_the_tiles_memory_is_refused_before_any_run():
    from tilelab.net.backends import ExecutionError, TileBackend
    from tilelab.net.lowering import plan_steps
    from tilelab.pe_models.config import DEFAULT_TILE

    steps = plan_steps(get_model("alexnet"))
    with pytest.raises(ExecutionError, match=r"^step 'fc6' \(linear\): the layer needs 37868928 bytes of external "
                                             r"memory \(input 9216, weights 37748736, output 4096, program 41024\); "
                                             r"the tile has 4194304$"):
        TileBackend(DEFAULT_TILE).check(steps)
