"""`python -m edge.golden --model FILE [--model FILE ...] --out DIR`: test vectors for the Android core.

Written from the kit's own edge runtime, so the pure-Java core (android_demo/core) is held to the
Python kit bit for bit. For each source image (RGB pixels): the resized-and-cropped pixels under each
interpolation and resize rule, and for each .tflite model the exact model-input tensor (float32, or the
quantized uint8/int8 bytes), the file's raw output tensor and the expected top-5. Binary files are
little-endian; golden.json indexes them. Without --image, three bundled photographs are shrunk to
three source sizes (upsampling, downsampling, exact), which keeps the set small enough to commit.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from edge.classifier import Classifier
from edge.command import parser_for, prog
from edge.errors import KitError, run_cli
from edge.images import load_image, resize_and_crop, to_input
from edge.preprocessing import PreprocessSpec
from edge.runtime import RuntimeOptions, dequantize, quantize

BUNDLED = Path(__file__).resolve().parents[1] / "calibration" / "samples"
DEFAULT_PHOTOS = ("chelsea", "coffee", "rocket")
SOURCE_SIZES = ((301, 233), (300, 400), (256, 256))   # width, height
RESIZE_SPECS = [PreprocessSpec(height=h, width=w, resize=rule, interpolation=interp)  # small: a few KB each
                for rule, h, w in (("shorter_side", 56, 56), ("stretch", 48, 64))
                for interp in ("nearest", "bilinear", "bicubic")]


def default_images() -> list[Path]:
    found = {p.stem: p for p in BUNDLED.rglob("*") if p.is_file()}
    missing = [name for name in DEFAULT_PHOTOS if name not in found]
    if missing:
        raise KitError(f"the bundled photographs {missing} are not under {BUNDLED}; pass --image FILE instead")
    return [found[name] for name in DEFAULT_PHOTOS]


def source_images(paths: Sequence[Path], shrink: bool) -> list[tuple[str, Image.Image]]:
    """(name, RGB image) per path; with `shrink`, each is resized to one of SOURCE_SIZES in turn."""
    images = []
    for i, path in enumerate(paths):
        im = load_image(path)
        if shrink:
            im = im.resize(SOURCE_SIZES[i % len(SOURCE_SIZES)], Image.Resampling.LANCZOS)
        images.append((f"{Path(path).stem}_{im.width}x{im.height}", im))
    return images


def write_golden(models: Sequence[Path], images: Sequence[tuple[str, Image.Image]], out: Path,
                 command: str = "") -> dict:
    """Write the vectors into `out` (replaced whole, atomically); returns the index written as golden.json."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".golden-", dir=out.parent))
    try:
        index = {"generator": command or "python -m edge.golden", "images": [], "resize_cases": [], "models": []}
        (work / "images").mkdir()
        (work / "resize").mkdir()
        for name, im in images:
            (work / "images" / f"{name}.rgb").write_bytes(np.asarray(im, np.uint8).tobytes())
            index["images"].append({"name": name, "width": im.width, "height": im.height,
                                    "file": f"images/{name}.rgb"})
            for spec in RESIZE_SPECS:
                crop = resize_and_crop(im, spec)
                file = f"resize/{name}_{spec.resize}_{spec.interpolation}.rgb"
                (work / file).write_bytes(np.asarray(crop, np.uint8).tobytes())
                index["resize_cases"].append({"image": name, "spec": spec.to_dict(), "width": crop.width,
                                              "height": crop.height, "file": file})
        for model in models:
            index["models"].append(_model_cases(Path(model), images, work))
        (work / "golden.json").write_text(json.dumps(index, indent=1) + "\n")
        if out.exists():
            shutil.rmtree(out)
        work.rename(out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return index


def _model_cases(model: Path, images, work: Path) -> dict:
    if model.suffix.lower() != ".tflite":
        raise KitError(f"{model}: golden vectors are for .tflite models (the Android app runs LiteRT)")
    classifier = Classifier(model, RuntimeOptions(threads=1))
    runner = classifier.runner
    folder = work / "models" / model.stem
    folder.mkdir(parents=True)
    metadata = json.dumps(runner.metadata, sort_keys=True)
    entry = {"name": model.name, "metadata": metadata,
             "input": runner.input.to_dict(name=False, always_quantization=True),
             "output": runner.output.to_dict(name=False, always_quantization=True), "cases": []}
    for name, im in images:
        x = to_input(im, classifier.spec)[None]
        tensor = quantize(x, runner.input) if runner.input.quantized else x.astype(np.float32)
        raw = runner.run_raw(tensor)
        top = classifier.predictions(dequantize(raw, runner.output)[0], 5)
        (folder / f"{name}.input").write_bytes(np.ascontiguousarray(tensor).astype(tensor.dtype.newbyteorder("<")).tobytes())
        (folder / f"{name}.output").write_bytes(np.ascontiguousarray(raw).astype(raw.dtype.newbyteorder("<")).tobytes())
        entry["cases"].append({"image": name, "input_file": f"models/{model.stem}/{name}.input",
                               "output_file": f"models/{model.stem}/{name}.output",
                               "top": [{"label": p.label, "index": p.index, "probability": p.probability}
                                       for p in top]})
    return entry


def main(argv: Sequence[str] | None = None) -> int:
    parser = parser_for("edge.golden", __doc__)
    parser.add_argument("--model", action="append", type=Path, required=True, metavar="FILE",
                        help=".tflite artifact (repeat: e.g. a float32 and an int8 --io uint8 file)")
    parser.add_argument("--image", action="append", type=Path, metavar="FILE",
                        help="source image (repeat; default: three bundled photographs, shrunk)")
    parser.add_argument("--no-shrink", action="store_true", help="keep --image files at their own size")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR",
                        help="folder to write (replaced whole), e.g. android_demo/core/src/test/resources/golden")
    args = parser.parse_args(argv)
    paths = args.image or default_images()
    images = source_images(paths, shrink=not args.no_shrink)
    index = write_golden(args.model, images, args.out, " ".join([prog("edge.golden"), *(argv or sys.argv[1:])]))
    cases = sum(len(m["cases"]) for m in index["models"])
    print(f"wrote {args.out}: {len(images)} images, {len(index['resize_cases'])} resize cases, "
          f"{len(index['models'])} models, {cases} model cases")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
