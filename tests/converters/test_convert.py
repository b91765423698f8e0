"""Converting the reference checkpoint: every precision x format within its drift budget, metadata
read back by the edge runtime, target checks, determinism, and a broken calibration that must fail.

These are the drift tests of the calibration issue: they run real conversions (about 3 minutes).
"""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from calibration.drift import budget_for
from calibration.photos import class_names
from calibration.representative import calibration_set
from converters import tflite, validate
from edge.errors import DriftError
from edge.runtime import load
from edge.tflite_file import CONV_2D, operator_codes
from tests.artifacts import plan as _plan


def _files(folder):
    return sorted(p.name for p in Path(folder).iterdir())


def test_the_reference_checkpoint_is_what_conversions_start_from(source, validation):
    assert source.labels == class_names()
    assert source.weights["sha256"] and "reference checkpoint" in source.weights["description"]
    logits = source.predict(validation.inputs)
    accuracy = np.mean(logits.argmax(1) == validation.label_indices(source.labels))
    assert accuracy >= 0.90  # the checkpoint means something on held-out crops


@pytest.mark.parametrize("precision", ["float32", "float16", "dynamic", "int8"])
def test_tflite_precisions_stay_within_budget_and_carry_metadata(converted, source, validation, calibration, precision):
    out, result = converted(precision)
    assert result.violations == []
    assert result.drift.images == len(validation) == 176
    if precision == "int8":
        assert result.drift.accuracy_drop <= 1.0
    assert {out.name, out.name + ".json", out.name + ".md"} <= set(_files(out.parent))
    assert not [name for name in _files(out.parent) if "candidate" in name]
    runner = load(out)
    meta = runner.metadata
    assert meta["precision"] == precision and meta["labels"] == class_names()
    assert meta["preprocessing"] == source.preprocessing.to_dict()
    assert meta["weights"]["sha256"] == source.weights["sha256"]
    assert meta["drift"]["within_budget"] is True
    assert (meta["calibration"] is not None) == (precision == "int8")
    if precision == "int8":
        assert meta["calibration"]["fingerprint"] == calibration.fingerprint
        assert any(op.startswith("CONV_2D") for op in meta["ops"])
    report = json.loads((out.parent / (out.name + ".json")).read_text())
    assert report["drift_details"]["top1_agreement"] == result.drift.top1_agreement


def test_full_int8_with_uint8_io_takes_raw_pixels(raw_pixel_int8):
    out, result, validation = raw_pixel_int8
    assert result.violations == []
    runner = load(out)
    assert runner.input.dtype == "uint8" and runner.output.dtype == "uint8"
    assert validation.inputs.max() > 200  # the inputs really are [0, 255] pixels
    assert runner.metadata["io"]["input"]["scale"] == pytest.approx(runner.input.scale)
    assert runner.metadata["preprocessing"]["normalize_in_model"] is True


def test_a_constant_calibration_set_is_caught_and_nothing_is_written(tmp_path, source, validation):
    calib_dir = tmp_path / "calib"
    calib_dir.mkdir()
    for i in range(8):
        Image.new("RGB", (300, 300), (128, 128, 128)).save(calib_dir / f"{i}.png")
    broken = calibration_set(source.preprocessing, calib_dir, count=8)
    out_dir = tmp_path / "out"
    with pytest.raises(DriftError) as raised:
        tflite.convert(source, _plan(out_dir / "broken.tflite", "int8", calibration=broken), validation,
                       log=lambda m: None)
    error = raised.value
    assert (error.artifact, error.precision, error.exit_code) == ("broken.tflite", "int8", 1)
    assert error.violations and error.violations == error.drift.violations(budget_for("int8"))
    assert _files(out_dir) == []  # no artifact, no report, no candidate left behind


def test_over_budget_exits_1_from_the_command_line(tmp_path, capsys):
    # Exit codes: 1 is drift over budget, 2 a user mistake (tests/converters/test_cli.py).
    from edge.errors import run_cli

    calib_dir = tmp_path / "calib"
    calib_dir.mkdir()
    for i in range(8):
        Image.new("RGB", (300, 300), (128, 128, 128)).save(calib_dir / f"{i}.png")
    out = tmp_path / "out" / "broken.tflite"
    code = run_cli(tflite.main, ["--int8", "--calib", str(calib_dir), "--calib-size", "8", "--val-size", "32",
                                 "--out", str(out)])
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 1 and last.startswith("error: broken.tflite drifts past its int8 budget")
    assert not out.parent.exists() or _files(out.parent) == []


