"""File drop end to end, against a real `appliance serve` process."""

from __future__ import annotations

import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

GOOD = b"customer_id,age,plan,churned\n" + b"".join(
    f"{i},{20 + i % 50},{['basic', 'plus', 'pro'][i % 3]},{i % 2}\n".encode() for i in range(200)
)


def _reason(home: Path, dataset: str | None, name: str) -> dict[str, Any]:
    folder = home / "quarantine" / (dataset or "_invalid")
    matches = [p for p in folder.glob("*.reason.json") if json.loads(p.read_text())["file"] == name]
    assert matches, f"no reason.json for {name} in {sorted(p.name for p in folder.iterdir())}"
    return json.loads(matches[-1].read_text())


def test_drop_becomes_a_version_within_two_polls(server_factory: Any) -> None:
    server = server_factory()
    started = time.monotonic()
    row = server.drop("customers", "customers.csv", GOOD)
    elapsed = time.monotonic() - started
    assert row["outcome"] == "accepted" and row["version"] == 1
    assert elapsed < 2 * 0.2 + row["duration_ms"] / 1000 + 1.0, elapsed
    with server.client() as c:
        v = c.version("customers", 1)
        assert v["rows"] == 200 and v["status"] == "accepted"
        assert {col["name"] for col in v["columns"]} == {"customer_id", "age", "plan", "churned"}
        server.wait_for_summaries("customers")
        v = c.version("customers", 1)
        assert {s["name"] for s in v["summary"]} == {"customer_id", "age", "plan", "churned"}
        assert c.contract("customers")["version"] == 1
        lineage = c.lineage("dataset:customers@1")
        assert lineage["upstream"][0]["src"] == f"file:{v['sha256']}"
    assert (server.home / "archive" / "customers" / "customers.csv").read_bytes() == GOOD


def test_same_bytes_twice_make_one_version_and_new_bytes_a_new_one(server_factory: Any) -> None:
    server = server_factory()
    assert server.drop("customers", "a.csv", GOOD)["version"] == 1
    dup = server.drop("customers", "a.csv", GOOD)
    assert dup["outcome"] == "quarantined" and dup["reason"] == "duplicate"
    assert _reason(server.home, "customers", "a.csv")["reason"] == "duplicate"
    newer = server.drop("customers", "a.csv", GOOD + b"150,33,pro,1\n")
    assert newer["outcome"] == "accepted" and newer["version"] == 2
    with server.client() as c:
        assert [v["number"] for v in c.versions("customers")] == [2, 1]


def test_a_file_written_slowly_in_chunks_is_taken_once_and_complete(server_factory: Any) -> None:
    server = server_factory()
    folder = server.home / "inbox" / "customers"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "slow.csv"
    lines = GOOD.splitlines(keepends=True)
    chunks = [b"".join(lines[i:i + 10]) for i in range(0, len(lines), 10)]
    for chunk in chunks:  # ~3 s, reopening the file for each chunk like a naive copier
        with target.open("ab") as fh:
            fh.write(chunk)
        time.sleep(3.0 / len(chunks))
    known: set[str] = set()
    row = server.wait_for_ingest("slow.csv", known=known)
    assert row["outcome"] == "accepted"
    time.sleep(1.0)
    assert [r["file_name"] for r in server.ingests()].count("slow.csv") == 1
    with server.client() as c:
        assert c.version("customers", 1)["rows"] == 200


HOSTILE: list[tuple[str, str, Any, str]] = [
    ("ragged", "ragged.csv", b"a,b\n1,2\n3,4,5\n6\n", "malformed"),
    ("unclosed-quote", "quote.csv", b'a,b\n1,"open\n2,3\n', "malformed"),
    ("latin1", "latin1.csv", "name,city\nJos\u00e9,M\u00fcnchen\n".encode("latin-1"), "encoding"),
    ("utf16", "utf16.csv", "name,n\nx,1\n".encode("utf-16"), "encoding"),
    ("empty", "empty.csv", b"", "empty"),
    ("header-only", "header.csv", b"a,b,c\n", "empty"),
    ("gzip-bomb", "bomb.csv.gz", "BOMB", "too_big"),
    ("unsupported", "sheet.xlsx", b"PK\x03\x04", "unsupported_format"),
]


