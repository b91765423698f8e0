"""A TF Hub-style SavedModel as the model a conversion starts from (`--saved-model DIR`).

The SavedModel's `serving_default` signature is the reference: one image input of rank 4, one output.
The file does not say how to preprocess, so the spec comes from a preset per known module
(`--preset`) or from `--preprocessing JSON`. Conversions trace the signature at the spec's fixed
size; the graph is converted as it is (its grouped convolutions cannot be rewritten, so targets that
need a lowering are refused).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from converters.reference import Identified, Lowered, ModelIdentity
from edge.errors import ConfigError, first_line
from edge.preprocessing import IMAGENET_MEAN, IMAGENET_STD, PreprocessSpec

PRESETS: dict[str, tuple[PreprocessSpec, str]] = {
    "regnety200mf-hub": (
        PreprocessSpec(height=224, width=224, resize="stretch", crop_fraction=1.0, interpolation="bilinear",
                       normalize_in_model=True, resize_in_model=True),
        "the seed RegNetY TF Hub models: [0, 255] pixels of any size, resized and normalized inside"),
    "convnext-tiny-hub": (
        PreprocessSpec(height=224, width=224, resize="shorter_side", crop_fraction=0.875, interpolation="bicubic",
                       mean=IMAGENET_MEAN, std=IMAGENET_STD),
        "ConvNeXt-Tiny at 224: ImageNet mean/std normalized input"),
    "efficientnet-b7-hub": (
        PreprocessSpec(height=600, width=600, resize="shorter_side", crop_fraction=600 / 632, interpolation="bicubic",
                       mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)),
        "EfficientNet-B7 TF Hub module at 600x600: inputs in [0, 1]"),
}


class ServingFunction:
    """The SavedModel's serving signature at a fixed input size: float32 NHWC images in, one output out.
    A converters.reference.Graph: it gives the TFLite converter and tf2onnx what they convert."""

    def __init__(self, loaded, signature, input_name: str, output_name: str, height: int, width: int):
        import tensorflow as tf

        self.loaded = loaded
        dtype = signature.structured_input_signature[1][input_name].dtype

        @tf.function(input_signature=[tf.TensorSpec([None, height, width, 3], tf.float32, name="image")])
        def serve(image):
            return signature(**{input_name: tf.cast(image, dtype)})[output_name]

        self.function = serve
        self.concrete = serve.get_concrete_function()
        self.input_shape = (None, height, width, 3)
        self.output_shape = tuple(self.concrete.outputs[0].shape)

    def predict(self, inputs: np.ndarray, batch_size: int = 32) -> np.ndarray:
        return np.concatenate([np.asarray(self.function(inputs[i:i + batch_size]))
                               for i in range(0, len(inputs), batch_size)])

    def tflite_converter(self):
        import tensorflow as tf

        return tf.lite.TFLiteConverter.from_concrete_functions([self.concrete], self.loaded)

    def onnx_function(self):
        return self.function


@dataclass
class SavedModelReference(Identified):
    """A SavedModel's serving function as the reference (converters.reference.Reference): converted as it is."""

    function: ServingFunction
    identity: ModelIdentity
    preprocessing: PreprocessSpec
    labels: list[str]
    weights: dict

    def predict(self, inputs: np.ndarray, batch: int = 32) -> np.ndarray:
        return np.asarray(self.function.predict(inputs, batch), np.float32)

    def lowered(self, lowering: str, max_depthwise_taps: int | None = None) -> Lowered:
        """The serving function itself: its grouped convs cannot be rewritten (nor its depthwise convs banded)."""
        if lowering != "native":
            raise ConfigError(f"a SavedModel converts as it is: its grouped convs cannot be lowered to {lowering}; "
                              "use --target xnnpack or gpu, or rebuild the model in Keras with the kit")
        return Lowered(self.function)

    def macs(self) -> None:
        return None


