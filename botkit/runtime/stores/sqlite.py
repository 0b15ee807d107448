"""``sqlite:///``: a SQLite file shared by the worker processes of one machine."""

from __future__ import annotations

import itertools
import math
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
    capped_body,
    config_error,
    logger,
    mask_url,
    positive_number,
    single_query_params,
)

T = TypeVar("T")

DEFAULT_BUSY_TIMEOUT_MS = 2000
#: The store's data is kept under this many bytes (BOTKIT_STORE_MAX_BYTES).
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
#: Expired rows are deleted (a batch of ``SQLITE_CLEANUP_BATCH``) every this many claims.
SQLITE_CLEANUP_EVERY = 1000
SQLITE_CLEANUP_BATCH = 1000
#: Seconds between two looks at the store's size, on the answers thread.
SIZE_CHECK_EVERY = 1.0
#: Past the cap, the oldest answers go until the data is under this part of it, so that
#: the next answers do not start an eviction each.
SIZE_LOW_WATER = 0.9
#: Seconds between two looks at which file the path names (a deleted or replaced file).
FILE_CHECK_EVERY = 1.0
#: Seconds a failed write keeps ``ping`` (``/healthz``) failing: a tiny write of the
#: ping may fit where answers no longer do (a full disk).
WRITE_FAILURE_MEMORY = 5.0
#: The WAL file is cut back to this size when it starts over after a burst.
SQLITE_WAL_LIMIT_BYTES = 64 * 1024 * 1024
#: Seconds between two checkpoints that start the WAL over, on the answers thread
#: (commits never checkpoint: see _connect). Under writes that never pause, SQLite's own
#: checkpoints never find a moment to start it over, and the WAL grows.
SQLITE_CHECKPOINT_EVERY = 0.5
#: Milliseconds a checkpoint waits for readers and writers before it gives up. Without
#: any wait, under claims from 8 threads it never found its moment (WAL 204 MB after 2 s
#: of benchmarks/store_claims.py); with 20 ms the WAL starts over, at 59 µs CPU a claim.
SQLITE_RESTART_WAIT_MS = 20

