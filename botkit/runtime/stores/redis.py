"""``redis://``, ``rediss://``, ``unix://``: Redis, shared by several machines.

redis-py is imported only when a Redis store is opened (``pip install botkit[redis]``).
"""

from __future__ import annotations

import math
import os
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .base import (
    Answer,
    AnswerWriter,
    ClaimCombiner,
    ClaimRequest,
    Entry,
    StoreUnavailable,
    WriteBehindStore,
    config_error,
    logger,
    mask_url,
    positive_number,
    single_query_params,
)

if TYPE_CHECKING:  # pragma: no cover
    import redis

DEFAULT_REDIS_TIMEOUT = 0.25
REDIS_KEY_PREFIX = "botkit:idem:"
REDIS_COUNTER_PREFIX = "botkit:count:"

#: This process's id, kept by a fork hook: ``os.getpid()`` is a system call, and the
#: store asks on every webhook whether it came through ``fork()`` from its parent.
_pid = os.getpid()


def _after_fork() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_after_fork)


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


def encode_pending(fingerprint: str) -> bytes:
    """The value of a claim whose answer is not stored yet."""
    return b"P" + fingerprint.encode("utf-8")


def encode_answer(fingerprint: str, status: int, body: bytes) -> bytes:
    """The value of a stored answer."""
    fingerprint_bytes = fingerprint.encode("utf-8")
    header = _DONE_HEADER.pack(status, len(fingerprint_bytes))
    return b"D" + header + fingerprint_bytes + bytes(body)


def decode_entry(value: bytes) -> Entry:
    """The entry a value of :func:`encode_pending` or :func:`encode_answer` holds."""
    kind = value[:1]
    if kind == b"P":
        return Entry(value[1:].decode("utf-8"), None, None)
    if kind == b"D" and len(value) >= 1 + _DONE_HEADER.size:
        status, fingerprint_length = _DONE_HEADER.unpack_from(value, 1)
        start = 1 + _DONE_HEADER.size
        end = start + fingerprint_length
        if end <= len(value):
            return Entry(value[start:end].decode("utf-8"), status, value[end:])
    raise ValueError("not a botkit idempotency value")


def _as_bytes(value: bytes | str) -> bytes:
    # The client is created with decode_responses off, so this is always bytes.
    return value if isinstance(value, bytes) else value.encode("utf-8")


def _ttl_ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


def _pack_command(*args: bytes | int) -> bytes:
    """One command in RESP, the protocol's array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = b"%d" % arg if isinstance(arg, int) else arg
        out.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(out)


#: A claim's outcome when its ``SET NX`` found the key taken on a round trip sent again
#: after the first one timed out: the first may have made the claim and lost the reply.
_MAYBE_MADE = b"(nil, sent again)"


def _raise_if_error(reply: bytes) -> None:
    """Raise for an error reply; anything else (OK, nil) is the caller's to read."""
    if reply[:1] == b"-":
        import redis.exceptions

        raise redis.exceptions.ResponseError(reply[1:].decode("utf-8", "replace"))


class _ThreadConnection(threading.local):
    pid: int = -1
    conn: Any = None


