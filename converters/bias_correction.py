"""Bias correction of weight quantization (Nagel et al. 2019, section 4.2, empirical form).

Quantizing a conv's weights (BN folded in, per output channel, symmetric int8, as TFLiteConverter and ONNX
Runtime do) moves each output channel's mean by E[(W_q - W) x] = sum over taps and input channels of
(W_q - W) * E[x_in]. With the input channels' means measured on the calibration images, that shift is subtracted
from the float bias (the BatchNormalization's beta, or the conv's own bias), so the quantized layer's output mean
is the float layer's again. Unlike equalization this changes the float model on purpose (by the shift, a small
fraction of each channel's spread); `BiasCorrected.max_shift` records how far.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

LEVELS = 127  # symmetric int8 weights: [-127, 127]


@dataclass
class BiasCorrected:
    model: object
    layers: list[str] = field(default_factory=list)   # the convs whose bias absorbed a correction
    max_shift: float = 0.0                             # the largest correction, relative to that bias's range


def _folded(layer, bn, weights) -> np.ndarray:
    kernel = np.asarray(weights[layer.name][0], np.float64)
    if bn is None:
        return kernel
    from converters.equalize import bn_scale

    gamma, _, _, var = weights[bn.name][:4]
    factor = bn_scale(bn, gamma, var)
    if kernel.ndim == 4 and layer.__class__.__name__ == "DepthwiseConv2D":
        return kernel * factor.reshape(kernel.shape[2], kernel.shape[3])
    return kernel * factor


def quantization_error(kernel: np.ndarray) -> np.ndarray:
    """W_q - W for per-output-channel (last axis) symmetric int8 quantization."""
    scale = np.abs(kernel).reshape(-1, kernel.shape[-1]).max(axis=0) / LEVELS
    scale = np.where(scale > 0, scale, 1.0)
    return np.round(kernel / scale) * scale - kernel


def output_shift(layer, delta: np.ndarray, mean_in: np.ndarray) -> np.ndarray:
    import keras

    if delta.ndim == 2:  # Dense (in, out)
        return mean_in @ delta
    if isinstance(layer, keras.layers.DepthwiseConv2D):  # (kh, kw, in, multiplier) -> out = in * multiplier
        return (delta.sum(axis=(0, 1)) * mean_in[:, None]).reshape(-1)
    groups = getattr(layer, "groups", 1)
    gin, out = delta.shape[2], delta.shape[3]
    per_tap = delta.sum(axis=(0, 1))  # (gin, out)
    gout = out // groups
    shift = np.empty(out)
    for g in range(groups):
        shift[g * gout:(g + 1) * gout] = mean_in[g * gin:(g + 1) * gin] @ per_tap[:, g * gout:(g + 1) * gout]
    return shift


def target_layers(model) -> list[tuple]:
    """(layer, its BatchNormalization or None, the layer feeding it) for every conv / depthwise conv / dense layer
    with one input and a bias to adjust (its own, or the BatchNormalization's beta right after it)."""
    import keras

    from converters.equalize import layer_graph

    inputs_of, consumers = layer_graph(model)
    found = []
    kinds = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)
    for layer in model.layers:
        if not isinstance(layer, kinds) or not inputs_of.get(layer.name) or len(inputs_of[layer.name]) != 1:
            continue
        users = consumers[layer.name]
        bn = users[0] if len(users) == 1 and isinstance(users[0], keras.layers.BatchNormalization) and \
            users[0].center and users[0].scale and users[0].axis in (-1, 3) else None
        if bn is None and not layer.use_bias:
            continue
        found.append((layer, bn, inputs_of[layer.name][0]))
    return found


def correct_biases(model, inputs: np.ndarray, batch: int = 16) -> BiasCorrected:
    """A copy of `model` whose conv / dense biases absorb the mean shift of their weights' int8 quantization."""
    import keras
    import tensorflow as tf

    from converters.probe import batches, per_channel

    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    found = target_layers(clone)
    if not found:
        return BiasCorrected(clone)
    unique = list({source.name: source for _, _, source in found}.values())
    sums = {s.name: 0.0 for s in unique}
    for outs in batches(clone, [s.output for s in unique], inputs, batch, per_channel(tf.reduce_sum, tf.float64)):
        for s, out in zip(unique, outs):
            sums[s.name] = sums[s.name] + out
    weights = {layer.name: layer.get_weights() for layer in clone.layers}
    corrected, worst = [], 0.0
    for layer, bn, source in found:
        shape = source.output.shape
        positions = len(inputs) * int(np.prod([d for d in shape[1:-1]]))
        mean_in = sums[source.name] / positions
        kernel = _folded(layer, bn, weights)
        if isinstance(layer, keras.layers.DepthwiseConv2D):  # quantized per output channel: in * multiplier
            delta = quantization_error(kernel.reshape(*kernel.shape[:2], -1)).reshape(kernel.shape)
        else:
            delta = quantization_error(kernel)
        shift = output_shift(layer, delta, mean_in)
        if bn is not None:
            beta = np.asarray(weights[bn.name][1], np.float64)
            weights[bn.name][1] = (beta - shift).astype(weights[bn.name][1].dtype)
            span = np.ptp(beta) or 1.0
        else:
            bias = np.asarray(weights[layer.name][1], np.float64)
            weights[layer.name][1] = (bias - shift).astype(weights[layer.name][1].dtype)
            span = np.ptp(bias) or 1.0
        worst = max(worst, float(np.abs(shift).max() / span))
        corrected.append(layer.name)
    for layer in clone.layers:
        if weights[layer.name]:
            layer.set_weights(weights[layer.name])
    return BiasCorrected(clone, corrected, worst)
