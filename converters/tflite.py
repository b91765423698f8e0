"""`python -m converters.tflite --variant 200mf --int8`: a RegNetY as a validated LiteRT/TFLite file.

Precisions: float32 (default), --fp16 (float16 weights), --dynamic (int8 weights, float activations),
--int8 (full integer, calibrated on representative images; I/O float32, uint8 or int8). The file
holds builtin ops only; grouped convs are written the way the --target runs them. The artifact is
run and compared with the Keras reference before it is written (see converters.pipeline).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from calibration.representative import Prepared, calibration_set, validation_set
from converters import cli
from converters.capture import captured_native_output, tail
from converters.metadata import embed_tflite
from converters.pipeline import Plan, Result, finish
from converters.rewrite import lower_grouped_convs
from converters.source import Source, load_source
from converters.targets import Target, choose_lowering, get_target
from edge.atomic import ensure_writable
from edge.errors import ConfigError, KitError, run_cli
from edge.tflite_file import CONV_2D, CUSTOM, operator_codes

PRECISIONS = ("float32", "float16", "dynamic", "int8")
IO_TYPES = ("float32", "uint8", "int8")


class ConversionError(KitError):
    """The converter failed or produced a file the target cannot run."""


def to_tflite(model, precision: str, calibration: Prepared | None = None, io: str = "float32") -> bytes:
    """Convert a Keras model to TFLite bytes (builtin ops only)."""
    import tensorflow as tf

    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    if io != "float32" and precision != "int8":
        raise ConfigError(f"--io {io} needs --int8 (only a fully integer model has integer I/O)")
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
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
            for x in inputs:
                yield [x[None]]

        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        dtype = {"float32": tf.float32, "uint8": tf.uint8, "int8": tf.int8}[io]
        converter.inference_input_type = dtype
        converter.inference_output_type = dtype
    with captured_native_output() as captured:
        try:
            return bytes(converter.convert())
        except Exception as exc:  # the converter raises ConverterError and friends with native logs
            message = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
            raise ConversionError(f"the TFLite converter failed: {message} [{tail(captured())}]") from None


def check_ops(data: bytes, target: Target) -> dict:
    """Refuse Flex/custom ops, and grouped CONV_2D (op version 6+) on targets that cannot run it."""
    from tensorflow.lite.python import schema_py_generated as schema

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    codes = operator_codes(data)
    custom = [c for code, c, _ in codes if code == CUSTOM]
    if custom:
        raise ConversionError(f"the file needs non-builtin ops {custom}; the kit ships builtin-only files")
    grouped = [v for code, _, v in codes if code == CONV_2D and v >= 6]
    if grouped and target.forbids_grouped_conv:
        raise ConversionError(f"the file has CONV_2D op version {max(grouped)} (grouped) but target {target.name} "
                              "cannot run it; use --grouped-conv split or dense")
    return {"ops": sorted(f"{names.get(code, code)}:v{v}" for code, _, v in codes)}


def convert(source: Source, plan: Plan, validation: Prepared, io: str = "float32", log=cli.log) -> Result:
    """Lower, convert, check and validate one TFLite artifact (see `finish`)."""
    model = lower_grouped_convs(source.model, plan.lowering)
    reference = source.logits(validation.inputs)
    log(f"converting {source.spec.name} to TFLite {plan.precision} (grouped convs: {plan.lowering}, "
        f"target {plan.target.name})")
    data = to_tflite(model, plan.precision, plan.calibration, io)
    plan.extra.update(format="tflite", **check_ops(data, plan.target))
    return finish(plan, source, validation, reference, data, embed_tflite, log=log)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m converters.tflite",
        description="Convert a RegNetY to a LiteRT/TFLite file, run it against the Keras reference on validation "
                    "images, and write it only when its drift is within budget. Writes FILE, FILE.json and FILE.md.")
    cli.add_model_arguments(parser)
    precision = parser.add_argument_group("precision (default float32)").add_mutually_exclusive_group()
    precision.add_argument("--fp16", action="store_const", dest="precision", const="float16", help="float16 weights")
    precision.add_argument("--dynamic", action="store_const", dest="precision", const="dynamic",
                           help="dynamic-range: int8 weights, float activations")
    precision.add_argument("--int8", action="store_const", dest="precision", const="int8",
                           help="full integer, calibrated on representative images (per-channel weights)")
    parser.set_defaults(precision="float32")
    parser.add_argument("--io", default="float32", choices=IO_TYPES,
                        help="input/output type of a full-int8 file (default float32: the file quantizes inside)")
    cli.add_artifact_arguments(parser, "tflite")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    target = get_target(args.target, "tflite")
    lowering = choose_lowering(target, args.grouped_conv)
    if args.io != "float32" and args.precision != "int8":
        raise ConfigError(f"--io {args.io} needs --int8 (only a fully integer model has integer I/O)")
    source = load_source(args.variant, args.flavour, args.weights, num_classes=args.classes, labels_path=args.labels,
                         input_size=args.input_size, normalize_in_model=args.normalize_in_model or None, log=cli.log)
    spec = source.spec.preprocessing
    suffix = "" if args.io == "float32" else f"_io{args.io}"
    out = args.out or cli.default_out(source.spec.name, args.precision, lowering, "tflite", suffix)
    if out.suffix != ".tflite":
        raise ConfigError(f"--out must end in .tflite, got {out}")
    ensure_writable(out)
    calibration = calibration_set(spec, args.calib, args.calib_size, args.seed) if args.precision == "int8" else None
    validation = validation_set(spec, args.data)
    if validation.label_indices(source.labels) is None and validation.labels and all(validation.labels):
        cli.log(f"note: the validation folder's class names are not the model's labels; accuracy is not measured")
    plan = Plan(Path(out), args.precision, target, lowering, cli.budget_from(args, args.precision), args.allow_drift,
                calibration, extra={"io_type": args.io})
    result = convert(source, plan, validation, args.io)
    d = result.drift
    print(f"wrote {result.path} ({result.size_bytes / 1e6:.2f} MB): top-1 agreement {d.top1_agreement:.2%} on "
          f"{d.images} images, max-abs logit error {d.max_abs_error:.3g}, SQNR {d.sqnr_db:.1f} dB"
          + (f", accuracy {d.reference_accuracy:.2%} -> {d.artifact_accuracy:.2%}" if d.reference_accuracy is not None
             else "") + f"; report {result.path}.md")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
