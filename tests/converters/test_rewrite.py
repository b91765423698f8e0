"""Grouped-conv lowerings compute the same function as the grouped original."""

import keras
import numpy as np
import pytest
from keras import layers

from converters.rewrite import (LOWERINGS, block_diagonal_kernel, dense_as_conv, dense_layers, grouped_convs,
                               large_depthwise_convs, lower_grouped_convs, restore_grouped_weights,
                               split_depthwise_taps)
from edge.errors import ConfigError
from models.zoo import build_model, model_spec

RTOL = 1e-5  # relative to the largest output magnitude


def randomized(model, seed=0):
    rng = np.random.default_rng(seed)
    weights = []
    for w in model.get_weights():
        r = rng.standard_normal(w.shape).astype(np.float32) * 0.1
        weights.append(np.abs(r) + 0.5 if w.ndim == 1 else r)  # 1-D: BN scales and variances stay positive
    model.set_weights(weights)
    return model


def max_rel_error(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


def has_grouped(model):
    return any(isinstance(l, layers.Conv2D) and l.groups > 1 for l in model.layers)


@pytest.fixture(scope="module", params=["200mf", "800mf"])
def reference(request):
    spec = model_spec(request.param, input_size=64)
    model = randomized(build_model(spec))
    x = np.random.default_rng(1).standard_normal((2, 64, 64, 3)).astype(np.float32)
    return model, x, model.predict(x, verbose=0), spec


@pytest.mark.parametrize("lowering", ["split", "dense"])
def test_whole_model_lowerings_are_exact(reference, lowering):
    model, x, expected, spec = reference
    lowered = lower_grouped_convs(model, lowering)
    assert not has_grouped(lowered) and has_grouped(model)
    assert len(grouped_convs(model)) == sum(s.depth for s in spec.stages)  # one 3x3 grouped conv per block
    assert max_rel_error(lowered.predict(x, verbose=0), expected) <= RTOL
    if lowering == "split":  # the same weights, and the exact zeros of the convs that take several groups (stage 4)
        blocked = [l for l in lowered.layers if getattr(l, "kernel_constraint", None) is not None]
        zeros = sum(np.prod(l.kernel.shape) // l.kernel_constraint.groups * (l.kernel_constraint.groups - 1)
                    for l in blocked)
        assert lowered.count_params() == model.count_params() + zeros


def test_dense_lowering_costs_g_times_the_weights(reference):
    model = reference[0]
    lowered = lower_grouped_convs(model, "dense")
    for g in grouped_convs(model):
        assert lowered.get_layer(g.name).kernel.shape[2] == g.in_channels  # was in_channels / groups
    grouped_kernels = sum(np.prod(model.get_layer(g.name).kernel.shape) * g.groups for g in grouped_convs(model))
    assert lowered.count_params() - model.count_params() == grouped_kernels - sum(
        np.prod(model.get_layer(g.name).kernel.shape) for g in grouped_convs(model))


def test_native_is_the_model_and_regnety_refuses_depthwise(reference):
    model = reference[0]
    assert lower_grouped_convs(model, "native") is model
    with pytest.raises(ConfigError, match="group width 1.*group width (8|16)"):
        lower_grouped_convs(model, "depthwise")
    with pytest.raises(ConfigError, match="valid: native, split, depthwise, dense"):
        lower_grouped_convs(model, "winograd")


@pytest.mark.parametrize("lowering, group_width", [(lowering, 1) for lowering in LOWERINGS]
                         + [(lowering, 2) for lowering in LOWERINGS if lowering != "depthwise"])
@pytest.mark.parametrize("stride, padding", [(1, "same"), (2, "same"), (2, "valid")])
def test_layer_level_every_lowering(lowering, group_width, stride, padding):
    """A grouped conv with bias, odd input size, two outputs per group. Group width 1 is a depthwise conv
    written as a grouped one (Keras 3's ConvNeXt): every lowering, native included, makes it a DepthwiseConv2D."""
    inputs = keras.Input((15, 13, 6))
    outputs = layers.Conv2D(12, 3, strides=stride, padding=padding, groups=6 // group_width, use_bias=True,
                            name="gconv")(inputs)
    model = randomized(keras.Model(inputs, outputs))
    x = np.random.default_rng(2).standard_normal((3, 15, 13, 6)).astype(np.float32)
    lowered = lower_grouped_convs(model, lowering)
    assert max_rel_error(lowered.predict(x, verbose=0), model.predict(x, verbose=0)) <= RTOL
    kinds = {type(l).__name__ for l in lowered.layers}
    assert ("DepthwiseConv2D" in kinds) == (group_width == 1)
    assert has_grouped(lowered) == (lowering == "native" and group_width == 2)
    assert ("Concatenate" in kinds) == (lowering == "split" and group_width == 2)


def test_split_pads_each_group_right_before_its_conv():
    """A grouped conv's explicit zero padding moves after the split, one per group (docs/lowering.md, Arm NN); a
    padded tensor that something else reads keeps its padding layer for that reader."""
    inputs = keras.Input((8, 8, 6))
    padded = layers.ZeroPadding2D(((1, 1), (0, 1)), name="pad")(inputs)
    conv = layers.Conv2D(6, 3, strides=2, groups=3, name="gconv")(padded)
    model = randomized(keras.Model(inputs, conv))
    shared = randomized(keras.Model(inputs, [conv, layers.Conv2D(2, 3, name="other")(padded)]))
    x = np.random.default_rng(4).standard_normal((2, 8, 8, 6)).astype(np.float32)
    for m, keeps_pad in ((model, False), (shared, True)):
        lowered = lower_grouped_convs(m, "split")
        names = [l.name for l in lowered.layers]
        assert [n for n in names if n.startswith("gconv_g") and n.endswith("_pad")] == [f"gconv_g{i}_pad" for i in range(3)]
        assert ("pad" in names) == keeps_pad
        got, want = lowered.predict(x, verbose=0), m.predict(x, verbose=0)
        for a, b in zip(got if keeps_pad else [got], want if keeps_pad else [want]):
            assert max_rel_error(a, b) <= RTOL


def _grouped_bn_relu(groups=6, channels=12, extra_reader=False):
    """pad -> grouped conv (stride 2) -> BN -> ReLU -> 1x1 conv, random weights and BN statistics."""
    inputs = keras.Input((9, 9, channels))
    y = layers.ZeroPadding2D(1, name="pad")(inputs)
    conv = layers.Conv2D(channels, 3, strides=2, groups=groups, use_bias=False, name="gconv")(y)
    bn = layers.BatchNormalization(name="bn")(conv)
    y = layers.Conv2D(4, 1, name="after")(layers.ReLU(name="relu")(bn))
    outputs = [y, layers.Activation("sigmoid", name="other")(bn)] if extra_reader else y
    return randomized(keras.Model(inputs, outputs))


def test_split_moves_the_batch_norm_and_relu_into_each_group_exactly(monkeypatch):
    """The grouped conv's BN and ReLU become one copy per group before the CONCATENATION (where TensorFlow's converter
    folds each BN into its conv, as it cannot through the concatenation): exact in inference and in training."""
    from converters import rewrite as rw

    monkeypatch.setattr(rw, "GROUPS_PER_CONV", ())  # one group per conv
    model = _grouped_bn_relu()
    x = np.random.default_rng(6).standard_normal((4, 9, 9, 12)).astype(np.float32)
    lowered = lower_grouped_convs(model, "split")
    names = [l.name for l in lowered.layers]
    assert "bn" not in names and "relu" not in names
    assert [n for n in names if n.startswith(("bn_g", "relu_g"))] == [f"bn_g{i}" for i in range(6)] + [
        f"relu_g{i}" for i in range(6)]
    assert lowered.count_params() == model.count_params()
    assert max_rel_error(lowered.predict(x, verbose=0), model.predict(x, verbose=0)) <= RTOL
    # training mode: batch statistics are per channel, so the per-group copies compute the same
    assert max_rel_error(np.asarray(lowered(x, training=True)), np.asarray(model(x, training=True))) <= RTOL
    # a BN another layer also reads moves, and the chain ends there: the ReLU stays after the concatenation
    shared = _grouped_bn_relu(extra_reader=True)
    lowered = lower_grouped_convs(shared, "split")
    names = [l.name for l in lowered.layers]
    assert "bn" not in names and "bn_g0" in names and "relu" in names and "relu_g0" not in names
    for a, b in zip(lowered.predict(x, verbose=0), shared.predict(x, verbose=0)):
        assert max_rel_error(a, b) <= RTOL


@pytest.mark.parametrize("per_conv", [2, 3, 4, 6])
def test_blocked_split_is_exact_and_restores(monkeypatch, per_conv):
    """Several groups per conv (a block-diagonal kernel over them; 4 does not divide 6: 3 are taken)."""
    from converters import rewrite as rw

    model = _grouped_bn_relu()
    monkeypatch.setattr(rw, "GROUPS_PER_CONV", ((6, per_conv),))  # convs of at least 6 groups
    lowered = lower_grouped_convs(model, "split")
    taken = 3 if per_conv == 4 else per_conv
    parts = [l for l in lowered.layers if l.name.startswith("gconv_g") and not l.name.endswith("_pad")]
    assert len(parts) == 6 // taken and all(p.kernel.shape[2:] == (2 * taken, 2 * taken) for p in parts)
    x = np.random.default_rng(8).standard_normal((2, 9, 9, 12)).astype(np.float32)
    assert max_rel_error(lowered.predict(x, verbose=0), model.predict(x, verbose=0)) <= RTOL
    target = keras.models.clone_model(model)
    restore_grouped_weights(lowered, target, "split")
    assert max_rel_error(target.predict(x, verbose=0), model.predict(x, verbose=0)) <= RTOL
    # training keeps the blocks' off-diagonal parts exact zeros (a kernel constraint), so it trains the grouped conv
    lowered.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse", jit_compile=False)
    lowered.fit(x, np.ones((2, 5, 5, 4), np.float32), epochs=2, verbose=0)
    restore_grouped_weights(lowered, target, "split")
    assert max_rel_error(target.predict(x, verbose=0), lowered.predict(x, verbose=0)) <= RTOL
    again = dense_as_conv(keras.Model(lowered.inputs, layers.Dense(3, name="head")(lowered.outputs[0])))
    assert again.get_layer(parts[0].name).kernel_constraint.get_config() == {"groups": taken}  # kept by clones


def test_dense_layers_as_1x1_convs_compute_the_same():
    inputs = keras.Input((6, 6, 5))
    y = layers.Dense(7, activation="relu", name="pointwise")(inputs)  # on a feature map: a 1x1 conv as it is
    y = layers.GlobalAveragePooling2D()(y)
    y = layers.Dense(3, name="head")(y)                               # on (N, C): reshaped around the conv
    model = randomized(keras.Model(inputs, y))
    assert dense_layers(model) == ["pointwise", "head"]
    rewritten = dense_as_conv(model)
    assert dense_layers(rewritten) == [] and rewritten.count_params() == model.count_params()
    assert {type(rewritten.get_layer(n)).__name__ for n in ("pointwise", "head")} == {"Conv2D"}
    x = np.random.default_rng(5).standard_normal((3, 6, 6, 5)).astype(np.float32)
    assert max_rel_error(rewritten.predict(x, verbose=0), model.predict(x, verbose=0)) <= RTOL
    assert dense_as_conv(rewritten) is rewritten


@pytest.mark.parametrize("kernel, stride, padding, size", [
    ((7, 7), 1, "same", (15, 13)), ((7, 7), 2, "same", (15, 13)), ((7, 7), 2, "valid", (16, 13)),
    ((9, 5), 1, "same", (12, 12)), ((6, 6), 3, "same", (14, 11))])
def test_depthwise_convs_over_the_tap_limit_become_bands_that_compute_the_same(kernel, stride, padding, size):
    inputs = keras.Input((*size, 4))
    conv = layers.DepthwiseConv2D(kernel, strides=stride, padding=padding, depth_multiplier=2, activation="relu",
                                  name="dw")
    small = layers.DepthwiseConv2D(5, padding="same", name="small")  # 25 taps: left whole
    model = randomized(keras.Model(inputs, small(conv(inputs))))
    assert large_depthwise_convs(model, 25) == ["dw"]
    banded = split_depthwise_taps(model, 25)
    x = np.random.default_rng(3).standard_normal((2, *size, 4)).astype(np.float32)
    assert max_rel_error(banded.predict(x, verbose=0), model.predict(x, verbose=0)) <= RTOL
    convs = [l for l in banded.layers if isinstance(l, layers.DepthwiseConv2D)]
    bands = [l for l in convs if l.name.startswith("dw_rows")]
    assert len(bands) == -(-kernel[0] // (25 // kernel[1]))  # rows of 25 // kw per band
    assert sum(l.kernel_size[0] for l in bands) == kernel[0]
    assert max(l.kernel_size[0] * l.kernel_size[1] for l in convs) <= 25
    assert banded.get_layer("dw").output.shape == conv.output.shape  # the conv's output keeps its name
    assert split_depthwise_taps(model, None) is model and split_depthwise_taps(model, 49 * 2) is model


def test_block_diagonal_kernel_layout():
    kernel = np.arange(1 * 1 * 2 * 6, dtype=np.float32).reshape(1, 1, 2, 6)  # 3 groups, 2 in / 2 out each
    dense = block_diagonal_kernel(kernel, 3)[0, 0]
    assert dense.shape == (6, 6)
    np.testing.assert_array_equal(dense[2:4, 2:4], kernel[0, 0, :, 2:4])
    assert np.count_nonzero(dense[0:2, 2:]) == 0 and np.count_nonzero(dense[2:4, :2]) == 0


@pytest.mark.parametrize("lowering", ["split", "dense"])
def test_weights_trained_in_a_lowering_fold_back_into_the_grouped_model(reference, lowering):
    """What training.reference relies on: train the lowered model, then restore_grouped_weights."""
    model, x, _, _ = reference
    lowered = lower_grouped_convs(model, lowering)
    randomized(lowered, seed=7)  # stands in for training
    for layer in lowered.layers:  # the blocked split convs' constraint, as training applies it after each update
        if getattr(layer, "kernel_constraint", None) is not None:
            layer.kernel.assign(layer.kernel_constraint(layer.kernel))
    if lowering == "dense":  # training keeps the off-diagonal blocks at zero
        for g in grouped_convs(model):
            layer = lowered.get_layer(g.name)
            kernel = layer.kernel.numpy()
            mask = block_diagonal_kernel(np.ones((*g.kernel_size, g.group_width, g.out_channels), np.float32), g.groups)
            layer.kernel.assign(kernel * mask)
    target = keras.models.clone_model(model)
    restore_grouped_weights(lowered, target, lowering)
    assert max_rel_error(target.predict(x, verbose=0), lowered.predict(x, verbose=0)) <= RTOL
