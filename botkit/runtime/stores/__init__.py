"""Shared idempotency store for webhook deliveries, plus small shared counters.

Stream Chat may call a webhook more than once for the same event: it retries
on timeouts and errors, and every retry carries the same ``X-Webhook-Id``.
botkit uses a :class:`Store` to make sure a handler runs once per id and that
every retry gets the *same* response as the first attempt, byte for byte.
That matters for before-message-send and custom-command hooks, where the
response body is the decision: an empty 200 on a retry would approve a
message the first attempt rejected.

Under gunicorn every worker is a separate process and a retry may land on any
of them, so the state must be shared between processes. Pick a store with the
``BOTKIT_STORE`` setting, a URL:

``sqlite:///instance/botkit.sqlite3`` (the default)
    A SQLite file shared by all workers on one machine. Three slashes are a
    path relative to the working directory, four an absolute path
    (``sqlite:////var/lib/bot/botkit.sqlite3``), as in SQLAlchemy. The query
    parameter ``busy_timeout`` (milliseconds, default 2000) bounds how long a
    worker waits for another one's write lock. The webhooks in flight are locks
    of the workers' processes on ``<file>-claims``, next to it (POSIX ``fcntl``
    locks: a local filesystem, not Windows); do not delete it while workers run.
    The same file holds a filter of the ids answered (4 MiB), so that a webhook
    never answered does not look for its answer.

``redis://host:6379/0``, ``rediss://...`` (TLS), ``unix:///path/redis.sock``
    Redis, shared by several machines. Requires ``pip install botkit[redis]``.
    ``socket_timeout`` and ``socket_connect_timeout`` (seconds, default 0.25)
    are kept short so a dead Redis fails fast inside Stream's time budget.
    Other redis-py query parameters are passed through.

``memory://`` (optionally ``memory://?max_entries=10000&max_bytes=8388608``)
    A bounded in-process LRU. Only correct with a single worker process
    (development, tests, ``gunicorn --workers 1 --threads N``).

How the request pipeline uses a store::

    entry = store.claim(key, fingerprint, claim_ttl)
    if entry is None:                       # we own the key
        try:
            status, body = run_handler()
        except Exception:
            store.release(key, fingerprint)  # let Stream's retry run it again
            raise
        store.complete(key, fingerprint, status, body, result_ttl)
    elif entry.fingerprint != fingerprint:  # same id, different body: suspicious
        ...                                 # 409
    elif entry.done:                        # a retry: replay the first answer
        ...                                 # entry.status, entry.body
    else:                                   # first delivery still running
        ...                                 # poll store.get(key) until done

Every store method raises :class:`StoreUnavailable` when the backend cannot be
reached; the pipeline decides whether to fail open or closed.
"""

from __future__ import annotations

import abc
import atexit
import errno
import hashlib
import itertools
import logging
import math
import mmap
import os
import sqlite3
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qs, urlsplit

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX (Windows): the SQLite store says so
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:  # pragma: no cover
    import redis

__all__ = [
    "Entry",
    "Store",
    "StoreConfigError",
    "StoreUnavailable",
    "open_store",
]

logger = logging.getLogger("botkit.idempotency")
T = TypeVar("T")

ACCEPTED_FORMS = (
    "memory://[?max_entries=N&max_bytes=N], "
    "sqlite:///relative/path.db, sqlite:////absolute/path.db[?busy_timeout=MS], "
    "redis://[:password@]host:port/db, rediss://host:port/db, "
    "unix:///path/to/redis.sock[?db=N]"
)

DEFAULT_MAX_ENTRIES = 10_000
#: The memory store keeps at most about this many bytes of entries (8 MiB).
DEFAULT_MAX_BYTES = 8 * 1024 * 1024
#: What an entry costs besides its body: key, fingerprint, entry, LRU slot (measured
#: with tracemalloc for botkit's keys and SHA-256 fingerprints).
_ENTRY_OVERHEAD = 400
DEFAULT_BUSY_TIMEOUT_MS = 2000
DEFAULT_REDIS_TIMEOUT = 0.25
REDIS_KEY_PREFIX = "botkit:idem:"
REDIS_COUNTER_PREFIX = "botkit:count:"
SQLITE_CLEANUP_EVERY = 1000
SQLITE_CHECKPOINT_EVERY = 0.5
#: Commits never checkpoint (0): the answers thread does, every SQLITE_CHECKPOINT_EVERY.
#: Under steady writes from two workers SQLite finds no moment to start its WAL over, so
#: the WAL stays past any threshold and every commit ran a checkpoint, fsync included:
#: a quarter of the claims' throughput in a two-process micro-benchmark.
SQLITE_AUTOCHECKPOINT_PAGES = 0
#: The WAL file is cut back to this size when it starts over after a burst.
SQLITE_WAL_LIMIT_BYTES = 64 * 1024 * 1024
SQLITE_CACHE_KIB = 512
SQLITE_CLEANUP_BATCH = 1000


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
        longer than the slowest handler should take. (The SQLite store's claims
        also end with the process that holds them; a claim of another process is
        returned with the caller's own ``fingerprint``, since which body it is for
        cannot be seen from here.)
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
        process dies before the write, its claim ends (SQLite) or expires (Redis) and
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


#: One answer waiting to be written: key, fingerprint, status, body, expiry (store clock).
Completion = tuple[str, str, int, bytes, float]


class _AnswerWriter:
    """Answers queued by :meth:`Store.complete_soon`, and the thread that writes them.

    The thread takes everything queued since its last write and hands it to ``write``
    as one batch, so under load many answers share one transaction (SQLite) or one
    round trip (Redis), and none of it is on a request thread. Answers stay visible
    through :meth:`entry` until their batch is written. The same thread runs the
    store's housekeeping (``maintain``): after a batch, and when :meth:`maintain_soon`
    asks. One thread per process: a child of ``fork()`` starts its own and never
    writes its parent's queue.

    Requests do not wait for the store's writes, so when those are slow (a disk that
    stalls, a SQLite file another process keeps locked) answers would pile up in
    memory: past ``max_waiting_bytes`` of queued bodies, :meth:`put` waits for the
    thread to take them (up to ``max_wait`` seconds, then queues anyway).
    """

    #: Seconds the thread waits, once an answer is queued, for more to write with it.
    #: Copies in other workers look for the answer every 20 ms anyway; a worker that
    #: dies in this time leaves its claims to end with it (SQLite) or expire
    #: (``BOTKIT_CLAIM_TTL``, Redis), and Stream's retries run the handlers again.
    linger = 0.02
    #: Bytes of answer bodies queued at most before :meth:`put` waits (4 MiB: about 200
    #: of 20 KB, where a batch under load holds a few dozen).
    max_waiting_bytes = 4 * 1024 * 1024
    #: Seconds :meth:`put` waits at most for room.
    max_wait = 2.0

    def __init__(
        self,
        write: Callable[[list[Completion]], None],
        name: str,
        maintain: Callable[[bool], None] | None = None,
    ) -> None:
        self._write = write
        self._maintain = maintain
        self._name = name
        self._cond = threading.Condition(threading.Lock())
        self._queued: dict[str, Completion] = {}
        self._queued_bytes = 0
        self._writing: dict[str, Completion] = {}
        self._due = False  # maintenance asked for
        self._busy = False  # the thread is writing or maintaining
        self._thread: threading.Thread | None = None
        self._pid = _pid
        self._exit_hook = False

    def _forked(self) -> None:  # with self._cond held
        if self._pid != _pid:  # the parent's queue is not ours to write
            self._pid, self._queued, self._writing, self._thread = _pid, {}, {}, None
            self._busy = self._due = False
            self._queued_bytes = 0

    def _wake(self) -> None:  # with self._cond held
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()
            if not self._exit_hook:
                atexit.register(self.flush, 2.0)
                self._exit_hook = True
        else:
            self._cond.notify()

    def put(self, answer: Completion) -> None:
        with self._cond:
            self._forked()
            if self._queued_bytes >= self.max_waiting_bytes:
                deadline = time.monotonic() + self.max_wait
                while self._queued_bytes >= self.max_waiting_bytes:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
            old = self._queued.get(answer[0])
            self._queued[answer[0]] = answer
            self._queued_bytes += len(answer[3]) - (len(old[3]) if old is not None else 0)
            if len(self._queued) == 1:
                self._wake()

    def maintain_soon(self) -> None:
        """Have the thread run the housekeeping with ``requested=True``."""
        with self._cond:
            self._forked()
            self._due = True
            self._wake()

    def entry(self, key: str) -> Entry | None:
        """The answer for ``key`` if it is queued or being written, else None."""
        answer = self._queued.get(key) or self._writing.get(key)
        return None if answer is None else Entry(answer[1], answer[2], answer[3])

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until what is queued is written and asked-for housekeeping done."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while (self._queued or self._due or self._busy) and self._pid == _pid:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def _run(self) -> None:
        while True:
            with self._cond:
                while not (self._queued or self._due):
                    self._cond.wait()
                self._busy = True
            if not self._due and self._queued_bytes < self.max_waiting_bytes:
                time.sleep(self.linger)  # let the answers of concurrent requests join in
            with self._cond:
                self._writing, self._queued = self._queued, {}
                if self._queued_bytes >= self.max_waiting_bytes:
                    self._cond.notify_all()  # room again for requests waiting in put()
                self._queued_bytes = 0
                batch = list(self._writing.values())
                requested, self._due = self._due, False
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


