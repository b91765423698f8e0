"""Full int8 TFLite with activation ranges the kit chooses (`--calibration mse`).

TFLiteConverter calibrates in two steps: it runs the float model on the representative images and writes each
activation tensor's observed min/max into the model (its `_experimental_calibrate_only` result), then its MLIR
quantizer turns those ranges into scales and zero points. The kit takes the first step's model, runs it itself on
the same images to sample every calibrated tensor (converters.activation_ranges), replaces each min/max by the
range with the least quantization error, and gives the model to the same quantizer with the same arguments the
converter would pass, then deduplicates constant buffers as it does. With the ranges left as they are this gives
the converter's own bytes (tests/converters/test_quantization_quality.py).

Not rewritten: the model input (its range is the preprocessing's, exact) and the outputs of ops whose int8 output
range is fixed by the runtime (LOGISTIC, SOFTMAX, TANH).
"""

from __future__ import annotations

import numpy as np

from converters.activation_ranges import Samples

FIXED_RANGE_OPS = {14: "LOGISTIC", 25: "SOFTMAX", 28: "TANH"}  # builtin codes whose int8 output scale is fixed


def calibrated_tensors(model) -> list[int]:
    """Indices of the tensors whose calibrated ranges the kit may choose (schema ModelT, subgraph 0)."""
    graph = model.subgraphs[0]
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    fixed = {o for op in graph.operators if codes[op.opcodeIndex] in FIXED_RANGE_OPS for o in op.outputs}
    inputs = set(int(i) for i in graph.inputs)
    chosen = []
    for index, tensor in enumerate(graph.tensors):
        q = tensor.quantization
        if q is None or q.min is None or len(q.min) != 1 or index in inputs or index in fixed:
            continue
        chosen.append(index)
    return chosen


def sample_activations(calibrated: bytes, inputs: np.ndarray, tensors: list[int]) -> Samples:
    """Each tensor's values on the calibration images, run through LiteRT's builtin kernels in float."""
    from edge.runtime import RuntimeOptions, tflite_interpreter

    interpreter, _ = tflite_interpreter(calibrated, RuntimeOptions(threads=2, xnnpack=False), "the calibrated model",
                                        keep_intermediates=True)
    feed = interpreter.get_input_details()[0]["index"]
    samples = Samples()
    for x in inputs:
        interpreter.set_tensor(feed, x[None])
        interpreter.invoke()
        for index in tensors:
            samples.add(index, interpreter.get_tensor(index))
    return samples


def with_ranges(calibrated: bytes, ranges: dict[int, tuple[float, float]]) -> bytes:
    """The calibrated model with the given tensors' min/max replaced."""
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(calibrated), 0)
    tensors = model.subgraphs[0].tensors
    for index, (lo, hi) in ranges.items():
        tensors[index].quantization.min = [float(lo)]
        tensors[index].quantization.max = [float(hi)]
    builder = flatbuffers.Builder(len(calibrated) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def mse_ranges(calibrated: bytes, inputs: np.ndarray) -> dict[int, tuple[float, float]]:
    from tensorflow.lite.python import schema_py_generated as schema

    tensors = calibrated_tensors(schema.ModelT.InitFromPackedBuf(bytearray(calibrated), 0))
    return sample_activations(calibrated, inputs, tensors).mse_ranges()


def quantize(converter, choose=None, inputs: np.ndarray | None = None) -> bytes:
    """The converter's full int8 model, with `choose(calibrated, inputs) -> {tensor: (lo, hi)}` deciding the
    activation ranges (None: the converter's min/max, its own bytes)."""
    from tensorflow.lite.python.convert import deduplicate_readonly_buffers, mlir_quantize

    converter._experimental_calibrate_only = True
    calibrated = bytes(converter.convert())
    if choose is not None:
        calibrated = with_ranges(calibrated, choose(calibrated, inputs))
    quantized = mlir_quantize(calibrated, converter._experimental_disable_per_channel,
                              input_data_type=converter.inference_input_type,
                              output_data_type=converter.inference_output_type,
                              disable_per_channel_for_dense_layers=(
                                  converter._experimental_disable_per_channel_quantization_for_dense_layers))
    return bytes(deduplicate_readonly_buffers(quantized))
