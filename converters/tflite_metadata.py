"""Standard TFLite Metadata (the `TFLITE_METADATA` buffer) for the kit's .tflite files.

What MediaPipe Tasks, the LiteRT Support Library and Android Studio's ML Model Binding read: the model's
name, version and licence; the input image's colour space and normalization in the input tensor's own
scale; input/output value ranges; and the labels, as an associated file packed into a zip archive
appended to the model (the schema's convention: the .tflite stays a valid flatbuffer and is also a zip).

Everything is derived from the kit's own record (converters.report.metadata_record), so the two cannot
disagree. The flatbuffer is written with the `flatbuffers` Builder and the field order of the TFLite
Metadata schema (metadata_schema.fbs, file identifier "M001"); tests read it back with MediaPipe's
generated schema module and MediaPipe's ImageClassifier. Deterministic: the same record gives the same bytes.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass

import numpy as np

from edge.errors import ConversionError

BUFFER_NAME = "TFLITE_METADATA"
IDENTIFIER = b"M001"
MIN_PARSER_VERSION = "1.0.0"      # no field this writer uses needs a newer metadata parser
LABELS_FILE = "labels.txt"
MAX_METADATA_BYTES = 8 << 20      # flatbuffer plus packed files; 21k ImageNet-22k labels take about 0.5 MB
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed, so the packed labels are byte-deterministic

# Enum values of metadata_schema.fbs
_TENSOR_AXIS_LABELS = 2
_RGB = 1
_FEATURE_PROPERTIES, _IMAGE_PROPERTIES = 1, 2   # ContentProperties union
_NORMALIZATION_OPTIONS = 1                      # ProcessUnitOptions union


@dataclass(frozen=True)
class Tensor:
    """One tensor's metadata entry."""

    name: str
    description: str
    image: bool = False                             # ImageProperties (RGB) content; else FeatureProperties
    mean: tuple[float, ...] | None = None           # NormalizationOptions, in the tensor's own scale
    std: tuple[float, ...] | None = None
    stats: tuple[tuple[float, ...], tuple[float, ...]] | None = None  # (min, max) of the values it holds
    labels_file: str | None = None                  # TENSOR_AXIS_LABELS associated file


@dataclass(frozen=True)
class StandardMetadata:
    name: str
    description: str
    version: str
    author: str
    license: str
    input: Tensor
    output: Tensor
    labels: tuple[str, ...] = ()

    def files(self) -> dict[str, bytes]:
        """The associated files to pack beside the model."""
        return {LABELS_FILE: ("\n".join(self.labels) + "\n").encode("utf-8")} if self.output.labels_file else {}


def from_record(record: dict) -> StandardMetadata:
    """The standard metadata a kit record implies (converters.report.metadata_record)."""
    model, io_info, prep = record["model"], record["io"], record["preprocessing"]
    features = io_info.get("output_kind") == "features"
    inp, out = io_info["input"], io_info["output"]
    size = f"{prep['height']}x{prep['width']}"
    version = (record.get("versions") or {}).get("regnety-edge-kit", "unknown")
    weights = record.get("weights") or {}
    precision = record.get("precision", "")
    mean, std, low, high = _input_normalization(prep, inp)
    description = (f"{model['name']} ({precision}): " + (
        f"{model['num_classes']}-class image classifier; outputs logits (softmax gives probabilities)"
        if not features else "pooled image features") + f". Weights: {weights.get('description', 'unknown')}. "
        f"Kit preprocessing: {prep['resize']} resize and {prep['crop_fraction']} centre crop to {size} "
        f"({prep['interpolation']}); the full record is in the file's regnety_edge_kit metadata.")
    raw = mean is None or prep.get("normalize_in_model")
    image = Tensor("image", f"RGB image, {size}, {inp['dtype']}" + (
        ", raw pixels 0..255" if raw else ", normalized as (pixel - mean) / std"),
        image=True, mean=mean, std=std, stats=(low, high))
    if features:
        output = Tensor("features", f"{out['shape'][-1]} pooled features per image ({out['dtype']})",
                        stats=_quantized_range(out))
    else:
        output = Tensor("logits", f"one logit per class ({out['dtype']}); softmax gives probabilities",
                        stats=_quantized_range(out), labels_file=LABELS_FILE)
        if len(record.get("labels") or ()) != out["shape"][-1]:
            raise ConversionError(f"{len(record.get('labels') or ())} labels for a model with {out['shape'][-1]} "
                                  "outputs; pass --labels with one name per class")
    return StandardMetadata(
        name=model["name"], description=description, version=version, author="regnety-edge-kit",
        license=_license(weights), input=image, output=output,
        labels=tuple(record.get("labels") or ()) if not features else ())


