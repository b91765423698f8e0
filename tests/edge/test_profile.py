"""The per-op profile: every op of the file is timed, each one-op model computes what the op computes in
the whole model, and the MACs it attributes add up to the model's (speed figures live in benchmarks/)."""

import numpy as np
import pytest

from edge import profile as op_profile
from edge.errors import run_cli
from edge.runtime import load
from edge.tflite_file import read_model_bytes


@pytest.mark.parametrize("precision", ["float32", "int8"])
def test_profile_covers_every_op_and_the_models_macs(converted, precision):
    path, _ = converted(precision)
    result = op_profile.profile(path, runs=2, warmup=0)
    whole = load(path)
    kinds = result.by_kind()
    assert kinds["CONV_2D 3x3 grouped"]["count"] == 13  # 200MF: depths 1+1+4+7, one grouped conv each
    assert kinds["CONV_2D 1x1 on 1x1 map"]["count"] == 26  # two SE convs per block
    assert sum(op.macs for op in result.ops) == whole.metadata["model"]["macs"]
    assert all(op.ms > 0 for op in result.ops) and result.whole_ms > 0
    assert [op.index for op in result.ops] == list(range(len(result.ops)))
    assert {op.dtype for op in result.ops if op.op == "CONV_2D"} == {precision}


@pytest.mark.parametrize("precision", ["float32", "int8"])
def test_one_op_models_reproduce_the_ops_of_the_whole_model(converted, precision):
    """Feed each one-op model the whole model's own intermediate tensors: it must give the op's output."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    builtin = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES  # XNNPACK would not keep the intermediates

    path, _ = converted(precision)
    data = read_model_bytes(path)
    full = Interpreter(model_content=data, experimental_preserve_all_tensors=True,
                       experimental_op_resolver_type=builtin)
    full.allocate_tensors()
    x = full.get_input_details()[0]
    full.set_tensor(x["index"], np.random.default_rng(0).uniform(-1, 1, x["shape"]).astype(x["dtype"]))
    full.invoke()
    by_name = {t["name"]: t["index"] for t in full.get_tensor_details()}
    checked = 0
    for op, single in op_profile.single_op_models(data, str(path)):
        if op.op not in ("CONV_2D", "MEAN", "MUL", "ADD") or op.index % 3:
            continue  # a third of the compute ops keeps the test short
        one = Interpreter(model_content=single, experimental_op_resolver_type=builtin)
        one.allocate_tensors()
        for detail in one.get_input_details():
            one.set_tensor(detail["index"], full.get_tensor(by_name[detail["name"]]))
        one.invoke()
        out = one.get_output_details()[0]
        np.testing.assert_array_equal(one.get_tensor(out["index"]), full.get_tensor(by_name[out["name"]]))
        checked += 1
    assert checked >= 20


def test_profile_cli_compares_two_files(converted, tmp_path, capsys):
    import json

    f32, _ = converted("float32")
    i8, _ = converted("int8")
    report = tmp_path / "ops.json"
    argv = ["--model", str(f32), "--model", str(i8), "--runs", "2", "--warmup", "0", "--top", "3",
            "--json", str(report)]
    assert run_cli(op_profile.main, argv) == 0
    out = capsys.readouterr().out
    assert "| CONV_2D 3x3 grouped | 13 |" in out and "[2] / [1]" in out and "whole model p50" in out
    assert out.count("Slowest ops of") == 2
    data = json.loads(report.read_text())
    assert [len(d["ops"]) for d in data] == [len(op_profile.profile(f, runs=1, warmup=0).ops) for f in (f32, i8)]


@pytest.mark.parametrize("content, suffix, message", [
    (None, ".tflite", "does not exist"),
    (b"not a model at all, just text" * 4, ".tflite", "TFL3"),
    (b"\x08\x01", ".onnx", "reads .tflite files"),
])
def test_profile_bad_input(tmp_path, capsys, content, suffix, message):
    path = tmp_path / f"model{suffix}"
    if content is not None:
        path.write_bytes(content)
    assert run_cli(op_profile.main, ["--model", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_profile_rejects_zero_runs(converted, capsys):
    path, _ = converted("float32")
    assert run_cli(op_profile.main, ["--model", str(path), "--runs", "0"]) == 2
    assert "--runs must be at least 1" in capsys.readouterr().err
