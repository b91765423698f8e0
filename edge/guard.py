"""A model file's first load and inference, tried in a child process first.

A runtime's native code can abort or segfault on a malformed file that every check before it passed (a bit flip
in an operator's options, a quantization table that fits the schema but not the kernel). In-process, that kills
the user's program with no word of which file did it. So a file the kit cannot vouch for (no matching content
digest, edge.seal) is first loaded and run once on zeros in a forked child: a child that dies becomes one
ModelFileError naming the file, the signal and the runtime's own last words; a child that hangs past the time
limit is killed and named; a child that succeeds leaves the real load to the caller's process, where it behaves
the same. Files that passed are remembered for the process, by content, so loading one again costs nothing.
"""

from __future__ import annotations

import faulthandler
import hashlib
import os
import select
import signal
import time
from collections.abc import Callable

from edge.errors import ModelFileError

TIME_LIMIT_S = 120.0                   # a 600 px EfficientNet-B7 loads and runs once in ~15 s on 2 slow cores
MEMORY_HEADROOM = 8 << 30              # address space the child may take on top of what the parent has mapped
_passed: set[str] = set()


def first_load(name: str, data: bytes, attempt: Callable[[], None], time_limit: float = TIME_LIMIT_S) -> None:
    """Run `attempt` (load the model and run it once) in a forked child; ModelFileError if the child crashes or hangs.
    A Python exception in the child is not reported here: the caller's own load raises it, with its own message."""
    if not hasattr(os, "fork"):  # no fork (Windows): load in-process, as before
        return
    key = hashlib.sha256(data).hexdigest()
    if key in _passed:
        return
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its stdout and stderr go to the pipe; it never returns to the caller's code
        status = 3
        try:
            faulthandler.disable()  # its Python traceback dump would bury the runtime's own message
            os.close(read_end)
            os.dup2(write_end, 1)
            os.dup2(write_end, 2)
            _limit_memory(len(data))
            attempt()
            status = 0
        except BaseException:
            pass
        finally:
            os._exit(status)
    os.close(write_end)
    said, deadline, timed_out = bytearray(), time.monotonic() + time_limit, False
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                os.kill(pid, signal.SIGKILL)
                break
            ready, _, _ = select.select([read_end], [], [], min(left, 1.0))
            if ready:
                chunk = os.read(read_end, 65536)
                if not chunk:
                    break
                said += chunk
                del said[:-8192]
        _, status = os.waitpid(pid, 0)
    except BaseException:  # Ctrl-C while waiting: the child goes too
        _kill(pid)
        raise
    finally:
        os.close(read_end)
    if timed_out:
        raise ModelFileError(f"{name}: the runtime did not finish loading and running it within {time_limit:.0f} s; "
                             "the file is damaged or not a model this runtime can run")
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        words = _last_words(bytes(said))
        raise ModelFileError(f"the runtime crashed loading {name} ({signal.Signals(number).name})"
                             f"{': ' + words if words else ''}; the file is damaged or not a model this runtime can run")
    if os.WEXITSTATUS(status) == 0:
        _passed.add(key)


def _limit_memory(size: int) -> None:
    """Cap the child's address space, so a file whose shapes ask for terabytes fails its allocation instead of
    swapping the machine."""
    import resource  # POSIX only, like fork

    try:
        with open("/proc/self/statm") as f:
            mapped = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return
    limit = mapped + MEMORY_HEADROOM + 4 * size
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _last_words(said: bytes) -> str:
    lines = [line.strip() for line in said.decode("utf-8", "replace").splitlines()]
    kept = [line for line in lines if line and not line.startswith("INFO: Created TensorFlow Lite XNNPACK")]
    return " | ".join(kept[-3:])[:400]


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass
