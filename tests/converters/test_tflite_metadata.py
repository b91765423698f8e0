"""The standard TFLite Metadata the kit writes, read back with MediaPipe's generated schema module (a reader the
kit did not write): fields, normalization in the input tensor's own scale, packed labels, determinism, bad input.
The end-to-end check with MediaPipe's ImageClassifier is tests/consumers/test_mediapipe.py."""

import importlib.util
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from converters import tflite_metadata
from converters.metadata import embed_tflite
from edge.errors import ConversionError
from edge.preprocessing import PreprocessSpec
from edge.tflite_file import METADATA_NAME, metadata_buffers
from tests.helpers import require


def _schema():
    """MediaPipe's generated metadata schema module, loaded as a file (importing the mediapipe package would load its
    native libraries, which do not share a process with torch)."""
    require("mediapipe", "the independent reader of the standard metadata")
    root = Path(importlib.util.find_spec("mediapipe").submodule_search_locations[0])
    spec = importlib.util.spec_from_file_location("_mp_metadata_schema",
                                                  root / "tasks" / "metadata" / "metadata_schema_py_generated.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def record(labels=("cat", "dog", "fish"), *, input_q=None, output_q=None, features=False, in_model=False):
    inp = {"name": "x", "shape": [1, 8, 8, 3], "dtype": "float32"}
    out = {"name": "y", "shape": [1, len(labels) if not features else 4], "dtype": "float32"}
    if input_q:
        inp.update(dtype=input_q[0], scale=input_q[1], zero_point=input_q[2])
    if output_q:
        out.update(dtype=output_q[0], scale=output_q[1], zero_point=output_q[2])
    return {"model": {"name": "tiny", "num_classes": len(labels)}, "labels": [] if features else list(labels),
            "preprocessing": PreprocessSpec(8, 8, normalize_in_model=in_model).to_dict(), "precision": "float32",
            "io": {"input": inp, "output": out, "output_kind": "features" if features else "logits"},
            "versions": {"regnety-edge-kit": "0.1.0"}, "weights": {"path": "w.safetensors", "description": "timm"}}


@pytest.fixture(scope="module")
def tiny_model():
    import keras

    from converters.tflite_converter import to_tflite

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inputs))
    return to_tflite(keras.Model(inputs, keras.layers.Dense(3)(x)), "float32")


def read(data: bytes, schema):
    buffer = metadata_buffers(data)[tflite_metadata.BUFFER_NAME]
    assert schema.ModelMetadata.ModelMetadataBufferHasIdentifier(buffer, 0)
    return schema.ModelMetadataT.InitFromPackedBuf(bytearray(buffer), 0)


def test_fields_and_labels_read_back(tiny_model):
    schema = _schema()
    rec = record()
    data = embed_tflite(tiny_model, rec, tflite_metadata.from_record(rec))
    meta = read(data, schema)
    assert (meta.name, meta.version, meta.author) == (b"tiny", b"0.1.0", b"regnety-edge-kit")
    assert b"not known to the kit" in meta.license
    graph = meta.subgraphMetadata[0]
    image, logits = graph.inputTensorMetadata[0], graph.outputTensorMetadata[0]
    assert image.content.contentPropertiesType == schema.ContentProperties.ImageProperties
    assert image.content.contentProperties.colorSpace == schema.ColorSpaceType.RGB
    unit = image.processUnits[0]
    assert unit.optionsType == schema.ProcessUnitOptions.NormalizationOptions
    # ImageNet's mean and std in [0, 1] units, in the 0..255 pixel scale of the schema
    np.testing.assert_allclose(unit.options.mean, np.array([0.485, 0.456, 0.406]) * 255, rtol=1e-6)
    np.testing.assert_allclose(unit.options.std, np.array([0.229, 0.224, 0.225]) * 255, rtol=1e-6)
    np.testing.assert_allclose(image.stats.min, (0 - np.array(unit.options.mean)) / unit.options.std, rtol=1e-6)
    assert logits.associatedFiles[0].name == b"labels.txt"
    assert logits.associatedFiles[0].type == schema.AssociatedFileType.TENSOR_AXIS_LABELS
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert archive.read("labels.txt").decode().splitlines() == ["cat", "dog", "fish"]
    assert json.loads(metadata_buffers(data)[METADATA_NAME]) == rec  # the kit's record beside it


