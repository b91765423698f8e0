"""A small ConvNeXt reference made without the probe (conditioned, random head), and its stored difference:
shared by the training tests and the loading tests (tests/models/test_app_reference.py)."""

import numpy as np

from models.app_reference import fingerprint, seeded
from training.app_reference import condition, stored_tensors

SMALL = 64  # the backbone's weights do not depend on the input size


def conditioned_with_random_head(name="convnext_tiny"):
    model = seeded(name, 11, SMALL)
    condition(model, name, np.zeros((1, SMALL, SMALL, 3), np.float32), log=lambda m: None)
    head = model.layers[-1]
    rng = np.random.default_rng(1)
    head.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in head.get_weights()])
    return model


def write_difference(tmp_path, model, name="convnext_tiny"):
    """The model's difference from the seed as a safetensors file, and the card fields `apply` checks."""
    from safetensors.numpy import save_file

    tensors = stored_tensors(model, name)
    path = tmp_path / "ref.safetensors"
    save_file(tensors, str(path))
    return path, {"model": name, "backbone_sha256": fingerprint(model, set(tensors))}
