"""`--head none`: the reference cut before its classifier, converted and validated by cosine similarity."""

import numpy as np
import pytest

from converters import onnx as onnx_conv
from converters import tflite
from converters.source import load_source
from edge.classifier import Classifier
from edge.runtime import load
from edge.tflite_file import ModelFileError
from tests.artifacts import plan


@pytest.fixture(scope="module")
def features_source():
    return load_source(head="none", log=lambda m: None)


def test_feature_extractor_outputs_pooled_features(features_source, source, validation):
    assert features_source.name == "regnety_200mf_features" and features_source.labels == []
    assert features_source.model.output_shape == (None, 368)  # RegNetY-200MF's last stage width
    # the same weights as the classifier: its logits are the head applied to these features
    feats = features_source.predict(validation.inputs[:8])
    kernel, bias = source.model.layers[-1].get_weights()
    np.testing.assert_allclose(feats @ kernel + bias, source.predict(validation.inputs[:8]), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("module, fmt", [(tflite, "tflite"), (onnx_conv, "onnx")])
def test_feature_extractor_converts_within_its_cosine_budget(features_source, validation, tmp_path, module, fmt):
    out = tmp_path / f"features.{fmt}"
    p = plan(out, "float32", "xnnpack" if fmt == "tflite" else "onnx", features=True)
    result = module.convert(features_source, p, validation, log=lambda m: None)
    assert result.violations == [] and result.drift.cosine_min > 0.99999
    runner = load(out)
    assert runner.output.shape[-1] == 368
    assert runner.metadata["io"]["output_kind"] == "features" and runner.metadata["labels"] == []
    assert runner.metadata["model"]["head"] is False
    assert runner.metadata["drift"]["budget"]["min_cosine"] == 0.99999
    if fmt == "onnx":
        assert runner.output.name == "features"
    with pytest.raises(ModelFileError, match="feature extractor"):
        Classifier(out)


def test_unknown_head_is_refused():
    from edge.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown head"):
        load_source(head="pooled", log=lambda m: None)
