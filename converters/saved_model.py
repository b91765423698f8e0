"""A TF Hub-style SavedModel as the model a conversion starts from (`--saved-model DIR`).

The SavedModel's `serving_default` signature is the reference: one image input of rank 4, one output.
The file does not say how to preprocess, so the spec comes from a preset per known module
(`--preset`) or from `--preprocessing JSON`. Conversions trace the signature at the spec's fixed
size; the graph is converted as it is (its grouped convolutions cannot be rewritten, so targets that
need a lowering are refused).

A SavedModel written by Keras 3 keeps each grouped Conv2D inside an XLA-compiled function (Keras runs
grouped convs on CPU through `jit_compile=True`), a call that tf2onnx does not inline. For ONNX the
serving function's graph is given to Grappler's function inliner with those functions' XLA and
no-inline marks removed (`inlined_graph_def`): the grouped convs reach tf2onnx as plain Conv2D ops on
the grouped kernel, which it writes as ONNX `Conv` nodes with `group` set. A serving function that writes
variables was traced in training mode (its outputs depend on the batch) and is refused.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from converters.reference import PREDICT_PIXELS, Identified, Lowered, ModelIdentity
from edge.errors import ConfigError, ConversionError, first_line
from edge.preprocessing import IMAGENET_MEAN, IMAGENET_STD, PreprocessSpec
from models.labels import default_labels

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
        """The serving function; when it calls functions marked against inlining (Keras 3's XLA-compiled grouped
        convs), the same function with every call inlined, so that tf2onnx sees plain ops."""
        return inlined_function(self.concrete) if marked_no_inline(self.concrete) else self.function


CALL_OPS = ("PartitionedCall", "StatefulPartitionedCall")
# What keeps Grappler from inlining a call: Keras 3's XLA-compiled grouped convs carry `_XlaMustCompile` (on the
# function and on its call) and `_noinline` (on the function). XLA only compiles the same ops the function holds.
NO_INLINE_ATTRS = ("_XlaMustCompile", "_XlaCompile", "_noinline")
VARIABLE_WRITES = ("AssignVariableOp", "AssignAddVariableOp", "AssignSubVariableOp")


def _all_nodes(graph_def):
    """The graph's nodes and those of the functions in its library."""
    yield from graph_def.node
    for function in graph_def.library.function:
        yield from function.node_def


def _attr_maps(graph_def):
    """The attributes of every function in the library and of every node."""
    yield from (function.attr for function in graph_def.library.function)
    yield from (node.attr for node in _all_nodes(graph_def))


def marked_no_inline(concrete) -> bool:
    """Whether the function calls a function that Grappler (and so tf2onnx) would leave as a call."""
    return any(name in attrs for attrs in _attr_maps(concrete.graph.as_graph_def()) for name in NO_INLINE_ATTRS)


def inlined_graph_def(concrete):
    """The concrete function's GraphDef with every PartitionedCall/StatefulPartitionedCall inlined by Grappler's
    function optimizer (as TensorFlow's own freezing runs it, aggressive mode, control flow left functional for
    tf2onnx), after removing the marks that exempt XLA-compiled functions from inlining."""
    from tensorflow.core.protobuf import config_pb2, meta_graph_pb2, rewriter_config_pb2
    from tensorflow.python.framework.convert_to_constants import disable_lower_using_switch_merge
    from tensorflow.python.grappler import tf_optimizer
    from tensorflow.python.training.saver import export_meta_graph

    graph_def = disable_lower_using_switch_merge(concrete.graph.as_graph_def())
    for attrs in _attr_maps(graph_def):
        for name in NO_INLINE_ATTRS:
            if name in attrs:
                del attrs[name]
    meta_graph = export_meta_graph(graph_def=graph_def, graph=concrete.graph)
    fetch = meta_graph_pb2.CollectionDef()
    fetch.node_list.value.extend(t.name for t in concrete.inputs + concrete.outputs)
    meta_graph.collection_def["train_op"].CopyFrom(fetch)  # what Grappler must keep
    config = config_pb2.ConfigProto()
    rewrite = config.graph_options.rewrite_options
    rewrite.min_graph_nodes = -1
    rewrite.optimizers.append("function")
    rewrite.function_optimization = rewriter_config_pb2.RewriterConfig.AGGRESSIVE
    inlined = tf_optimizer.OptimizeGraph(config, meta_graph)
    left = sorted({f"{n.op} {n.name}" for n in inlined.node if n.op in CALL_OPS})
    if left:
        raise ConversionError(f"Grappler left {len(left)} function calls in the serving function ({left[0]}, ...); "
                              "tf2onnx cannot convert them: convert this SavedModel to TFLite instead")
    return inlined


def inlined_function(concrete):
    """A tf.function (float32 NHWC images in, one output out) computing `concrete` through its inlined GraphDef.

    The GraphDef is imported inside the new function with the original captures mapped in, and the captured
    variables watched, so that tf2onnx's freezing finds and folds them as it does for any traced function;
    captured values that are not variables go in as constants.
    """
    import tensorflow as tf

    graph_def = inlined_graph_def(concrete)
    image, output = concrete.inputs[0], concrete.outputs[0]
    captures = [(external, internal.name) for external, internal in concrete.graph.captures]
    variables = {id(v.handle): v for v in concrete.graph.variables}

    @tf.function(input_signature=[tf.TensorSpec(image.shape, tf.float32, name="image")])
    def inlined(images):
        graph = tf.compat.v1.get_default_graph()
        input_map = {image.name: images}
        for external, name in captures:
            if external.dtype != tf.resource:  # a captured value (Keras's Normalization mean): tf2onnx would make
                input_map[name] = tf.constant(external.numpy())  # it a graph input, so it goes in as a constant
                continue
            input_map[name] = graph.capture(external)
            if id(external) in variables:
                graph.watch_variable(variables[id(external)])
        result, = tf.graph_util.import_graph_def(graph_def, input_map=input_map, return_elements=[output.name],
                                                 name="serving")
        return result

    return inlined


def variable_writes(concrete) -> list[str]:
    """The serving function's ops that write variables (a model traced in training mode updates its BatchNorm
    statistics): the graph's, then its functions'."""
    return [n.name for n in _all_nodes(concrete.graph.as_graph_def()) if n.op in VARIABLE_WRITES]


@dataclass
class SavedModelReference(Identified):
    """A SavedModel's serving function as the reference (converters.reference.Reference): converted as it is."""

    function: ServingFunction
    identity: ModelIdentity
    preprocessing: PreprocessSpec
    labels: list[str]
    weights: dict

    def predict(self, inputs: np.ndarray, batch: int | None = None) -> np.ndarray:
        batch = batch or max(1, PREDICT_PIXELS // int(np.prod(inputs.shape[1:3])))
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
    writes = variable_writes(function.concrete)
    if writes:
        raise ConfigError(
            f"{path}: serving_default writes variables when called ({len(writes)} writes, e.g. {writes[0]}): it was "
            "traced in training mode, so its outputs depend on the batch. Keras 3's model.export does this when a "
            "preprocessing layer such as Resizing comes before BatchNormalization; re-export with the model called "
            "as model(x, training=False) (keras.export.ExportArchive, docs/converting.md)")
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
    return SavedModelReference(function, identity, spec, labels or default_labels(classes, log), info)
