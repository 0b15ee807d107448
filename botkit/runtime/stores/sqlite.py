"""``sqlite:///``: a SQLite file shared by the worker processes of one machine."""

from __future__ import annotations

import itertools
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import urlsplit

from .base import (
    Answer,
    AnswerWriter,
    Entry,
    StoreUnavailable,
    WriteBehindStore,
    config_error,
    logger,
    mask_url,
    positive_number,
    single_query_params,
)
from .sqlite_claims import ClaimLocks, close_claim_locks, lock_offset, open_claim_locks

T = TypeVar("T")

DEFAULT_BUSY_TIMEOUT_MS = 2000
SQLITE_CLEANUP_EVERY = 1000
SQLITE_CHECKPOINT_EVERY = 0.5
#: Commits never checkpoint (0): the answers thread does, every SQLITE_CHECKPOINT_EVERY.
#: Under steady writes from several workers SQLite never starts its WAL over, so every
#: commit would run a checkpoint, fsync included.
SQLITE_AUTOCHECKPOINT_PAGES = 0
#: The WAL file is cut back to this size when it starts over after a burst.
SQLITE_WAL_LIMIT_BYTES = 64 * 1024 * 1024
SQLITE_CACHE_KIB = 512
SQLITE_CLEANUP_BATCH = 1000

#: This process's id, kept by a fork hook: ``os.getpid()`` is a system call, and the
#: store asks on every webhook whether it came through ``fork()`` from its parent.
_pid = os.getpid()


def _after_fork() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_after_fork)


