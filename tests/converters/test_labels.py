"""Which labels a reference gets: --labels, the checkpoint's card, ImageNet-1k's names for 1000 classes, or class_N."""

import pytest

from converters.source import load_source
from edge.errors import ConfigError
from models.labels import imagenet_labels


def test_a_1000_class_model_gets_imagenet_names_said_in_one_line():
    said = []
    reference = load_source("400mf", weights=None, num_classes=1000, input_size=64, log=said.append)
    assert reference.labels == imagenet_labels()
    assert reference.labels[0] == "tench" and reference.labels[999] == "toilet tissue"
    assert sum("ImageNet-1k class names" in line for line in said) == 1


def test_labels_override_and_other_class_counts(tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\n")
    given = load_source("400mf", weights=None, labels_path=labels, input_size=64, log=lambda m: None)
    assert given.labels == ["cat", "dog"]
    said = []
    assert load_source("400mf", weights=None, num_classes=3, input_size=64, log=said.append).labels == [
        "class_0", "class_1", "class_2"]
    assert not any("ImageNet" in line for line in said)


def test_a_labels_file_of_the_wrong_length_is_one_line(tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\n")
    with pytest.raises(ConfigError, match="2 labels but the model has 1000 classes"):
        load_source("400mf", weights=None, num_classes=1000, labels_path=labels, input_size=64, log=lambda m: None)
