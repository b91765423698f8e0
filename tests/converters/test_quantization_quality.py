"""int8 calibration methods (converters.int8_calibration): cross-layer equalization is exact in float, finds the
pairs it claims and no others, falls back loudly where it cannot run; the --calibration option reaches the file's
record. Measured quality is in docs/drift.md ("int8 calibration methods")."""

from types import SimpleNamespace

import numpy as np
import pytest

from edge.errors import ConfigError


def _randomize(model, seed: int = 0) -> None:
    """Seeded random weights with non-trivial BatchNorm statistics (fresh BNs would make equalization trivial)."""
    import keras

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        if isinstance(layer, keras.layers.BatchNormalization):
            c = weights[0].shape[0]
            weights = [rng.uniform(0.2, 3.0, c) * rng.choice([-1, 1], c, p=[0.1, 0.9]), rng.normal(0, 0.5, c),
                       rng.normal(0, 0.5, c), rng.uniform(0.1, 4.0, c)]
        else:
            weights = [rng.normal(0, 1.0 / np.sqrt(max(1, w[..., 0].size)), w.shape)
                       * rng.uniform(0.1, 3.0, w.shape[-1]) if w.ndim > 1 else rng.normal(0, 0.3, w.shape)
                       for w in weights]
        layer.set_weights([w.astype(np.float32) for w in weights])


@pytest.fixture(scope="module")
def small_regnety():
    import keras

    from models.regnety import Stage, build_regnety
    from models.zoo import FLAVOURS

    keras.utils.set_random_seed(0)
    flavour = FLAVOURS["paper"]
    model = build_regnety([Stage(1, 16, 8), Stage(2, 32, 8)], flavour, preprocessing=flavour.preprocessing,
                          stem_width=8, num_classes=5, input_shape=(32, 32), name="tiny_regnety")
    _randomize(model)
    return model


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(1).normal(0, 1, (24, 32, 32, 3)).astype(np.float32)


def _relative_error(a, b) -> float:
    return float(np.abs(np.asarray(a) - np.asarray(b)).max() / np.abs(np.asarray(b)).max())


def test_equalization_finds_each_blocks_pairs_and_the_residual_streams(small_regnety):
    from converters.equalize import find_pairs

    pairs, skipped = find_pairs(small_regnety)
    by_conv = {p.conv: p for p in pairs}
    # stem -> (conv1, downsample); per block conv1 -> grouped conv2, conv2 -> (conv3, SE fc1): 1 + 2 * 3 blocks;
    # one residual stream per stage: 2
    assert len(pairs) == 9 and not skipped
    assert by_conv["stem_conv"].consumers == ["s1_b1_conv1_conv", "s1_b1_downsample_conv"]
    assert by_conv["s2_b2_conv1_conv"].consumers == ["s2_b2_conv2_conv"]
    se = by_conv["s2_b2_conv2_conv"]
    assert sorted(se.consumers) == ["s2_b2_conv3_conv", "s2_b2_se_fc1"] and se.main == ["s2_b2_conv3_conv"]
    # stage 1's stream: its conv3 and downsample scale together, stage 2's first convs compensate
    s1 = by_conv["s1_b1_conv3_conv"]
    assert s1.more == [("s1_b1_downsample_conv", "s1_b1_downsample_bn")]
    assert s1.consumers == ["s2_b1_conv1_conv", "s2_b1_downsample_conv"]
    # stage 2's stream runs through the identity shortcut into block 2's Add, and ends in the pooled head
    s2 = next(p for p in pairs if ("s2_b2_conv3_conv", "s2_b2_conv3_bn") in p.producers)
    assert {c for c, _ in s2.producers} == {"s2_b1_conv3_conv", "s2_b1_downsample_conv", "s2_b2_conv3_conv"}
    assert sorted(s2.consumers) == ["head_fc", "s2_b2_conv1_conv"] and s2.main == ["s2_b2_conv1_conv"]


