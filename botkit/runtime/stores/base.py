"""What every idempotency store is: :class:`Store`, :class:`Entry`, the errors, and the
helpers the backends share (answers written by a thread, claims made together, URL
parsing). Imports no backend."""

from __future__ import annotations

import abc
import atexit
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

logger = logging.getLogger("botkit.idempotency")

#: This process's id, kept by a fork hook: ``os.getpid()`` is a system call, and the
#: stores ask on every webhook whether they came through ``fork()`` from their parent.
_pid = os.getpid()


def _after_fork() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_after_fork)


class StoreUnavailable(Exception):
    """The store cannot be reached (Redis down, SQLite file unwritable...).

    Always chained (``raise ... from exc``) to the backend's own exception.
    """


class StoreConfigError(ValueError):
    """A BOTKIT_STORE URL that cannot be used.

    The message names the URL, with any password masked.
    """


@dataclass(frozen=True, slots=True)
class Entry:
    """What the store knows about one webhook id.

    ``fingerprint`` is whatever the caller passed to :meth:`Store.claim`
    (a hash of the request body). ``status`` and ``body`` are ``None`` while
    the first delivery is still running, and hold the response to replay
    once it has completed.
    """

    fingerprint: str
    status: int | None
    body: bytes | None

    @property
    def done(self) -> bool:
        """True once the first delivery stored its response."""
        return self.status is not None


