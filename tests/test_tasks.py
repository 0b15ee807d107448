"""Push events on the in-process queue (``ThreadQueue``) and the task plumbing around it.

The durable queue (huey, in worker processes) is tested in ``test_huey_queue.py``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import defaultdict
from types import SimpleNamespace
from typing import Any

import pytest

from botkit import Bot, Config, ConfigError, Event
from botkit.core.signing import KeyRing
from botkit.runtime import tasks as tasks_module
from botkit.runtime.runtime import open_queue
from botkit.runtime.tasks import (
    MAX_ATTEMPTS,
    QueueUnavailable,
    TaskQueue,
    ThreadQueue,
    run_event,
)
from botkit.testing import TEST_API_KEY, TEST_API_SECRET, TestClient, message

BOT_USER = "helper-bot"


def config(**fields: Any) -> Config:
    return Config(
        keyring=KeyRing({TEST_API_KEY: (TEST_API_SECRET,)}), store_url="memory://", **fields
    )


def thread_client(
    bot: Bot, backoff: float = 0.001, **fields: Any
) -> tuple[TestClient, ThreadQueue]:
    queue = ThreadQueue(bot, max_workers=4, backoff=backoff)
    return bot.test_client(config=config(**fields), queue=queue), queue


# -- off the request ------------------------------------------------------------------------


def test_handlers_run_off_the_request_and_after_the_200() -> None:
    bot = Bot()
    started, release, finished = threading.Event(), threading.Event(), threading.Event()
    threads: list[int] = []

    @bot.on("message.new")
    def slow(event: Event) -> None:
        threads.append(threading.get_ident())
        started.set()
        release.wait(10)
        finished.set()

    client, queue = thread_client(bot)
    try:
        reply = client.event("message.new", webhook_id="wh-slow")
        assert reply.status == 200
        assert reply.json == {"ok": True}
        # The answer came back while the handler is still blocked in its own thread.
        assert not finished.is_set()
        assert started.wait(10)
        assert threads != [threading.get_ident()]
    finally:
        release.set()
        queue.close()
    assert finished.is_set()


def test_event_without_handlers_is_acknowledged_and_not_queued() -> None:
    bot = Bot()
    submitted: list[str] = []

    class Recording(TaskQueue):
        def submit(self, name: str, payload: dict[str, Any]) -> None:
            submitted.append(name)

    @bot.on("message.new")
    def on_message(event: Event) -> None:
        pass

    client = bot.test_client(config=config(), queue=Recording())
    reply = client.event("channel.created")
    assert (reply.status, reply.json) == (200, {"ok": True, "ignored": "no handler"})
    assert submitted == []


# -- retries --------------------------------------------------------------------------------


def test_failing_handler_is_retried_with_backoff_then_logged_with_traceback(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    bot = Bot()
    broken_calls: list[int] = []
    steady_calls: list[str | None] = []
    delays: list[float] = []
    monkeypatch.setattr(
        tasks_module,
        "time",
        SimpleNamespace(sleep=delays.append, perf_counter=time.perf_counter),
    )

    @bot.on("message.new")
    def steady(event: Event) -> None:
        steady_calls.append(event.webhook_id)

    @bot.on("message.new")
    def broken(event: Event) -> None:
        broken_calls.append(event.attempt)
        raise ValueError("broken handler")

    client, queue = thread_client(bot, backoff=0.5)
    with caplog.at_level(logging.INFO, logger="botkit"):
        assert client.event("message.new", webhook_id="wh-broken", attempt=2).status == 200
        queue.close()

    assert len(broken_calls) == MAX_ATTEMPTS  # bounded
    assert steady_calls == ["wh-broken"]  # the handler that succeeded is not run again
    # Exponential backoff with jitter: 0.5 s, then 1 s, each times 0.5..1.5.
    assert len(delays) == MAX_ATTEMPTS - 1
    for n, delay in enumerate(delays):
        assert 0.5 * 2**n * 0.5 <= delay <= 0.5 * 2**n * 1.5

    gave_up = [r for r in caplog.records if "gave up" in r.getMessage()]
    assert len(gave_up) == 1
    record = gave_up[0]
    assert record.levelno == logging.ERROR
    assert "wh-broken" in record.getMessage()
    assert f"after {MAX_ATTEMPTS} attempts" in record.getMessage()
    assert record.exc_info is not None
    assert "ValueError: broken handler" in caplog.text
    assert "Traceback (most recent call last)" in caplog.text
    # Each failed try is logged with the handler's name, the webhook id and a traceback.
    failed = [r for r in caplog.records if "event handler" in r.getMessage()]
    assert len(failed) == MAX_ATTEMPTS
    assert all("wh-broken" in r.getMessage() and "broken" in r.getMessage() for r in failed)


def test_handler_that_recovers_is_not_logged_as_given_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bot = Bot()
    calls: list[str | None] = []

    @bot.on("reaction.new")
    def flaky(event: Event) -> None:
        calls.append(event.webhook_id)
        if len(calls) < MAX_ATTEMPTS:
            raise RuntimeError("not yet")

    client, queue = thread_client(bot)
    with caplog.at_level(logging.INFO, logger="botkit"):
        client.event("reaction.new", webhook_id="wh-flaky")
        queue.close()
    assert calls == ["wh-flaky"] * MAX_ATTEMPTS
    assert not [r for r in caplog.records if "gave up" in r.getMessage()]


def test_run_event_keeps_the_handlers_that_succeeded_in_the_payload() -> None:
    bot = Bot()
    runs: dict[str, int] = defaultdict(int)
    fail = [True]

    @bot.on("message.new")
    def first(event: Event) -> None:
        runs["first"] += 1

    @bot.on("message.new")
    def second(event: Event) -> None:
        runs["second"] += 1
        if fail[0]:
            raise RuntimeError("second fails once")

    payload: dict[str, Any] = {"event": {"type": "message.new"}, "webhook_id": "wh-done"}
    with pytest.raises(RuntimeError):
        run_event(bot, payload)
    assert len(payload["done"]) == 1
    assert payload["done"][0].endswith(".first")
    fail[0] = False
    run_event(bot, payload)
    assert runs == {"first": 1, "second": 2}
    assert len(payload["done"]) == 2


# -- routing --------------------------------------------------------------------------------


def test_wildcards_several_types_catch_all_and_unknown_types() -> None:
    bot = Bot()
    seen: dict[str, list[str]] = defaultdict(list)

    @bot.on("reaction.*")
    def reactions(event: Event) -> None:
        seen["reactions"].append(event.type)

    @bot.on("member.added", "member.removed")
    def members(event: Event) -> None:
        seen["members"].append(event.type)

    @bot.on()
    def everything(event: Event) -> None:
        seen["everything"].append(event.type)

    @bot.on("*")
    def star(event: Event) -> None:
        seen["star"].append(event.type)

    sent = [
        "reaction.new",
        "reaction.deleted",
        "member.added",
        "member.removed",
        "message.new",
        "brand.new_event_type",  # a type botkit has never heard of
    ]
    client, queue = thread_client(bot)
    try:
        for event_type in sent:
            assert client.event(event_type).json == {"ok": True}
    finally:
        queue.close()
    assert sorted(seen["reactions"]) == ["reaction.deleted", "reaction.new"]
    assert sorted(seen["members"]) == ["member.added", "member.removed"]
    assert sorted(seen["everything"]) == sorted(sent)
    assert sorted(seen["star"]) == sorted(sent)


def test_unknown_type_without_a_catch_all_is_acknowledged() -> None:
    bot = Bot()

    @bot.on("reaction.*")
    def reactions(event: Event) -> None:
        raise AssertionError("must not run")

    client, queue = thread_client(bot)
    try:
        reply = client.event("reactionary.thing")
    finally:
        queue.close()
    assert (reply.status, reply.json) == (200, {"ok": True, "ignored": "no handler"})


def test_events_of_the_bot_user_are_ignored() -> None:
    bot = Bot()
    seen: list[str | None] = []

    @bot.on()
    def everything(event: Event) -> None:
        seen.append((event.user or {}).get("id"))

    client, queue = thread_client(bot, bot_user_id=BOT_USER)
    try:
        own = client.event("message.new", user={"id": BOT_USER})
        other = client.event(
            "message.new", user={"id": "alice"}, message=message("hi", user={"id": "alice"})
        )
    finally:
        queue.close()
    assert (own.status, own.json) == (200, {"ok": True, "ignored": "own event"})
    assert other.json == {"ok": True}
    assert seen == ["alice"]


# -- queue failures and configuration ---------------------------------------------------------


def test_push_answers_503_when_the_queue_refuses() -> None:
    bot = Bot()

    class Down(TaskQueue):
        def submit(self, name: str, payload: dict[str, Any]) -> None:
            raise QueueUnavailable("queue is down")

    @bot.on("message.new")
    def on_message(event: Event) -> None:
        pass

    client = bot.test_client(config=config(), queue=Down())
    reply = client.event("message.new", webhook_id="wh-down")
    assert reply.status == 503
    assert reply.json == {"error": "could not queue the event"}
    # Not stored as the answer: Stream's retry is queued once the queue is back.
    client.runtime.queue = ThreadQueue(bot)
    try:
        assert client.event("message.new", webhook_id="wh-down", attempt=2).json == {"ok": True}
    finally:
        client.runtime.queue.close()


def test_open_queue_urls(tmp_path: Any) -> None:
    bot = Bot()
    assert isinstance(open_queue(None, bot), ThreadQueue)
    assert isinstance(open_queue("thread://", bot), ThreadQueue)
    queue = open_queue(f"huey+sqlite:///{tmp_path}/queue.db", bot)
    try:
        assert queue.durable is True
        assert queue.state()["ok"] is True
    finally:
        queue.close()
    with pytest.raises(ValueError, match="celery://x"):
        open_queue("celery://x", bot)


def test_unusable_queue_url_fails_at_app_creation() -> None:
    bot = Bot()
    with pytest.raises(ConfigError, match="BOTKIT_QUEUE"):
        bot.create_app(config(queue_url="rabbit://localhost"))


def test_thread_queue_state_in_healthz() -> None:
    bot = Bot()
    client, queue = thread_client(bot)
    try:
        health = client.app.test_client().get("/healthz").get_json()
    finally:
        queue.close()
    assert health["queue"] == {"url": "thread://", "durable": False, "ok": True, "pending": 0}


def test_thread_queue_refuses_past_max_pending() -> None:
    """A flood of events must not grow memory without end: past the bound, submit refuses
    (the push route then answers 503, so Stream retries later)."""
    from botkit import Bot
    from botkit.runtime.tasks import QueueUnavailable, ThreadQueue

    bot = Bot()
    gate = threading.Event()

    @bot.on("message.new")
    def wait(event: Any) -> None:
        gate.wait(5)

    queue = ThreadQueue(bot, max_workers=1, max_pending=2)
    payload = {"event": {"type": "message.new"}}
    try:
        queue.submit("event", dict(payload))
        queue.submit("event", dict(payload))
        with pytest.raises(QueueUnavailable):
            queue.submit("event", dict(payload))
        assert queue.state()["pending"] == 2
    finally:
        gate.set()
        queue.close()
    assert queue.state()["pending"] == 0


def test_a_full_queue_refuses_before_the_store_is_touched() -> None:
    """Under overload a refusal costs no store writes (no claim, then no release), and
    once there is room again Stream's retry is queued and acknowledged."""
    bot = Bot()
    gate = threading.Event()
    ran: list[str | None] = []

    @bot.on("message.new")
    def wait(event: Event) -> None:
        ran.append(event.webhook_id)
        gate.wait(10)

    queue = ThreadQueue(bot, max_workers=1, max_pending=1)
    client = bot.test_client(config=config(bot_user_id=BOT_USER), queue=queue)
    store = client.runtime.store
    claimed: list[str] = []
    claim = store.claim

    def counted(key: str, fingerprint: str, ttl: float) -> Any:
        claimed.append(key.rsplit(":", 1)[1])
        return claim(key, fingerprint, ttl)

    store.claim = counted  # type: ignore[method-assign]
    try:
        assert client.event("message.new", webhook_id="wh-1").json == {"ok": True}
        assert queue.full()
        refused = client.event("message.new", webhook_id="wh-2")
        assert (refused.status, refused.json) == (503, {"error": "could not queue the event"})
        # what would not be queued is answered as ever
        assert client.event("reaction.new", webhook_id="wh-3").status == 200
        own = client.event("message.new", webhook_id="wh-4", user={"id": BOT_USER})
        assert own.json == {"ok": True, "ignored": "own event"}
        assert claimed == ["wh-1", "wh-3", "wh-4"]
        assert store.get("push:" + TEST_API_KEY + ":wh-2") is None
    finally:
        gate.set()
    deadline = time.monotonic() + 10
    while queue.full() and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        retry = client.event("message.new", webhook_id="wh-2", attempt=2)
        assert (retry.status, retry.json) == (200, {"ok": True})
        while len(ran) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        queue.close()
    assert ran == ["wh-1", "wh-2"]