_SCHEMA = """
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
# several statements would hold the lock while the thread waits for the GIL in between.)
# Claims are not written to the file at all: see ClaimLocks. The claims table is kept for
# botkit versions that wrote their claims there (a rolling deploy runs both): their rows
# are honoured until they expire, and the trigger above deletes one when its answer is
# stored.
_INSERT_ANSWERS = (
    "INSERT OR REPLACE INTO botkit_idempotency (key, fingerprint, status, body, expires_at) VALUES "
)
_ANSWERS_PER_STATEMENT = 500  # 5 parameters each: well under SQLite's 32,766
# An answer (or the pending row of a botkit before the claims table) first, then a claim
# of a botkit that wrote its claims to the claims table.
_SELECT_ENTRY = (
    "SELECT fingerprint, status, body FROM botkit_idempotency WHERE key = ?1 AND expires_at > ?2"
    " UNION ALL SELECT fingerprint, NULL, NULL FROM botkit_claims"
    " WHERE key = ?1 AND expires_at > ?2"
    " LIMIT 1"
)


class _ThreadConnections(threading.local):
    pid: int = -1
    generation: int = -1
    conn: sqlite3.Connection | None = None
    uncached: sqlite3.Connection | None = None  # for the answers: see _connect


# Connections inherited through fork() belong to the parent process. Closing them
# in the child could interfere with the parent's locks, so they are parked here
# for the life of the process instead of being closed or garbage-collected.
_INHERITED_CONNECTIONS: list[sqlite3.Connection] = []


class SQLiteStore(WriteBehindStore):
    """A SQLite file shared by all processes on one machine.

    WAL mode, one connection per thread and per process (a connection opened
    before gunicorn forks is never used by a child), autocommit. A claim is a lock of
    the process on a file next to the database (:class:`ClaimLocks`), then a read of
    the answers, unless the filter in the same file says the key was never answered
    (:class:`AnsweredKeys`); nothing is written until the answer, and the claim is let
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
        self._local = _ThreadConnections()
        self._lock = threading.Lock()
        self._generation = 0
        self._open: list[tuple[int, sqlite3.Connection]] = []
        self._claims = itertools.count(1)
        self._write_lock = threading.Lock()
        self._write_lock_pid = _pid
        self._answers = AnswerWriter(self._write_answers, "botkit-sqlite-answers", self._maintain)
        self._checkpointed = time.monotonic()
        self._init_schema()
        self._locks: ClaimLocks | None = open_claim_locks(path)
        # Set up before the first answer is written, which would otherwise be under the
        # horizon of the first region: read only once it has expired.
        answered_keys = self._locks.answered_keys
        if answered_keys is not None:
            try:
                answered_keys.maintain(self, clock())
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
                (mode,) = conn.execute("PRAGMA journal_mode=WAL").fetchone()
                conn.executescript(_SCHEMA)
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
        would keep every body of the last batch of each size."""
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
            # under load is before almost every statement: a bigger one buys only memory.
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
        run: Callable[[sqlite3.Connection], T],
        write: bool = True,
        uncached: bool = False,
    ) -> T:
        """``run(connection)``, again after a short sleep while another process holds
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
                return run(self._connect(uncached))
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
        """The entry of a row of :data:`_SELECT_ENTRY`."""
        fingerprint, status, body = row
        return Entry(
            str(fingerprint),
            None if status is None else int(status),
            None if body is None else bytes(body),
        )

    # -- Store API ----------------------------------------------------------

    def _claim_locks(self) -> ClaimLocks:
        locks = self._locks
        if locks is None:  # used again after close()
            with self._lock:
                if self._locks is None:
                    self._locks = open_claim_locks(self.path)
                locks = self._locks
        return locks

    def claim(self, key: str, fingerprint: str, claim_ttl: float) -> Entry | None:
        answer = self._answers.unwritten_entry(key)
        if answer is not None:  # answered in this process, not written yet
            return answer
        now = self._clock()
        with self._errors("claim"):
            locks = self._claim_locks()
            # The lock first, then the look at the answers: an answer is in the file
            # before its claim is let go, so whoever takes the lock next reads it.
            offset = lock_offset(key)
            in_the_way = locks.try_claim(key, offset, fingerprint, now + claim_ttl, now)
            if in_the_way is not None:
                return in_the_way
            try:
                answered_keys = locks.answered_keys
                if answered_keys is not None and answered_keys.surely_unanswered(offset):
                    rows = []  # never answered: no need to look
                else:
                    rows = self._rows(_SELECT_ENTRY, (key, now), write=False)
            except BaseException:
                locks.release(key, fingerprint)
                raise
        if rows:  # answered (or claimed by an older botkit): not ours to run
            locks.release(key, fingerprint)
            return self._entry(rows[0])
        if next(self._claims) % SQLITE_CLEANUP_EVERY == 0:
            self._answers.maintain_soon()  # the cleanup, off this request's thread
        return None

    def complete(self, key: str, fingerprint: str, status: int, body: bytes, ttl: float) -> None:
        with self._errors("complete"):
            self._write_answers(
                [Answer(key, fingerprint, int(status), bytes(body), self._clock() + ttl)]
            )

    def _write_answers(self, answers: list[Answer]) -> None:
        step = _ANSWERS_PER_STATEMENT
        try:
            for start in range(0, len(answers), step):
                chunk = answers[start : start + step]
                sql = _INSERT_ANSWERS + ", ".join(["(?, ?, ?, ?, ?)"] * len(chunk))
                params = tuple(value for answer in chunk for value in answer)
                self._change(sql, params, uncached=True)
                locks = self._locks
                if locks is not None and locks.answered_keys is not None:
                    locks.answered_keys.mark_answered([lock_offset(answer.key) for answer in chunk])
        finally:
            # Written: the next claim reads the answer. Not written: the claims go, and
            # Stream's retries run the handlers again, as after a crash.
            locks = self._locks  # None after close(), which let go of every claim
            if locks is not None:
                for answer in answers:
                    locks.release(answer.key)

    def release(self, key: str, fingerprint: str) -> None:
        locks = self._locks  # None after close(), which let go of every claim
        if locks is not None:
            with self._errors("release"):
                locks.release(key, fingerprint)

    def get(self, key: str) -> Entry | None:
        answer = self._answers.unwritten_entry(key)
        if answer is not None:
            return answer
        now = self._clock()
        with self._errors("get"):
            rows = self._rows(_SELECT_ENTRY, (key, now), write=False)
            if rows:
                return self._entry(rows[0])
            return self._claim_locks().claimed_entry(key, now)

    def _maintain(self, requested: bool) -> None:
        """Housekeeping on the answers thread: the expired-row cleanup when the claims
        ask for it, this process's expired claims let go, and a WAL checkpoint every
        ``SQLITE_CHECKPOINT_EVERY`` seconds (the only one: commits do not checkpoint, see
        ``SQLITE_AUTOCHECKPOINT_PAGES``)."""
        if requested:
            self.cleanup()
        locks = self._locks
        if locks is not None:
            locks.release_expired(self._clock())
        if time.monotonic() - self._checkpointed >= SQLITE_CHECKPOINT_EVERY:
            self._checkpointed = time.monotonic()
            if locks is not None and locks.answered_keys is not None:
                try:
                    locks.answered_keys.maintain(self, self._clock())
                except (sqlite3.Error, OSError) as exc:  # claims read the answers meanwhile
                    logger.debug("sqlite store %s: filter of answered keys: %s", self.url, exc)
            self.checkpoint()

    # -- what the filter of answered keys keeps in the database ------------------

    def filter_id(self) -> bytes | None:
        """The id of the filter of answered keys that belongs to this database."""
        rows = self._rows(
            "SELECT value FROM botkit_meta WHERE name = 'answered-keys'", (), write=False
        )
        if not rows:
            return None
        [(value,)] = rows
        return bytes(value)

    def set_filter_id(self, value: bytes) -> None:
        """Record that the filter with id ``value`` is this database's."""
        self._change(
            "INSERT OR REPLACE INTO botkit_meta (name, value) VALUES ('answered-keys', ?)",
            (value,),
        )

    def latest_expiry(self) -> float:
        """The latest expiry of an answer or claim in the database (0.0 if none)."""
        [(latest,)] = self._rows(
            "SELECT max(latest) FROM (SELECT max(expires_at) AS latest FROM botkit_idempotency"
            " UNION ALL SELECT max(expires_at) FROM botkit_claims)",
            (),
            write=False,
        )
        return float(latest or 0.0)

    # -- housekeeping -----------------------------------------------------------

    def checkpoint(self) -> tuple[int, int, int]:
        """Copy the WAL into the database file and, when no write is under way, have
        the next write start the WAL over; return SQLite's ``(busy, frames in the WAL,
        frames copied)`` of the second step.

        Under writes that never pause, SQLite finds no moment of its own to start the WAL
        over, and with only ``PASSIVE`` checkpoints the WAL grows without end. So a
        ``PASSIVE`` checkpoint (which holds no one back) copies what is there, then a
        ``RESTART`` one copies the few frames written since, holding writes back for that
        moment. It does not wait: when a write holds the lock it returns busy, and the
        next call, ``SQLITE_CHECKPOINT_EVERY`` seconds later, tries again.
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
            close_claim_locks(locks)
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
                (value,) = conn.execute(
                    "SELECT value FROM botkit_counters WHERE name = ? AND field = ?",
                    (name, field),
                ).fetchone()
            return int(value)

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
        raise config_error(
            url,
            "a sqlite URL has no host: use sqlite:///relative/path.db (three slashes)"
            " or sqlite:////absolute/path.db (four)",
        )
    if not parts.path.startswith("/") or len(parts.path) < 2:
        raise config_error(
            url,
            "missing file path: use sqlite:///relative/path.db or sqlite:////absolute/path.db",
        )
    path = parts.path[1:]
    if path == ":memory:" or path.startswith("file:"):
        raise config_error(
            url,
            "an in-memory SQLite database is not shared between workers; use memory://",
        )
    return path


def open_sqlite(url: str, clock: Callable[[], float]) -> SQLiteStore:
    """The store of a ``sqlite:///`` URL; creates the file and its folder."""
    path = _sqlite_path(url)
    params = single_query_params(url, urlsplit(url).query)
    busy_timeout = DEFAULT_BUSY_TIMEOUT_MS
    for name, raw in params.items():
        if name == "busy_timeout":
            busy_timeout = positive_number(url, name, raw, int)
        else:
            raise config_error(
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
        raise config_error(url, f"cannot open or create {path!r}: {exc}") from exc
    except (OSError, sqlite3.Error) as exc:
        raise config_error(url, f"cannot open or create {path!r}: {exc}") from exc
    logger.info("idempotency store: %s", store.url)
    return store
