"""`python -m models.info --variant 200mf [--flavour seed] [--json PATH|-]`: stages, parameters, MACs, preprocessing.

Parameters and MACs are counted from the model this command builds, not read from a table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from edge.command import add_json_argument, emit, parser_for
from edge.errors import run_cli
from models.zoo import VARIANTS, ModelSpec, model_spec


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = parser_for(
        "models.info",
        description="Describe a RegNetY variant: stages (depth, width, groups, group width), parameters, "
                    "multiply-accumulates at the input size, and the preprocessing spec its artifacts carry.",
    )
    parser.add_argument("--variant", required=True, metavar="NAME",
                        help=f"design point: {', '.join(VARIANTS)}")
    parser.add_argument("--flavour", default="paper", metavar="NAME",
                        help="paper: pycls/timm RegNetY (default); seed: the TF Hub regnetyNNNmf models "
                             "(200mf-800mf)")
    parser.add_argument("--classes", type=int, default=1000, help="classifier outputs (default 1000)")
    parser.add_argument("--input-size", type=int, default=224, help="square input size for the MAC count (default 224)")
    parser.add_argument("--no-head", action="store_true", help="describe the pooled-feature model (no classifier)")
    add_json_argument(parser, "the description (one object)")
    return parser.parse_args(argv)


def describe(spec: ModelSpec) -> dict:
    """The facts `models.info` prints, as a JSON-ready dict (builds the model to count it)."""
    from models.complexity import complexity
    from models.zoo import build_model

    # MACs need a fixed spatial size; a model that resizes inside is counted at its resize target.
    counted = spec if None not in spec.input_shape else model_spec(
        spec.variant, spec.flavour.name, num_classes=spec.num_classes, include_head=spec.include_head,
        input_size=(spec.preprocessing.height, spec.preprocessing.width))
    cx = complexity(build_model(counted))
    d = spec.design
    return {
        "model": spec.name,
        "variant": spec.variant,
        "flavour": spec.flavour.name,
        "flavour_description": spec.flavour.description,
        "design": {"w0": d.w0, "wa": d.wa, "wm": d.wm, "depth": d.depth, "group_width": d.group_width,
                   "se_ratio": d.se_ratio, "stem_width": d.stem_width},
        "stages": [{"depth": s.depth, "width": s.width, "groups": s.groups, "group_width": s.group_width,
                    "stride": s.stride} for s in spec.stages],
        "num_classes": spec.num_classes if spec.include_head else None,
        "input_shape": list(counted.input_shape) + [3],
        **cx.as_dict(),
        "preprocessing": spec.preprocessing.to_dict(),
    }


def format_text(info: dict) -> str:
    lines = [f"{info['model']}  ({info['flavour']} flavour: {info['flavour_description']})", "",
             "stage  depth  width  groups  group width  stride"]
    for i, s in enumerate(info["stages"], 1):
        lines.append(f"{i:>5}  {s['depth']:>5}  {s['width']:>5}  {s['groups']:>6}  {s['group_width']:>11}  {s['stride']:>6}")
    h, w, _ = info["input_shape"]
    lines += [
        "",
        f"trainable parameters  {info['trainable_params']:>12,}  ({info['trainable_params'] / 1e6:.2f} M)",
        f"all weights           {info['total_params']:>12,}  (+ BN moving statistics)",
        f"MACs at {h}x{w}        {info['macs']:>12,}  ({info['macs'] / 1e9:.3f} G)",
        "",
        "preprocessing: " + json.dumps(info["preprocessing"], sort_keys=True),
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # Names and sizes are checked here, before the slow TensorFlow import.
    spec = model_spec(args.variant, args.flavour, num_classes=args.classes, include_head=not args.no_head,
                      input_size=args.input_size)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    info = describe(spec)
    emit(format_text(info), info, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