class _Claiming:
    """One thread's claim, waiting in a :class:`_ClaimCombiner`."""

    __slots__ = ("done", "error", "fingerprint", "key", "outcome", "ttl")

    def __init__(self, key: str, fingerprint: str, ttl: float) -> None:
        self.key, self.fingerprint, self.ttl = key, fingerprint, ttl
        self.outcome: Any = None
        self.error: BaseException | None = None
        self.done = False


class _ClaimCombiner:
    """Claims that threads of one process make at the same time, made together.

    A thread that claims while no other is claiming makes its claim at once. Claims
    that come in meanwhile wait, and when that one is made the first of them makes all
    of them together: one Redis round trip for them all. Under load a worker's threads
    claim while others hold the GIL or wait for the store, so each round trip carries
    several claims, and the round trip is the costly part, not the claim in it.
    ``claim_many`` sets every item's ``outcome`` (or raises for them all).
    """

    #: Claims made together at most.
    most = 64

    def __init__(self, claim_many: Callable[[list[_Claiming]], None]) -> None:
        self._claim_many = claim_many
        self._cond = threading.Condition(threading.Lock())
        self._waiting: list[_Claiming] = []
        self._claiming = False
        self._sleepers = 0  # threads in cond.wait()
        self._pid = _pid

    def claim(self, key: str, fingerprint: str, ttl: float) -> Any:
        """The outcome ``claim_many`` gave this claim."""
        if self._pid != _pid:  # inherited through fork: a lock of this process
            self._cond = threading.Condition(threading.Lock())
            self._waiting, self._claiming = [], False
            self._sleepers = 0
            self._pid = _pid
        cond = self._cond
        item = _Claiming(key, fingerprint, ttl)
        with cond:
            self._waiting.append(item)
        while not item.done:  # more than `most` waiting: this one may not be in the batch
            with cond:
                while self._claiming and not item.done:
                    self._sleepers += 1
                    try:
                        cond.wait()
                    finally:
                        self._sleepers -= 1
                if item.done:
                    break
                self._claiming = True  # this thread makes the claims waiting now
                batch, self._waiting = self._waiting[: self.most], self._waiting[self.most :]
            try:
                self._claim_many(batch)
            except BaseException as exc:
                for waiting in batch:
                    waiting.error = exc
                if item in batch:
                    raise
            finally:
                with cond:
                    for waiting in batch:
                        waiting.done = True
                    self._claiming = False
                    if self._sleepers:
                        cond.notify_all()
        if item.error is not None:
            raise item.error
        return item.outcome


class _AnswersLater(Store):
    """:meth:`complete_soon` through an :class:`_AnswerWriter` (the SQLite and Redis
    stores): subclasses set ``_answers`` and ``_clock`` and look at ``_answers.entry``
    in ``claim`` and ``get``."""

    _answers: _AnswerWriter
    _clock: Callable[[], float]

    def complete_soon(
        self, key: str, fingerprint: str, status: int, body: bytes, ttl: float
    ) -> None:
        self._answers.put((key, fingerprint, int(status), bytes(body), self._clock() + ttl))

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


def _config_error(url: str, problem: str) -> StoreConfigError:
    return StoreConfigError(f"BOTKIT_STORE {mask_url(url)!r}: {problem}")


def _single_params(url: str, query: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for name, values in parse_qs(query, keep_blank_values=True).items():
        if len(values) != 1:
            raise _config_error(url, f"query parameter {name!r} given more than once")
        params[name] = values[0]
    return params


def _positive_number(url: str, name: str, raw: str, kind: type[int | float]) -> Any:
    try:
        value = kind(raw)
    except ValueError:
        raise _config_error(url, f"{name}={raw!r} is not a number") from None
    if not value > 0 or (isinstance(value, float) and not math.isfinite(value)):
        raise _config_error(url, f"{name} must be positive, got {raw!r}")
    return value


def open_store(
    url: str | None,
    *,
    instance_path: str = "instance",
    clock: Callable[[], float] = time.time,
) -> Store:
    """Open the store named by ``url`` (the ``BOTKIT_STORE`` setting).

    ``None`` (or an empty string) means ``sqlite:///{instance_path}/botkit.sqlite3``.
    ``clock`` is used for expiry by the memory and SQLite stores (tests inject
    a fake one); Redis expires keys with its own clock.

    Raises :class:`StoreConfigError` for a URL that cannot be used: an unknown
    scheme, a SQLite path that cannot be created, a malformed Redis URL, or
    Redis URL without the ``redis`` package installed. A Redis server that is
    down is *not* an error here (the bot must be able to boot while Redis
    restarts); it shows up as :class:`StoreUnavailable` on use.
    """
    if not url:
        url = f"sqlite:///{instance_path}/botkit.sqlite3"
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError as exc:
        raise _config_error(url, f"not a URL ({exc}); accepted forms: {ACCEPTED_FORMS}") from None
    if scheme == "memory":
        return _open_memory(url, clock)
    if scheme == "sqlite":
        return _open_sqlite(url, clock)
    if scheme in ("redis", "rediss", "unix"):
        return _open_redis(url)
    raise _config_error(url, f"unsupported scheme {scheme!r}; accepted forms: {ACCEPTED_FORMS}")


# ---------------------------------------------------------------------------
# memory://


#: A memory store entry: fingerprint, status, body, expiry. A tuple of plain values,
#: which the garbage collector stops tracking: 10,000 Entry objects would be walked on
#: every full collection of a busy worker.
_Item = tuple[str, int | None, bytes | None, float]


def _size(item: _Item) -> int:
    return _ENTRY_OVERHEAD + (len(item[2]) if item[2] is not None else 0)


class MemoryStore(Store):
    """An in-process LRU bounded to ``max_entries`` idempotency entries and about
    ``max_bytes`` of memory for them, stored answers included (the least recently
    used go first).

    Thread-safe, but each process has its own: only correct with one worker
    process. Expiry uses the injected clock. Counters are not bounded.
    """

    def __init__(
        self,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_bytes: int = DEFAULT_MAX_BYTES,
        clock: Callable[[], float] = time.time,
        url: str = "memory://",
    ) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise ValueError("max_entries and max_bytes must be positive")
        self.url = url
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._bytes = 0
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, _Item] = OrderedDict()
        self._counters: dict[str, dict[str, int]] = {}

    def _live(self, key: str, now: float) -> Entry | None:
        item = self._entries.get(key)
        if item is None:
            return None
        if item[3] <= now:
            del self._entries[key]
            self._bytes -= _size(item)
            return None
        self._entries.move_to_end(key)
        return Entry(item[0], item[1], item[2])

    def _put(self, key: str, item: _Item) -> None:
        old = self._entries.get(key)
        if old is not None:
            self._bytes -= _size(old)
        self._entries[key] = item
        self._entries.move_to_end(key)
        self._bytes += _size(item)
        while len(self._entries) > 1 and (
            len(self._entries) > self.max_entries or self._bytes > self.max_bytes
        ):
            _, evicted = self._entries.popitem(last=False)
            self._bytes -= _size(evicted)

    def claim(self, key: str, fingerprint: str, claim_ttl: float) -> Entry | None:
        with self._lock:
            now = self._clock()
            existing = self._live(key, now)
            if existing is not None:
                return existing
            self._put(key, (fingerprint, None, None, now + claim_ttl))
            return None

    def complete(self, key: str, fingerprint: str, status: int, body: bytes, ttl: float) -> None:
        with self._lock:
            self._put(key, (fingerprint, int(status), bytes(body), self._clock() + ttl))

    def release(self, key: str, fingerprint: str) -> None:
        with self._lock:
            existing = self._live(key, self._clock())
            if existing is not None and not existing.done and existing.fingerprint == fingerprint:
                self._bytes -= _size(self._entries.pop(key))

    def get(self, key: str) -> Entry | None:
        with self._lock:
            return self._live(key, self._clock())

    def ping(self) -> None:
        return None

    def close(self) -> None:
        return None

    def incr(self, name: str, field: str, amount: int = 1) -> int:
        with self._lock:
            group = self._counters.setdefault(name, {})
            group[field] = value = group.get(field, 0) + amount
            return value

    def counters(self, name: str) -> dict[str, int]:
        with self._lock:
            return dict(self._counters.get(name, {}))

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


