"""`regnety-kit COMMAND [ARGS...]`: the kit's installed command, one subcommand per CLI module.

Each subcommand runs its module's own `main(argv)` with the rest of the command line, so its options
and `--help` are the module's (usage reads `regnety-kit COMMAND`). The module is imported only when
its command runs, inside `edge.errors.run_cli`: `regnety-kit classify` never imports TensorFlow, and a
missing optional package is one line naming the extra to install. `python -m MODULE` runs the same code.
"""

from __future__ import annotations

import difflib
import importlib
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from edge.command import invoked_as
from edge.errors import EXIT_USAGE, run_cli
from regnety_kit import __version__

PROG = "regnety-kit"
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a tool whose reader closed the pipe


@dataclass(frozen=True)
class Command:
    name: str      # as typed after `regnety-kit`; two words for a group ("convert tflite")
    module: str    # the CLI module whose main(argv) runs it
    summary: str   # one line for `regnety-kit --help`


COMMANDS = (
    Command("convert tflite", "converters.tflite",
            "Keras model or SavedModel -> .tflite (float32, float16, dynamic-range, int8), checked for drift"),
    Command("convert onnx", "converters.onnx", "Keras model or SavedModel -> .onnx (float32, int8), checked for drift"),
    Command("validate", "converters.validate",
            "drift of .tflite/.onnx files from the Keras reference, against their budgets"),
    Command("inspect", "converters.inspect", "what a .tflite/.onnx file holds: ops, tensor types, I/O, kit metadata"),
    Command("classify", "edge.classify", "classify images with a converted file (edge runtime, no TensorFlow)"),
    Command("benchmark", "edge.benchmark", "latency, load time, memory and size of converted files, side by side"),
    Command("profile", "edge.profile", "where a .tflite file spends its time, op by op and by op kind"),
    Command("android", "edge.android", "check a .tflite file for the Android demo app and copy it into its assets"),
    Command("golden", "edge.golden", "test vectors for the Android app's core, from the edge runtime"),
    Command("info", "models.info", "stages, parameters, MACs and preprocessing of a RegNetY variant"),
)

EPILOG = """\
Run `regnety-kit COMMAND --help` for a command's options.
Exit codes: 0 ok; 1 an artifact drifts past its budget; 2 bad input or usage; 130 interrupted."""


def help_text() -> str:
    width = max(len(c.name) for c in COMMANDS)
    lines = [f"usage: {PROG} [--version] [--help] COMMAND [ARGS...]", "",
             "Convert RegNetY Keras classifiers to TFLite and ONNX, check their drift, run them on a device.", "",
             "commands:"]
    lines += [f"  {c.name:<{width}}  {c.summary}" for c in COMMANDS]
    return "\n".join(lines + ["", EPILOG])


def find(argv: Sequence[str]) -> tuple[Command, list[str]]:
    """The command the leading words name, and the arguments after them; ValueError (one line) if none."""
    for command in COMMANDS:
        words = command.name.split()
        if list(argv[:len(words)]) == words:
            return command, list(argv[len(words):])
    word = argv[0]
    group = [c.name for c in COMMANDS if c.name.split()[0] == word]
    if group:
        raise ValueError(f"{word} needs one of: {', '.join(group)}")
    close = difflib.get_close_matches(word, {c.name.split()[0] for c in COMMANDS}, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ValueError(f"unknown command {word!r}; {hint}{PROG} --help lists them")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return dispatch(list(sys.argv[1:] if argv is None else argv))
    except BrokenPipeError:  # `regnety-kit ... | head`: the reader left; stop quietly, as a shell tool does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        return EXIT_BROKEN_PIPE


def dispatch(argv: list[str]) -> int:
    """Help, version, or the named subcommand run through run_cli (its module imported there)."""
    if not argv:
        print(help_text(), file=sys.stderr)
        return EXIT_USAGE
    if argv[0] in ("-h", "--help"):
        print(help_text())
        return 0
    if argv[0] == "--version":
        print(f"{PROG} {__version__}")
        return 0
    try:
        command, rest = find(argv)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE

    def run(args: Sequence[str] | None) -> int | None:
        module = importlib.import_module(command.module)  # inside run_cli: a missing extra is one line
        with invoked_as(f"{PROG} {command.name}"):
            return module.main(args)

    return run_cli(run, rest)
