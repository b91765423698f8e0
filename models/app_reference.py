"""Loading the kit's reference checkpoints for ConvNeXt-Tiny and EfficientNet-B7.

Such a reference is stored as its difference from the seeded random initialisation (the tensors
that were conditioned or trained) plus a fingerprint of everything else; loading rebuilds the seeded
network (`seeded`), checks the fingerprint, and puts the stored tensors back (`apply`). These are not
ImageNet weights: the drift they show is that of a working classifier with untrained features; pass
--weights for real ones. How they are made: `training.app_reference`
(`python -m training.app_reference --model convnext_tiny`).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np

from edge.errors import WeightsError
from models.reference import CHECKPOINT_DIR, read_card

SEED = 0
REBUILD = "python -m training.app_reference --model {}"


def checkpoint_path(name: str) -> Path:
    return CHECKPOINT_DIR / f"{name}_photos.safetensors"


def seeded(name: str, num_classes: int, size: int | None = None):
    """The seeded random initialisation every reference starts from."""
    import keras

    from models.applications import build_application

    keras.utils.set_random_seed(SEED)
    return build_application(name, num_classes, size)


def weights_by_key(model) -> dict:
    """The model's weights by a key stable across builds: position and variable name without Keras's
    process-wide numbering (`normalization/mean` in one build is `normalization_1/mean` in the next, a
    LayerScale's `variable_7` is `variable_25`)."""
    return {f"{i:04d}/{re.sub(r'_[0-9]+$', '', w.name)}": w for i, w in enumerate(model.weights)}


def fingerprint(model, skip: set[str]) -> str:
    """sha256 over every weight not in `skip` (the ones the seed must rebuild bit for bit)."""
    digest = hashlib.sha256()
    for key, weight in weights_by_key(model).items():
        if key not in skip:
            digest.update(key.encode())
            digest.update(np.ascontiguousarray(weight.numpy()).tobytes())
    return digest.hexdigest()


def apply(model, path: Path, card: dict) -> None:
    """Put a stored reference into a freshly seeded model (`seeded`), after checking its backbone."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise WeightsError(f"{path} is not a readable safetensors file ({exc}); rebuild it with "
                           + REBUILD.format(card.get("model"))) from None
    weights = weights_by_key(model)
    unknown = sorted(set(tensors) - set(weights))
    if unknown:
        raise WeightsError(f"{path} holds tensors {model.name} lacks ({', '.join(unknown[:3])}); it is not a "
                           f"reference for this model")
    base = fingerprint(model, set(tensors))
    if base != card.get("backbone_sha256"):
        raise WeightsError(f"{path}: the seeded backbone this reference was made on differs from the one this Keras "
                           "builds (another Keras version?); rebuild it with " + REBUILD.format(card.get("model")))
    for key, value in tensors.items():
        if tuple(weights[key].shape) != value.shape:
            raise WeightsError(f"{path}: {key} has shape {value.shape}, the model {tuple(weights[key].shape)}")
        weights[key].assign(value)


def reference_card(name: str) -> dict | None:
    """The card of the kit's reference for `name`, when its checkpoint is present."""
    path = checkpoint_path(name)
    return read_card(path) if path.is_file() else None
