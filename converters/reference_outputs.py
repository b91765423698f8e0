"""The reference model's outputs on a validation set, computed once: kept for the process and on disk across runs.

Every conversion and `validate` measures drift against the Keras reference's outputs on the same 176 crops; computing
them is 5-8 s of a 200MF conversion (more for larger models), and `make demo` needs them three times. They are kept
(edge.cache) under a key that covers everything they depend on: the model's identity, every weight's bytes,
the input tensors' bytes, the source of the code that builds the models (models/), and the TensorFlow, Keras and
numpy versions. A changed weight, image, crop, preprocessing step or model-building line is another key, so a cached
entry is never stale. REGNETY_KIT_CACHE=off keeps outputs in memory only.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from converters.reference import KerasReference, Reference
from edge import cache

KIND = "reference-outputs"
_memo: dict[str, np.ndarray] = {}


def reference_outputs(reference: Reference, inputs: np.ndarray, log: Callable[[str], None] | None = None) -> np.ndarray:
    """reference.predict(inputs), from memory or the cache folder when the same outputs were computed before."""
    key = fingerprint(reference, inputs)
    if key is None:
        return reference.predict(inputs)
    if key in _memo:
        return _memo[key].copy()
    stored = cache.read(KIND, key)
    cached = stored.get("outputs") if stored is not None else None
    if cached is not None and cached.dtype == np.float32 and cached.shape[:1] == (len(inputs),):
        if log:
            log(f"reference outputs: from the cache ({cache.entry(KIND, key).parent}, key {key[:12]})")
        _memo[key] = cached
        return cached.copy()
    outputs = np.asarray(reference.predict(inputs), np.float32)
    _memo[key] = outputs
    cache.write(KIND, key, {"outputs": outputs})
    return outputs.copy()


def fingerprint(reference: Reference, inputs: np.ndarray) -> str | None:
    """The cache key of reference.predict(inputs), or None for a reference whose weights cannot be read (a SavedModel's
    serving function): those are computed each time."""
    if not isinstance(reference, KerasReference):
        return None
    import keras
    import tensorflow as tf

    key = cache.Key("reference-outputs v1").versions(tf, keras)
    key.facts(identity=reference.identity.__dict__, preprocessing=reference.preprocessing.to_dict())
    key.sources("models", "converters/source.py", "converters/reference.py")
    return key.array(np.asarray(inputs, np.float32)).weights(reference.model).hexdigest()