def test_an_exiting_process_waits_for_queued_work_then_says_what_is_lost(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A gunicorn worker that exits (a deploy, a restart) gives thread:// work a few
    seconds, refuses new work, and logs how many tasks it could not run."""
    from botkit import Bot
    from botkit.runtime import tasks
    from botkit.runtime.tasks import QueueUnavailable, ThreadQueue

    bot = Bot()
    gate = threading.Event()
    ran: list[str] = []

    @bot.on("message.new")
    def wait(event: Any) -> None:
        ran.append(event.type)
        gate.wait(5)

    monkeypatch.setattr(tasks, "EXIT_DRAIN_SECONDS", 0.3)
    queue = ThreadQueue(bot, max_workers=1)
    body = json.dumps({"type": "message.new"}).encode()
    try:
        for _ in range(3):
            queue.submit("event", {"body": body})
        with caplog.at_level(logging.ERROR, logger="botkit.tasks"):
            queue._drain_at_exit()
        assert "3 queued tasks were lost" in caplog.text
        with pytest.raises(QueueUnavailable):
            queue.submit("event", {"body": body})
        gate.set()  # the work queued before the exit still runs, if there is time
        deadline = time.monotonic() + 5
        while queue.state()["pending"] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert queue.state()["pending"] == 0 and ran == ["message.new"] * 3
    finally:
        gate.set()
