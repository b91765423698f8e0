"""`inspect` on a device install (`pip install .[edge]`: no TensorFlow, keras, onnx or protobuf), and the kit's
own ONNX reader (edge.onnx_file) it reads .onnx files with: equal to the `onnx` package on real files, and a
ModelFileError, never another exception, on malformed ones."""

import json
import random
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from converters import inspect
from edge.errors import EXIT_USAGE, ModelFileError, run_cli
from edge.onnx_file import DATA_TYPES, data_type_name, parse_model, read_onnx
from edge.runtime import load
from edge.tflite_file import METADATA_NAME
from tests.helpers import relu_tflite

ROOT = Path(__file__).resolve().parents[2]
BLOCKED = ("tensorflow", "keras", "tf_keras", "onnx", "tf2onnx", "google.protobuf")

# `python -m converters.inspect ARGS` as a device install runs it: every import of BLOCKED (or below it)
# fails, and the attempts are reported on stderr (code that catches the ImportError would hide them).
DEVICE_INSPECT = textwrap.dedent(f"""
    import runpy, sys
    BLOCKED, attempts = {BLOCKED!r}, []
    class Block:
        def find_spec(self, name, path=None, target=None):
            if any(name == b or name.startswith(b + ".") for b in BLOCKED):
                attempts.append(name)
                raise ImportError("blocked: " + name)
    sys.meta_path.insert(0, Block())
    sys.argv[0] = "converters.inspect"
    try:
        runpy.run_module("converters.inspect", run_name="__main__", alter_sys=True)
    finally:
        print("blocked imports attempted:", attempts, file=sys.stderr)
""")


def _tiny_onnx(metadata: dict[str, str] | None = None, extra_domains: bool = False) -> bytes:
    """A small runnable ONNX classifier made with the onnx package: Conv (grouped) -> Relu -> Reshape -> Softmax,
    FLOAT and INT64 initializers. extra_domains: also a com.microsoft node and INT8 / FLOAT16 initializers (for
    the reader only; ONNX Runtime would not run it)."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((4, 2, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(np.zeros(4, np.float32), "b"),
             numpy_helper.from_array(np.array([-1, 16], np.int64), "shape")]
    nodes = [helper.make_node("Conv", ["input", "w", "b"], ["c"], group=2, pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Reshape", ["r", "shape"], ["flat"]),
             helper.make_node("Softmax", ["flat"], ["output"], axis=1)]
    opsets = [helper.make_opsetid("", 17)]
    if extra_domains:
        inits += [numpy_helper.from_array(np.ones(3, np.int8), "q"),
                  numpy_helper.from_array(np.ones(2, np.float16), "h")]
        nodes.append(helper.make_node("FusedGemm", ["flat", "flat"], ["unused"], domain="com.microsoft"))
        opsets.append(helper.make_opsetid("com.microsoft", 1))
    io = [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 4, 2, 2]),
          helper.make_tensor_value_info("output", TensorProto.FLOAT, [None, 16])]
    graph = helper.make_graph(nodes, "tiny", io[:1], io[1:], inits)
    model = helper.make_model(graph, opset_imports=opsets, producer_name="kit-test", producer_version="1.0")
    model.ir_version = 8
    if metadata:
        helper.set_model_props(model, metadata)
    return model.SerializeToString()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("tiny_inspect")
    onnx_path = folder / "tiny.onnx"
    onnx_path.write_bytes(_tiny_onnx({"author": "kit test"}))
    return {"tflite": relu_tflite(folder / "relu.tflite"), "onnx": onnx_path}


def _as_onnx_reports(path: Path) -> dict:
    """What the onnx package reads from a file, in the terms of inspect's output."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return {"ops": Counter(n.op_type for n in proto.graph.node),
            "opset": {o.domain or "ai.onnx": o.version for o in proto.opset_import},
            "initializer_types": list(Counter(onnx.TensorProto.DataType.Name(t.data_type)
                                              for t in proto.graph.initializer).items()),
            "metadata_props": [(p.key, p.value) for p in proto.metadata_props],
            "header": (proto.ir_version, proto.producer_name, proto.producer_version, proto.graph.name),
            "nodes": [(n.op_type, n.domain) for n in proto.graph.node],
            "io": ([i.name for i in proto.graph.input], [o.name for o in proto.graph.output])}


def _as_reader_reads(path: Path) -> dict:
    m = read_onnx(path)
    return {"ops": m.op_counts(), "opset": m.opset, "initializer_types": list(m.initializer_type_counts().items()),
            "metadata_props": list(m.metadata_props),
            "header": (m.ir_version, m.producer_name, m.producer_version, m.graph_name),
            "nodes": [(n.op_type, n.domain) for n in m.nodes], "io": (list(m.inputs), list(m.outputs))}


# (a) The reader equals the onnx package

