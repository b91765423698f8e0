"""Exact rewrites of grouped convolutions, for runtimes that cannot run them (or run them slowly).

A grouped Conv2D (groups = G) is rewritten, weights and all, into ops every runtime has:

- ``native``:    left as it is (TFLite CONV_2D op version 6, ONNX Conv with ``group``);
- ``split``:     split the input channels into G parts, one plain conv per part, concatenate;
- ``depthwise``: a DepthwiseConv2D, when every group has one input channel (group width 1);
- ``dense``:     one plain conv whose kernel is block-diagonal (G times the MACs, runs everywhere).

Each rewrite computes the same function: the split and depthwise forms do the very same
multiply-adds, the dense form adds exact zeros. Tests hold them to 1e-5 relative on whole models.

A grouped conv with one input channel per group is a depthwise conv written as a grouped one (Keras 3's
ConvNeXt writes its 7x7 convs so); every lowering writes it as a DepthwiseConv2D, which every runtime has.

Depthwise kernels with many taps are a cliff on XNNPACK (LiteRT 2.3.0, this AVX2 machine, 56x56x96, 2 threads):
up to 25 taps it runs fast, from 35 taps on it falls to a slow path, 17x slower than 5x5 for a 7x7 in float32 and
53x in int8 (3.11 vs 0.18 ms; 13.7 vs 0.26 ms), slower than the builtin kernels (benchmarks/depthwise_taps.md).
`split_depthwise_taps` rewrites such a conv as bands of kernel rows, each a small depthwise conv on a slice of the
padded input, summed: the same multiply-adds, exact in float (int8 rounds each band's sum once more).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edge.errors import ConfigError

LOWERINGS = ("native", "split", "depthwise", "dense")


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


def lower_grouped_convs(model, lowering: str):
    """A new model computing the same function with every grouped conv rewritten as `lowering`.

    The original model is not changed. "native" returns the model itself.
    """
    if lowering not in LOWERINGS:
        raise ConfigError(f"unknown grouped-conv lowering {lowering!r}; valid: {', '.join(LOWERINGS)}")
    grouped = grouped_convs(model)
    if lowering == "depthwise":
        wide = [g for g in grouped if g.group_width != 1]
        if wide:
            raise ConfigError(
                f"the depthwise lowering needs group width 1, but {wide[0].name} has group width "
                f"{wide[0].group_width} ({len(wide)} such convs); use split or dense")
    if not any(lowering != "native" or g.group_width == 1 for g in grouped):
        return model
    rewrite: Callable = {"native": None, "split": _split, "depthwise": _depthwise, "dense": _dense}[lowering]

    def replace(layer):
        if not _is_grouped(layer):
            return None
        return _depthwise if layer.kernel.shape[2] == 1 else rewrite

    return _rewritten(model, replace, f"{model.name}_{lowering}")


def _rewritten(model, replace: Callable, name: str):
    """A clone of the functional `model` in which each layer for which replace(layer) gives a function
    f(layer, x) -> y is replaced by the layers f builds (with their weights); the rest keep theirs."""
    import keras

    originals = {layer.name: layer for layer in model.layers if not replace(layer)}

    def clone(layer):
        if replace(layer):
            return layer  # a placeholder: `call` below replaces it, the original is never called
        return layer.__class__.from_config(layer.get_config())

    def call(layer, *args, **kwargs):
        rewrite = replace(layer)
        return rewrite(layer, args[0]) if rewrite else layer(*args, **kwargs)

    lowered = keras.models.clone_model(model, clone_function=clone, call_function=call)
    for layer in lowered.layers:
        source = originals.get(layer.name)
        if source is not None and layer.weights:  # the rewritten layers came with their weights
            layer.set_weights(source.get_weights())
    lowered.name = name
    return lowered


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
    return _rewritten(model, lambda layer: (lambda lay, x: _banded(lay, x, max_taps)) if _splittable(layer, max_taps)
                      else None, f"{model.name}_bands")


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


def _split(layer, x):
    from keras import layers, ops

    kernel, bias = _kernel_and_bias(layer)
    out_per_group = kernel.shape[-1] // layer.groups
    outputs = []
    for i, part in enumerate(ops.split(x, layer.groups, axis=-1)):
        cols = slice(i * out_per_group, (i + 1) * out_per_group)
        conv = _conv_like(layer, out_per_group, f"{layer.name}_g{i}")
        outputs.append(_apply(conv, part, kernel[..., cols], None if bias is None else bias[cols]))
    return layers.Concatenate(axis=-1, name=f"{layer.name}_concat")(outputs)


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


def _dense(layer, x):
    kernel, bias = _kernel_and_bias(layer)
    conv = _conv_like(layer, layer.filters, layer.name)
    return _apply(conv, x, block_diagonal_kernel(kernel, layer.groups), bias)


def restore_grouped_weights(lowered, model) -> None:
    """Copy the weights of `lowered` (any lowering of `model`, e.g. after training it) back into `model`.

    The inverse of `lower_grouped_convs`: split convs are concatenated, depthwise kernels reshaped,
    and dense kernels give back their diagonal blocks (their off-diagonal blocks are dropped).
    """
    names = {layer.name for layer in lowered.layers}
    for layer in model.layers:
        if not _is_grouped(layer):
            if layer.weights:
                layer.set_weights(lowered.get_layer(layer.name).get_weights())
            continue
        kh, kw, cin_g, cout = layer.kernel.shape
        cout_g = cout // layer.groups
        if f"{layer.name}_g0" in names:  # split
            parts = [lowered.get_layer(f"{layer.name}_g{i}").get_weights() for i in range(layer.groups)]
            weights = [np.concatenate([p[0] for p in parts], axis=-1)]
            if layer.use_bias:
                weights.append(np.concatenate([p[1] for p in parts]))
        else:
            weights = lowered.get_layer(layer.name).get_weights()
            kernel = weights[0]
            if kernel.shape[2] == cin_g * layer.groups and kernel.shape[3] == cout:  # dense
                weights[0] = np.concatenate([kernel[:, :, i * cin_g:(i + 1) * cin_g, i * cout_g:(i + 1) * cout_g]
                                             for i in range(layer.groups)], axis=-1)
            else:  # depthwise (kh, kw, G, multiplier) or native
                weights[0] = kernel.reshape(kh, kw, cin_g, cout)
        layer.set_weights(weights)
