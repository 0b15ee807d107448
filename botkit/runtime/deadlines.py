"""Keeping Stream's deadline while a handler runs in the request thread.

Handing every handler to a pool thread and waiting for it with a timeout keeps the
deadline anywhere, but costs two thread wake-ups and two GIL hand-overs per call: about a
quarter of a worker's throughput under gunicorn. Where the web server lets another thread
send the answer (gunicorn: the ``write`` callable that ``start_response`` returns writes
straight to the socket), botkit runs the handler in the request thread instead, and one
watchdog thread per process sends the placeholder when a deadline passes first. Whoever
takes a call's :class:`Turn` first answers it: the request thread when the handler
returns in time, the watchdog when it does not.

Inline calls are bounded (``max_calls`` at once per process), so that handlers stuck
past their deadline never hold every request thread; a handler that took more than half
its budget runs in the pool for the next minute (:meth:`Watchdog.allows`).

A request thread that waits for a pool thread's handler is the other way a crowd of slow
handlers would hold the server: :class:`RequestThreads` counts the web server's request
threads in use, and when the last one is taken, the request that has waited longest for
its handler answers its placeholder at once, so that the next request finds a thread.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .pool import Call

log = logging.getLogger("botkit")

__all__ = ["AnsweredAtDeadline", "RequestThreads", "Turn", "Watchdog"]

#: How long a handler that overran half its budget is sent to the pool.
SLOW_FOR = 60.0
#: The watchdog looks at the calls it watches this often while calls come in; after
#: ``_IDLE`` seconds without one it sleeps until the next (which then wakes it).
_TICK = 0.01
_IDLE = 1.0
#: How long a request waits for its handler before it gives its thread to a request
#: queued behind it (:class:`RequestThreads`): longer than a quick handler takes.
GRACE = 0.03


class AnsweredAtDeadline(Exception):
    """Raised in the request thread when the watchdog already sent the call's answer:
    the layers above must not answer, store or log it again."""


class Turn:
    """One inline call: its deadline, and what to do when the deadline passes first."""

    __slots__ = ("deadline", "late", "lock", "name", "on_deadline", "start", "trying")

    def __init__(self, name: str, deadline: float, on_deadline: Callable[[], object]) -> None:
        self.name = name
        self.start = time.monotonic()
        self.deadline = deadline
        self.on_deadline = on_deadline
        self.lock = threading.Lock()  # held by whoever answers
        self.late = False
        self.trying = False  # a call of a name not known to be fast (Watchdog.allows)


class Watchdog:
    """One thread per process that answers, at their deadline, calls still running."""

    def __init__(self, max_calls: int) -> None:
        self.max_calls = max_calls
        self._slow: dict[str, float] = {}
        self._fast: set[str] = set()  # names whose last inline call took under half its budget
        self._reset()
        _WATCHDOGS.add(self)

    def _reset(self) -> None:
        self._calls: dict[int, Turn] = {}
        # Request threads running a handler inline, answered or not: a call the watchdog
        # answered still holds its thread until the handler returns.
        self._inline = 0
        self._trying: dict[str, int] = {}  # names not known fast, running inline now
        self._admit = threading.Lock()
        self._wake = threading.Event()
        self._sleeping = True
        self._watched = 0  # calls watched so far: the watchdog sees it change while awake
        self._thread: threading.Thread | None = None
        self._start = threading.Lock()

    def allows(self, name: str) -> bool:
        """May a call of ``name`` (``/command``, ``before-send hooks``) run inline now?

        A name not yet seen to finish within half its budget runs inline one call at a
        time: a burst of a slow command new to this process holds one request thread,
        not ``max_calls`` of them, until the first call shows what it costs.
        """
        if self._inline >= self.max_calls:
            return False
        until = self._slow.get(name)
        if until is not None:
            if time.monotonic() < until:
                return False
            self._slow.pop(name, None)
        return name in self._fast or name not in self._trying

    def mark_slow(self, name: str) -> None:
        """Run ``name`` in the pool for the next :data:`SLOW_FOR` seconds."""
        self._slow[name] = time.monotonic() + SLOW_FOR
        self._fast.discard(name)

    def admit(self, name: str, deadline: float, on_deadline: Callable[[], object]) -> Turn | None:
        """:meth:`watch` a call of ``name`` if it :meth:`allows` it, else None.

        One step, so that a burst of requests cannot all pass the check before any of
        them counts: each call past ``max_calls`` would hold a request thread.
        """
        with self._admit:
            if not self.allows(name):
                return None
            return self.watch(name, deadline, on_deadline)

    def watch(self, name: str, deadline: float, on_deadline: Callable[[], object]) -> Turn:
        """Start watching a call of ``name``; ``on_deadline()`` runs in the watchdog
        thread if the deadline passes before :meth:`finish`."""
        turn = Turn(name, deadline, on_deadline)
        self._inline += 1  # under _admit when admitted (the web server's calls)
        if name not in self._fast:
            turn.trying = True
            self._trying[name] = self._trying.get(name, 0) + 1
        self._calls[id(turn)] = turn
        self._watched += 1  # not atomic: a lost count only shortens the watchdog's nap
        if self._sleeping:
            if self._thread is None:
                self._start_thread()
            self._wake.set()
        return turn

    def finish(self, turn: Turn) -> bool:
        """End a call: True if the caller answers it, False if the watchdog did.

        Waits while the watchdog is still sending its answer, so that the request
        thread returns only once the answer is out. A call that took more than half its
        budget sends the next calls of its name to the pool (:data:`SLOW_FOR`).
        """
        self._calls.pop(id(turn), None)
        turn.lock.acquire()
        took = time.monotonic() - turn.start
        slow = turn.late or took > (turn.deadline - turn.start) / 2
        with self._admit:
            self._inline -= 1
            if turn.trying:
                trying = self._trying.pop(turn.name, 0) - 1
                if trying > 0:
                    self._trying[turn.name] = trying
            if not slow and turn.name not in self._slow:
                self._fast.add(turn.name)
        if slow:
            log.info(
                "%s took %.0f ms, more than half its budget: it runs in a pool thread "
                "for the next %.0f s",
                turn.name,
                took * 1000,
                SLOW_FOR,
            )
            self.mark_slow(turn.name)
        return not turn.late

    @property
    def watching(self) -> int:
        return len(self._calls)

    def _start_thread(self) -> None:
        with self._start:
            if self._thread is None:
                thread = threading.Thread(target=self._run, name="botkit-watchdog", daemon=True)
                thread.start()
                self._thread = thread

    def _run(self) -> None:
        # Waking the thread for every call would cost each call a thread switch: while
        # calls keep coming, it looks every _TICK instead, and sleeps once they stop.
        calls, wake = self._calls, self._wake
        seen, idle_since = -1, time.monotonic()
        while True:
            if not calls:
                if seen != self._watched:
                    seen, idle_since = self._watched, time.monotonic()
                elif time.monotonic() - idle_since >= _IDLE:
                    self._sleeping = True
                    wake.clear()
                    if not calls:  # a call may have come in between the two looks
                        wake.wait()
                    self._sleeping = False
                    seen, idle_since = self._watched, time.monotonic()
                    continue
                time.sleep(_TICK)
                continue
            now = time.monotonic()
            next_look = now + _TICK
            for turn in list(calls.values()):
                if turn.deadline > now:
                    next_look = min(next_look, turn.deadline)
                elif turn.lock.acquire(blocking=False):
                    calls.pop(id(turn), None)
                    turn.late = True
                    self.mark_slow(turn.name)  # before the answer: the next calls go elsewhere
                    try:
                        turn.on_deadline()
                    except Exception:  # the request thread still ends the call
                        log.exception("could not answer a call at its deadline")
                    finally:
                        turn.lock.release()
            time.sleep(max(0.0, next_look - time.monotonic()))


class RequestThreads:
    """The web server's request threads in one process, and who waits in them.

    The web adapter calls :meth:`enter` and :meth:`leave` around every webhook; a
    request thread that waits for a handler running in a pool thread calls :meth:`wait`.
    When every request thread is taken, more requests may be queued in the web server
    behind them, each with its deadline running: a request that has waited
    :data:`GRACE` for its handler then stops waiting (it answers its placeholder, and
    the handler's result is posted late), so that a thread frees for the next one. A
    crowd of slow handlers holds each request thread for moments, not for a whole
    budget, while a quick handler still answers for itself.
    """

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self._reset()
        _REQUEST_THREADS.add(self)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._busy = 0
        self._waiting: dict[int, threading.Event] = {}  # past their grace

    @property
    def busy(self) -> int:
        """Request threads in use now."""
        return self._busy

    @property
    def full(self) -> bool:
        """Whether every request thread is in use."""
        return self._busy >= self.threads

    def enter(self) -> None:
        """A request took a request thread."""
        with self._lock:
            self._busy += 1
            if self._busy >= self.threads and self._waiting:
                for ready in self._waiting.values():
                    ready.set()
                self._waiting.clear()

    def leave(self) -> None:
        """A request gave its request thread back."""
        with self._lock:
            self._busy -= 1

    def wait(self, call: Call[Any], deadline: float) -> bool:
        """Wait for ``call`` until ``deadline`` (``time.monotonic()``), or, once past
        :data:`GRACE`, until every request thread is taken; True if the call is done."""
        start = time.monotonic()
        if call.done() or deadline <= start:
            return call.done()
        ready = threading.Event()
        call.add_done_callback(lambda _call: ready.set())
        if ready.wait(min(deadline, start + GRACE) - start):
            return True
        key = id(ready)
        with self._lock:
            if call.done():
                return True
            if self._busy >= self.threads:
                return False
            self._waiting[key] = ready
        ready.wait(max(0.0, deadline - time.monotonic()))
        with self._lock:
            self._waiting.pop(key, None)
        return call.done()


_WATCHDOGS: weakref.WeakSet[Watchdog] = weakref.WeakSet()
_REQUEST_THREADS: weakref.WeakSet[RequestThreads] = weakref.WeakSet()


def _after_fork() -> None:
    for watchdog in list(_WATCHDOGS):  # the parent's thread did not come along
        watchdog._reset()
    for threads in list(_REQUEST_THREADS):  # nor its requests
        threads._reset()


os.register_at_fork(after_in_child=_after_fork)
