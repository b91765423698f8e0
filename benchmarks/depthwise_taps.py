"""Depthwise conv latency by kernel size, XNNPACK against LiteRT's builtin kernels: the measurement behind
`--target xnnpack`'s band split of large depthwise kernels (converters/rewrite.py, split_depthwise_taps).

    .venv/bin/python benchmarks/depthwise_taps.py > benchmarks/depthwise_taps.md

One DepthwiseConv2D on a 56x56x96 map (ConvNeXt-Tiny's first stage), VALID padding, batch 1, 2 threads,
float32 and full int8 (calibrated on 8 random maps); p50 of 30 runs after one warm-up. About two minutes.
"""

from __future__ import annotations

import os
import sys
import time
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

SIZE, CHANNELS, RUNS = 56, 96, 30
KERNELS = [(3, 3), (2, 5), (4, 4), (3, 7), (7, 3), (5, 5), (5, 7), (6, 6), (7, 7), (9, 9)]


def p50_ms(data: bytes, xnnpack: bool, x: np.ndarray) -> float:
    from edge.runtime import RuntimeOptions, tflite_interpreter

    interpreter, _ = tflite_interpreter(data, RuntimeOptions(threads=2, xnnpack=xnnpack), "probe")
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        interpreter.invoke()
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e3


def main() -> int:
    import keras
    from keras import layers

    from converters.tflite_converter import to_tflite

    maps = np.random.default_rng(0).standard_normal((8, SIZE, SIZE, CHANNELS)).astype(np.float32)
    calibration = types.SimpleNamespace(inputs=maps, names=[f"map{i}" for i in range(len(maps))])
    print(f"Depthwise conv on {SIZE}x{SIZE}x{CHANNELS}, VALID, batch 1, 2 threads, p50 ms of {RUNS} runs "
          f"(`benchmarks/depthwise_taps.py`)\n")
    print("| kernel | taps | float32 XNNPACK | float32 builtin | int8 XNNPACK | int8 builtin |")
    print("| --- | --- | --- | --- | --- | --- |")
    for kh, kw in KERNELS:
        inputs = keras.Input((SIZE, SIZE, CHANNELS), batch_size=1)
        model = keras.Model(inputs, layers.DepthwiseConv2D((kh, kw))(inputs))
        cells = []
        for precision in ("float32", "int8"):
            data = to_tflite(model, precision, calibration if precision == "int8" else None)
            cells += [f"{p50_ms(data, xnnpack, maps[:1]):.3f}" for xnnpack in (True, False)]
        print(f"| {kh}x{kw} | {kh * kw} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
