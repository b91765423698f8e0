"""`python -m edge.android --model FILE [--app DIR]`: put a converted model into the Android demo app.

Checks the file the way the app's core will (android_demo/core): a .tflite with the kit's metadata,
a 1 x H x W x 3 input that matches the metadata's preprocessing, float32 / uint8 / int8 tensors, and as
many labels as outputs. Then copies it atomically to the app's assets as model.tflite, so the next
build (or `./gradlew installDebug`) ships it. Nothing is copied when a check fails.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from edge.atomic import atomic_write
from edge.classifier import Classifier
from edge.command import add_json_argument, emit, parser_for
from edge.errors import run_cli
from edge.runtime import RuntimeOptions
from edge.tflite_file import ModelFileError, read_model_bytes

DEFAULT_APP = Path(__file__).resolve().parents[1] / "android_demo"
ASSET = Path("app/src/main/assets/model.tflite")
APP_TYPES = ("float32", "uint8", "int8")


@dataclass(frozen=True)
class AppModel:
    path: Path
    input: str
    output: str
    labels: int
    precision: str
    lowering: str | None
    notes: tuple[str, ...]


def check(model: str | Path) -> AppModel:
    """What the app's core requires of a model; ModelFileError naming the first thing that is not so."""
    path = Path(model)
    if path.suffix.lower() != ".tflite":
        raise ModelFileError(f"{path}: the Android app runs .tflite files (LiteRT); convert with "
                             "python -m converters.tflite")
    classifier = Classifier(path, RuntimeOptions(threads=1))  # metadata present, labels match the outputs
    runner, spec = classifier.runner, classifier.spec
    expected = (1, spec.height, spec.width, 3)
    if tuple(runner.input.shape) != expected:
        raise ModelFileError(f"{path}: input {list(runner.input.shape)} does not match its preprocessing "
                             f"({spec.height}x{spec.width} RGB, batch 1); re-convert it with the kit")
    for role, info in (("input", runner.input), ("output", runner.output)):
        if info.dtype not in APP_TYPES:
            raise ModelFileError(f"{path}: {role} type {info.dtype} is not one the app reads ({', '.join(APP_TYPES)}); "
                                 "convert with --io float32, uint8 or int8")
    meta = runner.metadata or {}
    lowering = (meta.get("grouped_conv") or {}).get("lowering")
    notes = []
    if lowering == "native":
        notes.append("grouped convs are native: fastest on the CPU (XNNPACK), accepted by the GPU delegate; NNAPI "
                     "drivers reject them and the app then falls back to the CPU. For NNAPI, convert with --target nnapi")
    if runner.input.dtype == "float32" and meta.get("precision") == "int8":
        notes.append("int8 inside, float32 input: the app quantizes nothing itself; --io uint8 saves a conversion")
    return AppModel(path, f"{runner.input.dtype} {list(runner.input.shape)}",
                    f"{runner.output.dtype} {list(runner.output.shape)}", len(classifier.labels),
                    str(meta.get("precision")), lowering, tuple(notes))


def install(model: str | Path, app: str | Path = DEFAULT_APP) -> tuple[AppModel, Path]:
    """Check the model, then copy it to the app's assets (atomically)."""
    checked = check(model)
    app = Path(app)
    if not (app / "app").is_dir():
        raise ModelFileError(f"{app} is not the Android demo project (no app/ folder in it); pass --app android_demo")
    destination = app / ASSET
    atomic_write(destination, read_model_bytes(checked.path))
    return checked, destination


def main(argv: Sequence[str] | None = None) -> int:
    parser = parser_for("edge.android", __doc__)
    parser.add_argument("--model", type=Path, required=True, metavar="FILE", help="the converted .tflite file")
    parser.add_argument("--app", type=Path, default=DEFAULT_APP, metavar="DIR",
                        help="the Android project (default: the kit's android_demo)")
    parser.add_argument("--check-only", action="store_true", help="check the model, copy nothing")
    add_json_argument(parser, "what was checked (and where the model was copied)")
    args = parser.parse_args(argv)
    if args.check_only:
        checked, destination = check(args.model), None
    else:
        checked, destination = install(args.model, args.app)
    lines = [f"{checked.path.name}: {checked.precision}, input {checked.input}, output {checked.output}, "
             f"{checked.labels} labels, grouped convs {checked.lowering or 'n/a'}"]
    lines += [f"note: {note}" for note in checked.notes]
    if destination is not None:
        lines.append(f"copied to {destination}; build and install with: cd {args.app} && ./gradlew installDebug")
    record = {**asdict(checked), "path": str(checked.path),
              "copied_to": str(destination) if destination is not None else None}
    emit("\n".join(lines), record, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
