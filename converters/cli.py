"""The one conversion driver behind `converters.tflite` and `converters.onnx`: the arguments they share, and
turning them into a reference, data sets and a Plan for the pipeline. Each format brings a Frontend: its own
arguments, and how they become a precision and an exporter."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from calibration.drift import budget_for
from calibration.representative import DEFAULT_CALIBRATION, MAX_CALIBRATION
from converters.pipeline import log
from converters.rewrite import LOWERINGS
from converters.targets import TARGETS
from converters.saved_model import PRESETS
from converters.source import HEADS
from edge.errors import ConfigError
from models.applications import APPLICATIONS
from models.zoo import FLAVOURS, VARIANTS

MODELS = ("regnety", *APPLICATIONS)
INPUT_SIZES = range(32, 2049)  # five stride-2 stages need 32; past 2048 a square image costs gigabytes per layer


@dataclass(frozen=True)
class Frontend:
    """A format's command line: its arguments and how they become (precision, exporter, file-name suffix)."""

    format: str
    module: str                 # the CLI module, for its usage name (edge.command.prog)
    description: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    exporter_from: Callable[[argparse.Namespace], tuple]

    def main(self, argv: Sequence[str] | None = None) -> int:
        """The format's command: `python -m converters.FORMAT` and `regnety-kit convert FORMAT`."""
        return run(self, argv)


def run(frontend: Frontend, argv: Sequence[str] | None = None) -> int:
    """Parse, check every option before loading anything, convert, print the one-line summary."""
    from calibration.representative import check_sizes
    from converters.targets import choose_lowering, get_target
    from edge.atomic import output_place
    from edge.command import add_json_argument, emit, parser_for

    parser = parser_for(frontend.module, description=frontend.description)
    add_model_arguments(parser)
    frontend.add_arguments(parser)
    add_artifact_arguments(parser, frontend.format)
    add_json_argument(parser, "the written artifact's record (path, size, drift)")
    args = parser.parse_args(argv)
    precision, exporter, suffix = frontend.exporter_from(args)
    target = get_target(args.target, frontend.format)
    lowering = choose_lowering(target, args.grouped_conv)
    check_lowering(args, lowering)
    check_sizes(args.calib_size if precision == "int8" else None, args.val_size)
    if args.out is not None and args.out.suffix != f".{frontend.format}":
        raise ConfigError(f"--out must end in .{frontend.format}, got {args.out}")
    reference = source_from(args)
    out = args.out or default_out(reference.name, precision, lowering, frontend.format, suffix)
    with output_place(out, log=log):
        result = _convert(args, reference, Path(out), precision, target, lowering, exporter)
    emit(summary(result), {"path": str(result.path), "size_bytes": result.size_bytes,
                           "within_budget": not result.violations, "violations": result.violations,
                           "metadata": result.metadata}, args.json)
    return 0


def _convert(args: argparse.Namespace, reference, out: Path, precision: str, target, lowering: str, exporter):
    from calibration.representative import calibration_set, validation_set
    from converters.pipeline import convert
    from converters.plan import Plan

    spec = reference.preprocessing
    calibration = calibration_set(spec, args.calib, args.calib_size, args.seed) if precision == "int8" else None
    validation = validation_set(spec, args.data, args.val_size)
    if args.data:  # the bundled crops are labelled for the reference checkpoint only
        validation.check_labels(reference.labels)
    budget = budget_from(args, precision, features=reference.output_kind == "features")
    plan = Plan(out, precision, target, lowering, budget, args.allow_drift, calibration)
    return convert(reference, plan, validation, exporter, log=log)


