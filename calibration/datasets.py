"""Image sets: a folder of images (class sub-folders as labels), decoded robustly, lazily.

An `ImageSet` is a list of `Sample`s: a source file, an optional crop box inside it and an optional
label. Decoding happens when a sample is used; an image that will not decode is skipped with a
warning that names it, and counted, never a crash. Preprocessing is the model's spec applied by
the kit's one implementation in `edge.images`.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from edge.digest import file_sha256
from edge.errors import DatasetError, ImageError
from edge.images import IMAGE_SUFFIXES, image_files, load_image, to_input
from edge.preprocessing import PreprocessSpec



@dataclass(frozen=True)
class Sample:
    """One image: a file, optionally a crop of it (left, top, right, bottom), optionally a label."""

    name: str
    path: Path
    label: str | None = None
    box: tuple[int, int, int, int] | None = None

    def load(self, photos: dict[Path, Image.Image] | None = None) -> Image.Image:
        """The decoded image (its crop, for a crop). `photos` caches decoded sources shared by crops."""
        if self.box is None:
            return load_image(self.path)
        if photos is None:
            return load_image(self.path).crop(self.box)
        if self.path not in photos:
            photos[self.path] = load_image(self.path)
        return photos[self.path].crop(self.box)


@dataclass
class ImageSet:
    """Samples plus what was skipped while decoding them: (name, reason)."""

    root: str
    samples: list[Sample]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def labels(self) -> list[str] | None:
        """The sorted class names, when every sample has a label."""
        if not self.samples or any(s.label is None for s in self.samples):
            return None
        return sorted({s.label for s in self.samples})

    def decoded(self, spec: PreprocessSpec, limit: int | None = None) -> Iterator[tuple[Sample, np.ndarray]]:
        """(sample, model input) in order, skipping (and recording) images that fail to decode."""
        taken = 0
        photos: dict[Path, Image.Image] = {}  # crops of one photograph decode it once
        for sample in self.samples:
            if limit is not None and taken >= limit:
                return
            try:
                array = to_input(sample.load(photos), spec)
            except ImageError as exc:
                self.skipped.append((sample.name, str(exc)))
                print(f"warning: skipping {sample.name}: {exc}", file=sys.stderr)
                continue
            taken += 1
            yield sample, array


def scan_folder(root: str | Path) -> ImageSet:
    """Every image file under `root` (recursively), sorted by path.

    When every image sits inside a first-level sub-folder, that sub-folder's name is its label.
    """
    root = Path(root)
    if not root.exists():
        raise DatasetError(f"image folder {root} does not exist; pass a folder of .jpg/.png/.webp/.bmp images")
    if root.is_file():
        return ImageSet(str(root), [Sample(root.name, root)])
    files = image_files(root)
    if not files:
        raise DatasetError(f"image folder {root} holds no {'/'.join(IMAGE_SUFFIXES)} files (searched recursively)")
    relative = [p.relative_to(root) for p in files]
    labelled = all(len(r.parts) >= 2 for r in relative)
    samples = [Sample(r.as_posix(), p, r.parts[0] if labelled else None) for r, p in zip(relative, files)]
    return ImageSet(str(root), samples)


def fingerprint(samples: list[Sample], settings: dict) -> str:
    """SHA-256 over each sample's file content, crop box and label, and the settings that produced the set."""
    digest = hashlib.sha256()
    digest.update(repr(sorted(settings.items())).encode())
    file_hashes: dict[Path, str] = {}
    for s in samples:
        if s.path not in file_hashes:
            file_hashes[s.path] = file_sha256(s.path)
        digest.update(f"{s.name}|{s.label}|{s.box}|{file_hashes[s.path]}\n".encode())
    return digest.hexdigest()
