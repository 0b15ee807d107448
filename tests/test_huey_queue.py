"""The durable queue: huey on SQLite and on a real redis-server, with real worker processes.

A worker here is ``python -m bots.events_worker`` (what ``botkit worker`` runs:
:func:`botkit.runtime.worker.run_consumer` for :mod:`bots.events`), or huey's own
``huey_consumer``. The bot's handlers record what they did in a SQLite file that the test
reads. The web side is the bot's real WSGI app: the Flask test client with a huey queue,
or a real gunicorn.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from bots.events import bot, records
from server import gunicorn, signed_post  # noqa: F401
from services import RedisServer, redis_server, redis_url  # noqa: F401
from stream_stub import StreamStub, stream_stub_fixture  # noqa: F401

from botkit import Config
from botkit.core.signing import KeyRing
from botkit.runtime.huey_queue import HueyQueue, QueueConfigError
from botkit.runtime.tasks import QueueUnavailable
from botkit.runtime.worker import run_consumer
from botkit.testing import TEST_API_KEY, TEST_API_SECRET, TestClient, encode, event_payload

pytestmark = pytest.mark.slow

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)
T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float = 20.0, what: str = "condition") -> T:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout}s")
        time.sleep(0.05)


class Worker:
    """A worker process for :mod:`bots.events`, its output in ``log_path``."""

    def __init__(
        self, queue_url: str, tmp: Path, *, command: list[str] | None = None, **env: str
    ) -> None:
        self.queue_url = queue_url
        self.tmp = tmp
        self.command = command or [sys.executable, "-m", "bots.events_worker"]
        self.log_path = tmp / f"worker-{uuid.uuid4().hex[:8]}.log"
        base = {
            k: v
            for k, v in os.environ.items()
            if k == "BOTKIT_REQUIRE_SERVICES" or not k.startswith(("BOTKIT_", "STREAM_"))
        }
        base.update(
            PYTHONPATH=os.pathsep.join([ROOT, TESTS]),
            PYTHONUNBUFFERED="1",
            PYTHONDONTWRITEBYTECODE="1",
            BOTKIT_QUEUE=queue_url,
            BOTKIT_STORE="memory://",
            BOTKIT_DEV="1",
            EVENTS_DB=str(tmp / "events.db"),
        )
        base.update(env)
        self.env = base
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command,
                cwd=self.tmp,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, and the exit code once it has stopped."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
            raise AssertionError(f"worker ignored SIGTERM for {timeout}s\n{self.log()}") from None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    """Start workers with ``workers(queue_url, **env)``; killed after the test."""
    started: list[Worker] = []

    def start(queue_url: str, **kwargs: Any) -> Worker:
        worker = Worker(queue_url, tmp_path, **kwargs)
        started.append(worker)
        return worker.start()

    try:
        yield start
    finally:
        for worker in started:
            worker.kill()


def sqlite_queue_url(tmp: Path) -> str:
    return f"huey+sqlite:///{tmp}/queue.db"  # tmp is absolute: four slashes


def web_client(tmp: Path, queue: HueyQueue) -> TestClient:
    """The bot's real app, in-process, with a SQLite idempotency store and ``queue``."""
    config = Config(
        keyring=KeyRing({TEST_API_KEY: (TEST_API_SECRET,)}),
        store_url=f"sqlite:///{tmp}/store.db",
    )
    return bot.test_client(config=config, queue=queue)


def events_db(tmp: Path) -> str:
    return str(tmp / "events.db")


def queue_empty(queue: HueyQueue) -> bool:
    state = queue.state()
    return bool(state["ok"] and state["pending"] == 0 and state["scheduled"] == 0)


# -- configuration --------------------------------------------------------------------------


