"""The RegNetY design space as code, and one Keras 3 builder for every flavour of it.

Radosavovic et al., "Designing Network Design Spaces" (2020): a network is given by a handful of
numbers (w0, wa, wm, depth, group width); per-block widths follow a quantized linear rule and
consecutive blocks of equal width form a stage. `stage_plan` turns the numbers into stages;
`build_regnety` turns stages into a Keras functional model.

The paper/pycls/timm model and the seed TensorFlow implementation differ in a few details (stem
padding, SE width, layer names, preprocessing inside the model). Those differences are a `Flavour`,
data passed to the same builder, never a second copy of the network.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from edge.preprocessing import PreprocessSpec

BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9  # Keras convention; PyTorch's momentum=0.1 is the same update


@dataclass(frozen=True)
class DesignParams:
    """One point of the RegNetY design space (pycls naming)."""

    w0: int  # initial width
    wa: float  # width slope
    wm: float  # width multiplier (quantization in log space)
    depth: int  # total number of blocks
    group_width: int  # channels per group of the 3x3 convolution
    se_ratio: float = 0.25
    stem_width: int = 32
    bottleneck_ratio: float = 1.0
    quantum: int = 8  # block widths are multiples of this


@dataclass(frozen=True)
class Stage:
    """A run of blocks with the same width; the first block has the stage's stride."""

    depth: int
    width: int
    group_width: int
    stride: int = 2

    @property
    def groups(self) -> int:
        return self.width // self.group_width


def block_widths(p: DesignParams) -> list[int]:
    """Per-block widths by the paper's quantized linear rule.

    u_j = w0 + wa * j;  e_j = round(log(u_j / w0) / log(wm));  w_j = round(w0 * wm^e_j / q) * q
    """
    if p.wa < 0 or p.w0 <= 0 or p.wm <= 1 or p.w0 % p.quantum:
        raise ValueError(f"invalid design parameters {p}: need wa >= 0, w0 > 0 and a multiple of {p.quantum}, wm > 1")
    widths = []
    for j in range(p.depth):
        u = p.w0 + p.wa * j
        e = round(math.log(u / p.w0) / math.log(p.wm))
        widths.append(int(round(p.w0 * p.wm**e / p.quantum) * p.quantum))
    return widths


def stage_plan(p: DesignParams, depths: tuple[int, ...] | None = None) -> list[Stage]:
    """Group blocks of equal width into stages, then make widths and group widths compatible.

    `depths` overrides the per-stage block counts (the seed flavour's 400MF uses its own).
    """
    runs: list[list[int]] = []
    for w in block_widths(p):
        if runs and runs[-1][0] == w:
            runs[-1][1] += 1
        else:
            runs.append([w, 1])
    stages = []
    for width, depth in runs:
        bottleneck = int(width * p.bottleneck_ratio)
        gw = min(p.group_width, bottleneck)
        bottleneck = int(round(bottleneck / gw) * gw)
        stages.append(Stage(depth=depth, width=int(bottleneck / p.bottleneck_ratio), group_width=gw))
    if depths is not None:
        if len(depths) != len(stages):
            raise ValueError(f"depth override {depths} has {len(depths)} stages, the design has {len(stages)}")
        stages = [Stage(d, s.width, s.group_width, s.stride) for d, s in zip(depths, stages)]
    return stages


@dataclass(frozen=True)
class Naming:
    """Layer names of one flavour: "{prefix}{role}" with roles renamed through `roles`.

    Roles: conv1_conv, conv1_bn, conv1_relu, conv2_pad, conv2_conv, conv2_bn, conv2_relu, se_pool,
    se_fc1, se_fc2, se_scale, conv3_conv, conv3_bn, downsample_conv, downsample_bn, add, relu;
    stem: stem_pad, stem_conv, stem_bn, stem_relu; head: head_pool, head_fc.
    """

    block_prefix: str  # formatted with s (stage) and b (block)
    index_base: int  # 1 for s1.b1 (timm), 0 for Stage_0_YBlock_0 (seed)
    roles: Mapping[str, str] = field(default_factory=dict)

    def layer(self, role: str) -> str:
        return self.roles.get(role, role)

    def block(self, stage: int, block: int, role: str) -> str:
        prefix = self.block_prefix.format(s=stage + self.index_base, b=block + self.index_base)
        return prefix + self.roles.get(role, role)