@pytest.mark.parametrize("activation_aware", [False, True])
def test_equalization_is_exact_in_float_and_changes_the_weights(small_regnety, images, activation_aware):
    from converters.equalize import activation_ranges, equalize

    ranges = activation_ranges(small_regnety, images) if activation_aware else None
    result = equalize(small_regnety, ranges=ranges)
    assert result.pairs == 9
    before, after = small_regnety.predict(images, verbose=0), result.model.predict(images, verbose=0)
    assert _relative_error(after, before) < 1e-5
    gamma = lambda m: m.get_layer("s2_b2_conv1_bn").get_weights()[0]  # noqa: E731
    assert not np.allclose(gamma(result.model), gamma(small_regnety))  # it did rescale
    # the grouped conv's input channels took the inverse scales
    assert not np.allclose(result.model.get_layer("s2_b2_conv2_conv").get_weights()[0],
                           small_regnety.get_layer("s2_b2_conv2_conv").get_weights()[0])


def test_weight_equalization_balances_the_ranges(small_regnety):
    from converters.equalize import _input_slices, equalize

    model = equalize(small_regnety).model
    conv1 = model.get_layer("s2_b2_conv1_conv").get_weights()[0]
    gamma, _, _, var = model.get_layer("s2_b2_conv1_bn").get_weights()
    r1 = np.abs(conv1).reshape(-1, conv1.shape[-1]).max(0) * np.abs(gamma) / np.sqrt(var + 1e-5)
    conv2 = model.get_layer("s2_b2_conv2_conv")
    kernel = conv2.get_weights()[0]
    index = _input_slices(conv2, kernel)
    r2 = np.array([np.abs(kernel[index(c)]).max() for c in range(len(r1))])
    np.testing.assert_allclose(r1, r2, rtol=1e-3)  # both sides of the ReLU now span the same range


def test_a_model_without_pairs_is_left_as_it_is_and_the_fallback_is_named():
    import keras

    from converters.equalize import equalize
    from converters.int8_calibration import ONNX_DEFAULT, equalized_lowered

    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.DepthwiseConv2D(3, padding="same")(keras.layers.Conv2D(8, 1)(inputs))
    x = keras.layers.LayerNormalization()(x)
    x = keras.layers.Conv2D(8, 1, activation="gelu")(x)
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(x)))
    assert equalize(model).pairs == 0
    logged = []
    calibration = SimpleNamespace(inputs=np.random.default_rng(0).normal(0, 1, (2, 16, 16, 3)).astype(np.float32))
    job = SimpleNamespace(reference=SimpleNamespace(model=model), log=logged.append,
                          plan=SimpleNamespace(calibration=calibration))
    lowered = object()
    same, record = equalized_lowered(lowered, job, "equalize+percentile", ONNX_DEFAULT)
    assert same is lowered
    assert (record.method, record.used, record.equalized_pairs) == ("equalize+percentile", "percentile", 0)
    assert "no conv -> ReLU -> conv pair" in record.note and "fell back to percentile" in record.note
    assert logged and logged[0].startswith("WARNING")
    # a SavedModel reference has no Keras layers: the same
    saved_model = SimpleNamespace(reference=SimpleNamespace(), log=logged.append)
    _, record = equalized_lowered(lowered, saved_model, "equalize", ONNX_DEFAULT)
    assert record.used == "minmax" and "Keras model" in record.note


