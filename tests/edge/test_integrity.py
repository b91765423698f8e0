"""What stands between a damaged file and a native runtime: the content digest (edge.seal), the structure check
(edge.tflite_check) and the guarded first load (edge.guard)."""

import hashlib
import json
import os
import re
import signal
import time

import flatbuffers
import numpy as np
import pytest

from benchmarks.fuzz import foreign
from edge import guard, seal
from edge.classifier import Classifier
from edge.errors import ModelFileError
from edge.runtime import load
from edge.tflite_check import check_structure
from edge.tflite_file import litert_schema
from tests.helpers import relu_tflite


@pytest.mark.parametrize("fmt,precision", [("tflite", "int8"), ("onnx", "float32")])
def test_kit_files_carry_their_digest_and_any_change_is_named_damaged(converted, fmt, precision, tmp_path):
    path, result = converted(precision, fmt)
    data = path.read_bytes()
    digest = result.metadata[seal.FIELD]
    assert len(digest) == 64 and digest != seal.PLACEHOLDER
    assert data.count(digest.encode()) == 1
    zeroed = data.replace(digest.encode(), seal.PLACEHOLDER.encode())
    assert hashlib.sha256(zeroed).hexdigest() == digest  # what the digest covers: the whole file, digest zeroed
    assert json.loads(path.with_name(path.name + ".json").read_text())[seal.FIELD] == digest
    assert load(path).metadata[seal.FIELD] == digest
    rng = np.random.default_rng(0)
    for position in [*rng.integers(0, len(data), 6), len(data) - 1, data.index(digest.encode())]:
        damaged = bytearray(data)
        damaged[position] ^= 0x10
        bad = tmp_path / f"bad{position}.{fmt}"
        bad.write_bytes(bytes(damaged))
        with pytest.raises(ModelFileError) as err:
            Classifier(bad)
        assert "\n" not in str(err.value)
        assert "damaged" in str(err.value) or "malformed" in str(err.value), str(err.value)


def test_a_sealed_record_without_its_digest_is_damaged_and_a_foreign_one_is_checked_otherwise(converted, tmp_path):
    path, _ = converted("int8")
    data = path.read_bytes()
    key_only = data.replace(f'"{seal.FIELD}":'.encode(), f'"{"x" * (len(seal.FIELD) - 1)}_":'.encode(), 1)
    (tmp_path / "nokey.tflite").write_bytes(key_only)
    with pytest.raises(ModelFileError, match="content digest is missing"):
        load(tmp_path / "nokey.tflite")
    (tmp_path / "foreign.tflite").write_bytes(foreign(data))  # as an older kit wrote it: no digest, version 1
    runner = load(tmp_path / "foreign.tflite")
    assert runner.metadata["metadata_version"] == 1
    assert not seal.verify(foreign(data), "f", runner.metadata)


def test_seal_needs_exactly_one_placeholder():
    with pytest.raises(ValueError, match="exactly one"):
        seal.seal(b"no record here")
    sealed, digest = seal.seal(b'{"content_sha256":"' + seal.PLACEHOLDER.encode() + b'"}')
    assert seal.verify(sealed, "x", {seal.FIELD: digest})
    with pytest.raises(ModelFileError, match="damaged"):  # a record that disagrees with the digest in the bytes
        seal.verify(sealed, "x", {seal.FIELD: "f" * 64})


def _mutated_relu(tmp_path, change):
    """The one-op RELU model, changed through LiteRT's object API and written again."""
    s = litert_schema()
    path = relu_tflite(tmp_path / "relu.tflite")
    model = s.ModelT.InitFromPackedBuf(bytearray(path.read_bytes()), 0)
    change(s, model)
    builder = flatbuffers.Builder(256)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _set(obj, attr, value):
    setattr(obj, attr, value)


def _quantize(s, tensor, scales, zeros, axis=0):
    q = s.QuantizationParametersT()
    q.scale, q.zeroPoint, q.quantizedDimension = scales, zeros, axis
    tensor.quantization = q


@pytest.mark.parametrize("change,message", [
    (lambda s, m: _set(m.subgraphs[0].tensors[0], "buffer", 9), "names buffer 9 of 3"),
    (lambda s, m: _set(m.subgraphs[0].operators[0], "inputs", [7]), "names tensor 7 of 2"),
    (lambda s, m: _set(m.subgraphs[0].operators[0], "outputs", [-2]), "names tensor -2 of 2"),
    (lambda s, m: _set(m.subgraphs[0].operators[0], "opcodeIndex", 3), "operator code 3 of 1"),
    (lambda s, m: _set(m.subgraphs[0], "outputs", [2]), "outputs names tensor 2"),
    (lambda s, m: _set(m.subgraphs[0].tensors[1], "shape", [1, -4]), "has shape"),
    (lambda s, m: _set(m.subgraphs[0].tensors[1], "shape", [1 << 20, 1 << 20]), "would take"),
    (lambda s, m: _set(m.subgraphs[0].tensors[1], "type", 99), "unknown type 99"),
    (lambda s, m: _set(m.buffers[1], "data", np.zeros(5, np.uint8)), "5 bytes of data for shape"),
    (lambda s, m: _quantize(s, m.subgraphs[0].tensors[0], [0.1, 0.2, 0.3], [0, 0, 0], 1), "per-channel scales"),
    (lambda s, m: _quantize(s, m.subgraphs[0].tensors[0], [0.1], [0, 0]), "1 scales but 2 zero points"),
    (lambda s, m: _quantize(s, m.subgraphs[0].tensors[0], [float("nan")], [0]), "not a finite non-negative"),
    (lambda s, m: _set(m.operatorCodes[0], "version", 0), "version 0"),
    (lambda s, m: _set(m, "subgraphs", []), "no subgraph"),
])
def test_the_structure_check_names_what_is_out_of_place(tmp_path, change, message):
    data = _mutated_relu(tmp_path, change)
    with pytest.raises(ModelFileError, match="malformed") as err:
        check_structure(data, "m.tflite")
    assert message in str(err.value)
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(data)
    with pytest.raises(ModelFileError, match="malformed .*" + re.escape(message)):  # load() checks before any runtime
        load(bad)


