"""The other seed architectures, from keras.applications: ConvNeXt-Tiny and EfficientNet-B7.

Both carry their input normalization inside (they take [0, 255] RGB pixels), and give logits here
(no softmax), as the kit's RegNetY models do. Weights come from a path (a Keras .weights.h5 or
.keras file); nothing is downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge.errors import ConfigError
from edge.preprocessing import PreprocessSpec


@dataclass(frozen=True)
class Application:
    name: str              # what --model takes
    builder: str           # the keras.applications function
    size: int              # the published input size
    crop_fraction: float   # centre crop of the published evaluation
    description: str

    def preprocessing(self, size: int) -> PreprocessSpec:
        return PreprocessSpec(height=size, width=size, resize="shorter_side", crop_fraction=self.crop_fraction,
                              interpolation="bicubic", normalize_in_model=True)


APPLICATIONS: dict[str, Application] = {a.name: a for a in (
    Application("convnext_tiny", "ConvNeXtTiny", 224, 0.875,
                "ConvNeXt-Tiny (LayerNorm, GELU, depthwise 7x7), normalization inside"),
    Application("efficientnet_b7", "EfficientNetB7", 600, 600 / 632,
                "EfficientNet-B7 (swish, SE, depthwise convs) at 600x600, rescaling and normalization inside"),
)}


def get_application(name: str) -> Application:
    if name not in APPLICATIONS:
        raise ConfigError(f"unknown model {name!r}; models: regnety, {', '.join(APPLICATIONS)}")
    return APPLICATIONS[name]


def build_application(name: str, num_classes: int = 1000, size: int | None = None):
    """The Keras model, random weights, logits out, at `size` (default: the published size)."""
    import keras

    app = get_application(name)
    size = size or app.size
    if size < 32:
        raise ConfigError(f"input size must be at least 32, got {size}")
    if num_classes < 1:
        raise ConfigError(f"number of classes must be at least 1, got {num_classes}")
    build = getattr(keras.applications, app.builder)
    return build(weights=None, input_shape=(size, size, 3), classes=num_classes, classifier_activation=None,
                 name=name)
