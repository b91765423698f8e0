"""The other seed architectures (--model convnext_tiny / efficientnet_b7) through the same converters.

The kit's references (models.app_reference) at small inputs to keep the suite short; the drift of each
precision at the published sizes is measured by benchmarks/zoo.sh (benchmarks/zoo.md)."""

import pytest

from converters import onnx as onnx_conv
from converters import tflite
from converters.source import load_application
from edge import profile as op_profile
from edge.errors import WeightsError, run_cli
from edge.runtime import load


@pytest.mark.parametrize("module, fmt", [(tflite, "tflite"), (onnx_conv, "onnx")])
def test_convnext_tiny_converts(tmp_path, capsys, module, fmt):
    # ONNX: TensorFlow writes exact GELU with erfc, which ONNX lacks; the exporter rewrites it with erf
    out = tmp_path / f"convnext.{fmt}"
    assert run_cli(module.main, ["--model", "convnext_tiny", "--input-size", "64", "--out", str(out)]) == 0
    assert "top-1 agreement 100.00%" in capsys.readouterr().out
    runner = load(out)
    meta = runner.metadata
    assert runner.input.shape[1:] == (64, 64, 3) and runner.output.shape[-1] == 11  # ONNX: dynamic batch
    assert meta["model"]["name"] == "convnext_tiny" and meta["model"]["flavour"] == "keras.applications"
    assert meta["preprocessing"]["normalize_in_model"] is True and meta["preprocessing"]["interpolation"] == "bicubic"
    assert meta["weights"]["description"].startswith("the kit's reference") and meta["model"]["macs"] > 1e8
    assert meta["labels"][0] == "astronaut" and meta["drift"]["reference_accuracy"] is not None
    assert meta["drift"]["within_budget"]
    if fmt == "tflite":  # its 7x7 depthwise convs (written as grouped ones) reach XNNPACK in bands of 3 and 1 rows
        assert len(meta["depthwise_bands"]["layers"]) == 18 and meta["depthwise_bands"]["max_taps"] == 25
        profile = op_profile.profile(out, runs=1, warmup=0)
        kinds = profile.by_kind()
        assert kinds["DEPTHWISE_CONV_2D 3x7"]["count"] == 36 and kinds["DEPTHWISE_CONV_2D 1x7"]["count"] == 18
        assert not any("grouped" in kind or "7x7" in kind for kind in kinds)
        # its Dense layers on 4-D maps convert to RESHAPEs with computed shapes around FULLY_CONNECTED: profiled
        # at the sizes a run gives them, every MAC of the model is found
        assert sum(op.macs for op in profile.ops) == meta["model"]["macs"]


def test_efficientnet_b7_at_its_published_size_and_as_features():
    source = load_application("efficientnet_b7", num_classes=1000, log=lambda m: None)
    assert source.model.input_shape == (None, 600, 600, 3) and source.model.output_shape == (None, 1000)
    assert source.preprocessing.crop_fraction == pytest.approx(600 / 632)
    features = load_application("efficientnet_b7", input_size=64, head="none", log=lambda m: None)
    assert features.model.output_shape == (None, 2560) and features.output_kind == "features"
    assert features.name == "efficientnet_b7_features" and features.labels == []


def test_weights_that_do_not_fit_are_refused(tmp_path):
    bad = tmp_path / "other.weights.h5"
    bad.write_bytes(b"not an HDF5 file")
    with pytest.raises(WeightsError, match="does not fit convnext_tiny"):
        load_application("convnext_tiny", bad, input_size=32, log=lambda m: None)
    with pytest.raises(WeightsError, match="does not exist"):
        load_application("convnext_tiny", tmp_path / "missing.weights.h5", input_size=32, log=lambda m: None)


def test_efficientnet_b7_exports_to_onnx_with_its_normalization_statistics():
    # Its input Normalization holds mean and variance as weights; the exporter makes them constants and must
    # still give every other layer its own weights
    import numpy as np
    import onnxruntime as ort

    from converters.onnx_export import INPUT_NAME, to_onnx

    source = load_application("efficientnet_b7", input_size=64, head="none", log=lambda m: None)
    session = ort.InferenceSession(to_onnx(source.model).SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    got, want = session.run(None, {INPUT_NAME: x})[0], source.predict(x)
    assert got.shape == (2, 2560)
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()