def test_quantized_input_gets_normalization_in_its_own_scale(tiny_model):
    schema = _schema()
    # uint8 input holding q = x / scale + zero_point of the ImageNet-normalized x
    scale, zero = 0.0187, 114
    meta = read(embed_tflite(tiny_model, rec := record(input_q=("uint8", scale, zero), output_q=("int8", 0.1, -3)),
                             tflite_metadata.from_record(rec)), schema)
    image = meta.subgraphMetadata[0].inputTensorMetadata[0]
    mean, std = np.array(image.processUnits[0].options.mean), np.array(image.processUnits[0].options.std)
    pixels = np.array([0.0, 100.0, 255.0])[:, None]
    expected = (pixels / 255 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225]) / scale + zero
    np.testing.assert_allclose((pixels - mean) / std, expected, rtol=1e-5)
    stats = meta.subgraphMetadata[0].outputTensorMetadata[0].stats
    np.testing.assert_allclose([stats.min[0], stats.max[0]], [(-128 + 3) * 0.1, (127 + 3) * 0.1], rtol=1e-6)


def test_raw_pixels_need_one_value_or_none(tiny_model):
    schema = _schema()
    raw_float = read(embed_tflite(tiny_model, rec := record(in_model=True), tflite_metadata.from_record(rec)), schema)
    options = raw_float.subgraphMetadata[0].inputTensorMetadata[0].processUnits[0].options
    assert (list(options.mean), list(options.std)) == ([0.0], [1.0])  # one value: MediaPipe runs only that
    raw_uint8 = read(embed_tflite(tiny_model, rec := record(in_model=True, input_q=("uint8", 1.0, 0)),
                                  tflite_metadata.from_record(rec)), schema)
    assert raw_uint8.subgraphMetadata[0].inputTensorMetadata[0].processUnits is None


def test_feature_extractors_get_no_labels(tiny_model):
    schema = _schema()
    rec = record(features=True)
    data = embed_tflite(tiny_model, rec, tflite_metadata.from_record(rec))
    output = read(data, schema).subgraphMetadata[0].outputTensorMetadata[0]
    assert output.associatedFiles is None and output.name == b"features"
    assert not zipfile.is_zipfile(io.BytesIO(data))


def test_deterministic_loadable_and_replaced_on_reembedding(tiny_model, tmp_path):
    from edge.runtime import load

    rec = record()
    once = embed_tflite(tiny_model, rec, tflite_metadata.from_record(rec))
    assert once == embed_tflite(tiny_model, rec, tflite_metadata.from_record(rec))
    again = embed_tflite(once, rec, tflite_metadata.from_record(rec))  # re-embedding drops the earlier zip and entry
    assert again == once
    path = tmp_path / "m.tflite"
    path.write_bytes(once)
    assert load(path).run(np.zeros((1, 8, 8, 3), np.float32)).shape == (1, 3)


def test_bad_labels_and_oversized_metadata_are_refused(tiny_model):
    rec = record()
    rec["labels"] = ["cat", "dog"]
    with pytest.raises(ConversionError, match="2 labels for a model with 3 outputs"):
        tflite_metadata.from_record(rec)
    rec = record(labels=tuple("x" * 4000 + str(i) for i in range(3)))
    meta = tflite_metadata.from_record(rec)
    huge = tflite_metadata.StandardMetadata(**{**meta.__dict__, "labels": tuple("y" * 10_000 + str(i)
                                                                                 for i in range(1000))})
    with pytest.raises(ConversionError, match="standard metadata would take"):
        embed_tflite(tiny_model, rec, huge)


def test_the_edge_reader_and_inspect_show_it(tiny_model, tmp_path):
    from converters.inspect import _standard_line, inspect_tflite
    from edge.tflite_file import standard_metadata

    rec = record()
    path = tmp_path / "m.tflite"
    path.write_bytes(embed_tflite(tiny_model, rec, tflite_metadata.from_record(rec)))
    seen = standard_metadata(path.read_bytes())
    assert seen["name"] == "tiny" and seen["associated_files"] == seen["packed"] == ["labels.txt"]
    np.testing.assert_allclose(seen["normalization"]["mean"], np.array([0.485, 0.456, 0.406]) * 255, rtol=1e-6)
    assert standard_metadata(tiny_model) is None
    line = _standard_line(inspect_tflite(path)["standard_metadata"])
    assert line.startswith("standard metadata: tiny; input (pixel - [123.675") and line.endswith("labels.txt")
