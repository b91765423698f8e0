"""The reference's outputs are computed once (converters.reference_outputs): kept under a key that changes with
anything they depend on, read back equal, and recomputed when the cached file is damaged."""

import numpy as np

from converters import reference_outputs as ro
from edge.cache import CACHE_ENV, cache_dir


def test_outputs_are_cached_keyed_by_inputs_and_weights(source, validation, tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(ro, "_memo", {})
    inputs = validation.inputs[:8]
    calls = []
    real = source.predict
    monkeypatch.setattr(source, "predict", lambda x: calls.append(len(x)) or real(x))
    first = ro.reference_outputs(source, inputs)
    np.testing.assert_array_equal(first, real(inputs))
    files = list((tmp_path / "reference-outputs").glob("*.npz"))
    assert len(files) == 1 and calls == [8]

    ro._memo.clear()  # a new process: read from the folder, said in one line
    said = []
    np.testing.assert_array_equal(ro.reference_outputs(source, inputs, said.append), first)
    assert calls == [8] and len(said) == 1 and "from the cache" in said[0]

    other = inputs.copy()
    other[0, 0, 0, 0] += 1e-3  # one input value: another key
    assert ro.fingerprint(source, other) != ro.fingerprint(source, inputs)
    key = ro.fingerprint(source, inputs)
    weight = source.model.weights[0]
    saved = weight.numpy()
    try:
        weight.assign(saved * 1.001)  # one weight: another key
        assert ro.fingerprint(source, inputs) != key
    finally:
        weight.assign(saved)
    assert ro.fingerprint(source, inputs) == key

    ro._memo.clear()
    files[0].write_bytes(b"not numpy at all")  # damaged: computed again, never raised
    np.testing.assert_array_equal(ro.reference_outputs(source, inputs), first)
    assert calls == [8, 8]

    ro._memo.clear()  # a well-formed file whose numbers changed: its stored SHA-256 no longer matches
    with np.load(files[0]) as stored:
        tampered = {name: stored[name] for name in stored.files}
    tampered["outputs"] = tampered["outputs"] + np.float32(1)
    with open(files[0], "wb") as f:
        np.savez(f, **tampered)
    np.testing.assert_array_equal(ro.reference_outputs(source, inputs), first)
    assert calls == [8, 8, 8]


def test_the_cache_can_be_turned_off(source, validation, tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, "off")
    assert cache_dir() is None
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "regnety-edge-kit"
