"""The watchdog: handlers in the request thread, answered at their deadline if late.

The same, end to end under gunicorn, is in ``test_exactly_once.py`` (section 6b).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from typing import Any, NamedTuple

import pytest
from werkzeug.datastructures import Headers

from botkit import BeforeSendContext, Bot, CommandContext, Config, Message
from botkit.core.pipeline import Answer
from botkit.core.signing import KeyRing
from botkit.runtime import deadlines
from botkit.runtime.deadlines import AnsweredAtDeadline, Watchdog
from botkit.runtime.dispatch import Dispatcher
from botkit.runtime.runtime import Runtime
from botkit.runtime.tasks import TaskQueue
from botkit.testing import before_send_payload, command_payload, encode, signed_headers

KEY, SECRET = "deadline-key", "deadline-secret"


def test_a_call_finished_in_time_is_answered_by_its_own_thread() -> None:
    watchdog = Watchdog(4)
    called: list[str] = []
    turn = watchdog.watch("/test", time.monotonic() + 60, lambda: called.append("watchdog"))
    assert watchdog.watching == 1
    assert watchdog.finish(turn) is True
    assert watchdog.watching == 0
    assert called == []


def test_the_watchdog_answers_a_late_call_and_the_caller_waits_for_that_answer() -> None:
    watchdog = Watchdog(4)
    answered = threading.Event()
    seen: list[str] = []

    def at_deadline() -> None:
        seen.append(threading.current_thread().name)
        time.sleep(0.2)  # the caller's finish() must wait for the answer to be out
        answered.set()

    turn = watchdog.watch("/test", time.monotonic() + 0.05, at_deadline)
    while not seen:
        time.sleep(0.01)
    assert watchdog.finish(turn) is False
    assert answered.is_set()
    assert seen == ["botkit-watchdog"]


def test_a_failing_answer_is_logged_and_the_call_still_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    watchdog = Watchdog(4)
    turn = watchdog.watch("/test", time.monotonic(), lambda: 1 / 0)
    deadline = time.monotonic() + 10
    while "could not answer" not in caplog.text:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert watchdog.finish(turn) is False


def test_inline_calls_are_bounded_and_slow_handlers_go_to_the_pool(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    watchdog = Watchdog(2)
    turns = [watchdog.watch("/test", time.monotonic() + 60, lambda: None) for _ in range(2)]
    assert not watchdog.allows("/gif")  # two calls run inline already
    watchdog.finish(turns.pop())
    assert watchdog.allows("/gif")
    watchdog.mark_slow("/gif")
    assert not watchdog.allows("/gif")
    assert watchdog.allows("/ticket")
    monkeypatch.setattr(deadlines, "SLOW_FOR", 0.0)
    watchdog.mark_slow("/gif")
    assert watchdog.allows("/gif")  # the minute is over


def test_a_call_over_half_its_budget_sends_the_next_ones_to_the_pool(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="botkit")
    watchdog = Watchdog(4)
    quick = watchdog.watch("/quick", time.monotonic() + 60, lambda: None)
    assert watchdog.finish(quick) is True
    assert watchdog.allows("/quick")
    slow = watchdog.watch("/slow", time.monotonic() + 0.2, lambda: None)
    time.sleep(0.15)  # over half of 0.2 s, under the deadline (or past it: slow either way)
    watchdog.finish(slow)
    assert not watchdog.allows("/slow")
    assert "/slow took" in caplog.text


def test_a_forked_child_has_a_watchdog_of_its_own() -> None:
    watchdog = Watchdog(4)
    watchdog.finish(
        watchdog.watch("/test", time.monotonic() + 60, lambda: None)
    )  # parent's thread runs
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the parent's thread did not come along
        try:
            done = threading.Event()
            turn = watchdog.watch("/test", time.monotonic() + 0.05, done.set)
            ok = done.wait(10) and watchdog.finish(turn) is False
            os.write(write_end, b"ok" if ok else b"no")
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        assert os.read(read_end, 2) == b"ok"
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)


# -- the pipeline, given a way to answer from another thread ----------------------------------


class Recorded(TaskQueue):
    url = "recorded://"

    def __init__(self) -> None:
        self.jobs: list[tuple[str, dict[str, Any]]] = []

    def submit(self, name: str, payload: dict[str, Any]) -> None:
        self.jobs.append((name, payload))


class Early:
    """Stands for the web server: what the watchdog sent, and in which thread.
    Sending sets ``release``, which the bot's slow handlers wait for."""

    def __init__(self, release: threading.Event | None = None) -> None:
        self.sent: list[Answer] = []
        self.threads: list[str] = []
        self.release = release

    def __call__(self, response: Answer) -> None:
        self.sent.append(response)
        self.threads.append(threading.current_thread().name)
        if self.release is not None:
            self.release.set()


