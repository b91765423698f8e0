"""Embedding the kit's JSON record into artifacts, so the device side needs no sidecar file.

TFLite: a named entry in Model.metadata pointing at a buffer (the place LiteRT's own metadata
lives); ONNX: a `metadata_props` entry. Both under `edge.tflite_file.METADATA_NAME`; the edge side
reads them back with `edge.runtime.load(...).metadata`. A .tflite file also gets the standard
`TFLITE_METADATA` entry and its packed labels (converters.tflite_metadata), for MediaPipe and the
LiteRT Support Library.
"""

from __future__ import annotations

import json

import numpy as np

from converters import tflite_metadata
from converters.tflite_metadata import StandardMetadata
from edge.tflite_file import IDENTIFIER, METADATA_NAME


def encode(record: dict) -> bytes:
    """Deterministic JSON bytes (sorted keys) for a metadata record."""
    return json.dumps(record, sort_keys=True, separators=(",", ":")).encode("utf-8")


def embed_tflite(model_bytes: bytes, record: dict, standard: StandardMetadata | None = None) -> bytes:
    """The .tflite model with `record` as its kit metadata, and `standard` as its TFLITE_METADATA with the labels
    packed after the flatbuffer (each replacing any earlier one; files packed earlier are dropped)."""
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    entries = {METADATA_NAME: encode(record)}
    files = {}
    if standard is not None:
        entries[tflite_metadata.BUFFER_NAME] = tflite_metadata.to_flatbuffer(standard)
        files = standard.files()
        tflite_metadata.check_size(entries[tflite_metadata.BUFFER_NAME], files)
    model = schema.ModelT.InitFromPackedBuf(bytearray(model_bytes), 0)
    _drop_entries(model, set(entries))
    for name, data in entries.items():
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(data, dtype=np.uint8)
        model.buffers.append(buffer)
        entry = schema.MetadataT()
        entry.name = name
        entry.buffer = len(model.buffers) - 1
        model.metadata.append(entry)
    builder = flatbuffers.Builder(len(model_bytes) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=IDENTIFIER)
    return tflite_metadata.pack_files(bytes(builder.Output()), files)


def _drop_entries(model, names: set[str]) -> None:
    """Remove the named metadata entries and empty their buffers (the trailing ones are removed, so embedding twice
    gives the bytes of embedding once)."""
    dropped = [m for m in (model.metadata or []) if _name(m.name) in names]
    model.metadata = [m for m in (model.metadata or []) if _name(m.name) not in names]
    for entry in dropped:
        model.buffers[entry.buffer].data = None
    freed = {entry.buffer for entry in dropped}
    while model.buffers and len(model.buffers) - 1 in freed:
        model.buffers.pop()
        freed.discard(len(model.buffers))


def _name(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def embed_onnx(proto, record: dict) -> None:
    """Set `record` as the ONNX model's kit metadata_props entry (in place)."""
    kept = [p for p in proto.metadata_props if p.key != METADATA_NAME]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    entry = proto.metadata_props.add()
    entry.key = METADATA_NAME
    entry.value = encode(record).decode("utf-8")