def _input_normalization(prep: dict, inp: dict):
    """(mean, std, min, max) per channel, or one value for all, such that tensor value = (pixel - mean) / std for a
    pixel in 0..255. mean and std are None for a uint8 tensor of raw pixels; a float tensor always has them (MediaPipe
    requires them, mean 0 and std 1 for raw pixels)."""
    if prep.get("normalize_in_model"):
        mean, std = np.zeros(3), np.ones(3)
    else:
        mean, std = np.asarray(prep["mean"], np.float64) * 255, np.asarray(prep["std"], np.float64) * 255
    if "scale" in inp:  # a quantized input holds q = x / scale + zero_point
        mean, std = mean - inp["zero_point"] * std * inp["scale"], std * inp["scale"]
    low, high = (0 - mean) / std, (255 - mean) / std
    if np.allclose(mean, mean[0]) and np.allclose(std, std[0]):  # one value for all channels: what MediaPipe runs
        mean, std, low, high = mean[:1], std[:1], low[:1], high[:1]
    as_tuple = lambda v: tuple(float(np.float32(x)) for x in v)  # noqa: E731
    if inp["dtype"] == "uint8" and np.allclose(mean, 0) and np.allclose(std, 1):  # raw pixels need no options
        return None, None, as_tuple(low), as_tuple(high)
    return as_tuple(mean), as_tuple(std), as_tuple(low), as_tuple(high)


def mediapipe_note(preprocessing, io: str) -> str | None:
    """What MediaPipe Tasks does with a file of this preprocessing and input type, when it is not what the kit does
    (measured with mediapipe 1.2.2: docs/consumers.md), or None when MediaPipe runs it as the kit does."""
    if preprocessing.normalize_in_model:
        return None
    if io != "float32":
        return (f"MediaPipe Tasks feeds raw pixels to an {io} input and ignores its normalization, so it would score "
                "this file wrongly; for MediaPipe convert with --normalize-in-model")
    if len(set(preprocessing.mean)) > 1 or len(set(preprocessing.std)) > 1:
        return ("MediaPipe Tasks applies one mean and std to all channels and refuses this file's per-channel "
                "normalization; for MediaPipe convert with --normalize-in-model")
    return None


def _quantized_range(tensor: dict):
    """The real values a quantized tensor can hold, or None for a float one."""
    if "scale" not in tensor:
        return None
    lo, hi = (0, 255) if tensor["dtype"] == "uint8" else (-128, 127)
    s, z = tensor["scale"], tensor["zero_point"]
    return (float(np.float32((lo - z) * s)),), (float(np.float32((hi - z) * s)),)


def _license(weights: dict) -> str:
    if weights.get("path") is None and str(weights.get("description", "")).startswith("random"):
        return "Apache-2.0 (random weights, no licence of their own)"
    if "the kit's reference" in str(weights.get("description", "")):
        return "Apache-2.0 (the kit's reference checkpoint)"
    return f"the licence of the weights {weights.get('path') or ''}".strip() + " (not known to the kit)"


# ---- writing the flatbuffer -------------------------------------------------------------------------


