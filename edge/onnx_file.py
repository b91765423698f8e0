"""Reading an .onnx file's structure without the `onnx` package: a small, bounds-checked protobuf reader.

An .onnx file is one serialized `ModelProto` (onnx/onnx.proto, proto2). This module reads its wire
format directly (no `onnx`, no `protobuf` import), for what `inspect` shows and the edge side needs:
the IR version, producer, opset imports, the main graph's nodes (op type and domain), initializer
data types, graph inputs and outputs, and the model's `metadata_props` (where the kit's record lives).

Every read is checked against the end of its message: a truncated number, a length that runs past its
message, a wire type protobuf does not define, or text that is not UTF-8 is a ModelFileError naming the
file, never another exception. Work is bounded by the file: nothing is allocated or copied but the
strings read, each inside the file; every field the reader does not need (weights, attributes,
subgraphs, docs) is skipped by its length without being descended into, so a deeply nested file costs
no recursion: the reader descends three messages at most (model, graph, node / tensor / value info).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from edge.errors import ModelFileError
from edge.tflite_file import require_model_file

MAX_MODEL_BYTES = 2 << 30  # protobuf's limit on one message; larger models keep their weights in external files

# Field numbers in onnx/onnx.proto (checked against onnx 1.23's copy)
_MODEL_IR_VERSION, _MODEL_PRODUCER_NAME, _MODEL_PRODUCER_VERSION, _MODEL_DOMAIN = 1, 2, 3, 4
_MODEL_MODEL_VERSION, _MODEL_GRAPH, _MODEL_OPSET_IMPORT, _MODEL_METADATA_PROPS = 5, 7, 8, 14
_GRAPH_NODE, _GRAPH_NAME, _GRAPH_INITIALIZER, _GRAPH_INPUT, _GRAPH_OUTPUT = 1, 2, 5, 11, 12
_NODE_OP_TYPE, _NODE_DOMAIN = 4, 7
_TENSOR_DATA_TYPE = 2
_VALUE_INFO_NAME = 1
_OPSET_DOMAIN, _OPSET_VERSION = 1, 2
_ENTRY_KEY, _ENTRY_VALUE = 1, 2

# Wire types (protobuf encoding): groups (3, 4) are deprecated and never written by ONNX; 6 and 7 do not exist
_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5
_MAX_FIELD_NUMBER = (1 << 29) - 1

# TensorProto.DataType
DATA_TYPES = {
    0: "UNDEFINED", 1: "FLOAT", 2: "UINT8", 3: "INT8", 4: "UINT16", 5: "INT16", 6: "INT32", 7: "INT64",
    8: "STRING", 9: "BOOL", 10: "FLOAT16", 11: "DOUBLE", 12: "UINT32", 13: "UINT64", 14: "COMPLEX64",
    15: "COMPLEX128", 16: "BFLOAT16", 17: "FLOAT8E4M3FN", 18: "FLOAT8E4M3FNUZ", 19: "FLOAT8E5M2",
    20: "FLOAT8E5M2FNUZ", 21: "UINT4", 22: "INT4", 23: "FLOAT4E2M1", 24: "FLOAT8E8M0", 25: "UINT2", 26: "INT2",
    27: "FLOAT6E2M3", 28: "FLOAT6E3M2",
}


def data_type_name(code: int) -> str:
    """TensorProto.DataType's name for a code (1 -> "FLOAT"); "DATA_TYPE_<code>" for one this table lacks."""
    return DATA_TYPES.get(code, f"DATA_TYPE_{code}")


@dataclass(frozen=True)
class Node:
    op_type: str
    domain: str = ""   # "" is the default ONNX domain (ai.onnx)


@dataclass(frozen=True)
class OnnxModel:
    """What the reader takes from a ModelProto; fields a file leaves out keep protobuf's defaults."""

    ir_version: int = 0
    producer_name: str = ""
    producer_version: str = ""
    domain: str = ""
    model_version: int = 0
    opset_import: tuple[tuple[str, int], ...] = ()        # (domain, version) in file order
    graph_name: str = ""
    nodes: tuple[Node, ...] = ()                          # the main graph's, in file order (not subgraphs')
    initializer_types: tuple[int, ...] = ()               # TensorProto.data_type of each initializer
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    metadata_props: tuple[tuple[str, str], ...] = ()      # (key, value) in file order

    @property
    def opset(self) -> dict[str, int]:
        """{domain: version}, the default domain named "ai.onnx" (a repeated domain: its last entry)."""
        return {domain or "ai.onnx": version for domain, version in self.opset_import}

    def op_counts(self) -> Counter:
        """How many nodes of each op type the main graph holds."""
        return Counter(node.op_type for node in self.nodes)

    def initializer_type_counts(self) -> Counter:
        """Initializers per data type name ("FLOAT": 42), in order of first appearance."""
        return Counter(data_type_name(code) for code in self.initializer_types)

    @property
    def metadata(self) -> dict[str, str]:
        """metadata_props as a dict (a repeated key: its last value)."""
        return dict(self.metadata_props)


class _Wire:
    """Field iteration over protobuf wire format, every position checked against its message's end."""

    def __init__(self, data: bytes, name: str):
        self.data, self.name = data, name

    def error(self, detail: str) -> ModelFileError:
        return ModelFileError(f"{self.name}: truncated or malformed ONNX model ({detail}); re-export it or copy "
                              f"it again")

    def varint(self, pos: int, end: int) -> tuple[int, int]:
        """(value, position after it): at most 10 bytes, the value below 2**64."""
        data, value, shift = self.data, 0, 0
        while True:
            if pos >= end:
                raise self.error(f"a number is cut off at byte {pos}")
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                break
            shift += 7
            if shift >= 70:
                raise self.error(f"a number longer than 10 bytes ends at byte {pos}")
        if value >> 64:
            raise self.error(f"a number over 64 bits ends at byte {pos}")
        return value, pos

    def fields(self, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
        """(field number, wire type, value, end) for each field in data[start:end]: for a varint the number
        itself, else the position of the field's bytes (a length-delimited field's are data[value:end])."""
        pos = start
        while pos < end:
            tag_at = pos
            tag, pos = self.varint(pos, end)
            number, wire = tag >> 3, tag & 7
            if not 0 < number <= _MAX_FIELD_NUMBER:
                raise self.error(f"field number {number} at byte {tag_at}")
            if wire == _VARINT:
                value, pos = self.varint(pos, end)
            elif wire == _LENGTH:
                length, value = self.varint(pos, end)
                if length > end - value:
                    raise self.error(f"a field of {length:,} bytes at byte {value} runs past the end of "
                                     + ("the file" if end == len(self.data) else f"its message at byte {end}"))
                pos = value + length
            elif wire in (_FIXED64, _FIXED32):
                size = 8 if wire == _FIXED64 else 4
                if size > end - pos:
                    raise self.error(f"a {size}-byte number at byte {pos} runs past the end of "
                                     + ("the file" if end == len(self.data) else f"its message at byte {end}"))
                value, pos = pos, pos + size
            else:
                raise self.error(f"wire type {wire} (field {number}) at byte {tag_at}")
            yield number, wire, value, pos

    def text(self, start: int, end: int, what: str) -> str:
        try:
            return self.data[start:end].decode("utf-8")
        except UnicodeDecodeError:
            raise self.error(f"the {what} at byte {start} is not valid UTF-8") from None


def _int64(value: int) -> int:
    return value - (1 << 64) if value >> 63 else value


def _int32(value: int) -> int:  # protobuf keeps the low 32 bits of an int32 written as a varint
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >> 31 else value


class _Model:
    """The parse of one ModelProto: each message type read by its own method, one level at a time."""

    def __init__(self, wire: _Wire):
        self.wire = wire
        self.scalars: dict[str, object] = {}
        self.opsets: list[tuple[str, int]] = []
        self.nodes: list[Node] = []
        self.initializers: list[int] = []
        self.inputs: list[str] = []
        self.outputs: list[str] = []
        self.props: list[tuple[str, str]] = []
        self.seen_graph = False

    def model(self, start: int, end: int) -> None:
        w, s = self.wire, self.scalars
        strings = {_MODEL_PRODUCER_NAME: ("producer_name", "producer name"),
                   _MODEL_PRODUCER_VERSION: ("producer_version", "producer version"),
                   _MODEL_DOMAIN: ("domain", "model domain")}
        for number, wire, value, stop in w.fields(start, end):
            if wire == _VARINT and number == _MODEL_IR_VERSION:
                s["ir_version"] = _int64(value)
            elif wire == _VARINT and number == _MODEL_MODEL_VERSION:
                s["model_version"] = _int64(value)
            elif wire != _LENGTH:
                continue  # an unknown field, or a known one with another wire type: protobuf keeps it as unknown
            elif number in strings:
                s[strings[number][0]] = w.text(value, stop, strings[number][1])
            elif number == _MODEL_GRAPH:
                self.seen_graph = True
                self.graph(value, stop)  # a repeated message field merges, as protobuf does
            elif number == _MODEL_OPSET_IMPORT:
                self.opsets.append(self.opset(value, stop))
            elif number == _MODEL_METADATA_PROPS:
                self.props.append(self.entry(value, stop))

    def graph(self, start: int, end: int) -> None:
        w = self.wire
        for number, wire, value, stop in w.fields(start, end):
            if wire != _LENGTH:
                continue
            if number == _GRAPH_NODE:
                self.nodes.append(self.node(value, stop))
            elif number == _GRAPH_INITIALIZER:
                self.initializers.append(self.tensor_type(value, stop))
            elif number == _GRAPH_NAME:
                self.scalars["graph_name"] = w.text(value, stop, "graph name")
            elif number in (_GRAPH_INPUT, _GRAPH_OUTPUT):
                (self.inputs if number == _GRAPH_INPUT else self.outputs).append(self.value_info_name(value, stop))

    def node(self, start: int, end: int) -> Node:
        op_type = domain = ""
        for number, wire, value, stop in self.wire.fields(start, end):
            if wire == _LENGTH and number == _NODE_OP_TYPE:
                op_type = self.wire.text(value, stop, "op type of a node")
            elif wire == _LENGTH and number == _NODE_DOMAIN:
                domain = self.wire.text(value, stop, "domain of a node")
        return Node(op_type, domain)

    def tensor_type(self, start: int, end: int) -> int:
        data_type = 0
        for number, wire, value, _ in self.wire.fields(start, end):
            if wire == _VARINT and number == _TENSOR_DATA_TYPE:
                data_type = _int32(value)
        return data_type

    def value_info_name(self, start: int, end: int) -> str:
        name = ""
        for number, wire, value, stop in self.wire.fields(start, end):
            if wire == _LENGTH and number == _VALUE_INFO_NAME:
                name = self.wire.text(value, stop, "name of a graph input or output")
        return name

    def opset(self, start: int, end: int) -> tuple[str, int]:
        domain, version = "", 0
        for number, wire, value, stop in self.wire.fields(start, end):
            if wire == _LENGTH and number == _OPSET_DOMAIN:
                domain = self.wire.text(value, stop, "domain of an opset import")
            elif wire == _VARINT and number == _OPSET_VERSION:
                version = _int64(value)
        return domain, version

    def entry(self, start: int, end: int) -> tuple[str, str]:
        key = text = ""
        for number, wire, value, stop in self.wire.fields(start, end):
            if wire == _LENGTH and number == _ENTRY_KEY:
                key = self.wire.text(value, stop, "key of a metadata entry")
            elif wire == _LENGTH and number == _ENTRY_VALUE:
                text = self.wire.text(value, stop, f"value of metadata entry {key!r}" if key else
                                      "value of a metadata entry")
        return key, text

    def result(self) -> OnnxModel:
        return OnnxModel(**self.scalars, opset_import=tuple(self.opsets),  # type: ignore[arg-type]
                         nodes=tuple(self.nodes), initializer_types=tuple(self.initializers), inputs=tuple(self.inputs),
                         outputs=tuple(self.outputs), metadata_props=tuple(self.props))


def parse_model(data: bytes, name: str = "model") -> OnnxModel:
    """The structure of a serialized ModelProto; ModelFileError (naming `name`) for anything malformed."""
    data = bytes(data)
    if not data:
        raise ModelFileError(f"{name}: the file is empty, not an ONNX model; re-export it or copy it again")
    parse = _Model(_Wire(data, name))
    parse.model(0, len(data))
    if "ir_version" not in parse.scalars and not parse.seen_graph:
        raise ModelFileError(f"{name}: not an ONNX model (it has neither an IR version nor a graph); pass an .onnx "
                             f"file written by an ONNX exporter")
    return parse.result()


def read_onnx(path: str | Path) -> OnnxModel:
    """The structure of an .onnx file, after checking that it is a file of a plausible size."""
    return read_onnx_bytes(path)[0]


def read_onnx_bytes(path: str | Path) -> tuple[OnnxModel, bytes]:
    """read_onnx's structure and the bytes it was read from (the runtime checks them too: read once)."""
    path = Path(path)
    require_model_file(path)
    size = path.stat().st_size
    if size > MAX_MODEL_BYTES:
        raise ModelFileError(f"{path}: {size:,} bytes is larger than one ONNX protobuf can be (2 GiB); keep the "
                             f"weights in external data files")
    data = path.read_bytes()
    return parse_model(data, str(path)), data
