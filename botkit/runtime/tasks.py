"""Off-request work: push event handlers and late command results.

``BOTKIT_QUEUE`` picks where that work runs:

- unset or ``thread://``: an in-process thread pool. Nothing to install, but **not
  durable**: events queued when a worker stops are lost. Good for development.
- ``huey+sqlite:///path`` or ``huey+redis://host:port/db``: huey, a real task queue; run
  the consumer with ``botkit worker`` (see the README).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import random
import threading
import time
import weakref
from collections.abc import Callable
from queue import SimpleQueue
from typing import TYPE_CHECKING, Any

from ..core import signals
from ..core.context import Event

if TYPE_CHECKING:
    from ..core.bot import Bot

log = logging.getLogger("botkit.tasks")

__all__ = ["TASKS", "QueueUnavailable", "TaskQueue", "ThreadQueue", "run_event", "task"]

MAX_ATTEMPTS = 3
#: How long an exiting process waits for the work still queued on ``thread://``.
EXIT_DRAIN_SECONDS = 5.0


class QueueUnavailable(Exception):
    """Work could not be queued (Stream will be told to retry)."""


class TaskQueue:
    """Where work goes: ``submit(name, payload)`` runs ``TASKS[name](bot, payload)``."""

    durable = False
    url = "thread://"

    def submit(self, name: str, payload: dict[str, Any]) -> None:
        raise NotImplementedError

    def full(self) -> bool:
        """True while ``submit`` would refuse work for want of room. The push route asks
        before it claims a webhook: a refusal then costs no store writes (a claim, then
        its release) while the bot is overloaded. A queue without a bound says False."""
        return False

    def state(self) -> dict[str, Any]:
        return {"url": self.url, "durable": self.durable, "ok": True}

    def close(self) -> None:
        pass


def _handler_name(func: Callable[..., Any]) -> str:
    return f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', repr(func))}"


def run_event(bot: Bot, payload: dict[str, Any]) -> None:
    """Run every handler that wants this event once; raise if any of them failed.

    ``payload`` is ``{"body": b"<the event's JSON>", "webhook_id": ..., "attempt": ...,
    "api_key": ..., "done": [names of handlers that already succeeded on an earlier
    try]}``; ``{"event": {...}, ...}`` (the event already parsed) works too.
    """
    data = payload["event"] if "event" in payload else json.loads(payload["body"])
    event = Event(
        data,
        bot=bot,
        webhook_id=payload.get("webhook_id"),
        attempt=int(payload.get("attempt") or 1),
        api_key=payload.get("api_key"),
    )
    done: list[str] = payload.setdefault("done", [])
    failed: list[BaseException] = []
    for handler in bot.handlers_for(event.type):
        name = _handler_name(handler.func)
        if name in done:
            continue
        start = time.perf_counter()
        try:
            handler.func(event)
        except Exception as exc:
            log.error(
                "event handler %s failed for %s (webhook id %s)",
                name,
                event.type,
                event.webhook_id,
                exc_info=True,
            )
            signals.event_failed.send(bot, event=event, handler=handler.func, exception=exc)
            failed.append(exc)
        else:
            done.append(name)
            duration = time.perf_counter() - start
            # one line per handled event, as the web side logs each webhook: never the body
            log.info(
                "event %s handler=%s id=%s %.1fms",
                event.type,
                name,
                event.webhook_id or "-",
                duration * 1000,
                extra={
                    "kind": "event",
                    "event_type": event.type,
                    "handler": name,
                    "webhook_id": event.webhook_id,
                    "latency_ms": round(duration * 1000, 3),
                },
            )
            signals.event_handled.send(bot, event=event, handler=handler.func, duration=duration)
    if failed:
        raise failed[0]


Task = Callable[["Bot", dict[str, Any]], None]

#: Work the queues know how to run, by name: ``TASKS[name](bot, payload)``.
TASKS: dict[str, Task] = {"event": run_event}


def task(name: str) -> Callable[[Task], Task]:
    """Register the decorated function as the work the queues run for ``name``."""

    def decorator(func: Task) -> Task:
        TASKS[name] = func
        return func

    return decorator


class ThreadQueue(TaskQueue):
    """An in-process pool; failed work is retried with backoff, then logged.

    At most ``max_pending`` tasks wait or run at once; past that ``submit`` refuses
    (the push route answers 503 and Stream retries) rather than let memory grow. A
    waiting push event is kept as the bytes Stream sent (parsed again when it runs),
    not as the parsed dicts: a thousand waiting events cost about a megabyte, and the
    garbage collector has nothing in them to look at.
    """

    def __init__(
        self, bot: Bot, max_workers: int = 8, backoff: float = 0.5, max_pending: int = 5_000
    ) -> None:
        self.bot = bot
        self.backoff = backoff
        self.max_pending = max_pending
        self._pending = 0
        self._max_workers = max_workers
        self._lock = threading.Lock()
        self._queue: SimpleQueue[tuple[str, dict[str, Any]] | None] = SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._pid = os.getpid()
        self._closed = False

    def submit(self, name: str, payload: dict[str, Any]) -> None:
        with self._lock:
            if self._closed:
                raise QueueUnavailable("the queue is closed")
            if self._pid != os.getpid():  # forked: the parent's threads did not come along
                self._pid, self._pending, self._threads = os.getpid(), 0, []
                self._queue = SimpleQueue()
            if self._pending >= self.max_pending:
                raise QueueUnavailable(f"{self._pending} tasks are waiting in this process")
            self._pending += 1
            if len(self._threads) < min(self._pending, self._max_workers):
                _LIVE_QUEUES.add(self)  # drained at exit
                thread = threading.Thread(
                    target=self._work, name=f"botkit-task-{len(self._threads) + 1}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
            queue = self._queue
        queue.put((name, payload))

    def full(self) -> bool:
        return self._pending >= self.max_pending and self._pid == os.getpid()

    def state(self) -> dict[str, Any]:
        return {**super().state(), "pending": self._pending}

    def _work(self) -> None:
        queue = self._queue
        while True:
            item = queue.get()
            if item is None:
                return
            try:
                self._attempts(*item)
            finally:
                with self._lock:
                    self._pending -= 1

    def _attempts(self, name: str, payload: dict[str, Any]) -> None:
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                TASKS[name](self.bot, payload)
                return
            except Exception:
                if attempt == MAX_ATTEMPTS:
                    log.error(
                        "task %s gave up after %d attempts (webhook id %s)",
                        name,
                        attempt,
                        payload.get("webhook_id"),
                        exc_info=True,
                    )
                    return
                time.sleep(self.backoff * 2 ** (attempt - 1) * (0.5 + random.random()))

    def _drain_at_exit(self) -> None:
        """When the process exits (a gunicorn worker restarting, say), give the queued
        work ``EXIT_DRAIN_SECONDS`` to finish, and log what is lost."""
        deadline = time.monotonic() + EXIT_DRAIN_SECONDS
        with self._lock:
            self._closed = True  # refused from now on: Stream will retry
        while self._pending and self._pid == os.getpid() and time.monotonic() < deadline:
            time.sleep(0.05)
        if self._pending and self._pid == os.getpid():
            log.error(
                "%d queued tasks were lost as this process exits: thread:// keeps them in "
                "memory only; use a durable queue (BOTKIT_QUEUE=huey+redis://...)",
                self._pending,
            )

    def close(self) -> None:
        """Run what is queued, then stop the threads (new work is refused meanwhile)."""
        with self._lock:
            self._closed = True
            threads, self._threads = self._threads, []
            for _ in threads:
                self._queue.put(None)
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join()
        with self._lock:
            self._closed = False


_LIVE_QUEUES: weakref.WeakSet[ThreadQueue] = weakref.WeakSet()


@atexit.register
def _drain_queues_at_exit() -> None:
    for queue in list(_LIVE_QUEUES):
        queue._drain_at_exit()
