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

import numpy as np

from calibration.representative import Prepared, calibration_set, validation_set
from converters import cli
from edge.capture import captured_native_output, tail
from converters.metadata import embed_tflite
from converters.pipeline import Plan, Result, evaluate, finish
from converters.rewrite import large_depthwise_convs, split_depthwise_taps
from converters.source import Source
from converters.targets import Target, choose_lowering, get_target
from edge.atomic import ensure_writable
from edge.errors import ConfigError, KitError, run_cli
from edge.tflite_file import CONV_2D, CUSTOM, operator_codes

PRECISIONS = ("float32", "float16", "dynamic", "int8")
IO_TYPES = ("float32", "uint8", "int8")


class ConversionError(KitError):
    """The converter failed or produced a file the target cannot run."""


def make_converter(model, precision: str, calibration: Prepared | None = None, io: str = "float32", progress=None):
    """A configured tf.lite.TFLiteConverter for a Keras model (builtin ops only).

    progress: a stream for the calibration progress bar (default stderr)."""
    import tensorflow as tf

    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    if io != "float32" and precision != "int8":
        raise ConfigError(f"--io {io} needs --int8 (only a fully integer model has integer I/O)")
    if hasattr(model, "tflite_converter"):  # a SavedModel's serving function
        converter = model.tflite_converter()
    else:
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


def to_tflite(model, precision: str, calibration: Prepared | None = None, io: str = "float32") -> bytes:
    """Convert a Keras model to TFLite bytes (builtin ops only)."""
    return run_converter(lambda console: make_converter(model, precision, calibration, io, console).convert())


def run_converter(work):
    """Run work(console) with native output captured; the log becomes part of the error when it fails.
    `console` is the terminal's stderr, for progress bars."""
    with captured_native_output() as captured:
        try:
            return bytes(work(captured.console))
        except KitError:
            raise
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


DEBUG_IMAGES = 16  # validation images the quantization debugger compares float and int8 on


def convert(source: Source, plan: Plan, validation: Prepared, io: str = "float32", keep_float: list[str] | None = None,
            log=cli.log) -> Result:
    """Lower, convert, check and validate one TFLite artifact (see `finish`).

    keep_float (full int8 only): layer names to leave in float, or ["auto"]: the fewest of the worst
    layers (1, 2, 4, ...) that bring the drift within budget.
    """
    model, taps = source.lowered(plan.lowering), plan.target.max_depthwise_taps
    banded = large_depthwise_convs(model, taps) if taps and hasattr(model, "layers") else []
    if banded:
        model = split_depthwise_taps(model, taps)
        plan.extra["depthwise_bands"] = {"max_taps": taps, "layers": banded}
        log(f"{len(banded)} depthwise convs of more than {taps} taps split in bands of kernel rows (XNNPACK runs "
            f"larger kernels on a slow path; --target portable keeps them whole)")
    reference = source.logits(validation.inputs)
    log(f"converting {source.spec.name} to TFLite {plan.precision} (grouped convs: {plan.lowering}, "
        f"target {plan.target.name})")
    data = to_tflite(model, plan.precision, plan.calibration, io)
    plan.extra.update(format="tflite", **check_ops(data, plan.target))
    evaluation = evaluate(plan, source, validation, reference, data)
    if plan.precision == "int8" and (keep_float or (evaluation.violations and not plan.allow_drift)):
        data, evaluation = _keep_float(model, source, plan, validation, reference, data, evaluation, keep_float or [], log)
    return finish(plan, source, validation, reference, data, embed_tflite, log=log, evaluation=evaluation)


