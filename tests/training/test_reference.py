"""Training the RegNetY-200MF reference: its card (written by the one card writer) and its CLI."""

import json

import numpy as np
import pytest

from calibration.photos import class_names
from edge.errors import KitError, run_cli
from models.reference import card_path, read_card
from models.weights import read_state_dict
from training import reference as train
from training.cards import MIN_HELDOUT_TOP1, TASK, require_bar


def test_save_writes_float16_weights_and_a_card_that_names_the_training_command(tmp_path):
    from models.zoo import build_model

    classes = class_names()
    model = build_model(train._spec(224, len(classes)))
    out = tmp_path / "ref.safetensors"
    config = train.TrainConfig(heldout_per_class=1, seed=3)
    top1 = train.save(model, classes, config, out)
    card = read_card(out)
    assert card == json.loads(card_path(out).read_text()) and card["heldout_top1"] == round(top1, 4)
    assert card["task"] == TASK and card["labels"] == classes and card["heldout_crops"] == len(classes)
    assert card["command"] == f"python -m training.reference --out {out} --seed 3"
    assert {v.dtype for v in read_state_dict(out).values()} == {np.dtype(np.float16)}


def test_a_reference_under_the_bar_is_refused():
    require_bar(MIN_HELDOUT_TOP1, "unused")
    with pytest.raises(KitError, match="under 0.9; nothing saved; train longer"):
        require_bar(MIN_HELDOUT_TOP1 - 0.01, "train longer")


def test_the_cli_refuses_a_wrong_suffix_in_one_line(capsys):
    assert run_cli(train.main, ["--out", "x.h5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and ".safetensors" in err[0]