def test_portable_target_lowers_grouped_convs_exactly(converted, portable):
    out, result = portable("float32")  # shared with tests/edge/test_armnn.py
    assert result.violations == []
    codes = operator_codes(out.read_bytes())
    assert [v for code, _, v in codes if code == CONV_2D] and all(v < 6 for code, _, v in codes if code == CONV_2D)
    native = converted("float32")[0]
    assert max(v for code, _, v in operator_codes(native.read_bytes()) if code == CONV_2D) == 6


def test_tflite_conversion_is_deterministic(tmp_path, converted, source, validation):
    again = tmp_path / "m_float32.tflite"
    tflite.convert(source, _plan(again, "float32"), validation, log=lambda m: None)
    assert again.read_bytes() == converted("float32")[0].read_bytes()


def test_validate_cli_holds_each_file_to_its_budget(converted, tmp_path, capsys):
    float32, int8 = converted("float32")[0], converted("int8")[0]
    report = tmp_path / "drift.json"
    assert validate.main([str(float32), str(int8), "--json", str(report)]) == 0
    table = capsys.readouterr().out
    assert float32.name in table and int8.name in table and "| ok |" in table
    rows = json.loads(report.read_text())
    assert [r["precision"] for r in rows] == ["float32", "int8"]
    assert rows[0]["top1_agreement"] == 1.0 and rows[0]["images"] == 176
    # The int8 file held to float32's budget (logit error <= 1e-4 of the range) must fail.
    assert validate.main([str(int8), "--precision", "float32"]) == 1
    assert "OVER" in capsys.readouterr().out


@pytest.mark.parametrize("precision", ["float32", "int8"])
def test_onnx_has_real_grouped_convs_dynamic_batch_and_stays_within_budget(converted, validation, precision):
    import onnx

    out, result = converted(precision, "onnx")
    assert result.violations == []
    proto = onnx.load(str(out))
    onnx.checker.check_model(proto, full_check=True)
    grouped = [n for n in proto.graph.node if n.op_type == "Conv" and any(a.name == "group" and a.i > 1 for a in n.attribute)]
    assert len(grouped) == 13  # one per Y block of 200mf
    runner = load(out)
    assert runner.metadata["precision"] == precision
    if precision == "int8":
        assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in proto.graph.node}
        # Validated twice: the fused int8 kernels (the artifact's drift) and the QDQ graph as written.
        kernels = runner.metadata["int8_kernels"]
        assert kernels["sqnr_db_fused"] == runner.metadata["drift"]["sqnr_db"] == pytest.approx(result.drift.sqnr_db)
        assert kernels["sqnr_db_unfused"] > 25  # the quantization's own error
        assert abs(kernels["fused_loss_db"]) < 3 and kernels["saturation_suspected"] is False
        assert runner.metadata["reduce_range"] is False
    batch = runner.run(validation.inputs[:3])
    assert batch.shape == (3, 11)
    one_by_one = np.concatenate([runner.run(x[None]) for x in validation.inputs[:3]])
    np.testing.assert_allclose(batch, one_by_one, atol=1e-4)


def test_onnx_export_is_deterministic():
    # Two runs of the exporter, as a user reruns the command: separate processes with different string
    # hashing (tf2onnx's unique-name counters follow it); canonical_names makes the bytes equal.
    import os
    import subprocess
    import sys

    code = ("import hashlib; from converters.source import load_source; from converters.onnx_export import to_onnx; "
            "print(hashlib.sha256(to_onnx(load_source(log=lambda m: None).model).SerializeToString()).hexdigest())")
    digests = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "TF_CPP_MIN_LOG_LEVEL": "3"}
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        digests.append(done.stdout.strip().splitlines()[-1])
    assert digests[0] == digests[1]


