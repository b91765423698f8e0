"""What every reference checkpoint's card measures and how it is written: held-out top-1 on crops of
the bundled photographs (`calibration.photos`), the bar a reference must clear, the card itself."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edge.atomic import atomic_write
from edge.errors import KitError
from models.reference import card_path

MIN_HELDOUT_TOP1 = 0.90
TASK = "which bundled photograph (calibration/samples) a random crop comes from"


def crop_arrays(split: str, per_class: int, seed: int, spec, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """`per_class` random crops of each photograph of `split`, preprocessed by `spec`, and their class indices."""
    from calibration.photos import photo_crops

    pairs = list(photo_crops(split, per_class, seed).decoded(spec))
    return np.stack([x for _, x in pairs]), np.asarray([classes.index(s.label) for s, _ in pairs], np.int32)


def heldout_top1(model, classes: list[str], per_class: int, spec, *, seed: int = 0, batch_size: int = 32) -> float:
    """Top-1 of `model` on `per_class` held-out crops of each photograph, preprocessed by `spec`."""
    x, y = crop_arrays("heldout", per_class, seed, spec, classes)
    logits = model.predict(x, batch_size=batch_size, verbose=0)
    return float(np.mean(np.argmax(logits, axis=1) == y))


def require_bar(top1: float, advice: str) -> None:
    """Refuse a reference whose held-out top-1 is under the kit's bar (nothing is saved then)."""
    if top1 < MIN_HELDOUT_TOP1:
        raise KitError(f"held-out top-1 {top1:.3f} is under {MIN_HELDOUT_TOP1}; nothing saved; {advice}")


def write_card(checkpoint: Path, card: dict) -> Path:
    """The JSON card beside `checkpoint`, written atomically."""
    return atomic_write(card_path(checkpoint), (json.dumps(card, indent=2) + "\n").encode())


def require_safetensors(out: Path) -> None:
    """The checkpoints are stored as safetensors; any other --out is refused in one line."""
    if out.suffix != ".safetensors":
        raise KitError(f"--out must end in .safetensors, got {out}")
