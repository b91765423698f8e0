"""How full int8 is calibrated (`--calibration METHOD`): the methods, and the float rewrite they make first.

Methods (measured on the reference checkpoint and RegNetY-800MF: docs/drift.md, "int8 calibration methods").
ONNX_DEFAULT is the best measured on both. TFLITE_DEFAULT stays minmax: equalize+bias measures better on both, but
with a deliberately bad calibration set (constant images) it is far worse than minmax (tests/converters/test_convert's
keep-float auto test needs 128 float tensors instead of 4-16), so it is opt-in until equalization guards against that.
- `minmax`: the converter's own calibration as it is (TFLiteConverter / ONNX Runtime MinMax): the plain
  converter's bytes.
- `equalize`: cross-layer equalization of the float model first (converters.equalize, activation-aware: each
  ReLU output channel's calibration range balanced against its consumers' weights), then min/max. Exact in float.
- `bias`: bias correction of the weights' quantization (converters.bias_correction): each conv's bias absorbs
  the mean shift its int8 weights cause on the calibration images. Changes the float model slightly, on purpose.
- `percentile` (ONNX only): ONNX Runtime's percentile calibrator (99.999th percentile of |activation|) instead of
  min/max.
- combinations, joined with "+" in the order equalize, bias, percentile (e.g. `equalize+percentile`).

A method that cannot run on a model says so and falls back to the nearest method that can (equalization needs a
Keras model with conv -> ReLU -> conv pairs: ConvNeXt has none, a SavedModel has no Keras layers); the record
names the method asked for and the one used.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from edge.errors import ConfigError

TFLITE_METHODS = ("minmax", "equalize", "bias", "equalize+bias")
ONNX_METHODS = ("minmax", "percentile", "equalize", "bias", "equalize+bias", "equalize+percentile", "bias+percentile",
                "equalize+bias+percentile")
TFLITE_DEFAULT = "minmax"          # equalize+bias measures better but amplifies a bad calibration set (module doc)
ONNX_DEFAULT = "bias+percentile"
EQUALIZE_ALPHA = 0.5   # t_c = sqrt(consumer weight range / activation range): measured best of 0.3, 0.5 (docs/drift.md)
PERCENTILE = 99.999    # ONNX Runtime's percentile calibrator; 99.99 measured worse (docs/drift.md)


@dataclass
class CalibrationRecord:
    """What an int8 file's calibration was: asked for, used, and what equalization did."""

    method: str
    used: str
    equalized_pairs: int = 0
    bias_corrected: int = 0
    note: str | None = None

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


def check_method(method: str, methods: tuple[str, ...], default: str, precision: str, fmt: str) -> None:
    if method not in methods:
        raise ConfigError(f"unknown --calibration {method!r} for {fmt}; valid: {', '.join(methods)}")
    if method != default and precision != "int8":
        raise ConfigError("--calibration needs --int8 (only full int8 is calibrated)")


def parts(method: str) -> list[str]:
    return [p for p in method.split("+") if p != "minmax"]


def join(methods: list[str]) -> str:
    return "+".join(methods) or "minmax"


def uses_percentile(record: CalibrationRecord) -> bool:
    return "percentile" in parts(record.used)


def equalized_lowered(lowered, job, method: str, default: str):
    """(the lowered graph to convert, CalibrationRecord): the float rewrites the method asks for (equalize, bias),
    made on the reference's Keras model before lowering; a rewrite that cannot run on the model is dropped, and the
    method used instead is logged (a WARNING when the user asked for the method, a note for the default)."""
    wanted = parts(method)
    rewrites = [p for p in wanted if p in ("equalize", "bias")]
    if not rewrites:
        return lowered, CalibrationRecord(method, method)
    model = getattr(job.reference, "model", None)
    if model is None or not hasattr(model, "layers"):
        used = join([p for p in wanted if p not in rewrites])
        why = f"{' and '.join(rewrites)} need a Keras model (a SavedModel has no layers to rescale)"
        return lowered, _fallback(job, method, default, used, why)
    record, used = CalibrationRecord(method, method), list(wanted)
    inputs = job.plan.calibration.inputs
    if "equalize" in rewrites:
        from converters.equalize import activation_ranges, equalize

        result = equalize(model, ranges=activation_ranges(model, inputs), alpha=EQUALIZE_ALPHA)
        if result.pairs == 0:
            used.remove("equalize")
            record = _fallback(job, method, default, join(used), "the model has no conv -> ReLU -> conv pair to "
                               "equalize (equalization knows Conv2D [+ BatchNormalization] -> ReLU -> Conv2D/Dense, "
                               "through zero padding, global pooling and squeeze-excitation)")
        else:
            model, record.equalized_pairs = result.model, result.pairs
            job.log(f"calibration {method}: equalized {result.pairs} conv -> ReLU -> conv pairs (exact in float)")
    if "bias" in rewrites:
        from converters.bias_correction import correct_biases

        result = correct_biases(model, inputs)
        if not result.layers:
            used.remove("bias")
            record = _fallback(job, method, default, join(used),
                               "the model has no conv or dense layer with a bias to correct")
        else:
            model, record.bias_corrected = result.model, len(result.layers)
            job.log(f"calibration {method}: corrected the biases of {len(result.layers)} layers for their int8 weights")
    record.used = join(used)
    if model is getattr(job.reference, "model", None):
        return lowered, record
    from converters.pipeline import lower

    return lower(replace(job.reference, model=model), job.plan), record


def _fallback(job, method: str, default: str, used: str, why: str) -> CalibrationRecord:
    note = f"--calibration {method} cannot run on this model: {why}; fell back to {used}"
    job.log(f"WARNING: {note}" if method != default else f"note: {note}")
    return CalibrationRecord(method, used, 0, 0, note)