@pytest.mark.parametrize("kind", ["conv", "grouped", "depthwise", "conv+bn", "dense"])
def test_bias_correction_restores_each_channels_mean_under_int8_weights(kind):
    """With the corrected bias and int8-rounded (BN-folded) weights, each output channel's mean over the calibration
    images is the float model's again (exact by linearity when every tap sees the channel means: 'valid' padding,
    inputs constant over space)."""
    import keras

    from converters.bias_correction import correct_biases, quantization_error

    keras.utils.set_random_seed(3)
    inputs = keras.Input((6, 6, 8))
    if kind == "dense":
        layer = keras.layers.Dense(5)
        out = layer(keras.layers.GlobalAveragePooling2D()(inputs))
    elif kind == "depthwise":
        layer = keras.layers.DepthwiseConv2D(3, depth_multiplier=2)
        out = layer(inputs)
    else:
        layer = keras.layers.Conv2D(8, 3, groups=4 if kind == "grouped" else 1, use_bias=kind != "conv+bn")
        out = layer(inputs)
    if kind == "conv+bn":
        out = keras.layers.BatchNormalization(epsilon=1e-3)(out)
    model = keras.Model(inputs, out)
    _randomize(model, seed=4)
    # post-ReLU-like (mean far from 0), constant over space so that every tap of a 3x3 window sees the same mean
    x = np.broadcast_to(np.random.default_rng(5).uniform(0, 2, (12, 1, 1, 8)), (12, 6, 6, 8)).astype(np.float32)
    fixed = correct_biases(model, x)
    assert fixed.layers == [layer.name]
    # the corrected model with its weights rounded as int8 quantization rounds them (BN folded into the conv)
    kernel = fixed.model.get_layer(layer.name).get_weights()[0].astype(np.float64)
    if kind == "conv+bn":
        gamma, beta, mean, var = (w.astype(np.float64) for w in fixed.model.layers[-1].get_weights())
        factor = gamma / np.sqrt(var + 1e-3)
        conv = keras.layers.Conv2D(8, 3, use_bias=True)
        conv.build((None, 6, 6, 8))
        k = kernel * factor
        conv.set_weights([(k + quantization_error(k)).astype(np.float32), (beta - mean * factor).astype(np.float32)])
        quantized_out = np.asarray(conv(x), np.float64)
    else:
        shape = (kernel.shape[2], kernel.shape[3]) if kind == "depthwise" else None
        flat = kernel.reshape(*kernel.shape[:2], -1) if kind == "depthwise" else kernel
        rounded = flat + quantization_error(flat)
        weights = fixed.model.get_layer(layer.name).get_weights()
        weights[0] = (rounded.reshape(kernel.shape) if shape else rounded).astype(np.float32)
        quantized = keras.models.clone_model(fixed.model)
        quantized.set_weights(fixed.model.get_weights())
        quantized.get_layer(layer.name).set_weights(weights)
        quantized_out = np.asarray(quantized(x), np.float64)
    float_out = np.asarray(model(x), np.float64)
    channel_mean = lambda y: y.reshape(-1, y.shape[-1]).mean(0)  # noqa: E731
    spread = float_out.std()
    np.testing.assert_allclose(channel_mean(quantized_out), channel_mean(float_out), atol=1e-5 * spread + 1e-6)
    # and without the correction the int8 weights do move the means (the test has teeth)
    assert np.abs(channel_mean(float_out) - channel_mean(np.asarray(fixed.model(x)))).max() > 1e-4 * spread


def test_a_stream_with_an_input_that_cannot_scale_is_not_equalized():
    """ReLU -> Add with the model's input (no producer to scale it alike): the scale could not pass the Add."""
    import keras

    from converters.equalize import find_pairs

    inputs = keras.Input((8, 8, 4))
    y = keras.layers.ReLU()(keras.layers.Conv2D(4, 1)(inputs))
    out = keras.layers.Conv2D(4, 1)(keras.layers.Add()([y, inputs]))
    pairs, skipped = find_pairs(keras.Model(inputs, out))
    assert pairs == [] and len(skipped) == 1


def test_a_feature_extractor_keeps_its_output_unscaled(images):
    """--head none: the last stage's stream ends in the model's output, so it is not equalized (the rest is)."""
    import keras

    from converters.equalize import equalize
    from models.regnety import Stage, build_regnety
    from models.zoo import FLAVOURS

    keras.utils.set_random_seed(0)
    flavour = FLAVOURS["paper"]
    model = build_regnety([Stage(1, 16, 8), Stage(2, 32, 8)], flavour, preprocessing=flavour.preprocessing,
                          stem_width=8, include_head=False, input_shape=(32, 32), name="tiny_features")
    _randomize(model)
    result = equalize(model)
    assert result.pairs == 8 and any("s2_b1_conv3_conv" in reason for reason in result.skipped)
    assert _relative_error(result.model.predict(images, verbose=0), model.predict(images, verbose=0)) < 1e-5


def test_equalization_scales_a_residual_stream_exactly():
    """conv+BN -> Add <- conv+BN -> ReLU -> conv: both producers take the same channel scales."""
    import keras

    from converters.equalize import equalize

    keras.utils.set_random_seed(2)
    inputs = keras.Input((8, 8, 4))
    a = keras.layers.BatchNormalization()(keras.layers.Conv2D(6, 3, padding="same", use_bias=False)(inputs))
    b = keras.layers.BatchNormalization()(keras.layers.Conv2D(6, 1, use_bias=False)(inputs))
    y = keras.layers.ReLU()(keras.layers.Add()([a, b]))
    model = keras.Model(inputs, keras.layers.Conv2D(3, 3)(y))
    _randomize(model, seed=7)
    x = np.random.default_rng(8).normal(0, 1, (4, 8, 8, 4)).astype(np.float32)
    result = equalize(model)
    assert result.pairs == 1
    assert _relative_error(result.model.predict(x, verbose=0), model.predict(x, verbose=0)) < 1e-5


