"""Keras layers that trace to plain TensorFlow ops tf2onnx converts (used by converters.rewrite.TRACE_RULES)."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf


class GraphGroupedConv2D(keras.layers.Conv2D):
    """A grouped Conv2D as one tf.nn.convolution on the grouped kernel (graph mode only), which tf2onnx writes as
    one Conv node with `group` set."""

    def convolution_op(self, inputs, kernel):
        return tf.nn.convolution(inputs, kernel, self.strides, self.padding.upper(), dilations=self.dilation_rate)


class ConstantNormalization(keras.layers.Layer):
    """A Normalization whose statistics are graph constants."""

    def __init__(self, mean, variance, **kwargs):
        super().__init__(**kwargs)
        self.mean = np.asarray(mean, np.float32).reshape(-1)
        self.scale = (1.0 / np.maximum(np.sqrt(np.asarray(variance, np.float32).reshape(-1)), 1e-7)).astype(np.float32)

    def call(self, x):
        return (x - tf.constant(self.mean)) * tf.constant(self.scale)


class ErfGelu(keras.layers.Layer):
    """Exact GELU through erf: TensorFlow writes it with erfc, which ONNX has no op for (ConvNeXt)."""

    def call(self, x):
        return 0.5 * x * (1.0 + tf.math.erf(x * 0.7071067811865476))