def test_queue_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    queue = HueyQueue(sqlite_queue_url(tmp_path), bot)
    try:
        assert queue.durable is True
        assert queue.huey.storage.filename == f"{tmp_path}/queue.db"
        assert queue.state() == {
            "url": sqlite_queue_url(tmp_path),
            "durable": True,
            "pending": 0,
            "scheduled": 0,
            "ok": True,
        }
    finally:
        queue.close()

    monkeypatch.chdir(tmp_path)
    relative = HueyQueue("huey+sqlite:///var/queue.db", bot)
    assert relative.huey.storage.filename == "var/queue.db"
    assert (tmp_path / "var" / "queue.db").exists()
    relative.close()

    redis = HueyQueue("huey+redis://:s3cret@127.0.0.1:1/2", bot)
    assert "s3cret" not in redis.url
    assert redis.huey.storage.conn.connection_pool.connection_kwargs["db"] == 2

    for url, problem in [
        ("huey+sqlite://host/queue.db", "has no host"),
        ("huey+sqlite:///", "needs a file"),
        ("huey+sqlite:///:memory:", "needs a file"),
        ("huey+redis:///0", "missing Redis host"),
        ("huey+redis://localhost:port/0", "Port could not be cast"),
        ("huey+amqp://localhost", "unsupported storage 'amqp'"),
        ("redis://localhost:6379/0", "not a huey URL"),
    ]:
        with pytest.raises(QueueConfigError, match=problem) as info:
            HueyQueue(url, bot)
        assert "BOTKIT_QUEUE" in str(info.value)

    monkeypatch.setitem(sys.modules, "redis", None)  # as if redis were not installed
    with pytest.raises(QueueConfigError, match=r"pip install 'botkit\[huey,redis\]'"):
        HueyQueue("huey+redis://localhost:6379/0", bot)
    HueyQueue(sqlite_queue_url(tmp_path), bot).close()  # SQLite does not need it

    monkeypatch.setitem(sys.modules, "huey", None)  # as if botkit[huey] were not installed
    with pytest.raises(QueueConfigError, match=r"pip install 'botkit\[huey\]'"):
        HueyQueue("huey+redis://localhost:6379/0", bot)


def test_run_consumer_needs_a_huey_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BOTKIT_QUEUE", raising=False)
    with pytest.raises(QueueConfigError, match="nothing for a worker to do"):
        run_consumer(bot)
    with pytest.raises(QueueConfigError, match="thread://"):
        run_consumer(bot, "thread://")


# -- SQLite: exactly once, durable across a worker restart, retries ---------------------------


def test_three_deliveries_while_the_worker_is_down_are_handled_once_when_it_starts(
    tmp_path: Path, workers: Callable[..., Worker]
) -> None:
    queue = HueyQueue(sqlite_queue_url(tmp_path), bot)
    client = web_client(tmp_path, queue)
    webhook_id = str(uuid.uuid4())
    body = event_payload("message.new")  # Stream's retries carry the same id and body
    replies = [
        client.post("/push", body, webhook_id=webhook_id, attempt=attempt, kind="push")
        for attempt in (1, 2, 3)
    ]
    assert [r.status for r in replies] == [200, 200, 200]
    assert [r.json for r in replies] == [{"ok": True}] * 3
    # Stored durably, once; nothing ran (no worker yet).
    assert queue.state()["pending"] == 1
    assert records(events_db(tmp_path)) == []

    worker = workers(queue.url)
    wait_for(lambda: records(events_db(tmp_path)), what="the handler ran")
    wait_for(lambda: queue_empty(queue), what="the queue emptied")
    done = records(events_db(tmp_path))
    assert [(r["handler"], r["webhook_id"], r["attempt"]) for r in done] == [
        ("on_message", webhook_id, 1)
    ]
    assert done[0]["pid"] == worker.process.pid  # type: ignore[union-attr]
    assert worker.stop() == 0


