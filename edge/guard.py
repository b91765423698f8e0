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
import gc
import hashlib
import os
import select
import signal
import sys
import time
from collections.abc import Callable

from edge.capture import tail
from edge.errors import ModelFileError

TIME_LIMIT_S = 120.0                   # a 600 px EfficientNet-B7 loads and runs once in ~15 s on 2 slow cores
MEMORY_HEADROOM = 8 << 30              # address space the child may take on top of what the parent has mapped
_PYTHON_ERROR = 3                      # the child's exit status for a Python exception (its first line on the pipe)
_MARK = b"\n@@kit-guard: "              # how the child tells its Python exception from the runtime's own output
_passed: set[str] = set()


def first_load(name: str, data: bytes, attempt: Callable[[], None], time_limit: float = TIME_LIMIT_S,
               key: str = "") -> None:
    """Run `attempt` (load the model and run it once) in a forked child; ModelFileError if the child crashes, exits
    abnormally, runs out of memory or hangs. Any other Python exception in the child is left to the caller's own
    load, which raises it with its own message. `key`: what else the load depends on (the runtime options), so a file
    that passed one way is not trusted another way. Linux only (fork without exec is not safe on macOS); elsewhere
    the file is loaded in-process, as before."""
    if not sys.platform.startswith("linux"):
        return
    digest = hashlib.sha256(data).hexdigest() + key
    if digest in _passed:
        return
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its stdout and stderr go to the pipe; it never returns to the caller's code
        _child(read_end, write_end, len(data), attempt)
    os.close(write_end)
    said, timed_out, status = bytearray(), False, 0
    try:
        said, timed_out = _collect(read_end, pid, time_limit)
        _, status = os.waitpid(pid, 0)
    except BaseException:  # Ctrl-C while waiting: the child goes too
        _kill(pid)
        raise
    finally:
        os.close(read_end)
    if timed_out:
        raise ModelFileError(f"{name}: the runtime did not finish loading and running it within {time_limit:.0f} s; "
                             "the file is damaged or not a model this runtime can run")
    output, _, python_error = bytes(said).partition(_MARK)
    words = _last_words(output)
    said_last = f": {words}" if words else ""
    if os.WIFSIGNALED(status):
        raise ModelFileError(f"the runtime crashed loading {name} ({signal.Signals(os.WTERMSIG(status)).name}){said_last}; "
                             "the file is damaged or not a model this runtime can run")
    code = os.WEXITSTATUS(status)
    if code == _PYTHON_ERROR:
        error = python_error.decode("utf-8", "replace").strip()
        if error.startswith("MemoryError") or "bad_alloc" in error:
            raise ModelFileError(f"{name}: loading it needs more memory than the {MEMORY_HEADROOM >> 30} GiB the kit "
                                 "allows a model it cannot vouch for; the file is damaged or not a model for this "
                                 "device")
        return  # the caller's in-process load raises the same error, with its own one-line message
    if code != 0:
        raise ModelFileError(f"the runtime exited with status {code} loading {name}{said_last}; the file is damaged or not a "
                             "model this runtime can run")
    _passed.add(digest)


def _child(read_end: int, write_end: int, size: int, attempt: Callable[[], None]) -> None:
    status = _PYTHON_ERROR
    try:
        gc.disable()  # collecting the parent's garbage here would run its runtimes' destructors on threads it lacks
        faulthandler.disable()  # its Python traceback dump would bury the runtime's own message
        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, signal.SIG_DFL)
        _die_with_parent()
        os.close(read_end)
        os.dup2(write_end, 1)
        os.dup2(write_end, 2)
        _limit_memory(size)
        attempt()
        status = 0
    except BaseException as exc:
        try:
            os.write(write_end, _MARK + f"{type(exc).__name__}: {exc}".encode("utf-8", "replace")[:500])
        except OSError:
            pass
    finally:
        os._exit(status)


def _collect(read_end: int, pid: int, time_limit: float) -> tuple[bytearray, bool]:
    """What the child writes until it closes the pipe (the last 8 KB), or True when it passed the time limit."""
    said, deadline = bytearray(), time.monotonic() + time_limit
    poller = select.poll()
    poller.register(read_end, select.POLLIN | select.POLLHUP)
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            os.kill(pid, signal.SIGKILL)
            return said, True
        if poller.poll(min(left, 1.0) * 1000):
            chunk = os.read(read_end, 65536)
            if not chunk:
                return said, False
            said += chunk
            del said[:-8192]


def _die_with_parent() -> None:
    """Linux: the child is killed when the process that forked it dies (a hung child is never left behind)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _limit_memory(size: int) -> None:
    """Cap the child's address space, so a file whose shapes ask for terabytes fails its allocation instead of
    swapping the machine. Never above the hard limit the process already has."""
    import resource

    try:
        with open("/proc/self/statm") as f:
            mapped = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = mapped + MEMORY_HEADROOM + 4 * size
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (OSError, ValueError):
        pass


def _last_words(said: bytes) -> str:
    lines = [line for line in said.decode("utf-8", "replace").splitlines()
             if not line.startswith("INFO: Created TensorFlow Lite XNNPACK")]
    return tail("\n".join(lines), 3)[:400]


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass
