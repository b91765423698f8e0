"""Reading a .tflite file's structure without any runtime: identifier check, named metadata buffers, op codes.

A small, bounds-checked FlatBuffer reader for the two tables the kit needs (Model.metadata and
Model.buffers), so a malformed or truncated file gives a clear error before it reaches a native
interpreter, and the edge side reads the kit's metadata with no TensorFlow and no sidecar file.
"""

from __future__ import annotations

import functools
import re
import struct
from pathlib import Path

from edge.errors import MissingExtraError, ModelFileError

IDENTIFIER = b"TFL3"
METADATA_NAME = "regnety_edge_kit"  # the kit's JSON record inside the file
MAX_MODEL_BYTES = 2 << 30           # FlatBuffers' own 2 GiB limit

# Field indices in tensorflow/lite/schema/schema.fbs
_MODEL_BUFFERS, _MODEL_METADATA = 4, 6
_METADATA_NAME, _METADATA_BUFFER = 0, 1
_BUFFER_DATA, _BUFFER_OFFSET, _BUFFER_SIZE = 0, 1, 2


class FlatReader:
    """Bounds-checked reads of FlatBuffer tables and vectors: anything outside the buffer, a vtable that does not
    fit, or a vector longer than the bytes left raises ModelFileError naming the file."""

    def __init__(self, data: bytes, name: str):
        self.data, self.name = data, name

    def unpack(self, fmt: str, pos: int):
        size = struct.calcsize(fmt)
        if pos < 0 or pos + size > len(self.data):
            raise ModelFileError(f"{self.name}: truncated or malformed .tflite (offset {pos} is outside the "
                                 f"{len(self.data)}-byte file); re-export or re-copy it")
        return struct.unpack_from(fmt, self.data, pos)[0]

    def u32(self, pos: int) -> int:
        return self.unpack("<I", pos)

    def malformed(self, what: str) -> ModelFileError:
        return ModelFileError(f"{self.name}: malformed .tflite ({what}); the file is damaged: re-export or re-copy it")

    def field(self, table: int, index: int) -> int | None:
        """Absolute position of a table's field, or None when absent."""
        vtable = table - self.unpack("<i", table)
        vtable_size, object_size = self.unpack("<H", vtable), self.unpack("<H", vtable + 2)
        if vtable_size < 4 or vtable_size % 2 or object_size < 4 or table + object_size > len(self.data):
            raise self.malformed(f"a table at offset {table} has an impossible layout")
        slot = 4 + 2 * index
        if slot + 2 > vtable_size:
            return None
        offset = self.unpack("<H", vtable + slot)
        if offset and offset >= object_size:
            raise self.malformed(f"a field of the table at offset {table} lies outside it")
        return table + offset if offset else None

    def vector(self, pos: int, item: int = 1) -> tuple[int, int]:
        """(start, length) of the vector that `pos` points at; `item`: bytes per element, for the bounds check."""
        start = pos + self.u32(pos)
        length = self.u32(start)
        if start + 4 + length * item > len(self.data):
            raise self.malformed(f"a vector at offset {start} runs past the end of the file")
        return start + 4, length

    def tables(self, table: int, index: int) -> list[int]:
        pos = self.field(table, index)
        if pos is None:
            return []
        start, length = self.vector(pos, 4)
        return [start + 4 * i + self.u32(start + 4 * i) for i in range(length)]

    def floats(self, table: int, index: int) -> list[float]:
        pos = self.field(table, index)
        if pos is None:
            return []
        start, length = self.vector(pos, 4)
        return [round(self.unpack("<f", start + 4 * i), 6) for i in range(length)]

    def string(self, pos: int) -> str:
        start, length = self.vector(pos)
        if start + length > len(self.data):
            raise ModelFileError(f"{self.name}: malformed .tflite (a string runs past the end of the file)")
        return self.data[start:start + length].decode("utf-8", "replace")

    def buffer_span(self, buffer: int) -> tuple[int, int]:
        """(start, length) of a Buffer's data, read as LiteRT reads it: the data vector when it is not empty, else
        (offset, size) past the FlatBuffer when offset > 1 and size > 0 (0 and 1 are exporters' placeholders)."""
        pos = self.field(buffer, _BUFFER_DATA)
        if pos is not None:
            start, length = self.vector(pos)
            if length:
                return start, length
        off, size = self.field(buffer, _BUFFER_OFFSET), self.field(buffer, _BUFFER_SIZE)
        if off is None or size is None:
            return 0, 0
        start, length = self.unpack("<Q", off), self.unpack("<Q", size)
        if start <= 1 or length == 0:
            return 0, 0
        if start + length > len(self.data):
            raise ModelFileError(f"{self.name}: truncated .tflite (a buffer runs past the end of the file)")
        return start, length

    def buffer_bytes(self, buffer: int) -> bytes:
        start, length = self.buffer_span(buffer)
        return self.data[start:start + length]


