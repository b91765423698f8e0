"""The committed reference checkpoint: loads through the kit's importer, its card is honest."""

import numpy as np

from calibration.photos import class_names
from models.reference import DEFAULT_CHECKPOINT, read_card
from models.weights import load_weights, read_state_dict, timm_state_dict
from models.zoo import build_model, model_spec
from training.cards import MIN_HELDOUT_TOP1, heldout_top1
from training.reference import preprocessing


def test_card_describes_the_checkpoint():
    card = read_card(DEFAULT_CHECKPOINT)
    assert card["labels"] == class_names() and card["num_classes"] == 11
    assert card["heldout_top1"] >= MIN_HELDOUT_TOP1
    assert DEFAULT_CHECKPOINT.stat().st_size < 8_000_000  # small enough to commit (float16)
    assert {v.dtype for v in read_state_dict(DEFAULT_CHECKPOINT).values()} == {np.dtype(np.float16)}


def test_held_out_accuracy_is_reproduced_from_the_file():
    model = build_model(model_spec("200mf", num_classes=11))
    load_weights(model, DEFAULT_CHECKPOINT)
    # A smaller held-out draw than the card's, recomputed here from the stored weights.
    assert heldout_top1(model, class_names(), per_class=8, spec=preprocessing(11)) >= MIN_HELDOUT_TOP1


def test_timm_state_dict_is_the_inverse_of_the_import():
    model = build_model(model_spec("200mf", num_classes=11))
    load_weights(model, DEFAULT_CHECKPOINT)
    exported = timm_state_dict(model)
    stored = read_state_dict(DEFAULT_CHECKPOINT)
    assert exported.keys() == stored.keys()
    for key, value in stored.items():
        np.testing.assert_array_equal(exported[key], value.astype(np.float32), err_msg=key)
