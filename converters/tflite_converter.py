"""TensorFlow's TFLiteConverter, configured the kit's way: builtin ops only, one precision, native logs captured.

`make_converter` configures a converter for a Graph (converters.reference) and a precision; `to_tflite` runs it;
`check_ops` refuses what the target cannot run. The TFLite exporter (converters.tflite) and selective int8
(converters.selective) both build on these.
"""

from __future__ import annotations

import sys

from calibration.representative import Prepared
from converters.reference import Graph, as_graph
from converters.targets import Target
from converters.tflite_model import packed, unpacked
from edge.capture import captured_native_output, tail
from edge.errors import ConfigError, ConversionError, KitError, first_line
from edge.tflite_file import CONV_2D, CUSTOM, builtin_op_name, operator_codes

PRECISIONS = ("float32", "float16", "dynamic", "int8")
IO_TYPES = ("float32", "uint8", "int8")


def make_converter(graph: Graph, precision: str, calibration: Prepared | None = None, io: str = "float32",
                   progress=None):
    """A configured tf.lite.TFLiteConverter for a Graph or Keras model (builtin ops only).

    progress: a stream for the calibration progress bar (default stderr)."""
    import tensorflow as tf

    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    if io != "float32" and precision != "int8":
        raise ConfigError(f"--io {io} needs --int8 (only a fully integer model has integer I/O)")
    converter = as_graph(graph).tflite_converter()
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if precision != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if precision == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif precision == "int8":
        if calibration is None:
            raise ConfigError("full int8 needs representative images (calibration)")
        inputs = calibration.inputs

        def representative():
            from tqdm import tqdm

            for x in tqdm(inputs, desc="calibrating", unit="img", leave=False, disable=None,
                          file=progress or sys.stderr):
                yield [x[None]]

        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        dtype = {"float32": tf.float32, "uint8": tf.uint8, "int8": tf.int8}[io]
        converter.inference_input_type = dtype
        converter.inference_output_type = dtype
    return converter


def to_tflite(graph: Graph, precision: str, calibration: Prepared | None = None, io: str = "float32",
              mse: bool = False) -> bytes:
    """Convert a Graph (or Keras model) to TFLite bytes (builtin ops only). mse (full int8): activation ranges
    with the least quantization error instead of the converter's min/max (converters.tflite_ranges)."""
    if mse and precision == "int8":
        from converters.tflite_ranges import quantize

        def convert(console):
            return quantize(make_converter(graph, precision, calibration, io, console), calibration.inputs,
                            progress=console)
    else:
        def convert(console):
            return make_converter(graph, precision, calibration, io, console).convert()
    data = run_converter(convert)
    return with_signature(data, graph)


def with_signature(data: bytes, graph: Graph) -> bytes:
    """The model with a `serving_default` signature (input: the model's input name, output: "output_0"), as
    TFLiteConverter.from_keras_model writes it, when the conversion route wrote none (a frozen concrete function).
    Runtimes that call models by signature (LiteRT's signature runners) find what they did before."""
    from tensorflow.lite.python import schema_py_generated as schema

    graph = as_graph(graph)
    model = unpacked(data)
    if model.signatureDefs or not hasattr(graph, "input_name") or len(model.subgraphs[0].inputs) != 1:
        return data
    subgraph = model.subgraphs[0]
    signature = schema.SignatureDefT()
    signature.signatureKey, signature.subgraphIndex = "serving_default", 0
    signature.inputs = [_tensor_map(schema, graph.input_name, subgraph.inputs[0])]
    signature.outputs = [_tensor_map(schema, "output_0", subgraph.outputs[0])]
    model.signatureDefs = [signature]
    return packed(model, len(data))


def _tensor_map(schema, name: str, index) -> object:
    entry = schema.TensorMapT()
    entry.name, entry.tensorIndex = name, int(index)
    return entry


def run_converter(work):
    """Run work(console) with native output captured; the log becomes part of the error when it fails.
    `console` is the terminal's stderr, for progress bars."""
    with captured_native_output() as captured:
        try:
            return bytes(work(captured.console))
        except KitError:
            raise
        except Exception as exc:  # the converter raises ConverterError and friends with native logs
            raise ConversionError(f"the TFLite converter failed: {first_line(exc)} [{tail(captured())}]") from None


def check_ops(data: bytes, target: Target) -> list[str]:
    """The file's ops as NAME:vN; ConversionError for Flex/custom ops, and for grouped CONV_2D (op version 6+)
    on targets that cannot run it."""
    codes = operator_codes(data)
    custom = [c for code, c, _ in codes if code == CUSTOM]
    if custom:
        raise ConversionError(f"the file needs non-builtin ops {custom}; the kit ships builtin-only files")
    grouped = [v for code, _, v in codes if code == CONV_2D and v >= 6]
    if grouped and target.forbids_grouped_conv:
        raise ConversionError(f"the file has CONV_2D op version {max(grouped)} (grouped) but target {target.name} "
                              "cannot run it; use --grouped-conv split or dense")
    return sorted(f"{builtin_op_name(code)}:v{v}" for code, _, v in codes)
