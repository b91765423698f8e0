"""Loading the ConvNeXt-Tiny / EfficientNet-B7 references: stored as a difference from the seeded network,
checked against that network's fingerprint, and loaded by the converters by default.
(How they are built: tests/training/test_app_reference.py.)"""

import json

import pytest

from edge.errors import WeightsError
from models import app_reference as ref
from tests.training.app_fixtures import SMALL, conditioned_with_random_head, write_difference
from training.app_reference import preprocessing
from training.cards import MIN_HELDOUT_TOP1, heldout_top1


def test_a_reference_made_on_another_backbone_is_refused(tmp_path):
    model = conditioned_with_random_head()
    path, card = write_difference(tmp_path, model)
    with pytest.raises(WeightsError, match="seeded backbone this reference was made on differs"):
        ref.apply(ref.seeded("convnext_tiny", 11, SMALL), path, card | {"backbone_sha256": "0" * 64})
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(WeightsError, match="not a readable safetensors file"):
        ref.apply(ref.seeded("convnext_tiny", 11, SMALL), bad, card)


def test_the_committed_reference_is_the_converters_default_and_classifies_the_photographs():
    name = "convnext_tiny"  # EfficientNet-B7 has none: its probe stays under the bar (training.app_reference)
    from calibration.photos import class_names
    from converters.source import load_application

    card = json.loads(ref.checkpoint_path(name).with_suffix(".json").read_text())
    assert card["labels"] == class_names() and card["heldout_top1"] >= MIN_HELDOUT_TOP1
    assert ref.reference_card(name) == card
    lines = []
    source = load_application(name, input_size=SMALL, log=lines.append)
    assert source.labels == card["labels"] and source.model.output_shape == (None, 11)
    assert source.weights["description"].startswith("the kit's reference") and "not ImageNet" in lines[0]
    full = load_application(name, log=lambda m: None)  # at its published size, on 44 held-out crops
    size = full.model.input_shape[1]
    assert heldout_top1(full.model, card["labels"], 4, preprocessing(name, size), batch_size=8) >= MIN_HELDOUT_TOP1 - 0.1
    random = load_application(name, num_classes=1000, input_size=SMALL, log=lines.append)
    said = lines[-2:]  # the weights, then the labels: a 1000-class model gets ImageNet-1k's names
    assert random.weights["description"].startswith("random") and "RANDOM" in said[0]
    assert said[1].startswith("labels: ImageNet-1k") and random.labels[0] == "tench"