@pytest.mark.parametrize(("label", "name", "content", "reason"), HOSTILE,
                         ids=[h[0] for h in HOSTILE])
def test_hostile_file_is_quarantined_with_a_reason(
    server_factory: Any, tmp_path: Path, label: str, name: str, content: Any, reason: str
) -> None:
    env = {"APPLIANCE_MAX_UNCOMPRESSED_BYTES": str(5 * 1024 * 1024)}
    server = server_factory(env=env)
    if content == "BOMB":
        content = gzip.compress(b"a,b\n" + b"0" * (40 * 1024 * 1024), 9)
        assert len(content) < 200_000
    row = server.drop("hostile", name, content)
    assert row["outcome"] == "quarantined" and row["reason"] == reason, row
    assert _reason(server.home, "hostile", name)["reason"] == reason
    with server.client() as c:
        assert c.health()["status"] == "ok"
        assert not any(d["name"] == "hostile" and d["versions"] for d in c.datasets())


@pytest.mark.parametrize(
    ("name", "make", "reason"),
    [
        ("passwd.csv", lambda p: os.symlink("/etc/passwd", p), "not_regular_file"),
        ("store.csv", lambda p: os.symlink(p.parent.parent.parent / "appliance.duckdb", p),
         "not_regular_file"),
        ("fifo.csv", os.mkfifo, "not_regular_file"),
        ("hard.csv", lambda p: os.link(p.parent.parent.parent / "audit.head", p), "not_regular_file"),
        ("dir.csv", lambda p: p.mkdir(), "not_regular_file"),
        ("a\\..\\b.csv", lambda p: p.write_bytes(GOOD), "invalid_name"),
        ("x..y.csv", lambda p: p.write_bytes(GOOD), "invalid_name"),
    ],
    ids=["symlink-passwd", "symlink-store", "fifo", "hardlink", "directory", "backslashes", "dotdot"],
)
def test_hostile_inbox_entry_is_quarantined_unopened(
    server_factory: Any, name: str, make: Any, reason: str
) -> None:
    server = server_factory()
    folder = server.home / "inbox" / "hostile"
    folder.mkdir(parents=True, exist_ok=True)
    known = {r["id"] for r in server.ingests()}
    make(folder / name)
    row = server.wait_for_ingest(name, known=known)
    assert row["outcome"] == "quarantined" and row["reason"] == reason, row
    assert not (folder / name).exists() and not (folder / name).is_symlink()
    assert _reason(server.home, "hostile", name)["reason"] == reason
    assert Path("/etc/passwd").exists() and (server.home / "appliance.duckdb").exists()
    with server.client() as c:
        assert c.health()["status"] == "ok"


def test_a_badly_named_dataset_folder_is_quarantined(server_factory: Any, drop: Any) -> None:
    server = server_factory()
    known = {r["id"] for r in server.ingests()}
    drop(server.home / "inbox", "Not A Dataset", "a.csv", GOOD)
    row = server.wait_for_ingest("a.csv", known=known)
    assert row["reason"] == "invalid_name"
    assert _reason(server.home, None, "a.csv")["reason"] == "invalid_name"


