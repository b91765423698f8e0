"""Atomic file writes: a temporary file in the target folder, then a rename.

A failed or interrupted run leaves the previous file or none, never half of one.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from edge.errors import KitError


def _cannot_write(path: Path, exc: OSError, advice: str) -> KitError:
    """One line for an OSError writing `path`: a folder that takes no new files is named as such."""
    if path.parent.is_dir() and exc.errno in (errno.ENOENT, errno.EACCES, errno.EPERM, errno.EROFS):
        return KitError(f"cannot write {path}: the folder {path.parent} does not accept new files "
                        f"({exc.strerror}); {advice}")
    return KitError(f"cannot write {path}: {exc.strerror or exc}; {advice}")


def atomic_write(path: str | Path, data: bytes | Callable[[BinaryIO], object]) -> Path:
    """Write `data` to `path` atomically; an unwritable place raises one clear KitError. `data` may be a function
    that writes into the open file instead (a large result streamed, never held whole as bytes)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise _cannot_write(path, exc, "choose another --out path") from None
    try:
        with os.fdopen(fd, "wb") as f:
            data(f) if callable(data) else f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException as exc:  # a failed write, Ctrl-C or any other interruption: no temporary file is left
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _cannot_write(path, exc, "check the space and permissions there") from None
        raise
    return path


def ensure_writable(path: str | Path) -> Path:
    """Fail early (before minutes of work) when `path` cannot be written; creates its folder."""
    path = Path(path)
    if path.is_dir():
        raise KitError(f"{path} is a folder; pass a file path")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".probe")
    except OSError as exc:
        raise _cannot_write(path, exc, "choose another --out path") from None
    os.close(fd)
    os.unlink(tmp)
    return path


def leftovers(path: Path) -> list[Path]:
    """Files an interrupted (killed) run writing `path` can leave beside it: atomic_write's temporary files of the
    artifact and its reports, the pipeline's candidate and its temporary file, ensure_writable's probe."""
    folder, name = path.parent, path.name
    candidate = f".{path.stem}.candidate{path.suffix}"
    patterns = [f".{name}.*.tmp", f".{name}.json.*.tmp", f".{name}.md.*.tmp", f".{name}.*.probe", candidate,
                f".{candidate}.*.tmp"]
    return sorted({p for pattern in patterns for p in folder.glob(pattern) if p.is_file()})


@contextlib.contextmanager
def output_place(path: str | Path, log: Callable[[str], None] = print) -> Iterator[Path]:
    """The place a command writes `path`: checked writable before the work (ensure_writable), cleared of what an
    earlier killed run left there (said in one line), and, when the work fails, without the folders it created
    for it (if they are still empty)."""
    path = Path(path)
    created = [p for p in [path.parent, *path.parent.parents] if not p.exists()]
    ensure_writable(path)
    stale = leftovers(path)
    for old in stale:
        old.unlink(missing_ok=True)
    if stale:
        log(f"removed {len(stale)} file(s) an interrupted run left beside {path.name}: "
            f"{', '.join(p.name for p in stale)}")
    try:
        yield path
    except BaseException:
        for folder in created:  # deepest first
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty
        raise
