"""Keras weight files: Keras 3 files by topology, Keras 2 (seed) .h5 files by layer name."""

import h5py
import numpy as np
import pytest

from edge.errors import WeightsError
from models.weights import import_by_layer_name, load_weights
from models.zoo import build_model, model_spec


def randomized(model, seed=0):
    rng = np.random.default_rng(seed)
    model.set_weights([rng.standard_normal(w.shape).astype(w.dtype) * 0.1 + (w if w.ndim == 0 else 0)
                       for w in model.get_weights()])
    return model


def same_weights(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a.get_weights(), b.get_weights()))


@pytest.mark.parametrize("suffix", [".weights.h5", ".keras"])
def test_keras3_files_round_trip(tmp_path, suffix):
    source = randomized(build_model(model_spec("200mf", input_size=64)))
    path = tmp_path / f"m{suffix}"
    source.save_weights(path) if suffix == ".weights.h5" else source.save(path)
    target = build_model(model_spec("200mf", input_size=64))
    report = load_weights(target, path)
    assert report.format == "keras" and same_weights(source, target)


def test_keras3_file_of_another_variant_is_refused_and_model_kept(tmp_path):
    source = build_model(model_spec("800mf", input_size=64))
    source.save_weights(tmp_path / "other.weights.h5")
    target = randomized(build_model(model_spec("200mf", input_size=64)))
    before = [w.copy() for w in target.get_weights()]
    with pytest.raises(WeightsError, match="other.weights.h5 does not fit regnety_200mf"):
        load_weights(target, tmp_path / "other.weights.h5")
    assert all(np.array_equal(x, y) for x, y in zip(before, target.get_weights()))


def test_truncated_keras_archive(tmp_path):
    source = build_model(model_spec("200mf", input_size=64))
    source.save(tmp_path / "m.keras")
    data = (tmp_path / "m.keras").read_bytes()
    (tmp_path / "cut.keras").write_bytes(data[: len(data) // 3])
    with pytest.raises(WeightsError, match="cut.keras"):
        load_weights(build_model(model_spec("200mf", input_size=64)), tmp_path / "cut.keras")


def write_keras2_h5(model, path, order=None):
    """The Keras 2 save_weights layout (layer_names / weight_names attributes), as the seed saved it."""
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
        if order is not None:  # shuffle the layer order: matching must be by name
            names = list(f.attrs["layer_names"])
            f.attrs["layer_names"] = [names[i] for i in order(len(names))]


def test_seed_weights_load_by_layer_name(tmp_path):
    source = randomized(build_model(model_spec("200mf", "seed", input_size=64)))
    path = tmp_path / "seed200.h5"
    write_keras2_h5(source, path, order=lambda n: list(reversed(range(n))))
    target = build_model(model_spec("200mf", "seed", input_size=64))
    report = load_weights(target, path)
    assert report.format.startswith("keras legacy") and same_weights(source, target)


def test_nested_seed_names_and_unnamed_stem(tmp_path):
    """The seed nests layers (Stage_0/Stage_0_YBlock_0/...) and leaves its stem conv and BN unnamed."""
    source = randomized(build_model(model_spec("200mf", "seed", input_size=64)))
    weights = {}
    for layer in source.layers:
        if not layer.weights or layer.name.startswith("prestem"):
            continue
        if layer.name == "Stem_conv3x3":
            path = "Stem/conv2d"
        elif layer.name == "Stem_bn":
            path = "Stem/batch_normalization"
        elif layer.name.startswith("Stage_"):
            stage = "_".join(layer.name.split("_")[:2])
            block = "_".join(layer.name.split("_")[:4])
            path = f"{stage}/{block}/{layer.name}"
        else:
            path = f"Head/{layer.name}"
        weights[path] = {v.name: v.numpy() for v in layer.weights}
    # The seed's PreStem normalization state: our models keep those constants in their config.
    weights["PreStem/prestem_normalize"] = {"mean": np.zeros(3), "variance": np.ones(3), "count": np.zeros(())}
    target = build_model(model_spec("200mf", "seed", input_size=64))
    import_by_layer_name(target, weights, source="nested")
    assert same_weights(source, target)


def test_by_name_import_names_missing_layers_and_keeps_model(tmp_path):
    source = build_model(model_spec("400mf", "seed", input_size=64))  # 3 blocks in stage 3
    paper = build_model(model_spec("400mf", "paper", input_size=64))
    write_keras2_h5(source, tmp_path / "seed400.h5")
    with pytest.raises(WeightsError, match="missing layers"):
        load_weights(paper, tmp_path / "seed400.h5")
    (tmp_path / "plain.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(WeightsError, match="not a readable HDF5"):
        load_weights(source, tmp_path / "plain.h5")
