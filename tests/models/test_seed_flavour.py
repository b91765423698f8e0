"""The seed TensorFlow implementation (TF Hub regnetyNNNmf_classification) as a flavour of the same code."""

import numpy as np
import pytest

from models.complexity import complexity
from models.zoo import build_model, model_spec

# The seed's published parameter counts (its README), in millions. They count every weight the Keras
# model holds (trainable + BatchNorm moving statistics), printed to two decimals by truncation:
# 4,058,874 weights read "4.05". We check the full count within 0.5%.
SEED_PUBLISHED = {"200mf": 3.23e6, "400mf": 4.05e6, "600mf": 6.21e6, "800mf": 6.50e6}


@pytest.mark.parametrize("variant", SEED_PUBLISHED)
def test_seed_parameter_counts(variant):
    cx = complexity(build_model(model_spec(variant, "seed")))
    assert cx.total_params == pytest.approx(SEED_PUBLISHED[variant], rel=0.005)
    assert int(cx.total_params / 1e4) / 100 == SEED_PUBLISHED[variant] / 1e6  # truncated to 2 decimals


def test_seed_400mf_uses_its_own_depths():
    assert [s.depth for s in model_spec("400mf", "seed").stages] == [1, 3, 3, 6]
    assert [s.depth for s in model_spec("400mf", "paper").stages] == [1, 3, 6, 6]


def test_seed_layer_names_and_se_width():
    model = build_model(model_spec("200mf", "seed"))
    names = {layer.name for layer in model.layers}
    for part in ["conv1x1_1", "bn1x1_1", "conv3x3", "bn3x3", "conv1x1_2", "bn1x1_2", "conv_skip", "bn_skip",
                 "_squeeze_conv", "_excite_conv"]:
        assert f"Stage_0_YBlock_0_{part}" in names
    assert "Stage_3_YBlock_6__squeeze_conv" in names and "Head_fc" in names
    # SE width: seed int(out * 0.25) of the block output; paper round(in * 0.25) of the block input.
    seed_se = model.get_layer("Stage_1_YBlock_0__squeeze_conv").kernel.shape[-1]
    paper = build_model(model_spec("200mf"))
    paper_se = paper.get_layer("s2_b1_se_fc1").kernel.shape[-1]
    assert (seed_se, paper_se) == (int(56 * 0.25), round(24 * 0.25))


def test_seed_stem_is_valid_padded_and_input_resized_inside():
    model = build_model(model_spec("200mf", "seed", input_size=None, include_head=False))
    assert tuple(model.input.shape) == (None, None, None, 3)
    assert tuple(model.get_layer("Stem_conv3x3").output.shape[1:3]) == (111, 111)  # (224 - 3) // 2 + 1
    a = np.random.default_rng(0).uniform(0, 255, (1, 300, 200, 3)).astype(np.float32)
    assert model.predict(a, verbose=0).shape == (1, 368)  # any size in, resized to 224 inside


def test_seed_spec_says_resize_and_normalization_are_inside():
    pre = model_spec("800mf", "seed").preprocessing
    assert pre.resize_in_model and pre.normalize_in_model
    assert (pre.height, pre.width, pre.interpolation, pre.crop_fraction) == (224, 224, "bilinear", 1.0)
