"""The registry: which RegNetY variants and flavours exist, their preprocessing, and `build_model`.

Everything a caller needs to name a model goes through here, so an unknown name fails in one place
with a message that lists the valid ones.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from edge.errors import ConfigError
from edge.preprocessing import PreprocessSpec
from models.regnety import DesignParams, Flavour, Naming, Stage, build_regnety, stage_plan

# pycls / timm RegNetY design points (w0, wa, wm, depth, group width); all SE ratio 0.25, stem 32.
VARIANTS: dict[str, DesignParams] = {
    "200mf": DesignParams(w0=24, wa=36.44, wm=2.49, depth=13, group_width=8),
    "400mf": DesignParams(w0=48, wa=27.89, wm=2.09, depth=16, group_width=8),
    "600mf": DesignParams(w0=48, wa=32.54, wm=2.32, depth=15, group_width=16),
    "800mf": DesignParams(w0=56, wa=38.84, wm=2.4, depth=14, group_width=16),
    "1.6gf": DesignParams(w0=48, wa=20.71, wm=2.65, depth=27, group_width=24),
    "3.2gf": DesignParams(w0=80, wa=42.63, wm=2.66, depth=21, group_width=24),
    "4.0gf": DesignParams(w0=96, wa=31.41, wm=2.24, depth=22, group_width=64),
    "6.4gf": DesignParams(w0=112, wa=33.22, wm=2.27, depth=25, group_width=72),
    "8.0gf": DesignParams(w0=192, wa=76.82, wm=2.19, depth=17, group_width=56),
    "12gf": DesignParams(w0=168, wa=73.36, wm=2.37, depth=19, group_width=112),
    "16gf": DesignParams(w0=200, wa=106.23, wm=2.48, depth=18, group_width=112),
    "32gf": DesignParams(w0=232, wa=115.89, wm=2.53, depth=20, group_width=232),
}

# timm model names, for users who bring timm/pycls checkpoints.
TIMM_NAMES = {
    "200mf": "regnety_002", "400mf": "regnety_004", "600mf": "regnety_006", "800mf": "regnety_008",
    "1.6gf": "regnety_016", "3.2gf": "regnety_032", "4.0gf": "regnety_040", "6.4gf": "regnety_064",
    "8.0gf": "regnety_080", "12gf": "regnety_120", "16gf": "regnety_160", "32gf": "regnety_320",
}

PAPER = Flavour(
    name="paper",
    description="RegNetY as in the paper, pycls and timm; loads timm/pycls state_dicts",
    # Layer names are timm's module paths with "." written as "_" (s1.b1.conv1.conv -> s1_b1_conv1_conv).
    naming=Naming(block_prefix="s{s}_b{b}_", index_base=1),
    se_basis="input",
    stem_padding="symmetric",
    stride2_padding="symmetric",
    # timm's pycls weights: resize shorter side to 224/0.875 (bicubic), centre crop 224, ImageNet mean/std.
    preprocessing=PreprocessSpec(resize="shorter_side", crop_fraction=0.875, interpolation="bicubic"),
)

SEED = Flavour(
    name="seed",
    description="the seed TensorFlow implementation (TF Hub regnetyNNNmf_classification): [0,255] input "
                "of any size, resized to 224 and normalized inside the model",
    naming=Naming(
        block_prefix="Stage_{s}_YBlock_{b}_",
        index_base=0,
        roles={
            "conv1_conv": "conv1x1_1", "conv1_bn": "bn1x1_1", "conv1_relu": "relu1x1_1",
            "conv2_conv": "conv3x3", "conv2_bn": "bn3x3", "conv2_relu": "relu3x3",
            "se_pool": "_global_avg_pool", "se_fc1": "_squeeze_conv", "se_fc2": "_excite_conv",
            "se_scale": "_se_scale",
            "conv3_conv": "conv1x1_2", "conv3_bn": "bn1x1_2",
            "downsample_conv": "conv_skip", "downsample_bn": "bn_skip",
            "stem_conv": "Stem_conv3x3", "stem_bn": "Stem_bn", "stem_relu": "Stem_relu",
            "head_pool": "Head_global_avg_pool", "head_fc": "Head_fc",
            "preprocess_resize": "prestem_resize", "preprocess_normalize": "prestem_normalize",
        },
    ),
    se_basis="output",
    stem_padding="valid",
    stride2_padding="same",
    preprocessing=PreprocessSpec(resize="stretch", crop_fraction=1.0, interpolation="bilinear",
                                 normalize_in_model=True, resize_in_model=True),
    variants=("200mf", "400mf", "600mf", "800mf"),
    stage_depths={"400mf": (1, 3, 3, 6)},
    # The seed's Stem layer leaves its conv and BN unnamed, so Keras called them conv2d and batch_normalization.
    weight_aliases={"Stem/conv2d": "Stem_conv3x3", "Stem/batch_normalization": "Stem_bn"},
)

FLAVOURS: dict[str, Flavour] = {f.name: f for f in (PAPER, SEED)}


@dataclass(frozen=True)
class ModelSpec:
    """Everything that names one buildable model: variant, flavour, head, input, preprocessing."""

    variant: str
    flavour: Flavour
    design: DesignParams
    stages: list[Stage]
    preprocessing: PreprocessSpec
    num_classes: int = 1000
    include_head: bool = True
    input_shape: tuple[int | None, int | None] = (224, 224)

    @property
    def name(self) -> str:
        suffix = "" if self.flavour is PAPER else f"_{self.flavour.name}"
        head = "" if self.include_head else "_features"
        return f"regnety_{self.variant.replace('.', '_')}{suffix}{head}"


def get_flavour(name: str) -> Flavour:
    try:
        return FLAVOURS[name]
    except KeyError:
        raise ConfigError(f"unknown flavour {name!r}; valid flavours: {', '.join(FLAVOURS)}") from None


def get_design(variant: str) -> DesignParams:
    try:
        return VARIANTS[variant.lower()]
    except KeyError:
        raise ConfigError(f"unknown variant {variant!r}; valid variants: {', '.join(VARIANTS)}") from None


def model_spec(
    variant: str,
    flavour: str = "paper",
    *,
    num_classes: int = 1000,
    include_head: bool = True,
    input_size: int | tuple[int, int] | None = 224,
    normalize_in_model: bool | None = None,
) -> ModelSpec:
    """Resolve names and options into a ModelSpec, validating each."""
    fl = get_flavour(flavour)
    design = get_design(variant)
    variant = variant.lower()
    if fl.variants is not None and variant not in fl.variants:
        raise ConfigError(f"the {fl.name} flavour has no variant {variant!r}; its variants: {', '.join(fl.variants)}")
    if num_classes < 1:
        raise ConfigError(f"number of classes must be at least 1, got {num_classes}")
    if input_size is None:
        if not fl.preprocessing.resize_in_model:
            raise ConfigError(f"the {fl.name} flavour needs a fixed input size; pass e.g. 224")
        shape: tuple[int | None, int | None] = (None, None)
    else:
        shape = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)  # type: ignore[assignment]
        if len(shape) != 2 or min(shape) < 32:  # type: ignore[type-var]
            raise ConfigError(f"input size must be at least 32x32 (five stride-2 stages), got {input_size}")
    pre = fl.preprocessing
    if not pre.resize_in_model and input_size is not None:
        pre = replace(pre, height=shape[0], width=shape[1])
    if normalize_in_model is not None:
        pre = replace(pre, normalize_in_model=normalize_in_model)
    stages = stage_plan(design, fl.stage_depths.get(variant))
    return ModelSpec(variant, fl, design, stages, pre, num_classes, include_head, shape)


def build_model(spec: ModelSpec):
    """Build the Keras model a ModelSpec describes (random weights; see models.weights to load some)."""
    return build_regnety(
        spec.stages,
        spec.flavour,
        preprocessing=spec.preprocessing,
        stem_width=spec.design.stem_width,
        se_ratio=spec.design.se_ratio,
        num_classes=spec.num_classes,
        include_head=spec.include_head,
        input_shape=spec.input_shape,
        name=spec.name,
    )
