"""One conversion pipeline for every format: lower -> export -> evaluate -> refine -> embed -> write.

1. lower:    the reference's graph with its grouped convs as the plan's lowering asks (converters.rewrite);
2. export:   the format's exporter turns it into candidate bytes and checks them (ops the target runs, a graph
             that passes its checker), returning its typed facts;
3. evaluate: the candidate is written beside the destination, loaded by the edge runtime and run on the
             validation images; its outputs are compared with the reference's (the exporter may evaluate
             more than once, e.g. ONNX int8 through fused and unfused kernels);
4. refine:   an optional, separate step of the exporter (TFLite int8: keep the worst layers in float);
5. embed, write: only when the drift is within budget (or `allow_drift` says to write it anyway, loudly) is
             the metadata record embedded and the artifact moved into place atomically, with a `.json` and a
             `.md` report beside it. Otherwise a DriftError carries the violations; nothing is written.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from calibration.drift import measure
from calibration.representative import Prepared
from converters.plan import Evaluation, Plan, Result
from converters.reference import Lowered, Reference, with_dense_as_conv
from converters.reference_outputs import reference_outputs
from converters.report import drift_table, markdown_report, metadata_record
from edge.atomic import atomic_write
from edge.seal import FIELD as seal_field, PLACEHOLDER, seal
from edge.errors import DriftError
from edge.runtime import RuntimeOptions, load


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Facts(Protocol):
    """What an exporter found, recorded in the artifact's metadata."""

    def record(self, bands: dict | None = None) -> dict:
        """The metadata entries, with the depthwise bands the lowering made (if any)."""

    def remedies(self, precision: str) -> str:
        """What to try when the artifact is over budget."""


@dataclass
class Candidate:
    data: bytes
    facts: Facts
    lowered: Lowered | None = None  # the graph converted, when the exporter rewrote the one it was given


@dataclass
class Job:
    """One conversion: the reference, the plan, the validation images and the reference's outputs on them."""

    reference: Reference
    plan: Plan
    validation: Prepared
    expected: np.ndarray
    log: Callable[[str], None] = log

    def evaluate(self, candidate: bytes, options: RuntimeOptions = RuntimeOptions(threads=2),
                 what: str = "") -> Evaluation:
        """Run candidate bytes (from a temporary file beside the destination) and measure their drift."""
        out = self.plan.out
        tmp = atomic_write(out.with_name(f".{out.stem}.candidate{out.suffix}"), candidate)
        try:
            runner = load(tmp, options, guard=False)  # written by this process a moment ago
            outputs = run_with_progress(runner, self.validation.inputs, f"validating {out.name}{what}")
        finally:
            tmp.unlink(missing_ok=True)
        labels = self.validation.label_indices(self.reference.labels) if self.reference.labels else None
        drift = measure(self.expected, outputs, labels, self.validation.names)
        return Evaluation(drift, drift.violations(self.plan.budget), runner.input, runner.output, runner.runtime)


class Exporter(Protocol):
    """One format's steps in the pipeline."""

    def describe(self, job: Job) -> str:
        """The line logged before exporting."""

    def export(self, lowered: Lowered, job: Job) -> Candidate:
        """Candidate bytes of the lowered graph, checked, with the exporter's facts."""

    def evaluate(self, candidate: Candidate, job: Job) -> Evaluation:
        """The candidate's drift (usually job.evaluate(candidate.data))."""

    def refine(self, lowered: Lowered, candidate: Candidate, evaluation: Evaluation,
               job: Job) -> tuple[Candidate, Evaluation]:
        """A second chance after evaluation (or the candidate as it is)."""

    def embed(self, data: bytes, record: dict) -> bytes:
        """The artifact's bytes with the metadata record inside."""


def convert(reference: Reference, plan: Plan, validation: Prepared, exporter: Exporter, log=log) -> Result:
    """Lower, export, evaluate, refine, then write the artifact with its metadata and reports (see the module)."""
    taps = plan.target.max_depthwise_taps
    lowered = lower(reference, plan)
    if lowered.depthwise_bands:
        log(f"{len(lowered.depthwise_bands)} depthwise convs of more than {taps} taps split in bands of kernel rows "
            f"(XNNPACK runs larger kernels on a slow path; --target portable keeps them whole)")
    job = Job(reference, plan, validation, reference_outputs(reference, validation.inputs, log), log)
    log(exporter.describe(job))
    candidate = exporter.export(lowered, job)
    evaluation = exporter.evaluate(candidate, job)
    candidate, evaluation = exporter.refine(lowered, candidate, evaluation, job)
    bands = {"max_taps": taps, "layers": lowered.depthwise_bands} if lowered.depthwise_bands else None
    return write(job, candidate, evaluation, candidate.facts.record(bands), exporter.embed)


def lower(reference: Reference, plan: Plan) -> Lowered:
    """The reference's graph as the plan's target needs it: grouped convs in the plan's lowering, depthwise convs of
    more taps than the target runs fast in bands, Dense layers as 1x1 convs where the target asks."""
    lowered = reference.lowered(plan.lowering, plan.target.max_depthwise_taps)
    return with_dense_as_conv(lowered) if plan.target.dense_as_conv else lowered


def write(job: Job, candidate: Candidate, evaluation: Evaluation, facts: dict, embed) -> Result:
    """Embed the record and write the artifact and its reports; DriftError (nothing written) when over budget."""
    plan, drift, violations = job.plan, evaluation.drift, evaluation.violations
    if violations and not plan.allow_drift:
        print(drift_table(drift, plan.budget, plan.precision), file=sys.stderr)
        advice = candidate.facts.remedies(plan.precision) + ", or pass --allow-drift to write it anyway"
        raise DriftError(plan.out.name, plan.precision, violations, drift, advice)
    if violations:
        job.log(f"WARNING: {plan.out.name} drifts past its {plan.precision} budget ({'; '.join(violations)}); written "
                "anyway because of --allow-drift")
    record = metadata_record(plan, job.reference, job.validation, evaluation, facts)
    final, digest = seal(embed(candidate.data, {**record, seal_field: PLACEHOLDER}))
    record[seal_field] = digest
    atomic_write(plan.out, final)
    report = {**record, "drift_details": drift.to_dict()}
    atomic_write(plan.out.with_name(plan.out.name + ".json"), (json.dumps(report, indent=2) + "\n").encode())
    atomic_write(plan.out.with_name(plan.out.name + ".md"), markdown_report(plan, record, drift).encode())
    return Result(plan.out, drift, violations, record, len(final))


RUN_PIXELS = 16 * 224 * 224  # pixels per batch the validation run feeds: 16 images at 224 px, 2 at 600 px


def run_with_progress(runner, inputs: np.ndarray, description: str) -> np.ndarray:
    """The runner's outputs on `inputs`, in batches of RUN_PIXELS pixels (a runtime holds a batch's activations at
    once: EfficientNet-B7's at 600 px are gigabytes per 16 images), with a progress bar."""
    from tqdm import tqdm

    chunk = max(1, RUN_PIXELS // int(np.prod(inputs.shape[1:3])))
    parts = []
    with tqdm(total=len(inputs), desc=description, unit="img", file=sys.stderr, leave=False,
              disable=None) as bar:
        for i in range(0, len(inputs), chunk):
            parts.append(runner.run(inputs[i:i + chunk]))
            bar.update(len(parts[-1]))
    return np.concatenate(parts)
