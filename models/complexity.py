"""Parameter and multiply-accumulate counts, read off a built Keras model.

MACs are counted from each layer's actual shapes (convolutions, grouped and depthwise included, and
dense layers; the bias adds, normalizations and activations are not MACs), so they follow whatever
the builder really made rather than a table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Complexity:
    trainable_params: int
    total_params: int  # + BN moving statistics and other non-trainable state
    macs: int

    def as_dict(self) -> dict[str, int]:
        return {"trainable_params": self.trainable_params, "total_params": self.total_params, "macs": self.macs}


def count_params(model) -> tuple[int, int]:
    trainable = sum(math.prod(v.shape) for v in model.trainable_weights)
    total = sum(math.prod(v.shape) for v in model.weights)
    return trainable, total


def _leaf_layers(model):
    """The model's layers, with those of nested models (Keras 3's ConvNeXt nests its stem and downsampling
    layers in Sequential models) in place of the nested model."""
    for layer in model.layers:
        if getattr(layer, "layers", None):
            yield from _leaf_layers(layer)
        else:
            yield layer


def count_macs(model) -> int:
    """Multiply-accumulates for one image at the model's input size (which must be fixed)."""
    from keras import layers

    macs = 0
    for layer in _leaf_layers(model):
        if isinstance(layer, (layers.Conv2D, layers.DepthwiseConv2D, layers.Dense)):
            out_shape = layer.output.shape
            if any(d is None for d in out_shape[1:]):
                raise ValueError(f"layer {layer.name} has a dynamic output shape {out_shape}; build with a fixed input size")
            positions = math.prod(out_shape[1:-1])  # H*W for convs, 1 for dense
            # The kernel holds one weight per MAC at each position: kh*kw*(cin/groups)*cout for a
            # (grouped) conv, kh*kw*cin*multiplier for a depthwise conv, in*out for a dense layer.
            macs += positions * math.prod(layer.kernel.shape)
    return macs


def complexity(model) -> Complexity:
    trainable, total = count_params(model)
    return Complexity(trainable, total, count_macs(model))