def test_onnx_export_frees_each_optimizer_pass_without_changing_the_file(source, monkeypatch):
    # tf2onnx drops a copy of the whole graph (every weight) after each optimizer pass, in reference cycles; the kit
    # collects them before the next pass (EfficientNet-B7 at 600 px: tf2onnx's optimize_graph 12.2 -> 4.6 GB, 3.5 with
    # the kit's export steps). The file must not change.
    import gc

    from tf2onnx import optimizer

    from converters import onnx_export
    from converters.onnx_export import to_onnx

    full = []

    def count(phase, info):
        if phase == "stop" and info["generation"] == 2:
            full.append(info["collected"])

    gc.callbacks.append(count)
    try:
        collected = to_onnx(source.model).SerializeToString()
    finally:
        gc.callbacks.remove(count)
    assert optimizer.optimize_graph._kit_collecting
    passes = len(optimizer._get_optimizers())
    assert len(full) >= passes, f"{len(full)} full collections for {passes} optimizer passes"
    assert sum(full) > 0
    monkeypatch.setattr(optimizer, "optimize_graph", optimizer.optimize_graph._kit_original)
    monkeypatch.setattr(onnx_export, "_collecting_tf2onnx_optimizers", lambda: None)
    assert to_onnx(source.model).SerializeToString() == collected


def test_onnx_export_steps_give_tf2onnxs_own_file(source, monkeypatch):
    # The kit takes tf2onnx's from_function steps itself, dropping each stage's copy of the weights before the next
    # (EfficientNet-B7 at 600 px: 5.8 -> 4.7 GB). The file must be the one tf2onnx's from_function writes, and the
    # same in every export of the process (tf2onnx's node order follows node hashes: converters.onnx_export).
    import tf2onnx

    from converters import onnx_export
    from converters.onnx_export import to_onnx

    staged = to_onnx(source.model).SerializeToString()

    class Traced:  # from_function traces its argument; hand it the kit's own trace
        def __init__(self, concrete):
            self.concrete = concrete

        def get_concrete_function(self, *signature):
            return self.concrete

    calls = []

    def whole(concrete, opset):
        calls.append(opset)
        return tf2onnx.convert.from_function(Traced(concrete), input_signature=(), opset=opset)[0]

    monkeypatch.setattr(onnx_export, "_converted", whole)
    assert to_onnx(source.model).SerializeToString() == staged
    assert calls == [onnx_export.DEFAULT_OPSET]


def test_onnx_int8_min_max_ranges_are_onnx_runtimes_own(source, calibration, tmp_path, monkeypatch):
    # The kit samples the min/max ranges itself (within MSE_MEMORY, no arena) and hands them to ONNX Runtime as its
    # calibration cache instead of running ONNX Runtime's calibrator, which holds a whole run's buffers. The
    # quantized graph must be the one ONNX Runtime's own calibrator gives: every scale and zero point.
    import dataclasses

    import onnx
    from onnx import numpy_helper
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from converters.onnx_export import to_onnx
    from converters.onnx_quantize import _reader, quantize_int8

    proto = to_onnx(source.model)
    six = dataclasses.replace(calibration, inputs=calibration.inputs[:6], names=calibration.names[:6],
                              labels=calibration.labels[:6])
    import importlib

    ort_quantize = importlib.import_module("onnxruntime.quantization.quantize")  # the module, not the function

    def no_calibrator(*args, **kwargs):
        raise AssertionError("ONNX Runtime's calibrator ran")

    with monkeypatch.context() as patched:
        patched.setattr(ort_quantize, "create_calibrator", no_calibrator)
        ours = quantize_int8(proto, six)
    onnx.save(proto, tmp_path / "float.onnx")
    quant_pre_process(str(tmp_path / "float.onnx"), str(tmp_path / "pre.onnx"), skip_symbolic_shape=True)
    quantize_static(str(tmp_path / "pre.onnx"), str(tmp_path / "int8.onnx"), _reader(six.inputs, None),
                    quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax)
    theirs = onnx.load(tmp_path / "int8.onnx")
    tensors = [{t.name: numpy_helper.to_array(t) for t in q.graph.initializer} for q in (ours, theirs)]
    scales = [name for name in tensors[0] if name.endswith("_scale")]
    assert len(scales) > 50
    assert tensors[0].keys() == tensors[1].keys()
    for name, value in tensors[0].items():
        np.testing.assert_array_equal(value, tensors[1][name], err_msg=name)
    assert [n.op_type for n in ours.graph.node] == [n.op_type for n in theirs.graph.node]


