"""The portable target's files run on Arm NN, an independent TFLite runtime (Debian's python3-pyarmnn 20.08: its
TfLiteParser and CPU backends), and compute what LiteRT computes. `--target nnapi` and `edgetpu` write the same graph.

Arm NN runs under Debian's /usr/bin/python3 (tests/edge/armnn_runner.py): pyarmnn is built for that interpreter and
its numpy 1.x, the kit's venv has numpy 2. `make test` installs the packages (make armnn-deps); without them the tests
skip, except in CI, where they fail. Arm NN's findings and the forms the kit writes for it: docs/lowering.md.

Runtime: CpuRef, Arm NN's reference backend, takes about 3.5 s an image on 200MF, so each file runs on four held-out
crops (four of the eleven photographs): about 15 s a file, plus the two conversions (shared with test_convert.py).
"""

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edge.runtime import load
from edge.tflite_file import builtin_op_name, litert_schema

PYTHON = os.environ.get("ARMNN_PYTHON", "/usr/bin/python3")
RUNNER = Path(__file__).with_name("armnn_runner.py")
PACKAGES = "python3-pyarmnn libarmnn-cpuref-backend22 libarmnntfliteparser22"
CPU_BACKENDS = ("CpuRef", "CpuAcc")  # CpuAcc (NEON) is packaged for Arm machines only
IMAGES = slice(0, None, 44)           # 4 of the 176 held-out crops, from 4 photographs
MAX_FLOAT_ERROR = 1e-4                # max abs logit error / LiteRT's logit range, float32


@pytest.fixture(scope="session")
def armnn_backends():
    """Arm NN's CPU backends here; skipped (failed in CI) when Arm NN cannot be run."""
    why = None
    if not Path(PYTHON).is_file():
        why = f"{PYTHON} is missing"
    else:
        proc = subprocess.run([PYTHON, str(RUNNER), "backends"], capture_output=True, text=True, timeout=300)
        if proc.returncode:
            why = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    if why is None:
        backends = [b for b in proc.stdout.split() if b in CPU_BACKENDS]
        why = None if backends else f"Arm NN offers no CPU backend ({proc.stdout.split()})"
    if why is not None:
        message = (f"the Arm NN tests need Debian's {PACKAGES} ({why}); install them with `apt-get install {PACKAGES}` "
                   "(make test does)")
        if os.environ.get("CI"):
            pytest.fail(message)  # CI installs them: their absence there is a broken setup, not a skip
        pytest.skip(message)
    return backends


def run_armnn(model: Path, x: np.ndarray, backend: str, folder: Path) -> np.ndarray:
    np.save(folder / "x.npy", x)
    out = folder / f"y_{backend}.npy"
    proc = subprocess.run([PYTHON, str(RUNNER), "run", str(model), str(folder / "x.npy"), str(out), backend],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"Arm NN ({backend}) exited with {proc.returncode}: {proc.stderr[-2000:]}"
    return np.load(out)


@pytest.mark.parametrize("precision", ["float32", "int8"])
def test_portable_files_compute_what_litert_computes_on_armnn(armnn_backends, portable, validation, tmp_path,
                                                               precision):
    """float32: the logits within MAX_FLOAT_ERROR of LiteRT's range; int8: the same top-1 on every crop."""
    model, _ = portable(precision)
    x = validation.inputs[IMAGES]
    expected = load(model).run(x)
    for backend in armnn_backends:
        got = run_armnn(model, x, backend, tmp_path)
        assert got.shape == expected.shape, backend
        if precision == "float32":
            error = float(np.abs(got - expected).max() / (expected.max() - expected.min()))
            assert error <= MAX_FLOAT_ERROR, (backend, error)
        else:
            np.testing.assert_array_equal(got.argmax(1), expected.argmax(1), err_msg=backend)


def test_portable_files_avoid_what_armnn_20_08_cannot_take(portable):
    """Without Arm NN too: no SPLIT with a negative axis (its parser crashes), every PAD feeding a CONV_2D directly
    (it folds those; an unfolded int8 PAD pads with 0, not the zero point), no FULLY_CONNECTED (int8 ones are per
    channel, which it aborts on), no grouped CONV_2D v6 (it computes them wrong)."""
    schema = litert_schema()
    for precision in ("float32", "int8"):
        data = portable(precision)[0].read_bytes()
        model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(data, 0))
        graph = model.subgraphs[0]
        codes = [(max(c.builtinCode, c.deprecatedBuiltinCode), c.version) for c in model.operatorCodes]
        ops = [(builtin_op_name(codes[op.opcodeIndex][0]), codes[op.opcodeIndex][1], op) for op in graph.operators]
        consumers = {}
        for name, _, op in ops:
            for i in op.inputs:
                consumers.setdefault(int(i), []).append(name)
        names = [name for name, _, _ in ops]
        assert "FULLY_CONNECTED" not in names and names.count("SPLIT") == 13, precision
        assert all(version < 6 for name, version, _ in ops if name == "CONV_2D"), precision
        for name, _, op in ops:
            if name == "SPLIT":
                axis = np.frombuffer(bytes(model.buffers[graph.tensors[op.inputs[0]].buffer].data), np.int32)
                assert axis.tolist() == [3], precision
            if name == "PAD":
                assert consumers[int(op.outputs[0])] == ["CONV_2D"], precision
