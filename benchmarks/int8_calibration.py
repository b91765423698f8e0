"""int8 calibration methods side by side (issue 19): every `--calibration` method of the TFLite and ONNX int8
converters on one model, in one process, through the kit's own conversion (the same call as
`python -m converters.tflite --int8 --calibration M`): logit SQNR against the float Keras reference on the 176
held-out crops, top-1 agreement, accuracy on the crops' labels, and the conversion's wall time.

    .venv/bin/python benchmarks/int8_calibration.py [--model regnety --variant 200mf] [--format tflite onnx]
        [--methods M ...] [--out benchmarks/int8_calibration_200mf.md]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="regnety")
    parser.add_argument("--variant", default="200mf")
    parser.add_argument("--format", nargs="+", default=["tflite", "onnx"], choices=["tflite", "onnx"])
    parser.add_argument("--methods", nargs="+", help="default: every method of each format")
    parser.add_argument("--out", type=Path, help="markdown table (and .json beside it)")
    args = parser.parse_args(argv)

    from calibration.representative import calibration_set, validation_set
    from converters import onnx as onnx_converter, tflite as tflite_converter
    from calibration.drift import budget_for
    from converters.int8_calibration import ONNX_DEFAULT, ONNX_METHODS, TFLITE_DEFAULT, TFLITE_METHODS
    from converters.plan import Plan
    from converters.source import load_application, load_source
    from converters.targets import get_target

    quiet = lambda message: None  # noqa: E731
    if args.model == "regnety":
        reference = load_source(args.variant, log=quiet)
        name, command = f"RegNetY-{args.variant.upper()}", f"--variant {args.variant}"
    else:
        reference = load_application(args.model, None, log=quiet)
        name, command = args.model, f"--model {args.model}"
    spec = reference.preprocessing
    calibration, validation = calibration_set(spec), validation_set(spec)
    formats = {"tflite": (tflite_converter, TFLITE_METHODS, TFLITE_DEFAULT),
               "onnx": (onnx_converter, ONNX_METHODS, ONNX_DEFAULT)}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in args.format:
            module, methods, default = formats[fmt]
            for method in args.methods or methods:
                if method not in methods:
                    continue
                target = get_target("xnnpack" if fmt == "tflite" else "onnx", fmt)
                plan = Plan(Path(tmp) / f"m.{fmt}", "int8", target, "native",
                            budget_for("int8"),
                            allow_drift=True, calibration=calibration)
                start = time.perf_counter()
                result = module.convert(reference, plan, validation, calibration=method, log=quiet)
                seconds = time.perf_counter() - start
                drift = result.drift
                used = result.metadata.get("calibration_method", {}).get("used", method)
                row = {"format": fmt, "method": method, "used": used, "default": method == default,
                       "sqnr_db": round(drift.sqnr_db, 2), "top1_agreement": drift.top1_agreement,
                       "accuracy": drift.artifact_accuracy, "reference_accuracy": drift.reference_accuracy,
                       "seconds": round(seconds, 1), "size_bytes": result.size_bytes}
                rows.append(row)
                print(json.dumps(row), flush=True)
    if args.out:
        args.out.with_suffix(".json").write_text(json.dumps({"model": name, "rows": rows}, indent=1) + "\n")
        args.out.write_text(table(name, command, rows))
    return 0


def table(name: str, command: str, rows: list[dict]) -> str:
    percent = lambda v: "" if v is None else f"{100 * v:.2f}%"  # noqa: E731
    lines = [f"| {name} | `--calibration` | SQNR | top-1 agreement | accuracy | conversion | command |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        method = f"`{r['method']}`" + (" (default)" if r["default"] else "") + (
            f" (used `{r['used']}`)" if r["used"] != r["method"] else "")
        module = "converters.tflite" if r["format"] == "tflite" else "converters.onnx"
        lines.append(f"| {r['format']} int8 | {method} | {r['sqnr_db']:.2f} dB | {percent(r['top1_agreement'])} | "
                     f"{percent(r['accuracy'])} | {r['seconds']:.0f} s | "
                     f"`python -m {module} {command} --int8 --calibration {r['method']}` |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
