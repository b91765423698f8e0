"""The shipped ImageNet-1k names are in the index order of timm's ImageNet synsets: timm ships its synset and lemma
files, read here as files (no network; no timm import, whose torchvision crashes in a process that has loaded
TensorFlow)."""

import importlib.util
from pathlib import Path

from models.labels import IMAGENET_CLASSES, imagenet_labels
from tests.helpers import require_timm


def _timm_lemmas() -> list[list[str]]:
    info = Path(importlib.util.find_spec("timm").submodule_search_locations[0]) / "data" / "_info"
    synsets = (info / "imagenet_synsets.txt").read_text().split()
    lemma = dict(line.split("\t", 1) for line in (info / "imagenet_synset_to_lemma.txt").read_text().splitlines())
    return [[w.strip() for w in lemma[s].split(",")] for s in synsets]


def test_imagenet_names_follow_timms_synset_order():
    require_timm()
    lemmas = _timm_lemmas()
    names = imagenet_labels()
    assert len(names) == IMAGENET_CLASSES == len(lemmas)
    for index, (name, words) in enumerate(zip(names, lemmas)):
        base, _, told_apart = name.partition(" (")
        assert base == words[0], f"class {index}: {name!r}, timm says {words}"
        if told_apart:  # one of the two names ImageNet uses twice: the words in brackets say which
            assert told_apart.rstrip(")") in ("bird", "machine", *words[1:])
    assert len(set(names)) == IMAGENET_CLASSES