def test_a_second_serve_on_the_same_home_fails_fast_and_the_first_keeps_serving(
    server_factory: Any,
) -> None:
    first = server_factory()
    env = {**os.environ, "APPLIANCE_HOME": str(first.home), "APPLIANCE_PORT": "0"}
    started = time.monotonic()
    second = subprocess.run([sys.executable, "-m", "appliance", "serve"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert second.returncode != 0
    assert f"store is locked by PID {first.proc.pid}" in second.stderr
    assert time.monotonic() - started < 30
    with first.client() as c:
        assert c.health()["status"] == "ok"
    assert first.drop("customers", "after.csv", GOOD)["outcome"] == "accepted"


def test_upload_and_local_cli_ingest_take_the_same_path(server_factory: Any, tmp_path: Path) -> None:
    server = server_factory()
    f = tmp_path / "up.csv"
    f.write_bytes(GOOD)
    with server.client() as c:
        out = c.upload(f, "uploaded")
        assert out["outcome"] == "accepted" and out["version"] == 1
        again = c.upload(f, "uploaded")
        assert again["reason"] == "duplicate"
    env = {**os.environ, "APPLIANCE_HOME": str(server.home), "APPLIANCE_TOKEN": server._token,
           "APPLIANCE_PORT": str(server.port)}
    cli = subprocess.run([sys.executable, "-m", "appliance", "datasets", "list"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0 and "uploaded" in cli.stdout, cli.stderr


def test_an_oversized_upload_is_refused_before_it_fills_the_disk(server_factory: Any) -> None:
    server = server_factory(env={"APPLIANCE_MAX_FILE_BYTES": str(1024 * 1024)})
    token = server.client().token

    def body() -> Any:  # 200 MB of chunked body with no declared length
        for _ in range(200):
            yield b"0" * (1024 * 1024)

    resp = httpx.post(f"{server.url}/api/v1/datasets/big/files", params={"filename": "big.csv"},
                      content=body(), headers={"Authorization": f"Bearer {token}"}, timeout=60)
    assert resp.status_code == 413 and resp.json()["error"]["detail"]["reason"] == "too_big"
    assert not [p for p in (server.home / "claimed").rglob("*") if p.is_file()]

    # A declared 2 GB body is refused from its headers alone, before a byte is read.
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            b"POST /api/v1/datasets/big/files?filename=big.csv HTTP/1.1\r\n"
            b"Host: 127.0.0.1\r\nAuthorization: Bearer " + token.encode() + b"\r\n"
            b"Content-Type: application/octet-stream\r\nContent-Length: 2147483648\r\n\r\n"
        )
        head = sock.recv(4096).decode(errors="replace")
    assert head.startswith("HTTP/1.1 413"), head
    with server.client() as c:
        assert c.health()["status"] == "ok"


def test_kill_9_during_ingestion_loses_nothing_and_duplicates_nothing(server_factory: Any,
                                                                     tmp_path: Path) -> None:
    rows = 1_500_000
    big = tmp_path / "big.csv"
    with big.open("w") as fh:
        fh.write("id,x,y,label\n")
        for i in range(rows):
            fh.write(f"{i},{i * 0.5},{(i * 7) % 13},{i % 2}\n")
    home = tmp_path / "home"
    server = server_factory(home)
    folder = home / "inbox" / "big"
    folder.mkdir(parents=True)
    os.rename(big, folder / "big.csv")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not list((home / "claimed").rglob("*__big.csv")):
        time.sleep(0.02)
    time.sleep(0.3)  # well inside the parse
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait()
    with server_factory(home).client() as c:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            versions = c.versions("big") if any(d["name"] == "big" for d in c.datasets()) else []
            if versions:
                break
            time.sleep(0.2)
        assert [(v["number"], v["rows"], v["status"]) for v in versions] == [(1, rows, "accepted")]
    assert not list((home / "claimed").rglob("*big.csv"))
    assert (home / "archive" / "big" / "big.csv").exists()


def test_concurrent_drops_into_two_datasets_each_become_a_version(
    server_factory: Any, drop: Any
) -> None:
    server = server_factory()
    threads = [threading.Thread(target=drop, args=(server.home / "inbox", ds, "f.csv", GOOD))
               for ds in ("one", "two")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with server.client() as c:
            names = {d["name"]: d["current_version"] for d in c.datasets()}
        if names == {"one": 1, "two": 1}:
            break
        time.sleep(0.1)
    assert names == {"one": 1, "two": 1}
