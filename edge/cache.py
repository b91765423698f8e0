"""Results computed from models and images, kept on disk under a key of everything they depend on.

A conversion recomputes things whose inputs rarely change between runs: the decoded and preprocessed calibration
and validation crops (calibration.representative), the Keras reference's outputs on them
(converters.reference_outputs), the int8 calibration's float rewrites (converters.int8_calibration) and its
activation ranges (converters.tflite_ranges, converters.onnx_quantize). Each is kept under a SHA-256 key of every
byte it depends on: files, weights, input tensors, the method and its settings, the source of the code that
computes it and the versions of the libraries that do. A change to any of them is another key, so an entry is never stale; it is only ever the
same numbers computed earlier.

The folder is $REGNETY_KIT_CACHE, else $XDG_CACHE_HOME/regnety-edge-kit, else ~/.cache/regnety-edge-kit;
REGNETY_KIT_CACHE=off turns the folder off. An entry whose arrays do not match the SHA-256 stored with them is
computed again; an unwritable folder only costs the time.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from edge.atomic import atomic_write
from edge.errors import KitError

CACHE_ENV = "REGNETY_KIT_CACHE"
ROOT = Path(__file__).resolve().parents[1]  # the kit's root: sources() names files relative to it
_CHECK = "__sha256__"


def cache_dir() -> Path | None:
    """Where computed results are kept across runs, or None when the cache is off."""
    chosen = os.environ.get(CACHE_ENV)
    if chosen is not None:
        return None if chosen.strip().lower() in ("", "off", "0", "no") else Path(chosen)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "regnety-edge-kit"


class Key:
    """A SHA-256 over what one cached result depends on, fed piece by piece."""

    def __init__(self, kind: str) -> None:
        self.digest = hashlib.sha256(f"{kind}\n".encode())

    def facts(self, **facts) -> Key:
        self.digest.update(json.dumps(facts, sort_keys=True, default=str).encode())
        return self

    def array(self, value) -> Key:
        array = np.ascontiguousarray(value)
        self.digest.update(f"{array.shape}:{array.dtype}".encode())
        self.digest.update(_raw(array))
        return self

    def data(self, data: bytes) -> Key:
        self.digest.update(f"{len(data)}".encode())
        self.digest.update(data)
        return self

    def weights(self, model) -> Key:
        """Every weight of a Keras model: its path, shape, dtype and bytes."""
        for weight in model.weights:
            value = np.asarray(weight.numpy())
            self.digest.update(f"{weight.path}:".encode())
            self.array(value)
        return self

    def versions(self, *modules) -> Key:
        """The libraries' versions (numpy's always)."""
        return self.facts(versions={m.__name__: m.__version__ for m in (np, *modules)})

    def settings(self, *modules) -> Key:
        """The modules' constants (their UPPER_CASE numbers and strings), as they are now."""
        return self.facts(settings={f"{m.__name__}.{k}": v for m in modules for k, v in sorted(vars(m).items())
                                    if k.isupper() and isinstance(v, (int, float, str))})

    def sources(self, *paths: str) -> Key:
        """The code that computes the result (paths relative to the kit's root; folders are read whole)."""
        files = []
        for name in paths:
            path = ROOT / name
            files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for path in files:
            self.digest.update(path.relative_to(ROOT).as_posix().encode())
            self.digest.update(path.read_bytes())
        return self

    def hexdigest(self) -> str:
        return self.digest.hexdigest()


def entry(kind: str, key: str) -> Path | None:
    folder = cache_dir()
    return folder / kind / f"{key}.npz" if folder is not None else None


def read(kind: str, key: str) -> dict[str, np.ndarray] | None:
    """The arrays stored under the key, or None when the cache is off, the entry absent, or its bytes damaged."""
    path = entry(kind, key)
    if path is None:
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):
        return None
    check = arrays.pop(_CHECK, None)
    if check is None or check.tobytes() != _checksum(arrays):
        return None
    return arrays


MAX_ENTRY = 2**31  # bytes: a larger result (a thousand 600 px crops) is computed each time instead of kept


def write(kind: str, key: str, arrays: dict[str, np.ndarray]) -> None:
    """Store the arrays under the key: streamed into place atomically (edge.atomic; a folder that takes no files,
    or a result over MAX_ENTRY, only costs the time next run)."""
    path = entry(kind, key)
    if path is None or sum(np.asarray(a).nbytes for a in arrays.values()) > MAX_ENTRY:
        return
    try:
        atomic_write(path, lambda f: np.savez(f, **arrays, **{_CHECK: np.frombuffer(_checksum(arrays), np.uint8)}))
    except (KitError, MemoryError, ValueError):
        pass


def text(value) -> np.ndarray:
    """A JSON-able value as an array a cache entry can hold (read back with `untext`)."""
    return np.frombuffer(json.dumps(value).encode(), np.uint8)


def untext(array: np.ndarray):
    return json.loads(array.tobytes().decode())


def _checksum(arrays: dict[str, np.ndarray]) -> bytes:
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}:{array.shape}:{array.dtype}".encode())
        digest.update(_raw(array))
    return digest.digest()


def _raw(array: np.ndarray) -> memoryview:
    """A contiguous array's bytes, without a copy (an empty array too, which memoryview's cast refuses)."""
    return memoryview(array.reshape(-1).view(np.uint8))