class LateBot(NamedTuple):
    dispatcher: Dispatcher
    queue: Recorded
    where: list[str]  # the threads the commands ran in
    release: threading.Event  # lets the slow handlers return


@pytest.fixture
def late_bot() -> Iterator[LateBot]:
    bot = Bot()
    where: list[str] = []
    release = threading.Event()

    @bot.command("nap", description="Wait until the watchdog answered")
    def nap(ctx: CommandContext) -> Message:
        where.append(threading.current_thread().name)
        release.wait(10)
        return Message.publish(f"rested {ctx.args}")

    @bot.command("quick", description="Answer at once")
    def quick(ctx: CommandContext) -> Message:
        where.append(threading.current_thread().name)
        return Message.ephemeral("quick")

    @bot.before_send
    def hold(ctx: BeforeSendContext) -> None:
        if "hold" in ctx.text:
            release.wait(10)

    config = Config(
        keyring=KeyRing({KEY: (SECRET,)}),
        store_url="memory://",
        command_budget=0.1,
        before_send_budget=0.1,
    )
    queue = Recorded()
    runtime = Runtime(bot, config, queue=queue)
    dispatcher = Dispatcher(runtime)
    try:
        yield LateBot(dispatcher, queue, where, release)
    finally:
        release.set()
        runtime.close()


def _call(
    dispatcher: Dispatcher,
    kind: str,
    payload: dict[str, Any],
    webhook_id: str,
    early: Early | None,
    command_type: str | None = None,
    attempt: int = 1,
) -> Answer:
    body = encode(payload)
    headers = Headers(
        signed_headers(body, api_key=KEY, secret=SECRET, webhook_id=webhook_id, attempt=attempt)
    )
    return dispatcher.handle(kind, body, headers, command_type, early)


def test_a_late_command_is_answered_by_the_watchdog_stored_and_posted_later(
    late_bot: LateBot,
) -> None:
    dispatcher, queue, where, release = late_bot
    early = Early(release)  # the watchdog's answer lets the handler go on
    payload = command_payload("/nap well", cid="messaging:naps")
    with pytest.raises(AnsweredAtDeadline):
        _call(dispatcher, "command", payload, "wh-nap", early, "nap")
    assert where == [threading.current_thread().name]  # the handler ran in this thread
    (placeholder,) = early.sent
    assert early.threads == ["botkit-watchdog"]
    assert (placeholder.status, placeholder.outcome) == (200, "late")
    assert placeholder.json()["message"]["text"] == "Working on /nap…"
    # The late result is queued for posting, as with a pool thread.
    ((name, job),) = queue.jobs
    assert name == "late_result"
    assert (job["cid"], job["message"]["text"]) == ("messaging:naps", "rested well")
    # A copy gets the placeholder that went out; the handler does not run again.
    copy = _call(dispatcher, "command", payload, "wh-nap", None, "nap", attempt=2)
    assert (copy.status, copy.body, copy.outcome) == (200, placeholder.body, "replayed")
    assert len(where) == 1
    # The next /nap runs in a pool thread, /quick still in the request thread.
    where.clear()
    again = _call(dispatcher, "command", command_payload("/nap more"), "wh-nap-2", Early(), "nap")
    assert again.outcome == "ok"  # released already: in time, now in the pool
    assert where[0].startswith("botkit-handler")
    quick = _call(dispatcher, "command", command_payload("/quick"), "wh-quick", Early(), "quick")
    assert quick.json()["message"]["text"] == "quick"
    assert where[1] == threading.current_thread().name


def test_without_a_way_to_answer_early_handlers_run_in_the_pool(
    late_bot: LateBot,
) -> None:
    dispatcher, _, where, _ = late_bot
    quick = _call(dispatcher, "command", command_payload("/quick"), "wh-q", None, "quick")
    assert quick.json()["message"]["text"] == "quick"
    assert where[0].startswith("botkit-handler")


def test_late_before_send_hooks_fail_open_from_the_watchdog(
    late_bot: LateBot,
) -> None:
    dispatcher, _, _, release = late_bot
    early = Early(release)
    payload = before_send_payload("hold on")
    with pytest.raises(AnsweredAtDeadline):
        _call(dispatcher, "before_send", payload, "wh-bs", early)
    (answer,) = early.sent
    assert answer.outcome == "late"
    assert answer.json()["message"]["text"] == "hold on"
    copy = _call(dispatcher, "before_send", payload, "wh-bs", None, attempt=2)
    assert (copy.body, copy.outcome) == (answer.body, "replayed")
