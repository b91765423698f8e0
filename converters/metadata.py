"""Embedding the kit's JSON record into artifacts, so the device side needs no sidecar file.

TFLite: a named entry in Model.metadata pointing at a buffer (the place LiteRT's own metadata
lives); ONNX: a `metadata_props` entry. Both under `edge.tflite_file.METADATA_NAME`; the edge side
reads them back with `edge.runtime.load(...).metadata`.
"""

from __future__ import annotations

import json

import numpy as np

from edge.tflite_file import IDENTIFIER, METADATA_NAME


def encode(record: dict) -> bytes:
    """Deterministic JSON bytes (sorted keys) for a metadata record."""
    return json.dumps(record, sort_keys=True, separators=(",", ":")).encode("utf-8")


def embed_tflite(model_bytes: bytes, record: dict) -> bytes:
    """The .tflite model with `record` as its kit metadata (replacing any earlier kit record)."""
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(model_bytes), 0)
    model.metadata = [m for m in (model.metadata or []) if _name(m.name) != METADATA_NAME]
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(encode(record), dtype=np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata.append(entry)
    builder = flatbuffers.Builder(len(model_bytes) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=IDENTIFIER)
    return bytes(builder.Output())


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
