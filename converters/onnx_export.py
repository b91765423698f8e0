"""A Graph (converters.reference) as an ONNX ModelProto: tf2onnx over a graph-mode trace, made deterministic.

Keras 3 runs a grouped Conv2D on CPU through an XLA-compiled wrapper that tf2onnx cannot convert (DESIGN.md), so a
Keras graph is traced with converters.rewrite.TRACE_RULES: its grouped layers as a plain `tf.nn.convolution` on the
grouped kernel, which tf2onnx writes as one `Conv` node with `group` set. A SavedModel's serving function comes with
those XLA-compiled functions inlined (converters.saved_model). The batch dimension is dynamic.
"""

from __future__ import annotations

import gc
import itertools
import re

from converters.reference import Graph, as_graph
from edge.capture import captured_native_output, tail
from edge.errors import ConversionError, first_line

DEFAULT_OPSET = 17
INPUT_NAME, OUTPUT_NAME, BATCH = "image", "logits", "batch"


_CREATION = [itertools.count()]  # tf2onnx nodes' creation numbers, from 0 in each export


def _deterministic_tf2onnx_nodes() -> None:
    """Hash tf2onnx's graph nodes by creation number instead of memory address (installed once per process, the
    numbering restarted for each export).

    tf2onnx keeps nodes in sets and lists them back out of those sets (`extract_sub_graph_nodes`), so the
    order its optimizers visit nodes in follows memory addresses. Measured: from one and the same
    TensorFlow graph, about one export in ten under CPU load came out as a different (equivalent) ONNX
    graph, e.g. one SE block's layout transpose folded elsewhere. Creation numbers follow the conversion
    itself, so the order, and the file, are the same in every run. The numbers start again at 0 with each export
    (`to_onnx`): a set lists its members by hash modulo its size, so numbers carried on from an earlier export in
    the same process gave a different order, and a different (equivalent) file.
    """
    from tf2onnx import graph as tf2onnx_graph

    _CREATION[0] = itertools.count()
    node = tf2onnx_graph.Node
    if getattr(node, "_kit_creation_hash", False):
        return
    original_init = node.__init__

    def __init__(self, *args, **kwargs):
        self._kit_creation = next(_CREATION[0])
        original_init(self, *args, **kwargs)

    node.__init__ = __init__
    node.__hash__ = lambda self: self._kit_creation  # equality stays identity; copies keep their number
    node._kit_creation_hash = True


def _collecting_tf2onnx_optimizers() -> None:
    """Free the graph copy each tf2onnx optimizer pass discards before the next pass runs (once per process).

    tf2onnx runs each of its dozen optimizers, over and over until none changes the graph, on a deep copy of the
    graph, and drops the previous copy. Each copy holds every weight as a protobuf tensor, in reference cycles that
    only Python's full collection frees, which ran only every few passes. Measured on EfficientNet-B7 at 600 px
    (float32): tf2onnx's optimize_graph grew the process from 2.6 to 12.2 GB in 79 s; collecting before each pass,
    it stays under 4.6 GB (3.5 GB with `_converted`'s steps), in about 40 s, and the file is byte for byte the same.
    (The collection runs after the next pass's deep copy is made, so two copies can be alive at once.) `to_onnx`
    freezes the objects that exist before the export, so each collection walks only the export's.
    """
    from tf2onnx import optimizer

    if getattr(optimizer.optimize_graph, "_kit_collecting", False):
        return
    original = optimizer.optimize_graph

    def collecting(factory):
        def make():
            gc.collect()
            return factory()
        return make

    def optimize_graph(graph, catch_errors=True, optimizers=None):
        passes = optimizer._get_optimizers() if optimizers is None else optimizers
        held = [graph]
        del graph  # the first pass's result replaces the graph given, which then lives nowhere
        return original(held.pop(), catch_errors, optimizers={name: collecting(f) for name, f in passes.items()})

    optimize_graph._kit_collecting, optimize_graph._kit_original = True, original
    optimizer.optimize_graph = optimize_graph


def to_onnx(graph: Graph, opset: int = DEFAULT_OPSET, output_name: str = OUTPUT_NAME):
    """An ONNX ModelProto of a Graph or Keras model (float32, dynamic batch), checked with onnx.checker (full)."""
    import onnx
    import tensorflow as tf

    _deterministic_tf2onnx_nodes()
    _collecting_tf2onnx_optimizers()
    graph = as_graph(graph)
    height, width, channels = graph.input_shape[1:]
    fn = graph.onnx_function()
    signature = (tf.TensorSpec((None, height, width, channels), tf.float32, name=INPUT_NAME),)
    thaw = gc.get_freeze_count() == 0  # a caller's own frozen objects stay frozen
    gc.freeze()
    try:
        with captured_native_output() as captured:
            try:
                proto = _converted(fn.get_concrete_function(*signature), opset)
            except Exception as exc:
                raise ConversionError(f"tf2onnx failed: {first_line(exc)} [{tail(captured())}]") from None
    finally:
        gc.collect()  # the export's last graph copies and TensorFlow graph
        if thaw:
            gc.unfreeze()
    calls = sorted({n.op_type for n in proto.graph.node if n.op_type in ("StatefulPartitionedCall", "PartitionedCall")})
    if calls:
        raise ConversionError(f"the graph calls TensorFlow functions tf2onnx did not inline ({', '.join(calls)}); "
                              "ONNX Runtime would refuse the file: convert this model to TFLite instead")
    unsupported = sorted({n.op_type for n in proto.graph.node if n.domain not in ("", "ai.onnx")})
    if unsupported:
        raise ConversionError(f"tf2onnx left non-ONNX ops {unsupported}; the file would not run")
    _rename_io(proto, output_name)
    canonical_names(proto)
    proto.graph.doc_string = "converted by regnety-edge-kit with tf2onnx"  # tf2onnx's names the traced function's id
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as exc:
        raise ConversionError(f"the exported graph fails onnx.checker: {first_line(exc)}") from None
    return proto