def _open_memory(url: str, clock: Callable[[], float]) -> MemoryStore:
    parts = urlsplit(url)
    if parts.netloc or parts.path not in ("", "/"):
        raise _config_error(url, "memory:// takes no host or path; use memory://?max_entries=N")
    params = _single_params(url, parts.query)
    max_entries, max_bytes = DEFAULT_MAX_ENTRIES, DEFAULT_MAX_BYTES
    for name, raw in params.items():
        if name == "max_entries":
            max_entries = _positive_number(url, name, raw, int)
        elif name == "max_bytes":
            max_bytes = _positive_number(url, name, raw, int)
        else:
            raise _config_error(
                url,
                f"unknown query parameter {name!r} (memory:// accepts max_entries and max_bytes)",
            )
    logger.info("idempotency store: %s (single process only)", url)
    return MemoryStore(max_entries=max_entries, max_bytes=max_bytes, clock=clock, url=mask_url(url))


# ---------------------------------------------------------------------------
# sqlite:///


_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS botkit_idempotency (
    key TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    status INTEGER,
    body BLOB,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS botkit_idempotency_expires ON botkit_idempotency (expires_at);
CREATE TABLE IF NOT EXISTS botkit_claims (
    key TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    expires_at REAL NOT NULL
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS botkit_claim_answered AFTER INSERT ON botkit_idempotency
BEGIN
    DELETE FROM botkit_claims WHERE key = NEW.key;
END;
CREATE TABLE IF NOT EXISTS botkit_meta (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS botkit_counters (
    name TEXT NOT NULL,
    field TEXT NOT NULL,
    value INTEGER NOT NULL,
    PRIMARY KEY (name, field)
);
"""


# A batch of answers is one statement in autocommit mode: SQLite takes and lets go of the
# write lock inside one sqlite3_step, which runs without the GIL. (BEGIN ... COMMIT around
# several statements would hold the lock while the thread waits for the GIL in between:
# milliseconds when a worker is busy.) Claims are not written to the file at all: see
# _ClaimLocks. The claims table is kept for botkit versions that wrote their claims there
# (a rolling deploy runs both): their rows are honoured until they expire, and the
# trigger above deletes one when its answer is stored.
_SQLITE_ANSWERS = (
    "INSERT OR REPLACE INTO botkit_idempotency (key, fingerprint, status, body, expires_at) VALUES "
)
_SQLITE_ANSWERS_PER_STATEMENT = 500  # 5 parameters each: well under SQLite's 32,766
# An answer (or the pending row of a botkit before the claims table) first, then a claim
# of a botkit that wrote its claims to the claims table.
_SQLITE_GET = (
    "SELECT fingerprint, status, body FROM botkit_idempotency WHERE key = ?1 AND expires_at > ?2"
    " UNION ALL SELECT fingerprint, NULL, NULL FROM botkit_claims"
    " WHERE key = ?1 AND expires_at > ?2"
    " LIMIT 1"
)


class _ThreadConn(threading.local):
    pid: int = -1
    generation: int = -1
    conn: sqlite3.Connection | None = None
    uncached: sqlite3.Connection | None = None  # for the answers: see _connect


# Connections inherited through fork() belong to the parent process. Closing them
# in the child could interfere with the parent's locks, so they are parked here
# for the life of the process instead of being closed or garbage-collected.
_INHERITED_CONNECTIONS: list[sqlite3.Connection] = []


class _ClaimLocks:
    """This process's claims on one SQLite store: a byte-range lock (``fcntl``) for each,
    at a 62-bit hash of its key in a file next to the database (``<database>-claims``).

    A claim is the one thing every worker must see before a handler runs, and writing it
    to the database was two thirds of what the SQLite store cost per webhook (a write
    transaction between processes, each invalidating the others' page caches). A lock is
    one system call, held in the kernel, and let go by the kernel when its process ends,
    however it ends: a claim of a killed worker is free at once, not after
    ``BOTKIT_CLAIM_TTL``.

    POSIX locks belong to a process, not to a thread or a file descriptor: a process
    taking a range it holds succeeds again, and closing *any* descriptor of the file lets
    go of all its locks on it. So there is one of these per file and process (stores
    opened on the same file share it; its descriptor is closed when the last one closes),
    and ``held`` tells the process's own claims apart: fingerprint and expiry (store
    clock) of each. An expired claim of this process can be taken over by a copy reaching
    this process; another process's claim lasts until it answers, lets go, or ends.
    """

    def __init__(self, ident: tuple[int, int], fd: int) -> None:
        self.ident = ident  # the file's (device, inode): its key in _CLAIM_LOCKS
        self.fd = fd
        try:
            self.answered: _AnsweredKeys | None = _AnsweredKeys(fd)
        except (OSError, ValueError) as exc:  # no mmap here: every claim reads the answers
            logger.debug("sqlite store: no filter of answered keys in %d: %s", fd, exc)
            self.answered = None
        self.mutex = threading.Lock()
        #: This process's claims: fingerprint, expiry (store clock), offset of the lock.
        self.held: dict[str, tuple[str, float, int]] = {}
        self.users = 0

    @staticmethod
    def _offset(key: str) -> int:
        # Two keys in flight at one offset would share a lock: with 62 bits, a chance
        # of about n * n / 2**63 for n claims in flight.
        digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
        return int.from_bytes(digest, "big") >> 2  # under 2**62: a valid file offset

    def _lock(self, offset: int) -> bool:
        """Take the lock at ``offset``; False when another process holds it."""
        try:
            fcntl.lockf(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset)
        except OSError as exc:
            if exc.errno not in (errno.EACCES, errno.EAGAIN):
                raise
            return False
        return True

    def take(
        self, key: str, offset: int, fingerprint: str, expires: float, now: float
    ) -> Entry | None:
        """None when this call now holds ``key`` (whose lock is at ``offset``, see
        :meth:`_offset`); else the claim in the way: this process's own (with its
        fingerprint), or another process's (``fingerprint``: which body it is for, this
        process cannot see)."""
        # The note first, under the mutex, the lock outside it: a thread holding the mutex
        # through a system call (which lets go of the GIL) held up every claim of the
        # process, by milliseconds when it waited for the GIL back. Meanwhile a copy
        # claiming the key in this process finds the note and waits for the answer.
        with self.mutex:
            mine = self.held.get(key)
            if mine is not None:
                if mine[1] > now:
                    return Entry(mine[0], None, None)
                # expired, and the lock still ours: taken over
                self.held[key] = (fingerprint, expires, mine[2])
                return None
            note = self.held[key] = (fingerprint, expires, offset)
        taken = False
        try:
            taken = self._lock(offset)
        finally:
            if not taken:  # another process's claim (or an error): not ours after all
                self._drop(key, note)
        return None if taken else Entry(fingerprint, None, None)

    def _drop(self, key: str, note: tuple[str, float, int]) -> None:
        with self.mutex:
            if self.held.get(key) is note:
                del self.held[key]

    def give_back(self, key: str, fingerprint: str | None = None) -> None:
        """Let go of this process's claim of ``key`` (only if it is for ``fingerprint``,
        when one is given)."""
        with self.mutex:
            mine = self.held.get(key)
            if mine is None or (fingerprint is not None and mine[0] != fingerprint):
                return
            # Let go outside the mutex (see take); until then the key stays noted, as
            # never expiring, so that a copy here waits instead of taking a lock that is
            # about to go.
            note = self.held[key] = (mine[0], math.inf, mine[2])
        try:
            fcntl.lockf(self.fd, fcntl.LOCK_UN, 1, mine[2])
        finally:
            self._drop(key, note)

    def holder(self, key: str, now: float) -> Entry | None:
        """The live claim of ``key``: this process's, another process's (fingerprint
        ``""``: not known here), or None."""
        with self.mutex:
            mine = self.held.get(key)
            if mine is not None:
                return Entry(mine[0], None, None) if mine[1] > now else None
            offset = self._offset(key)
            if not self._lock(offset):
                return Entry("", None, None)
            fcntl.lockf(self.fd, fcntl.LOCK_UN, 1, offset)
            return None

    def expire(self, now: float) -> None:
        """Let go of this process's claims that expired (a handler that never answered)."""
        with self.mutex:
            for key, (_, expires, offset) in list(self.held.items()):
                if expires <= now:
                    del self.held[key]
                    fcntl.lockf(self.fd, fcntl.LOCK_UN, 1, offset)

    def _forked(self) -> None:
        # In a child of fork(): it holds none of its parent's locks (POSIX locks are not
        # inherited). The descriptor is the same file's and stays in use.
        self.mutex = threading.Lock()
        self.held = {}
        if self.answered is not None:
            self.answered.mutex = threading.Lock()


