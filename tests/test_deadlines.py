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
from botkit.runtime.deadlines import AnsweredAtDeadline, RequestThreads, Watchdog
from botkit.runtime.dispatch import Dispatcher
from botkit.runtime.pool import HandlerPool
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


def test_a_burst_of_a_command_not_known_fast_runs_one_call_inline() -> None:
    """Until one call of a command has shown it is quick, a burst of it would hold
    ``max_calls`` request threads: only one runs inline, the others in the pool."""
    watchdog = Watchdog(4)
    far = time.monotonic() + 60
    first = watchdog.admit("/new", far, lambda: None)
    assert first is not None
    assert watchdog.admit("/new", far, lambda: None) is None  # the probe runs
    other = watchdog.admit("/other", far, lambda: None)  # another name may probe
    assert other is not None
    assert watchdog.finish(first) and watchdog.finish(other)  # both quick: known fast now
    turns = [watchdog.admit("/new", far, lambda: None) for _ in range(5)]
    assert [t is not None for t in turns] == [True, True, True, True, False]  # max_calls
    for turn in turns[:4]:
        assert turn is not None and watchdog.finish(turn)


def test_admitted_calls_are_counted_until_their_thread_is_back() -> None:
    """A call the watchdog answered still holds its request thread: it counts against
    ``max_calls`` until the handler returns, or slow handlers would take every thread."""
    watchdog = Watchdog(1)
    answered = threading.Event()
    turn = watchdog.admit("/stuck", time.monotonic() + 0.02, answered.set)
    assert turn is not None and answered.wait(10)
    assert watchdog.watching == 0  # answered: no longer watched...
    assert watchdog.admit("/other", time.monotonic() + 60, lambda: None) is None  # ...but held
    assert watchdog.finish(turn) is False
    again = watchdog.admit("/other", time.monotonic() + 60, lambda: None)
    assert again is not None and watchdog.finish(again)


def test_a_waiter_gives_its_thread_up_once_every_request_thread_is_taken(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    grace = 0.5  # longer than the 30 ms default, so that a loaded machine is still quick
    monkeypatch.setattr(deadlines, "GRACE", grace)
    threads = RequestThreads(2)
    pool = HandlerPool(4)
    release = threading.Event()
    try:
        threads.enter()
        slow = pool.submit(release.wait, 10)
        start = time.monotonic()
        # Not full: waits for the handler until the deadline.
        assert threads.wait(slow, start + grace + 0.2) is False
        assert time.monotonic() - start >= grace + 0.2
        # A quick handler answers for itself, full or not.
        threads.enter()
        assert threads.full
        assert threads.wait(pool.submit(lambda: "quick"), time.monotonic() + 5) is True
        # Full: a slow one gives the thread up after its grace, long before the deadline.
        start = time.monotonic()
        assert threads.wait(pool.submit(release.wait, 10), start + 5) is False
        assert grace <= time.monotonic() - start < 4
        # Past its grace and waiting when the last thread is taken: it stops at once.
        threads.leave()
        result: list[bool] = []
        waiter = threading.Thread(
            target=lambda: result.append(
                threads.wait(pool.submit(release.wait, 10), time.monotonic() + 30)
            )
        )
        waiter.start()
        time.sleep(grace + 0.3)
        assert result == []  # not full: still waiting
        threads.enter()
        waiter.join(5)
        assert result == [False]
    finally:
        release.set()
        pool.shutdown()


def test_a_request_past_its_budget_is_answered_at_once_without_waiting_for_a_slot() -> None:
    """The budget counts from the request's arrival: one that waited for a thread longer
    than its budget gets the placeholder at once, although every pool thread is busy,
    and its handler still runs once a pool thread is free, its result posted late."""
    bot = Bot()
    hold = threading.Event()
    ran: list[str] = []

    @bot.command("busy")
    def busy(ctx: CommandContext) -> None:
        hold.wait(10)

    @bot.command("late", placeholder="on it")
    def late(ctx: CommandContext) -> Message:
        ran.append(ctx.args)
        return Message.publish(f"done {ctx.args}")

    config = Config(keyring=KeyRing({KEY: (SECRET,)}), store_url="memory://", command_budget=5.0)
    queue = Recorded()
    runtime = Runtime(bot, config, queue=queue)
    runtime.executor.max_threads = 1  # the one handler slot, taken by /busy below
    dispatcher = Dispatcher(runtime)
    try:
        runtime.executor.submit(busy, None)
        body = encode(command_payload("/late now"))
        headers = Headers(signed_headers(body, api_key=KEY, secret=SECRET, webhook_id="wh-old"))
        arrived = time.monotonic() - 6  # it waited longer than its budget for a thread
        start = time.monotonic()
        answer = dispatcher.handle("command", body, headers, "late", Early(), arrived)
        took = time.monotonic() - start
        assert (answer.outcome, answer.json()["message"]["text"]) == ("late", "on it")
        assert took < 2.5  # at once: not the 5 s budget, nor the slot's 10 s
        assert ran == []  # the slot is still busy
        hold.set()
        deadline = time.monotonic() + 10
        while not queue.jobs:
            assert time.monotonic() < deadline, "the late result was never queued"
            time.sleep(0.01)
        ((name, job),) = queue.jobs
        assert (name, job["message"]["text"], ran) == ("late_result", "done now", ["now"])
        # A copy gets the placeholder that went out, and the handler does not run again.
        copy = dispatcher.handle("command", body, headers, "late", None)
        assert (copy.body, copy.outcome, ran) == (answer.body, "replayed", ["now"])
    finally:
        hold.set()
        runtime.close()


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
