"""The RegNetY design space: stages from the paper's rule, and the built models' parameters and MACs."""

import numpy as np
import pytest

from edge.errors import ConfigError
from models.complexity import complexity
from models.regnety import DesignParams, block_widths, stage_plan
from models.zoo import VARIANTS, build_model, model_spec

# From the paper / pycls / timm (DESIGN.md).
EXPECTED_STAGES = {
    "200mf": ([1, 1, 4, 7], [24, 56, 152, 368]),
    "400mf": ([1, 3, 6, 6], [48, 104, 208, 440]),
    "600mf": ([1, 3, 7, 4], [48, 112, 256, 608]),
    "800mf": ([1, 3, 8, 2], [64, 128, 320, 768]),
}
# Trainable parameters (1000 classes) and GMACs at 224 as published for the pycls/timm models.
PUBLISHED = {
    "200mf": (3.16e6, 0.20), "400mf": (4.34e6, 0.41), "600mf": (6.06e6, 0.61),
    "800mf": (6.26e6, 0.81), "1.6gf": (11.20e6, 1.63), "3.2gf": (19.44e6, 3.20),
}


@pytest.mark.parametrize("variant", EXPECTED_STAGES)
def test_stage_plan_matches_the_paper(variant):
    stages = stage_plan(VARIANTS[variant])
    depths, widths = EXPECTED_STAGES[variant]
    assert [s.depth for s in stages] == depths
    assert [s.width for s in stages] == widths
    assert sum(depths) == VARIANTS[variant].depth
    assert all(s.width % s.group_width == 0 and s.groups == s.width // s.group_width for s in stages)


def test_quantized_linear_rule_by_hand():
    # 200MF: u_j = 24 + 36.44 j; e_j = round(log(u_j/24)/log(2.49)); w_j = round(24 * 2.49^e_j / 8) * 8
    p = VARIANTS["200mf"]
    expected = []
    for j in range(p.depth):
        e = np.round(np.log((24 + 36.44 * j) / 24) / np.log(2.49))
        expected.append(int(np.round(24 * 2.49**e / 8) * 8))
    assert block_widths(p) == expected
    assert expected[:3] == [24, 56, 152]


def test_group_width_is_capped_by_the_stage_width():
    stages = stage_plan(DesignParams(w0=8, wa=8.0, wm=2.0, depth=3, group_width=64))
    assert stages[0].group_width == stages[0].width == 8  # min(g, w)
    assert all(s.groups >= 1 for s in stages)


@pytest.mark.parametrize("variant", PUBLISHED)
def test_params_and_macs_counted_from_the_built_model(variant):
    params, gmacs = PUBLISHED[variant]
    cx = complexity(build_model(model_spec(variant)))
    assert cx.trainable_params == pytest.approx(params, rel=0.005)
    assert cx.macs / 1e9 == pytest.approx(gmacs, rel=0.02)


def test_macs_follow_the_input_size():
    small = complexity(build_model(model_spec("200mf", input_size=128))).macs
    large = complexity(build_model(model_spec("200mf", input_size=256))).macs
    # Every feature map doubles on each side (128 -> 64 ... 4 vs 256 -> 128 ... 8), so spatial convs do 4x
    # the work; the SE 1x1 convs and the classifier run once per image and stay the same.
    assert 3.9 < large / small < 4.0


def test_head_classes_and_pooled_features():
    model = build_model(model_spec("200mf", num_classes=10))
    assert model.output.shape[-1] == 10
    features = build_model(model_spec("200mf", include_head=False))
    assert tuple(features.output.shape) == (None, 368)
    assert not any(layer.name == "head_fc" for layer in features.layers)


def test_non_square_input_and_paper_padding():
    model = build_model(model_spec("200mf", input_size=(256, 192), include_head=False))
    stem = model.get_layer("stem_conv").output.shape
    assert tuple(stem[1:3]) == (128, 96)  # PyTorch pads the stride-2 stem 1/1: ceil(H / 2)


def test_normalization_inside_the_model_is_the_same_function():
    plain = build_model(model_spec("200mf", input_size=64))
    inside = build_model(model_spec("200mf", input_size=64, normalize_in_model=True))
    assert len(inside.weights) == len(plain.weights)  # the normalization constants are not weights
    inside.set_weights(plain.get_weights())
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    spec = model_spec("200mf", input_size=64).preprocessing
    normalized = (pixels / 255.0 - np.array(spec.mean, np.float32)) / np.array(spec.std, np.float32)
    np.testing.assert_allclose(inside.predict(pixels, verbose=0), plain.predict(normalized, verbose=0),
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("bad", [dict(variant="900mf"), dict(variant="200mf", flavour="tfhub"),
                                 dict(variant="1.6gf", flavour="seed"), dict(variant="200mf", num_classes=0),
                                 dict(variant="200mf", input_size=16)])
def test_bad_names_and_options_list_the_valid_ones(bad):
    with pytest.raises(ConfigError) as err:
        model_spec(**bad)
    message = str(err.value)
    if "variant" in bad and bad.get("flavour") is None and bad["variant"] == "900mf":
        assert "200mf" in message and "3.2gf" in message
    if bad.get("flavour") == "tfhub":
        assert "paper" in message and "seed" in message
    if bad.get("flavour") == "seed":
        assert "800mf" in message


def test_macs_count_the_layers_of_nested_models():
    # Keras 3's ConvNeXt nests its stem and downsampling convs in Sequential models
    import keras
    from keras import layers

    from models.complexity import count_macs

    inputs = keras.Input((8, 8, 3))
    stem = keras.Sequential([layers.Conv2D(4, 2, strides=2), layers.LayerNormalization()])
    outputs = layers.Dense(5)(layers.GlobalAveragePooling2D()(layers.DepthwiseConv2D(3, padding="same")(stem(inputs))))
    assert count_macs(keras.Model(inputs, outputs)) == 4 * 4 * (2 * 2 * 3 * 4) + 4 * 4 * (3 * 3 * 4) + 4 * 5