def test_retries_skip_handlers_that_succeeded_and_give_up_with_a_traceback(
    tmp_path: Path, workers: Callable[..., Worker]
) -> None:
    queue = HueyQueue(sqlite_queue_url(tmp_path), bot, retry_delay=0.1)
    client = web_client(tmp_path, queue)
    worker = workers(queue.url)
    assert client.event("reaction.new", webhook_id="wh-flaky").status == 200
    assert client.event("channel.truncated", webhook_id="wh-doomed").status == 200
    db = events_db(tmp_path)

    wait_for(lambda: records(db, handler="flaky", phase="done"), what="flaky succeeded")
    wait_for(lambda: "gave up" in worker.log(), what="doomed gave up")
    wait_for(lambda: queue_empty(queue), what="the queue emptied")
    assert worker.stop() == 0

    # reaction.new: steady ran once although its event was retried twice for flaky.
    assert len(records(db, handler="steady")) == 1
    assert len(records(db, handler="flaky", phase="try")) == 3
    # channel.truncated: 3 tries in all, then one error with the webhook id and traceback.
    assert len(records(db, handler="doomed")) == 3
    log = worker.log()
    assert (
        log.count("botkit.tasks ERROR task event gave up after 3 tries (webhook id wh-doomed)") == 1
    )
    after = log.split("gave up after 3 tries (webhook id wh-doomed)", 1)[1]
    assert after.lstrip().startswith("Traceback (most recent call last)")
    assert "RuntimeError: doomed handler always fails" in after
    assert log.count("gave up") == 1  # reaction.new recovered: not given up


def test_slow_handler_does_not_delay_the_200_and_sigterm_lets_it_finish(
    tmp_path: Path, workers: Callable[..., Worker]
) -> None:
    queue = HueyQueue(sqlite_queue_url(tmp_path), bot)
    client = web_client(tmp_path, queue)
    worker = workers(queue.url, SLOW_SECONDS="2")
    db = events_db(tmp_path)

    reply = client.event("message.updated", webhook_id="wh-slow")
    assert (reply.status, reply.json) == (200, {"ok": True})
    assert records(db, handler="slow", phase="finished") == []  # answered before it ran
    wait_for(lambda: records(db, handler="slow", phase="started"), what="slow started")

    assert worker.stop() == 0  # SIGTERM while the handler sleeps
    assert len(records(db, handler="slow", phase="finished")) == 1
    assert "Shutting down gracefully" in worker.log()
    assert queue_empty(queue)


def test_handler_cut_off_by_the_shutdown_timeout_runs_again_in_the_next_worker(
    tmp_path: Path, workers: Callable[..., Worker]
) -> None:
    queue = HueyQueue(sqlite_queue_url(tmp_path), bot)
    client = web_client(tmp_path, queue)
    first = workers(queue.url, SLOW_SECONDS="3", SHUTDOWN_TIMEOUT="0.2")
    db = events_db(tmp_path)
    assert client.event("message.updated", webhook_id="wh-cut").status == 200
    wait_for(lambda: records(db, handler="slow", phase="started"), what="slow started")

    assert first.stop() == 0
    assert records(db, handler="slow", phase="finished") == []
    assert "interrupted by shutdown; queued again (webhook id wh-cut)" in first.log()
    assert queue.state()["pending"] == 1

    second = workers(queue.url, SLOW_SECONDS="0")
    done = wait_for(lambda: records(db, handler="slow", phase="finished"), what="rerun")
    assert done[0]["pid"] == second.process.pid  # type: ignore[union-attr]
    assert second.stop() == 0


def test_huey_consumer_command_with_botkit_app(
    tmp_path: Path, workers: Callable[..., Worker]
) -> None:
    queue = HueyQueue(sqlite_queue_url(tmp_path), bot)
    client = web_client(tmp_path, queue)
    consumer = os.path.join(os.path.dirname(sys.executable), "huey_consumer")
    worker = workers(
        queue.url,
        command=[consumer, "botkit.runtime.worker.huey", "-w", "1", "-g", "TERM"],
        BOTKIT_APP="bots.events:bot",
    )
    assert client.event("message.new", webhook_id="wh-huey-consumer").status == 200
    wait_for(lambda: records(events_db(tmp_path)), what="the handler ran")
    assert worker.stop() == 0
    assert [r["webhook_id"] for r in records(events_db(tmp_path))] == ["wh-huey-consumer"]


