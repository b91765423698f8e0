"""A .tflite file as TensorFlow's object API sees it (schema ModelT), and back: for the converters' edits of
converted models (the serving signature, calibrated ranges)."""

from __future__ import annotations


def unpacked(data: bytes):
    """The file's schema ModelT (tensorflow.lite.python.schema_py_generated)."""
    from tensorflow.lite.python import schema_py_generated as schema

    return schema.ModelT.InitFromPackedBuf(bytearray(data), 0)


def packed(model, size: int) -> bytes:
    """A schema ModelT written back as .tflite bytes; `size`: the unpacked file's, for the builder's first
    allocation."""
    import flatbuffers

    builder = flatbuffers.Builder(size + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