class _AnsweredKeys:
    """Which keys were ever answered in one SQLite store, roughly: a bit per hash of a
    key (24 bits of it), in the ``<database>-claims`` file, mapped into the memory of
    every process that uses the store. A claim whose key's bit is clear was never
    answered and skips its read of the answers, which under load cost about a tenth of
    the webhooks a worker answers; a set bit may be another key's (one claim in eight
    when the region read holds ``FILL`` keys, more for a bot answering many a second:
    see docs/benchmarks.md), and that claim reads as before.

    A bit is set after its answer is committed and before its claim is let go, so
    whoever takes the lock next sees it. Bits are never cleared one by one. The file
    holds two regions of bits: claims read one, and once it holds ``FILL`` keys the
    other is started afresh. Writers set the bits of every live region, so a region
    lacks only the answers stored before it started, and claims read it only once
    every one of those has expired: past its ``horizon``, the latest expiry in the
    database when it started. Then the old region is let go. So the filter never calls
    a live answer unanswered, whatever the file held before: next to a database full
    of answers, a new ``-claims`` file is read only once they have expired.

    The file's header names its database (an id also kept in the database's
    ``botkit_meta``): the file of another database, or one whose bits may be missing
    (a write of them that failed), is started afresh. Writers of the filter take turns
    on a lock of the process and a byte-range lock of the file; claims take no lock.
    A region claims no longer read is cleared for reuse only ``QUIET`` seconds later,
    and a look at a bit that took over a second is not believed.
    """

    #: Bits per region (2 MiB), and keys in the region claims read before the next starts.
    BITS = 1 << 24
    FILL = BITS // 8
    #: Seconds between the last claim that may read a region and its bits being cleared.
    QUIET = 60.0
    HEADER = 4096
    _MAGIC = b"bkanswd1"  # the header is set up
    _BROKEN = b"bkanswd!"  # bits may be missing: start afresh (after QUIET)
    _READ = 8  # one byte: 1 + the region claims read; 0 for none
    _ID = 16  # 16 bytes: the database's id of this file (botkit_meta)
    _REGIONS = 64  # region i's fields at _REGIONS + 64 * i
    #: live (writers set its bits), started, read_until (the last time claims may have
    #: read it; 0: not since it started), horizon, count of keys set
    _FIELDS = struct.Struct("<?7xdddQ")
    #: The writers' lock: past every claim's offset (hashes are under 2**62).
    _SETTER = 1 << 62

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.size = self.BITS >> 3
        length = self.HEADER + 2 * self.size
        if os.fstat(fd).st_size < length:
            os.ftruncate(fd, length)
        # mmap keeps a duplicate of fd, and closing any descriptor of the file lets go
        # of the process's locks on it: it is closed with the claims' descriptor only.
        self.mm = mmap.mmap(fd, length)
        self.mutex = threading.Lock()
        #: The header was found to be this database's: claims may believe the bits.
        self.ok = False

    def never(self, offset: int) -> bool:
        """Whether the key whose claim lock is at ``offset`` was surely never answered
        (to be asked while holding that lock)."""
        if not self.ok:
            return False
        mm = self.mm
        started = time.monotonic()
        try:
            region = mm[self._READ] - 1
            if region != 0 and region != 1:
                return False
            bit = offset & (self.BITS - 1)
            byte = mm[self.HEADER + region * self.size + (bit >> 3)]
        except ValueError:  # closed with its store meanwhile
            return False
        if time.monotonic() - started > 1.0:  # held up: the region may be reused since
            return False
        return not byte & (1 << (bit & 7))

    def add(self, offsets: list[int]) -> None:
        """Set the bits of answers just committed, before their claims are let go."""
        try:
            with self._setting():
                mm = self.mm
                if mm[0:8] != self._MAGIC:
                    return  # not set up: when it is, its horizon covers these answers
                for region in (0, 1):
                    live, started, read_until, horizon, count = self._get(region)
                    if not live:
                        continue
                    base = self.HEADER + region * self.size
                    for offset in offsets:
                        bit = offset & (self.BITS - 1)
                        at = base + (bit >> 3)
                        mm[at] |= 1 << (bit & 7)
                    count += len(offsets)
                    self._put(region, live, started, read_until, horizon, count)
        except Exception as exc:
            # Answers are in the file without their bits: no claim may believe it now.
            try:
                self.mm[self._READ] = 0
                self.mm[0:8] = self._BROKEN
            except ValueError:  # closed with its store: nothing reads it here any more
                pass
            logger.warning("sqlite store: the filter of answered keys is off for now: %s", exc)

    def maintain(self, store: SQLiteStore, now: float) -> None:
        """Set the header up for ``store``'s database, have claims read the newest region
        that holds every live answer, and start a region afresh when needed. On the
        answers' thread, every ``SQLITE_CHECKPOINT_EVERY`` seconds."""
        with self._setting():
            known = store._filter_id()  # in here: another process may be setting it up
            mm = self.mm
            if mm[0:8] != self._MAGIC or mm[self._ID : self._ID + 16] != known:
                # Claims may have read these bits until now, unless it was never set up.
                fresh = mm[0:8] == bytes(8)
                self.ok = False
                mm[self._READ] = 0
                new = os.urandom(16)
                store._set_filter_id(new)  # the database first: see the class
                mm[self._ID : self._ID + 16] = new
                for region in (0, 1):
                    self._put(region, False, 0.0, 0.0 if fresh else now, 0.0, 0)
                mm[0:8] = self._MAGIC
            self.ok = True
            regions = [self._get(0), self._get(1)]
            read = mm[self._READ] - 1
            ready = [
                r
                for r in (0, 1)
                if regions[r][0] and now > regions[r][3] and now >= regions[r][1] + 1.0
            ]
            if ready:
                newest = max(ready, key=lambda r: regions[r][1])
                if newest != read:
                    mm[self._READ] = newest + 1
                    if read in (0, 1):  # let go of the old one
                        _, started, _, horizon, count = regions[read]
                        self._put(read, False, started, now, horizon, count)
                        regions[read] = self._get(read)
                    read = newest
            live = [r for r in (0, 1) if regions[r][0]]
            if live and not (read in live and len(live) == 1 and regions[read][4] >= self.FILL):
                return
            for r in (0, 1):
                if not regions[r][0] and (
                    regions[r][2] == 0.0 or now - regions[r][2] >= self.QUIET
                ):
                    self._start(r, store, now)
                    return

    def _start(self, region: int, store: SQLiteStore, now: float) -> None:
        base = self.HEADER + region * self.size
        self.mm[base : base + self.size] = bytes(self.size)
        # Live before the latest expiry is read: an answer committed after that read
        # sets its bit here (its writer waits for this lock), one before is under it.
        self._put(region, True, now, 0.0, math.inf, 0)
        try:
            horizon = store._latest_expiry()
        except BaseException:
            self._put(region, False, now, 0.0, math.inf, 0)  # never read: reused at once
            raise
        self._put(region, True, now, 0.0, horizon, 0)

    def _get(self, region: int) -> tuple[bool, float, float, float, int]:
        return self._FIELDS.unpack_from(self.mm, self._REGIONS + 64 * region)

    def _put(
        self, region: int, live: bool, started: float, read_until: float, horizon: float, count: int
    ) -> None:
        self._FIELDS.pack_into(
            self.mm, self._REGIONS + 64 * region, live, started, read_until, horizon, count
        )

    @contextmanager
    def _setting(self) -> Iterator[None]:
        with self.mutex:
            fcntl.lockf(self.fd, fcntl.LOCK_EX, 1, self._SETTER)
            try:
                yield
            finally:
                fcntl.lockf(self.fd, fcntl.LOCK_UN, 1, self._SETTER)

    def close(self) -> None:
        self.mm.close()