def test_late_command_result_is_posted_by_the_worker(
    tmp_path: Path, workers: Callable[..., Worker], stream_stub: StreamStub
) -> None:
    queue = HueyQueue(sqlite_queue_url(tmp_path), bot)
    queue.submit(
        "late_result",
        {
            "command": "slow",
            "cid": "messaging:general",
            "message": {"text": "done at last", "type": "regular", "mood": "late"},
            "webhook_id": "wh-late",
        },
    )
    worker = workers(
        queue.url,
        STREAM_API_KEY=stream_stub.api_key,
        STREAM_API_SECRET=stream_stub.api_secret,
        STREAM_BASE_URL=stream_stub.url,
        STREAM_BOT_USER_ID="helper-bot",
    )
    sent = stream_stub.wait_for(lambda: stream_stub.sent_messages("messaging:general"), 20)
    assert worker.stop() == 0
    assert [(m["text"], m["user"]["id"], m.get("mood")) for m in sent] == [
        ("done at last", "helper-bot", "late")
    ]


# -- Redis: gunicorn, exactly once, worker restart, enqueue failure --------------------------


def test_redis_gunicorn_handles_three_deliveries_once_and_survives_a_worker_restart(
    tmp_path: Path,
    redis_url: str,
    workers: Callable[..., Worker],
    gunicorn: Callable[..., Any],
) -> None:
    queue_url = f"huey+{redis_url}"
    server = gunicorn(
        "bots.events:create_app()",
        workers=2,
        env={
            "BOTKIT_DEV": "1",
            "BOTKIT_QUEUE": queue_url,
            "BOTKIT_STORE": redis_url,
            "EVENTS_DB": events_db(tmp_path),
        },
    )
    queue = HueyQueue(queue_url, bot)  # to look at the queue
    db = events_db(tmp_path)
    worker = workers(queue_url)

    def push(webhook_id: str, body: bytes, attempt: int = 1) -> Any:
        conn = server.connection()
        try:
            return signed_post(
                conn, "/webhooks/stream/push", body, webhook_id=webhook_id, attempt=attempt
            )
        finally:
            conn.close()

    first = str(uuid.uuid4())
    body = encode(event_payload("message.new"))
    for attempt in (1, 2, 3):  # Stream's retries carry the same id and body
        result = push(first, body, attempt)
        assert (result.status, result.json()) == (200, {"ok": True})
    wait_for(lambda: records(db, webhook_id=first), what="the first event ran")
    wait_for(lambda: queue_empty(queue), what="the queue emptied")
    assert len(records(db, webhook_id=first)) == 1

    # The worker stops; events keep being accepted, and wait in Redis.
    assert worker.stop() == 0
    second = str(uuid.uuid4())
    assert push(second, encode(event_payload("message.new"))).status == 200
    health = server.get("/healthz").json()
    assert health["queue"]["pending"] == 1
    assert health["queue"]["durable"] is True
    assert records(db, webhook_id=second) == []

    workers(queue_url)  # a new worker picks it up
    wait_for(lambda: records(db, webhook_id=second), what="the queued event ran")
    wait_for(lambda: queue_empty(queue), what="the queue emptied")
    assert len(records(db, webhook_id=second)) == 1
    assert "Traceback" not in server.log()


def test_push_answers_503_while_redis_is_down_and_200_on_the_retry(
    tmp_path: Path,
    redis_server: RedisServer,
    redis_url: str,
) -> None:
    queue = HueyQueue(f"huey+{redis_url}", bot)
    client = web_client(tmp_path, queue)  # SQLite store: only the queue is down
    webhook_id = str(uuid.uuid4())
    body = event_payload("message.new")
    redis_server.stop()
    try:
        with pytest.raises(QueueUnavailable):
            queue.submit("event", {"event": {"type": "message.new"}})
        reply = client.post("/push", body, webhook_id=webhook_id, kind="push")
        assert (reply.status, reply.json) == (503, {"error": "could not queue the event"})
        health = client.app.test_client().get("/healthz").get_json()
        assert health["queue"]["ok"] is False
        assert "ConnectionError" in health["queue"]["error"]
    finally:
        redis_server.start()
    # Stream retries the same delivery; now it is queued (the 503 was not stored).
    retry = client.post("/push", body, webhook_id=webhook_id, attempt=2, kind="push")
    assert (retry.status, retry.json) == (200, {"ok": True})
    assert queue.state()["pending"] == 1
