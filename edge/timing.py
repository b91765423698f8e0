"""Latency of a loaded artifact: warm-up runs, then timed runs of one batch."""

from __future__ import annotations

import time

import numpy as np


def latencies_ms(runner, inputs: np.ndarray, runs: int = 50, warmup: int = 5) -> np.ndarray:
    """Wall-clock milliseconds of `runs` calls of runner.run(inputs), after `warmup` untimed calls."""
    for _ in range(warmup):
        runner.run(inputs)
    times = np.empty(runs)
    for i in range(runs):
        start = time.perf_counter()
        runner.run(inputs)
        times[i] = (time.perf_counter() - start) * 1e3
    return times