#: The claim locks of each store file, by (device, inode), in this process.
_CLAIM_LOCKS: dict[tuple[int, int], _ClaimLocks] = {}
_CLAIM_LOCKS_MUTEX = threading.Lock()


def _claim_locks_forked() -> None:
    global _CLAIM_LOCKS_MUTEX
    _CLAIM_LOCKS_MUTEX = threading.Lock()
    for locks in _CLAIM_LOCKS.values():
        locks._forked()


os.register_at_fork(after_in_child=_claim_locks_forked)


def _open_claim_locks(database: str) -> _ClaimLocks:
    """The claim locks of the store file at ``database``, shared in this process."""
    if fcntl is None:  # pragma: no cover - Windows
        raise StoreConfigError("the sqlite store needs POSIX file locks (fcntl); use memory://")
    path = database + "-claims"
    with _CLAIM_LOCKS_MUTEX:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            pass
        else:  # never open a second descriptor of a file whose locks we hold: see above
            found = _CLAIM_LOCKS.get((st.st_dev, st.st_ino))
            if found is not None:
                found.users += 1
                return found
        try:
            mode = os.stat(database).st_mode & 0o666
        except OSError:
            mode = 0o644
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, mode)
        st = os.fstat(fd)
        ident = (st.st_dev, st.st_ino)
        locks = _CLAIM_LOCKS[ident] = _ClaimLocks(ident, fd)
        locks.users += 1
        return locks


def _close_claim_locks(locks: _ClaimLocks) -> None:
    with _CLAIM_LOCKS_MUTEX:
        locks.users -= 1
        if locks.users > 0:
            return
        del _CLAIM_LOCKS[locks.ident]
        if locks.answered is not None:
            locks.answered.close()
        os.close(locks.fd)  # lets go of whatever this process still held on the file


