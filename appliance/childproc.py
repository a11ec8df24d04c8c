"""Worker child processes: the one channel the server speaks to them through, and what every
child does to itself.

Both kinds of child (the warm parser, ``appliance.ingest.worker``, and the
one-job trainer, ``appliance.train.child.worker``) talk JSON lines over their
stdin/stdout, never pickle: the child's output crosses a trust boundary. The
parent side is :class:`ChildChannel`:

- ``ChildChannel.spawn(argv, env=child_env(), max_line=...)`` starts the child
  with pipes (stderr inherited, or a file of the caller's);
- ``send(message)`` writes one JSON line; ``close_input()`` sends EOF;
- ``read_line(deadline)`` is the one select loop: it returns the next full line,
  or raises :class:`ReplyTimeout` at the (monotonic) deadline,
  :class:`ReplyTooBig` past ``max_line`` bytes without a newline, or
  :class:`ChildGone` when the child closed its stdout (it died);
- ``stop(graceful=...)`` closes stdin and waits briefly (graceful), else kills
  it (SIGKILL), reaps it and answers its exit status; ``kill()`` is the
  thread-safe "stop now" for shutdown.

The child side: :func:`claim_stdout` keeps the protocol on a private copy of
stdout (stray library prints go to stderr), :func:`emit` writes one line,
:func:`limit_memory` caps the address space and :func:`watch_parent` exits
when the server is gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import selectors
import subprocess
import threading
import time
from pathlib import Path
from typing import IO, Any

_READ_CHUNK = 1 << 20


class ChildGone(Exception):
    """The child closed its stdout (it died) before a full reply line."""


class ReplyTooBig(ChildGone):
    """The child sent more than ``max_line`` bytes without a newline."""


class ReplyTimeout(Exception):
    """No full reply line before the deadline."""


def child_env(*, malloc_arenas: str = "2", keep_callers_arenas: bool = True) -> dict[str, str]:
    """The environment for a child that must import this very package, wherever the server
    was started from. glibc's per-thread malloc arenas reserve address space that
    RLIMIT_AS counts: ``MALLOC_ARENA_MAX`` keeps that small (the caller's own setting wins
    unless ``keep_callers_arenas`` is false)."""
    env = dict(os.environ)
    if keep_callers_arenas:
        env.setdefault("MALLOC_ARENA_MAX", malloc_arenas)
    else:
        env["MALLOC_ARENA_MAX"] = malloc_arenas
    root = str(Path(__file__).resolve().parents[1])  # the folder holding `appliance/`
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


class ChildChannel:
    """One child process and its JSON-lines pipes (see the module docstring)."""

    def __init__(self, proc: subprocess.Popen[bytes], *, max_line: int) -> None:
        assert proc.stdin is not None and proc.stdout is not None
        self.proc = proc
        self.max_line = max_line
        self._buf = bytearray()
        self._kill_lock = threading.Lock()

    @classmethod
    def spawn(cls, argv: list[str], *, env: dict[str, str], max_line: int,
              stderr: IO[bytes] | int | None = None) -> ChildChannel:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=stderr, env=env, close_fds=True)
        return cls(proc, max_line=max_line)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    # -- talking -------------------------------------------------------------------------

    def send(self, message: dict[str, Any]) -> None:
        """One JSON line to the child (OSError/BrokenPipeError when it is gone)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")
        self.proc.stdin.flush()

    def close_input(self) -> None:
        """EOF on the child's stdin: a one-job child has all it gets, a warm one leaves."""
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()

    def read_line(self, deadline: float) -> bytes:
        """The next full line (without its newline), by ``deadline`` (``time.monotonic``)."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        buf = self._buf
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            scanned = 0
            while (end := buf.find(b"\n", scanned)) < 0:
                scanned = len(buf)
                if scanned > self.max_line:
                    raise ReplyTooBig(f"the child sent over {self.max_line} bytes without "
                                      "a newline")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ReplyTimeout
                if not sel.select(remaining):
                    continue
                chunk = os.read(fd, _READ_CHUNK)
                if not chunk:
                    raise ChildGone("the child process exited")
                buf += chunk
        line = bytes(buf[:end])
        del buf[: end + 1]
        return line

    def read_json(self, deadline: float) -> Any:
        """The next line as JSON (ValueError when it is not JSON)."""
        return json.loads(self.read_line(deadline))

    # -- ending ----------------------------------------------------------------------------

    def kill(self) -> None:
        """SIGKILL now if still running (any thread; the owner then reaps it)."""
        with self._kill_lock, contextlib.suppress(OSError):
            if self.proc.poll() is None:
                self.proc.kill()

    def wait(self, timeout: float | None = None) -> int:
        return self.proc.wait(timeout)

    def stop(self, *, graceful: bool, grace_s: float = 5.0) -> int | None:
        """End the child and answer its exit status: EOF and a short wait when
        ``graceful``, SIGKILL otherwise (or after the wait); pipes closed, child reaped."""
        proc = self.proc
        if graceful and proc.poll() is None and proc.stdin is not None:
            try:
                proc.stdin.close()   # the child leaves its loop on EOF
                return proc.wait(timeout=grace_s)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.kill()
        status = proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self._buf = bytearray()
        return status


# -- the child side ----------------------------------------------------------------------------


def claim_stdout() -> IO[bytes]:
    """Keep the protocol on a private copy of stdout; stray prints from libraries go to
    stderr from now on."""
    channel = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    return channel


def emit(channel: IO[bytes], line: str) -> None:
    """One protocol line to the parent (``line`` is JSON text without its newline)."""
    channel.write(line.encode() + b"\n")
    channel.flush()


def limit_memory(memory_mb: int) -> None:
    """Cap the address space (RLIMIT_AS) and turn off core files."""
    limit = int(memory_mb) * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def watch_parent(parent_pid: int) -> None:
    """Exit as soon as the parent is gone (checked every second, busy or not).

    Not PR_SET_PDEATHSIG: it fires when the *thread* that spawned the child
    exits, and the server's threads come and go.
    """

    def watch() -> None:
        while True:
            if os.getppid() != parent_pid:
                os._exit(0)
            time.sleep(1.0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