ARTIFACTS_DIR = Path("artifacts")


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--model", default="regnety", choices=MODELS,
                       help="architecture: the kit's RegNetY (default; --variant picks the design point), or the "
                            "keras.applications ConvNeXt-Tiny / EfficientNet-B7 (normalization inside, [0, 255] input)")
    group.add_argument("--variant", default="200mf", metavar="NAME", help=f"RegNetY design point: {', '.join(VARIANTS)} "
                       "(default 200mf)")
    group.add_argument("--flavour", default="paper", metavar="NAME",
                       help=f"{' or '.join(FLAVOURS)}: paper is pycls/timm (default), seed the TF Hub regnetyNNNmf models")
    group.add_argument("--weights", metavar="PATH",
                       help="checkpoint: timm/pycls .safetensors/.pth, Keras .weights.h5/.keras/.h5. Default: the kit's "
                            "reference checkpoint for 200mf (paper), random weights otherwise (said loudly)")
    group.add_argument("--classes", type=int, metavar="N", help="classifier outputs (default: from the labels, else 1000)")
    group.add_argument("--labels", metavar="FILE", help="class names, one per line (default: the checkpoint's card; "
                       "for 1000 classes ImageNet-1k's names; else class_0, class_1, ...)")
    group.add_argument("--input-size", type=int, metavar="N",
                       help="square input size (default: 224; EfficientNet-B7: 600)")
    group.add_argument("--saved-model", metavar="DIR",
                       help="convert a TF Hub-style SavedModel (its serving_default signature) instead of a kit model; "
                            "needs --preset or --preprocessing")
    group.add_argument("--preset", metavar="NAME", help="preprocessing of a known SavedModel: " + ", ".join(PRESETS))
    group.add_argument("--preprocessing", metavar="JSON", help="preprocessing spec of a --saved-model, as JSON or a "
                       "file holding it (fields: edge/preprocessing.py)")
    group.add_argument("--head", choices=HEADS, default="classifier",
                       help="none: drop the classifier, output the pooled features (the TF Hub feature_vector role), "
                            "validated by cosine similarity (default classifier)")
    group.add_argument("--normalize-in-model", action="store_true",
                       help="put the /255 and mean/std normalization inside the model: it takes raw [0, 255] RGB pixels "
                            "(with --int8 --io uint8 the device feeds camera bytes as they are)")


def check_lowering(args: argparse.Namespace, lowering: str) -> None:
    """Refuse a lowering a --saved-model cannot have, before the (possibly large) SavedModel is loaded."""
    if getattr(args, "saved_model", None) and lowering != "native":
        raise ConfigError(f"a SavedModel converts as it is: its grouped convs cannot be lowered to {lowering}; use "
                          "--target xnnpack or gpu, or rebuild the model in Keras with the kit")


def source_from(args: argparse.Namespace, normalize_in_model: bool | None = None, head: str | None = None):
    """The reference model the model arguments describe (weights, labels, head, normalization); `validate`
    overrides normalization and head with what an artifact's metadata says."""
    from converters.source import load_source, read_labels

    if args.input_size is not None and args.input_size not in INPUT_SIZES:
        raise ConfigError(f"--input-size must be between {INPUT_SIZES.start} and {INPUT_SIZES.stop - 1}, got "
                          f"{args.input_size}")
    if args.saved_model:
        from converters.saved_model import load_saved_model, preprocessing_for

        if (head or args.head) == "none" or args.weights or args.normalize_in_model:
            raise ConfigError("--saved-model converts the SavedModel as it is: --head none, --weights and "
                              "--normalize-in-model do not apply (export a feature_vector module for features)")
        spec = preprocessing_for(args.preset, args.preprocessing)
        labels = read_labels(args.labels) if args.labels else None
        return load_saved_model(args.saved_model, spec, args.preset, labels, log=log)
    if args.preset or args.preprocessing:
        raise ConfigError("--preset and --preprocessing describe a --saved-model; pass one")
    if args.model != "regnety":
        from converters.source import load_application

        if args.normalize_in_model or args.flavour != "paper":
            raise ConfigError(f"{args.model} normalizes inside the model already; --normalize-in-model and --flavour "
                              "are RegNetY options")
        return load_application(args.model, args.weights, num_classes=args.classes, labels_path=args.labels,
                                input_size=args.input_size, head=head or args.head, log=log)
    if normalize_in_model is None:
        normalize_in_model = args.normalize_in_model or None
    size = 224 if args.input_size is None else args.input_size
    return load_source(args.variant, args.flavour, args.weights, num_classes=args.classes, labels_path=args.labels,
                       input_size=size, normalize_in_model=normalize_in_model, head=head or args.head, log=log)