def _keep_float(model, source, plan, validation, reference, full: bytes, full_eval, keep: list[str], log):
    """Selective int8 (or, with nothing to keep, a DriftError that names the worst layers)."""
    from converters.selective import growth, layer_errors, matching, selective_int8

    if io_of(plan) != "float32":
        raise ConfigError("--keep-float needs --io float32 (float layers inside an integer-I/O file are not supported)")
    log("measuring per-layer quantization error (LiteRT quantization debugger)")
    errors = layer_errors(model, plan.calibration, validation.inputs[:DEBUG_IMAGES])
    worst = ", ".join(f"{e.layer} ({e.error_steps:.1f} steps)" for e in errors[:5])
    if not keep:  # plain --int8 over budget: say which layers, then let finish() refuse
        log(f"worst layers by quantization error (RMSE in quantization steps; rounding alone gives 0.29): {worst}")
        plan.extra["worst_layers"] = [e.__dict__ | {"layer": e.layer} for e in errors[:10]]
        return full, full_eval
    if keep == ["auto"]:
        if not full_eval.violations:
            log("full int8 is within budget already; no layer kept in float")
            chosen, data, evaluation = [], full, full_eval
        else:
            for k in growth(len(errors)):
                chosen = errors[:k]
                data = selective_int8(model, plan.calibration, chosen)
                evaluation = evaluate(plan, source, validation, reference, data)
                log(f"  {k} worst layers in float: top-1 agreement {evaluation.drift.top1_agreement:.2%}, "
                    f"SQNR {evaluation.drift.sqnr_db:.1f} dB{'' if evaluation.violations else ' (within budget)'}")
                if not evaluation.violations:
                    break
    else:
        chosen = matching(errors, keep)
        data = selective_int8(model, plan.calibration, chosen)
        evaluation = evaluate(plan, source, validation, reference, data)
    full_ms, kept_ms = (_p50_ms(plan, d, validation) for d in (full, data))
    plan.extra["keep_float"] = {
        "requested": keep, "layers": sorted(dict.fromkeys(e.layer for e in chosen)), "tensors": len(chosen),
        "worst_layers": [e.__dict__ | {"layer": e.layer} for e in errors[:10]],
        "full_int8_drift": {"top1_agreement": full_eval.drift.top1_agreement, "sqnr_db": full_eval.drift.sqnr_db,
                            "violations": full_eval.violations},
        "size_bytes": len(data), "size_bytes_full_int8": len(full), "p50_ms": kept_ms, "p50_ms_full_int8": full_ms,
    }
    log(f"kept in float: {len(chosen)} tensors ({', '.join(plan.extra['keep_float']['layers'][:8]) or 'none'}); "
        f"size {len(full) / 1e6:.2f} -> {len(data) / 1e6:.2f} MB, p50 {full_ms:.2f} -> {kept_ms:.2f} ms (XNNPACK, 2 threads)")
    return data, evaluation


def io_of(plan: Plan) -> str:
    return plan.extra.get("io_type", "float32")


def _p50_ms(plan: Plan, data: bytes, validation: Prepared, runs: int = 30) -> float:
    """Median batch-1 latency of candidate bytes (a rough cost figure; benchmarks live in edge.benchmark)."""
    from edge.atomic import atomic_write
    from edge.runtime import RuntimeOptions, load
    from edge.timing import latencies_ms

    tmp = atomic_write(plan.out.with_name(f".{plan.out.stem}.timing.tflite"), data)
    try:
        runner = load(tmp, RuntimeOptions(threads=2))
        return float(np.median(latencies_ms(runner, validation.inputs[:1], runs=runs)))
    finally:
        tmp.unlink(missing_ok=True)


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
    parser.add_argument("--keep-float", nargs="+", metavar="LAYER",
                        help="with --int8: leave these layers (e.g. s2_b1_se_fc1) in float; 'auto': the fewest of the "
                             "worst layers (by LiteRT's quantization debugger) that bring the drift within budget, "
                             "with the size and speed cost reported")
    cli.add_artifact_arguments(parser, "tflite")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    target = get_target(args.target, "tflite")
    lowering = choose_lowering(target, args.grouped_conv)
    cli.check_lowering(args, lowering)
    if args.io != "float32" and args.precision != "int8":
        raise ConfigError(f"--io {args.io} needs --int8 (only a fully integer model has integer I/O)")
    if args.keep_float and (args.precision != "int8" or args.io != "float32"):
        raise ConfigError("--keep-float needs --int8 with --io float32")
    source = cli.source_from(args)
    spec = source.spec.preprocessing
    suffix = "" if args.io == "float32" else f"_io{args.io}"
    out = args.out or cli.default_out(source.spec.name, args.precision, lowering, "tflite", suffix)
    if out.suffix != ".tflite":
        raise ConfigError(f"--out must end in .tflite, got {out}")
    ensure_writable(out)
    calibration = calibration_set(spec, args.calib, args.calib_size, args.seed) if args.precision == "int8" else None
    validation = validation_set(spec, args.data, args.val_size)
    if args.data:  # the bundled crops are labelled for the reference checkpoint only
        validation.check_labels(source.labels)
    budget = cli.budget_from(args, args.precision, features=source.output_kind == "features")
    plan = Plan(Path(out), args.precision, target, lowering, budget, args.allow_drift,
                calibration, extra={"io_type": args.io})
    result = convert(source, plan, validation, args.io, args.keep_float)
    print(cli.summary(result))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
