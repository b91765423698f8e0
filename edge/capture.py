"""Silencing the converters' native chatter (hundreds of lines on stdout/stderr) and keeping it for errors."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile


class Captured:
    """What a captured block wrote (call it), and `console`: the real stderr, for progress bars."""

    def __init__(self, sink, console):
        self._sink, self.console = sink, console

    def __call__(self) -> str:
        self._sink.flush()
        self._sink.seek(0)
        return self._sink.read().decode("utf-8", "replace")


@contextlib.contextmanager
def captured_native_output():
    """Redirect file descriptors 1 and 2 to a temp file for the block; yield a Captured."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    console = os.fdopen(os.dup(saved[1]), "w", buffering=1)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield Captured(sink, console)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            console.close()


def tail(text: str, lines: int = 5) -> str:
    """The last meaningful lines of captured output, for an error message."""
    kept = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith(("W0000", "I0000"))]
    return " | ".join(kept[-lines:])
