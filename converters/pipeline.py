"""What every conversion does after the format-specific step: validate, describe, write.

A candidate artifact (bytes) is written beside the destination, loaded by the edge runtime and run
on the validation images; its outputs are compared with the Keras reference's. Only when the drift
is within budget (or `allow_drift` says to write it anyway, loudly) is the metadata record embedded
and the artifact moved into place atomically, with a `.json` and a `.md` report beside it.
"""

from __future__ import annotations

import json
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from calibration.drift import Budget, Drift, measure
from calibration.representative import Prepared
from converters.source import Source
from models.complexity import count_macs
from converters.targets import Target
from edge.atomic import atomic_write
from edge.errors import KitError
from edge.runtime import RuntimeOptions, TensorInfo, load

METADATA_VERSION = 1
PACKAGES = ("regnety-edge-kit", "tensorflow-cpu", "tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime",
            "ai-edge-litert")


class DriftError(KitError):
    """An artifact drifted past its budget; nothing was written."""


@dataclass
class Plan:
    """What is being made: the format-independent facts the metadata and report record."""

    out: Path
    precision: str                      # float32 | float16 | dynamic | int8
    target: Target
    lowering: str
    budget: Budget
    allow_drift: bool = False
    calibration: Prepared | None = None
    extra: dict = field(default_factory=dict)  # format-specific facts (opset, I/O types, kept-float layers)


@dataclass
class Result:
    path: Path
    drift: Drift
    violations: list[str]
    metadata: dict
    size_bytes: int


def package_versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def _io(info: TensorInfo) -> dict:
    data = {"name": info.name, "shape": list(info.shape), "dtype": info.dtype}
    if info.quantized:
        data.update(scale=info.scale, zero_point=info.zero_point)
    return data


def _candidate_path(out: Path) -> Path:
    return out.with_name(f".{out.stem}.candidate{out.suffix}")


@dataclass
class Evaluation:
    """A candidate run by the edge runtime on the validation images, compared with the reference."""

    drift: Drift
    violations: list[str]
    input: TensorInfo
    output: TensorInfo
    runtime: str


def evaluate(plan: Plan, source: Source, validation: Prepared, reference_logits: np.ndarray,
             candidate: bytes, options: RuntimeOptions = RuntimeOptions(threads=2), what: str = "") -> Evaluation:
    """Run candidate bytes (from a temporary file beside the destination) and measure their drift."""
    tmp = atomic_write(_candidate_path(plan.out), candidate)
    try:
        runner = load(tmp, options)
        outputs = run_with_progress(runner, validation.inputs, f"validating {plan.out.name}{what}")
    finally:
        tmp.unlink(missing_ok=True)
    labels = validation.label_indices(source.labels) if source.labels else None  # features: no classes
    drift = measure(reference_logits, outputs, labels, validation.names)
    return Evaluation(drift, drift.violations(plan.budget), runner.input, runner.output, runner.runtime)


def finish(plan: Plan, source: Source, validation: Prepared, reference_logits: np.ndarray, candidate: bytes,
           embed: Callable[[bytes, dict], bytes], log=print, evaluation: Evaluation | None = None) -> Result:
    """Validate `candidate` (unless already evaluated), then write it with metadata and reports;
    raise DriftError when over budget."""
    ev = evaluation or evaluate(plan, source, validation, reference_logits, candidate)
    drift, violations = ev.drift, ev.violations
    if violations and not plan.allow_drift:
        print(drift_table(drift, plan.budget, plan.precision), file=sys.stderr)
        raise DriftError(f"{plan.out.name} drifts past its {plan.precision} budget: {'; '.join(violations)}; nothing "
                         "written. " + _remedies(plan) + ", or pass --allow-drift to write it anyway")
    if violations:
        log(f"WARNING: {plan.out.name} drifts past its {plan.precision} budget ({'; '.join(violations)}); written "
            "anyway because of --allow-drift")
    record = metadata_record(plan, source, validation, drift, violations, ev.input, ev.output, ev.runtime)
    final = embed(candidate, record)
    atomic_write(plan.out, final)
    report = {**record, "drift_details": drift.to_dict()}
    atomic_write(plan.out.with_name(plan.out.name + ".json"), (json.dumps(report, indent=2) + "\n").encode())
    atomic_write(plan.out.with_name(plan.out.name + ".md"), markdown_report(plan, record, drift).encode())
    return Result(plan.out, drift, violations, record, len(final))


def _remedies(plan: Plan) -> str:
    if plan.extra.get("int8_kernels", {}).get("saturation_suspected") and not plan.extra.get("reduce_range"):
        return "This CPU's int8 kernels saturate: re-convert with --reduce-range"
    selective = plan.precision == "int8" and plan.extra.get("format") == "tflite"
    return "Calibrate on images like yours (--calib DIR)" + (
        ", keep the worst layers in float (--keep-float auto)" if selective else "")


def run_with_progress(runner, inputs: np.ndarray, description: str) -> np.ndarray:
    from tqdm import tqdm

    chunk = 16
    parts = []
    with tqdm(total=len(inputs), desc=description, unit="img", file=sys.stderr, leave=False,
              disable=None) as bar:
        for i in range(0, len(inputs), chunk):
            parts.append(runner.run(inputs[i:i + chunk]))
            bar.update(len(parts[-1]))
    return np.concatenate(parts)


def metadata_record(plan: Plan, source: Source, validation: Prepared, drift: Drift, violations: list[str],
                    input_info: TensorInfo, output_info: TensorInfo, runtime: str) -> dict:
    spec = source.spec
    return {
        "metadata_version": METADATA_VERSION,
        "model": {"name": spec.name, "variant": spec.variant, "flavour": spec.flavour.name,
                  "num_classes": spec.num_classes, "head": spec.include_head,
                  "macs": count_macs(source.model) if hasattr(source.model, "layers") else None},
        "labels": list(source.labels),
        "preprocessing": spec.preprocessing.to_dict(),
        "precision": plan.precision,
        "io": {"input": _io(input_info), "output": _io(output_info), "output_kind": source.output_kind},
        "grouped_conv": {"lowering": plan.lowering, "target": plan.target.name, "reason": plan.target.reason},
        "weights": source.weights,
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
        "validated_with": runtime,
        **plan.extra,
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
