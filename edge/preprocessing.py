"""The preprocessing spec that travels with every model and every artifact.

A spec says how a decoded RGB image becomes the model's input tensor: resize rule, crop,
interpolation, value scaling and normalization, and which of those steps the model already does
itself. It is plain data, serialised as JSON into artifacts, so the device side never guesses.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any

from edge.errors import PreprocessError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

RESIZE_RULES = ("shorter_side", "stretch")
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
CHANNEL_ORDERS = ("RGB", "BGR")


@dataclass(frozen=True)
class PreprocessSpec:
    """How an RGB image in [0, 255] becomes the model input (NHWC).

    height, width:     the input tensor's spatial size.
    resize:            "shorter_side": scale the shorter side to size / crop_fraction, then crop
                       the centre; "stretch": resize straight to (height, width), no crop.
    crop_fraction:     share of the resized image kept by the centre crop (1.0: no crop).
    interpolation:     resampling filter for the resize.
    mean, std:         per channel, in [0, 1] units: x = (pixel / 255 - mean) / std.
    normalize_in_model: the model itself scales and normalizes; feed it raw [0, 255] pixels.
    resize_in_model:   the model itself resizes (any input size is accepted); the device may still
                       resize to (height, width) for a fixed-shape artifact.
    channel_order:     order of the colour channels the model expects.
    """

    height: int = 224
    width: int = 224
    resize: str = "shorter_side"
    crop_fraction: float = 0.875
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    normalize_in_model: bool = False
    resize_in_model: bool = False
    channel_order: str = "RGB"

    def __post_init__(self) -> None:
        problems = []
        if self.height < 1 or self.width < 1:
            problems.append(f"size must be positive, got {self.height}x{self.width}")
        if self.resize not in RESIZE_RULES:
            problems.append(f"resize must be one of {', '.join(RESIZE_RULES)}, got {self.resize!r}")
        if not 0.0 < self.crop_fraction <= 1.0:
            problems.append(f"crop_fraction must be in (0, 1], got {self.crop_fraction}")
        if self.interpolation not in INTERPOLATIONS:
            problems.append(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, got {self.interpolation!r}")
        if len(self.mean) != 3 or len(self.std) != 3:
            problems.append("mean and std need three values each (one per channel)")
        elif any(s <= 0 for s in self.std):
            problems.append(f"std values must be positive, got {self.std}")
        if self.channel_order not in CHANNEL_ORDERS:
            problems.append(f"channel_order must be one of {', '.join(CHANNEL_ORDERS)}, got {self.channel_order!r}")
        if problems:
            raise PreprocessError("invalid preprocessing spec: " + "; ".join(problems))

    @property
    def resize_size(self) -> int:
        """Shorter-side length before the centre crop (timm's rule: int(size / crop_fraction))."""
        return int(min(self.height, self.width) / self.crop_fraction)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["mean"] = list(self.mean)
        data["std"] = list(self.std)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessSpec:
        if not isinstance(data, dict):
            raise PreprocessError(f"preprocessing spec must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise PreprocessError(f"preprocessing spec has unknown keys {unknown}; known keys: {sorted(known)}")
        values = dict(data)
        for key in ("mean", "std"):
            if key in values:
                values[key] = tuple(float(v) for v in values[key])
        try:
            return cls(**values)
        except TypeError as exc:
            raise PreprocessError(f"malformed preprocessing spec: {exc}") from None

    @classmethod
    def from_json(cls, text: str) -> PreprocessSpec:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PreprocessError(f"preprocessing spec is not valid JSON: {exc}") from None
        return cls.from_dict(data)
