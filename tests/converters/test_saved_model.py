"""`--saved-model DIR`: TF Hub-style SavedModels converted directly, on SavedModels made here (no hub is
reachable): the kit's seed-flavour RegNetY (any input size, resized and normalized inside) exported
with a serving_default signature, as the TF Hub regnetyNNNmf modules are; and a small grouped-conv
model written by Keras 3's `model.export`, whose grouped convs are XLA-compiled functions."""

import json

import numpy as np
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


KERAS3_SPEC = {"height": 32, "width": 32, "resize": "stretch", "crop_fraction": 1.0, "interpolation": "bilinear"}


def _keras3_grouped_model(resize_first=False):
    """Stem conv, a grouped conv of 4 groups, a strided grouped conv of 8 groups with bias, 10 logits; BN statistics
    set away from the identity. resize_first puts a Resizing layer first (it leaks training=True, see below)."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, None, 3) if resize_first else (32, 32, 3), name="image")
    x = layers.Resizing(32, 32)(inputs) if resize_first else inputs
    x = layers.ReLU()(layers.BatchNormalization()(layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False)(x)))
    x = layers.ReLU()(layers.BatchNormalization()(layers.Conv2D(16, 3, padding="same", groups=4, use_bias=False)(x)))
    x = layers.Conv2D(32, 3, strides=2, padding="same", groups=8)(x)
    model = keras.Model(inputs, layers.Dense(10)(layers.GlobalAveragePooling2D()(x)))
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.moving_mean.assign(rng.normal(0, 0.5, layer.moving_mean.shape))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, layer.moving_variance.shape))
    return model


@pytest.fixture(scope="module")
def keras3_grouped(tmp_path_factory):
    """A SavedModel written by Keras 3's model.export: each grouped conv an XLA-compiled function call."""
    path = tmp_path_factory.mktemp("keras3") / "grouped"
    _keras3_grouped_model().export(str(path), verbose=False)
    return path


def _onnx_argv(path, out, *extra):
    return ["--saved-model", str(path), "--preprocessing", json.dumps(KERAS3_SPEC), "--out", str(out), *extra]


@pytest.mark.parametrize("precision", ["float32", "int8"])
def test_keras3_saved_model_converts_to_onnx(keras3_grouped, tmp_path, capsys, precision):
    import onnx
    import tensorflow as tf

    from converters.saved_model import CALL_OPS

    loaded = tf.saved_model.load(str(keras3_grouped))
    library = loaded.signatures["serving_default"].graph.as_graph_def().library.function
    assert sum("_XlaMustCompile" in f.attr for f in library) == 2  # what tf2onnx alone cannot inline
    out = tmp_path / f"k3_{precision}.onnx"
    extra = ["--int8"] if precision == "int8" else []
    assert run_cli(onnx_conv.main, _onnx_argv(keras3_grouped, out, *extra)) == 0, capsys.readouterr().err
    proto = onnx.load(str(out))
    ops = [n.op_type for n in proto.graph.node]
    assert not set(ops) & set(CALL_OPS) and all(n.domain in ("", "ai.onnx") for n in proto.graph.node)
    groups = sorted(a.i for n in proto.graph.node if n.op_type == "Conv"
                    for a in n.attribute if a.name == "group" and a.i > 1)
    assert groups == [4, 8] and ops.count("Conv") == 3
    runner = load(out)
    meta = runner.metadata
    assert meta["grouped_conv_nodes"] == 2 and meta["drift"]["within_budget"]
    if precision == "int8":
        assert {"QuantizeLinear", "DequantizeLinear"} <= set(ops) and meta["drift"]["sqnr_db"] > 25
        return
    assert meta["drift"]["top1_agreement"] == 1.0 and meta["drift"]["sqnr_db"] > 100
    # Independently of the pipeline: the file against the SavedModel's own serving function, batch of 5.
    images = np.random.default_rng(1).normal(0, 1, (5, 32, 32, 3)).astype(np.float32)
    expected = np.asarray(loaded.signatures["serving_default"](image=tf.constant(images))["output_0"])
    got = runner.run(images)
    assert np.abs(got - expected).max() <= 1e-4 * (expected.max() - expected.min())


def test_keras3_saved_model_onnx_is_deterministic(keras3_grouped):
    # As test_convert's ONNX determinism test: separate processes, different string hashing.
    import hashlib
    import os
    import subprocess
    import sys

    code = ("import sys, hashlib; from converters.saved_model import load_saved_model; "
            "from converters.onnx_export import to_onnx; from edge.preprocessing import PreprocessSpec; "
            f"spec = PreprocessSpec.from_json({json.dumps(json.dumps(KERAS3_SPEC))}); "
            "ref = load_saved_model(sys.argv[1], spec, log=lambda m: None); "
            "print(hashlib.sha256(to_onnx(ref.function).SerializeToString()).hexdigest())")
    digests = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "TF_CPP_MIN_LOG_LEVEL": "3"}
        done = subprocess.run([sys.executable, "-c", code, str(keras3_grouped)], capture_output=True, text=True,
                              env=env, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        digests.append(done.stdout.strip().splitlines()[-1])
    assert digests[0] == digests[1] and len(digests[0]) == len(hashlib.sha256().hexdigest())


def test_a_saved_model_traced_in_training_mode_is_refused(tmp_path, capsys):
    # Keras 3: a Resizing layer's call defaults to training=True and leaks it to the layers after it, so
    # model.export traces BatchNormalization with batch statistics and moving-average updates.
    path = tmp_path / "resize_first"
    _keras3_grouped_model(resize_first=True).export(str(path), verbose=False)
    out = tmp_path / "x.onnx"
    assert run_cli(onnx_conv.main, _onnx_argv(path, out)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "writes variables when called" in err[-1] and "training=False" in err[-1], err
    assert not out.exists()
