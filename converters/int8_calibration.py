"""How full int8 is calibrated (`--calibration METHOD`): the methods, and the float rewrite they make first.

Methods (measured on the reference checkpoint, RegNetY-800MF and ConvNeXt-Tiny: docs/drift.md, "int8 calibration
methods"; `benchmarks/int8_calibration.py`). Both defaults are `equalize+gptq+mse`, the best measured on the
reference in both formats. Equalization and GPTQ learn from the calibration images; when most of them are nearly
uniform (a constant test image, a broken capture) both are left out, loudly, and the record names the method used.
- `minmax`: the converter's own calibration as it is (TFLiteConverter / ONNX Runtime MinMax): the plain
  converter's bytes.
- `equalize`: cross-layer equalization of the float model first (converters.equalize, activation-aware: each
  ReLU output channel's calibration range balanced against its consumers' weights), then min/max. Exact in float.
- `bias`: bias correction of the weights' quantization (converters.bias_correction): each conv's bias absorbs
  the mean shift its int8 weights cause on the calibration images. Changes the float model slightly, on purpose.
- `gptq`: the int8 rounding of every conv / dense layer's weights chosen for the layer's output on the calibration
  images (converters.rounding, GPTQ), with the bias correction of the new weights' mean shift: replaces `bias`.
- `percentile` (ONNX only): ONNX Runtime's percentile calibrator (99.999th percentile of |activation|) instead of
  min/max.
- `mse`: each activation range shrunk to the one with the least quantization error on the calibration images
  (converters.activation_ranges; TFLite: converters.tflite_ranges, ONNX: ONNX Runtime's TensorQuantOverrides).
- combinations, joined with "+" in the order equalize, bias or gptq, then percentile or mse (`equalize+gptq+mse`).

A method that cannot run on a model says so and falls back to the nearest method that can (equalization needs a
Keras model with conv -> ReLU -> conv pairs: ConvNeXt has none, a SavedModel has no Keras layers); the record
names the method asked for and the one used.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, replace

import numpy as np

from edge import cache
from edge.errors import ConfigError

REWRITES = ("", "equalize", "bias", "equalize+bias", "gptq", "equalize+gptq")  # float rewrites before conversion
TFLITE_RANGES = ("", "mse")                                 # how activation ranges are chosen ("": min/max)
ONNX_RANGES = ("", "percentile", "mse")


def _methods(ranges: tuple[str, ...]) -> tuple[str, ...]:
    return tuple("+".join(p for p in (rewrite, chosen) if p) or "minmax" for chosen in ranges for rewrite in REWRITES)


TFLITE_METHODS = _methods(TFLITE_RANGES)
ONNX_METHODS = _methods(ONNX_RANGES)
TFLITE_DEFAULT = "equalize+gptq+mse"   # the best measured (docs/drift.md)
ONNX_DEFAULT = "equalize+gptq+mse"
UNIFORM_STD = 0.01     # a calibration image whose values' spread is under 1% of the set's range is uniform
EQUALIZE_ALPHA = 0.5   # t_c = sqrt(consumer weight range / activation range): measured best of 0.3, 0.5 (docs/drift.md)
PERCENTILE = 99.999    # ONNX Runtime's percentile calibrator; 99.99 measured worse (docs/drift.md)


@dataclass
class CalibrationRecord:
    """What an int8 file's calibration was: asked for, used, and what equalization did."""

    method: str
    used: str
    equalized_pairs: int = 0
    bias_corrected: int = 0
    rounded_layers: int = 0
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
    """(the lowered graph to convert, CalibrationRecord): the float rewrites the method asks for (equalize, then
    bias or gptq), made on the reference's Keras model before lowering; a rewrite that cannot run on the model or
    the calibration images is dropped, and the method used instead is logged (a WARNING when the user asked for
    the method, a note for the default). The rewritten weights are kept in the cache folder (edge.cache)
    under a key of the model, the calibration images, the method and the code: converting the same model again
    reads them back instead of fitting them again."""
    wanted = parts(method)
    rewrites = [p for p in wanted if p in ("equalize", "bias", "gptq")]
    if not rewrites:
        return lowered, CalibrationRecord(method, method)
    model = getattr(job.reference, "model", None)
    if model is None or not hasattr(model, "layers"):
        used = join([p for p in wanted if p not in rewrites])
        why = f"{' and '.join(rewrites)} need a Keras model (a SavedModel has no layers to rescale)"
        return lowered, _fallback(job.log, CalibrationRecord(method, method), default, used, why)
    inputs = job.plan.calibration.inputs
    key = _rewrite_key(model, inputs, method, default) if cache.cache_dir() is not None else None
    stored = cache.read(REWRITES_KIND, key) if key else None
    restored = _restored(model, stored, job.log, key) if stored is not None else None
    if restored is not None:
        rewritten, record = restored
    else:
        said: list[str] = []

        def log(message: str) -> None:
            said.append(message)
            job.log(message)

        rewritten, record = _rewritten(model, inputs, method, default, log)
        if key:
            weights = rewritten.get_weights() if rewritten is not model else []
            cache.write(REWRITES_KIND, key, {"record": cache.text(asdict(record)), "said": cache.text(said),
                                             **{f"w{i:05d}": w for i, w in enumerate(weights)}})
    if rewritten is model:
        return lowered, record
    from converters.pipeline import lower

    return lower(replace(job.reference, model=rewritten), job.plan), record


REWRITES_KIND = "int8-rewrites"


