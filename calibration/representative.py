"""Prepared image sets: the representative (calibration) set and the validation set, as model inputs.

Both come from a folder the user names or, by default, from the bundled photographs: calibration
uses the "calibration" crops, validation the "heldout" crops (the reference checkpoint never trained
on either). The order is deterministic for a seed, nothing is augmented, and a fingerprint (hash of
the files, crop boxes and settings) identifies the set in every artifact's metadata.

Sizes: calibration defaults to DEFAULT_CALIBRATION images; LiteRT's and ONNX Runtime's
calibrators gain little beyond a few hundred, so more than MAX_CALIBRATION is refused. When a folder
holds fewer decodable images than asked for, the set uses what exists and says so on stderr.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from calibration.datasets import DatasetError, ImageSet, Sample, fingerprint, scan_folder
from calibration.photos import class_names, photo_crops
from edge import cache
from edge.preprocessing import PreprocessSpec

DEFAULT_CALIBRATION = 128
MAX_CALIBRATION = 1024
DEFAULT_VALIDATION_PER_CLASS = 16  # 176 held-out crops of the eleven bundled photographs


@dataclass
class Prepared:
    """Decoded, preprocessed images ready to feed: inputs (N, H, W, 3) float32, names, labels."""

    source: str
    inputs: np.ndarray
    names: list[str]
    labels: list[str | None]
    fingerprint: str
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.names)

    def label_indices(self, class_names: list[str]) -> np.ndarray | None:
        """Labels as class indices, when every image has one that the model knows."""
        if not self.labels or any(label is None or label not in class_names for label in self.labels):
            return None
        return np.asarray([class_names.index(label) for label in self.labels])

    def check_labels(self, class_names: list[str]) -> None:
        """Raise when the images carry folder labels that are not the model's classes."""
        named = sorted({label for label in self.labels if label is not None})
        unknown = [label for label in named if label not in class_names]
        if unknown:
            raise DatasetError(
                f"{self.source}: class folders {unknown[:5]} are not classes of the model ({len(class_names)} classes, "
                f"e.g. {class_names[:5]}); name the sub-folders after the model's labels, or put the images in one "
                "folder to use them without labels")

    def summary(self) -> dict:
        return {"source": self.source, "images": len(self), "skipped": len(self.skipped),
                "fingerprint": self.fingerprint}


def _prepare(images: ImageSet, spec: PreprocessSpec, count: int | None, seed: int | None, purpose: str) -> Prepared:
    samples: list[Sample] = list(images.samples)
    if seed is not None:
        order = np.random.default_rng(seed).permutation(len(samples))
        samples = [samples[i] for i in order]
    ordered = ImageSet(images.root, samples)
    settings = {"purpose": purpose, "count": count, "seed": seed, "preprocessing": spec.to_json()}
    head = samples[:count] if count is not None else samples
    try:  # a file that cannot be read is skipped while decoding, with a warning, as before
        prints = fingerprint(head, settings) if cache.cache_dir() is not None else None
    except OSError:
        prints = None
    key = _key(head, prints) if prints else None
    stored = cache.read(KIND, key) if key else None
    if stored is not None and set(stored) == {"inputs"} and len(stored["inputs"]) == len(head):
        pairs = list(zip(head, stored["inputs"]))  # decoded before, every one of them (the key has their bytes)
        inputs = stored["inputs"]
    else:
        pairs = list(ordered.decoded(spec, limit=count))
        inputs = np.stack([a for _, a in pairs]) if pairs else None
        if key and not ordered.skipped and len(pairs) == len(head):
            cache.write(KIND, key, {"inputs": inputs})
    if not pairs:
        raise DatasetError(f"{images.root}: none of its {len(samples)} image files could be decoded; "
                           "check the files (warnings above name each one)")
    if count is not None and len(pairs) < count:
        print(f"warning: asked for {count} {purpose} images, {images.root} has {len(pairs)} decodable; "
              f"using {len(pairs)}", file=sys.stderr)
    used = [s for s, _ in pairs]
    prints = prints if prints and used == head else fingerprint(used, settings)
    return Prepared(images.root, inputs, [s.name for s in used], [s.label for s in used], prints, ordered.skipped)


KIND = "prepared-images"


def _key(samples: list[Sample], prints: str) -> str | None:
    """The cache key of the decoded inputs (edge.cache): the samples' fingerprint (every file's bytes, crop box and
    label, and the settings), their names, the decoding and preprocessing code, the Pillow and numpy versions."""
    import PIL

    if not samples:
        return None
    key = cache.Key(f"{KIND} v1").versions(PIL).facts(set=prints, names=[s.name for s in samples])
    return key.sources("edge/images.py", "edge/preprocessing.py", "calibration/datasets.py",
                       "calibration/representative.py", "calibration/photos.py").hexdigest()


def check_sizes(calibration: int | None = None, validation: int | None = None) -> None:
    """DatasetError for a calibration count outside 1..MAX_CALIBRATION or a validation size under 1 (callers check
    before long work; the set builders check again)."""
    if calibration is not None and not 1 <= calibration <= MAX_CALIBRATION:
        raise DatasetError(f"calibration size must be between 1 and {MAX_CALIBRATION}, got {calibration}")
    if validation is not None and validation < 1:
        raise DatasetError(f"validation size must be at least 1, got {validation}")


def calibration_set(spec: PreprocessSpec, folder: str | Path | None = None, count: int = DEFAULT_CALIBRATION,
                    seed: int = 0) -> Prepared:
    """`count` representative images, in a seeded order, from `folder` or the bundled photographs."""
    check_sizes(calibration=count)
    if folder is None:
        images = photo_crops("calibration", math.ceil(count / len(class_names())), seed)
    else:
        images = scan_folder(folder)
    return _prepare(images, spec, count, seed, "calibration")


def validation_set(spec: PreprocessSpec, folder: str | Path | None = None, limit: int | None = None) -> Prepared:
    """The validation images in file order: `folder`, or the held-out crops of the bundled photographs.

    `limit` takes the first images of a folder; of the bundled photographs, as many crops of each
    (limit / 11, rounded up) so that every photograph stays in the set.
    """
    check_sizes(validation=limit)
    if folder is None:
        per_class = DEFAULT_VALIDATION_PER_CLASS if limit is None else math.ceil(limit / len(class_names()))
        images = photo_crops("heldout", per_class)
    else:
        images = scan_folder(folder)
    return _prepare(images, spec, limit, None, "validation")