def test_calibration_option_is_checked_per_format():
    from converters import onnx as onnx_conv
    from converters import tflite

    with pytest.raises(ConfigError, match="--calibration"):
        tflite.TFLiteOptions(calibration="percentile").check("int8")
    with pytest.raises(ConfigError, match="needs --int8"):
        tflite.TFLiteOptions(calibration="equalize").check("float32")
    onnx_conv.OnnxOptions(calibration="equalize+percentile").check("int8")
    with pytest.raises(ConfigError, match="needs --int8"):
        onnx_conv.OnnxOptions(calibration="percentile").check("float32")


def test_equalized_tflite_int8_records_its_method_and_stays_close(tmp_path, small_regnety, images):
    """The small model end to end: --calibration equalize converts, runs, and names itself in the record."""
    from calibration.representative import Prepared
    from converters import tflite
    from converters.reference import KerasReference, ModelIdentity
    from edge.preprocessing import PreprocessSpec
    from tests.artifacts import plan

    reference = KerasReference(small_regnety, ModelIdentity("tiny_regnety", "tiny", "paper", 5),
                               PreprocessSpec(32, 32), [f"c{i}" for i in range(5)],
                               {"path": None, "description": "seeded random"})
    calib = Prepared("random", images[:16], [f"c{i}" for i in range(16)], [None] * 16, "calib")
    val = Prepared("random", images[16:], [f"v{i}" for i in range(8)], [None] * 8, "val")
    p = plan(tmp_path / "eq.tflite", "int8", calibration=calib)
    p.allow_drift = True  # random weights: the record, not the budget, is under test here
    result = tflite.convert(reference, p, val, calibration="equalize", log=lambda m: None)
    assert result.metadata["calibration_method"] == {"method": "equalize", "used": "equalize", "equalized_pairs": 9,
                                                     "bias_corrected": 0, "rounded_layers": 0}
    assert result.drift.sqnr_db > 15


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_the_reference_default_int8_holds_its_measured_quality(converted, fmt):
    """The session's default int8 files of the reference checkpoint (equalize+gptq+mse; 64 calibration crops, 176
    held-out crops) at >= 35 dB logit SQNR, 2 dB past the best peer toolchain (litert-torch, 33.0 dB). With the
    CLI's 128 crops: TFLite 35.5 dB, ONNX 35.2 dB, against 32.1 / 32.6 dB for min/max
    (benchmarks/int8_calibration_200mf.md)."""
    from converters.int8_calibration import ONNX_DEFAULT, TFLITE_DEFAULT

    _, result = converted("int8", fmt)
    method = result.metadata["calibration_method"]
    default = TFLITE_DEFAULT if fmt == "tflite" else ONNX_DEFAULT
    assert method["method"] == method["used"] == default
    assert method["rounded_layers"] > 0 and method["equalized_pairs"] > 0
    print(f"{fmt} default int8: {result.drift.sqnr_db:.2f} dB, top-1 {result.drift.top1_agreement:.4f}")
    assert result.drift.sqnr_db >= 35.0 and result.drift.top1_agreement >= 0.99


def test_mse_range_clips_outliers_and_keeps_a_range_without_them():
    """A tensor whose sampled values are small while its exact max (from the whole tensors) is a rare 40 gets a
    shrunk range with less quantization error than its min/max; uniform values keep (almost) their whole range; a
    ReLU range keeps its 0."""
    from converters.activation_ranges import mse_range, quantization_mse

    rng = np.random.default_rng(0)
    typical = np.abs(rng.normal(0, 1, 20000))
    lo, hi = mse_range(typical, 0.0, 40.0)
    assert lo == 0.0 and hi < 0.5 * 40.0
    assert quantization_mse(typical, lo, hi) < 0.25 * quantization_mse(typical, 0.0, 40.0)
    uniform = rng.uniform(-3, 5, 20000)
    lo, hi = mse_range(uniform, float(uniform.min()), float(uniform.max()))
    assert hi > 0.95 * uniform.max() and lo < 0.95 * uniform.min()


