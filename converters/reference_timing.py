"""Timing the Keras reference at its best, for edge.benchmark's side-by-side ratios (needs TensorFlow).

`python -m converters.reference_timing --variant 200mf --threads 2 --runs 50 --warmup 5 --batch 8` prints
one JSON row in edge.benchmark's schema (on stdout, or to --json PATH): the faster of a traced
tf.function and an XLA-compiled one.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

import numpy as np

from edge.command import add_json_argument, parser_for, write_json
from edge.errors import run_cli
from edge.timing import call_latencies_ms


def main(argv: Sequence[str] | None = None) -> int:
    parser = parser_for("converters.reference_timing")
    parser.add_argument("--variant", default="200mf")
    parser.add_argument("--flavour", default="paper")
    parser.add_argument("--weights")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8)
    add_json_argument(parser, "the row (one line)", default="-")
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
    size = tuple(model.input_shape[1:3])
    best = None
    for label, jit in (("tf.function", False), ("tf.function, XLA", True)):
        fn = tf.function(lambda x: model(x, training=False), jit_compile=jit)
        x1 = tf.constant(np.random.default_rng(0).uniform(-1, 1, (1, *size, 3)).astype(np.float32))
        times = call_latencies_ms(lambda x: fn(x).numpy(), x1, runs=args.runs, warmup=args.warmup)
        xb = tf.constant(np.random.default_rng(1).uniform(-1, 1, (args.batch, *size, 3)).astype(np.float32))
        batch_ms = call_latencies_ms(lambda x: fn(x).numpy(), xb, runs=max(3, args.runs // 10), warmup=1)
        row = {"p50_ms": float(np.percentile(times, 50)), "p90_ms": float(np.percentile(times, 90)),
               "p99_ms": float(np.percentile(times, 99)), "compiled": label,
               "throughput_ips": args.batch / (float(np.median(batch_ms)) / 1e3)}
        if best is None or row["p50_ms"] < best["p50_ms"]:
            best = row
    macs = count_macs(model)
    write_json({
        "model": f"keras reference ({best['compiled']})", "size_mb": model.count_params() * 4 / 1e6,
        "runtime": f"tensorflow {tf.__version__}", "threads": args.threads, "kernels": "tensorflow",
        "precision": "float32", "lowering": "native", "load_ms": load_ms, "runs": args.runs,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "gmacs_per_s": macs / (best["p50_ms"] / 1e3) / 1e9, "batch": args.batch, **best,
    }, args.json, indent=None)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
