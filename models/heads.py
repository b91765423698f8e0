"""A classifier's head, seen from outside: the pooled features that feed its last Dense layer."""

from __future__ import annotations

from edge.errors import ConfigError


def pooled_features(model):
    """The model up to its classifier: the pooled features that feed the last Dense layer."""
    import keras

    head = model.layers[-1]
    if not isinstance(head, keras.layers.Dense):
        raise ConfigError(f"{model.name} does not end in a Dense classifier; it has no head to remove")
    return keras.Model(model.inputs, head.input, name=f"{model.name}_features")