def _tiny_reference(model):
    from converters.reference import KerasReference, ModelIdentity
    from edge.preprocessing import PreprocessSpec

    return KerasReference(model, ModelIdentity("tiny_regnety", "tiny", "paper", 5), PreprocessSpec(32, 32),
                          [f"c{i}" for i in range(5)], {"path": None, "description": "seeded random"})


def test_tflite_ranges_exact_give_the_converters_model_and_chosen_ones_reach_the_file(small_regnety, images):
    """converters.tflite_ranges: with the exact min/max of its own pass, the kit's quantization is the converter's
    own model (ops, tensors, int8 weights, scales within float rounding), though the converter's pass saw one image,
    except where the converter's calibrator recorded a wider range than the tensor has: a tensor that an in-place
    ADD overwrites is logged after the ADD (here one conv3 output before a residual ADD, max 143.8 logged, 93.4
    real). With "mse" the chosen ranges become the file's scales."""
    from tensorflow.lite.python import schema_py_generated as schema

    from calibration.representative import Prepared
    from converters.tflite_converter import make_converter
    from converters.tflite_ranges import calibrated_tensors, choose_ranges, quantize

    calib = Prepared("random", images[:16], [f"c{i}" for i in range(16)], [None] * 16, "calib")
    plain = bytes(make_converter(small_regnety, "int8", calib).convert())
    same = quantize(make_converter(small_regnety, "int8", calib), calib.inputs, "minmax")
    clipped = quantize(make_converter(small_regnety, "int8", calib), calib.inputs, "mse")

    def body(data):  # by tensor name: the converter may order two constants either way
        model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
        graph = model.subgraphs[0]
        name = [t.name for t in graph.tensors]
        tensors = {t.name: (t.type, [int(d) for d in t.shape]) for t in graph.tensors}
        scales = {t.name: np.asarray(t.quantization.scale, np.float64) for t in graph.tensors
                  if t.quantization is not None and t.quantization.scale is not None}
        ops = [(op.opcodeIndex, [name[i] for i in op.inputs if i >= 0], [name[i] for i in op.outputs])
               for op in graph.operators]
        int8 = {t.name: bytes(bytearray(model.buffers[t.buffer].data)) for t in graph.tensors
                if t.type == 9 and model.buffers[t.buffer].data is not None}  # INT8 constants: the weights
        return tensors, ops, scales, int8

    (t1, o1, s1, w1), (t2, o2, s2, w2) = body(same), body(plain)
    assert t1 == t2 and o1 == o2 and w1 == w2 and s1.keys() == s2.keys()
    differ = [n for n in s1 if not np.allclose(s1[n], s2[n], rtol=1e-5)]
    assert len(differ) <= 2 and all(s1[n][0] < s2[n][0] for n in differ)  # ours narrower: the real range
    converter = make_converter(small_regnety, "int8", calib)
    converter._experimental_calibrate_only = True
    calibrated = bytes(converter.convert())
    model = schema.ModelT.InitFromPackedBuf(bytearray(calibrated), 0)
    tensors, exact = calibrated_tensors(model)
    assert len(exact) >= 2 and len(tensors) > 20  # the input and the SE gates' sigmoids stay exact
    chosen = choose_ranges(calibrated, calib.inputs, "mse")
    names = {i: model.subgraphs[0].tensors[i].name for i in tensors}
    written = {t.name: float(t.quantization.scale[0]) for t in schema.ModelT.InitFromPackedBuf(
        bytearray(clipped), 0).subgraphs[0].tensors if t.quantization is not None and t.quantization.scale is not None
        and len(t.quantization.scale) == 1}
    matched = [(written[names[i]], (hi - lo) / 255) for i, (lo, hi) in chosen.items()
               if names[i] in written and i not in exact]
    assert len(matched) >= 10
    assert sum(s == pytest.approx(e, rel=1e-3) for s, e in matched) >= 0.8 * len(matched)
    ours = body(clipped)[2]
    assert sum(not np.allclose(ours[n], s2[n], rtol=1e-3) for n in ours) >= 5


