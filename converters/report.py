"""What an artifact's metadata and reports say: the kit's JSON record, the drift table, the Markdown report."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version

import numpy as np

from calibration.drift import Budget, Drift
from calibration.representative import Prepared
from converters.plan import Evaluation, Plan
from converters.reference import Reference

METADATA_VERSION = 2  # 2: the record carries the file's content digest (edge.seal)
PACKAGES = ("regnety-edge-kit", "tensorflow-cpu", "tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime",
            "ai-edge-litert")


def package_versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def metadata_record(plan: Plan, reference: Reference, validation: Prepared, evaluation: Evaluation,
                    facts: dict) -> dict:
    """The kit's JSON record of an artifact: what it is, how it was made, how far it drifts. `facts`: what the
    lowering and the format's exporter add (ops, opset, I/O type, kept-float layers, ...)."""
    identity, drift, violations = reference.identity, evaluation.drift, evaluation.violations
    return {
        "metadata_version": METADATA_VERSION,
        "model": {"name": identity.name, "variant": identity.variant, "flavour": identity.flavour,
                  "num_classes": identity.num_classes, "head": identity.head, "macs": reference.macs()},
        "labels": list(reference.labels),
        "preprocessing": reference.preprocessing.to_dict(),
        "precision": plan.precision,
        "io": {"input": evaluation.input.to_dict(), "output": evaluation.output.to_dict(),
               "output_kind": reference.output_kind},
        "grouped_conv": {"lowering": plan.lowering, "target": plan.target.name, "reason": plan.target.reason},
        "weights": reference.weights,
        "calibration": plan.calibration.summary() if plan.calibration is not None else None,
        "validation": validation.summary(),
        "drift": {
            "images": drift.images, "top1_agreement": drift.top1_agreement, "top5_agreement": drift.top5_agreement,
            "max_abs_error": drift.max_abs_error, "max_abs_error_of_range": drift.max_abs_error_of_range,
            "cosine_min": drift.cosine_min, "sqnr_db": finite(drift.sqnr_db), "kl_mean": drift.kl_mean,
            "reference_accuracy": drift.reference_accuracy, "artifact_accuracy": drift.artifact_accuracy,
            "budget": plan.budget.__dict__, "within_budget": not violations, "violations": violations,
        },
        "versions": {**package_versions(), "python": platform.python_version()},
        "validated_with": evaluation.runtime,
        **facts,
    }


def finite(value: float) -> float | None:
    return value if np.isfinite(value) else None


def drift_table(drift: Drift, budget: Budget, precision: str) -> str:
    rows = [
        ("images", f"{drift.images}", ""),
        ("top-1 agreement", f"{drift.top1_agreement:.2%}", f">= {budget.min_top1_agreement:.2%}"),
        ("top-5 agreement", f"{drift.top5_agreement:.2%}", ""),
        ("max-abs logit error", f"{drift.max_abs_error:.3g} ({drift.max_abs_error_of_range:.2e} of range)",
         f"<= {budget.max_abs_error_of_range:.0e} of range" if budget.max_abs_error_of_range is not None else ""),
        ("mean-abs logit error", f"{drift.mean_abs_error:.3g}", ""),
        ("cosine (min / mean)", f"{drift.cosine_min:.6f} / {drift.cosine_mean:.6f}", ""),
        ("SQNR", f"{drift.sqnr_db:.1f} dB", ""),
        ("KL(ref || artifact), mean", f"{drift.kl_mean:.2e}", ""),
    ]
    if drift.reference_accuracy is not None:
        rows.append(("top-1 accuracy (ref / artifact)", f"{drift.reference_accuracy:.2%} / {drift.artifact_accuracy:.2%}",
                     f"drop <= {budget.max_accuracy_drop} pt" if budget.max_accuracy_drop is not None else ""))
    lines = [f"| drift ({precision}) | measured | budget |", "| --- | --- | --- |"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines)


def markdown_report(plan: Plan, record: dict, drift: Drift) -> str:
    io = record["io"]
    lines = [
        f"# {plan.out.name}",
        "",
        f"- model: {record['model']['name']} ({record['model']['num_classes']} classes), weights: "
        f"{record['weights']['description']} {record['weights']['path'] or ''}",
        f"- precision: {plan.precision}; grouped convs: {plan.lowering} (target {plan.target.name}: {plan.target.reason})",
        f"- input: {io['input']['dtype']} {io['input']['shape']}"
        + (f" scale {io['input']['scale']:.6g} zero point {io['input']['zero_point']}" if "scale" in io["input"] else ""),
        f"- output: {io['output']['dtype']} {io['output']['shape']}"
        + (f" scale {io['output']['scale']:.6g} zero point {io['output']['zero_point']}" if "scale" in io["output"] else ""),
        f"- calibration: {record['calibration']}" if record["calibration"] else "- calibration: none (not full int8)",
        f"- validation: {record['validation']['images']} images from {record['validation']['source']}, "
        f"run with {record['validated_with']}",
    ]
    kernels = record.get("int8_kernels")
    if kernels:
        lines.append(f"- int8 kernels ({kernels['cpu']}): SQNR {kernels['sqnr_db_fused']:.1f} dB fused, "
                     f"{kernels['sqnr_db_unfused']:.1f} dB with the QDQ graph run as written"
                     + (" (saturation suspected: try --reduce-range)" if kernels["saturation_suspected"] else ""))
    lines += [
        "",
        drift_table(drift, plan.budget, plan.precision),
        "",
        "Worst images (by KL divergence):",
        "",
        "| image | max-abs error | KL | reference top-1 | artifact top-1 |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [f"| {w['image']} | {w['max_abs_error']:.3g} | {w['kl']:.2e} | {w['reference_top1']} | {w['artifact_top1']} |"
              for w in drift.worst]
    return "\n".join(lines) + "\n"
