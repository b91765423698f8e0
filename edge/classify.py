"""`python -m edge.classify IMAGE... --model FILE [--top 5] [--json PATH|-] [--threads N]`: on-device classification.

One line per image: top-k labels with probabilities and the model's latency. A folder expands to
the images in it (recursively). Needs only numpy, Pillow and a runtime (pip install .[edge]).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from edge.classifier import Classifier
from edge.command import add_json_argument, json_to_stdout, parser_for, write_json
from edge.errors import ConfigError, ImageError, run_cli
from edge.images import IMAGE_SUFFIXES, image_files
from edge.runtime import RuntimeOptions


def expand(paths: Sequence[str]) -> list[Path]:
    """Files as given; folders replaced by their images. A folder with none is an error."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            images = image_files(path)
            if not images:
                raise ConfigError(f"{path} holds no {'/'.join(IMAGE_SUFFIXES)} images (searched recursively)")
            found += images
        else:
            found.append(path)
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = parser_for(
        "edge.classify",
        description="Classify images with a .tflite or .onnx file written by the kit's converters (labels and "
                    "preprocessing are read from the file).")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders")
    parser.add_argument("--model", required=True, type=Path, help="the .tflite or .onnx artifact")
    parser.add_argument("--top", type=int, default=5, help="labels shown per image (default 5)")
    parser.add_argument("--threads", type=int, default=2, help="runtime threads (default 2)")
    parser.add_argument("--no-xnnpack", action="store_true", help="LiteRT: builtin kernels instead of XNNPACK")
    add_json_argument(parser, "a list of the results (one object per image)")
    args = parser.parse_args(argv)
    if args.top < 1:
        raise ConfigError(f"--top must be at least 1, got {args.top}")
    images = expand(args.images)
    classifier = Classifier(args.model, RuntimeOptions(threads=args.threads, xnnpack=not args.no_xnnpack))
    results, failed = [], 0
    for path in images:
        try:
            result = classifier.classify(path, args.top)
        except ImageError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
            continue
        results.append(result)
        if not json_to_stdout(args.json):
            labels = ", ".join(f"{p.label} {p.probability:.3f}" for p in result.top)
            print(f"{path}: {labels} ({result.latency_ms:.2f} ms)")
    if args.json:
        write_json([r.to_dict() for r in results], args.json)
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