def test_onnx_mse_ranges_reach_the_quantized_graph(small_regnety, images):
    """converters.onnx_quantize with mse: the QDQ scales of the activations are the kit's chosen ranges."""
    from onnx import numpy_helper

    from calibration.representative import Prepared
    from converters.onnx_export import to_onnx
    from converters.onnx_quantize import quantize_int8

    calib = Prepared("random", images[:16], [f"c{i}" for i in range(16)], [None] * 16, "calib")
    proto = to_onnx(small_regnety)
    quantized = quantize_int8(proto, calib, mse=True)
    plain = quantize_int8(proto, calib)

    def scales(model):
        init = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
        return {n.input[0]: float(init[n.input[1]]) for n in model.graph.node
                if n.op_type == "QuantizeLinear" and init[n.input[1]].ndim == 0}

    ours, theirs = scales(quantized), scales(plain)
    assert ours.keys() == theirs.keys() and len(ours) >= 10
    smaller = [n for n in ours if ours[n] < 0.99 * theirs[n]]
    assert len(smaller) >= 5 and all(ours[n] <= theirs[n] * 1.0001 for n in ours)  # measured: 10 of 41 shrink


def test_onnx_mse_pass_reads_large_models_in_runs_within_its_memory_budget(small_regnety, images, monkeypatch):
    """The mse pass holds one image's activations at a time; past MSE_MEMORY it reads them in several runs
    (EfficientNet-B7 at 600 px), and the ranges it chooses are the same."""
    import onnx

    import converters.onnx_quantize as onnx_quantize
    from converters.onnx_export import to_onnx

    proto = onnx.shape_inference.infer_shapes(to_onnx(small_regnety))
    infos = [v for v in proto.graph.value_info if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT]
    sizes = [4 * int(np.prod([d.dim_value or 1 for d in v.type.tensor_type.shape.dim])) for v in infos]
    budget = max(sizes) * 2
    groups = onnx_quantize._output_groups(infos, budget)
    assert [n for g in groups for n in g] == [v.name for v in infos] and len(groups) > 3
    held = dict(zip([v.name for v in infos], sizes))
    assert all(sum(held[n] for n in g) <= budget for g in groups)
    whole = onnx_quantize.sample_ranges(proto, images[:4])
    assert len(whole.mse) == len(infos) and len(whole.bounds) > 20
    real, runs = onnx_quantize._output_groups, []
    monkeypatch.setattr(onnx_quantize, "MSE_MEMORY", budget)
    monkeypatch.setattr(onnx_quantize, "_output_groups", lambda infos, b: runs.append(real(infos, b)) or runs[-1])
    assert onnx_quantize.sample_ranges(proto, images[:4]) == whole and len(runs[0]) > 3