@dataclass(frozen=True)
class Flavour:
    """How one implementation of RegNetY differs from another, as data.

    se_basis:         "input": SE width = round(block input width * ratio) (paper, pycls, timm);
                      "output": SE width = int(block output width * ratio) (seed).
    stem_padding:     "symmetric" pads 1 on every side (PyTorch); "valid" pads nothing (seed).
    stride2_padding:  padding of the strided 3x3 conv: "symmetric" (PyTorch) or "same" (TF: 0/1
                      on even inputs).
    stage_depths:     per-variant depth overrides.
    preprocessing:    the variant-independent parts of the preprocessing spec.
    """

    name: str
    description: str
    naming: Naming
    se_basis: str
    stem_padding: str
    stride2_padding: str
    preprocessing: PreprocessSpec
    variants: tuple[str, ...] | None = None  # None: every variant
    stage_depths: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    weight_aliases: Mapping[str, str] = field(default_factory=dict)  # checkpoint layer path -> our layer

    def se_width(self, block_in: int, block_out: int, ratio: float) -> int:
        if self.se_basis == "input":
            return int(round(block_in * ratio))
        return int(block_out * ratio)


def build_regnety(
    stages: list[Stage],
    flavour: Flavour,
    *,
    preprocessing: PreprocessSpec,
    stem_width: int = 32,
    se_ratio: float = 0.25,
    num_classes: int = 1000,
    include_head: bool = True,
    input_shape: tuple[int | None, int | None] = (224, 224),
    name: str = "regnety",
):
    """A Keras functional RegNetY: stem, stages of Y blocks, head (or pooled features).

    Normalization and resizing are built into the model when `preprocessing` says so; the model
    then takes RGB pixels in [0, 255].
    """
    import keras
    from keras import layers

    n = flavour.naming

    def conv(x, filters, kernel, stride, layer_name, groups=1, padding_mode="symmetric", pad_name=None):
        padding = "same"
        if padding_mode == "valid":
            padding = "valid"
        elif stride > 1 and kernel > 1 and padding_mode == "symmetric":
            x = layers.ZeroPadding2D(kernel // 2, name=pad_name)(x)
            padding = "valid"
        return layers.Conv2D(filters, kernel, strides=stride, padding=padding, groups=groups, use_bias=False,
                             name=layer_name)(x)

    def bn(x, layer_name):
        return layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=layer_name)(x)

    inputs = keras.Input(shape=(*input_shape, 3), name="image")
    x = inputs
    if preprocessing.resize_in_model:
        x = layers.Resizing(preprocessing.height, preprocessing.width, interpolation=preprocessing.interpolation,
                            name=n.layer("preprocess_resize"))(x)
    if preprocessing.normalize_in_model:
        mean = [255.0 * m for m in preprocessing.mean]
        var = [(255.0 * s) ** 2 for s in preprocessing.std]
        x = layers.Normalization(mean=mean, variance=var, name=n.layer("preprocess_normalize"))(x)

    x = conv(x, stem_width, 3, 2, n.layer("stem_conv"), padding_mode=flavour.stem_padding, pad_name=n.layer("stem_pad"))
    x = bn(x, n.layer("stem_bn"))
    x = layers.ReLU(name=n.layer("stem_relu"))(x)

    w_in = stem_width
    for si, stage in enumerate(stages):
        for bi in range(stage.depth):
            stride = stage.stride if bi == 0 else 1
            x = _y_block(x, w_in, stage, stride, si, bi, flavour, se_ratio, conv, bn, layers)
            w_in = stage.width

    x = layers.GlobalAveragePooling2D(name=n.layer("head_pool"))(x)
    if include_head:
        x = layers.Dense(num_classes, name=n.layer("head_fc"))(x)
    return keras.Model(inputs, x, name=name)


def _y_block(x, w_in, stage, stride, si, bi, flavour, se_ratio, conv, bn, layers):
    """1x1 conv-BN-ReLU, 3x3 grouped conv-BN-ReLU, SE, 1x1 conv-BN, shortcut, add, ReLU."""
    def name(role):
        return flavour.naming.block(si, bi, role)

    w = stage.width
    shortcut = x
    y = conv(x, w, 1, 1, name("conv1_conv"))
    y = layers.ReLU(name=name("conv1_relu"))(bn(y, name("conv1_bn")))
    y = conv(y, w, 3, stride, name("conv2_conv"), groups=stage.groups, padding_mode=flavour.stride2_padding,
             pad_name=name("conv2_pad"))
    y = layers.ReLU(name=name("conv2_relu"))(bn(y, name("conv2_bn")))

    se = flavour.se_width(w_in, w, se_ratio)
    s = layers.GlobalAveragePooling2D(keepdims=True, name=name("se_pool"))(y)
    s = layers.Conv2D(se, 1, activation="relu", name=name("se_fc1"))(s)
    s = layers.Conv2D(w, 1, activation="sigmoid", name=name("se_fc2"))(s)
    y = layers.Multiply(name=name("se_scale"))([y, s])

    y = bn(conv(y, w, 1, 1, name("conv3_conv")), name("conv3_bn"))
    if w_in != w or stride != 1:
        shortcut = bn(conv(x, w, 1, stride, name("downsample_conv")), name("downsample_bn"))
    y = layers.Add(name=name("add"))([y, shortcut])
    return layers.ReLU(name=name("relu"))(y)
