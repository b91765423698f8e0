"""Full int8 TFLite with activation ranges the kit chooses (`--calibration mse`).

TFLiteConverter calibrates in two steps: it runs the float model on the representative images and writes each
activation tensor's observed min/max into the model (its `_experimental_calibrate_only` result), then its MLIR
quantizer turns those ranges into scales and zero points. The kit lets the converter's pass see one image (it only
marks which tensors are calibrated), runs that model itself on all the calibration images through LiteRT's builtin
kernels, writes every calibrated tensor's range, and gives the model to the same quantizer with the arguments the
converter would pass, then deduplicates constant buffers as it does. With the exact min/max written back
(`method="minmax"`) this gives the converter's own model (tests/converters/test_quantization_quality.py); with
"mse", each range is the one with the least quantization error (converters.activation_ranges).

Kept at their exact min/max: the model input (its range is the preprocessing's) and the outputs of ops whose int8
output range is fixed by the runtime (LOGISTIC, SOFTMAX, TANH).
"""

from __future__ import annotations

import sys

import numpy as np

from converters.activation_ranges import Samples
from converters.tflite_model import packed, unpacked

FIXED_RANGE_OPS = {14: "LOGISTIC", 25: "SOFTMAX", 28: "TANH"}  # builtin codes whose int8 output scale is fixed


def calibrated_tensors(model) -> tuple[list[int], set[int]]:
    """(indices of every tensor with a calibrated range, those whose range stays exact) in a schema ModelT."""
    graph = model.subgraphs[0]
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    exact = {o for op in graph.operators if codes[op.opcodeIndex] in FIXED_RANGE_OPS for o in op.outputs}
    exact |= {int(i) for i in graph.inputs}
    calibrated = [index for index, tensor in enumerate(graph.tensors)
                  if tensor.quantization is not None and tensor.quantization.min is not None
                  and len(tensor.quantization.min) == 1]
    return calibrated, exact & set(calibrated)


def sample_activations(calibrated: bytes, inputs: np.ndarray, tensors: list[int], exact: set[int],
                       progress=None) -> Samples:
    """Each tensor's bounds (and, outside `exact`, a sample of its values) on the calibration images, run through
    LiteRT's builtin kernels in float."""
    from tqdm import tqdm

    from edge.runtime import RuntimeOptions, tflite_interpreter

    interpreter, _ = tflite_interpreter(calibrated, RuntimeOptions(threads=2, xnnpack=False), "the calibrated model",
                                        keep_intermediates=True)
    feed = interpreter.get_input_details()[0]["index"]
    samples = Samples()
    for x in tqdm(inputs, desc="calibrating", unit="img", leave=False, disable=None, file=progress or sys.stderr):
        interpreter.set_tensor(feed, x[None])
        interpreter.invoke()
        for index in tensors:
            samples.add(index, interpreter.get_tensor(index), keep_values=index not in exact)
    return samples


def with_ranges(model, ranges: dict[int, tuple[float, float]], size: int) -> bytes:
    """The calibrated model (a schema ModelT) with the given tensors' min/max replaced, as bytes."""
    tensors = model.subgraphs[0].tensors
    for index, (lo, hi) in ranges.items():
        tensors[index].quantization.min = [float(lo)]
        tensors[index].quantization.max = [float(hi)]
    return packed(model, size)


def choose_ranges(calibrated: bytes, inputs: np.ndarray, method: str = "mse", progress=None,
                  model=None) -> dict[int, tuple[float, float]]:
    """Every calibrated tensor's range on `inputs`: "minmax" the exact min/max (what the converter's calibrator
    records), "mse" the least quantization error (exact where the range must stay exact). `model`: the calibrated
    bytes already unpacked, when the caller has them."""
    tensors, exact = calibrated_tensors(unpacked(calibrated) if model is None else model)
    samples = sample_activations(calibrated, inputs, tensors, exact if method == "mse" else set(tensors), progress)
    chosen = samples.mse_ranges() if method == "mse" else {}
    return {index: chosen.get(index, samples.bounds[index]) for index in tensors}


KIND = "tflite-ranges"


def cached_ranges(calibrated: bytes, inputs: np.ndarray, method: str = "mse", progress=None,
                  model=None) -> dict[int, tuple[float, float]]:
    """choose_ranges, kept in the cache folder (edge.cache) under a key of the calibrated model's bytes (its
    graph and weights), the images, the method, and the code and settings that choose them."""
    import tensorflow as tf

    from converters import activation_ranges
    from edge import cache
    from edge.runtime import _tflite_interpreter_class

    if cache.cache_dir() is None:
        return choose_ranges(calibrated, inputs, method, progress, model)
    key = cache.Key(f"{KIND} v1").versions(tf).facts(method=method, runtime=_tflite_interpreter_class()[1])
    key.settings(activation_ranges, sys.modules[__name__])
    key.sources("converters/tflite_ranges.py", "converters/activation_ranges.py", "converters/tflite_model.py",
                "edge/runtime.py")
    key = key.data(calibrated).array(np.asarray(inputs, np.float32)).hexdigest()
    stored = cache.read(KIND, key)
    if stored is not None and set(stored) == {"tensors", "ranges"}:
        return {int(i): (float(lo), float(hi)) for i, (lo, hi) in zip(stored["tensors"], stored["ranges"])}
    ranges = choose_ranges(calibrated, inputs, method, progress, model)
    tensors = np.array(sorted(ranges), np.int64)
    cache.write(KIND, key, {"tensors": tensors, "ranges": np.array([ranges[i] for i in tensors], np.float64)})
    return ranges


def quantize(converter, inputs: np.ndarray, method: str = "mse", progress=None) -> bytes:
    """The converter's full int8 model with the kit's activation ranges (see the module). progress: the stream for
    the calibration progress bar (default stderr)."""
    from tensorflow.lite.python.convert import deduplicate_readonly_buffers, mlir_quantize

    converter._experimental_calibrate_only = True
    converter.representative_dataset = lambda: iter([[inputs[:1]]])  # marks the calibrated tensors; ranges: below
    calibrated = bytes(converter.convert())
    model = unpacked(calibrated)
    calibrated = with_ranges(model, cached_ranges(calibrated, inputs, method, progress, model), len(calibrated))
    quantized = mlir_quantize(calibrated, converter._experimental_disable_per_channel,
                              input_data_type=converter.inference_input_type,
                              output_data_type=converter.inference_output_type,
                              disable_per_channel_for_dense_layers=(
                                  converter._experimental_disable_per_channel_quantization_for_dense_layers))
    return bytes(deduplicate_readonly_buffers(quantized))