def test_onnx_range_sessions_cut_to_their_part_of_the_graph_read_the_same_ranges(small_regnety, images, monkeypatch):
    """sample_ranges runs each group of tensors in a session cut to the nodes they depend on, holding only those
    nodes' weights (`_prefix`); the ranges are the ones sessions over the whole graph give."""
    import onnx

    import converters.onnx_quantize as onnx_quantize
    from converters.onnx_export import to_onnx

    proto = onnx.shape_inference.infer_shapes(to_onnx(small_regnety))
    infos = [v for v in proto.graph.value_info if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT]
    early = onnx_quantize._prefix(proto, infos[:len(infos) // 3])
    assert 0 < len(early.graph.node) < len(proto.graph.node) / 2
    assert 0 < len(early.graph.initializer) < len(proto.graph.initializer)
    assert [o.name for o in early.graph.output] == [v.name for v in infos[:len(infos) // 3]]
    sizes = [4 * int(np.prod([d.dim_value or 1 for d in v.type.tensor_type.shape.dim])) for v in infos]
    monkeypatch.setattr(onnx_quantize, "MSE_MEMORY", max(sizes) * 2)  # several groups
    cut = onnx_quantize.sample_ranges(proto, images[:4])

    def whole(proto, outputs):
        model = onnx.ModelProto()
        model.CopyFrom(proto)
        del model.graph.output[:]
        model.graph.output.extend(outputs)
        return model

    monkeypatch.setattr(onnx_quantize, "_prefix", whole)
    assert onnx_quantize.sample_ranges(proto, images[:4]) == cut


def test_gptq_puts_every_weight_on_its_int8_grid_and_lowers_the_output_error(small_regnety, images):
    """converters.rounding: each rounded layer's folded weights are integers times the channel's original
    round-to-nearest scale (so the converter finds exactly GPTQ's integers), the layers' output error on the
    calibration images is below round-to-nearest's, and the float model moves by less than the int8 noise."""
    from converters.bias_correction import target_layers
    from converters.equalize import bn_scale
    from converters.rounding import LEVELS, round_weights

    result = round_weights(small_regnety, images[:16])
    assert len(result.layers) == len(target_layers(small_regnety)) and not result.skipped
    assert result.output_error_ratio < 0.8
    moved = 0
    for (before, bn, _), (after, bn_after, _) in zip(target_layers(small_regnety), target_layers(result.model)):
        factor = 1.0 if bn is None else bn_scale(bn, bn.get_weights()[0], bn.get_weights()[3])
        old = np.asarray(before.get_weights()[0], np.float64) * factor
        new = np.asarray(after.get_weights()[0], np.float64) * factor
        scale = np.abs(old.reshape(-1, old.shape[-1])).max(axis=0) / LEVELS
        steps = new.reshape(-1, new.shape[-1]) / scale
        assert np.abs(steps - np.round(steps)).max() < 1e-3, after.name
        assert np.abs(np.round(steps)).max(axis=0) == pytest.approx(LEVELS)  # same scales
        moved += int(np.sum(np.round(steps) != np.round(old.reshape(-1, old.shape[-1]) / scale)))
    assert moved > 0  # GPTQ chose other integers than round-to-nearest somewhere
    x = images[16:]
    assert _relative_error(result.model.predict(x, verbose=0), small_regnety.predict(x, verbose=0)) < 0.05


def test_uniform_calibration_images_turn_the_data_driven_rewrites_off_loudly(calibration):
    """Constant images cannot teach equalization or GPTQ anything: the default falls back to the rest of the
    method, says why, and records it; real crops keep the whole method."""
    from converters.int8_calibration import TFLITE_DEFAULT, equalized_lowered, uniform_images

    assert uniform_images(calibration.inputs) is None
    gray = np.broadcast_to(calibration.inputs[:1].mean(axis=(1, 2), keepdims=True), (8, *calibration.inputs.shape[1:]))
    assert "8 of the 8 calibration images are nearly uniform" in uniform_images(gray)
    logged = []
    job = SimpleNamespace(reference=SimpleNamespace(model=SimpleNamespace(layers=[])),
                          plan=SimpleNamespace(calibration=SimpleNamespace(inputs=np.array(gray))), log=logged.append)
    lowered, record = equalized_lowered("graph", job, TFLITE_DEFAULT, TFLITE_DEFAULT)
    assert lowered == "graph" and record.used == "mse" and "nearly uniform" in record.note
    assert logged and logged[0].startswith("note: --calibration equalize+gptq+mse cannot run")


def test_the_default_int8_tflite_is_deterministic(tmp_path, converted, source, validation, calibration, monkeypatch):
    """Equalization, GPTQ and the sampled MSE ranges are seeded: converting again gives the same bytes (fitted
    again: the cache folder, which would hand back the first conversion's rewrites and ranges, is off)."""
    from converters import tflite
    from edge.cache import CACHE_ENV
    from tests.artifacts import plan

    first = converted("int8")[0].read_bytes()
    monkeypatch.setenv(CACHE_ENV, "off")
    again = tmp_path / "m_int8.tflite"
    tflite.convert(source, plan(again, "int8", calibration=calibration), validation, log=lambda m: None)
    assert again.read_bytes() == first


def test_gptq_on_a_model_too_large_for_its_hessians_falls_back_to_bias_correction(small_regnety, images, monkeypatch):
    """GPTQ keeps its Hessians within a memory budget; a model that needs more keeps round-to-nearest with bias
    correction instead, and the record and the log say so (EfficientNet-B7's 1x1 convs read up to 3840 channels)."""
    import converters.rounding as rounding
    from converters.int8_calibration import TFLITE_DEFAULT, equalized_lowered

    monkeypatch.setattr(rounding, "HESSIAN_BUDGET", 1000)
    logged = []
    job = SimpleNamespace(reference=_tiny_reference(small_regnety), log=logged.append,
                          plan=SimpleNamespace(calibration=SimpleNamespace(inputs=images[:8])))
    monkeypatch.setattr("converters.pipeline.lower", lambda reference, plan: ("lowered", reference.model))
    lowered, record = equalized_lowered("graph", job, "gptq+mse", TFLITE_DEFAULT)
    assert record.used == "bias+mse" and record.rounded_layers == 0 and record.bias_corrected > 0
    assert "Hessians" in record.note and "fell back to bias+mse" in record.note
    assert lowered[0] == "lowered" and any(line.startswith("WARNING: --calibration gptq+mse") for line in logged)
