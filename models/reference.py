"""Where the kit's reference checkpoint lives, and its card.

The reference is a RegNetY-200MF trained to tell the bundled photographs apart (offline there are no
ImageNet weights, and drift measured on a random network says little), stored as float16
safetensors in timm's layout so the kit's own importer loads it, with a JSON card beside it (labels,
preprocessing, how it was trained, what it scores). It is the converters' default weights when the
user gives none. How it is made: `training.reference` (`python -m training.reference`).
"""

from __future__ import annotations

import json
from pathlib import Path

CHECKPOINT_DIR = Path(__file__).resolve().parent / "checkpoints"
DEFAULT_CHECKPOINT = CHECKPOINT_DIR / "regnety_200mf_photos.safetensors"
VARIANT = "200mf"


def card_path(checkpoint: Path) -> Path:
    """The JSON card beside a checkpoint: labels, preprocessing, how it was trained, what it scores."""
    return checkpoint.with_suffix(".json")


def read_card(checkpoint: Path) -> dict | None:
    path = card_path(Path(checkpoint))
    return json.loads(path.read_text()) if path.is_file() else None