class SQLiteStore(_AnswersLater):
    """A SQLite file shared by all processes on one machine.

    WAL mode, one connection per thread and per process (a connection opened
    before gunicorn forks is never used by a child), autocommit. A claim is a lock of
    the process on a file next to the database (:class:`_ClaimLocks`), then a read of
    the answers, unless the filter in the same file says the key was never answered
    (:class:`_AnsweredKeys`); nothing is written until the answer, and the claim is let
    go once its answer is in the file (and its bit in the filter). Expiry of answers is
    the ``expires_at`` column, compared with the injected clock; expired rows are
    deleted in small batches every ``SQLITE_CLEANUP_EVERY`` claims, off the request
    threads.

    Writes from one process take turns on a lock of the process, and a write that
    finds another process's write lock is retried after 50 µs, then 100 µs, ... up
    to 2 ms, until ``busy_timeout``: SQLite's own busy handler sleeps a whole
    millisecond and more, long after a write of a few microseconds let go of the
    lock. Answers from :meth:`complete_soon` are written in batches, one statement
    each, by a thread of the process, which also checkpoints the WAL.
    """

    def __init__(
        self,
        path: str,
        *,
        busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
        clock: Callable[[], float] = time.time,
        url: str | None = None,
    ) -> None:
        self.path = path
        self.url = url if url is not None else f"sqlite:///{path}"
        self.busy_timeout_ms = busy_timeout_ms
        self._clock = clock
        self._local = _ThreadConn()
        self._lock = threading.Lock()
        self._generation = 0
        self._open: list[tuple[int, sqlite3.Connection]] = []
        self._claims = itertools.count(1)
        self._write_lock = threading.Lock()
        self._write_lock_pid = _pid
        self._answers = _AnswerWriter(self._write_answers, "botkit-sqlite-answers", self._maintain)
        self._checkpointed = time.monotonic()
        self._init_schema()
        self._locks: _ClaimLocks | None = _open_claim_locks(path)
        # Set up before the first answer is written, which would otherwise be under the
        # horizon of the first region: read only once it has expired.
        answered = self._locks.answered
        if answered is not None:
            try:
                answered.maintain(self, clock())
            except (sqlite3.Error, OSError) as exc:
                logger.debug("sqlite store %s: filter of answered keys: %s", self.url, exc)

    def _init_schema(self) -> None:
        # Several workers may create the file at the same moment. Switching to
        # WAL can then fail with SQLITE_BUSY without waiting on busy_timeout,
        # so retry for up to busy_timeout before giving up.
        deadline = time.monotonic() + self.busy_timeout_ms / 1000
        while True:
            try:
                conn = self._connect()
                mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                conn.executescript(_SQLITE_SCHEMA)
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() >= deadline:
                    raise
                time.sleep(0.01)
                continue
            if str(mode).lower() != "wal":
                logger.warning(
                    "sqlite store %s: journal_mode is %s, not WAL; workers will block"
                    " each other more (is the file on a network filesystem?)",
                    self.url,
                    mode,
                )
            return

    # -- connections -------------------------------------------------------

    def _connect(self, uncached: bool = False) -> sqlite3.Connection:
        """This thread's connection. ``uncached``: a second one without a statement
        cache, for the answers: a cached statement keeps the values last bound to it, and
        a batch of N answers is a statement of its own for every N, so a cache of them
        kept every body of the last batch of each size (174 MB for 128 sizes of 20 KB)."""
        local = self._local
        pid = _pid
        current = local.uncached if uncached else local.conn
        if current is not None and local.pid == pid and local.generation == self._generation:
            return current
        if local.pid != pid:
            for inherited in (local.conn, local.uncached):
                if inherited is not None:
                    _INHERITED_CONNECTIONS.append(inherited)
            local.conn = local.uncached = None
        conn = sqlite3.connect(
            self.path,
            timeout=0,  # busy: see _retry
            isolation_level=None,
            check_same_thread=False,  # close() may run in another thread
            cached_statements=0 if uncached else 128,
        )
        try:
            conn.execute("PRAGMA synchronous=NORMAL")
            # A connection's page cache is dropped whenever another one has written, which
            # under load is before almost every statement: SQLite's 2 MiB per thread
            # bought nothing but resident memory.
            conn.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
            conn.execute(f"PRAGMA wal_autocheckpoint={SQLITE_AUTOCHECKPOINT_PAGES}")
            conn.execute(f"PRAGMA journal_size_limit={SQLITE_WAL_LIMIT_BYTES}")
        except BaseException:
            conn.close()
            raise
        with self._lock:
            self._open.append((pid, conn))
            if local.generation != self._generation:  # close() ended them all
                local.conn = local.uncached = None
            local.pid, local.generation = pid, self._generation
            if uncached:
                local.uncached = conn
            else:
                local.conn = conn
        return conn

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except (sqlite3.Error, OSError) as exc:
            logger.warning("sqlite store %s: %s failed: %s", self.url, what, exc)
            raise StoreUnavailable(f"sqlite store {self.url}: {what} failed: {exc}") from exc

    def _rows(self, sql: str, params: tuple[Any, ...], write: bool = True) -> list[Any]:
        """The rows of one statement, through :meth:`_retry`."""
        return self._retry(lambda conn: conn.execute(sql, params).fetchall(), write)

    def _change(self, sql: str, params: tuple[Any, ...], uncached: bool = False) -> int:
        """How many rows one writing statement changed, through :meth:`_retry`."""
        return self._retry(lambda conn: conn.execute(sql, params).rowcount, uncached=uncached)

    def _retry(
        self,
        fn: Callable[[sqlite3.Connection], T],
        write: bool = True,
        uncached: bool = False,
    ) -> T:
        """``fn(connection)``, again after a short sleep while another process holds
        the database's write lock, for up to ``busy_timeout``; writes of this process
        take turns on a lock of their own."""
        lock: threading.Lock | None = None
        if write:
            if self._write_lock_pid != _pid:  # a lock inherited through fork
                self._write_lock, self._write_lock_pid = threading.Lock(), _pid
            lock = self._write_lock
        deadline = time.monotonic() + self.busy_timeout_ms / 1000
        delay = 0.00005
        while True:
            if lock is not None and not lock.acquire(timeout=self.busy_timeout_ms / 1000):
                raise sqlite3.OperationalError("database is locked (by this process)")
            try:
                return fn(self._connect(uncached))
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() + delay >= deadline:
                    raise
            finally:
                if lock is not None:
                    lock.release()
            time.sleep(delay)
            delay = min(delay * 2, 0.002)

    @staticmethod
    @contextmanager
    def _transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:  # pragma: no cover - rollback of a broken connection
                    pass
            raise

    @staticmethod
    def _entry(row: tuple[Any, ...]) -> Entry:
        fingerprint, status, body = row
        return Entry(
            str(fingerprint),
            None if status is None else int(status),
            None if body is None else bytes(body),
        )

    # -- Store API ----------------------------------------------------------

    def _claim_locks(self) -> _ClaimLocks:
        locks = self._locks
        if locks is None:  # used again after close()
            with self._lock:
                if self._locks is None:
                    self._locks = _open_claim_locks(self.path)
                locks = self._locks
        return locks

    def claim(self, key: str, fingerprint: str, claim_ttl: float) -> Entry | None:
        answer = self._answers.entry(key)
        if answer is not None:  # answered in this process, not written yet
            return answer
        now = self._clock()
        with self._errors("claim"):
            locks = self._claim_locks()
            # The lock first, then the look at the answers: an answer is in the file
            # before its claim is let go, so whoever takes the lock next reads it.
            offset = _ClaimLocks._offset(key)
            held = locks.take(key, offset, fingerprint, now + claim_ttl, now)
            if held is not None:
                return held
            try:
                answered = locks.answered
                if answered is not None and answered.never(offset):
                    rows = []  # never answered: no need to look
                else:
                    rows = self._rows(_SQLITE_GET, (key, now), write=False)
            except BaseException:
                locks.give_back(key, fingerprint)
                raise
        if rows:  # answered (or claimed by an older botkit): not ours to run
            locks.give_back(key, fingerprint)
            return self._entry(rows[0])
        if next(self._claims) % SQLITE_CLEANUP_EVERY == 0:
            self._answers.maintain_soon()  # the cleanup, off this request's thread
        return None

    def complete(self, key: str, fingerprint: str, status: int, body: bytes, ttl: float) -> None:
        with self._errors("complete"):
            self._write_answers([(key, fingerprint, int(status), bytes(body), self._clock() + ttl)])

    def _write_answers(self, answers: list[Completion]) -> None:
        step = _SQLITE_ANSWERS_PER_STATEMENT
        try:
            for start in range(0, len(answers), step):
                chunk = answers[start : start + step]
                sql = _SQLITE_ANSWERS + ", ".join(["(?, ?, ?, ?, ?)"] * len(chunk))
                params = tuple(value for answer in chunk for value in answer)
                self._change(sql, params, uncached=True)
                locks = self._locks
                if locks is not None and locks.answered is not None:
                    locks.answered.add([_ClaimLocks._offset(answer[0]) for answer in chunk])
        finally:
            # Written: the next claim reads the answer. Not written: the claims go, and
            # Stream's retries run the handlers again, as after a crash.
            locks = self._locks  # None after close(), which let go of every claim
            if locks is not None:
                for answer in answers:
                    locks.give_back(answer[0])

    def release(self, key: str, fingerprint: str) -> None:
        locks = self._locks  # None after close(), which let go of every claim
        if locks is not None:
            with self._errors("release"):
                locks.give_back(key, fingerprint)

    def get(self, key: str) -> Entry | None:
        answer = self._answers.entry(key)
        if answer is not None:
            return answer
        now = self._clock()
        with self._errors("get"):
            rows = self._rows(_SQLITE_GET, (key, now), write=False)
            if rows:
                return self._entry(rows[0])
            return self._claim_locks().holder(key, now)

    def _maintain(self, requested: bool) -> None:
        """Housekeeping on the answers thread: the expired-row cleanup when the claims
        ask for it, this process's expired claims let go, and a WAL checkpoint every
        ``SQLITE_CHECKPOINT_EVERY`` seconds (the only one: commits do not checkpoint, see
        ``SQLITE_AUTOCHECKPOINT_PAGES``)."""
        if requested:
            self.cleanup()
        locks = self._locks
        if locks is not None:
            locks.expire(self._clock())
        if time.monotonic() - self._checkpointed >= SQLITE_CHECKPOINT_EVERY:
            self._checkpointed = time.monotonic()
            if locks is not None and locks.answered is not None:
                try:
                    locks.answered.maintain(self, self._clock())
                except (sqlite3.Error, OSError) as exc:  # claims read the answers meanwhile
                    logger.debug("sqlite store %s: filter of answered keys: %s", self.url, exc)
            self.checkpoint()

    def _filter_id(self) -> bytes | None:
        rows = self._rows(
            "SELECT value FROM botkit_meta WHERE name = 'answered-keys'", (), write=False
        )
        return bytes(rows[0][0]) if rows else None

    def _set_filter_id(self, value: bytes) -> None:
        self._change(
            "INSERT OR REPLACE INTO botkit_meta (name, value) VALUES ('answered-keys', ?)",
            (value,),
        )

    def _latest_expiry(self) -> float:
        rows = self._rows(
            "SELECT max(latest) FROM (SELECT max(expires_at) AS latest FROM botkit_idempotency"
            " UNION ALL SELECT max(expires_at) FROM botkit_claims)",
            (),
            write=False,
        )
        return float(rows[0][0] or 0.0)

    def checkpoint(self) -> tuple[int, int, int]:
        """Copy the WAL into the database file and, when no write is under way, have
        the next write start the WAL over; return SQLite's ``(busy, frames in the WAL,
        frames copied)`` of the second step.

        Under writes that never pause, SQLite finds no moment of its own to start the WAL
        over: with only ``PASSIVE`` checkpoints it grew by hundreds of megabytes a minute,
        every write appending pages the kernel had to allocate. So a ``PASSIVE``
        checkpoint (which holds no one back) copies what is there, then a ``RESTART`` one
        copies the few frames written since, holding writes back for that moment. It
        does not wait: when a write holds the lock it returns busy, and the next call,
        ``SQLITE_CHECKPOINT_EVERY`` seconds later, tries again.
        """
        conn = self._connect()  # busy_timeout 0: see _retry
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
        return int(busy), int(frames), int(copied)

    def cleanup(self) -> int:
        """Delete up to ``SQLITE_CLEANUP_BATCH`` expired rows; return how many.

        Run automatically every ``SQLITE_CLEANUP_EVERY`` claims, on the thread that
        writes the answers. Never raises:
        a busy database just postpones the cleanup.
        """
        now = self._clock()
        deleted = 0
        for sql, params in (
            # claims left by a worker that died before answering: few, a whole-table look
            ("DELETE FROM botkit_claims WHERE expires_at <= ?", (now,)),
            (
                "DELETE FROM botkit_idempotency WHERE rowid IN"
                " (SELECT rowid FROM botkit_idempotency WHERE expires_at <= ? LIMIT ?)",
                (now, SQLITE_CLEANUP_BATCH),
            ),
        ):
            try:
                deleted += self._change(sql, params)
            except (sqlite3.Error, OSError) as exc:
                logger.debug("sqlite store %s: cleanup skipped: %s", self.url, exc)
                break
        if deleted:
            logger.debug("sqlite store %s: deleted %d expired entries", self.url, deleted)
        return deleted

    def ping(self) -> None:
        with self._errors("ping"):
            self._retry(
                lambda conn: conn.execute("SELECT 1 FROM botkit_idempotency LIMIT 1").fetchall(),
                write=False,
            )

    def close(self) -> None:
        self._answers.flush(2.0)
        pid = _pid
        with self._lock:
            mine = [conn for owner, conn in self._open if owner == pid]
            self._open = [(owner, conn) for owner, conn in self._open if owner != pid]
            self._generation += 1
            locks, self._locks = self._locks, None
        if locks is not None:
            _close_claim_locks(locks)
        for conn in mine:
            try:
                conn.close()
            except sqlite3.Error:  # pragma: no cover
                pass

    def incr(self, name: str, field: str, amount: int = 1) -> int:
        def add(conn: sqlite3.Connection) -> int:
            with self._transaction(conn):
                conn.execute(
                    "INSERT INTO botkit_counters (name, field, value) VALUES (?, ?, ?)"
                    " ON CONFLICT (name, field) DO UPDATE SET value = value + excluded.value",
                    (name, field, int(amount)),
                )
                row = conn.execute(
                    "SELECT value FROM botkit_counters WHERE name = ? AND field = ?",
                    (name, field),
                ).fetchone()
            return int(row[0])

        with self._errors("incr"):
            return self._retry(add)

    def counters(self, name: str) -> dict[str, int]:
        with self._errors("counters"):
            rows = self._retry(
                lambda conn: conn.execute(
                    "SELECT field, value FROM botkit_counters WHERE name = ?", (name,)
                ).fetchall(),
                write=False,
            )
        return {str(field): int(value) for field, value in rows}


