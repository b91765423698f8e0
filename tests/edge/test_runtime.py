"""The edge runtime: file checks before the native interpreter, metadata read back, quantized I/O,
and no TensorFlow import on the device side."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from converters.metadata import embed_tflite
from edge.runtime import RuntimeOptions, TensorInfo, dequantize, load, quantize
from edge.tflite_file import METADATA_NAME, ModelFileError, metadata_buffers, operator_codes, read_model_bytes


@pytest.fixture(scope="module")
def tiny_tflite(tmp_path_factory):
    import keras

    from converters.tflite_converter import to_tflite

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, groups=1)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(5)(x))
    path = tmp_path_factory.mktemp("tiny") / "tiny.tflite"
    path.write_bytes(embed_tflite(to_tflite(model, "float32"), {"labels": list("abcde"), "precision": "float32"}))
    return path, model


def test_metadata_is_embedded_read_back_and_replaced(tiny_tflite, tmp_path):
    path, _ = tiny_tflite
    data = path.read_bytes()
    entries = metadata_buffers(data)
    assert json.loads(entries[METADATA_NAME]) == {"labels": list("abcde"), "precision": "float32"}
    assert "min_runtime_version" in entries  # the converter's own entries survive
    again = embed_tflite(data, {"labels": ["z"]})
    assert json.loads(metadata_buffers(again)[METADATA_NAME]) == {"labels": ["z"]}
    assert list(metadata_buffers(again)).count(METADATA_NAME) == 1
    assert {code for code, _, _ in operator_codes(data)} >= {3}  # CONV_2D


def test_the_runner_matches_keras(tiny_tflite):
    path, model = tiny_tflite
    runner = load(path, RuntimeOptions(threads=1))
    assert runner.metadata["labels"] == list("abcde")
    x = np.random.default_rng(0).standard_normal((3, 8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(runner.run(x), model.predict(x, verbose=0), atol=1e-5)
    builtin = load(path, RuntimeOptions(threads=1, xnnpack=False))
    assert "builtin" in builtin.runtime
    np.testing.assert_allclose(builtin.run(x), runner.run(x), atol=1e-5)


@pytest.mark.parametrize("content, message", [
    (b"", "too small"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "not a .tflite model"),
])
def test_malformed_files_are_named(tmp_path, content, message):
    path = tmp_path / "bad.tflite"
    path.write_bytes(content)
    with pytest.raises(ModelFileError, match=message):
        load(path)


def test_truncated_tflite_is_refused_before_the_interpreter(tiny_tflite, tmp_path):
    path = tmp_path / "cut.tflite"
    path.write_bytes(tiny_tflite[0].read_bytes()[:600])
    with pytest.raises(ModelFileError, match="truncated|malformed|refused"):
        load(path)


def test_missing_unknown_and_broken_onnx_files(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        load(tmp_path / "none.tflite")
    (tmp_path / "m.pb").write_bytes(b"x")
    with pytest.raises(ModelFileError, match="unknown model type"):
        load(tmp_path / "m.pb")
    (tmp_path / "m.onnx").write_bytes(b"not a protobuf at all")
    with pytest.raises(ModelFileError, match="m.onnx: truncated or malformed ONNX model"):  # the kit's reader, first
        load(tmp_path / "m.onnx")
    with pytest.raises(ModelFileError, match="does not exist"):
        read_model_bytes(tmp_path / "nothing.tflite")


def test_quantize_dequantize_round_trip():
    info = TensorInfo("x", (1, 4), "int8", scale=0.5, zero_point=-3)
    x = np.array([[-100.0, -1.0, 0.26, 100.0]], np.float32)
    q = quantize(x, info)
    assert q.dtype == np.int8 and q.tolist() == [[-128, -5, -2, 127]]
    np.testing.assert_allclose(dequantize(q, info), [[-62.5, -1.0, 0.5, 65.0]])
    with pytest.raises(Exception, match="thread count"):
        RuntimeOptions(threads=0)


def test_edge_never_imports_tensorflow(tiny_tflite):
    code = textwrap.dedent(f"""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("tensorflow", "keras", "tf_keras"):
                    raise ImportError("blocked: " + name)
        sys.meta_path.insert(0, Block())
        import numpy as np
        from edge.runtime import load
        import edge.images, edge.preprocessing, edge.tflite_file, edge.atomic
        r = load({str(tiny_tflite[0])!r})
        print(r.run(np.zeros((1, 8, 8, 3), np.float32)).shape, r.metadata["labels"][0])
        assert not any(m.startswith(("tensorflow", "keras")) for m in sys.modules)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "(1, 5) a" in done.stdout


def test_a_folder_given_as_the_model_is_named_a_folder(tmp_path):
    for name in ("m.tflite", "m.onnx", "m"):
        (tmp_path / name).mkdir()
        with pytest.raises(ModelFileError, match="is a folder, not a model file"):
            load(tmp_path / name)


def test_an_interrupted_write_leaves_nothing_behind(tmp_path, monkeypatch):
    import os

    from edge.atomic import atomic_write

    def interrupt(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupt)
    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "m.tflite", b"data")
    assert list(tmp_path.iterdir()) == []


def test_inputs_of_another_shape_and_runtime_failures_are_one_line(tiny_tflite, monkeypatch):
    from edge.errors import KitError

    runner = load(tiny_tflite[0])
    with pytest.raises(KitError, match=r"tiny\.tflite takes 8x8x3 per input, not 4x4x3 images"):
        runner.run(np.zeros((1, 4, 4, 3), np.float32))

    def fail():
        raise RuntimeError("Input tensor 0 lacks data\nmore native detail")

    monkeypatch.setattr(runner._session, "invoke", fail)
    with pytest.raises(ModelFileError, match=r"the runtime failed running it \(Input tensor 0 lacks data\); the file "
                                             "may be damaged") as exc:
        runner.run(np.zeros((1, 8, 8, 3), np.float32))
    assert "\n" not in str(exc.value)


def test_onnx_runtime_s_fallback_banner_stays_off_stdout(tmp_path, monkeypatch, capfd):
    """ONNX Runtime prints "EP Error ... Falling back" with print() before it raises; `--json -` output must stay
    JSON, so the load keeps it off stdout and the error is one line."""
    import onnxruntime

    from tests.edge.test_inspect import _tiny_onnx

    def failing(*args, **kwargs):
        print("EP Error boom when using ['CPUExecutionProvider']")
        print("Falling back to ['CPUExecutionProvider'] and retrying.")
        raise RuntimeError("[ONNXRuntimeError] : 1 : FAIL : boom")

    path = tmp_path / "m.onnx"
    path.write_bytes(_tiny_onnx())
    monkeypatch.setattr(onnxruntime, "InferenceSession", failing)
    with pytest.raises(ModelFileError, match="ONNX Runtime refused the model .*boom"):
        load(path, guard=False)
    assert capfd.readouterr().out == ""