_SCHEMA = """
CREATE TABLE IF NOT EXISTS botkit_idempotency (
    key TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    status INTEGER,
    body BLOB,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS botkit_idempotency_expires ON botkit_idempotency (expires_at);
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

# What the store of fcntl claim locks (before issue 20) added to a file that is now
# opened by this one: a trigger that ran on every insert, a table nothing reads, and the
# mmap'd "<db>-claims" file (removed in _init_schema). Workers of that version still
# running (a rolling deploy) then fail their claims and go on without dedup, as for any
# store error, until they are replaced: two designs cannot exclude each other.
_LEGACY = """
DROP TRIGGER IF EXISTS botkit_claim_answered;
DROP TABLE IF EXISTS botkit_claims;
"""

# A claim is a pending row (status NULL) with the body's fingerprint, so every worker can
# tell a copy from a different body. It takes the key when there is no row or only an
# expired one; otherwise it changes nothing and the row in the way is read.
_CLAIM = (
    "INSERT INTO botkit_idempotency (key, fingerprint, status, body, expires_at)"
    " VALUES (?1, ?2, NULL, NULL, ?3)"
    " ON CONFLICT (key) DO UPDATE SET fingerprint = excluded.fingerprint, status = NULL,"
    " body = NULL, expires_at = excluded.expires_at"
    " WHERE botkit_idempotency.expires_at <= ?4"
)
_SELECT_ENTRY = (
    "SELECT fingerprint, status, body FROM botkit_idempotency WHERE key = ? AND expires_at > ?"
)
_ANSWER = (
    "INSERT OR REPLACE INTO botkit_idempotency (key, fingerprint, status, body, expires_at)"
    " VALUES (?, ?, ?, ?, ?)"
)
_RELEASE = "DELETE FROM botkit_idempotency WHERE key = ? AND fingerprint = ? AND status IS NULL"


class _ThreadConnection(threading.local):
    pid: int = -1
    generation: int = -1
    conn: sqlite3.Connection | None = None


# Connections inherited through fork() belong to the parent process: SQLite says not to
# use or close them in the child, so they are parked here instead of garbage-collected.
_INHERITED_CONNECTIONS: list[sqlite3.Connection] = []


class SQLiteStore(WriteBehindStore):
    """A SQLite file shared by all processes on one machine: plain SQL, one row per
    webhook id.

    WAL mode, one connection per thread and per process, autocommit, SQLite's own
    ``busy_timeout``. A claim is one ``INSERT ... ON CONFLICT`` of a pending row
    holding the body's fingerprint; the answer replaces it (written by a thread of the
    process, see :class:`AnswerWriter`); expiry is the ``expires_at`` column, compared
    with the injected clock.

    Faults of the file are not fatal: a connection that failed is reopened by its next
    use (so one opened read-only does not stay so), and once a second the path's inode
    is compared with the one opened, so that a deleted or replaced file is noticed and
    every connection of the process moves to the file the path names now. Data is kept
    under ``max_bytes``: expired rows go first, then the oldest answers. An answer over
    ``max_answer_bytes`` is stored without its body: copies get the in-flight answer
    and the handler does not run again.
    """

    def __init__(
        self,
        path: str,
        *,
        busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
        clock: Callable[[], float] = time.time,
        url: str | None = None,
        max_answer_bytes: int | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self.path = path
        self.url = url if url is not None else f"sqlite:///{path}"
        self.busy_timeout_ms = busy_timeout_ms
        self.max_answer_bytes = max_answer_bytes
        self.max_bytes = max_bytes
        self._clock = clock
        self._local = _ThreadConnection()
        self._lock = threading.Lock()
        self._generation = 0
        self._open: list[tuple[int, sqlite3.Connection]] = []
        self._claims = itertools.count(1)
        self._answers = AnswerWriter(self._write_answers, "botkit-sqlite-answers", self._maintain)
        self._file_id: tuple[int, int] | None = None
        self._file_checked = 0.0
        self._size_checked = 0.0
        self._checkpointed = 0.0
        self._shm = path + "-shm"
        self._failed_at = -WRITE_FAILURE_MEMORY
        self._ready = False
        try:
            self._init_schema()
        except sqlite3.Error as exc:  # unwritable, full, not a database: retried on use
            logger.warning("sqlite store %s: not usable yet: %s", self.url, exc)

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
                conn.executescript(_LEGACY)
                # A write: a file that opened read-only fails here, not at the first claim.
                conn.execute("INSERT OR REPLACE INTO botkit_meta VALUES ('opened', ?)", (b"1",))
            except sqlite3.Error as exc:
                self._drop_connection()
                if not _is_busy(exc) or time.monotonic() >= deadline:
                    raise
                time.sleep(0.01)
                continue
            self._remember_file()
            self._ready = True
            try:
                os.remove(self.path + "-claims")  # see _LEGACY
            except FileNotFoundError:
                pass
            except OSError as exc:
                logger.warning("sqlite store %s: an old -claims file stays: %s", self.url, exc)
            if str(mode).lower() != "wal":
                logger.warning(
                    "sqlite store %s: journal_mode is %s, not WAL; workers will block"
                    " each other more (is the file on a network filesystem?)",
                    self.url,
                    mode,
                )
            return

    # -- connections -------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        """This thread's connection, opened afresh after a fork, a failure or a change
        of the file."""
        if not self._shm_writable():
            # SQLite maps the -shm file into memory: touching it once it is immutable
            # (chattr +i) is a SIGBUS that kills the process, not an error to catch.
            raise sqlite3.OperationalError(f"{self._shm} cannot be written")
        local = self._local
        pid = os.getpid()
        conn = local.conn
        if conn is not None and local.pid == pid and local.generation == self._generation:
            return conn
        if conn is not None:
            if local.pid != pid:
                _INHERITED_CONNECTIONS.append(conn)
            else:  # the file changed under it (see _check_file)
                self._close_quietly(conn)
            local.conn = None
        conn = sqlite3.connect(
            self.path,
            timeout=self.busy_timeout_ms / 1000,
            isolation_level=None,
            check_same_thread=False,  # close() may run in another thread
        )
        try:
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(f"PRAGMA journal_size_limit={SQLITE_WAL_LIMIT_BYTES}")
            # Commits never checkpoint: the answers thread does (see checkpoint()). Under
            # steady writes from several workers every commit would run one, fsync and all.
            conn.execute("PRAGMA wal_autocheckpoint=0")
        except BaseException:
            conn.close()
            raise
        with self._lock:
            self._open.append((pid, conn))
            local.pid, local.generation, local.conn = pid, self._generation, conn
        return conn

    def _shm_writable(self) -> bool:
        return os.access(self._shm, os.W_OK) or not os.path.exists(self._shm)

    def _drop_connection(self) -> None:
        """Close this thread's connection after a failure: the next use opens a new one
        (a connection that opened the file read-only would otherwise stay read-only)."""
        if not self._shm_writable():
            return  # closing may write to the -shm file (see _connect): keep it for later
        local = self._local
        conn, local.conn = local.conn, None
        if conn is not None and local.pid == os.getpid():
            self._close_quietly(conn)

    def _close_quietly(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            self._open = [(owner, c) for owner, c in self._open if c is not conn]
        try:
            conn.close()
        except sqlite3.Error:  # pragma: no cover - closing a broken connection
            pass

    def _remember_file(self) -> None:
        try:
            st = os.stat(self.path)
            self._file_id = (st.st_dev, st.st_ino)
        except OSError:
            self._file_id = None

    def _check_file(self) -> None:
        """Once every ``FILE_CHECK_EVERY`` seconds: is the path still the file this
        process opened? A deleted or replaced file would split the workers between two
        databases, and exactly-once with them."""
        now = time.monotonic()
        if now - self._file_checked < FILE_CHECK_EVERY:
            return
        self._file_checked = now
        try:
            st = os.stat(self.path)
            current: tuple[int, int] | None = (st.st_dev, st.st_ino)
        except OSError:
            current = None
        if current is not None and current == self._file_id and self._ready:
            return
        if current != self._file_id:
            logger.warning(
                "sqlite store %s: the file was %s: reopening",
                self.url,
                "deleted" if current is None else "replaced",
            )
        with self._lock:
            self._generation += 1  # every thread of the process opens the file anew
            self._file_id = current
        self._ready = False
        try:
            self._init_schema()
        except sqlite3.Error as exc:
            self._failed(exc)

    def _failed(self, exc: BaseException) -> None:
        self._failed_at = time.monotonic()
        self._drop_connection()

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except (sqlite3.Error, OSError) as exc:
            self._failed(exc)
            logger.warning("sqlite store %s: %s failed: %s", self.url, what, exc)
            raise StoreUnavailable(f"sqlite store {self.url}: {what} failed: {exc}") from exc

    def _usable(self) -> sqlite3.Connection:
        """This thread's connection, once the file has been checked and set up."""
        self._check_file()
        if not self._ready:
            self._init_schema()
        return self._connect()

    @staticmethod
    def _entry(row: tuple[Any, ...]) -> Entry:
        fingerprint, status, body = row
        return Entry(
            str(fingerprint),
            None if status is None else int(status),
            None if body is None else bytes(body),
        )

    # -- Store API ----------------------------------------------------------

    def claim(self, key: str, fingerprint: str, claim_ttl: float) -> Entry | None:
        answer = self._answers.unwritten_entry(key)
        if answer is not None:  # answered in this process, not written yet
            return answer
        with self._errors("claim"):
            conn = self._usable()
            for _ in range(3):  # the row in the way may expire or be released meanwhile
                now = self._clock()
                if conn.execute(_CLAIM, (key, fingerprint, now + claim_ttl, now)).rowcount:
                    if next(self._claims) % SQLITE_CLEANUP_EVERY == 0:
                        self._answers.maintain_soon()  # off this request's thread
                    return None
                row = conn.execute(_SELECT_ENTRY, (key, now)).fetchone()
                if row is not None:
                    return self._entry(row)
        raise StoreUnavailable(f"sqlite store {self.url}: claim of {key!r} kept changing")

    def complete(self, key: str, fingerprint: str, status: int, body: bytes, ttl: float) -> None:
        with self._errors("complete"):
            self._usable()
            self._write_answers([Answer(key, fingerprint, status, body, self._clock() + ttl)])

    def _write_answers(self, answers: list[Answer]) -> None:
        # Capped here, not when queued: until written, this process's copies may as well
        # get the whole answer.
        limit = self.max_answer_bytes
        rows = [
            (a.key, a.fingerprint, int(a.status), capped_body(a.body, limit, a.key), a.expires_at)
            for a in answers
        ]
        try:
            conn = self._connect()
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(_ANSWER, rows)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except (sqlite3.Error, OSError) as exc:
            # Their claims stay pending until they expire (BOTKIT_CLAIM_TTL): copies get
            # the in-flight answer meanwhile, and Stream's later retries run them again.
            self._failed(exc)
            raise

    def release(self, key: str, fingerprint: str) -> None:
        with self._errors("release"):
            self._usable().execute(_RELEASE, (key, fingerprint))

    def get(self, key: str) -> Entry | None:
        answer = self._answers.unwritten_entry(key)
        if answer is not None:
            return answer
        with self._errors("get"):
            row = self._usable().execute(_SELECT_ENTRY, (key, self._clock())).fetchone()
        return None if row is None else self._entry(row)

    # -- housekeeping -----------------------------------------------------------

    def _maintain(self, requested: bool) -> None:
        """On the answers thread: the expired-row cleanup when claims ask for it, and the
        size cap once every ``SIZE_CHECK_EVERY`` seconds."""
        if requested:
            self.cleanup()
        if time.monotonic() - self._size_checked >= SIZE_CHECK_EVERY:
            self._size_checked = time.monotonic()
            self.enforce_size()
        if time.monotonic() - self._checkpointed >= SQLITE_CHECKPOINT_EVERY:
            self._checkpointed = time.monotonic()
            self.checkpoint()

    def checkpoint(self) -> int:
        """Copy the WAL into the database and have the next write start it over, unless
        a reader or writer stays in the way (then return 1, and the next call tries
        again). It waits ``SQLITE_RESTART_WAIT_MS`` at most: a waiting ``RESTART``
        checkpoint holds new writers back."""
        try:
            conn = self._connect()
            conn.execute(f"PRAGMA busy_timeout={SQLITE_RESTART_WAIT_MS}")
            try:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()  # holds no one back
                (busy, _, _) = conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
            finally:
                conn.execute(f"PRAGMA busy_timeout={self.busy_timeout_ms}")
        except sqlite3.Error as exc:
            logger.debug("sqlite store %s: checkpoint skipped: %s", self.url, exc)
            return 1
        return int(busy)

    def cleanup(self) -> int:
        """Delete up to ``SQLITE_CLEANUP_BATCH`` expired rows; return how many.

        Run automatically every ``SQLITE_CLEANUP_EVERY`` claims, on the thread that
        writes the answers. Never raises: a busy database just postpones the cleanup.
        """
        try:
            deleted = (
                self._connect()
                .execute(
                    "DELETE FROM botkit_idempotency WHERE rowid IN"
                    " (SELECT rowid FROM botkit_idempotency WHERE expires_at <= ? LIMIT ?)",
                    (self._clock(), SQLITE_CLEANUP_BATCH),
                )
                .rowcount
            )
        except sqlite3.Error as exc:
            self._failed(exc)
            logger.debug("sqlite store %s: cleanup skipped: %s", self.url, exc)
            return 0
        if deleted:
            logger.debug("sqlite store %s: deleted %d expired entries", self.url, deleted)
        return deleted

    def data_bytes(self) -> int:
        """Bytes of the database's pages in use (the WAL's newest pages counted)."""
        conn = self._connect()
        (page_size,) = conn.execute("PRAGMA page_size").fetchone()
        (pages,) = conn.execute("PRAGMA page_count").fetchone()
        (free,) = conn.execute("PRAGMA freelist_count").fetchone()
        return int((pages - free) * page_size)

    def enforce_size(self) -> int:
        """Keep the data under ``max_bytes``: past it, delete expired rows, then the
        oldest answers (never a pending claim), until under ``SIZE_LOW_WATER`` of it.
        Return how many rows went. Freed pages are reused by SQLite: the file stops
        growing, it does not shrink. Never raises."""
        deleted = 0
        try:
            if self.data_bytes() <= self.max_bytes:
                return 0
            conn = self._connect()
            target = self.max_bytes * SIZE_LOW_WATER
            deleted = conn.execute(
                "DELETE FROM botkit_idempotency WHERE expires_at <= ?", (self._clock(),)
            ).rowcount
            while (used := self.data_bytes()) > target:
                # as many of the oldest answers as hold the excess, if rows are alike
                (answers,) = conn.execute(
                    "SELECT count(*) FROM botkit_idempotency WHERE status IS NOT NULL"
                ).fetchone()
                excess = math.ceil(answers * (used - target) / used)
                gone = conn.execute(
                    "DELETE FROM botkit_idempotency WHERE rowid IN (SELECT rowid FROM"
                    " botkit_idempotency WHERE status IS NOT NULL ORDER BY expires_at LIMIT ?)",
                    (max(1, excess),),
                ).rowcount
                deleted += gone
                if gone == 0:
                    break
        except sqlite3.Error as exc:
            self._failed(exc)
            logger.warning("sqlite store %s: size cap not enforced: %s", self.url, exc)
        if deleted:
            logger.warning(
                "sqlite store %s: over BOTKIT_STORE_MAX_BYTES (%d): %d oldest entries evicted",
                self.url,
                self.max_bytes,
                deleted,
            )
        return deleted

    def ping(self) -> None:
        """A small write, so that an unwritable file or a full disk shows; and a write
        that failed in the last ``WRITE_FAILURE_MEMORY`` seconds fails it too."""
        with self._errors("ping"):
            self._usable().execute(
                "INSERT OR REPLACE INTO botkit_meta (name, value) VALUES ('ping', ?)",
                (repr(self._clock()).encode(),),
            )
        since = time.monotonic() - self._failed_at
        if since < WRITE_FAILURE_MEMORY:
            raise StoreUnavailable(f"sqlite store {self.url}: a write failed {since:.1f} s ago")

    def close(self) -> None:
        self._answers.flush(2.0)
        pid = os.getpid()
        with self._lock:
            mine = [conn for owner, conn in self._open if owner == pid]
            self._open = [(owner, conn) for owner, conn in self._open if owner != pid]
            self._generation += 1
        for conn in mine:
            try:
                conn.close()
            except sqlite3.Error:  # pragma: no cover
                pass

    def incr(self, name: str, field: str, amount: int = 1) -> int:
        with self._errors("incr"):
            (value,) = (
                self._usable()
                .execute(
                    "INSERT INTO botkit_counters (name, field, value) VALUES (?, ?, ?)"
                    " ON CONFLICT (name, field) DO UPDATE SET value = value + excluded.value"
                    " RETURNING value",
                    (name, field, int(amount)),
                )
                .fetchone()
            )
        return int(value)

    def counters(self, name: str) -> dict[str, int]:
        with self._errors("counters"):
            rows = (
                self._usable()
                .execute("SELECT field, value FROM botkit_counters WHERE name = ?", (name,))
                .fetchall()
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


def open_sqlite(
    url: str,
    clock: Callable[[], float],
    *,
    max_answer_bytes: int | None = None,
    max_bytes: int | None = None,
) -> SQLiteStore:
    """The store of a ``sqlite:///`` URL; creates the file and its folder.

    A path that can never be a database (its folder cannot be made, or it is a folder)
    is a :class:`StoreConfigError`. A file that cannot be written now (read-only, a full
    disk, not a database) is not: the store starts unavailable and tries again on use,
    so the workers boot and ``/healthz`` says what is wrong.
    """
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
    except OSError as exc:
        raise config_error(url, f"cannot open or create {path!r}: {exc}") from exc
    if os.path.isdir(path):
        raise config_error(url, f"cannot open or create {path!r}: it is a directory")
    store = SQLiteStore(
        path,
        busy_timeout_ms=busy_timeout,
        clock=clock,
        url=mask_url(url),
        max_answer_bytes=max_answer_bytes,
        max_bytes=max_bytes if max_bytes is not None else DEFAULT_MAX_BYTES,
    )
    logger.info("idempotency store: %s", store.url)
    return store
