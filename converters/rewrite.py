"""One rewrite engine for Keras graphs, and the rules it applies: exact lowerings of grouped convolutions,
depthwise row bands, Dense layers as 1x1 convs, and the forms tf2onnx can trace.

The engine: `rewrite(model, rules, name)` clones a functional model, replacing each layer that a `Rule` matches by
the layers its rewrite builds (weights and all). Every rule below is exact in float.

Grouped-conv lowerings, each registered once with its inverse (`LOWERINGS`, `restore_grouped_weights`):

- ``native``:    left as it is (TFLite CONV_2D op version 6, ONNX Conv with ``group``);
- ``split``:     split the input channels into G parts, one plain conv per part, concatenate (axis 3, and a padded
                 conv's PAD moved after the split, one per part: the form Arm NN runs too, docs/lowering.md; the
                 conv's batch norm and ReLU copied into each part, where the TFLite converter folds them; two groups
                 per conv where a conv has many groups, `GROUPS_PER_CONV`);
- ``depthwise``: a DepthwiseConv2D, when every group has one input channel (group width 1);
- ``dense``:     one plain conv whose kernel is block-diagonal (G times the MACs, runs everywhere).

The split and depthwise forms do the very same multiply-adds, the dense form adds exact zeros; tests hold them to
1e-5 relative on whole models. A grouped conv with one input channel per group is a depthwise conv written as a
grouped one (Keras 3's ConvNeXt writes its 7x7 convs so); every lowering writes it as a DepthwiseConv2D.

Depthwise row bands (`split_depthwise_taps`): XNNPACK runs depthwise kernels of more than 25 taps on a slow path
(docs/lowering.md), so such a conv becomes bands of kernel rows, each a small depthwise conv on a slice of the padded
input, summed: the same multiply-adds, exact in float (int8 rounds each band's sum once more).

Dense layers as 1x1 convs (`dense_as_conv`), for the targets whose runtimes take no per-channel int8 FULLY_CONNECTED.

Trace rules (`TRACE_RULES`, `traceable`): grouped convs, Normalization and exact GELU as plain graph ops for tf2onnx.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edge.errors import ConfigError

# A rewrite of one layer: f(layer, x) -> y builds the replacement layers on x (with their weights).
LayerRewrite = Callable[[object, object], object]


@dataclass(frozen=True)
class Rule:
    """Replace each layer that `matches` by what `rewrite` builds; the first matching rule of a list wins."""

    name: str
    matches: Callable[[object], bool]
    rewrite: LayerRewrite


def rewrite(model, rules: list[Rule], name: str):
    """A clone of the functional `model` with each layer a rule matches replaced by what that rule builds (with
    its weights); every other layer is cloned with its own weights. The original model is not changed."""
    import keras

    def rule_for(layer) -> Rule | None:
        return next((r for r in rules if r.matches(layer)), None)

    originals = {layer.name: layer for layer in model.layers if rule_for(layer) is None}

    def clone(layer):
        if rule_for(layer) is not None:
            return layer  # a placeholder: `call` below replaces it, the original is never called
        return layer.__class__.from_config(layer.get_config())

    def call(layer, *args, **kwargs):
        rule = rule_for(layer)
        return rule.rewrite(layer, args[0]) if rule is not None else layer(*args, **kwargs)

    rewritten = keras.models.clone_model(model, clone_function=clone, call_function=call)
    for layer in rewritten.layers:
        source = originals.get(layer.name)
        if source is not None and layer.weights:  # the rewritten layers came with their weights
            layer.set_weights(source.get_weights())
    rewritten.name = name
    return rewritten


# --- grouped-conv lowerings: each registered once, with its inverse ---------------------------------------------

@dataclass(frozen=True)
class Lowering:
    name: str
    rewrite: LayerRewrite | None                      # None: the grouped conv stays as it is
    restore: Callable[[object, object], list]         # (grouped layer, lowered model) -> the grouped layer's weights
    doc: str


LOWERINGS: dict[str, Lowering] = {}


def register_lowering(name: str, doc: str, restore: Callable[[object, object], list]):
    """Register the decorated layer rewrite as the grouped-conv lowering `name`, with its inverse `restore`."""
    def register(fn: LayerRewrite | None):
        LOWERINGS[name] = Lowering(name, fn, restore, doc)
        return fn
    return register


@dataclass(frozen=True)
class GroupedConv:
    name: str
    groups: int
    in_channels: int
    out_channels: int
    kernel_size: tuple[int, int]

    @property
    def group_width(self) -> int:
        return self.in_channels // self.groups


def _is_grouped(layer) -> bool:
    from keras import layers

    return isinstance(layer, layers.Conv2D) and layer.groups > 1


def grouped_convs(model) -> list[GroupedConv]:
    """The model's grouped convolutions, in graph order."""
    found = []
    for layer in model.layers:
        if _is_grouped(layer):
            kh, kw, cin_per_group, cout = layer.kernel.shape
            found.append(GroupedConv(layer.name, layer.groups, cin_per_group * layer.groups, cout, (kh, kw)))
    return found


