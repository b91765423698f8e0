"""Keras layers that trace to plain TensorFlow ops a converter takes as they are (used by converters.rewrite: TRACE_RULES
for tf2onnx, and dense_as_conv)."""

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


class FixedReshape(keras.layers.Layer):
    """Reshape to (batch, *target_shape) through one constant shape (-1, *target_shape). Keras's Reshape reads the
    batch size at run time, which TFLite writes as SHAPE, STRIDED_SLICE and PACK feeding the RESHAPE (ops Arm NN 20.08
    cannot parse); a constant shape is one RESHAPE."""

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        self.target_shape = tuple(int(d) for d in target_shape)

    def call(self, x):
        return tf.reshape(x, (-1, *self.target_shape))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.target_shape)

    def get_config(self):
        return {**super().get_config(), "target_shape": list(self.target_shape)}