class RedisStore(WriteBehindStore):
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
        self._answers = AnswerWriter(self._write_answers, "botkit-redis-answers")
        self._combiner = ClaimCombiner(self._claim_many)
        import redis.exceptions

        self._connection_errors = (
            redis.exceptions.ConnectionError,
            redis.exceptions.TimeoutError,
            OSError,
        )
        self._clock = time.time  # for the answers' expiry; Redis' own TTL does the rest
        self._local = _ThreadConnection()
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
        """Send commands packed by :func:`_pack_command` on this thread's connection and
        return their ``count`` replies, each one line without its CRLF (``+OK``, ``$-1``
        or ``_`` for nil, ``-ERR …``), and whether Redis may have run them once already.
        Only for commands whose replies are one line: it reads the socket itself,
        because redis-py's packing and parsing cost more CPU than the round trip.
        Retried once on a fresh connection; when the first sending timed out, Redis may
        have run it (a connection found closed, as after a restart of Redis, had not
        reached it)."""
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
        answer = self._answers.unwritten_entry(key)
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
                    _raise_if_error(reply)
                value = self._command("GET", name)
                if value is None:
                    continue
                value = _as_bytes(value)
                if reply is _MAYBE_MADE and value == encode_pending(fingerprint):
                    # The first sending made this claim and its reply was lost. (A copy
                    # with the same body claiming while the first sending timed out, a
                    # quarter second by default, would look the same; Stream sends none
                    # that soon: push retries come seconds later, the other hooks are
                    # not retried.)
                    return None
                return decode_entry(value)
        raise StoreUnavailable(f"redis store {self.url}: claim of {key!r} kept racing with expiry")

    def _claim_many(self, claims: list[ClaimRequest]) -> None:
        """``SET NX PX`` for each of ``claims`` in one round trip; each outcome is its reply."""
        packed = b"".join(
            _pack_command(
                b"SET",
                (REDIS_KEY_PREFIX + claim.key).encode("utf-8"),
                encode_pending(claim.fingerprint),
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
        self._write_answers([Answer(key, fingerprint, int(status), bytes(body), time.time() + ttl)])

    def _write_answers(self, answers: list[Answer]) -> None:
        now = time.time()
        packed = b"".join(
            _pack_command(
                b"SET",
                (REDIS_KEY_PREFIX + answer.key).encode("utf-8"),
                encode_answer(answer.fingerprint, answer.status, answer.body),
                b"PX",
                _ttl_ms(max(answer.expires_at - now, 0.001)),
            )
            for answer in answers
        )
        with self._errors("complete"):
            for reply in self._one_line_replies(packed, len(answers))[0]:  # SET: run twice is fine
                _raise_if_error(reply)

    def release(self, key: str, fingerprint: str) -> None:
        with self._errors("release"):
            self._release_script(keys=[REDIS_KEY_PREFIX + key], args=[encode_pending(fingerprint)])

    def get(self, key: str) -> Entry | None:
        answer = self._answers.unwritten_entry(key)
        if answer is not None:
            return answer
        with self._errors("get"):
            value = self._command("GET", REDIS_KEY_PREFIX + key)
            return None if value is None else decode_entry(_as_bytes(value))

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
            (field.decode("utf-8") if isinstance(field, bytes) else str(field)): int(value)
            for field, value in raw.items()
        }


def open_redis(url: str) -> RedisStore:
    """The store of a ``redis://``, ``rediss://`` or ``unix://`` URL. Connects on use."""
    try:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry
    except ImportError:
        raise config_error(
            url, "the redis package is not installed: pip install botkit[redis]"
        ) from None

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise config_error(url, f"malformed Redis URL: {exc}") from None
    if parts.scheme in ("redis", "rediss"):
        db = parts.path.strip("/")
        if db and not db.isdigit():
            raise config_error(url, f"the path must be a database number, got {parts.path!r}")
        if not parts.hostname and parts.netloc.rpartition("@")[2]:
            raise config_error(url, "malformed host")
    elif not parts.path:
        raise config_error(url, "unix:// needs a socket path, e.g. unix:///run/redis/redis.sock")
    for name, raw in single_query_params(url, parts.query).items():
        if name in ("socket_timeout", "socket_connect_timeout"):
            positive_number(url, name, raw, float)

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
        raise config_error(url, f"malformed Redis URL: {exc}") from None
    if not hasattr(probe, "_sock"):  # RedisStore reads the claims' replies from it
        raise config_error(url, f"redis-py {redis.__version__} is not supported: use 5 to 8")
    store = RedisStore(client, url=mask_url(url))
    logger.info("idempotency store: %s", store.url)
    return store