def get_lowering(name: str) -> Lowering:
    if name not in LOWERINGS:
        raise ConfigError(f"unknown grouped-conv lowering {name!r}; valid: {', '.join(LOWERINGS)}")
    return LOWERINGS[name]


def _lowering_of(layer, name: str) -> Lowering:
    """The lowering a grouped layer gets under `name`: a group width of 1 is always written as a depthwise conv."""
    return LOWERINGS["depthwise"] if layer.kernel.shape[2] == 1 else LOWERINGS[name]


def lower_grouped_convs(model, lowering: str):
    """A new model computing the same function with every grouped conv rewritten as `lowering`.

    The original model is not changed. "native" with no group width of 1 returns the model itself.
    """
    get_lowering(lowering)
    grouped = grouped_convs(model)
    if lowering == "depthwise":
        wide = [g for g in grouped if g.group_width != 1]
        if wide:
            raise ConfigError(
                f"the depthwise lowering needs group width 1, but {wide[0].name} has group width "
                f"{wide[0].group_width} ({len(wide)} such convs); use split or dense")
    if not any(lowering != "native" or g.group_width == 1 for g in grouped):
        return model
    rule = Rule(f"grouped conv -> {lowering}",
                lambda layer: _is_grouped(layer) and _lowering_of(layer, lowering).rewrite is not None,
                lambda layer, x: _lowering_of(layer, lowering).rewrite(layer, x))
    rules = [rule]
    if lowering == "split":  # the per-channel layers after each split conv move into its groups (see _split)
        moved = {m.name for layer in model.layers if _is_grouped(layer) and _lowering_of(layer, lowering) is
                 LOWERINGS["split"] for m in _per_channel_chain(layer)}
        rules.insert(0, Rule("per-channel layer moved into the groups", lambda layer: layer.name in moved,
                             lambda layer, x: x))
    return rewrite(model, rules, f"{model.name}_{lowering}")


def restore_grouped_weights(lowered, model, lowering: str) -> None:
    """Copy the weights of `lowered` (`model` lowered as `lowering`, e.g. then trained) back into `model`: each
    lowering's registered inverse (split convs concatenated, depthwise kernels reshaped, dense kernels' diagonal
    blocks; their off-diagonal blocks are dropped)."""
    get_lowering(lowering)
    names = {layer.name for layer in lowered.layers}
    for layer in model.layers:
        if _is_grouped(layer):
            layer.set_weights(_lowering_of(layer, lowering).restore(layer, lowered))
        elif layer.weights and layer.name not in names:  # a per-channel layer the split moved into its groups
            layer.set_weights([np.concatenate(parts) for parts in zip(*(
                lowered.get_layer(name).get_weights() for name in _part_names(layer.name, names)))])
        elif layer.weights:
            layer.set_weights(lowered.get_layer(layer.name).get_weights())


def _splittable(layer, max_taps: int) -> bool:
    from keras import layers

    if not isinstance(layer, layers.DepthwiseConv2D) or tuple(layer.dilation_rate) != (1, 1):
        return False
    kh, kw = layer.kernel_size
    return kh * kw > max_taps and kw <= max_taps and layer.data_format == "channels_last"


def large_depthwise_convs(model, max_taps: int) -> list[str]:
    """Names of the depthwise convs with more than max_taps taps that `split_depthwise_taps` rewrites."""
    return [layer.name for layer in model.layers if _splittable(layer, max_taps)]