def add_artifact_arguments(parser: argparse.ArgumentParser, fmt: str) -> None:
    targets = [t for t in TARGETS.values() if t.format == fmt]
    group = parser.add_argument_group("artifact")
    group.add_argument("--target", default=targets[0].name, choices=[t.name for t in targets],
                       help="where the file will run; decides the grouped-conv lowering: "
                            + "; ".join(f"{t.name}: {t.lowering}" for t in targets) + f" (default {targets[0].name})")
    group.add_argument("--grouped-conv", default="auto", choices=("auto", *LOWERINGS),
                       help="override the target's grouped-conv lowering (all exact in float): "
                            + "; ".join(f"{lw.name}: {lw.doc}" for lw in LOWERINGS.values()))
    group.add_argument("--out", type=Path, metavar="PATH", help=f"output file (default {ARTIFACTS_DIR}/<model>_<precision>"
                       f"[_<lowering>].{fmt})")
    data = parser.add_argument_group("data")
    data.add_argument("--calib", metavar="DIR", help="representative images for int8 calibration (recursive; default: "
                      "crops of the bundled photographs)")
    data.add_argument("--calib-size", type=int, default=DEFAULT_CALIBRATION, metavar="N",
                      help=f"calibration images (default {DEFAULT_CALIBRATION}, at most {MAX_CALIBRATION})")
    data.add_argument("--data", metavar="DIR", help="validation images (class sub-folders named after the labels give "
                      "accuracy too; default: held-out crops of the bundled photographs)")
    data.add_argument("--val-size", type=int, metavar="N", help="validation images: the first N of --data, or N "
                      "held-out crops spread over the bundled photographs (default: all of --data, or 176 crops); "
                      "fewer is faster and coarser")
    data.add_argument("--seed", type=int, default=0, help="order of the calibration images (default 0)")
    check = parser.add_argument_group("drift check")
    add_budget_arguments(check)
    check.add_argument("--allow-drift", action="store_true",
                       help="write the artifact even when it drifts past its budget (says so loudly, records it)")


def add_budget_arguments(group) -> None:
    group.add_argument("--min-top1", type=float, metavar="FRACTION",
                       help="override the precision's minimum top-1 agreement (budgets: calibration/drift.py)")
    group.add_argument("--max-error", type=float, metavar="FRACTION",
                       help="override the maximum max-abs logit error, as a fraction of the reference's logit range")
    group.add_argument("--max-accuracy-drop", type=float, metavar="POINTS",
                       help="override the maximum top-1 accuracy drop (when the images have labels)")
    group.add_argument("--min-cosine", type=float, metavar="COSINE",
                       help="override the minimum per-image cosine similarity of a feature extractor (--head none)")


def default_out(model_name: str, precision: str, lowering: str, fmt: str, suffix: str = "") -> Path:
    tail = "" if lowering == "native" else f"_{lowering}"
    return ARTIFACTS_DIR / f"{model_name}_{precision}{suffix}{tail}.{fmt}"


def budget_from(args: argparse.Namespace, precision: str, features: bool = False):
    return budget_for(precision, features=features, min_top1_agreement=args.min_top1,
                      max_abs_error_of_range=args.max_error, max_accuracy_drop=args.max_accuracy_drop,
                      min_cosine=args.min_cosine)


def summary(result) -> str:
    """The one line a conversion prints on stdout when it has written its artifact."""
    d = result.drift
    accuracy = (f", accuracy {d.reference_accuracy:.2%} -> {d.artifact_accuracy:.2%}"
                if d.reference_accuracy is not None else "")
    if result.metadata.get("io", {}).get("output_kind") == "features":
        agreement = f"feature cosine similarity min {d.cosine_min:.6f} (mean {d.cosine_mean:.6f})"
    else:
        agreement = f"top-1 agreement {d.top1_agreement:.2%}"
    return (f"wrote {result.path} ({result.size_bytes / 1e6:.2f} MB): {agreement} on {d.images} images, max-abs "
            f"error {d.max_abs_error:.3g}, SQNR {d.sqnr_db:.1f} dB{accuracy}; report {result.path}.md")
