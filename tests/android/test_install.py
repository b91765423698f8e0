"""`python -m edge.android`: the model goes into the app's assets only when the app's core can use it."""

import pytest

from edge import android
from edge.errors import run_cli


@pytest.fixture
def app(tmp_path):
    (tmp_path / "app").mkdir()
    return tmp_path


def test_install_copies_a_checked_model(converted, app, capsys):
    path, _ = converted("int8")
    assert run_cli(android.main, ["--model", str(path), "--app", str(app)]) == 0
    out = capsys.readouterr().out
    assert "11 labels" in out and "input float32 [1, 224, 224, 3]" in out
    assert "--io uint8" in out  # the int8 file has float I/O: the note says how to feed bytes
    assert (app / android.ASSET).read_bytes() == path.read_bytes()


def _without_metadata(path, out):
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(path.read_bytes()), 0)
    model.metadata = None
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    out.write_bytes(bytes(builder.Output()))
    return out


@pytest.mark.parametrize("case, message", [
    ("onnx", "the Android app runs .tflite files"),
    ("no_metadata", "no kit metadata"),
    ("truncated", "truncated or malformed"),
    ("no_app", "is not the Android demo project"),
])
def test_install_refuses_what_the_app_cannot_use(converted, app, tmp_path, capsys, case, message):
    path, _ = converted("float32")
    target = app
    if case == "onnx":
        path, _ = converted("float32", "onnx")
    elif case == "no_metadata":
        path = _without_metadata(path, tmp_path / "bare.tflite")
    elif case == "truncated":
        (tmp_path / "cut.tflite").write_bytes(path.read_bytes()[:5000])
        path = tmp_path / "cut.tflite"
    else:
        target = tmp_path / "elsewhere"
        target.mkdir()
    assert run_cli(android.main, ["--model", str(path), "--app", str(target)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (target / android.ASSET).exists()  # nothing copied
