"""Conversion time: the kit's whole conversion against the naive hand-written path, side by side, each in its own
process, wall and CPU time and peak memory (issue 18).

The naive path is what a user writes without the kit: build the kit's Keras model with its weights, call
`TFLiteConverter.from_keras_model(model).convert()` (int8: the same plus `optimizations` and the same 128-image
representative dataset, integer ops only) and write the bytes; no validation, no metadata. The kit's path is
`python -m converters.tflite --variant V [--int8]`: build, lower, convert, validate on the 176 held-out crops against
the Keras reference, embed the record and the standard metadata, write. It runs twice: with an empty reference-output
cache (the first conversion of a model) and with the cache the first run left (every later one).

    .venv/bin/python benchmarks/conversion.py 200mf [800mf ...] [--rounds 2] [--out benchmarks/conversion.md]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

NAIVE = """
import sys, numpy as np
import tensorflow as tf
from converters.source import load_source
from calibration.representative import calibration_set
variant, precision, out = sys.argv[1:4]
source = load_source(variant, log=lambda m: None)
converter = tf.lite.TFLiteConverter.from_keras_model(source.model)
if precision == "int8":
    inputs = calibration_set(source.preprocessing).inputs
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([x[None]] for x in inputs)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
open(out, "wb").write(converter.convert())
"""


def run(argv: list[str], env: dict) -> dict:
    """Wall, CPU (user + system) and peak RSS of one child process (os.wait4: that child's own figures)."""
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        child = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode:
            err.seek(0)
            raise SystemExit(f"{' '.join(argv[:4])} failed: {err.read().decode(errors='replace').strip()[-300:]}")
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "peak_mb": usage.ru_maxrss / 1024}


def measure(variant: str, precision: str, folder: Path, rounds: int) -> list[tuple[str, dict]]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "KERAS_BACKEND": "tensorflow"}
    python = sys.executable
    flag = ["--int8"] if precision == "int8" else []
    rows: dict[str, list[dict]] = {"naive": [], "kit, first conversion": [], "kit, reference outputs cached": []}
    for r in range(rounds):
        cache = folder / f"cache{r}"
        kit_env = {**env, "REGNETY_KIT_CACHE": str(cache)}
        out = str(folder / f"{variant}_{precision}.tflite")
        rows["naive"].append(run([python, "-c", NAIVE, variant, precision, out], env))
        # --allow-drift: a variant without the kit's checkpoint has random weights, whose int8 file may miss the
        # drift budget; the time measured is the same (the file is written with a warning instead of refused)
        kit = [python, "-m", "converters.tflite", "--variant", variant, *flag, "--allow-drift", "--out", out]
        rows["kit, first conversion"].append(run(kit, kit_env))
        rows["kit, reference outputs cached"].append(run(kit, kit_env))
    return [(name, {k: min(m[k] for m in runs) for k in runs[0]}) for name, runs in rows.items()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("variants", nargs="+")
    parser.add_argument("--rounds", type=int, default=2, help="each case this many times, interleaved; best kept")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    lines = ["| model | precision | path | wall s | CPU s | peak RSS MB | wall / naive |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: |"]
    with tempfile.TemporaryDirectory(prefix="kit-conversion-") as tmp:
        for variant in args.variants:
            for precision in ("float32", "int8"):
                measured = measure(variant, precision, Path(tmp), args.rounds)
                naive = measured[0][1]["wall"]
                for name, m in measured:
                    lines.append(f"| {variant} | {precision} | {name} | {m['wall']:.1f} | {m['cpu']:.1f} | "
                                 f"{m['peak_mb']:.0f} | {m['wall'] / naive:.2f}x |")
                print(lines[-3], lines[-2], lines[-1], sep="\n", file=sys.stderr, flush=True)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