def split_depthwise_taps(model, max_taps: int | None):
    """A new model computing the same function with every depthwise conv of more than max_taps taps written as
    bands of at most max_taps (see the module's docstring). None, or nothing to split: the model itself."""
    if not max_taps or not large_depthwise_convs(model, max_taps):
        return model
    rule = Rule(f"depthwise conv -> bands of {max_taps} taps", lambda layer: _splittable(layer, max_taps),
                lambda layer, x: _banded(layer, x, max_taps))
    return rewrite(model, [rule], f"{model.name}_bands")


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's SAME padding (before, after) along one axis."""
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _banded(layer, x, max_taps: int):
    """A depthwise conv as row bands: pad as the conv would, slice the rows each band sees, convolve VALID, add."""
    from keras import layers

    kernel, bias = _kernel_and_bias(layer)  # (kh, kw, C, multiplier)
    (kh, kw), (sh, sw) = layer.kernel_size, layer.strides
    height, width = x.shape[1], x.shape[2]
    if layer.padding == "same":
        if height is None or width is None:
            raise ConfigError(f"{layer.name}: splitting a {kh}x{kw} depthwise conv needs a fixed input size")
        pad = (_same_padding(height, kh, sh), _same_padding(width, kw, sw))
        if any(pad[0] + pad[1]):
            x = layers.ZeroPadding2D(pad, name=f"{layer.name}_pad")(x)
            height += sum(pad[0])
    out_height = (height - kh) // sh + 1
    rows = max(1, max_taps // kw)
    parts = []
    for top in range(0, kh, rows):
        band = min(rows, kh - top)
        below = height - (top + (out_height - 1) * sh + band)
        sliced = layers.Cropping2D(((top, below), (0, 0)), name=f"{layer.name}_rows{top}_slice")(x)
        conv = layers.DepthwiseConv2D((band, kw), strides=layer.strides, padding="valid",
                                      depth_multiplier=layer.depth_multiplier, use_bias=bias is not None and not parts,
                                      name=f"{layer.name}_rows{top}")
        parts.append(_apply(conv, sliced, kernel[top:top + band], bias if not parts else None))
    linear = getattr(layer.activation, "__name__", "linear") == "linear"
    y = parts[0]
    for i, part in enumerate(parts[1:], 1):
        last = i == len(parts) - 1 and linear  # the conv's output keeps the conv's name
        y = layers.Add(name=layer.name if last else f"{layer.name}_sum{i}")([y, part])
    return y if linear else layers.Activation(layer.activation, name=layer.name)(y)


def _conv_like(layer, filters: int, name: str):
    """A plain Conv2D with the grouped layer's geometry and activation."""
    from keras import layers

    return layers.Conv2D(
        filters, layer.kernel_size, strides=layer.strides, padding=layer.padding, dilation_rate=layer.dilation_rate,
        use_bias=layer.use_bias, activation=layer.activation, name=name)


def _apply(conv, x, kernel: np.ndarray, bias: np.ndarray | None):
    """Call a new layer on x (which builds it), then give it its weights."""
    y = conv(x)
    conv.set_weights([kernel] + ([bias] if bias is not None else []))
    return y


def _kernel_and_bias(layer) -> tuple[np.ndarray, np.ndarray | None]:
    return layer.kernel.numpy(), (layer.bias.numpy() if layer.use_bias else None)


def _weights_of(lowered, layer) -> list:
    return lowered.get_layer(layer.name).get_weights()


def _part_names(name: str, names) -> list[str]:
    """The names `{name}_g0`, `{name}_g1`, ... present in `names`, in order."""
    parts = []
    while f"{name}_g{len(parts)}" in names:
        parts.append(f"{name}_g{len(parts)}")
    return parts


def _restore_split(layer, lowered) -> list:
    """Each part's kernel is `groups per part` groups block-diagonally (one group when not blocked): keep the
    diagonal blocks."""
    names = {lowered_layer.name for lowered_layer in lowered.layers}
    kernels, biases = [], []
    for name in _part_names(layer.name, names):
        weights = lowered.get_layer(name).get_weights()
        cin_g = layer.kernel.shape[2]
        per_part = weights[0].shape[2] // cin_g
        cout_g = weights[0].shape[3] // per_part
        kernels += [weights[0][:, :, i * cin_g:(i + 1) * cin_g, i * cout_g:(i + 1) * cout_g] for i in range(per_part)]
        biases += weights[1:]
    return [np.concatenate(kernels, axis=-1)] + ([np.concatenate(biases)] if layer.use_bias else [])


def _restore_reshaped(layer, lowered) -> list:
    """A native or depthwise kernel (kh, kw, G, multiplier) back to the grouped (kh, kw, cin / G, cout)."""
    weights = _weights_of(lowered, layer)
    weights[0] = weights[0].reshape(layer.kernel.shape)
    return weights


def _restore_dense(layer, lowered) -> list:
    weights = _weights_of(lowered, layer)
    kernel, groups = weights[0], layer.groups
    cin_g, cout_g = layer.kernel.shape[2], layer.kernel.shape[3] // groups
    weights[0] = np.concatenate([kernel[:, :, i * cin_g:(i + 1) * cin_g, i * cout_g:(i + 1) * cout_g]
                                 for i in range(groups)], axis=-1)
    return weights


register_lowering("native", "left as it is (TFLite CONV_2D op version 6, ONNX Conv with group)",
                  _restore_reshaped)(None)


def _zero_padded(x):
    """(the input, the padding) of the channels-last ZeroPadding2D that made x, or (x, None). Reads Keras's own record
    of the op that made a tensor; should that record change, the split form keeps its PAD before the SPLIT (still
    exact; tests/converters/test_rewrite.py notices)."""
    from keras import layers

    history = getattr(x, "_keras_history", None)
    producer = getattr(history, "operation", None)
    if isinstance(producer, layers.ZeroPadding2D) and producer.data_format == "channels_last":
        return producer._inbound_nodes[history.node_index].input_tensors[0], producer.padding
    return x, None


def _single_consumer(layer):
    """The one layer that reads `layer`'s one output, or None."""
    nodes = getattr(layer, "_outbound_nodes", [])
    if len(getattr(layer, "_inbound_nodes", [])) != 1 or len(nodes) != 1:
        return None
    return nodes[0].operation


def _is_per_channel(layer) -> bool:
    """A layer that acts on each channel alone (so it commutes with a channel split): an inference or training
    BatchNormalization over the last axis, a ReLU, an elementwise activation."""
    from keras import layers

    if isinstance(layer, layers.BatchNormalization):
        return layer.axis in (-1, 3) and not getattr(layer, "synchronized", False)
    if type(layer) is layers.Activation:  # elementwise, unless it normalizes over the channels
        return getattr(layer.activation, "__name__", "") not in ("softmax", "log_softmax")
    return type(layer) is layers.ReLU


def _per_channel_chain(layer) -> list:
    """The per-channel layers that follow `layer` one after the other, each the only reader of the one before."""
    chain, current = [], layer
    while (after := _single_consumer(current)) is not None and _is_per_channel(after) \
            and len(after._inbound_nodes) == 1:
        chain.append(after)
        current = after
    return chain


def _per_part(layer, i: int, x, channels: slice):
    """A copy of the per-channel `layer` for the channels `channels` (its part i), called on x."""
    config = dict(layer.get_config(), name=f"{layer.name}_g{i}")
    part = layer.__class__.from_config(config)
    y = part(x)
    if layer.weights:
        part.set_weights([w[channels] for w in layer.get_weights()])
    return y


# Groups per conv of the split form: (fewest groups, groups per conv), the first whose count the grouped conv reaches
# wins; fewer groups than all: one group per conv. Several groups in one plain conv (its kernel block-diagonal over
# them, as the dense form's) trade MACs for fewer, larger ops. Measured on the builtin kernels (RegNetY-200MF,
# benchmarks/portable_ops.md): two groups per conv for stage 4's 46 groups (7x7 maps at 224; 23 convs per layer instead
# of 46) made int8 4% faster and float32 2% slower; more groups per conv, or blocking the layers of 3, 7 or 19 groups,
# was slower (float32 up to 15x per layer). Keyed on the group count, not the map size, so that one model lowered at two
# input sizes (training.reference trains at a low size, then at 224) has the same weights.
GROUPS_PER_CONV: tuple[tuple[int, int], ...] = ((40, 2),)


@functools.cache
def _block_diagonal_constraint():
    """A kernel constraint that keeps a block-diagonal kernel block-diagonal: Keras applies it after every training
    update, so a blocked conv trains as the grouped conv it stands for (the off-diagonal blocks stay exact zeros)."""
    import keras

    @keras.saving.register_keras_serializable(package="converters.rewrite")
    class BlockDiagonal(keras.constraints.Constraint):
        def __init__(self, groups: int):
            self.groups = groups

        def __call__(self, w):
            kh, kw, cin, cout = w.shape
            mask = block_diagonal_kernel(np.ones((kh, kw, cin // self.groups, cout), np.float32), self.groups)
            return w * keras.ops.convert_to_tensor(mask, dtype=w.dtype)

        def get_config(self):
            return {"groups": self.groups}

    return BlockDiagonal


def _groups_per_conv(groups: int) -> int:
    """The groups per conv for a conv of `groups` groups: the largest divisor of `groups` not above the count
    GROUPS_PER_CONV gives it (SPLIT cuts equal parts)."""
    limit = next((k for fewest, k in GROUPS_PER_CONV if groups >= fewest), 1)
    return max(k for k in range(1, min(limit, groups) + 1) if groups % k == 0)


@register_lowering("split", "split the input channels in G parts, one plain conv each, concatenate", _restore_split)
def _split(layer, x):
    """SPLIT on the channel axis written as a positive index (3, not -1), and a grouped conv's explicit zero padding
    moved after the split, one PAD right before each group's conv: Arm NN's TfLiteParser reads the axis as unsigned
    and crashes on -1, and it pads int8 tensors with 0 instead of the zero point unless it folds the PAD into the conv
    it feeds (docs/lowering.md). Both are exact: channels split the same at either index, and padding commutes with
    the split.

    The per-channel layers after the grouped conv (its BatchNormalization and ReLU) move into the groups too, one
    copy per group with that group's channels of their weights, before the CONCATENATION: TensorFlow's converter
    folds a batch norm into the conv right before it, but not through a concatenation, where it stayed as a MUL and
    an ADD. Exact in inference and in training alike (a batch norm's statistics are per channel);
    `restore_grouped_weights` concatenates the copies back.

    Where `GROUPS_PER_CONV` asks for it, each conv takes several consecutive groups (a block-diagonal kernel over
    them): fewer, larger ops for more MACs, exact in float as the dense form."""
    from keras import layers, ops

    kernel, bias = _kernel_and_bias(layer)
    groups = layer.groups
    out_per_group = kernel.shape[-1] // groups
    source, padding = _zero_padded(x)
    per_conv = _groups_per_conv(groups)
    chain = _per_channel_chain(layer)
    outputs = []
    for i, part in enumerate(ops.split(source, groups // per_conv, axis=len(source.shape) - 1)):
        if padding is not None:
            part = layers.ZeroPadding2D(padding, name=f"{layer.name}_g{i}_pad")(part)
        cols = slice(i * per_conv * out_per_group, (i + 1) * per_conv * out_per_group)
        part_kernel = kernel[..., cols]
        conv = _conv_like(layer, per_conv * out_per_group, f"{layer.name}_g{i}")
        if per_conv > 1:
            part_kernel = block_diagonal_kernel(part_kernel, per_conv)
            conv.kernel_constraint = _block_diagonal_constraint()(per_conv)
        y = _apply(conv, part, part_kernel, None if bias is None else bias[cols])
        for after in chain:
            y = _per_part(after, i, y, cols)
        outputs.append(y)
    name = chain[-1].name if chain else layer.name
    return layers.Concatenate(axis=-1, name=f"{name}_concat")(outputs)


@register_lowering("depthwise", "a DepthwiseConv2D, when every group has one input channel", _restore_reshaped)
def _depthwise(layer, x):
    from keras import layers

    kernel, bias = _kernel_and_bias(layer)  # kernel (kh, kw, 1, cout); output channel = group * multiplier + m
    kh, kw, _, cout = kernel.shape
    multiplier = cout // layer.groups
    conv = layers.DepthwiseConv2D(
        layer.kernel_size, strides=layer.strides, padding=layer.padding, dilation_rate=layer.dilation_rate,
        depth_multiplier=multiplier, use_bias=layer.use_bias, activation=layer.activation, name=layer.name)
    return _apply(conv, x, kernel.reshape(kh, kw, layer.groups, multiplier), bias)


def block_diagonal_kernel(kernel: np.ndarray, groups: int) -> np.ndarray:
    """A grouped HWIO kernel (kh, kw, cin / G, cout) as a plain (kh, kw, cin, cout) kernel with zeros off the diagonal."""
    kh, kw, cin_g, cout = kernel.shape
    cout_g = cout // groups
    dense = np.zeros((kh, kw, cin_g * groups, cout), dtype=kernel.dtype)
    for i in range(groups):
        dense[:, :, i * cin_g:(i + 1) * cin_g, i * cout_g:(i + 1) * cout_g] = kernel[..., i * cout_g:(i + 1) * cout_g]
    return dense


@register_lowering("dense", "one plain conv with a block-diagonal kernel (G x the MACs, runs everywhere)",
                   _restore_dense)
def _dense(layer, x):
    kernel, bias = _kernel_and_bias(layer)
    conv = _conv_like(layer, layer.filters, layer.name)
    return _apply(conv, x, block_diagonal_kernel(kernel, layer.groups), bias)


# --- Dense layers as 1x1 convs ----------------------------------------------------------------------------------
# TensorFlow's converter quantizes a full-int8 FULLY_CONNECTED per output channel; Arm NN 20.08 aborts on that
# ("GetBiasTypeFromWeightsType(): Unsupported data type") and NNAPI defines per-channel weights for its convs only.
# A 1x1 CONV_2D computes the same products and is quantized per channel the way every runtime that runs convs takes.

def _is_dense(layer) -> bool:
    from keras import layers

    if type(layer) is not layers.Dense:
        return False
    try:
        return len(layer.input.shape) in (2, 4)
    except (AttributeError, ValueError):  # called more than once: no single input
        return False


def _dense_as_conv(layer, x):
    """(N, C) -> reshape (N, 1, 1, C) -> 1x1 conv -> reshape (N, units); a (N, H, W, C) input needs no reshape."""
    from keras import layers

    from converters.trace_layers import FixedReshape

    kernel, bias = _kernel_and_bias(layer)  # kernel (C, units)
    flat = len(x.shape) == 2
    if flat:
        x = FixedReshape((1, 1, kernel.shape[0]), name=f"{layer.name}_as_map")(x)
    conv = layers.Conv2D(layer.units, 1, activation=layer.activation, use_bias=layer.use_bias, name=layer.name)
    y = _apply(conv, x, kernel[None, None], bias)
    return FixedReshape((layer.units,), name=f"{layer.name}_flat")(y) if flat else y


def dense_layers(model) -> list[str]:
    """Names of the Dense layers `dense_as_conv` rewrites."""
    return [layer.name for layer in model.layers if _is_dense(layer)]


def dense_as_conv(model):
    """A new model computing the same function with every Dense layer (on a (N, C) or (N, H, W, C) input) written as
    a 1x1 Conv2D of the same name (see above). Nothing to rewrite: the model itself. The model keeps its name: TFLite
    writes it into every tensor name, some of which list dozens of ops, so a longer one grows the file (4% in int8)."""
    if not dense_layers(model):
        return model
    return rewrite(model, [Rule("Dense -> 1x1 conv", _is_dense, _dense_as_conv)], model.name)


# --- tracing for tf2onnx ------------------------------------------------------------------------------------------
# Keras 3 runs a grouped Conv2D on CPU through an XLA-compiled wrapper that tf2onnx cannot convert (DESIGN.md), holds
# a Normalization's statistics as captured tensors (which tf2onnx would turn into extra graph inputs), and writes
# exact GELU with erfc, which ONNX has no op for. These rules write each as plain graph ops (converters.trace_layers).

def _is_gelu(layer) -> bool:
    from keras import layers

    return isinstance(layer, layers.Activation) and layer.get_config().get("activation") == "gelu"


def _is_normalization(layer) -> bool:
    from keras import layers

    return isinstance(layer, layers.Normalization)


def _erf_gelu(layer, x):
    from converters.trace_layers import ErfGelu

    return ErfGelu(name=layer.name)(x)


def _constant_normalization(layer, x):
    from converters.trace_layers import ConstantNormalization

    return ConstantNormalization(np.asarray(layer.mean), np.asarray(layer.variance), name=layer.name)(x)


def _graph_grouped_conv(layer, x):
    from converters.trace_layers import GraphGroupedConv2D

    return _apply(GraphGroupedConv2D.from_config(layer.get_config()), x, *_kernel_and_bias(layer))


TRACE_RULES = [
    Rule("exact GELU -> erf", _is_gelu, _erf_gelu),
    Rule("Normalization -> graph constants", _is_normalization, _constant_normalization),
    Rule("grouped conv -> tf.nn.convolution", _is_grouped, _graph_grouped_conv),
]


def traceable(model):
    """The same model, traceable by tf2onnx (graph mode only): TRACE_RULES applied."""
    return rewrite(model, TRACE_RULES, model.name)
