"""`python -m converters.onnx --variant 200mf [--int8]`: a RegNetY as a validated ONNX file.

Route: tf2onnx over a graph-mode trace of the Keras model. Keras 3 runs a grouped Conv2D on CPU
through an XLA-compiled wrapper that tf2onnx cannot convert (DESIGN.md), so for the native lowering
the grouped layers are traced as a plain `tf.nn.convolution` on the grouped kernel, which tf2onnx
writes as one `Conv` node with `group` set. --int8 adds ONNX Runtime static quantization (QDQ,
per-channel int8 weights and activations) calibrated on the same representative images as TFLite.
The batch dimension is dynamic.
"""

from __future__ import annotations

import argparse
import itertools
import platform
import re
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from calibration.representative import Prepared, calibration_set, validation_set
from converters import cli
from edge.capture import captured_native_output, tail
from converters.metadata import embed_onnx
from converters.pipeline import Evaluation, Plan, Result, evaluate, finish, finite
from converters.source import Source
from converters.targets import choose_lowering, get_target
from edge.atomic import ensure_writable
from edge.errors import ConfigError, KitError, run_cli
from edge.runtime import RuntimeOptions

DEFAULT_OPSET = 17
INPUT_NAME, OUTPUT_NAME, BATCH = "image", "logits", "batch"


class ConversionError(KitError):
    """tf2onnx or the quantizer failed, or wrote a graph that does not check."""


def _traceable(model):
    """The same model, traceable for tf2onnx: grouped convs as plain tf.nn.convolution (graph mode only),
    normalization constants as graph constants (Keras holds them as captured tensors, which tf2onnx
    would turn into extra graph inputs), and exact GELU written with erf instead of erfc."""
    import keras
    import tensorflow as tf

    class GraphGroupedConv2D(keras.layers.Conv2D):
        def convolution_op(self, inputs, kernel):
            return tf.nn.convolution(inputs, kernel, self.strides, self.padding.upper(), dilations=self.dilation_rate)

    class ConstantNormalization(keras.layers.Layer):
        def __init__(self, mean, variance, **kwargs):
            super().__init__(**kwargs)
            self.mean = np.asarray(mean, np.float32).reshape(-1)
            self.scale = (1.0 / np.maximum(np.sqrt(np.asarray(variance, np.float32).reshape(-1)), 1e-7)).astype(np.float32)

        def call(self, x):
            return (x - tf.constant(self.mean)) * tf.constant(self.scale)

    class ErfGelu(keras.layers.Layer):
        """Exact GELU through erf: TensorFlow writes it with erfc, which ONNX has no op for (ConvNeXt)."""

        def call(self, x):
            return 0.5 * x * (1.0 + tf.math.erf(x * 0.7071067811865476))

    def clone(layer):
        if isinstance(layer, keras.layers.Activation) and layer.get_config().get("activation") == "gelu":
            return ErfGelu(name=layer.name)
        if isinstance(layer, keras.layers.Normalization):
            return ConstantNormalization(np.asarray(layer.mean), np.asarray(layer.variance), name=layer.name)
        cls = GraphGroupedConv2D if isinstance(layer, keras.layers.Conv2D) and layer.groups > 1 else layer.__class__
        return cls.from_config(layer.get_config())

    traced = keras.models.clone_model(model, clone_function=clone)
    for layer in traced.layers:  # by name: a replaced Normalization keeps its statistics as constants, not weights
        if layer.weights:
            layer.set_weights(model.get_layer(layer.name).get_weights())
    return traced


