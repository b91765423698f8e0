"""Building the ConvNeXt-Tiny / EfficientNet-B7 references: what is conditioned, what is stored, the bar."""

import numpy as np
import pytest

from edge.errors import KitError
from models.app_reference import apply, seeded
from tests.training.app_fixtures import SMALL, conditioned_with_random_head, write_difference
from training import app_reference as build


def test_only_the_conditioned_and_trained_tensors_are_stored_and_they_rebuild_the_model(tmp_path):
    model = conditioned_with_random_head()
    path, card = write_difference(tmp_path, model)
    stored = build.stored_tensors(model, "convnext_tiny")
    # 18 layer scales + the head's kernel and bias; the 28M backbone weights come back from the seed
    assert len(stored) == 20 and sum(v.size for v in stored.values()) == 6624 + 768 * 11 + 11
    assert all(np.all(v == build.LAYER_SCALE) for k, v in stored.items() if "layer_scale" in k)
    rebuilt = seeded("convnext_tiny", 11, SMALL)
    x = np.random.default_rng(0).uniform(0, 255, (2, SMALL, SMALL, 3)).astype(np.float32)
    assert not np.allclose(rebuilt.predict(x, verbose=0), model.predict(x, verbose=0))
    apply(rebuilt, path, card)
    np.testing.assert_array_equal(rebuilt.predict(x, verbose=0), model.predict(x, verbose=0))


def test_batch_norm_statistics_become_those_of_the_crops():
    import keras

    model = seeded("efficientnet_b7", 11, SMALL)
    bn = next(layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization))
    assert np.all(bn.moving_variance.numpy() == 1)  # the untrained statistics
    x = np.random.default_rng(0).uniform(0, 255, (2, SMALL, SMALL, 3)).astype(np.float32)
    build.condition(model, "efficientnet_b7", x, log=lambda m: None)
    # the first BN's statistics are now exactly those of its input (the stem conv's output) on x
    stem = keras.Model(model.inputs, model.get_layer(bn.name).input).predict(x, verbose=0)
    np.testing.assert_allclose(bn.moving_mean.numpy(), stem.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(bn.moving_variance.numpy(), stem.var(axis=(0, 1, 2)), rtol=1e-3)
    assert bn.momentum == 0.99 and all(d.rate > 0 for d in model.layers if isinstance(d, keras.layers.Dropout))


def test_an_untrained_head_is_not_saved(tmp_path):
    model = conditioned_with_random_head()
    out = tmp_path / "weak.safetensors"
    config = build.ProbeConfig(heldout_per_class=1)
    from calibration.photos import class_names

    with pytest.raises(KitError, match="nothing saved"):
        build.save(model, "convnext_tiny", class_names(), "test", config, out, log=lambda m: None)
    assert list(tmp_path.iterdir()) == []


def test_the_cli_refuses_bad_counts_and_paths_in_one_line(capsys):
    from edge.errors import run_cli

    assert run_cli(build.main, ["--model", "convnext_tiny", "--train-per-class", "0"]) == 2
    assert run_cli(build.main, ["--model", "convnext_tiny", "--out", "x.h5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "at least 1" in err[0] and ".safetensors" in err[1]
