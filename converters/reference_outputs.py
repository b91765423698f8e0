"""The reference model's outputs on a validation set, computed once: kept for the process and on disk across runs.

Every conversion and `validate` measures drift against the Keras reference's outputs on the same 176 crops; computing
them is 5-8 s of a 200MF conversion (more for larger models), and `make demo` needs them three times. They are kept
under a key that covers everything they depend on: the model's identity, every weight's bytes, the input tensors'
bytes, the source of the code that builds the models (models/), and the TensorFlow, Keras and numpy versions. A
changed weight, image, crop, preprocessing step or model-building line is another key, so a cached entry is never
stale. The cache folder is $REGNETY_KIT_CACHE, else $XDG_CACHE_HOME/regnety-edge-kit, else ~/.cache/regnety-edge-kit;
REGNETY_KIT_CACHE=off keeps outputs in memory only. An entry whose bytes do not match the SHA-256 stored with them is
computed again; an unwritable folder only costs the time.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from converters.reference import KerasReference, Reference
from edge.atomic import atomic_write
from edge.errors import KitError

CACHE_ENV = "REGNETY_KIT_CACHE"
_ROOT = Path(__file__).resolve().parents[1]
_memo: dict[str, np.ndarray] = {}


def cache_dir() -> Path | None:
    """Where reference outputs are kept across runs, or None when the cache is off."""
    chosen = os.environ.get(CACHE_ENV)
    if chosen is not None:
        return None if chosen.strip().lower() in ("", "off", "0", "no") else Path(chosen)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "regnety-edge-kit"


def reference_outputs(reference: Reference, inputs: np.ndarray, log: Callable[[str], None] | None = None) -> np.ndarray:
    """reference.predict(inputs), from memory or the cache folder when the same outputs were computed before."""
    key = fingerprint(reference, inputs)
    if key is None:
        return reference.predict(inputs)
    if key in _memo:
        return _memo[key].copy()
    folder = cache_dir()
    path = folder / "reference-outputs" / f"{key}.npz" if folder is not None else None
    cached = _read(path, (len(inputs),)) if path is not None else None
    if cached is not None:
        if log:
            log(f"reference outputs: from the cache ({path.parent}, key {key[:12]})")
        _memo[key] = cached
        return cached.copy()
    outputs = np.asarray(reference.predict(inputs), np.float32)
    _memo[key] = outputs
    if path is not None:
        buffer = io.BytesIO()
        np.savez(buffer, outputs=outputs, sha256=np.frombuffer(hashlib.sha256(outputs.tobytes()).digest(), np.uint8))
        try:
            atomic_write(path, buffer.getvalue())
        except KitError:
            pass  # a cache folder that takes no files only costs the time next run
    return outputs.copy()


def _read(path: Path, leading: tuple[int, ...]) -> np.ndarray | None:
    """The cached outputs, or None when absent or damaged (their own SHA-256 is stored beside them)."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            array, digest = stored["outputs"], stored["sha256"].tobytes()
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):
        return None
    if array.dtype != np.float32 or array.shape[:1] != leading or hashlib.sha256(array.tobytes()).digest() != digest:
        return None
    return array


def fingerprint(reference: Reference, inputs: np.ndarray) -> str | None:
    """The cache key of reference.predict(inputs), or None for a reference whose weights cannot be read (a SavedModel's
    serving function): those are computed each time."""
    if not isinstance(reference, KerasReference):
        return None
    import keras
    import tensorflow as tf

    digest = hashlib.sha256(b"reference-outputs v1\n")
    facts = {"identity": reference.identity.__dict__, "preprocessing": reference.preprocessing.to_dict(),
             "versions": [tf.__version__, keras.__version__, np.__version__], "source": _source_digest()}
    digest.update(json.dumps(facts, sort_keys=True, default=str).encode())
    array = np.ascontiguousarray(inputs, np.float32)
    digest.update(f"{array.shape}".encode())
    digest.update(memoryview(array).cast("B"))
    for weight in reference.model.weights:
        value = np.asarray(weight.numpy())
        digest.update(f"{weight.path}:{value.shape}:{value.dtype}".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def _source_digest() -> str:
    """The code that builds the reference models: a change to any of it is a new key."""
    digest = hashlib.sha256()
    for path in sorted([*(_ROOT / "models").rglob("*.py"), _ROOT / "converters" / "source.py",
                        _ROOT / "converters" / "reference.py"]):
        digest.update(path.relative_to(_ROOT).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()