def _rewrite_key(model, inputs: np.ndarray, method: str, default: str) -> str | None:
    """The cache key of the rewrites: the model (architecture and weights), the images, the method, every setting
    and line of the code that fits them. None for a model whose architecture cannot be written down."""
    import keras
    import tensorflow as tf

    from converters import bias_correction, equalize, probe, rounding

    try:
        architecture = model.to_json()
    except Exception:  # a layer Keras cannot serialize: computed each time
        return None
    key = cache.Key(f"{REWRITES_KIND} v1").versions(tf, keras).facts(method=method, default=default, architecture=architecture)
    key.settings(sys.modules[__name__], equalize, rounding, bias_correction, probe)
    key.sources("converters/int8_calibration.py", "converters/equalize.py", "converters/rounding.py",
                "converters/bias_correction.py", "converters/probe.py", "models", "converters/source.py",
                "converters/reference.py", "converters/rewrite.py", "converters/trace_layers.py")
    return key.array(np.asarray(inputs, np.float32)).weights(model).hexdigest()


def _restored(model, stored: dict, log, key: str):
    """(the rewritten model, its record) from a cache entry, with what the fitting said said again; None for an
    entry that does not fit the model (fitted again)."""
    import keras

    try:
        record = CalibrationRecord(**cache.untext(stored["record"]))
        weights = [stored[name] for name in sorted(stored) if name.startswith("w")]
        said = cache.untext(stored["said"])
        clone = keras.models.clone_model(model) if weights else model
        if weights:
            clone.set_weights(weights)
    except (KeyError, TypeError, ValueError):
        return None
    log(f"calibration {record.method}: the float rewrites from the cache ({cache.entry(REWRITES_KIND, key).parent}, "
        f"key {key[:12]})")
    for line in said:
        log(line)
    return clone, record


def _rewritten(model, inputs: np.ndarray, method: str, default: str, log):
    """(the rewritten Keras model, or `model` when nothing changed; the record): the rewrites themselves."""
    wanted = parts(method)
    rewrites = [p for p in wanted if p in ("equalize", "bias", "gptq")]
    record, used = CalibrationRecord(method, method), list(wanted)
    uniform = uniform_images(inputs)
    data_driven = [p for p in rewrites if p in ("equalize", "gptq")]
    if uniform and data_driven:
        for p in data_driven:
            used.remove(p)
        rewrites = [p for p in rewrites if p not in data_driven]
        record = _fallback(log, record, default, join(used), f"{uniform}: {' and '.join(data_driven)} would fit the "
                           "model to them (calibrate on images like the ones it will see: --calib DIR)",
                           "on these calibration images")
    if "equalize" in rewrites:
        from converters.equalize import activation_ranges, equalize

        result = equalize(model, ranges=activation_ranges(model, inputs), alpha=EQUALIZE_ALPHA)
        if result.pairs == 0:
            record = _without(log, record, default, used, "equalize",
                              "the model has no conv -> ReLU -> conv pair to equalize (equalization knows Conv2D "
                              "[+ BatchNormalization] -> ReLU -> Conv2D/Dense, through zero padding, global pooling "
                              "and squeeze-excitation)")
        else:
            model, record.equalized_pairs = result.model, result.pairs
            log(f"calibration {method}: equalized {result.pairs} conv -> ReLU -> conv pairs (exact in float)")
    if "gptq" in rewrites:
        from converters.rounding import round_weights

        result = round_weights(model, inputs)
        if result.too_large:
            used[used.index("gptq")] = "bias"
            rewrites.append("bias")
            record = _fallback(log, record, default, join(used), result.too_large, "on a model this large")
        elif not result.layers:
            record = _without(log, record, default, used, "gptq",
                              "the model has no conv or dense layer whose int8 rounding the kit can choose")
        else:
            model, record.rounded_layers = result.model, len(result.layers)
            log(f"calibration {method}: chose the int8 rounding of {len(result.layers)} layers' weights (GPTQ: "
                f"{result.output_error_ratio:.2f}x round-to-nearest's output error on the calibration images)")
    if "bias" in rewrites:
        from converters.bias_correction import correct_biases

        result = correct_biases(model, inputs)
        if not result.layers:
            record = _without(log, record, default, used, "bias",
                              "the model has no conv or dense layer with a bias to correct")
        else:
            model, record.bias_corrected = result.model, len(result.layers)
            log(f"calibration {method}: corrected the biases of {len(result.layers)} layers for their int8 weights")
    record.used = join(used)
    return model, record


def uniform_images(inputs: np.ndarray) -> str | None:
    """Why the calibration images cannot teach a data-driven rewrite anything (most of them nearly uniform), or
    None. A constant image gives every channel one value: equalization would scale channels by ranges that real
    images exceed many times over, and GPTQ would fit the weights to one input."""
    span = float(np.max(inputs) - np.min(inputs))
    # each channel's spread over its image, the widest channel per image (image by image: B7 sets are gigabytes)
    spread = np.array([np.asarray(x, np.float64).reshape(-1, x.shape[-1]).std(axis=0).max() for x in inputs])
    flat = int(np.sum(spread <= UNIFORM_STD * span)) if span > 0 else len(inputs)
    if flat * 2 >= len(inputs):
        return f"{flat} of the {len(inputs)} calibration images are nearly uniform"
    return None


def _without(log, record: CalibrationRecord, default: str, used: list[str], part: str, why: str) -> CalibrationRecord:
    """`part` taken out of the method used (a list, changed in place), the fallback noted and logged."""
    used.remove(part)
    return _fallback(log, record, default, join(used), why)


def _fallback(log, record: CalibrationRecord, default: str, used: str, why: str,
              where: str = "on this model") -> CalibrationRecord:
    """The record with the fallback noted (after any earlier one), logged as a WARNING when the user asked for the
    method, a note for the default."""
    note = f"--calibration {record.method} cannot run {where}: {why}; fell back to {used}"
    log(f"WARNING: {note}" if record.method != default else f"note: {note}")
    record.used, record.note = used, note if record.note is None else f"{record.note}; {note}"
    return record