def require_model_file(path: Path) -> None:
    """ModelFileError naming what `path` is when it is not a file: missing, or a folder."""
    if path.is_dir():
        raise ModelFileError(f"{path} is a folder, not a model file; pass the path of a .tflite or .onnx file")
    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist; pass the path of a .tflite or .onnx file")


def read_model_bytes(path: str | Path) -> bytes:
    """The file's bytes, after checking that it is a plausible .tflite file."""
    path = Path(path)
    require_model_file(path)
    size = path.stat().st_size
    if size < 16:
        raise ModelFileError(f"{path}: {size} bytes is too small to be a .tflite model; the file is truncated or empty")
    if size > MAX_MODEL_BYTES * 2:
        raise ModelFileError(f"{path}: {size:,} bytes is larger than any .tflite model can be")
    data = path.read_bytes()
    if data[4:8] != IDENTIFIER:
        raise ModelFileError(f"{path}: not a .tflite model (file identifier {data[4:8]!r}, expected {IDENTIFIER!r})")
    return data


def metadata_buffers(data: bytes, name: str = "model") -> dict[str, bytes]:
    """Every named metadata entry of a .tflite model: {name: bytes}."""
    reader = FlatReader(data, name)
    root = reader.u32(0)
    buffers = reader.tables(root, _MODEL_BUFFERS)
    out = {}
    for entry in reader.tables(root, _MODEL_METADATA):
        name_pos = reader.field(entry, _METADATA_NAME)
        index_pos = reader.field(entry, _METADATA_BUFFER)
        if name_pos is None or index_pos is None:
            continue
        index = reader.u32(index_pos)
        if index >= len(buffers):
            raise ModelFileError(f"{name}: malformed .tflite (metadata points at buffer {index} of {len(buffers)})")
        out[reader.string(name_pos)] = reader.buffer_bytes(buffers[index])
    return out


STANDARD_METADATA = "TFLITE_METADATA"  # the TFLite Metadata schema's buffer (converters.tflite_metadata writes it)
# Field indices in the TFLite Metadata schema (metadata_schema.fbs)
_MM_NAME, _MM_SUBGRAPHS, _SG_INPUTS, _SG_OUTPUTS, _TM_UNITS, _TM_FILES = 0, 3, 2, 3, 4, 6
_PU_OPTIONS_TYPE, _PU_OPTIONS, _NORMALIZATION = 0, 1, 1


