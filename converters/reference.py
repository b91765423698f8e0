"""The reference a conversion starts from, as one explicit type.

A `Reference` is what every converter, the validator and the reports read: its name and identity,
preprocessing, labels, output kind, weights, and the model itself behind three operations: `predict`
(the reference outputs drift is measured against), `lowered` (the `Graph` to convert, grouped convs
written as a lowering asks) and `macs`. Two implementations: `KerasReference` (the kit's RegNetY and
keras.applications models, built in Keras) and `converters.saved_model.SavedModelReference` (a TF
Hub-style SavedModel, converted as it is).

A `Graph` is what the format exporters convert: it gives a configured `TFLiteConverter` and the
`tf.function` tf2onnx traces. `KerasGraph` wraps a (lowered) Keras model; a SavedModel's serving
function is one too.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Protocol, runtime_checkable

import numpy as np

from edge.preprocessing import PreprocessSpec

OUTPUT_KINDS = ("logits", "features")
PREDICT_PIXELS = 32 * 224 * 224  # pixels per batch of the reference's predict (KerasReference.predict)


@dataclass(frozen=True)
class ModelIdentity:
    """What names the model in an artifact's metadata."""

    name: str           # e.g. regnety_200mf, convnext_tiny_features
    variant: str        # RegNetY design point, the application's name, or "-" for a SavedModel
    flavour: str        # paper | seed | keras.applications | saved_model
    num_classes: int
    head: bool = True   # False: the model ends at its pooled features (--head none)


@runtime_checkable
class Graph(Protocol):
    """A model in the form the exporters convert."""

    input_shape: tuple                  # (None, height, width, channels)

    def tflite_converter(self):
        """A tf.lite.TFLiteConverter for this graph (not yet configured)."""

    def onnx_function(self):
        """The tf.function tf2onnx traces (float32 NHWC images in, one output out)."""


class Reference(Protocol):
    identity: ModelIdentity
    preprocessing: PreprocessSpec
    labels: list[str]                   # [] for a feature extractor
    weights: dict                       # {"path", "sha256", "description"}

    @property
    def name(self) -> str: ...

    @property
    def num_classes(self) -> int: ...

    @property
    def output_kind(self) -> str: ...

    def predict(self, inputs: np.ndarray, batch: int | None = None) -> np.ndarray: ...

    def lowered(self, lowering: str, max_depthwise_taps: int | None = None) -> Lowered: ...

    def macs(self) -> int | None: ...


@dataclass
class Lowered:
    """The graph to convert, and the rewrites that made it (recorded in the artifact's metadata)."""

    graph: Graph
    depthwise_bands: list[str] = field(default_factory=list)  # depthwise convs split in row bands
    grouped_convs: int = 0      # grouped convs left as they are (the native lowering), when the graph shows them


def with_dense_as_conv(lowered: Lowered) -> Lowered:
    """`lowered` with its Dense layers written as 1x1 convs (converters.rewrite.dense_as_conv), for targets whose
    runtimes cannot take a per-channel int8 FULLY_CONNECTED (converters.targets). Only a Keras graph is rewritten; a
    SavedModel's serving function is converted as it is (it converts only for targets that keep the graph as it is)."""
    from converters.rewrite import dense_as_conv

    if not isinstance(lowered.graph, KerasGraph):
        return lowered
    return replace(lowered, graph=KerasGraph(dense_as_conv(lowered.graph.model)))


@dataclass
class KerasGraph:
    """A Keras model as a Graph."""

    model: object  # keras.Model

    @property
    def input_shape(self) -> tuple:
        return tuple(self.model.input_shape)

    def tflite_converter(self):
        """A converter over the model traced once, which the converter freezes (its variables as constants).
        TFLiteConverter's own from_keras_model writes the model to a SavedModel and reads it back first: 12 of 14 s
        of a 200MF conversion; this route gives the same graph (outputs equal, tensor names equal; two constants
        swap places in the file) in 4 s. No trackable object is passed: with one, the converter takes the SavedModel
        route again; without, the traced function holds the variables only weakly, and `self.model` keeps them
        alive. Freezing here as well would freeze twice (0.5 s of a 200MF conversion, same bytes).
        converters.tflite_converter.with_signature adds back the serving signature."""
        import tensorflow as tf

        spec = tf.TensorSpec((None, *self.model.input_shape[1:]), tf.float32, name=self.input_name)
        traced = tf.function(lambda x: self.model(x, training=False)).get_concrete_function(spec)
        return tf.lite.TFLiteConverter.from_concrete_functions([traced])

    @property
    def input_name(self) -> str:
        """The model's input name ("image" for the kit's models): the serving signature's input key."""
        return getattr(self.model.inputs[0], "name", None) or "input"

    def onnx_function(self):
        """Trace rules applied (converters.rewrite.TRACE_RULES): grouped convs as plain tf.nn.convolution, and
        the rest of what tf2onnx cannot take from Keras as it is."""
        import tensorflow as tf

        from converters.rewrite import traceable

        traced = traceable(self.model)
        return tf.function(lambda x: traced(x, training=False))


class Identified:
    """What every Reference reads off its `identity`."""

    identity: ModelIdentity

    @property
    def name(self) -> str:
        return self.identity.name

    @property
    def num_classes(self) -> int:
        return self.identity.num_classes

    @property
    def output_kind(self) -> str:
        """"logits" (a classifier) or "features" (pooled features, the TF Hub feature_vector role)."""
        return "logits" if self.identity.head else "features"


def as_graph(model) -> Graph:
    """A Graph as it is; a Keras model wrapped as one (what to_tflite and to_onnx accept)."""
    return model if isinstance(model, Graph) else KerasGraph(model)


@dataclass
class KerasReference(Identified):
    """A Keras model (grouped convs, float32) with what names, feeds and labels it."""

    model: object  # keras.Model
    identity: ModelIdentity
    preprocessing: PreprocessSpec
    labels: list[str]
    weights: dict

    def predict(self, inputs: np.ndarray, batch: int | None = None) -> np.ndarray:
        """The model's outputs, in batches of PREDICT_PIXELS pixels (32 images at 224 px, 4 at 600 px: a batch's
        activations stay within a few GB for EfficientNet-B7 too)."""
        batch = batch or max(1, PREDICT_PIXELS // int(np.prod(inputs.shape[1:3])))
        return np.asarray(self.model.predict(inputs, batch_size=batch, verbose=0), np.float32)

    def lowered(self, lowering: str, max_depthwise_taps: int | None = None) -> Lowered:
        """The model with its grouped convs in `lowering`, and depthwise convs of more than max_depthwise_taps taps
        in row bands (converters.rewrite)."""
        from converters.rewrite import grouped_convs, large_depthwise_convs, lower_grouped_convs, split_depthwise_taps

        model = lower_grouped_convs(self.model, lowering)
        banded = large_depthwise_convs(model, max_depthwise_taps) if max_depthwise_taps else []
        if banded:  # split_depthwise_taps rewrites exactly these
            model = split_depthwise_taps(model, max_depthwise_taps)
        return Lowered(KerasGraph(model), banded, len(grouped_convs(model)))

    def macs(self) -> int:
        from models.complexity import count_macs

        return count_macs(self.model)
