"""Faults of the SQLite store's files under real gunicorn: no worker dies, /healthz says
so, push answers 503, and exactly-once is back once the disk is writable again.

The reliability bot (tests/bots/reliability.py) counts how often its handlers really ran,
in a file of its own outside the faulty store. Faults are made as an operator or a full
disk would make them: ``chattr +i`` (root ignores file modes), a 16 MiB tmpfs filled up,
the database file deleted or replaced under the running workers.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from bots.reliability import count, init_effects
from server import GunicornServer, HTTPResult, signed_post
from services import find_free_port
from test_exactly_once import concurrently

from botkit.testing import command_payload, encode, event_payload

pytestmark = pytest.mark.slow

APP = "bots.reliability:create_app()"
KEY, SECRET = "faults-key", "faults-secret"
PREFIX = "/webhooks/stream"
#: Seconds a worker may take to notice that writes work again (the store's memory of a
#: failed write is 5 s) or that its file changed (looked at once a second).
RECOVERY = 20.0


def _can_chattr(directory: Path) -> bool:
    probe = directory / "chattr-probe"
    probe.write_text("x")
    try:
        ok = subprocess.run(["chattr", "+i", str(probe)], capture_output=True).returncode == 0
        subprocess.run(["chattr", "-i", str(probe)], capture_output=True)
        return ok
    except FileNotFoundError:
        return False
    finally:
        probe.unlink()


def _chattr(flag: str, *paths: Path) -> None:
    existing = [str(p) for p in paths if p.exists()]
    if existing:
        subprocess.run(["chattr", flag, *existing], check=True)


def _store_files(db: Path) -> list[Path]:
    return [db, Path(f"{db}-wal"), Path(f"{db}-shm")]


def _server(directory: Path, db: Path, *, healthy: bool = True, **extra: str) -> GunicornServer:
    effects = directory / "effects"
    effects.mkdir(exist_ok=True)
    init_effects(str(effects))
    env = {
        "RELIABILITY_DIR": str(effects),
        "STREAM_API_KEY": KEY,
        "STREAM_API_SECRET": SECRET,
        # nothing here calls Stream; were it to, it would find no one on loopback
        "STREAM_BASE_URL": f"http://127.0.0.1:{find_free_port()}",
        "BOTKIT_STORE": f"sqlite:///{db}",
        **extra,
    }
    return GunicornServer(APP, env=env, workers=2, healthy=healthy)


@pytest.fixture
def servers() -> Iterator[Callable[..., GunicornServer]]:
    started: list[GunicornServer] = []

    def start(directory: Path, db: Path, **kwargs: Any) -> GunicornServer:
        server = _server(directory, db, **kwargs)
        started.append(server)
        return server.start()

    try:
        yield start
    finally:
        for server in started:
            server.cleanup()


def post(server: GunicornServer, path: str, body: bytes, webhook_id: str) -> HTTPResult:
    conn = server.connection(timeout=30)
    try:
        return signed_post(
            conn, PREFIX + path, body, api_key=KEY, secret=SECRET, webhook_id=webhook_id
        )
    finally:
        conn.close()


def command(text: str) -> bytes:
    return encode(command_payload(text, user={"id": "alice"}))


def effects(server: GunicornServer) -> str:
    return server.env["RELIABILITY_DIR"]


def healthz(server: GunicornServer, tries: int = 6) -> set[int]:
    """The statuses of ``/healthz`` over fresh connections (which land on any worker)."""
    return {server.get("/healthz").status for _ in range(tries)}


def wait_healthy(server: GunicornServer, healthy: bool) -> None:
    want = {200} if healthy else {503}
    deadline = time.monotonic() + RECOVERY
    while (seen := healthz(server)) != want:
        assert time.monotonic() < deadline, f"/healthz still {seen}\n{server.log_tail()}"
        time.sleep(0.2)


def burst(
    server: GunicornServer, path: str, body: bytes, webhook_id: str, copies: int = 50
) -> list[HTTPResult]:
    """``copies`` deliveries of one webhook, on connections spread over both workers,
    released at once."""
    return concurrently(server, path, body, webhook_id, copies, api_key=KEY, secret=SECRET)


def assert_exactly_once(server: GunicornServer, label: str, ids: int = 3) -> None:
    """Bursts of 50 copies, each id's handler run once, every copy the same answer."""
    pids: set[str | None] = set()
    for _ in range(ids):
        webhook_id = str(uuid.uuid4())
        results = burst(
            server, "/custom-commands?type=count", command(f"/count {label}"), webhook_id
        )
        assert count(effects(server), "count", webhook_id) == 1, server.log_tail()
        assert {(r.status, r.body) for r in results} == {(results[0].status, results[0].body)}
        assert results[0].json()["message"]["text"] == f"counted {label}"
        pids |= {r.header("X-Worker-Pid") for r in results}
    assert len(pids) == 2, f"the copies all went to {pids}"