def preprocessing_for(preset: str | None, preprocessing: str | None) -> PreprocessSpec:
    if preset and preprocessing:
        raise ConfigError("pass either --preset or --preprocessing, not both")
    if preset:
        if preset not in PRESETS:
            raise ConfigError(f"unknown preset {preset!r}; presets: {', '.join(PRESETS)}")
        return PRESETS[preset][0]
    if preprocessing:
        text = Path(preprocessing).read_text() if Path(preprocessing).is_file() else preprocessing
        return PreprocessSpec.from_json(text)
    raise ConfigError("a SavedModel does not say how to preprocess its input: pass --preset "
                      f"({', '.join(PRESETS)}) or --preprocessing JSON (a preprocessing spec, or a file holding one)")


def fingerprint(path: Path) -> str:
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(path)).encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


def load_saved_model(path: str | Path, spec: PreprocessSpec, name: str | None = None, labels: list[str] | None = None,
                     log=print):
    """The SavedModel's serving_default signature as the reference; ConfigError naming what was found when the
    SavedModel is not a single-image classifier."""
    import tensorflow as tf

    path = Path(path)
    if not (path / "saved_model.pb").is_file():
        raise ConfigError(f"{path} is not a SavedModel directory (no saved_model.pb in it); pass the folder that "
                          "tf.saved_model.save or model.export wrote")
    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as exc:  # TensorFlow raises several types for unreadable SavedModels
        raise ConfigError(f"{path}: TensorFlow cannot load this SavedModel ({first_line(exc, 200)})") from None
    signatures = dict(loaded.signatures)
    if "serving_default" not in signatures:
        found = ", ".join(signatures) or "none"
        raise ConfigError(f"{path} has no serving_default signature (signatures found: {found}); re-export it with "
                          "signatures={'serving_default': ...}")
    signature = signatures["serving_default"]
    inputs = signature.structured_input_signature[1]
    if len(inputs) != 1:
        described = ", ".join(f"{k} {v.shape}" for k, v in inputs.items())
        raise ConfigError(f"{path}: serving_default has {len(inputs)} inputs ({described}); the kit converts models "
                          "with exactly one image input")
    input_name, input_spec = next(iter(inputs.items()))
    shape = input_spec.shape
    if shape.rank != 4:
        raise ConfigError(f"{path}: input {input_name} has rank {shape.rank} (shape {shape}); an image input is rank 4 "
                          "(batch, height, width, 3)")
    if shape[-1] not in (None, 3):
        raise ConfigError(f"{path}: input {input_name} has {shape[-1]} channels (shape {shape}); the kit feeds RGB")
    fixed = (shape[1], shape[2])
    if None not in fixed and fixed != (spec.height, spec.width):
        raise ConfigError(f"{path}: input {input_name} is fixed at {fixed[0]}x{fixed[1]} but the preprocessing gives "
                          f"{spec.height}x{spec.width}; pass a matching --preset or --preprocessing")
    outputs = signature.structured_outputs
    if len(outputs) != 1:
        raise ConfigError(f"{path}: serving_default has {len(outputs)} outputs ({', '.join(outputs)}); the kit converts "
                          "single-output classifiers")
    output_name = next(iter(outputs))
    function = ServingFunction(loaded, signature, input_name, output_name, spec.height, spec.width)
    if len(function.output_shape) != 2:
        raise ConfigError(f"{path}: output {output_name} has shape {function.output_shape}; a classifier gives "
                          "(batch, classes)")
    classes = int(function.output_shape[-1])
    if labels and len(labels) != classes:
        raise ConfigError(f"{len(labels)} labels but the SavedModel has {classes} outputs; make them agree")
    model_name = name or "saved_model_" + re.sub(r"[^a-z0-9]+", "_", path.resolve().name.lower()).strip("_")
    identity = ModelIdentity(model_name, "-", "saved_model", classes)
    log(f"model: SavedModel {path} (serving_default: {input_name} {shape} {input_spec.dtype.name} -> {output_name} "
        f"{classes} outputs), traced at {spec.height}x{spec.width}")
    info = {"path": str(path), "sha256": fingerprint(path), "description": "SavedModel (serving_default)"}
    return SavedModelReference(function, identity, spec, labels or [f"class_{i}" for i in range(classes)], info)
