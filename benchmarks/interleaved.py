"""Interleaved A/B latency of .tflite files, for a machine others are loading too.

`python -m edge.benchmark` times each case in its own process, one after the other, so a job that starts on a shared
machine halfway through lands on some cases and not others (a 10x swing has been seen on one case). Here every file is
loaded once per kernel setting in one process, and each round runs every case once (batch 1, fixed random input) in a
shuffled order: load from elsewhere falls on all cases alike, and the medians compare.

    .venv/bin/python benchmarks/interleaved.py a.tflite b.tflite [--rounds 300] [--threads 2] [--kernels both]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.timing import interleaved  # noqa: E402


def main() -> None:
    from edge.runtime import RuntimeOptions, load

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", help=".tflite files")
    parser.add_argument("--rounds", type=int, default=300, help="timed rounds (default 300)")
    parser.add_argument("--threads", type=int, default=2, help="runtime threads (default 2)")
    parser.add_argument("--kernels", choices=("xnnpack", "builtin", "both"), default="both")
    args = parser.parse_args()
    settings = {"xnnpack": [True], "builtin": [False], "both": [False, True]}[args.kernels]
    cases = []
    for path in args.models:
        for xnnpack in settings:
            runner = load(path, RuntimeOptions(threads=args.threads, xnnpack=xnnpack))
            x = np.random.default_rng(0).uniform(0, 1, (1, *runner.input.shape[1:])).astype(np.float32)
            for _ in range(5):
                runner.run(x)
            cases.append((Path(path).name, "xnnpack" if xnnpack else "builtin", runner, x))
    timed = interleaved([lambda runner=runner, x=x: runner.run(x) for _, _, runner, x in cases], args.rounds)
    print(f"{args.rounds} interleaved rounds, batch 1, {args.threads} threads, {cases[0][2].runtime.split(' (')[0]}\n")
    print("| file | kernels | p50 ms | p25 ms | p75 ms |\n| --- | --- | --- | --- | --- |")
    for (name, kernels, _, _), times in sorted(zip(cases, timed), key=lambda c: (c[0][1], c[0][0])):
        p25, p50, p75 = np.percentile(times, [25, 50, 75])
        print(f"| {name} | {kernels} | {p50:.2f} | {p25:.2f} | {p75:.2f} |")


if __name__ == "__main__":
    main()