def test_inspect_of_the_reference_onnx_equals_the_onnx_package(converted):
    path, _ = converted("float32", "onnx")
    expected = _as_onnx_reports(path)
    assert _as_reader_reads(path) == expected
    info = inspect.inspect_onnx(path)
    assert Counter(info["ops"]) == expected["ops"] and list(info["ops"]) == sorted(info["ops"])
    assert info["opset"] == expected["opset"] and info["opset"]["ai.onnx"] >= 13
    assert list(info["initializer_types"].items()) == expected["initializer_types"]
    assert json.loads(dict(expected["metadata_props"])[METADATA_NAME]) == info["metadata"]
    assert info["metadata"]["model"]["name"] and info["ops"]["Conv"] > 0


@pytest.mark.parametrize("extra_domains", [False, True], ids=["runnable", "more_domains_and_types"])
def test_the_reader_equals_the_onnx_package_on_small_models(tmp_path, extra_domains):
    path = tmp_path / "m.onnx"
    path.write_bytes(_tiny_onnx({"a": "1", "b": "é ✓", "a ": ""}, extra_domains))
    expected = _as_onnx_reports(path)
    assert _as_reader_reads(path) == expected
    if extra_domains:
        assert expected["opset"] == {"ai.onnx": 17, "com.microsoft": 1}
        assert {"INT8", "FLOAT16", "INT64", "FLOAT"} == {name for name, _ in expected["initializer_types"]}


def test_data_type_names_are_the_onnx_enum():
    import onnx

    assert DATA_TYPES == {v: k for k, v in onnx.TensorProto.DataType.items()}
    assert data_type_name(1) == "FLOAT" and data_type_name(999) == "DATA_TYPE_999"


# (b) inspect on a device install, from outside the source tree

