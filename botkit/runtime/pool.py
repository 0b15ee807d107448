"""The threads handlers run in, so that botkit can answer Stream when a deadline passes.

A lean stand-in for ``concurrent.futures.ThreadPoolExecutor``: every custom command and
before-send call hands its handler to this pool and waits for it with a timeout, so the
hand-off is on the hot path of every webhook. It keeps the part of the ``Future`` API
botkit uses (``result(timeout)``, ``exception()``, ``add_done_callback``).
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from queue import SimpleQueue
from typing import Any, Generic, TypeVar

T = TypeVar("T")

__all__ = ["Call", "HandlerPool", "NotDone"]


class NotDone(TimeoutError):
    """The call had not finished when the wait ended (not an exception of the call's)."""


class Call(Generic[T]):
    """One function call handed to the pool."""

    __slots__ = ("_args", "_callbacks", "_done", "_error", "_fn", "_ready", "_value")

    def __init__(self, fn: Callable[..., T], args: tuple[Any, ...]) -> None:
        self._fn = fn
        self._args = args
        self._ready = threading.Lock()
        self._ready.acquire()  # released once the call has finished
        self._done = False
        self._callbacks: list[Callable[[Call[T]], object]] | None = None
        self._value: T | None = None
        self._error: BaseException | None = None

    def run(self) -> None:
        try:
            self._value = self._fn(*self._args)
        except BaseException as exc:  # handed to whoever waits, or to the callbacks
            self._error = exc
        with _CALLBACKS:  # callbacks are rare (a late call): one lock for every call
            self._done = True
            callbacks, self._callbacks = self._callbacks, None
        self._ready.release()
        for callback in callbacks or ():
            callback(self)

    def _wait(self, timeout: float | None) -> None:
        if self._done:
            return
        if timeout is None:
            acquired = self._ready.acquire()
        else:
            acquired = self._ready.acquire(timeout=max(timeout, 0.0))
        if not acquired:
            raise NotDone("the call did not finish in time")
        self._ready.release()  # let later waiters through too

    def done(self) -> bool:
        """Whether the call has finished (returned or raised)."""
        return self._done

    def result(self, timeout: float | None = None) -> T:
        """The return value; re-raises the call's exception; :class:`NotDone` if late."""
        self._wait(timeout)
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]

    def exception(self, timeout: float | None = None) -> BaseException | None:
        self._wait(timeout)
        return self._error

    def add_done_callback(self, callback: Callable[[Call[T]], object]) -> None:
        """Run ``callback(call)`` when the call finishes (at once if it has)."""
        with _CALLBACKS:
            if not self._done:
                if self._callbacks is None:
                    self._callbacks = []
                self._callbacks.append(callback)
                return
        callback(self)


_CALLBACKS = threading.Lock()
_POOLS: weakref.WeakSet[HandlerPool] = weakref.WeakSet()


def _after_fork() -> None:
    global _CALLBACKS
    _CALLBACKS = threading.Lock()  # a lock some parent thread held is held forever here
    for pool in list(_POOLS):  # the parent's threads did not come along
        pool._lock = threading.Lock()
        pool._reset()


os.register_at_fork(after_in_child=_after_fork)


class HandlerPool:
    """Daemon threads fed by a queue; one more is started whenever all are busy, up to
    ``max_threads``. Safe across ``fork``: a child starts threads of its own."""

    def __init__(self, max_threads: int = 64, name: str = "botkit-handler") -> None:
        self.max_threads = max_threads
        self.name = name
        self._lock = threading.Lock()
        self._reset()
        _POOLS.add(self)

    def _reset(self) -> None:
        self._queue: SimpleQueue[Call[Any] | None] = SimpleQueue()
        self._threads = 0
        self._busy = 0

    def submit(self, fn: Callable[..., T], *args: Any) -> Call[T]:
        call = Call(fn, args)
        with self._lock:
            self._busy += 1
            if self._busy > self._threads and self._threads < self.max_threads:
                self._threads += 1
                threading.Thread(
                    target=self._work, name=f"{self.name}-{self._threads}", daemon=True
                ).start()
        self._queue.put(call)
        return call

    def _work(self) -> None:
        queue = self._queue
        while True:
            call = queue.get()
            if call is None:
                return
            call.run()
            with self._lock:
                self._busy -= 1

    def shutdown(self) -> None:
        """Let the threads end once the calls queued before now are done."""
        with self._lock:
            for _ in range(self._threads):
                self._queue.put(None)
            self._reset()