def to_flatbuffer(meta: StandardMetadata) -> bytes:
    """The ModelMetadata flatbuffer (file identifier M001)."""
    import flatbuffers

    b = flatbuffers.Builder(1024)

    def strings(values):
        return b.CreateString(values) if isinstance(values, str) else None

    def table(fields: list[tuple[int, str, object]]) -> int:
        """fields: (slot, kind, value) with kind 'off' (an offset made before), 'u8', 'i8', 'u32', 'i32'."""
        fields = [f for f in fields if f[2] is not None]
        b.StartObject(max((slot for slot, _, _ in fields), default=-1) + 1)
        for slot, kind, value in fields:
            if kind == "off":
                b.PrependUOffsetTRelativeSlot(slot, value, 0)
            elif kind == "u8":
                b.PrependUint8Slot(slot, value, 0)
            elif kind == "i8":
                b.PrependInt8Slot(slot, value, 0)
            elif kind == "u32":
                b.PrependUint32Slot(slot, value, 0)
        return b.EndObject()

    def offsets(items: list[int]) -> int:
        b.StartVector(4, len(items), 4)
        for item in reversed(items):
            b.PrependUOffsetTRelative(item)
        return b.EndVector()

    def floats(values) -> int:
        b.StartVector(4, len(values), 4)
        for v in reversed(values):
            b.PrependFloat32(v)
        return b.EndVector()

    def tensor(t: Tensor) -> int:
        name, description = strings(t.name), strings(t.description)
        if t.image:
            props = table([(0, "i8", _RGB)])                   # ImageProperties.color_space
            content = table([(0, "u8", _IMAGE_PROPERTIES), (1, "off", props)])
        else:
            props = table([])                                  # FeatureProperties
            content = table([(0, "u8", _FEATURE_PROPERTIES), (1, "off", props)])
        units = None
        if t.mean is not None:
            mean, std = floats(t.mean), floats(t.std)
            options = table([(0, "off", mean), (1, "off", std)])
            units = offsets([table([(0, "u8", _NORMALIZATION_OPTIONS), (1, "off", options)])])
        stats = None
        if t.stats is not None:
            low, high = floats(t.stats[0]), floats(t.stats[1])
            stats = table([(0, "off", high), (1, "off", low)])  # Stats: max, min
        files = None
        if t.labels_file:
            file_name, file_description = strings(t.labels_file), strings("labels, one per line, in output order")
            files = offsets([table([(0, "off", file_name), (1, "off", file_description),
                                    (2, "i8", _TENSOR_AXIS_LABELS)])])
        return table([(0, "off", name), (1, "off", description), (3, "off", content), (4, "off", units),
                      (5, "off", stats), (6, "off", files)])

    inputs, outputs = offsets([tensor(meta.input)]), offsets([tensor(meta.output)])
    subgraph = offsets([table([(2, "off", inputs), (3, "off", outputs)])])
    name, description, version = strings(meta.name), strings(meta.description), strings(meta.version)
    author, license_, parser = strings(meta.author), strings(meta.license), strings(MIN_PARSER_VERSION)
    root = table([(0, "off", name), (1, "off", description), (2, "off", version), (3, "off", subgraph),
                  (4, "off", author), (5, "off", license_), (7, "off", parser)])
    b.Finish(root, file_identifier=IDENTIFIER)
    return bytes(b.Output())


def pack_files(model: bytes, files: dict[str, bytes]) -> bytes:
    """The model with `files` in a zip archive appended (offsets relative to the start of the whole file, as
    the metadata schema's readers expect); the model bytes unchanged when there are no files."""
    if not files:
        return model
    buffer = io.BytesIO(model)
    buffer.seek(0, io.SEEK_END)
    with zipfile.ZipFile(buffer, "a", compression=zipfile.ZIP_STORED) as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.create_system = 3
            info.external_attr = 0o644 << 16
            archive.writestr(info, files[name])
    return buffer.getvalue()


def check_size(flatbuffer: bytes, files: dict[str, bytes]) -> None:
    total = len(flatbuffer) + sum(len(v) for v in files.values())
    if total > MAX_METADATA_BYTES:
        raise ConversionError(f"the standard metadata would take {total / 1e6:.1f} MB (limit "
                              f"{MAX_METADATA_BYTES / 1e6:.0f} MB); shorten the labels")