def test_inspect_runs_with_only_the_edge_extra_outside_the_tree(tiny, converted, tmp_path):
    reference, _ = converted("float32", "onnx")
    tiny_ops = {"Conv": 1, "Relu": 1, "Reshape": 1, "Softmax": 1}
    for path, ops in ((tiny["tflite"], {"RELU v1": 1}), (tiny["onnx"], tiny_ops), (reference, None)):
        done = subprocess.run([sys.executable, "-c", DEVICE_INSPECT, str(path), "--json", "-"], capture_output=True,
                              text=True, timeout=120, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert "blocked imports attempted: []" in done.stderr, done.stderr
        info = json.loads(done.stdout)  # nothing but the JSON on stdout
        assert info["file"] == str(path) and info["ops"]
        if ops is not None:
            assert info["ops"] == ops
        if path.suffix == ".onnx":
            assert info["opset"]["ai.onnx"] >= 13 and "FLOAT" in info["initializer_types"]
    assert info["metadata"]["model"]["name"] and info["ops"]["Conv"] > 0  # the reference's kit record, read
    text = subprocess.run([sys.executable, "-c", DEVICE_INSPECT, str(reference)], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert text.returncode == 0 and "opset: {'ai.onnx'" in text.stdout and "ops: " in text.stdout, text.stderr


def test_the_import_chain_of_inspect_names_no_ml_framework():
    """Every module `converters.inspect` imports, in a fresh interpreter: none is a blocked package."""
    code = ("import sys, converters.inspect\n"
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {BLOCKED!r} or m.startswith('google.')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr


# (c) Malformed files: a ModelFileError, never another exception

def _check(data: bytes):
    """parse_model's result, or None for a ModelFileError (one line, naming the file and what to do)."""
    try:
        return parse_model(data, "fuzzed.onnx")
    except ModelFileError as exc:
        message = str(exc)
        assert "\n" not in message and message.startswith("fuzzed.onnx: ")
        assert "re-export" in message or "ONNX exporter" in message, message
        return None


def _protobuf_disagrees(model, data: bytes) -> dict | None:
    """Where protobuf also parses the bytes, what the reader read differently from it ({} for nothing);
    None where protobuf refuses them (it checks parts the reader skips: attributes, weights)."""
    import onnx

    try:
        proto = onnx.ModelProto.FromString(data)
    except Exception:
        return None
    graph = proto.graph
    theirs = {"header": (proto.ir_version, proto.producer_name, proto.producer_version, proto.domain,
                         proto.model_version, graph.name),
              "opset_import": tuple((o.domain, o.version) for o in proto.opset_import),
              "nodes": [(n.op_type, n.domain) for n in graph.node],
              "initializer_types": [t.data_type for t in graph.initializer],
              "io": ([i.name for i in graph.input], [o.name for o in graph.output]),
              "metadata_props": [(p.key, p.value) for p in proto.metadata_props]}
    ours = {"header": (model.ir_version, model.producer_name, model.producer_version, model.domain,
                       model.model_version, model.graph_name),
            "opset_import": model.opset_import, "nodes": [(n.op_type, n.domain) for n in model.nodes],
            "initializer_types": list(model.initializer_types), "io": (list(model.inputs), list(model.outputs)),
            "metadata_props": list(model.metadata_props)}
    return {key: (ours[key], theirs[key]) for key in ours if ours[key] != theirs[key]}


def test_every_truncation_is_refused_or_read_as_protobuf_reads_it():
    data = _tiny_onnx({"author": "kit test"})
    outcomes = Counter()
    for cut in range(len(data)):
        model = _check(data[:cut])
        if model is None:
            outcomes["refused"] += 1
        else:  # cut between two fields: still a well-formed (smaller) ModelProto
            assert _protobuf_disagrees(model, data[:cut]) == {}, cut
            outcomes["read"] += 1
    assert outcomes["refused"] > len(data) * 0.9 and outcomes["read"] >= 3, outcomes  # most cuts land inside a field


def test_random_bit_flips_give_a_model_file_error_or_a_model():
    data = _tiny_onnx({"author": "kit test"}, extra_domains=True)
    rng = random.Random(17)
    outcomes = Counter()
    for _ in range(3000):
        flipped = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(flipped))
            flipped[i] ^= 1 << rng.randrange(8)
        model = _check(bytes(flipped))
        if model is None:
            outcomes["refused"] += 1
            continue
        differences = _protobuf_disagrees(model, bytes(flipped))
        assert not differences, differences
        outcomes["read" if differences is None else "read as protobuf reads it"] += 1
    assert outcomes["refused"] > 100 and outcomes["read as protobuf reads it"] > 100, outcomes


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:  # a length-delimited field
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


@pytest.mark.parametrize("data, message", [
    (b"", "empty"),
    (b"\x08", "a number is cut off"),                                 # ir_version with no value
    (b"\x08" + b"\xff" * 10 + b"\x01", "longer than 10 bytes"),
    (b"\x08" + b"\xff" * 9 + b"\x7f", "over 64 bits"),
    (b"\x3a" + _varint(1 << 62) + b"\x0a\x00", "runs past the end"),    # graph claiming 4 EiB: nothing allocated
    (b"\x08\x08" + _field(7, _field(1, b"\x22\x05Rel")) + _field(14, b""), "runs past the end of its message at"),
    (b"\x08\x08" + _field(7, b"")[:-1] + b"\x05", "5 bytes at byte 4 runs past the end of the file"),
    (b"\x08\x08" + _field(14, _field(1, b"k") + _field(2, b"\xff")), "metadata entry 'k' at byte .* not valid UTF-8"),
    (b"\x08\x08" + _field(7, _field(1, _field(4, b"\xc3("))), "op type of a node .* not valid UTF-8"),
    (b"\x08\x08\x0b", "wire type 3"),                                # a (deprecated) group
    (b"\x00\x01", "field number 0"),
    (b"\x89PNG\r\n\x1a\n", "malformed"),
    (b"\x12\x04test", "not an ONNX model"),                          # a producer name and nothing else
])
def test_malformed_bytes_are_named(data, message):
    with pytest.raises(ModelFileError, match=message) as exc:
        parse_model(data, "bad.onnx")
    assert str(exc.value).startswith("bad.onnx: ") and "\n" not in str(exc.value)


def test_deep_nesting_costs_no_recursion():
    """Subgraphs inside attributes inside nodes, 2,000 levels deep (protobuf stops at 100): the reader skips
    them by their length and reads the top graph's node."""
    inner = b""
    for _ in range(2_000):
        node = _field(4, b"If") + _field(5, _field(6, _field(1, inner)))  # NodeProto.attribute.g (GraphProto).node
        inner = node
    model = parse_model(b"\x08\x08" + _field(7, _field(1, inner) + _field(2, b"top")), "deep.onnx")
    assert [n.op_type for n in model.nodes] == ["If"] and model.graph_name == "top"


def test_read_onnx_names_missing_files_and_folders(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        read_onnx(tmp_path / "none.onnx")
    with pytest.raises(ModelFileError, match="is a folder"):
        read_onnx(tmp_path)


# (d) Metadata that is not UTF-8

@pytest.mark.parametrize("where", ["value", "key"])
def test_metadata_that_is_not_utf8_is_a_model_file_error(tmp_path, where, capsys):
    data = _tiny_onnx({"regnety_edge_kit": '{"labels": ["XXXX"]}'})
    marker = b"XXXX" if where == "value" else b"regnety_edge_kit"
    path = tmp_path / "bad_meta.onnx"
    path.write_bytes(data.replace(marker, b"\xff\xfe" + marker[2:]))
    with pytest.raises(ModelFileError, match=r"bad_meta\.onnx: .*(key|value) of (a )?metadata entry.*not valid UTF-8"):
        load(path)
    assert run_cli(inspect.main, [str(path)]) == EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "not valid UTF-8" in err[0], err


def test_an_io_name_that_is_not_utf8_is_a_model_file_error(tmp_path):
    path = tmp_path / "bad_name.onnx"
    path.write_bytes(_tiny_onnx().replace(b"input", b"\xff\xfeput"))  # every use of the name: the graph stays whole
    with pytest.raises(ModelFileError, match=r"bad_name\.onnx: .*graph input or output .* is not valid UTF-8"):
        load(path)
