"""Where an artifact will run decides how its grouped convolutions are written.

One small table: each target names its format, the default grouped-conv lowering, and why.
`--grouped-conv` overrides the default; `forbids_grouped_conv` targets are checked after conversion
(no CONV_2D of op version 6 or higher may remain in the file).

The three targets without grouped convs (nnapi, edgetpu, portable) write one graph, checked on Arm NN 20.08 (Debian's
python3-pyarmnn: TfLiteParser + CpuRef), an independent TFLite runtime (docs/lowering.md, "Arm NN"). The split form
used to fail there three ways, each now written around, exactly, at the builtin-kernel speed of before (within 5%):
- its parser reads SPLIT's axis as unsigned and segfaults on -1, the axis TensorFlow writes: the axis is now 3;
- a PAD that does not feed a conv pads int8 with 0, not the zero point (the kit's stride-2 grouped convs are padded
  before the SPLIT): each group is now padded right before its conv, where Arm NN folds the PAD into the conv;
- it aborts on a per-channel int8 FULLY_CONNECTED (TensorFlow's default for the head): `dense_as_conv` writes Dense
  layers as 1x1 convs, quantized per channel as every runtime that runs convs takes them.
It computes a grouped CONV_2D (op v6) wrong, which these targets never write.
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
    max_depthwise_taps: int | None = None  # depthwise convs with more taps are split in bands (converters.rewrite)
    dense_as_conv: bool = False  # Dense layers as 1x1 convs: no per-channel int8 FULLY_CONNECTED (converters.rewrite)


# Each reason is recorded in the artifact's metadata; the measurements behind them: docs/lowering.md.
TARGETS: dict[str, Target] = {t.name: t for t in (
    Target("xnnpack", "tflite", "native", False,
           "LiteRT's default CPU path: XNNPACK runs grouped CONV_2D (op v6) natively, faster than split or dense "
           "(docs/lowering.md)", max_depthwise_taps=25),
    Target("gpu", "tflite", "native", False,
           "the GPU delegate accepts grouped CONV_2D; published RegNetX figures show native far faster than "
           "split+concat on the GPU (docs/lowering.md)"),
    Target("nnapi", "tflite", "split", True,
           "NNAPI drivers reject grouped CONV_2D (op v6); split is the fastest plain form on the builtin kernels, "
           "written in the form Arm NN also runs, Dense as 1x1 convs (docs/lowering.md); NNAPI < 1.2 lacks SPLIT: use "
           "--grouped-conv dense there", dense_as_conv=True),
    Target("edgetpu", "tflite", "split", True,
           "the Edge TPU compiler rejects grouped CONV_2D (op v6); split uses SPLIT, PAD, CONV_2D and CONCATENATION, "
           "all Edge TPU ops, at the native MAC count (dense costs G x the MACs); Dense as 1x1 convs "
           "(docs/lowering.md)", dense_as_conv=True),
    Target("portable", "tflite", "split", True,
           "runtimes older than TFLite 2.9 have no grouped CONV_2D; on the builtin kernels split is faster than "
           "native grouped and than dense; written so that Arm NN 20.08 parses and runs it (SPLIT on axis 3, a PAD "
           "right before each group's conv, Dense as 1x1 convs; docs/lowering.md)", dense_as_conv=True),
    Target("onnx", "onnx", "native", False,
           "ONNX Conv has a group attribute that ONNX Runtime runs directly"),
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
