"""`python -m converters.validate --variant 200mf ARTIFACT... [--data DIR] [--json PATH|-]`: drift of artifacts.

Runs the Keras reference and each artifact (through the edge runtime) on the same images and prints
one table. Each artifact is held to its precision's budget (calibration/drift.py), read from the
metadata the converters embed; exit status 1 when any artifact is over budget.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from calibration.drift import BUDGETS, measure
from calibration.representative import validation_set
from converters import cli
from converters.pipeline import run_with_progress
from converters.reference_outputs import reference_outputs
from edge.command import add_json_argument, emit, parser_for
from edge.errors import ConfigError, run_cli
from edge.preprocessing import PreprocessSpec
from edge.runtime import RuntimeOptions, load


def validate(artifacts: list[Path], args: argparse.Namespace) -> list[dict]:
    rows = []
    sources: dict[tuple[bool, str], object] = {}
    for path in artifacts:
        runner = load(path, RuntimeOptions(threads=args.threads))
        meta = runner.metadata or {}
        precision = args.precision or meta.get("precision")
        if precision is None:
            raise ConfigError(f"{path} carries no kit metadata; pass --precision ({', '.join(BUDGETS)}) to pick its budget")
        normalize = bool(meta.get("preprocessing", {}).get("normalize_in_model", False))
        features = (meta.get("io") or {}).get("output_kind") == "features" or args.head == "none"
        key = (normalize, "none" if features else "classifier")
        if key not in sources:
            sources[key] = cli.source_from(args, normalize_in_model=normalize, head=key[1])
        source = sources[key]
        spec = PreprocessSpec.from_dict(meta["preprocessing"]) if "preprocessing" in meta else source.preprocessing
        if meta.get("labels") and len(meta["labels"]) != source.num_classes:
            raise ConfigError(f"{path} has {len(meta['labels'])} classes but the reference has "
                              f"{source.num_classes}; pass the matching --weights / --classes")
        runner.check_fits((1, spec.height, spec.width, 3))
        classes = runner.output.shape[-1] if runner.output.shape else 0
        if not features and classes != source.num_classes:
            raise ConfigError(f"{path} has {classes} outputs but the reference has {source.num_classes} classes; "
                              "validate compares classifiers of the same classes (pass the matching --weights / "
                              "--classes)")
        data = validation_set(spec, args.data, args.limit)
        if args.data:
            data.check_labels(source.labels)
        reference = reference_outputs(source, data.inputs)
        outputs = run_with_progress(runner, data.inputs, f"running {path.name}")
        drift = measure(reference, outputs, data.label_indices(source.labels), data.names)
        budget = cli.budget_from(args, precision, features=features)
        rows.append({"artifact": str(path), "precision": precision, "runtime": runner.runtime,
                     "data": data.summary(), "budget": budget.__dict__, "violations": drift.violations(budget),
                     **drift.to_dict()})
    return rows


def table(rows: list[dict]) -> str:
    head = ("| artifact | precision | images | top-1 agree | top-5 agree | max-abs err (of range) | cosine min | "
            "SQNR dB | KL mean | accuracy ref -> artifact | budget |")
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]
    for r in rows:
        acc = (f"{r['reference_accuracy']:.2%} -> {r['artifact_accuracy']:.2%}"
               if r["reference_accuracy"] is not None else "-")
        verdict = "ok" if not r["violations"] else "OVER: " + "; ".join(r["violations"])
        lines.append(f"| {Path(r['artifact']).name} | {r['precision']} | {r['images']} | {r['top1_agreement']:.2%} | "
                     f"{r['top5_agreement']:.2%} | {r['max_abs_error']:.3g} ({r['max_abs_error_of_range']:.1e}) | "
                     f"{r['cosine_min']:.5f} | {r['sqnr_db']:.1f} | {r['kl_mean']:.2e} | {acc} | {verdict} |")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = parser_for(
        "converters.validate",
        description="Measure each artifact's drift from the Keras reference on the same images (top-1/top-5 agreement, "
                    "logit errors, cosine, SQNR, KL, accuracy when labels exist) against its precision's budget. "
                    "Exit status 1 when any artifact is over budget.")
    parser.add_argument("artifacts", nargs="+", type=Path, metavar="ARTIFACT", help=".tflite or .onnx files")
    cli.add_model_arguments(parser)
    parser.add_argument("--data", metavar="DIR", help="validation images (default: held-out crops of the bundled photographs)")
    parser.add_argument("--limit", type=int, metavar="N", help="use at most N images")
    parser.add_argument("--precision", choices=tuple(BUDGETS), help="budget to apply to files without kit metadata")
    cli.add_budget_arguments(parser)
    parser.add_argument("--threads", type=int, default=2, help="runtime threads (default 2)")
    add_json_argument(parser, "the table")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    rows = validate(args.artifacts, args)
    emit(table(rows), rows, args.json)
    over = [Path(r["artifact"]).name for r in rows if r["violations"]]
    if over:
        print(f"over budget: {', '.join(over)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
