"""Classifying with the converters' artifacts: same answers as the reference, clear errors."""

import json

import numpy as np
import pytest

from calibration.photos import bundled_photos, photo_crops
from edge import classify
from edge.classifier import Classifier
from edge.errors import run_cli
from edge.tflite_file import ModelFileError

CROPS = photo_crops("heldout", 2)  # 22 held-out crops, two per photograph


@pytest.mark.parametrize("key", [("tflite", "float32"), ("tflite", "int8"), ("onnx", "float32")])
def test_classifier_agrees_with_the_reference(converted, source, key):
    path, _ = converted(key[1], key[0])
    classifier = Classifier(path)
    assert classifier.labels == source.labels and classifier.spec == source.preprocessing
    crops = [s.load() for s in CROPS.samples]
    from edge.images import preprocess

    expected = source.predict(preprocess(crops, classifier.spec)).argmax(1)
    got = [classifier.classify(c, top=3).top[0].index for c in crops]
    agreement = np.mean(np.asarray(got) == expected)
    assert agreement == 1.0 if key[1] == "float32" else agreement >= 0.95
    batched = classifier.classify_many(crops, top=1, batch=8)
    assert [r.top[0].index for r in batched] == got  # batching changes nothing
    result = classifier.classify(crops[0], top=3)
    assert len(result.top) == 3 and result.top[0].probability >= result.top[1].probability
    assert sum(p.probability for p in result.top) <= 1.0 + 1e-6 and result.latency_ms > 0


def test_classify_cli_lines_json_and_folders(converted, capsys):
    path, _ = converted("float32")
    photos = bundled_photos()
    assert run_cli(classify.main, [str(photos.root), "--model", str(path), "--top", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 11
    for line, sample in zip(lines, photos.samples):
        assert line.split(": ")[1].startswith(sample.label + " ")  # every photograph recognised
    assert run_cli(classify.main, [str(photos.samples[0].path), "--model", str(path), "--json", "-"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data[0]["top"][0]["label"] == photos.samples[0].label and len(data[0]["top"]) == 5


def test_classify_cli_bad_input(converted, tmp_path, capsys):
    path, _ = converted("float32")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    (tmp_path / "empty").mkdir()
    cases = [
        ([str(tmp_path / "broken.jpg"), "--model", str(path)], "broken.jpg: not a readable image"),
        ([str(tmp_path / "empty"), "--model", str(path)], "holds no"),
        (["x.png", "--model", str(tmp_path / "missing.tflite")], "does not exist"),
        (["x.png", "--model", str(path), "--threads", "0"], "thread count must be at least 1"),
        (["x.png", "--model", str(tmp_path / "broken.jpg")], "unknown model type"),
    ]
    for argv, message in cases:
        assert run_cli(classify.main, argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err


def test_a_file_without_kit_metadata_is_refused(tmp_path):
    import keras

    from converters.tflite_converter import to_tflite

    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(inputs)))
    path = tmp_path / "plain.tflite"
    path.write_bytes(to_tflite(model, "float32"))
    with pytest.raises(ModelFileError, match="no kit metadata"):
        Classifier(path)
