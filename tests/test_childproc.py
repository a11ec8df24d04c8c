"""The one child-process channel: JSON lines, a deadline, a size cap, a kill."""

from __future__ import annotations

import os
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from appliance.childproc import (
    ChildChannel,
    ChildGone,
    ReplyTimeout,
    ReplyTooBig,
    child_env,
)

ECHO = """
import sys
for line in sys.stdin:
    sys.stdout.write(line)
    sys.stdout.flush()
"""


def spawn(code: str, *, max_line: int = 1 << 20) -> ChildChannel:
    return ChildChannel.spawn([sys.executable, "-c", textwrap.dedent(code)], env=child_env(),
                              max_line=max_line)


def gone(pid: int, within_s: float = 5.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.02)
    return False


def soon(seconds: float = 10.0) -> float:
    return time.monotonic() + seconds


def test_channel_sends_and_reads_json_lines_in_order() -> None:
    child = spawn(ECHO)
    try:
        for i in range(3):
            child.send({"n": i, "text": "é\n"})  # a newline inside a value stays escaped
        assert [child.read_json(soon()) for _ in range(3)] == [
            {"n": i, "text": "é\n"} for i in range(3)]
    finally:
        assert child.stop(graceful=True) == 0  # EOF: the child leaves its loop


def test_channel_keeps_the_rest_of_a_chunk_for_the_next_read() -> None:
    child = spawn("import sys; sys.stdout.write('one\\ntwo\\nthr'); sys.stdout.flush(); "
                  "import time; time.sleep(0.2); sys.stdout.write('ee\\n'); sys.stdout.flush()")
    try:
        assert [child.read_line(soon()) for _ in range(3)] == [b"one", b"two", b"three"]
    finally:
        child.stop(graceful=False)


def test_channel_read_past_deadline_times_out_and_stop_kills_the_child() -> None:
    child = spawn("import time; time.sleep(600)")
    started = time.monotonic()
    with pytest.raises(ReplyTimeout):
        child.read_line(time.monotonic() + 0.3)
    assert 0.25 < time.monotonic() - started < 5
    assert child.alive()
    status = child.stop(graceful=False)
    assert status == -9 and gone(child.pid)


def test_channel_line_over_the_cap_is_refused_before_it_ends() -> None:
    child = spawn("import sys; sys.stdout.write('x' * (3 << 20)); sys.stdout.flush(); "
                  "import time; time.sleep(600)", max_line=1 << 20)
    try:
        with pytest.raises(ReplyTooBig):
            child.read_line(soon())
    finally:
        child.stop(graceful=False)
    assert gone(child.pid)


def test_channel_child_that_exits_is_gone_with_its_status() -> None:
    child = spawn("import sys; sys.stdout.write('partial'); sys.exit(3)")
    with pytest.raises(ChildGone):
        child.read_line(soon())
    assert child.stop(graceful=False) == 3


def test_channel_kill_from_another_thread_ends_a_blocked_read() -> None:
    child = spawn("import time; time.sleep(600)")
    threading.Timer(0.2, child.kill).start()
    with pytest.raises(ChildGone):
        child.read_line(soon())
    assert child.stop(graceful=False) == -9


def test_channel_send_to_a_dead_child_raises_os_error() -> None:
    child = spawn("pass")
    child.wait(10)
    with pytest.raises(OSError):
        for _ in range(100):  # the pipe may take a write or two before it breaks
            child.send({"x": "y" * 100_000})
    child.stop(graceful=False)


def test_child_env_puts_this_package_first_on_the_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    monkeypatch.setenv("MALLOC_ARENA_MAX", "8")
    env = child_env()
    first, rest = env["PYTHONPATH"].split(os.pathsep, 1)
    assert (Path(first) / "appliance" / "childproc.py").is_file() and rest == "/elsewhere"
    assert env["MALLOC_ARENA_MAX"] == "8"  # the operator's setting wins by default
    assert child_env(keep_callers_arenas=False)["MALLOC_ARENA_MAX"] == "2"
