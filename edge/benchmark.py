"""`python -m edge.benchmark --model FILE [--model FILE ...]`: which artifact to ship, measured.

For each artifact x thread count x kernel setting (LiteRT: XNNPACK on/off): load time, batch-1
latency p50/p90/p99, throughput at a larger batch (when the file's batch dimension is dynamic), peak
resident memory, file size, achieved GMAC/s (MACs from the kit metadata) and its fraction of this
machine's single-precision matmul peak (numpy sgemm, measured in the same run with the BLAS free to
pick its best kernel). `--reference --variant 200mf` adds the Keras reference, timed at its best
(a compiled tf.function), in a separate process. Each case runs in a fresh process, so load time
and peak memory are its own. A Markdown table goes to stdout (with --json -, the JSON instead); --json
and --plot on request.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edge.atomic import atomic_write
from edge.command import add_json_argument, emit, parser_for
from edge.errors import ConfigError, KitError, run_cli
from edge.timing import call_latencies_ms


def measure_case(model: str, threads: int, xnnpack: bool, runs: int, warmup: int, batch: int = 8) -> dict:
    """One case, in this process: load, warm up, time batch-1 runs on a fixed random input, then batches."""
    from edge.runtime import RuntimeOptions, load
    from edge.timing import latencies_ms

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    runner = load(model, RuntimeOptions(threads=threads, xnnpack=xnnpack))
    load_ms = (time.perf_counter() - start) * 1e3
    shape = [1 if d in (-1, None) else d for d in runner.input.shape]
    shape[0] = 1
    x = np.random.default_rng(0).uniform(0, 1, shape).astype(np.float32)
    times = latencies_ms(runner, x, runs=runs, warmup=warmup)
    macs = (runner.metadata or {}).get("model", {}).get("macs")
    p50 = float(np.percentile(times, 50))
    throughput = None
    try:
        runner.set_batch(batch)
        xb = np.repeat(x, batch, axis=0)
        batch_ms = latencies_ms(runner, xb, runs=max(3, runs // 10), warmup=1)
        throughput = batch / (float(np.median(batch_ms)) / 1e3)
    except KitError:
        pass  # a fixed batch of 1: no batched figure
    meta = runner.metadata or {}
    return {
        "model": str(model), "size_mb": Path(model).stat().st_size / 1e6, "runtime": runner.runtime,
        "threads": threads, "kernels": ("xnnpack" if xnnpack else "builtin") if runner.kind == "tflite" else "ort",
        "precision": meta.get("precision"), "lowering": meta.get("grouped_conv", {}).get("lowering"),
        "load_ms": load_ms, "p50_ms": p50, "p90_ms": float(np.percentile(times, 90)),
        "p99_ms": float(np.percentile(times, 99)), "runs": runs,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_growth_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024,
        "gmacs_per_s": macs / (p50 / 1e3) / 1e9 if macs else None,
        "batch": batch, "throughput_ips": throughput,
    }


PEAK_SIZE = 2048


def matmul_peak_gflops(threads: int) -> dict:
    """Best-of-10 float32 matmul GFLOP/s with numpy's BLAS on `threads` threads (run in a worker whose
    environment leaves the BLAS free to choose its kernel)."""
    a = np.random.default_rng(0).standard_normal((PEAK_SIZE, PEAK_SIZE)).astype(np.float32)
    b = np.random.default_rng(1).standard_normal((PEAK_SIZE, PEAK_SIZE)).astype(np.float32)
    best = float(call_latencies_ms(np.matmul, a, b, runs=10, warmup=1).min()) / 1e3
    kernel = None
    try:
        from threadpoolctl import threadpool_info

        kernel = ", ".join(f"{i.get('internal_api')} {i.get('architecture')}" for i in threadpool_info()
                           if i.get("user_api") == "blas")
    except ImportError:
        pass
    return {"threads": threads, "gflops": 2 * PEAK_SIZE ** 3 / best / 1e9, "blas_kernel": kernel}


def _peak_in_subprocess(threads: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    env.update(OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    done = subprocess.run([sys.executable, "-m", "edge.benchmark", "--peak-worker", str(threads)],
                          capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise KitError(f"measuring the matmul peak failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _in_subprocess(command: list[str], what: str) -> dict:
    done = subprocess.run([sys.executable, "-m", *command], capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise KitError(f"benchmark of {what} failed: {last.removeprefix('error: ')}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(rows: list[dict]) -> str:
    head = ("| artifact | precision | grouped convs | kernels | threads | size MB | load ms | p50 ms | p90 ms | p99 ms "
            "| img/s at batch | peak RSS MB | GMAC/s | of matmul peak |")
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]
    for r in rows:
        gmacs = f"{r['gmacs_per_s']:.1f}" if r.get("gmacs_per_s") else "-"
        share = f"{r['peak_fraction']:.0%}" if r.get("peak_fraction") else "-"
        tput = f"{r['throughput_ips']:.0f} ({r['batch']})" if r.get("throughput_ips") else "-"
        lines.append(f"| {Path(r['model']).name} | {r['precision'] or '-'} | {r['lowering'] or '-'} | {r['kernels']} | "
                     f"{r['threads']} | {r['size_mb']:.2f} | {r['load_ms']:.0f} | {r['p50_ms']:.2f} | {r['p90_ms']:.2f} | "
                     f"{r['p99_ms']:.2f} | {tput} | {r['peak_rss_mb']:.0f} | {gmacs} | {share} |")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    """A horizontal bar chart of p50 latency per case, drawn with Pillow (no plotting library needed)."""
    from io import BytesIO

    from PIL import Image, ImageDraw

    label_w, bar_w, row_h, pad = 360, 460, 22, 12
    height = pad * 3 + row_h * len(rows)
    img = Image.new("RGB", (label_w + bar_w + 110, height), "white")
    draw = ImageDraw.Draw(img)
    draw.text((pad, pad), "p50 latency, batch 1 (ms)", fill="black")
    top = max(r["p50_ms"] for r in rows)
    for i, r in enumerate(rows):
        y = pad * 2 + 10 + i * row_h
        name = f"{Path(r['model']).name} [{r['kernels']}, {r['threads']}t]"
        draw.text((pad, y + 4), name[:80], fill="black")
        w = max(1, int(bar_w * r["p50_ms"] / top))
        colour = {"int8": (46, 125, 50), "float16": (21, 101, 192), "dynamic": (249, 168, 37)}.get(r["precision"],
                                                                                               (120, 120, 120))
        draw.rectangle((label_w, y + 2, label_w + w, y + row_h - 4), fill=colour)
        draw.text((label_w + w + 6, y + 4), f"{r['p50_ms']:.2f}", fill="black")
    out = BytesIO()
    img.save(out, format="PNG")
    atomic_write(path, out.getvalue())


def _ints(text: str, what: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--{what} takes comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise ConfigError(f"--{what} values must be at least 1, got {text!r}")
    return values


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # the Keras reference's worker inherits it
    parser = parser_for(
        "edge.benchmark",
        description="Latency (p50/p90/p99, batch 1), load time, peak memory, size and GMAC/s of artifacts, each "
                    "case in a fresh process. Markdown table on stdout.")
    parser.add_argument("--model", action="append", type=Path, metavar="FILE", help="artifact (repeat for more)")
    parser.add_argument("--threads", default="2", help="comma-separated thread counts (default 2)")
    parser.add_argument("--kernels", default="xnnpack", help="LiteRT kernels: xnnpack, builtin or both (default xnnpack)")
    parser.add_argument("--runs", type=int, default=100, help="timed runs per case (default 100)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed runs first (default 10)")
    parser.add_argument("--batch", type=int, default=8, help="batch for the throughput figure (default 8)")
    parser.add_argument("--reference", action="store_true",
                        help="also time the Keras reference (needs the kit: TensorFlow), with --variant/--flavour/--weights")
    parser.add_argument("--variant", default="200mf", help="reference variant (default 200mf)")
    parser.add_argument("--flavour", default="paper", help="reference flavour (default paper)")
    parser.add_argument("--weights", help="reference weights (default: as the converters choose)")
    add_json_argument(parser, "the rows (and the matmul peak)")
    parser.add_argument("--plot", type=Path, metavar="PNG", help="also draw p50 latencies as a bar chart")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--peak-worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(measure_case(*json.loads(args.worker))))
        return 0
    if args.peak_worker:
        print(json.dumps(matmul_peak_gflops(args.peak_worker)))
        return 0
    if not args.model and not args.reference:
        raise ConfigError("pass at least one --model FILE (or --reference)")
    args.model = args.model or []
    if args.runs < 1 or args.warmup < 0 or args.batch < 1:
        raise ConfigError("--runs and --batch must be at least 1, --warmup at least 0")
    kernels = {"xnnpack": [True], "builtin": [False], "both": [True, False]}.get(args.kernels)
    if kernels is None:
        raise ConfigError(f"--kernels must be xnnpack, builtin or both, got {args.kernels!r}")
    threads = _ints(args.threads, "threads")
    from edge.runtime import load

    for model in args.model:
        load(model)  # fails here, with the file's name, before any timing
    peaks = {t: _peak_in_subprocess(t) for t in threads}
    for t, peak in peaks.items():
        print(f"matmul peak ({t} threads): {peak['gflops']:.0f} GFLOP/s float32 "
              f"({peak['blas_kernel'] or 'BLAS kernel not reported: pip install threadpoolctl'})", file=sys.stderr)
    rows = []
    for t in threads:
        if args.reference:
            print(f"benchmarking the Keras reference ({t} threads)", file=sys.stderr)
            command = ["converters.reference_timing", "--variant", args.variant, "--flavour", args.flavour,
                       "--threads", str(t), "--runs", str(args.runs), "--warmup", str(args.warmup),
                       "--batch", str(args.batch)] + (["--weights", args.weights] if args.weights else [])
            rows.append(_in_subprocess(command, "the Keras reference"))
        for model in args.model:
            for xnn in (kernels if model.suffix.lower() == ".tflite" else [True]):
                print(f"benchmarking {model.name} ({t} threads{'' if xnn else ', builtin kernels'})", file=sys.stderr)
                case = [str(model), t, xnn, args.runs, args.warmup, args.batch]
                rows.append(_in_subprocess(["edge.benchmark", "--worker", json.dumps(case)], model.name))
    for r in rows:
        if r.get("gmacs_per_s"):
            r["peak_fraction"] = 2 * r["gmacs_per_s"] / peaks[r["threads"]]["gflops"]
    emit(table(rows), {"matmul_peak": list(peaks.values()), "rows": rows}, args.json)
    if args.plot:
        plot(rows, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
