"""What the op-form benchmarks share (benchmarks/pointwise_forms.py, grouped_forms.py, interleaved.py): small
tf.functions converted to TFLite, interpreters on LiteRT's builtin kernels, and interleaved timing, so that load from
elsewhere on the machine falls on every case alike."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def converted(fn, int8: bool, sample: Callable[[], np.ndarray]) -> bytes:
    """`fn` (a tf.function with a fixed input signature) as TFLite: float32, or full int8 with int8 input and output,
    calibrated on 8 inputs from `sample()`."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn)
    if int8:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([sample()] for _ in range(8))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = converter.inference_output_type = tf.int8
    return converter.convert()


def builtin_interpreter(data: bytes, name: str, threads: int = 1):
    """(a LiteRT interpreter of `data` on the builtin kernels, fed zeros and run 10 times; the runtime's name)."""
    from edge.runtime import RuntimeOptions, tflite_interpreter

    interpreter, runtime = tflite_interpreter(data, RuntimeOptions(threads=threads, xnnpack=False), name)
    detail = interpreter.get_input_details()[0]
    interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
    for _ in range(10):
        interpreter.invoke()
    return interpreter, runtime


def interleaved(calls: list[Callable[[], object]], rounds: int, seed: int = 0) -> list[list[float]]:
    """Each call's wall times in ms: `rounds` rounds, each running every call once, in a shuffled order."""
    times: list[list[float]] = [[] for _ in calls]
    order = np.random.default_rng(seed)
    for _ in range(rounds):
        for i in order.permutation(len(calls)):
            start = time.perf_counter()
            calls[i]()
            times[i].append((time.perf_counter() - start) * 1e3)
    return times
