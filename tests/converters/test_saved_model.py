"""`--saved-model DIR`: TF Hub-style SavedModels converted directly, on SavedModels made here (no hub is
reachable): the kit's seed-flavour RegNetY (any input size, resized and normalized inside) exported
with a serving_default signature, as the TF Hub regnetyNNNmf modules are."""

import json

import pytest

from converters import onnx as onnx_conv
from converters import tflite
from converters.rewrite import traceable
from edge.errors import run_cli
from edge.runtime import load


def _export(module, path, signatures):
    import tensorflow as tf

    tf.saved_model.save(module, str(path), signatures=signatures)
    return path


@pytest.fixture(scope="module")
def hub_regnety(tmp_path_factory):
    """RegNetY-200MF, seed flavour, 10 classes, seeded random weights; its grouped convs are plain graph
    convolutions, as in the Keras 2 models TF Hub holds."""
    import keras
    import tensorflow as tf

    from models.zoo import build_model, model_spec

    keras.utils.set_random_seed(0)
    model = traceable(build_model(model_spec("200mf", "seed", input_size=None, num_classes=10)))

    class Hub(tf.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="inputs")])
        def serve(self, inputs):
            return {"logits": self.m(inputs, training=False)}

    hub = Hub(model)
    return _export(hub, tmp_path_factory.mktemp("hub") / "regnety200mf", {"serving_default": hub.serve})


@pytest.mark.parametrize("module, suffix", [(tflite, "tflite"), (onnx_conv, "onnx")])
def test_saved_model_converts_with_a_preset(hub_regnety, tmp_path, capsys, module, suffix):
    out = tmp_path / f"hub.{suffix}"
    argv = ["--saved-model", str(hub_regnety), "--preset", "regnety200mf-hub", "--out", str(out)]
    assert run_cli(module.main, argv) == 0
    assert "top-1 agreement 100.00%" in capsys.readouterr().out
    runner = load(out)
    meta = runner.metadata
    assert runner.output.shape[-1] == 10 and len(meta["labels"]) == 10
    assert meta["model"]["name"] == "regnety200mf-hub" and meta["model"]["flavour"] == "saved_model"
    assert meta["weights"]["description"].startswith("SavedModel") and len(meta["weights"]["sha256"]) == 64
    assert meta["preprocessing"]["normalize_in_model"] is True and meta["preprocessing"]["resize"] == "stretch"
    assert meta["drift"]["within_budget"] and meta["drift"]["sqnr_db"] > 100


def test_convert_json_to_stdout_is_the_written_record(hub_regnety, tmp_path, capsys):
    out = tmp_path / "hub.tflite"
    argv = ["--saved-model", str(hub_regnety), "--preset", "regnety200mf-hub", "--out", str(out), "--json", "-",
            "--val-size", "11"]
    assert run_cli(tflite.main, argv) == 0
    record = json.loads(capsys.readouterr().out)  # only the JSON on stdout
    assert record["path"] == str(out) and record["size_bytes"] == out.stat().st_size
    assert record["within_budget"] is True and record["metadata"] == load(out).metadata


def test_preprocessing_as_json_instead_of_a_preset(hub_regnety, tmp_path):
    spec = {"height": 160, "width": 160, "resize": "stretch", "crop_fraction": 1.0, "interpolation": "bilinear",
            "normalize_in_model": True, "resize_in_model": True}
    out = tmp_path / "hub160.tflite"
    argv = ["--saved-model", str(hub_regnety), "--preprocessing", json.dumps(spec), "--out", str(out)]
    assert run_cli(tflite.main, argv) == 0
    assert load(out).input.shape == (1, 160, 160, 3)


def _bad(kind, tmp_path):
    import tensorflow as tf

    module = tf.Module()
    if kind == "no_dir":
        return tmp_path / "nothing"
    if kind == "no_serving":
        module.f = tf.function(lambda x: {"y": x * 2}, input_signature=[tf.TensorSpec([None, 8, 8, 3], tf.float32)])
        return _export(module, tmp_path / "m", {"other": module.f})
    if kind == "two_inputs":
        module.f = tf.function(lambda a, b: {"y": a + b}, input_signature=[tf.TensorSpec([None, 8, 8, 3], tf.float32),
                                                                             tf.TensorSpec([None, 8, 8, 3], tf.float32)])
        return _export(module, tmp_path / "m", {"serving_default": module.f})
    module.f = tf.function(lambda x: {"y": x * 2}, input_signature=[tf.TensorSpec([None, 8, 3], tf.float32)])
    return _export(module, tmp_path / "m", {"serving_default": module.f})


@pytest.mark.parametrize("kind, message", [
    ("no_dir", "is not a SavedModel directory"),
    ("no_serving", "no serving_default signature (signatures found: other)"),
    ("two_inputs", "has 2 inputs"),
    ("rank3", "has rank 3"),
])
def test_bad_saved_models_are_named(kind, message, tmp_path, capsys):
    path = _bad(kind, tmp_path)
    argv = ["--saved-model", str(path), "--preset", "regnety200mf-hub", "--out", str(tmp_path / "x.tflite")]
    assert run_cli(tflite.main, argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[-1], err
    assert not (tmp_path / "x.tflite").exists()


@pytest.mark.parametrize("extra, message", [
    ([], "pass --preset"),
    (["--preset", "mobilenet"], "unknown preset"),
    (["--preset", "regnety200mf-hub", "--target", "portable"], "cannot be lowered to split"),
    (["--preset", "regnety200mf-hub", "--head", "none"], "do not apply"),
])
def test_saved_model_options_are_checked(hub_regnety, tmp_path, capsys, extra, message):
    argv = ["--saved-model", str(hub_regnety), "--out", str(tmp_path / "x.tflite"), *extra]
    assert run_cli(tflite.main, argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[-1], err
