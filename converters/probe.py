"""Intermediate tensors of a Keras model over the calibration images, batch by batch, through one compiled
function (the float rewrites: converters.equalize, converters.bias_correction, converters.rounding). Calling a
functional model eagerly re-dispatches every layer per batch; one traced function runs the graph several times
faster on the same kernels."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


def batches(model, tensors: list, inputs: np.ndarray, batch: int = 16) -> Iterator[list[np.ndarray]]:
    """For each batch of `inputs`, the values of `tensors` (symbolic outputs of `model`'s layers) as numpy arrays."""
    import keras
    import tensorflow as tf

    probe = keras.Model(model.inputs, list(tensors))
    run = tf.function(lambda x: probe(x, training=False), reduce_retracing=True)
    for i in range(0, len(inputs), batch):
        outs = run(tf.constant(inputs[i:i + batch]))
        yield [np.asarray(o) for o in (outs if isinstance(outs, (list, tuple)) else [outs])]
