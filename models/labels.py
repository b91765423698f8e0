"""Class names shipped with the kit: ImageNet-1k, in the index order of timm and pycls weights and of the TF Hub
classifiers the seed implementation used (1000 classes, no background class).

`labels/imagenet-1k.txt` is the first lemma of each synset of timm's `imagenet_synsets.txt` /
`imagenet_synset_to_lemma.txt`, with the two names ImageNet uses twice told apart: "crane (bird)" (134) and
"crane (machine)" (517), "maillot" (638) and "maillot (tank suit)" (639). tests/models/test_labels.py checks the
file against timm's, offline.
"""

from __future__ import annotations

from importlib import resources

IMAGENET_CLASSES = 1000


def imagenet_labels() -> list[str]:
    """The 1000 ImageNet-1k class names, in index order."""
    text = resources.files("models").joinpath("labels/imagenet-1k.txt").read_text(encoding="utf-8")
    return text.splitlines()


def default_labels(num_classes: int, log=print) -> list[str]:
    """Labels for a model given none: ImageNet-1k's names for 1000 classes (said in one line), else class_0, ..."""
    if num_classes == IMAGENET_CLASSES:
        log("labels: ImageNet-1k class names (the index order of timm, pycls and TF Hub weights); pass --labels FILE "
            "for others")
        return imagenet_labels()
    return [f"class_{i}" for i in range(num_classes)]
