"""The installed command `regnety-kit`: every subcommand listed and dispatched, --version, --json PATH|-,
documented exit codes, one line for a missing extra, and no TensorFlow for the device-side commands."""

import importlib.util
import json
import subprocess
import sys
import textwrap
from importlib.metadata import version
from pathlib import Path

import pytest

from edge.command import invoked_as, prog, write_json
from edge.errors import EXIT_INTERRUPTED, EXIT_USAGE, run_cli
from regnety_kit import cli
from tests.helpers import relu_tflite

SCRIPT = Path(sys.executable).parent / "regnety-kit"
BLOCK_TENSORFLOW = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "keras", "tf_keras"):
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Block())
"""


def _run(args, code_before: str = "", tmp_path=None):
    """`regnety-kit ARGS` in a fresh interpreter, after running `code_before` there."""
    code = textwrap.dedent(code_before) + "\nfrom regnety_kit.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    return subprocess.run([sys.executable, "-c", "import sys\n" + code, *args], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)


@pytest.fixture(scope="module")
def tiny_tflite(tmp_path_factory) -> Path:
    """A one-op (RELU) .tflite file, written with LiteRT's schema: no TensorFlow, no conversion."""
    return relu_tflite(tmp_path_factory.mktemp("tiny") / "relu.tflite")


@pytest.mark.parametrize("command", [[str(SCRIPT)], [sys.executable, "-m", "regnety_kit"]], ids=["script", "module"])
def test_help_lists_every_subcommand(command):
    assert SCRIPT.is_file(), "the console script is missing: pip install -e ."
    done = subprocess.run([*command, "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    for c in cli.COMMANDS:
        listed = [line for line in lines if line.strip().startswith(c.name + " ")]
        assert len(listed) == 1 and c.summary in listed[0], c.name
    assert "130 interrupted" in done.stdout


def test_every_subcommand_names_a_cli_module():
    names = [c.name for c in cli.COMMANDS]
    assert len(set(names)) == len(names)
    assert {"convert tflite", "convert onnx", "validate", "inspect", "classify", "benchmark", "profile", "android",
            "golden", "info"} <= set(names)
    for c in cli.COMMANDS:
        assert importlib.util.find_spec(c.module) is not None, c.module


def test_version():
    done = subprocess.run([str(SCRIPT), "--version"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout == f"regnety-kit {version('regnety-edge-kit')}\n"


@pytest.mark.parametrize("argv, message", [
    (["clasify"], "did you mean 'classify'"),
    (["convert"], "convert tflite, convert onnx"),
    (["convert", "tf"], "convert tflite, convert onnx"),
    (["--frobnicate"], "unknown command"),
])
def test_unknown_subcommand_is_one_line_and_exit_2(argv, message, capsys):
    assert cli.main(argv) == EXIT_USAGE
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert captured.out == "" and len(err) == 1 and err[0].startswith("error: ") and message in err[0], err


def test_no_subcommand_prints_help_and_exits_2(capsys):
    assert cli.main([]) == EXIT_USAGE
    assert "commands:" in capsys.readouterr().err


NAMED = [c.name for c in cli.COMMANDS]


@pytest.mark.parametrize("name", NAMED)
def test_subcommand_help_is_the_modules_own_under_the_commands_name(name, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main([*name.split(), "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: regnety-kit {name} ")
    module = next(c.module for c in cli.COMMANDS if c.name == name)
    assert prog(module) == f"python -m {module}"  # outside the command, as `python -m` shows it


def test_classify_help_offers_json_path_or_stdout(capsys):
    with pytest.raises(SystemExit):
        cli.main(["classify", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--json PATH" in out and "with '-'" in out


def test_python_dash_m_keeps_its_own_usage_name():
    done = subprocess.run([sys.executable, "-m", "edge.classify", "--help"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("usage: python -m edge.classify ")


def test_inspect_json_to_stdout_without_tensorflow(tiny_tflite, tmp_path):
    done = _run(["inspect", str(tiny_tflite), "--json", "-"], BLOCK_TENSORFLOW, tmp_path)
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)  # nothing but the JSON on stdout
    assert info["ops"] == {"RELU v1": 1} and info["metadata"] is None
    assert info["input"] == {"name": "input", "shape": [1, 4], "dtype": "float32"}
    assert "blocked" not in done.stderr


def test_inspect_json_to_a_file_keeps_the_text(tiny_tflite, tmp_path, capsys):
    report = tmp_path / "out" / "inspect.json"
    assert cli.main(["inspect", str(tiny_tflite), "--json", str(report)]) == 0
    assert "ops: RELU v1 x1" in capsys.readouterr().out
    assert json.loads(report.read_text())["tensor_types"] == {"float32": 2}


@pytest.mark.parametrize("args, module, extra", [
    (["convert", "onnx", "--variant", "200mf"], "keras", "kit"),
    (["inspect", "model.onnx"], "onnxruntime", "edge"),  # inspect needs only .[edge]: no onnx package
])
def test_a_missing_extra_is_one_line_naming_it(tmp_path, args, module, extra):
    (tmp_path / "model.onnx").write_bytes(b"\x08\x08")
    done = _run(args, f"sys.modules[{module!r}] = None  # as if .[{extra}] were not installed\n", tmp_path)
    err = done.stderr.strip().splitlines()
    assert done.returncode == EXIT_USAGE and done.stdout == ""
    assert len(err) == 1 and f"{module} is not installed" in err[0] and f"'.[{extra}]'" in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]  # nothing written


def test_the_subcommand_is_imported_inside_run_cli(monkeypatch, capsys):
    def missing(name):
        raise ModuleNotFoundError("No module named 'tf2onnx'", name="tf2onnx")

    monkeypatch.setattr(cli.importlib, "import_module", missing)
    assert cli.main(["convert", "onnx", "--variant", "200mf"]) == EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "tf2onnx is not installed" in err[0] and "'.[kit]'" in err[0]


def test_ctrl_c_exits_130(capsys):
    def interrupted(argv):
        raise KeyboardInterrupt

    assert run_cli(interrupted, []) == EXIT_INTERRUPTED == 130
    assert capsys.readouterr().err.strip() == "interrupted"


def test_write_json_to_stdout_or_a_file(tmp_path, capsys):
    write_json({"a": [1, 2]}, "-")
    assert json.loads(capsys.readouterr().out) == {"a": [1, 2]}
    write_json({"a": 1}, tmp_path / "sub" / "x.json", indent=None)
    assert (tmp_path / "sub" / "x.json").read_text() == '{"a": 1}\n'
    assert capsys.readouterr().out == ""
    with invoked_as("regnety-kit info"):
        assert prog("models.info") == "regnety-kit info"
    assert prog("models.info") == "python -m models.info"