def _deterministic_tf2onnx_nodes() -> None:
    """Hash tf2onnx's graph nodes by creation number instead of memory address (once per process).

    tf2onnx keeps nodes in sets and lists them back out of those sets (`extract_sub_graph_nodes`), so the
    order its optimizers visit nodes in follows memory addresses. Measured: from one and the same
    TensorFlow graph, about one export in ten under CPU load came out as a different (equivalent) ONNX
    graph, e.g. one SE block's layout transpose folded elsewhere. Creation numbers follow the conversion
    itself, so the order, and the file, are the same in every run.
    """
    from tf2onnx import graph as tf2onnx_graph

    node = tf2onnx_graph.Node
    if getattr(node, "_kit_creation_hash", False):
        return
    counter = itertools.count()
    original_init = node.__init__

    def __init__(self, *args, **kwargs):
        self._kit_creation = next(counter)
        original_init(self, *args, **kwargs)

    node.__init__ = __init__
    node.__hash__ = lambda self: self._kit_creation  # equality stays identity; copies keep their number
    node._kit_creation_hash = True


def to_onnx(model, opset: int = DEFAULT_OPSET, output_name: str = OUTPUT_NAME):
    """An ONNX ModelProto of a Keras model (float32, dynamic batch), checked with onnx.checker (full)."""
    import onnx
    import tensorflow as tf
    import tf2onnx

    _deterministic_tf2onnx_nodes()
    if hasattr(model, "function"):  # a SavedModel's serving function, already a fixed-size tf.function
        height, width, channels = model.input_shape[1:]
        fn = model.function
    else:
        traced = _traceable(model)
        height, width, channels = traced.input_shape[1:]
        fn = tf.function(lambda x: traced(x, training=False))
    signature = (tf.TensorSpec((None, height, width, channels), tf.float32, name=INPUT_NAME),)
    with captured_native_output() as captured:
        try:
            proto, _ = tf2onnx.convert.from_function(fn, input_signature=signature, opset=opset)
        except Exception as exc:
            raise ConversionError(f"tf2onnx failed: {str(exc).splitlines()[0][:300]} [{tail(captured())}]") from None
    calls = sorted({n.op_type for n in proto.graph.node if n.op_type in ("StatefulPartitionedCall", "PartitionedCall")})
    if calls:
        raise ConversionError(f"the graph calls TensorFlow functions tf2onnx cannot inline ({', '.join(calls)}); a "
                              "SavedModel written by Keras 3 compiles its grouped convolutions as such functions: "
                              "convert it to TFLite, or convert the kit's own Keras model to ONNX")
    unsupported = sorted({n.op_type for n in proto.graph.node if n.domain not in ("", "ai.onnx")})
    if unsupported:
        raise ConversionError(f"tf2onnx left non-ONNX ops {unsupported}; the file would not run")
    _rename_io(proto, output_name)
    canonical_names(proto)
    proto.graph.doc_string = "converted by regnety-edge-kit with tf2onnx"  # tf2onnx's names the traced function's id
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as exc:
        raise ConversionError(f"the exported graph fails onnx.checker: {str(exc).splitlines()[0][:300]}") from None
    return proto


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


ACTIVATIONS = ("int8", "uint8")


# Images whose every activation ONNX Runtime's calibrator holds before folding them into running min/max ranges
# (its CalibStridedMinMax; a window that divides the image count). Unbounded, it keeps all of them: EfficientNet-B7
# at 600x600 holds gigabytes per image. Min/max ranges fold exactly, so the quantized model does not depend on it
# (tests/converters/test_convert.py). Its CalibMaxIntermediateOutputs would drop every full window instead of folding
# it (ONNX Runtime 1.31.1: "No data is collected").
CALIBRATION_WINDOW = 4