def test_onnx_int8_reduce_range_writes_7_bit_weights(source, calibration):
    # For x86 CPUs without VNNI, whose int8 conv kernels saturate on 8-bit weights (EfficientNet-B7).
    import dataclasses

    from onnx import numpy_helper

    from converters.onnx_export import to_onnx
    from converters.onnx_quantize import quantize_int8

    proto = to_onnx(source.model)
    four = dataclasses.replace(calibration, inputs=calibration.inputs[:4], names=calibration.names[:4],
                               labels=calibration.labels[:4])
    peaks = []
    for reduce_range in (False, True):
        weights = [numpy_helper.to_array(t) for t in quantize_int8(proto, four, reduce_range=reduce_range).graph.initializer
                   if t.name.endswith("_quantized") and t.data_type == 3]  # int8 weight tensors
        assert len(weights) > 50
        peaks.append(max(int(np.abs(w.astype(np.int32)).max()) for w in weights))
    assert peaks[0] == 127 and peaks[1] <= 64


@pytest.fixture(scope="module")
def constant_calibration(tmp_path_factory, source):
    folder = tmp_path_factory.mktemp("constant")
    for i in range(8):
        Image.new("RGB", (300, 300), (128, 128, 128)).save(folder / f"{i}.png")
    return calibration_set(source.preprocessing, folder, count=8)


def test_keep_float_auto_grows_the_float_set_until_the_budget_holds(tmp_path, source, validation, constant_calibration):
    # Constant calibration images ruin full int8 (about 24% agreement here); keeping the worst layers in
    # float recovers most of it. With a budget that 8 float layers meet, auto must stop there, not before.
    plan = _plan(tmp_path / "auto.tflite", "int8", calibration=constant_calibration)
    plan.budget = budget_for("int8", min_top1_agreement=0.70, max_accuracy_drop=30.0)
    result = tflite.convert(source, plan, validation, keep_float=["auto"], log=lambda m: None)
    kept = result.metadata["keep_float"]
    assert result.violations == [] and result.drift.top1_agreement >= 0.70
    assert kept["tensors"] in (4, 8, 16)  # the smallest power of two that met the budget
    assert kept["size_bytes"] > kept["size_bytes_full_int8"]
    full = kept["full_int8_drift"]  # what keeping layers in float bought, recorded beside its cost
    assert full["violations"] and full["top1_agreement"] < 0.70 <= result.drift.top1_agreement
    assert kept["worst_layers"][0]["error_steps"] > 10  # the debugger names a clearly broken layer


def test_keep_float_named_layer_stays_float(tmp_path, converted, source, validation, calibration):
    out = tmp_path / "kept.tflite"
    result = tflite.convert(source, _plan(out, "int8", calibration=calibration), validation,
                            keep_float=["s2_b1_se_fc1"], log=lambda m: None)
    assert result.metadata["keep_float"]["layers"] == ["s2_b1_se_fc1"]
    floats = [t for t in load(out)._session.get_tensor_details() if t["dtype"] == np.float32]
    full_floats = [t for t in load(converted("int8")[0])._session.get_tensor_details() if t["dtype"] == np.float32]
    assert len(floats) > len(full_floats)
    assert any("s2_b1_se_fc1" in t["name"] for t in floats)
    assert result.violations == []


def test_over_budget_advice_names_what_that_converter_can_do(tmp_path):
    from converters.onnx import OnnxFacts
    from converters.onnx_quantize import KernelCheck
    from converters.tflite import TFLiteFacts

    tflite_int8, onnx_int8 = TFLiteFacts("float32", []), OnnxFacts(17, 0, [], "int8", False, None)
    assert "--keep-float auto" in tflite_int8.remedies("int8")
    assert "--keep-float" not in onnx_int8.remedies("int8") and "--calib DIR" in onnx_int8.remedies("int8")
    onnx_int8.int8_kernels = KernelCheck(20.0, 30.0, 10.0, True, "x86_64, AVX2, no VNNI")
    assert "--reduce-range" in onnx_int8.remedies("int8")
    onnx_int8.reduce_range = True  # already 7-bit: back to the general advice
    assert "--reduce-range" not in onnx_int8.remedies("int8")