def standard_metadata(data: bytes, name: str = "model") -> dict | None:
    """What MediaPipe and the LiteRT Support Library read from a .tflite file: {"name", "normalization" ({"mean",
    "std"} or None), "associated_files" (names, with those packed in the file's zip)}, or None when there is none."""
    import io
    import zipfile

    buffer = metadata_buffers(data, name).get(STANDARD_METADATA)
    if buffer is None:
        return None
    if buffer[4:8] != b"M001":
        raise ModelFileError(f"{name}: its TFLITE_METADATA is not TFLite Metadata (identifier {buffer[4:8]!r})")
    reader = FlatReader(buffer, f"{name} (TFLITE_METADATA)")
    root = reader.u32(0)
    pos = reader.field(root, _MM_NAME)
    out = {"name": reader.string(pos) if pos is not None else None, "normalization": None, "associated_files": []}
    for subgraph in reader.tables(root, _MM_SUBGRAPHS)[:1]:
        for tensor in reader.tables(subgraph, _SG_INPUTS)[:1]:
            for unit in reader.tables(tensor, _TM_UNITS):
                kind = reader.field(unit, _PU_OPTIONS_TYPE)
                if kind is not None and reader.unpack("<B", kind) == _NORMALIZATION:
                    pos = reader.field(unit, _PU_OPTIONS)
                    options = pos + reader.u32(pos)
                    out["normalization"] = {k: reader.floats(options, i) for i, k in enumerate(("mean", "std"))}
        for tensor in reader.tables(subgraph, _SG_OUTPUTS):
            out["associated_files"] += [reader.string(reader.field(f, 0)) for f in reader.tables(tensor, _TM_FILES)]
    try:
        packed = set(zipfile.ZipFile(io.BytesIO(data)).namelist())
    except (zipfile.BadZipFile, ValueError):
        packed = set()
    out["packed"] = sorted(packed)
    return out


# OperatorCode fields, and the two builtin codes the kit checks for
_OPCODE_DEPRECATED, _OPCODE_CUSTOM, _OPCODE_VERSION, _OPCODE_BUILTIN = 0, 1, 2, 3
_MODEL_OPERATOR_CODES = 1
CONV_2D, CUSTOM = 3, 32


def operator_codes(data: bytes, name: str = "model") -> list[tuple[int, str | None, int]]:
    """The model's operator codes: (builtin code, custom code or None, op version)."""
    reader = FlatReader(data, name)
    codes = []
    for entry in reader.tables(reader.u32(0), _MODEL_OPERATOR_CODES):
        pos = reader.field(entry, _OPCODE_DEPRECATED)
        deprecated = reader.unpack("<b", pos) if pos is not None else 0
        pos = reader.field(entry, _OPCODE_BUILTIN)
        builtin = reader.unpack("<i", pos) if pos is not None else 0
        pos = reader.field(entry, _OPCODE_VERSION)
        op_version = reader.unpack("<i", pos) if pos is not None else 1
        pos = reader.field(entry, _OPCODE_CUSTOM)
        codes.append((max(deprecated, builtin), reader.string(pos) if pos is not None else None, op_version))
    return codes


def litert_schema():
    """LiteRT's generated .tflite schema module (ai_edge_litert.schema_py_generated): the object API that
    reads and writes whole models, and the builtin op codes. One line naming the `edge` extra when absent."""
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:
        raise MissingExtraError("ai_edge_litert") from None
    return schema


@functools.cache
def builtin_op_names() -> dict[int, str]:
    """Builtin op code -> name (3 -> "CONV_2D"), from LiteRT's own schema. Shared: do not modify."""
    return {v: k for k, v in vars(litert_schema().BuiltinOperator).items() if not k.startswith("_")}


def builtin_op_name(code: int) -> str:
    """The builtin op's name, or the code as text for one this LiteRT does not know."""
    return builtin_op_names().get(code, str(code))


def layer_of(tensor_name: str) -> str:
    """The Keras layer a converted tensor comes from, when its name says:
    'regnety_200mf_1/s1_b1_conv2_relu_1/Relu;...' -> 's1_b1_conv2_relu'. A tensor made outside any layer
    ('regnety_200mf_split_1/split') gives its op's name; a graph input its own name."""
    parts = tensor_name.split(";")[0].split("/")
    return re.sub(r"_\d+$", "", parts[1] if len(parts) > 1 else parts[0])
