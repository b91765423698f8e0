"""Timing the Keras reference at its best, for edge.benchmark's side-by-side ratios (needs TensorFlow).

`python -m converters.reference_timing --variant 200mf --threads 2 --runs 50 --warmup 5 --batch 8` prints
one JSON row in edge.benchmark's schema: the faster of a traced tf.function and an XLA-compiled one.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

import numpy as np

from edge.errors import run_cli


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m converters.reference_timing")
    parser.add_argument("--variant", default="200mf")
    parser.add_argument("--flavour", default="paper")
    parser.add_argument("--weights")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args(argv)
    import resource

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from converters.source import load_source
    from models.complexity import count_macs

    start = time.perf_counter()
    source = load_source(args.variant, args.flavour, args.weights, log=lambda m: None)
    load_ms = (time.perf_counter() - start) * 1e3
    model = source.model
    size = source.spec.input_shape
    best = None
    for label, jit in (("tf.function", False), ("tf.function, XLA", True)):
        fn = tf.function(lambda x: model(x, training=False), jit_compile=jit)
        x1 = tf.constant(np.random.default_rng(0).uniform(-1, 1, (1, *size, 3)).astype(np.float32))
        for _ in range(args.warmup):
            fn(x1).numpy()
        times = []
        for _ in range(args.runs):
            t = time.perf_counter()
            fn(x1).numpy()
            times.append((time.perf_counter() - t) * 1e3)
        xb = tf.constant(np.random.default_rng(1).uniform(-1, 1, (args.batch, *size, 3)).astype(np.float32))
        fn(xb).numpy()
        batch_times = []
        for _ in range(max(3, args.runs // 10)):
            t = time.perf_counter()
            fn(xb).numpy()
            batch_times.append(time.perf_counter() - t)
        row = {"p50_ms": float(np.percentile(times, 50)), "p90_ms": float(np.percentile(times, 90)),
               "p99_ms": float(np.percentile(times, 99)), "compiled": label,
               "throughput_ips": args.batch / float(np.median(batch_times))}
        if best is None or row["p50_ms"] < best["p50_ms"]:
            best = row
    macs = count_macs(model)
    print(json.dumps({
        "model": f"keras reference ({best['compiled']})", "size_mb": model.count_params() * 4 / 1e6,
        "runtime": f"tensorflow {tf.__version__}", "threads": args.threads, "kernels": "tensorflow",
        "precision": "float32", "lowering": "native", "load_ms": load_ms, "runs": args.runs,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "gmacs_per_s": macs / (best["p50_ms"] / 1e3) / 1e9, "batch": args.batch, **best,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
