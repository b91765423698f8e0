"""Intermediate tensors of a Keras model over the calibration images, batch by batch, through one compiled
function (the float rewrites: converters.equalize, converters.bias_correction, converters.rounding). Calling a
functional model eagerly re-dispatches every layer per batch; one traced function runs the graph several times
faster on the same kernels."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


MEMORY = 512 * 2**20   # bytes of probed tensors per batch: large models and inputs get smaller batches


def batches(model, tensors: list, inputs: np.ndarray, batch: int = 16, reduce=None) -> Iterator[list[np.ndarray]]:
    """For each batch of `inputs`, the values of `tensors` (symbolic outputs of `model`'s layers) as numpy arrays;
    at most `batch` images at a time, fewer when their tensors would take more than MEMORY.

    reduce: a function run on each tensor inside the traced function (a per-channel sum or maximum): only its
    result leaves the graph, so TensorFlow frees each activation once its consumers have run, instead of holding
    every probed tensor of the batch until the call returns. Measured on EfficientNet-B7 at 600 px with 8 images
    (converters.bias_correction's 274 tensors, one image per batch): the process held 3.8 GB after the probe, most
    of it in TensorFlow's allocator; with the per-channel sums inside the graph it peaks at 2.2 GB."""
    import keras
    import tensorflow as tf

    per_image = sum(4 * int(np.prod([d for d in t.shape[1:]])) for t in tensors)
    batch = max(1, min(batch, MEMORY // max(per_image, 1)))
    probe = keras.Model(model.inputs, list(tensors))

    def call(x):
        outs = probe(x, training=False)
        outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
        return [reduce(o) for o in outs] if reduce else outs

    run = tf.function(call, reduce_retracing=True)
    for i in range(0, len(inputs), batch):
        yield [np.asarray(o) for o in run(tf.constant(inputs[i:i + batch]))]


def per_channel(reduction, dtype=None):
    """A `reduce` for `batches`: `reduction` (e.g. tf.reduce_sum) over every axis but the last (channels), on the
    tensor cast to `dtype` first when given."""
    import tensorflow as tf

    def reduce(tensor):
        tensor = tf.cast(tensor, dtype) if dtype is not None else tensor
        return reduction(tensor, axis=list(range(tensor.shape.rank - 1)))
    return reduce
