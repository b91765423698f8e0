"""One exception family for user-facing problems, and the CLI shell that reports them.

A `KitError` message says what is wrong and what to do about it, in one line. CLIs print it on
stderr and exit with status 2; they never show a traceback for a user's mistake.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence


class KitError(Exception):
    """A problem the user can fix: the message names it and says what to do."""


class ConfigError(KitError):
    """An unknown variant, flavour or option value."""


class WeightsError(KitError):
    """A checkpoint that does not fit the model, or is not a checkpoint at all."""


class PreprocessError(KitError):
    """A preprocessing spec that is malformed or inconsistent."""


def run_cli(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> int:
    """Run a CLI entry point; turn a KitError into one line on stderr and exit code 2."""
    try:
        return int(main(argv) or 0)
    except KitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


class ImageError(KitError):
    """An image that cannot be decoded, or is unreasonably large."""