def _is_busy(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _sqlite_path(url: str) -> str:
    parts = urlsplit(url)
    if parts.netloc:
        raise _config_error(
            url,
            "a sqlite URL has no host: use sqlite:///relative/path.db (three slashes)"
            " or sqlite:////absolute/path.db (four)",
        )
    if not parts.path.startswith("/") or len(parts.path) < 2:
        raise _config_error(
            url,
            "missing file path: use sqlite:///relative/path.db or sqlite:////absolute/path.db",
        )
    path = parts.path[1:]
    if path == ":memory:" or path.startswith("file:"):
        raise _config_error(
            url,
            "an in-memory SQLite database is not shared between workers; use memory://",
        )
    return path


def _open_sqlite(url: str, clock: Callable[[], float]) -> SQLiteStore:
    path = _sqlite_path(url)
    params = _single_params(url, urlsplit(url).query)
    busy_timeout = DEFAULT_BUSY_TIMEOUT_MS
    for name, raw in params.items():
        if name == "busy_timeout":
            busy_timeout = _positive_number(url, name, raw, int)
        else:
            raise _config_error(
                url, f"unknown query parameter {name!r} (sqlite accepts busy_timeout)"
            )
    parent = os.path.dirname(path)
    try:
        if parent:
            os.makedirs(parent, exist_ok=True)
        store = SQLiteStore(path, busy_timeout_ms=busy_timeout, clock=clock, url=mask_url(url))
    except sqlite3.OperationalError as exc:
        if _is_busy(exc):
            raise StoreUnavailable(
                f"sqlite store {mask_url(url)}: database stayed locked while opening: {exc}"
            ) from exc
        raise _config_error(url, f"cannot open or create {path!r}: {exc}") from exc
    except (OSError, sqlite3.Error) as exc:
        raise _config_error(url, f"cannot open or create {path!r}: {exc}") from exc
    logger.info("idempotency store: %s", store.url)
    return store


# ---------------------------------------------------------------------------
# redis://

# Value layout (all integers big-endian):
#   pending: b"P" + fingerprint (UTF-8)
#   done:    b"D" + int32 status + uint32 len(fingerprint) + fingerprint + body
_DONE_HEADER = struct.Struct(">iI")

# Compare-and-delete: only the claimer's own pending value is removed.
_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


def _encode_pending(fingerprint: str) -> bytes:
    return b"P" + fingerprint.encode("utf-8")


def _encode_done(fingerprint: str, status: int, body: bytes) -> bytes:
    fp = fingerprint.encode("utf-8")
    return b"D" + _DONE_HEADER.pack(status, len(fp)) + fp + bytes(body)


def _decode(value: bytes) -> Entry:
    kind = value[:1]
    if kind == b"P":
        return Entry(value[1:].decode("utf-8"), None, None)
    if kind == b"D" and len(value) >= 1 + _DONE_HEADER.size:
        status, fp_len = _DONE_HEADER.unpack_from(value, 1)
        start = 1 + _DONE_HEADER.size
        if start + fp_len <= len(value):
            fingerprint = value[start : start + fp_len].decode("utf-8")
            return Entry(fingerprint, status, value[start + fp_len :])
    raise ValueError("not a botkit idempotency value")


def _as_bytes(value: bytes | str) -> bytes:
    # The client is created with decode_responses off, so this is always bytes.
    return value if isinstance(value, bytes) else value.encode("utf-8")


def _ttl_ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


def _pack(*args: bytes | int) -> bytes:
    """One command in RESP, the protocol's array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = b"%d" % arg if isinstance(arg, int) else arg
        out.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(out)


#: A claim's outcome when its ``SET NX`` found the key taken on a round trip sent again
#: after the first one timed out: the first may have made the claim and lost the reply.
_MAYBE_MADE = b"(nil, sent again)"


def _check_reply(reply: bytes) -> None:
    """Raise for an error reply; anything else (OK, nil) is the caller's to read."""
    if reply[:1] == b"-":
        import redis.exceptions

        raise redis.exceptions.ResponseError(reply[1:].decode("utf-8", "replace"))


class _ThreadRedis(threading.local):
    pid: int = -1
    conn: Any = None


class RedisStore(_AnswersLater):
    """Idempotency entries as Redis keys ``botkit:idem:{key}``, counters as
    hashes ``botkit:count:{name}``.

    Expiry is Redis' own key TTL (``PX``), measured by the Redis server: the
    ``clock`` given to :func:`open_store` is not used. Claims, lookups and answers
    go over one connection per thread and per process, opened by redis-py (so the
    URL's password, database and TLS settings apply); the rest through redis-py's
    client and pool.
    Timeouts are short and a failed command is retried at most once (to get
    past a pooled connection that died with a Redis restart), so an outage
    surfaces as :class:`StoreUnavailable` within about half a second.
    """

    def __init__(self, client: redis.Redis, *, url: str) -> None:
        self.url = url
        self._redis = client
        self._release_script = client.register_script(_RELEASE_LUA)
        self._answers = _AnswerWriter(self._write_answers, "botkit-redis-answers")
        self._combiner = _ClaimCombiner(self._claim_many)
        import redis.exceptions

        self._connection_errors = (
            redis.exceptions.ConnectionError,
            redis.exceptions.TimeoutError,
            OSError,
        )
        self._clock = time.time  # for the answers' expiry; Redis' own TTL does the rest
        self._local = _ThreadRedis()
        self._conns_lock = threading.Lock()
        self._conns: list[Any] = []

    def _connection(self) -> Any:
        """This thread's own redis-py connection (connected on first use): the claim and
        the lookups are on every webhook's path, and redis-py's client and pool cost
        about as much CPU as the round trip itself."""
        local = self._local
        conn = local.conn
        if conn is None or local.pid != _pid:  # new thread, or the parent's
            pool = self._redis.connection_pool
            conn = pool.connection_class(**pool.connection_kwargs)
            local.conn, local.pid = conn, _pid
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    def _command(self, *args: Any) -> Any:
        """One command on this thread's connection. Retried once on a fresh
        connection, as the client does."""
        for attempt in (1, 2):
            conn = self._connection()
            try:
                conn.send_command(*args)
                return conn.read_response()
            except self._connection_errors:
                conn.disconnect()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _one_line_replies(self, packed: bytes, count: int) -> tuple[list[bytes], bool]:
        """Send commands packed by :func:`_pack` on this thread's connection and return
        their ``count`` replies, each one line without its CRLF (``+OK``, ``$-1`` or
        ``_`` for nil, ``-ERR …``), and whether Redis may have run them once already.
        Only for commands whose replies are one line: it reads the socket itself,
        because redis-py's packing and parsing cost more CPU than the round trip (a
        claim: 64-78 → 53-69 µs). Retried once on a fresh connection; when the first
        sending timed out, Redis may have run it (a connection found closed, as after
        a restart of Redis, had not reached it)."""
        ran_before = False
        for attempt in (1, 2):
            conn = self._connection()
            sending = False
            try:
                sock = conn._sock
                if sock is None:
                    conn.connect()
                    sock = conn._sock
                sending = True
                sock.sendall(packed)
                data: bytes = sock.recv(65536)
                while (lines := data.count(b"\r\n")) < count:
                    more = sock.recv(65536)
                    if not more:
                        raise ConnectionError("Redis closed the connection")
                    data += more
                replies = data.split(b"\r\n")
                if lines != count or replies[-1]:  # more than was asked: out of step
                    raise ConnectionError("unexpected bytes from Redis")
                del replies[-1]
                return replies, ran_before
            except self._connection_errors as exc:
                conn.disconnect()
                if attempt == 2:
                    raise
                ran_before = sending and isinstance(exc, TimeoutError)
        raise AssertionError("unreachable")  # pragma: no cover

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        import redis.exceptions

        try:
            yield
        except (redis.exceptions.RedisError, OSError) as exc:
            logger.warning("redis store %s: %s failed: %s", self.url, what, exc)
            raise StoreUnavailable(f"redis store {self.url}: {what} failed: {exc}") from exc
        except ValueError as exc:
            raise StoreUnavailable(
                f"redis store {self.url}: {what}: unreadable value: {exc}"
            ) from exc

    def claim(self, key: str, fingerprint: str, claim_ttl: float) -> Entry | None:
        answer = self._answers.entry(key)
        if answer is not None:  # answered in this process, not written yet
            return answer
        name = (REDIS_KEY_PREFIX + key).encode("utf-8")
        with self._errors("claim"):
            # SET NX is the atomic claim. When it fails, the GET can find nothing
            # if the entry expired or was released in between: try again. Claims of
            # other threads made at the same time share the round trip (_claim_many).
            for _ in range(5):
                reply = self._combiner.claim(key, fingerprint, claim_ttl)
                if reply == b"+OK":
                    return None
                if reply is not _MAYBE_MADE:
                    _check_reply(reply)
                value = self._command("GET", name)
                if value is None:
                    continue
                value = _as_bytes(value)
                if reply is _MAYBE_MADE and value == _encode_pending(fingerprint):
                    # The first sending made this claim and its reply was lost. (A copy
                    # with the same body claiming while the first sending timed out, a
                    # quarter second by default, would look the same; Stream sends none
                    # that soon: push retries come seconds later, the other hooks are
                    # not retried.)
                    return None
                return _decode(value)
        raise StoreUnavailable(f"redis store {self.url}: claim of {key!r} kept racing with expiry")

    def _claim_many(self, claims: list[_Claiming]) -> None:
        """``SET NX PX`` for each of ``claims`` in one round trip; each outcome is its reply."""
        packed = b"".join(
            _pack(
                b"SET",
                (REDIS_KEY_PREFIX + claim.key).encode("utf-8"),
                _encode_pending(claim.fingerprint),
                b"NX",
                b"PX",
                _ttl_ms(claim.ttl),
            )
            for claim in claims
        )
        replies, ran_before = self._one_line_replies(packed, len(claims))
        for claim, reply in zip(claims, replies, strict=True):
            taken = reply != b"+OK" and reply[:1] != b"-"
            claim.outcome = _MAYBE_MADE if ran_before and taken else reply

    def complete(self, key: str, fingerprint: str, status: int, body: bytes, ttl: float) -> None:
        self._write_answers([(key, fingerprint, int(status), bytes(body), time.time() + ttl)])

    def _write_answers(self, answers: list[Completion]) -> None:
        now = time.time()
        packed = b"".join(
            _pack(
                b"SET",
                (REDIS_KEY_PREFIX + key).encode("utf-8"),
                _encode_done(fingerprint, status, body),
                b"PX",
                _ttl_ms(max(expires_at - now, 0.001)),
            )
            for key, fingerprint, status, body, expires_at in answers
        )
        with self._errors("complete"):
            for reply in self._one_line_replies(packed, len(answers))[0]:  # SET: run twice is fine
                _check_reply(reply)

    def release(self, key: str, fingerprint: str) -> None:
        with self._errors("release"):
            self._release_script(keys=[REDIS_KEY_PREFIX + key], args=[_encode_pending(fingerprint)])

    def get(self, key: str) -> Entry | None:
        answer = self._answers.entry(key)
        if answer is not None:
            return answer
        with self._errors("get"):
            value = self._command("GET", REDIS_KEY_PREFIX + key)
            return None if value is None else _decode(_as_bytes(value))

    def ping(self) -> None:
        with self._errors("ping"):
            self._redis.ping()

    def close(self) -> None:
        self._answers.flush(2.0)
        with self._conns_lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            conn.disconnect()  # only shuts the socket down in the process that opened it
        try:
            self._redis.close()
        except Exception:  # pragma: no cover - closing a dead connection
            logger.debug("redis store %s: error on close", self.url, exc_info=True)

    def incr(self, name: str, field: str, amount: int = 1) -> int:
        with self._errors("incr"):
            return int(self._redis.hincrby(REDIS_COUNTER_PREFIX + name, field, int(amount)))

    def counters(self, name: str) -> dict[str, int]:
        with self._errors("counters"):
            raw: dict[Any, Any] = dict(self._redis.hgetall(REDIS_COUNTER_PREFIX + name))
        return {
            (k.decode("utf-8") if isinstance(k, bytes) else str(k)): int(v) for k, v in raw.items()
        }


def _open_redis(url: str) -> RedisStore:
    try:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry
    except ImportError:
        raise _config_error(
            url, "the redis package is not installed: pip install botkit[redis]"
        ) from None

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise _config_error(url, f"malformed Redis URL: {exc}") from None
    if parts.scheme in ("redis", "rediss"):
        db = parts.path.strip("/")
        if db and not db.isdigit():
            raise _config_error(url, f"the path must be a database number, got {parts.path!r}")
        if not parts.hostname and parts.netloc.rpartition("@")[2]:
            raise _config_error(url, "malformed host")
    elif not parts.path:
        raise _config_error(url, "unix:// needs a socket path, e.g. unix:///run/redis/redis.sock")
    for name, raw in _single_params(url, parts.query).items():
        if name in ("socket_timeout", "socket_connect_timeout"):
            _positive_number(url, name, raw, float)

    try:
        pool = redis.ConnectionPool.from_url(
            url,
            socket_timeout=DEFAULT_REDIS_TIMEOUT,
            socket_connect_timeout=DEFAULT_REDIS_TIMEOUT,
            retry=Retry(NoBackoff(), 1),
        )
        # Build (but do not connect) one connection, so that an unknown query
        # parameter is reported now rather than on the first webhook.
        probe = pool.connection_class(**pool.connection_kwargs)
        client = redis.Redis(connection_pool=pool)
    except (TypeError, ValueError) as exc:
        raise _config_error(url, f"malformed Redis URL: {exc}") from None
    if not hasattr(probe, "_sock"):  # RedisStore reads the claims' replies from it
        raise _config_error(url, f"redis-py {redis.__version__} is not supported: use 5 to 8")
    store = RedisStore(client, url=mask_url(url))
    logger.info("idempotency store: %s", store.url)
    return store