def _converted(concrete, opset: int):
    """tf2onnx's `convert.from_function`, its steps taken here so that each copy of the weights is gone before the
    next step makes its own.

    tf2onnx freezes the function (`convert_variables_to_constants_v2`) into a ConcreteFunction and reads its GraphDef;
    it keeps that function, and a session graph it imports the GraphDef into, alive through grappler, and the
    GraphDef and the TensorFlow graph through the whole ONNX conversion and optimization. Here the frozen function
    goes as soon as its GraphDef is read, grappler runs without a session graph, and each stage's input is dropped
    once the next stage has it. Measured on EfficientNet-B7 at 600 px (267 MB of float32 weights; the model holds
    0.9 GB): tf2onnx's own path peaked at 5.8 GB in grappler and 4.6 GB in the ONNX optimizers, 79 s; these steps
    peak at 4.7 GB (grappler's own working set, which no earlier trim lowers) and 3.5 GB, 63 s. The file is byte
    for byte the one tf2onnx's `from_function` writes (tests/converters/test_convert.py).
    """
    import tensorflow as tf
    from tensorflow.python.framework import convert_to_constants
    from tf2onnx import optimizer, tf_loader
    from tf2onnx.convert import tensor_names_from_structed
    from tf2onnx.tfonnx import process_tf_graph

    inputs = [t.name for t in concrete.inputs if t.dtype != tf.resource]
    outputs = [t.name for t in concrete.outputs if t.dtype != tf.resource]
    renames = tensor_names_from_structed(concrete, inputs, outputs)
    with tf.device("/cpu:0"):
        try:
            frozen = convert_to_constants.convert_variables_to_constants_v2(concrete, lower_control_flow=False,
                                                                            aggressive_inlining=True)
        except ValueError as exc:  # tf2onnx's own way round a TensorFlow freezing bug
            if "incompatible with expected resource" not in str(exc):
                raise
            graph_def = tf_loader.fix_freezing_errors(tf_loader.convert_variables_to_constants_large_model(concrete))
        else:
            graph_def = frozen.graph.as_graph_def(add_shapes=True)
            del frozen
            gc.collect()  # the frozen function's graph, before grappler makes its copies
        with tf.Graph().as_default():  # grappler's meta graph is made in graph mode
            graph_def = tf_loader.tf_optimize(inputs, outputs, tf_loader.fix_freezing_errors_part2(graph_def))
        with tf.Graph().as_default() as tf_graph:
            tf.import_graph_def(graph_def, name="")
            del graph_def
            converted = [process_tf_graph(tf_graph, continue_on_error=True, opset=opset, input_names=inputs,
                                          output_names=outputs, tensors_to_rename=renames)]
        del tf_graph
        onnx_graph = optimizer.optimize_graph(converted.pop(), _catch_errors())  # held by the optimizer alone
        return onnx_graph.make_model(f"converted from {concrete.name}")


def _catch_errors() -> bool:
    """Whether tf2onnx's optimizers run on copies and skip a pass that fails: TF2ONNX_CATCH_ERRORS, default on. (tf2onnx
    1.17's own `_convert_common` compares the variable's name, not its value, with "TRUE", so any value at all turns
    it off there; here TF2ONNX_CATCH_ERRORS=true keeps it on. Unset, both are on.)"""
    import os

    from tf2onnx import constants

    value = os.environ.get(constants.ENV_TF2ONNX_CATCH_ERRORS)
    return True if value is None else value.upper() == "TRUE"


def _rename_io(proto, output_name: str) -> None:
    """Name the output (`logits`, or `features` for --head none) and the batch dimension `batch` (tf2onnx
    writes Identity:0 and unk__N)."""
    old = proto.graph.output[0].name
    for node in proto.graph.node:
        node.output[:] = [output_name if o == old else o for o in node.output]
    proto.graph.output[0].name = output_name
    for value in (*proto.graph.input, *proto.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = BATCH


_UNIQUE_SUFFIX = re.compile(r"__\d+")


def canonical_names(proto) -> None:
    """Renumber tf2onnx's unique-name suffixes (`__613`) in order of appearance, in place.

    tf2onnx draws them from counters whose order follows Python's per-process string hashing, so the
    same model would otherwise give different bytes in each run.
    """
    graph = proto.graph
    mapping: dict[str, str] = {}

    def canon(name: str) -> str:
        if name and _UNIQUE_SUFFIX.search(name) and name not in mapping:
            mapping[name] = _UNIQUE_SUFFIX.sub(f"__{len(mapping)}", name)
        return mapping.get(name, name)

    for node in graph.node:
        node.input[:] = [canon(n) for n in node.input]
        node.output[:] = [canon(n) for n in node.output]
        node.name = canon(node.name)
    for collection in (graph.initializer, graph.value_info):
        for item in collection:
            item.name = canon(item.name)
    first_use = {}
    for i, node in enumerate(graph.node):
        for name in node.input:
            first_use.setdefault(name, i)
    ordered = sorted(graph.initializer, key=lambda t: (first_use.get(t.name, len(graph.node)), t.name))
    copies = [type(t)() for t in ordered]
    for copy, t in zip(copies, ordered):
        copy.CopyFrom(t)
    del graph.initializer[:]
    graph.initializer.extend(copies)


def grouped_conv_nodes(proto) -> int:
    return sum(1 for n in proto.graph.node if n.op_type == "Conv"
               and any(a.name == "group" and a.i > 1 for a in n.attribute))
