"""Where an artifact will run decides how its grouped convolutions are written.

One small table: each target names its format, the default grouped-conv lowering, and why.
`--grouped-conv` overrides the default; `forbids_grouped_conv` targets are checked after conversion
(no CONV_2D of op version 6 or higher may remain in the file).
"""

from __future__ import annotations

from dataclasses import dataclass

from converters.rewrite import LOWERINGS
from edge.errors import ConfigError


@dataclass(frozen=True)
class Target:
    name: str
    format: str                 # "tflite" | "onnx"
    lowering: str               # default grouped-conv lowering
    forbids_grouped_conv: bool  # the runtime rejects CONV_2D v6 (grouped): lowering "native" is refused
    reason: str


TARGETS: dict[str, Target] = {t.name: t for t in (
    Target("xnnpack", "tflite", "native", False,
           "LiteRT's default CPU path: XNNPACK runs grouped CONV_2D (op v6) natively in float and int8, "
           "and that is the fastest form measured (benchmarks/README.md)"),
    Target("gpu", "tflite", "native", False,
           "the GPU delegate accepts grouped CONV_2D; published RegNetX-400MF figures (Galaxy S22, TFLite 2.10): "
           "native 7.6 ms vs split+concat 43.7 ms on the GPU"),
    Target("nnapi", "tflite", "dense", True,
           "NNAPI drivers reject grouped CONV_2D (op v6); the block-diagonal dense conv is a plain CONV_2D "
           "and beat split on the builtin kernels here (benchmarks/README.md)"),
    Target("edgetpu", "tflite", "dense", True,
           "the Edge TPU compiler rejects grouped CONV_2D (op v6); it needs full int8 with plain convs"),
    Target("portable", "tflite", "dense", True,
           "runtimes older than TFLite 2.9, and delegates that take plain ops only, have no grouped CONV_2D"),
    Target("onnx", "onnx", "native", False,
           "ONNX Conv has a group attribute that ONNX Runtime (and most ONNX backends) run directly"),
)}


def get_target(name: str, fmt: str) -> Target:
    target = TARGETS.get(name)
    if target is None or target.format != fmt:
        valid = [t.name for t in TARGETS.values() if t.format == fmt]
        raise ConfigError(f"unknown {fmt} target {name!r}; valid: {', '.join(valid)}")
    return target


def choose_lowering(target: Target, override: str = "auto") -> str:
    """The target's default lowering, or the user's override when it is compatible with the target."""
    if override == "auto":
        return target.lowering
    if override not in LOWERINGS:
        raise ConfigError(f"unknown --grouped-conv {override!r}; valid: auto, {', '.join(LOWERINGS)}")
    if override == "native" and target.forbids_grouped_conv:
        raise ConfigError(f"target {target.name} cannot run grouped convs ({target.reason}); "
                          "use --grouped-conv split, dense or depthwise, or another --target")
    return override
