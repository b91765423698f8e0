"""Selective int8: find the layers whose quantization hurts most, and keep them in float.

LiteRT's quantization debugger runs the float and the quantized model side by side and measures,
for each quantized tensor, the RMSE between the two in units of that tensor's quantization step
(uniform rounding alone gives about 0.29). Layers far above that are the suspects; denylisting
them makes the converter leave those ops in float (with quantize/dequantize around them).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

import numpy as np

from calibration.representative import Prepared
from converters.pipeline import Job
from converters.plan import Evaluation
from converters.reference import Graph
from converters.tflite_converter import make_converter, run_converter, with_signature
from edge.errors import ConfigError
from edge.tflite_file import layer_of

DEBUG_IMAGES = 16  # validation images the quantization debugger compares float and int8 on


@dataclass(frozen=True)
class LayerError:
    tensor: str          # the quantized tensor, as the converter names it (fused names joined by ';')
    op: str
    error_steps: float   # RMSE(float, quantized) / quantization step

    @property
    def layer(self) -> str:
        """The Keras layer the tensor comes from (e.g. s2_b1_se_fc1), when the name says."""
        return layer_of(self.tensor)


def layer_errors(graph: Graph, calibration: Prepared, debug_inputs: np.ndarray) -> list[LayerError]:
    """Every quantized tensor's error on `debug_inputs`, worst first."""
    import tensorflow as tf

    def dump(console) -> bytes:
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=make_converter(graph, "int8", calibration, progress=console),
            debug_dataset=lambda: ([x[None]] for x in debug_inputs))
        debugger.run()
        text = io.StringIO()
        debugger.layer_statistics_dump(text)
        return text.getvalue().encode()

    rows = csv.DictReader(io.StringIO(run_converter(dump).decode()))
    found = []
    for row in rows:
        scale = float(row["scale"] or 0)
        steps = float(row["mean_squared_error"]) ** 0.5 / scale if scale > 0 else 0.0
        found.append(LayerError(row["tensor_name"], row["op_name"], steps))
    return sorted(found, key=lambda e: -e.error_steps)


def matching(errors: list[LayerError], names: list[str]) -> list[LayerError]:
    """The tensors of the named layers (a layer name matches a part of a fused tensor name)."""
    chosen = []
    for name in names:
        hits = [e for e in errors if e.layer == name] or [e for e in errors if name in e.tensor]
        if not hits:
            worst = ", ".join(dict.fromkeys(e.layer for e in errors[:5]))
            raise ConfigError(f"--keep-float {name}: no quantized tensor of that layer; the worst layers here: {worst}")
        chosen += [h for h in hits if h not in chosen]
    return chosen


def selective_int8(graph: Graph, calibration: Prepared, keep: list[LayerError]) -> bytes:
    """Full int8 except the ops producing `keep`, which stay float."""
    import tensorflow as tf

    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=[e.tensor for e in keep])

    def convert(console):
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=make_converter(graph, "int8", calibration, progress=console),
            debug_dataset=lambda: iter([[calibration.inputs[0][None]]]), debug_options=options)
        return debugger.get_nondebug_quantized_model()

    return with_signature(run_converter(convert), graph)


def growth(total: int):
    """How many of the worst layers to try in float, in order: 1, 2, 4, ... (never all of them)."""
    k = 1
    while k < total:
        yield k
        k *= 2


@dataclass
class KeepFloatOutcome:
    """What the keep-float step chose: the bytes, their evaluation, and what the metadata records."""

    data: bytes
    evaluation: Evaluation
    keep_float: dict | None = None      # the chosen layers, and what they cost against full int8
    worst_layers: list | None = None    # plain --int8 over budget: the suspects, for the error report


def keep_float(graph: Graph, job: Job, full: bytes, full_eval: Evaluation, keep: list[str]) -> KeepFloatOutcome:
    """The keep-float step after a full-int8 evaluation: keep the named layers in float, or ["auto"]: the fewest of
    the worst layers (1, 2, 4, ...) that bring the drift within budget. With nothing requested (a plain --int8 over
    budget), the worst layers are named and the full int8 candidate stays, for the pipeline to refuse."""
    log, calibration = job.log, job.plan.calibration
    log("measuring per-layer quantization error (LiteRT quantization debugger)")
    errors = layer_errors(graph, calibration, job.validation.inputs[:DEBUG_IMAGES])
    worst = [e.__dict__ | {"layer": e.layer} for e in errors[:10]]
    if not keep:
        named = ", ".join(f"{e.layer} ({e.error_steps:.1f} steps)" for e in errors[:5])
        log(f"worst layers by quantization error (RMSE in quantization steps; rounding alone gives 0.29): {named}")
        return KeepFloatOutcome(full, full_eval, worst_layers=worst)
    if keep == ["auto"]:
        if not full_eval.violations:
            log("full int8 is within budget already; no layer kept in float")
            chosen, data, evaluation = [], full, full_eval
        else:
            for k in growth(len(errors)):
                chosen = errors[:k]
                data = selective_int8(graph, calibration, chosen)
                evaluation = job.evaluate(data)
                log(f"  {k} worst layers in float: top-1 agreement {evaluation.drift.top1_agreement:.2%}, "
                    f"SQNR {evaluation.drift.sqnr_db:.1f} dB{'' if evaluation.violations else ' (within budget)'}")
                if not evaluation.violations:
                    break
    else:
        chosen = matching(errors, keep)
        data = selective_int8(graph, calibration, chosen)
        evaluation = job.evaluate(data)
    full_ms, kept_ms = (_p50_ms(job, d) for d in (full, data))
    layers = sorted(dict.fromkeys(e.layer for e in chosen))
    record = {
        "requested": keep, "layers": layers, "tensors": len(chosen), "worst_layers": worst,
        "full_int8_drift": {"top1_agreement": full_eval.drift.top1_agreement, "sqnr_db": full_eval.drift.sqnr_db,
                            "violations": full_eval.violations},
        "size_bytes": len(data), "size_bytes_full_int8": len(full), "p50_ms": kept_ms, "p50_ms_full_int8": full_ms,
    }
    log(f"kept in float: {len(chosen)} tensors ({', '.join(layers[:8]) or 'none'}); "
        f"size {len(full) / 1e6:.2f} -> {len(data) / 1e6:.2f} MB, p50 {full_ms:.2f} -> {kept_ms:.2f} ms (XNNPACK, 2 threads)")
    return KeepFloatOutcome(data, evaluation, keep_float=record)


def _p50_ms(job: Job, data: bytes, runs: int = 30) -> float:
    """Median batch-1 latency of candidate bytes (a rough cost figure; benchmarks live in edge.benchmark)."""
    from edge.atomic import atomic_write
    from edge.runtime import RuntimeOptions, load
    from edge.timing import latencies_ms

    out = job.plan.out
    tmp = atomic_write(out.with_name(f".{out.stem}.timing.tflite"), data)
    try:
        runner = load(tmp, RuntimeOptions(threads=2), guard=False)  # a candidate this process made
        return float(np.median(latencies_ms(runner, job.validation.inputs[:1], runs=runs)))
    finally:
        tmp.unlink(missing_ok=True)
