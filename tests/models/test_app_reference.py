"""The ConvNeXt-Tiny / EfficientNet-B7 references: stored as a difference from the seeded network,
checked against that network's fingerprint, and loaded by the converters by default."""

import json

import numpy as np
import pytest

from edge.errors import KitError, WeightsError
from models import app_reference as ref

SMALL = 64  # the backbone's weights do not depend on the input size


def _conditioned_with_random_head(name="convnext_tiny"):
    model = ref.seeded(name, 11, SMALL)
    ref.condition(model, name, np.zeros((1, SMALL, SMALL, 3), np.float32), log=lambda m: None)
    head = model.layers[-1]
    rng = np.random.default_rng(1)
    head.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in head.get_weights()])
    return model


def _write(tmp_path, model, name="convnext_tiny"):
    from safetensors.numpy import save_file

    tensors = ref.stored_tensors(model, name)
    path = tmp_path / "ref.safetensors"
    save_file(tensors, str(path))
    return path, {"model": name, "backbone_sha256": ref.fingerprint(model, set(tensors))}


def test_only_the_conditioned_and_trained_tensors_are_stored_and_they_rebuild_the_model(tmp_path):
    model = _conditioned_with_random_head()
    path, card = _write(tmp_path, model)
    stored = ref.stored_tensors(model, "convnext_tiny")
    # 18 layer scales + the head's kernel and bias; the 28M backbone weights come back from the seed
    assert len(stored) == 20 and sum(v.size for v in stored.values()) == 6624 + 768 * 11 + 11
    assert all(np.all(v == ref.LAYER_SCALE) for k, v in stored.items() if "layer_scale" in k)
    rebuilt = ref.seeded("convnext_tiny", 11, SMALL)
    x = np.random.default_rng(0).uniform(0, 255, (2, SMALL, SMALL, 3)).astype(np.float32)
    assert not np.allclose(rebuilt.predict(x, verbose=0), model.predict(x, verbose=0))
    ref.apply(rebuilt, path, card)
    np.testing.assert_array_equal(rebuilt.predict(x, verbose=0), model.predict(x, verbose=0))


def test_a_reference_made_on_another_backbone_is_refused(tmp_path):
    model = _conditioned_with_random_head()
    path, card = _write(tmp_path, model)
    with pytest.raises(WeightsError, match="seeded backbone this reference was made on differs"):
        ref.apply(ref.seeded("convnext_tiny", 11, SMALL), path, card | {"backbone_sha256": "0" * 64})
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(WeightsError, match="not a readable safetensors file"):
        ref.apply(ref.seeded("convnext_tiny", 11, SMALL), bad, card)


def test_batch_norm_statistics_become_those_of_the_crops():
    import keras

    model = ref.seeded("efficientnet_b7", 11, SMALL)
    bn = next(layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization))
    assert np.all(bn.moving_variance.numpy() == 1)  # the untrained statistics
    x = np.random.default_rng(0).uniform(0, 255, (2, SMALL, SMALL, 3)).astype(np.float32)
    ref.condition(model, "efficientnet_b7", x, log=lambda m: None)
    # the first BN's statistics are now exactly those of its input (the stem conv's output) on x
    stem = keras.Model(model.inputs, model.get_layer(bn.name).input).predict(x, verbose=0)
    np.testing.assert_allclose(bn.moving_mean.numpy(), stem.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(bn.moving_variance.numpy(), stem.var(axis=(0, 1, 2)), rtol=1e-3)
    assert bn.momentum == 0.99 and all(d.rate > 0 for d in model.layers if isinstance(d, keras.layers.Dropout))


def test_an_untrained_head_is_not_saved(tmp_path):
    model = _conditioned_with_random_head()
    out = tmp_path / "weak.safetensors"
    config = ref.ProbeConfig(heldout_per_class=1)
    from calibration.photos import class_names

    with pytest.raises(KitError, match="nothing saved"):
        ref.save(model, "convnext_tiny", class_names(), "test", config, out, log=lambda m: None)
    assert list(tmp_path.iterdir()) == []


def test_the_committed_reference_is_the_converters_default_and_classifies_the_photographs():
    name = "convnext_tiny"  # EfficientNet-B7 has none: its probe stays under the bar (module docstring)
    from calibration.photos import class_names
    from converters.source import load_application

    card = json.loads(ref.checkpoint_path(name).with_suffix(".json").read_text())
    assert card["labels"] == class_names() and card["heldout_top1"] >= ref.MIN_HELDOUT_TOP1
    lines = []
    source = load_application(name, input_size=SMALL, log=lines.append)
    assert source.labels == card["labels"] and source.model.output_shape == (None, 11)
    assert source.weights["description"].startswith("the kit's reference") and "not ImageNet" in lines[0]
    full = load_application(name, log=lambda m: None)  # at its published size, on 44 held-out crops
    assert ref.heldout_top1(full.model, name, card["labels"], 4) >= ref.MIN_HELDOUT_TOP1 - 0.1
    random = load_application(name, num_classes=1000, input_size=SMALL, log=lines.append)
    assert random.weights["description"].startswith("random") and "RANDOM" in lines[-1]
