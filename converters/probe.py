"""Intermediate tensors of a Keras model over the calibration images, batch by batch, through one compiled
function (the float rewrites: converters.equalize, converters.bias_correction, converters.rounding). Calling a
functional model eagerly re-dispatches every layer per batch; one traced function runs the graph several times
faster on the same kernels."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


MEMORY = 512 * 2**20   # bytes of probed tensors per batch: large models and inputs get smaller batches


def batches(model, tensors: list, inputs: np.ndarray, batch: int = 16) -> Iterator[list[np.ndarray]]:
    """For each batch of `inputs`, the values of `tensors` (symbolic outputs of `model`'s layers) as numpy arrays;
    at most `batch` images at a time, fewer when their tensors would take more than MEMORY."""
    import keras
    import tensorflow as tf

    per_image = sum(4 * int(np.prod([d for d in t.shape[1:]])) for t in tensors)
    batch = max(1, min(batch, MEMORY // max(per_image, 1)))
    probe = keras.Model(model.inputs, list(tensors))
    run = tf.function(lambda x: probe(x, training=False), reduce_retracing=True)
    for i in range(0, len(inputs), batch):
        outs = run(tf.constant(inputs[i:i + batch]))
        yield [np.asarray(o) for o in (outs if isinstance(outs, (list, tuple)) else [outs])]
