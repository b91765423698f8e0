"""The kit's one exception family, its exit codes, and the CLI shell that reports them.

A `KitError` message says what is wrong and what to do about it, in one line. CLIs print it on
stderr and exit with its `exit_code`; they never show a traceback for a user's mistake.

Exit codes (every command of the kit):
    0    success
    1    an artifact drifts past its budget (DriftError; `validate` finding one over budget)
    2    bad input or usage: an unknown option value, a missing or malformed file, a failed conversion
    130  interrupted (Ctrl-C)
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

EXIT_OK, EXIT_DRIFT, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

# The extra that installs each optional top-level package (pyproject.toml), for a one-line hint.
EXTRAS = {
    "tensorflow": "kit", "keras": "kit", "tf2onnx": "kit", "onnx": "kit", "h5py": "kit", "safetensors": "kit",
    "ai_edge_litert": "edge", "tflite_runtime": "edge", "onnxruntime": "edge", "threadpoolctl": "edge",
    "torch": "torch", "timm": "dev",
}


class KitError(Exception):
    """A problem the user can fix: the message names it and says what to do."""

    exit_code = EXIT_USAGE


class ConfigError(KitError):
    """An unknown variant, flavour or option value."""


class WeightsError(KitError):
    """A checkpoint that does not fit the model, or is not a checkpoint at all."""


class PreprocessError(KitError):
    """A preprocessing spec that is malformed or inconsistent."""


class ImageError(KitError):
    """An image that cannot be decoded, or is unreasonably large."""


class ModelFileError(KitError):
    """A model file that is missing, of another kind, truncated or malformed."""


class DatasetError(KitError):
    """An image folder that is missing, empty, undecodable or labelled unlike the model."""


class ConversionError(KitError):
    """A converter (TFLite, tf2onnx, ONNX Runtime's quantizer) failed, or wrote a file the target cannot run."""


class DriftError(KitError):
    """An artifact drifted past its budget; nothing was written.

    Fields: `artifact` (file name), `precision`, `violations` (each a budget line it broke), `drift`
    (the calibration.drift.Drift measured) and `advice` (what to try)."""

    exit_code = EXIT_DRIFT

    def __init__(self, artifact: str, precision: str, violations: Sequence[str], drift=None, advice: str = ""):
        self.artifact, self.precision, self.violations = artifact, precision, list(violations)
        self.drift, self.advice = drift, advice
        super().__init__(f"{artifact} drifts past its {precision} budget: {'; '.join(self.violations)}; nothing "
                         f"written. {advice}".rstrip())


class MissingExtraError(KitError):
    """A module of an optional extra is not installed."""

    def __init__(self, module: str):
        self.module = module
        extra = EXTRAS.get(module.split(".")[0])
        hint = f"pip install '.[{extra}]'" if extra else f"pip install {module.split('.')[0]}"
        super().__init__(f"{module} is not installed, and this command needs it: {hint} (or make install)")


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first non-empty line of an exception's message (cut to `limit`), or its type's name."""
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()[:limit]
    return type(exc).__name__


def run_cli(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> int:
    """Run a CLI entry point: a KitError becomes one line on stderr and its exit code, Ctrl-C 130,
    a missing optional package one line naming the extra to install."""
    try:
        return int(main(argv) or 0)
    except KitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] not in EXTRAS:
            raise
        print(f"error: {MissingExtraError(exc.name)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def exit_now(code: int) -> None:
    """End a command-line process as soon as its work is done: flush the output streams and exit without the
    interpreter's teardown. After a conversion, TensorFlow's teardown takes about a second of the user's wait
    (docs/converting.md) and does nothing the kit needs: files are written atomically and synced, temporary
    folders are removed by their own `with` blocks. Only for `__main__` entry points, never inside a caller's
    process."""
    import os

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)