def quantize_int8(proto, calibration: Prepared, activations: str = "int8", window: int | None = CALIBRATION_WINDOW,
                  reduce_range: bool = False):
    """ONNX Runtime static quantization: QDQ, per-channel int8 weights, int8 (S8S8) or uint8 (U8S8) activations.

    Measured on the reference (benchmarks/README.md): int8 activations give 32.6 dB SQNR and 100% top-1
    agreement at 6.6 ms; uint8 ones 21.8 dB and 99.43% at 4.4 ms (AVX2 machine, 2 threads). `window`: at most
    this many images calibrated between foldings of the ranges (None: all at once). `reduce_range`: 7-bit
    weights, so that x86 int8 kernels without VNNI cannot saturate (see `kernel_check`)."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    count = len(calibration.inputs)
    stride = max(d for d in range(1, min(window, count) + 1) if count % d == 0) if window else None

    class Reader(CalibrationDataReader):
        def __init__(self, progress) -> None:
            from tqdm import tqdm

            self.bar = tqdm(total=count, desc="calibrating", unit="img", leave=False, disable=None, file=progress)
            self.set_range(0, count)

        def __len__(self) -> int:
            return count

        def set_range(self, start_index: int, end_index: int) -> None:
            self.items = iter(range(start_index, end_index))

        def get_next(self):
            i = next(self.items, None)
            if i is None:
                return None
            self.bar.update(1)
            return {INPUT_NAME: calibration.inputs[i][None]}

    with tempfile.TemporaryDirectory() as tmp, captured_native_output() as captured:
        src, pre, dst = (Path(tmp) / n for n in ("float.onnx", "pre.onnx", "int8.onnx"))
        onnx.save(proto, src)
        reader = Reader(captured.console)
        try:
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
            quantize_static(str(pre), str(dst), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QInt8 if activations == "int8" else QuantType.QUInt8,
                            weight_type=QuantType.QInt8, reduce_range=reduce_range,
                            extra_options={"CalibStridedMinMax": stride} if stride else {})
        except Exception as exc:
            raise ConversionError(f"ONNX Runtime quantization failed: {str(exc).splitlines()[0][:300]} "
                                  f"[{tail(captured())}]") from None
        finally:
            reader.bar.close()
        return onnx.load(dst)


def convert(source: Source, plan: Plan, validation: Prepared, opset: int = DEFAULT_OPSET, activations: str = "int8",
            reduce_range: bool = False, log=cli.log) -> Result:
    import onnx

    model = source.lowered(plan.lowering)
    reference = source.logits(validation.inputs)
    log(f"converting {source.spec.name} to ONNX {plan.precision} (opset {opset}, grouped convs: {plan.lowering})")
    proto = to_onnx(model, opset, source.output_kind)
    grouped = grouped_conv_nodes(proto)
    if plan.lowering == "native" and grouped == 0 and any(s.groups > 1 for s in source.spec.stages):
        raise ConversionError("the exported graph has no grouped Conv node; the grouped convs were not traced natively")
    evaluation = None
    if plan.precision == "int8":
        proto = quantize_int8(proto, plan.calibration, activations, reduce_range=reduce_range)
        plan.extra.update(activations=activations, reduce_range=reduce_range)
        evaluation, plan.extra["int8_kernels"] = kernel_check(plan, source, validation, reference,
                                                              proto.SerializeToString(), log)
    plan.extra.update(format="onnx", opset=opset, grouped_conv_nodes=grouped,
                      ops=sorted({n.op_type for n in proto.graph.node}))

    def embed(data: bytes, record: dict) -> bytes:
        loaded = onnx.load_from_string(data)
        embed_onnx(loaded, record)
        return loaded.SerializeToString()

    return finish(plan, source, validation, reference, proto.SerializeToString(), embed, log=log, evaluation=evaluation)


# A fused-kernel loss above this, against the same QDQ graph run as written, is the kernels' doing.
KERNEL_LOSS_DB = 3.0


def kernel_check(plan: Plan, source: Source, validation: Prepared, reference: np.ndarray, data: bytes,
                 log=cli.log) -> tuple[Evaluation, dict]:
    """Validate a QDQ int8 graph twice: through ONNX Runtime's fused int8 kernels (what users run), and as
    written (quantize, dequantize, float op: the quantization's own error). On x86 CPUs without VNNI (AVX2,
    AVX-512) the int8 conv kernels multiply-add pairs of 8-bit products into 16 bits, which can saturate:
    EfficientNet-B7 at 600 px lost 21.9 dB that way here (benchmarks/README.md). Warns when the fused kernels lose more
    than KERNEL_LOSS_DB. Returns the fused evaluation (the artifact's drift) and the record for its metadata."""
    fused = evaluate(plan, source, validation, reference, data)
    written = evaluate(plan, source, validation, reference, data, RuntimeOptions(threads=2, fused=False),
                       " (unfused QDQ)")
    loss = float(written.drift.sqnr_db - fused.drift.sqnr_db)
    record = {"sqnr_db_fused": finite(fused.drift.sqnr_db), "sqnr_db_unfused": finite(written.drift.sqnr_db),
              "fused_loss_db": finite(round(loss, 2)), "saturation_suspected": loss > KERNEL_LOSS_DB, "cpu": cpu()}
    if record["saturation_suspected"]:
        advice = ("the kit already used 7-bit weights (--reduce-range)" if plan.extra.get("reduce_range") else
                  "re-convert with --reduce-range (7-bit weights) for such CPUs")
        log(f"WARNING: ONNX Runtime's fused int8 kernels on this CPU lose {loss:.1f} dB against the quantized graph "
            f"run as written ({record['sqnr_db_fused']:.1f} vs {record['sqnr_db_unfused']:.1f} dB SQNR): int8 conv "
            f"kernels can saturate on x86 CPUs without VNNI; {advice}")
    return fused, record


def cpu() -> str:
    """The machine and, on x86 Linux, whether it has VNNI (what decides whether int8 conv kernels can saturate)."""
    machine = platform.machine()
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return machine
    if "avx2" not in flags:
        return machine
    vnni = "avx512_vnni" in flags or "avx_vnni" in flags
    return f"{machine}, {'AVX-512' if 'avx512f' in flags else 'AVX2'}, {'with' if vnni else 'no'} VNNI"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m converters.onnx",
        description="Convert a RegNetY to ONNX (float32, or --int8 QDQ), run it in ONNX Runtime against the Keras "
                    "reference, and write it only when its drift is within budget. Writes FILE, FILE.json, FILE.md.")
    cli.add_model_arguments(parser)
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    parser.add_argument("--int8", action="store_true", help="static int8 quantization (QDQ, per-channel) "
                        "calibrated on representative images")
    parser.add_argument("--reduce-range", action="store_true",
                        help="with --int8: 7-bit weights, for x86 CPUs without VNNI (AVX2, AVX-512), whose int8 conv "
                             "kernels can saturate; the converter warns when they do (EfficientNet-B7 at 224 px: "
                             "10.3 dB fused vs 26.8 unfused; 21.9 with this flag)")
    parser.add_argument("--activations", choices=ACTIVATIONS, default="int8",
                        help="with --int8: activation type. int8 (default) is the more accurate (32.6 vs 21.8 dB SQNR "
                             "on the reference); uint8 was 1.5x faster on an AVX2 CPU without VNNI")
    cli.add_artifact_arguments(parser, "onnx")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not 13 <= args.opset <= 21:
        raise ConfigError(f"--opset must be between 13 and 21 (tf2onnx and ONNX Runtime both support those), got {args.opset}")
    if args.activations != "int8" and not args.int8:
        raise ConfigError("--activations needs --int8")
    if args.reduce_range and not args.int8:
        raise ConfigError("--reduce-range needs --int8")
    target = get_target(args.target, "onnx")
    lowering = choose_lowering(target, args.grouped_conv)
    cli.check_lowering(args, lowering)
    precision = "int8" if args.int8 else "float32"
    source = cli.source_from(args)
    spec = source.spec.preprocessing
    out = args.out or cli.default_out(source.spec.name, precision, lowering, "onnx")
    if out.suffix != ".onnx":
        raise ConfigError(f"--out must end in .onnx, got {out}")
    ensure_writable(out)
    calibration = calibration_set(spec, args.calib, args.calib_size, args.seed) if args.int8 else None
    validation = validation_set(spec, args.data, args.val_size)
    if args.data:  # the bundled crops are labelled for the reference checkpoint only
        validation.check_labels(source.labels)
    budget = cli.budget_from(args, precision, features=source.output_kind == "features")
    plan = Plan(Path(out), precision, target, lowering, budget, args.allow_drift, calibration)
    result = convert(source, plan, validation, args.opset, args.activations, args.reduce_range)
    print(cli.summary(result))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