class Store(abc.ABC):
    """A key/value store for idempotency entries and small counters.

    Implementations are safe to share between threads. The SQLite and Redis
    stores are also correct across processes (gunicorn workers) and after
    ``fork()``.
    """

    url: str
    """The store URL with any password masked; safe for logs and health checks."""

    @abc.abstractmethod
    def claim(self, key: str, fingerprint: str, claim_ttl: float) -> Entry | None:
        """Try to become the one delivery that handles ``key``.

        Atomic across threads and (for SQLite and Redis) processes. If there
        is no live entry for ``key``, store a pending entry that expires
        ``claim_ttl`` seconds from now and return ``None``: the caller owns
        the key and must later call :meth:`complete` or :meth:`release`.
        Otherwise return the existing live entry, pending or done.

        An expired entry counts as absent, so a worker killed after claiming
        does not block Stream's retry forever: choose ``claim_ttl`` a bit
        longer than the slowest handler should take. The entry returned carries the
        ``fingerprint`` of the delivery that claimed it, so a copy of the same body
        can be told from a different body while the first is still running.
        """

    @abc.abstractmethod
    def complete(self, key: str, fingerprint: str, status: int, body: bytes, ttl: float) -> None:
        """Store the response for ``key``, kept for ``ttl`` seconds.

        Replaces whatever entry ``key`` has (normally the caller's own
        pending claim). ``body`` is arbitrary bytes and is returned unchanged.
        """

    def complete_soon(
        self, key: str, fingerprint: str, status: int, body: bytes, ttl: float
    ) -> None:
        """Like :meth:`complete`, but the write may happen just after this returns.

        botkit answers Stream first and stores the answer a moment later: the SQLite
        and Redis stores queue it for a thread that writes what has queued up in one
        transaction or pipeline. Until then :meth:`get` and :meth:`claim` in this
        process already see the stored answer, and a copy that lands on another
        worker waits for it as it waits for any delivery still running. If the
        process dies before the write, its claim expires (``BOTKIT_CLAIM_TTL``) and
        Stream's retry (if there is one) runs the handler again. This store writes at
        once.
        """
        self.complete(key, fingerprint, status, body, ttl)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until answers given to :meth:`complete_soon` are written; False if
        ``timeout`` (seconds) passed first. This store has nothing to wait for."""
        return True

    @abc.abstractmethod
    def release(self, key: str, fingerprint: str) -> None:
        """Give up a claim, so that a retry can run the handler again.

        Deletes the entry only if it is still pending with ``fingerprint``;
        a completed entry, or another delivery's claim, is left alone.
        """

    @abc.abstractmethod
    def get(self, key: str) -> Entry | None:
        """Return the live entry for ``key``, or ``None``."""

    @abc.abstractmethod
    def ping(self) -> None:
        """Check the backend is reachable; raise :class:`StoreUnavailable` if not."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections. Safe to call twice."""

    @abc.abstractmethod
    def incr(self, name: str, field: str, amount: int = 1) -> int:
        """Add ``amount`` to counter ``field`` of group ``name``; return the new value.

        Counters never expire. Example: ``store.incr("messages", channel_cid)``.
        """

    @abc.abstractmethod
    def counters(self, name: str) -> dict[str, int]:
        """Return every counter of group ``name`` (empty dict if none)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"


# ---------------------------------------------------------------------------
# Answers written after the reply


class Answer(NamedTuple):
    """One answer waiting to be written."""

    key: str
    fingerprint: str
    status: int
    body: bytes
    expires_at: float  # on the store's clock


def capped_body(body: bytes | None, limit: int | None, key: str) -> bytes | None:
    """``body``, or None when it is over ``limit`` bytes (``BOTKIT_STORE_MAX_ANSWER_BYTES``).

    An answer kept without its body still says the webhook was answered: its copies get
    the in-flight answer (a placeholder, a neutral 503 for push) instead of running the
    handler a second time.
    """
    if body is None or limit is None or len(body) <= limit:
        return body
    logger.warning(
        "answer to %s is %d bytes, over BOTKIT_STORE_MAX_ANSWER_BYTES (%d):"
        " stored without its body; copies get the in-flight answer",
        key,
        len(body),
        limit,
    )
    return None


class AnswerWriter:
    """Answers queued by :meth:`Store.complete_soon`, and the thread that writes them.

    The thread takes everything queued since its last write and hands it to ``write``
    as one batch, so under load many answers share one transaction (SQLite) or one
    round trip (Redis), and none of it is on a request thread. Answers stay visible
    through :meth:`unwritten_entry` until their batch is written. The same thread runs
    the store's housekeeping (``maintain``): after a batch, and when
    :meth:`maintain_soon` asks. One thread per process: a child of ``fork()`` starts its
    own and never writes its parent's queue.

    Requests do not wait for the store's writes, so when those are slow (a disk that
    stalls, a SQLite file another process keeps locked) answers would pile up in
    memory: past ``max_waiting_bytes`` of queued bodies, :meth:`put` waits for the
    thread to take them (up to ``max_wait`` seconds, then queues anyway).
    """

    #: Seconds the thread waits, once an answer is queued, for more to write with it.
    #: Copies in other workers look for the answer every 20 ms anyway; a worker that
    #: dies in this time leaves its claims to expire (``BOTKIT_CLAIM_TTL``), and
    #: Stream's retries run the handlers again.
    linger = 0.02
    #: Bytes of answer bodies queued at most before :meth:`put` waits (4 MiB: many
    #: times what one batch holds under load).
    max_waiting_bytes = 4 * 1024 * 1024
    #: Seconds :meth:`put` waits at most for room.
    max_wait = 2.0

    def __init__(
        self,
        write: Callable[[list[Answer]], None],
        name: str,
        maintain: Callable[[bool], None] | None = None,
    ) -> None:
        self._write = write
        self._maintain = maintain
        self._name = name
        self._cond = threading.Condition(threading.Lock())
        self._queued: dict[str, Answer] = {}
        self._queued_bytes = 0
        self._writing: dict[str, Answer] = {}
        self._maintenance_due = False
        self._busy = False  # the thread is writing or maintaining
        self._thread: threading.Thread | None = None
        self._pid = _pid
        self._exit_hook = False

    def _reset_if_forked(self) -> None:  # with self._cond held
        if self._pid != _pid:  # the parent's queue is not ours to write
            self._pid, self._queued, self._writing, self._thread = _pid, {}, {}, None
            self._busy = self._maintenance_due = False
            self._queued_bytes = 0

    def _wake_thread(self) -> None:  # with self._cond held
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()
            if not self._exit_hook:
                atexit.register(self.flush, 2.0)
                self._exit_hook = True
        else:
            self._cond.notify()

    def put(self, answer: Answer) -> None:
        """Queue ``answer`` for the thread (replacing one queued for the same key)."""
        with self._cond:
            self._reset_if_forked()
            if self._queued_bytes >= self.max_waiting_bytes:
                deadline = time.monotonic() + self.max_wait
                while self._queued_bytes >= self.max_waiting_bytes:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
            replaced = self._queued.get(answer.key)
            self._queued[answer.key] = answer
            self._queued_bytes += len(answer.body) - (
                len(replaced.body) if replaced is not None else 0
            )
            if len(self._queued) == 1:
                self._wake_thread()

    def maintain_soon(self) -> None:
        """Have the thread run the housekeeping with ``requested=True``."""
        with self._cond:
            self._reset_if_forked()
            self._maintenance_due = True
            self._wake_thread()

    def unwritten_entry(self, key: str) -> Entry | None:
        """The answer for ``key`` if it is queued or being written, else None."""
        answer = self._queued.get(key) or self._writing.get(key)
        return None if answer is None else Entry(answer.fingerprint, answer.status, answer.body)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until what is queued is written and asked-for housekeeping done."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while (self._queued or self._maintenance_due or self._busy) and self._pid == _pid:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def _run(self) -> None:
        while True:
            with self._cond:
                while not (self._queued or self._maintenance_due):
                    self._cond.wait()
                self._busy = True
            if not self._maintenance_due and self._queued_bytes < self.max_waiting_bytes:
                time.sleep(self.linger)  # let the answers of concurrent requests join in
            with self._cond:
                self._writing, self._queued = self._queued, {}
                if self._queued_bytes >= self.max_waiting_bytes:
                    self._cond.notify_all()  # room again for requests waiting in put()
                self._queued_bytes = 0
                batch = list(self._writing.values())
                requested, self._maintenance_due = self._maintenance_due, False
            if batch:
                try:
                    self._write(batch)
                except Exception as exc:  # Stream's retries run the handlers again
                    logger.warning("%s: %d answers not stored: %s", self._name, len(batch), exc)
            if self._maintain is not None:
                try:
                    self._maintain(requested)
                except Exception as exc:
                    logger.debug("%s: housekeeping skipped: %s", self._name, exc)
            with self._cond:
                self._writing = {}
                self._busy = False
                self._cond.notify_all()


class WriteBehindStore(Store):
    """:meth:`complete_soon` through an :class:`AnswerWriter` (the SQLite and Redis
    stores): subclasses set ``_answers`` and ``_clock`` and look at
    ``_answers.unwritten_entry`` in ``claim`` and ``get``."""

    _answers: AnswerWriter
    _clock: Callable[[], float]

    def complete_soon(
        self, key: str, fingerprint: str, status: int, body: bytes, ttl: float
    ) -> None:
        self._answers.put(Answer(key, fingerprint, int(status), bytes(body), self._clock() + ttl))

    def flush(self, timeout: float | None = None) -> bool:
        return self._answers.flush(timeout)


# ---------------------------------------------------------------------------
# URL helpers


def mask_url(url: str) -> str:
    """Return ``url`` with any password (user-info or ``password=`` query) masked."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, hostport = netloc.rpartition("@")
            if ":" in userinfo:
                user = userinfo.split(":", 1)[0]
                netloc = f"{user}:***@{hostport}"
            elif userinfo and parts.scheme in ("redis", "rediss", "unix"):
                # redis://secret@host: redis-py treats a lone user-info as user name,
                # but many people write the password there; mask it too.
                netloc = f"***@{hostport}"
        query = parts.query
        if query:
            pairs = []
            for item in query.split("&"):
                name, sep, _value = item.partition("=")
                if name.lower() in ("password", "pass", "pwd") and sep:
                    pairs.append(f"{name}=***")
                else:
                    pairs.append(item)
            query = "&".join(pairs)
        if netloc == parts.netloc and query == parts.query:
            return url  # (urlunsplit would turn sqlite:////abs into sqlite://abs)
        slashes = "//" if url[len(parts.scheme) + 1 :].startswith("//") else ""
        masked = f"{parts.scheme}:{slashes}{netloc}{parts.path}"
        if query:
            masked += f"?{query}"
        if parts.fragment:
            masked += f"#{parts.fragment}"
        return masked
    except ValueError:
        return "<unparseable URL>"


def config_error(url: str, problem: str) -> StoreConfigError:
    """The error for a BOTKIT_STORE ``url`` that cannot be used, password masked."""
    return StoreConfigError(f"BOTKIT_STORE {mask_url(url)!r}: {problem}")


def single_query_params(url: str, query: str) -> dict[str, str]:
    """The query parameters of ``url``, each given once."""
    params: dict[str, str] = {}
    for name, values in parse_qs(query, keep_blank_values=True).items():
        if len(values) != 1:
            raise config_error(url, f"query parameter {name!r} given more than once")
        params[name] = values[0]
    return params


def positive_number(url: str, name: str, raw: str, kind: type[int | float]) -> Any:
    """Query parameter ``name`` of ``url`` read as a positive, finite ``kind``."""
    try:
        value = kind(raw)
    except ValueError:
        raise config_error(url, f"{name}={raw!r} is not a number") from None
    if not value > 0 or (isinstance(value, float) and not math.isfinite(value)):
        raise config_error(url, f"{name} must be positive, got {raw!r}")
    return value
