"""Converter CLIs: user mistakes give one line on stderr and exit 2, before any long work."""

import pytest

from converters import inspect, onnx as onnx_conv, tflite, validate
from edge.errors import run_cli


def _run(main, argv, capsys):
    code = run_cli(main, argv)
    err = capsys.readouterr().err.strip().splitlines()
    return code, err[-1] if err else ""


@pytest.mark.parametrize("main, argv, message", [
    (tflite.main, ["--variant", "300mf"], "unknown variant '300mf'"),
    (tflite.main, ["--dynamic", "--io", "uint8"], "--io uint8 needs --int8"),
    (tflite.main, ["--target", "portable", "--grouped-conv", "native"], "cannot run grouped convs"),
    (tflite.main, ["--calib-size", "5000", "--int8"], "between 1 and 1024"),
    (onnx_conv.main, ["--opset", "7"], "--opset must be between 13 and 21"),
    (onnx_conv.main, ["--activations", "uint8"], "--activations needs --int8"),
    (onnx_conv.main, ["--reduce-range"], "--reduce-range needs --int8"),
    (tflite.main, ["--flavour", "seed", "--variant", "1.6gf"], "the seed flavour has no variant '1.6gf'"),
    (tflite.main, ["--weights", "missing.safetensors"], "does not exist"),
    (validate.main, ["nothing.tflite"], "does not exist"),
    (inspect.main, ["README.md"], "unknown model type"),
    (inspect.main, ["docs"], "docs is a folder, not a model file"),
    (validate.main, ["docs"], "is a folder, not a model file"),
    (tflite.main, ["--input-size", "0"], "--input-size must be between 32 and 2048, got 0"),
    (onnx_conv.main, ["--input-size", "100000"], "--input-size must be between 32 and 2048"),
    (tflite.main, ["--out", "/proc/x.tflite"], "the folder /proc does not accept new files"),
    (tflite.main, ["--int8", "--keep-float", "no_such_layer", "--val-size", "11"], "--keep-float no_such_layer: no layer"),
])
def test_mistakes_are_one_line(capsys, main, argv, message):
    code, line = _run(main, argv, capsys)
    assert code == 2
    assert line.startswith("error: ") and message in line


def test_unwritable_output_is_refused_before_converting(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    code, line = _run(tflite.main, ["--out", str(blocker / "m.tflite")], capsys)
    assert code == 2 and "cannot write" in line


def test_help_explains(capsys):
    with pytest.raises(SystemExit):
        tflite.main(["--help"])
    text = capsys.readouterr().out
    for option in ("--int8", "--target", "--grouped-conv", "--calib", "--allow-drift", "--normalize-in-model"):
        assert option in text


def test_data_folder_problems_are_one_line(tmp_path, capsys):
    from PIL import Image

    (tmp_path / "empty").mkdir()
    zebra = tmp_path / "labelled" / "zebra"
    zebra.mkdir(parents=True)
    Image.new("RGB", (300, 300), (10, 200, 30)).save(zebra / "z.png")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.jpg").write_bytes(b"not an image")
    cases = [
        (["--int8", "--calib", str(tmp_path / "empty")], "holds no"),
        (["--data", str(tmp_path / "labelled")], "class folders ['zebra'] are not classes of the model"),
        (["--data", str(tmp_path / "junk")], "none of its 1 image files could be decoded"),
    ]
    for argv, message in cases:
        code, line = _run(tflite.main, argv + ["--out", str(tmp_path / "new" / "sub" / "m.tflite")], capsys)
        assert code == 2 and message in line, line
        assert not (tmp_path / "new").exists()  # a failed run leaves no folder it made


def test_leftovers_of_a_killed_run_are_removed_and_said(tmp_path):
    from edge.atomic import leftovers, output_place

    out = tmp_path / "m.tflite"
    left = [tmp_path / n for n in (".m.tflite.a1b2.tmp", ".m.tflite.json.c3d4.tmp", ".m.candidate.tflite",
                                   "..m.candidate.tflite.e5f6.tmp")]
    kept = [tmp_path / n for n in ("m.tflite", ".n.tflite.a1b2.tmp", "other.tmp")]
    for path in left + kept:
        path.write_bytes(b"x")
    assert leftovers(out) == sorted(left)
    said = []
    with output_place(out, log=said.append):
        pass
    assert all(not p.exists() for p in left) and all(p.exists() for p in kept)
    assert len(said) == 1 and said[0].startswith("removed 4 file(s) an interrupted run left beside m.tflite")


def test_validate_on_a_model_that_is_not_an_image_classifier_is_one_line(tmp_path, capsys):
    from tests.helpers import relu_tflite

    path = relu_tflite(tmp_path / "relu.tflite")  # input (1, 4): no image, no kit metadata
    code, line = _run(validate.main, [str(path), "--precision", "float32", "--limit", "2"], capsys)
    assert code == 2 and line.startswith("error: relu.tflite takes 4 per input, not 224x224x3 images")
