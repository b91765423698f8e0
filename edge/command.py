"""What every command of the kit shares: the name its usage line shows, and `--json PATH|-`.

A CLI module names itself `python -m MODULE` when run that way, and `regnety-kit SUB` when the
installed command (regnety_kit.cli) runs it: `prog(module)` gives the one or the other.

`--json PATH` writes the results as a JSON file (atomically); `--json -` writes them to stdout, and
then nothing else goes there (the human-readable text is left out; progress stays on stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from edge.atomic import atomic_write

STDOUT = "-"

_invoked_as: ContextVar[str | None] = ContextVar("invoked_as", default=None)


def prog(module: str) -> str:
    """The usage name of a CLI module: `regnety-kit SUB` inside `invoked_as`, else `python -m MODULE`."""
    return _invoked_as.get() or f"python -m {module}"


@contextmanager
def invoked_as(name: str) -> Iterator[None]:
    """Run a CLI module's main() under the name the user typed (e.g. "regnety-kit classify")."""
    token = _invoked_as.set(name)
    try:
        yield
    finally:
        _invoked_as.reset(token)


def parser_for(module: str, doc: str | None = None, **kwargs) -> argparse.ArgumentParser:
    """A CLI module's ArgumentParser, named by prog(module). With `doc` (the module's docstring), its text
    after the first paragraph is the description, kept as written."""
    if doc is not None:
        kwargs.update(description=doc.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    return argparse.ArgumentParser(prog=prog(module), **kwargs)


def add_json_argument(parser: argparse.ArgumentParser, what: str = "the results", default: str | None = None) -> None:
    """`--json PATH|-`: write `what` as JSON to PATH, or to stdout with `-`."""
    parser.add_argument("--json", metavar="PATH", default=default,
                        help=f"write {what} as JSON to PATH, or to stdout with '-' (then nothing else goes to stdout)")


def json_to_stdout(dest: str | Path | None) -> bool:
    """True when `--json -` sends the JSON to stdout (so the text output must stay off it)."""
    return dest is not None and str(dest) == STDOUT


def write_json(data, dest: str | Path, indent: int | None = 2) -> None:
    """`data` as JSON (one trailing newline) to the file `dest`, written atomically, or to stdout for `-`."""
    text = json.dumps(data, indent=indent) + "\n"
    if json_to_stdout(dest):
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        atomic_write(dest, text.encode())


def emit(text: str, data, dest: str | Path | None, indent: int | None = 2) -> None:
    """A command's results: `text` on stdout unless `--json -` takes stdout; `data` as JSON where --json says."""
    if not json_to_stdout(dest):
        print(text)
    if dest is not None:
        write_json(data, dest, indent)
