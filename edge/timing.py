"""Latency: warm-up calls, then timed calls, wall clock. The kit's one timing loop."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def call_latencies_ms(call: Callable, *args, runs: int = 50, warmup: int = 5) -> np.ndarray:
    """Wall-clock milliseconds of `runs` calls of call(*args), after `warmup` untimed calls."""
    for _ in range(warmup):
        call(*args)
    times = np.empty(runs)
    for i in range(runs):
        start = time.perf_counter()
        call(*args)
        times[i] = (time.perf_counter() - start) * 1e3
    return times


def latencies_ms(runner, inputs: np.ndarray, runs: int = 50, warmup: int = 5) -> np.ndarray:
    """Wall-clock milliseconds of `runs` calls of runner.run(inputs), after `warmup` untimed calls."""
    return call_latencies_ms(runner.run, inputs, runs=runs, warmup=warmup)
