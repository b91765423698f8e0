"""Helpers shared by the test suites."""

import importlib.util
import os
from pathlib import Path

import pytest


def require(module: str, why: str, install: str = "pip install -e '.[dev]'") -> None:
    """Skip when `module` cannot be imported, except in CI, where `make test` installs it and its absence is a broken
    setup, not a reason to skip."""
    if importlib.util.find_spec(module) is not None:
        return
    if os.environ.get("CI"):
        raise RuntimeError(f"{module} is not installed; CI must run these checks ({install}, as make test does)")
    pytest.skip(f"{module} is not installed ({install}); it is {why}")


def require_timm() -> None:
    require("timm", "the reference for this check")


def relu_tflite(path: Path) -> Path:
    """A one-op (RELU) .tflite file, written with LiteRT's schema: no TensorFlow, no conversion."""
    import flatbuffers

    from edge.tflite_file import litert_schema

    s = litert_schema()
    model = s.ModelT()
    model.version = 3
    code = s.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = s.BuiltinOperator.RELU
    code.version = 1
    model.operatorCodes = [code]
    graph = s.SubGraphT()
    graph.tensors = []
    for i, name in enumerate((b"input", b"output")):
        tensor = s.TensorT()
        tensor.shape, tensor.type, tensor.buffer, tensor.name = [1, 4], s.TensorType.FLOAT32, i + 1, name
        graph.tensors.append(tensor)
    graph.inputs, graph.outputs = [0], [1]
    op = s.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0], [1]
    graph.operators = [op]
    model.subgraphs = [graph]
    model.buffers = [s.BufferT() for _ in range(3)]
    builder = flatbuffers.Builder(256)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(bytes(builder.Output()))
    return path
