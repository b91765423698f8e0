"""The bundled photographs and the task built from them: which photograph does a random crop come from?

Eleven public-domain / CC0 photographs ship in `calibration/samples/<label>/` (sources and licences in
`calibration/samples/LICENSE.md`). Random crops of them are real image statistics with a learnable
label, so a network trained on them makes predictions that mean something, and drift measured
on it is drift of a working classifier, not of random weights.

Crops come in disjoint, reproducible splits: each split draws its boxes from its own seed, so the
held-out crops are framings never seen in training (they do overlap the training photos' pixels:
the task is recognising these photographs, not generalising to new scenes).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

from calibration.datasets import DatasetError, ImageSet, Sample, scan_folder

SAMPLES_DIR = Path(__file__).resolve().parent / "samples"
SPLITS = {"train": 0, "calibration": 1, "heldout": 2}
AREA = (0.10, 0.50)  # crop area as a share of the photograph
ASPECT = (3 / 4, 4 / 3)


def bundled_photos() -> ImageSet:
    """The eleven photographs, labelled by their folder."""
    return scan_folder(SAMPLES_DIR)


def class_names() -> list[str]:
    labels = bundled_photos().labels
    assert labels is not None  # every bundled photo lives in a labelled folder
    return labels


def crop_boxes(width: int, height: int, count: int, rng: np.random.Generator) -> list[tuple[int, int, int, int]]:
    """`count` random boxes (left, top, right, bottom) of AREA share and ASPECT ratio inside width x height."""
    boxes = []
    for _ in range(count):
        area = rng.uniform(*AREA) * width * height
        aspect = math.exp(rng.uniform(math.log(ASPECT[0]), math.log(ASPECT[1])))
        w = min(width, max(1, round(math.sqrt(area * aspect))))
        h = min(height, max(1, round(math.sqrt(area / aspect))))
        left = int(rng.integers(0, width - w + 1))
        top = int(rng.integers(0, height - h + 1))
        boxes.append((left, top, left + w, top + h))
    return boxes


def photo_crops(split: str, per_class: int, seed: int = 0) -> ImageSet:
    """`per_class` crops of every bundled photograph for one split, labelled by photograph."""
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    if per_class < 1:
        raise DatasetError(f"crops per class must be at least 1, got {per_class}")
    rng = np.random.default_rng([seed, SPLITS[split]])
    samples = []
    for photo in bundled_photos().samples:
        with Image.open(photo.path) as im:
            width, height = im.size
        for i, box in enumerate(crop_boxes(width, height, per_class, rng)):
            samples.append(Sample(f"{photo.label}/{split}-{i:04d}", photo.path, photo.label, box))
    return ImageSet(f"bundled photographs ({split} crops)", samples)
