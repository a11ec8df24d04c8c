"""An audit hook in every Python process of the appliance (tests/test_offline.py).

Put on PYTHONPATH with APPLIANCE_GUARD_LOG set: every process that starts
Python (serve, the console, the parser and trainer children, the CLI)
appends JSON lines to that file: one ``start`` line, then one line per

- ``net``: a socket connect/sendto, a getaddrinfo or gethostbyname whose
  target is not a loopback address (the attempt is recorded, not blocked);
- ``write``: a file opened for writing, created, renamed, removed or chmod-ed
  outside the roots in APPLIANCE_GUARD_WRITABLE (os.pathsep-separated).

Native code (DuckDB's HTTP client, a browser) does not go through these
hooks; the test watches connect() system calls with strace for that.
"""

from __future__ import annotations

import ipaddress
import json
import os
import sys

_LOG = os.environ.get("APPLIANCE_GUARD_LOG")
_ROOTS = os.environ.get("APPLIANCE_GUARD_WRITABLE", "").split(os.pathsep)
_WRITABLE = (*(os.path.realpath(p) for p in _ROOTS if p), "/dev", "/proc")
_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", ""}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_busy = False


def _emit(kind: str, **fields: object) -> None:
    global _busy
    if _busy or not _LOG:
        return
    _busy = True  # our own write below must not be audited again
    try:
        line = json.dumps({"kind": kind, "pid": os.getpid(), **fields}, default=repr)
        fd = os.open(_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)
    finally:
        _busy = False


def _is_local(host: object) -> bool:
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    if not isinstance(host, str):
        return True
    host = host.strip("[]").split("%")[0].lower()
    if host in _LOCAL_NAMES:
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False  # a name other than localhost would need a resolver
    return ip.is_loopback or ip.is_unspecified


def _where() -> str:
    frame = sys._getframe(2)
    out = []
    while frame is not None and len(out) < 6:
        out.append(f"{frame.f_code.co_filename}:{frame.f_lineno}")
        frame = frame.f_back
    return " <- ".join(out)


def _outside(path: object) -> str | None:
    if isinstance(path, int):
        return None  # an fd: opened (and checked) before
    if isinstance(path, bytes):
        path = path.decode(errors="replace")
    if not isinstance(path, str | os.PathLike):
        return None
    full = os.path.realpath(os.fspath(path))
    if any(full == root or full.startswith(root + os.sep) for root in _WRITABLE):
        return None
    return full


def _hook(event: str, args: tuple) -> None:
    if _busy:
        return
    if event in ("socket.connect", "socket.sendto"):
        address = args[1]
        if isinstance(address, tuple) and address and not _is_local(address[0]):
            _emit("net", event=event, target=list(address[:2]), where=_where())
    elif event in ("socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr"):
        if not _is_local(args[0]):
            _emit("net", event=event, target=[args[0]], where=_where())
    elif event == "open":
        path, mode, flags = args
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & _WRITE_FLAGS)
        if writing and (full := _outside(path)):
            _emit("write", event=event, path=full, where=_where())
    elif event in ("os.mkdir", "os.remove", "os.rmdir", "os.chmod", "os.truncate"):
        if full := _outside(args[0]):
            _emit("write", event=event, path=full, where=_where())
    elif event in ("os.symlink", "os.link"):  # (src, dst, ...): dst is created
        if full := _outside(args[1]):
            _emit("write", event=event, path=full, where=_where())
    elif event == "os.rename":  # also os.replace: src goes, dst comes
        for path in args[:2]:
            if full := _outside(path):
                _emit("write", event=event, path=full, where=_where())


if _LOG:
    _emit("start", argv=list(getattr(sys, "orig_argv", sys.argv)))
    sys.addaudithook(_hook)