def _offset_placeholder(s, m):
    """An exporter's placeholder for data stored past the FlatBuffer: offset 1, size 1 means none."""
    m.buffers[1].offset, m.buffers[1].size = 1, 1


@pytest.mark.parametrize("change", [
    lambda s, m: _set(m.subgraphs[0].tensors[1], "shape", [1, 1 << 25]),    # a long dimension (raw audio)
    lambda s, m: _quantize(s, m.subgraphs[0].tensors[0], [], [0]),          # zero points without scales
    _offset_placeholder,
], ids=["long-dimension", "zero-points-only", "offset-placeholder"])
def test_files_litert_accepts_pass_the_structure_check(tmp_path, change):
    from ai_edge_litert.interpreter import Interpreter

    data = _mutated_relu(tmp_path, change)
    Interpreter(model_content=data).allocate_tensors()  # LiteRT itself takes it
    check_structure(data, "ok.tflite")


def test_the_structure_check_passes_real_files_and_bad_vtables_are_caught(converted, portable, tmp_path):
    for path in (converted("int8")[0], converted("float32")[0], portable("int8")[0]):
        check_structure(path.read_bytes(), path.name)
    data = bytearray(relu_tflite(tmp_path / "r.tflite").read_bytes())
    root = int.from_bytes(data[:4], "little")
    vtable = root - int.from_bytes(data[root:root + 4], "little", signed=True)
    data[vtable:vtable + 2] = (3).to_bytes(2, "little")  # an odd vtable size
    with pytest.raises(ModelFileError, match="impossible layout"):
        check_structure(bytes(data), "r.tflite")


def _crash():
    os.write(2, b"F0000 native check failed: tensor 7 is out of range\n")
    os.kill(os.getpid(), signal.SIGABRT)


def test_a_native_crash_in_the_guarded_first_load_is_one_line_with_the_runtime_s_words():
    with pytest.raises(ModelFileError) as err:
        guard.first_load("m.tflite", os.urandom(32), _crash)
    text = str(err.value)
    assert "\n" not in text
    assert text.startswith("the runtime crashed loading m.tflite (SIGABRT)")
    assert "tensor 7 is out of range" in text  # the native message is shown, not swallowed


def test_a_hang_in_the_guarded_first_load_is_stopped_and_named():
    start = time.monotonic()
    with pytest.raises(ModelFileError, match="did not finish loading and running it within 1 s"):
        guard.first_load("m.onnx", os.urandom(32), lambda: time.sleep(30), time_limit=1)
    assert time.monotonic() - start < 10


def test_a_file_that_passed_is_not_tried_again_and_python_errors_are_left_to_the_caller():
    data = os.urandom(32)
    guard.first_load("m", data, lambda: None, key="xnnpack")
    guard.first_load("m", data, _crash, key="xnnpack")  # remembered by content and options: not loaded again
    with pytest.raises(ModelFileError, match="crashed"):  # the same file with other options is tried again
        guard.first_load("m", data, _crash, key="builtin")
    guard.first_load("m", os.urandom(32), lambda: 1 / 0)  # the caller's own load raises this one, with its message


def test_a_child_that_exits_abnormally_or_runs_out_of_memory_is_one_line():
    with pytest.raises(ModelFileError, match=r"the runtime exited with status 7 loading m\.tflite: native says no"):
        guard.first_load("m.tflite", os.urandom(32), lambda: (os.write(2, b"native says no\n"), os._exit(7)))

    def allocate():
        raise MemoryError("std::bad_alloc")

    with pytest.raises(ModelFileError, match=r"m\.tflite: loading it needs more memory"):
        guard.first_load("m.tflite", os.urandom(32), allocate)


def test_the_child_s_memory_cap_never_exceeds_the_hard_limit(monkeypatch):
    import resource

    calls = []
    monkeypatch.setattr(resource, "getrlimit", lambda which: (1 << 30, 1 << 31))
    monkeypatch.setattr(resource, "setrlimit", lambda which, limits: calls.append(limits))
    guard._limit_memory(1 << 20)
    assert calls == [(1 << 31, 1 << 31)]


def test_a_foreign_file_is_guarded_and_a_kit_file_is_not(converted, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr("edge.runtime.first_load", lambda name, data, attempt, key: calls.append(name))
    path, _ = converted("int8")
    load(path)
    assert calls == []
    (tmp_path / "f.tflite").write_bytes(foreign(path.read_bytes()))
    load(tmp_path / "f.tflite")
    assert calls == [str(tmp_path / "f.tflite")]


def test_a_record_whose_preprocessing_is_unusable_names_the_file(tmp_path):
    from converters.metadata import embed_tflite

    data = relu_tflite(tmp_path / "r.tflite").read_bytes()
    path = tmp_path / "odd.tflite"
    path.write_bytes(embed_tflite(data, {"labels": list("abcd"), "preprocessing": {"widtj": 224}}))
    with pytest.raises(ModelFileError, match=r"odd\.tflite: the preprocessing in its metadata is unusable "
                                             r"\(.*unknown keys \['widtj'\]"):
        Classifier(path)
