"""How full int8 is calibrated (`--calibration METHOD`): the methods, and the float rewrite they make first.

Methods (measured on the reference checkpoint, RegNetY-800MF and ConvNeXt-Tiny: docs/drift.md, "int8 calibration
methods"; `benchmarks/int8_calibration.py`). Both defaults are `bias+mse`: on the reference it is within 0.12 dB of
the best row (`equalize+bias+mse`) in both formats, and it leaves out equalization, which with a deliberately bad
calibration set (constant images) is far worse than min/max (tests/converters/test_convert's keep-float auto test
needs 128 float tensors instead of 4-16).
- `minmax`: the converter's own calibration as it is (TFLiteConverter / ONNX Runtime MinMax): the plain
  converter's bytes.
- `equalize`: cross-layer equalization of the float model first (converters.equalize, activation-aware: each
  ReLU output channel's calibration range balanced against its consumers' weights), then min/max. Exact in float.
- `bias`: bias correction of the weights' quantization (converters.bias_correction): each conv's bias absorbs
  the mean shift its int8 weights cause on the calibration images. Changes the float model slightly, on purpose.
- `percentile` (ONNX only): ONNX Runtime's percentile calibrator (99.999th percentile of |activation|) instead of
  min/max.
- `mse`: each activation range shrunk to the one with the least quantization error on the calibration images
  (converters.activation_ranges; TFLite: converters.tflite_ranges, ONNX: ONNX Runtime's TensorQuantOverrides).
- combinations, joined with "+" in the order equalize, bias, then one of percentile / mse (e.g. `equalize+mse`).

A method that cannot run on a model says so and falls back to the nearest method that can (equalization needs a
Keras model with conv -> ReLU -> conv pairs: ConvNeXt has none, a SavedModel has no Keras layers); the record
names the method asked for and the one used.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from edge.errors import ConfigError

REWRITES = ("", "equalize", "bias", "equalize+bias")       # float rewrites before conversion
TFLITE_RANGES = ("", "mse")                                 # how activation ranges are chosen ("": min/max)
ONNX_RANGES = ("", "percentile", "mse")


def _methods(ranges: tuple[str, ...]) -> tuple[str, ...]:
    return tuple("+".join(p for p in (rewrite, chosen) if p) or "minmax" for chosen in ranges for rewrite in REWRITES)


TFLITE_METHODS = _methods(TFLITE_RANGES)
ONNX_METHODS = _methods(ONNX_RANGES)
TFLITE_DEFAULT = "bias+mse"   # the best measured without equalization, which amplifies a bad calibration set (doc)
ONNX_DEFAULT = "bias+mse"
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


def uses_mse(record: CalibrationRecord) -> bool:
    return "mse" in parts(record.used)


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
