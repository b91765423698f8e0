"""The whole .tflite structure checked before a native interpreter sees it.

LiteRT's interpreter trusts most of a model's indices: a flipped bit in a tensor's buffer index, an operator's
input list or a quantization table can make `allocate_tensors` read out of bounds and abort the process. This
walks every table the interpreter reads — operator codes, buffers, each subgraph's tensors, operators, inputs and
outputs, signatures — and checks each index, length, shape and quantization parameter, so such a file
is refused in one line. What a structure check cannot see (a weight's value, an option's meaning) is left to the
content digest (edge.seal) for the kit's own files and to the guarded first load (edge.guard) for the others.
"""

from __future__ import annotations

import math

from edge.tflite_file import FlatReader

# Field indices in tensorflow/lite/schema/schema.fbs
_MODEL = {"version": 0, "operator_codes": 1, "subgraphs": 2, "buffers": 4, "metadata": 6, "signature_defs": 7}
_OPCODE_VERSION, _OPCODE_BUILTIN = 2, 3
_SG_TENSORS, _SG_INPUTS, _SG_OUTPUTS, _SG_OPERATORS = 0, 1, 2, 3
_T_SHAPE, _T_TYPE, _T_BUFFER, _T_NAME, _T_QUANT, _T_SPARSITY, _T_SIGNATURE = 0, 1, 2, 3, 4, 6, 7
_OP_OPCODE, _OP_INPUTS, _OP_OUTPUTS, _OP_OPTIONS, _OP_INTERMEDIATES, _OP_OPTIONS_2 = 0, 1, 2, 4, 8, 12
_Q_MIN, _Q_MAX, _Q_SCALE, _Q_ZERO, _Q_DIM = 0, 1, 2, 3, 6
_SIG_INPUTS, _SIG_OUTPUTS, _SIG_SUBGRAPH, _TENSORMAP_INDEX = 0, 1, 4, 1

# Bytes per element of each TensorType (None: variable or packed below a byte, not size-checked)
_ITEM_BYTES = [4, 2, 4, 1, 8, None, 1, 2, 8, 1, 8, 16, 8, None, None, 4, 2, None, 2, None, None, 1, 1]
MAX_DIM = (1 << 31) - 1     # TFLite's dimensions are int32
MAX_TENSOR_BYTES = 1 << 32   # no tensor the kit can run holds more than 4 GiB


def check_structure(data: bytes, name: str) -> None:
    """ModelFileError naming the first thing out of place in the model's structure."""
    reader = FlatReader(data, name)
    root = reader.u32(0)
    opcodes = reader.tables(root, _MODEL["operator_codes"])
    for i, code in enumerate(opcodes):
        version = _scalar(reader, code, _OPCODE_VERSION, "<i", 1)
        builtin = _scalar(reader, code, _OPCODE_BUILTIN, "<i", 0)
        if not 1 <= version <= 1000 or builtin < 0:
            raise reader.malformed(f"operator code {i} has builtin {builtin}, version {version}")
    buffers = reader.tables(root, _MODEL["buffers"])
    buffer_sizes = [reader.buffer_span(b)[1] for b in buffers]
    subgraphs = reader.tables(root, _MODEL["subgraphs"])
    if not subgraphs:
        raise reader.malformed("it has no subgraph")
    tensor_counts = [_check_subgraph(reader, i, sg, len(opcodes), buffer_sizes) for i, sg in enumerate(subgraphs)]
    for signature in reader.tables(root, _MODEL["signature_defs"]):
        index = _scalar(reader, signature, _SIG_SUBGRAPH, "<I", 0)
        if index >= len(subgraphs):
            raise reader.malformed(f"a signature names subgraph {index} of {len(subgraphs)}")
        for slot in (_SIG_INPUTS, _SIG_OUTPUTS):
            for entry in reader.tables(signature, slot):
                tensor = _scalar(reader, entry, _TENSORMAP_INDEX, "<I", 0)
                if tensor >= tensor_counts[index]:
                    raise reader.malformed(f"a signature names tensor {tensor} of {tensor_counts[index]}")


def _scalar(reader: FlatReader, table: int, index: int, fmt: str, default):
    pos = reader.field(table, index)
    return reader.unpack(fmt, pos) if pos is not None else default


def _ints(reader: FlatReader, table: int, index: int, fmt: str = "<i") -> list[int]:
    size = 8 if fmt[-1] in "qQ" else 4
    return [reader.unpack(fmt, pos) for pos in _positions(reader, table, index, size)]