def assert_workers_alive(server: GunicornServer, pids: list[int]) -> None:
    assert server.running, server.log_tail()
    assert server.worker_pids() == pids, server.log_tail()
    assert "Traceback" not in server.log()


def assert_store_down(server: GunicornServer) -> None:
    """What a worker does while its store cannot be written."""
    wait_healthy(server, healthy=False)
    # push: 503, so that Stream retries what could not be deduplicated
    event_id = str(uuid.uuid4())
    for _ in range(4):  # on both workers
        pushed = post(server, "/push", encode(event_payload("message.new")), event_id)
        assert pushed.status == 503, pushed
    assert count(effects(server), "event", event_id) == 0
    # a command fails open: answered, run without dedup
    answered = post(
        server, "/custom-commands?type=count", command("/count down"), str(uuid.uuid4())
    )
    assert answered.status == 200
    assert answered.json()["message"]["text"] == "counted down"


@pytest.fixture
def ext_dir(tmp_path: Path) -> Path:
    if not _can_chattr(tmp_path):
        pytest.skip("chattr +i needs root and a filesystem that supports it")
    return tmp_path


# -- read-only ------------------------------------------------------------------------------


def test_read_only_store_while_serving_then_recovery(
    servers: Callable[..., GunicornServer], ext_dir: Path
) -> None:
    db = ext_dir / "store.db"
    metrics = ext_dir / "metrics"
    metrics.mkdir()
    server = servers(ext_dir, db, BOTKIT_METRICS="1", PROMETHEUS_MULTIPROC_DIR=str(metrics))
    pids = server.wait_for_workers()
    assert_exactly_once(server, "before", ids=1)  # both workers have the file open
    assert "botkit_store_errors_total{" not in server.get("/metrics").body.decode()
    _chattr("+i", *_store_files(db))
    try:
        assert_store_down(server)
        assert_workers_alive(server, pids)
        page = server.get("/metrics").body.decode()
        assert 'botkit_store_errors_total{kind="healthz"}' in page
        assert 'botkit_store_errors_total{kind="push"}' in page
    finally:
        _chattr("-i", *_store_files(db))
    wait_healthy(server, healthy=True)
    assert_exactly_once(server, "after")
    assert_workers_alive(server, pids)


def test_started_while_read_only_recovers(
    servers: Callable[..., GunicornServer], ext_dir: Path
) -> None:
    db = ext_dir / "store.db"
    sqlite3.connect(db).execute("CREATE TABLE made_before (x)").connection.close()
    _chattr("+i", db)
    try:
        server = servers(ext_dir, db, healthy=False)
        pids = server.wait_for_workers()
        assert_store_down(server)
        assert_workers_alive(server, pids)
    finally:
        _chattr("-i", *_store_files(db))
    # connections opened read-only are not kept: writes, /healthz and dedup come back
    wait_healthy(server, healthy=True)
    assert_exactly_once(server, "after")
    assert_workers_alive(server, pids)


# -- a full disk ----------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.decode().strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


def _fill(disk: Path) -> Path:
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:  # no space left
        pass
    finally:
        os.close(fd)
    return filler


def test_full_disk_turns_healthz_and_push_to_503_then_recovers(
    servers: Callable[..., GunicornServer], tmp_path: Path, small_disk: Path
) -> None:
    server = servers(tmp_path, small_disk / "store.db")
    pids = server.wait_for_workers()
    assert_exactly_once(server, "before", ids=1)
    filler = _fill(small_disk)
    try:
        # Answers a few KB long: the disk has no room for them (small ones may still fit
        # in pages SQLite already has, and are then deduplicated as usual).
        for _ in range(10):
            post(
                server,
                "/custom-commands?type=count",
                command("/count " + "x" * 4000),
                str(uuid.uuid4()),
            )
        assert_store_down(server)
        assert_workers_alive(server, pids)
    finally:
        filler.unlink()
    wait_healthy(server, healthy=True)
    assert_exactly_once(server, "after")
    assert_workers_alive(server, pids)


# -- the file deleted or replaced -----------------------------------------------------------


@pytest.mark.parametrize("fault", ["deleted", "replaced"])
def test_store_file_deleted_or_replaced_is_noticed(
    servers: Callable[..., GunicornServer], tmp_path: Path, fault: str
) -> None:
    db = tmp_path / "store.db"
    server = servers(tmp_path, db)
    pids = server.wait_for_workers()
    assert_exactly_once(server, "before", ids=1)
    if fault == "deleted":
        db.unlink()
    else:  # a copy put in its place, as a restore from a backup would
        other = tmp_path / "other.db"
        shutil.copy(db, other)
        os.replace(other, db)
    time.sleep(1.5)  # past the once-a-second look at the file
    wait_healthy(server, healthy=True)
    for _ in range(3):
        assert_exactly_once(server, fault, ids=5)
    assert_workers_alive(server, pids)
    assert db.exists()
    with sqlite3.connect(db) as check:
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