def _check_indices(reader: FlatReader, where: str, indices: list[int], count: int, optional: bool) -> None:
    for i in indices:
        if not (-1 if optional else 0) <= i < count:
            raise reader.malformed(f"{where} names tensor {i} of {count}")


def _check_subgraph(reader: FlatReader, number: int, subgraph: int, opcodes: int, buffer_sizes: list[int]) -> int:
    tensors = reader.tables(subgraph, _SG_TENSORS)
    for i, tensor in enumerate(tensors):
        _check_tensor(reader, f"subgraph {number} tensor {i}", tensor, buffer_sizes)
    count = len(tensors)
    _check_indices(reader, f"subgraph {number}'s inputs", _ints(reader, subgraph, _SG_INPUTS), count, False)
    _check_indices(reader, f"subgraph {number}'s outputs", _ints(reader, subgraph, _SG_OUTPUTS), count, False)
    for i, op in enumerate(reader.tables(subgraph, _SG_OPERATORS)):
        where = f"subgraph {number} operator {i}"
        opcode = _scalar(reader, op, _OP_OPCODE, "<I", 0)
        if opcode >= opcodes:
            raise reader.malformed(f"{where} uses operator code {opcode} of {opcodes}")
        for slot in (_OP_INPUTS, _OP_OUTPUTS, _OP_INTERMEDIATES):
            _check_indices(reader, where, _ints(reader, op, slot), count, optional=True)
        for slot in (_OP_OPTIONS, _OP_OPTIONS_2):  # the options tables must at least be tables
            pos = reader.field(op, slot)
            if pos is not None:
                reader.field(pos + reader.u32(pos), 0)
    return count


def _check_tensor(reader: FlatReader, where: str, tensor: int, buffer_sizes: list[int]) -> None:
    shape = _ints(reader, tensor, _T_SHAPE)
    if any(not 0 <= d <= MAX_DIM for d in shape):
        raise reader.malformed(f"{where} has shape {shape}")
    if any(not -1 <= d <= MAX_DIM for d in _ints(reader, tensor, _T_SIGNATURE)):
        raise reader.malformed(f"{where} has an impossible shape signature")
    kind = _scalar(reader, tensor, _T_TYPE, "<b", 0)
    if not 0 <= kind < len(_ITEM_BYTES):
        raise reader.malformed(f"{where} has unknown type {kind} (damaged, or a type newer than this kit reads)")
    item = _ITEM_BYTES[kind]
    elements = math.prod(shape)
    if item is not None and elements * item > MAX_TENSOR_BYTES:
        raise reader.malformed(f"{where} would take {elements * item:,} bytes")
    buffer = _scalar(reader, tensor, _T_BUFFER, "<I", 0)
    if buffer >= len(buffer_sizes):
        raise reader.malformed(f"{where} names buffer {buffer} of {len(buffer_sizes)}")
    size = buffer_sizes[buffer]
    if size and item is not None and reader.field(tensor, _T_SPARSITY) is None and size != elements * item:
        raise reader.malformed(f"{where} has {size} bytes of data for shape {shape}")
    name = reader.field(tensor, _T_NAME)
    if name is not None:
        reader.string(name)
    quant = reader.field(tensor, _T_QUANT)
    if quant is not None:
        _check_quantization(reader, where, quant + reader.u32(quant), shape)


def _check_quantization(reader: FlatReader, where: str, table: int, shape: list[int]) -> None:
    scales = [reader.unpack("<f", p) for p in _positions(reader, table, _Q_SCALE, 4)]
    zeros = _ints(reader, table, _Q_ZERO, "<q")
    for slot in (_Q_MIN, _Q_MAX):
        _positions(reader, table, slot, 4)
    if any(not math.isfinite(s) or s < 0 for s in scales):
        raise reader.malformed(f"{where} has a quantization scale that is not a finite non-negative number")
    if zeros and scales and len(zeros) != len(scales):
        raise reader.malformed(f"{where} has {len(scales)} scales but {len(zeros)} zero points")
    if len(scales) > 1:
        axis = _scalar(reader, table, _Q_DIM, "<i", 0)
        if not 0 <= axis < len(shape) or shape[axis] != len(scales):
            raise reader.malformed(f"{where} has {len(scales)} per-channel scales on axis {axis} of shape {shape}")


def _positions(reader: FlatReader, table: int, index: int, size: int) -> list[int]:
    pos = reader.field(table, index)
    if pos is None:
        return []
    start, length = reader.vector(pos, size)
    return [start + size * i for i in range(length)]
