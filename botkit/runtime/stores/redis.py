"""``redis://``, ``rediss://``, ``unix://``: Redis, shared by several machines.

Plain redis-py: ``SET NX PX`` claims, ``GET`` lookups, pipelined ``SET PX`` answers, and
two small Lua scripts (``register_script``) for the releases, which must look before
they delete.
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

if TYPE_CHECKING:  # pragma: no cover
    import redis

#: Seconds redis-py waits for a connection and for each reply (URL parameters
#: ``socket_timeout`` and ``socket_connect_timeout``): a quarter of Stream's ~1 s budget.
DEFAULT_REDIS_TIMEOUT = 0.25
REDIS_KEY_PREFIX = "botkit:idem:"
REDIS_COUNTER_PREFIX = "botkit:count:"

#: This process's id, kept by a fork hook (``os.getpid()`` is a system call, and a
#: thread's client is checked on every claim).
_pid = os.getpid()


def _after_fork() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_after_fork)


class _ThreadClient(threading.local):
    pid: int = -1
    client: redis.Redis | None = None


# Value layout (integers big-endian):
#   pending: b"P" + token (16 hex digits, one per claim) + fingerprint (UTF-8)
#   done:    b"D" + int32 status + uint32 len(fingerprint) + fingerprint + body
_TOKEN_LENGTH = 16
_DONE_HEADER = struct.Struct(">iI")

# Delete a pending claim for the given fingerprint (a claimer giving up its own).
_RELEASE_LUA = """
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, 1) == 'P' and string.sub(v, 18) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""

# Delete exactly this value: a claim whose reply never came back (see RedisStore.claim).
_RELEASE_EXACT_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


def encode_pending(fingerprint: str, token: bytes | None = None) -> bytes:
    """The value of a claim whose answer is not stored yet (a fresh token if none)."""
    if token is None:
        token = os.urandom(_TOKEN_LENGTH // 2).hex().encode("ascii")
    return b"P" + token + fingerprint.encode("utf-8")


def encode_answer(fingerprint: str, status: int, body: bytes | None) -> bytes:
    """The value of a stored answer; ``None``: answered, its body over the cap not kept."""
    fingerprint_bytes = fingerprint.encode("utf-8")
    header = _DONE_HEADER.pack(status, len(fingerprint_bytes))
    if body is None:
        return b"N" + header + fingerprint_bytes
    return b"D" + header + fingerprint_bytes + bytes(body)


def decode_entry(value: bytes) -> Entry:
    """The entry a value of :func:`encode_pending` or :func:`encode_answer` holds."""
    kind = value[:1]
    if kind == b"P" and len(value) > _TOKEN_LENGTH:
        return Entry(value[1 + _TOKEN_LENGTH :].decode("utf-8"), None, None)
    if kind in (b"D", b"N") and len(value) >= 1 + _DONE_HEADER.size:
        status, fingerprint_length = _DONE_HEADER.unpack_from(value, 1)
        start = 1 + _DONE_HEADER.size
        end = start + fingerprint_length
        if end <= len(value):
            body = value[end:] if kind == b"D" else None
            return Entry(value[start:end].decode("utf-8"), status, body)
    raise ValueError("not a botkit idempotency value")


def _as_bytes(value: bytes | str) -> bytes:
    # The client is created with decode_responses off, so this is always bytes.
    return value if isinstance(value, bytes) else value.encode("utf-8")


def _ttl_ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


class RedisStore(WriteBehindStore):
    """Idempotency entries as Redis keys ``botkit:idem:{key}``, counters as
    hashes ``botkit:count:{name}``.

    Expiry is Redis' own key TTL (``PX``), measured by the Redis server: the
    ``clock`` given to :func:`open_store` is not used. Claims and lookups go through
    a redis-py client per thread that keeps its connection, the rest through a client
    and its pool: no thread ever waits for another's connection. A timed-out call is
    not retried (a connection found closed is, once): a Redis that is down or hung
    surfaces as :class:`StoreUnavailable` after one socket timeout (0.25 s by default)
    at most, and while it stays silent, one claim or lookup at a time waits for it.
    """

    def __init__(
        self, client: redis.Redis, *, url: str, max_answer_bytes: int | None = None
    ) -> None:
        import redis.exceptions

        self.url = url
        self.max_answer_bytes = max_answer_bytes
        self._redis = client
        self._local = _ThreadClient()
        self._clients_lock = threading.Lock()
        self._clients: list[redis.Redis] = []
        self._release_script = client.register_script(_RELEASE_LUA)
        self._release_exact_script = client.register_script(_RELEASE_EXACT_LUA)
        self._answers = AnswerWriter(self._write_answers, "botkit-redis-answers")
        self._clock = time.time  # for the answers' expiry; Redis' own TTL does the rest
        self._redis_errors = (redis.exceptions.RedisError, OSError)
        # An error without a reply: what was sent may have reached Redis all the same.
        self._no_reply_errors = (
            redis.exceptions.ConnectionError,
            redis.exceptions.TimeoutError,
            OSError,
        )
        self._timeouts = redis.exceptions.TimeoutError
        # Set when a call timed out; cleared when a claim or lookup gets a reply again.
        self._silent = False
        self._probe_until = 0.0  # time.monotonic() until which one request asks Redis
        kwargs = client.connection_pool.connection_kwargs
        self._probe_time = float(kwargs.get("socket_timeout") or DEFAULT_REDIS_TIMEOUT) + float(
            kwargs.get("socket_connect_timeout") or DEFAULT_REDIS_TIMEOUT
        )
        # Claims sent but never confirmed (key -> (value, time.monotonic() it expires)).
        self._unconfirmed: dict[str, tuple[bytes, float]] = {}
        self._unconfirmed_lock = threading.Lock()
        self._releaser: threading.Thread | None = None

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except self._timeouts as exc:
            self._silent = True
            logger.warning("redis store %s: %s failed: %s", self.url, what, exc)
            raise StoreUnavailable(f"redis store {self.url}: {what} failed: {exc}") from exc
        except self._redis_errors as exc:
            logger.warning("redis store %s: %s failed: %s", self.url, what, exc)
            raise StoreUnavailable(f"redis store {self.url}: {what} failed: {exc}") from exc
        except ValueError as exc:
            raise StoreUnavailable(
                f"redis store {self.url}: {what}: unreadable value: {exc}"
            ) from exc

    def _client(self) -> redis.Redis:
        """This thread's client, on a connection of its own: claims and lookups are on
        every webhook's path, and a client that keeps its connection skips the pool's
        checkout (its lock and a poll of the socket): 47 -> 28 us CPU per ``SET NX``."""
        local = self._local
        client = local.client
        if client is None or local.pid != _pid:  # a new thread, or the parent's client
            import redis

            client = redis.Redis(
                connection_pool=self._redis.connection_pool, single_connection_client=True
            )
            local.client, local.pid = client, _pid
            with self._clients_lock:
                self._clients.append(client)
        return client

    def _check_silence(self, what: str) -> None:
        """While Redis is silent (a call timed out and none has had a reply since), one
        claim or lookup at a time asks it again; the others fail at once, rather than
        each waiting out its own timeout while requests queue behind them."""
        now = time.monotonic()
        if now < self._probe_until:
            raise StoreUnavailable(
                f"redis store {self.url}: {what} not sent: Redis did not answer in time, "
                "and another request is checking whether it does again"
            )
        self._probe_until = now + self._probe_time

    def claim(self, key: str, fingerprint: str, claim_ttl: float) -> Entry | None:
        answer = self._answers.unwritten_entry(key)
        if answer is not None:  # answered in this process, not written yet
            return answer
        if self._silent:
            self._check_silence("claim")
        name = REDIS_KEY_PREFIX + key
        value = encode_pending(fingerprint)
        with self._errors("claim"):
            client = self._client()  # (a new thread's connects at once)
            # SET NX is the atomic claim. When it fails, the GET can find nothing if the
            # entry expired or was released in between: try again.
            for _ in range(5):
                try:
                    made = client.set(name, value, nx=True, px=_ttl_ms(claim_ttl))
                except self._no_reply_errors:
                    self._unconfirmed_claim(key, value, claim_ttl)
                    raise
                self._silent = False
                if made:
                    return None
                found = client.get(name)
                if found == value:  # ours: a SET sent again after a dropped connection
                    return None
                if found is not None:
                    return decode_entry(_as_bytes(found))
        raise StoreUnavailable(f"redis store {self.url}: claim of {key!r} kept racing with expiry")

    def _unconfirmed_claim(self, key: str, value: bytes, claim_ttl: float) -> None:
        """Remember a claim whose reply did not come back, for a thread to release once
        Redis answers again. A hung Redis still runs what was sent to it when it
        resumes: left alone, that claim would hold off Stream's retries of the webhook
        (push: 503 "still processing") until it expired."""
        with self._unconfirmed_lock:
            self._unconfirmed[key] = (value, time.monotonic() + claim_ttl)
            if self._releaser is None or not self._releaser.is_alive():
                self._releaser = threading.Thread(
                    target=self._release_unconfirmed, name="botkit-redis-release", daemon=True
                )
                self._releaser.start()

    def _release_unconfirmed(self) -> None:
        """The releasing thread: delete the claims of :meth:`_unconfirmed_claim` that
        Redis did make (each only if it still holds that claim's own token, so never a
        later delivery's), in one round trip, as soon as Redis answers."""
        while True:
            now = time.monotonic()
            with self._unconfirmed_lock:
                claims = {k: c for k, c in self._unconfirmed.items() if c[1] > now}
                self._unconfirmed.clear()
                if not claims:
                    self._releaser = None
                    return
            try:
                pipe = self._redis.pipeline(transaction=False)
                for key, (value, _expires) in claims.items():
                    self._release_exact_script(
                        keys=[REDIS_KEY_PREFIX + key], args=[value], client=pipe
                    )
                pipe.execute()
            except self._redis_errors:
                with self._unconfirmed_lock:  # Redis still away: try again
                    for key, claim in claims.items():
                        self._unconfirmed.setdefault(key, claim)
                time.sleep(0.1)

    def complete(self, key: str, fingerprint: str, status: int, body: bytes, ttl: float) -> None:
        self._write_answers([Answer(key, fingerprint, int(status), bytes(body), time.time() + ttl)])

    def _write_answers(self, answers: list[Answer]) -> None:
        """Store ``answers`` in one round trip (the write-behind thread's batches)."""
        now = time.time()
        with self._errors("complete"):
            pipe = self._redis.pipeline(transaction=False)
            for answer in answers:  # an answer replaces whatever the key holds
                body = capped_body(answer.body, self.max_answer_bytes, answer.key)
                pipe.set(
                    REDIS_KEY_PREFIX + answer.key,
                    encode_answer(answer.fingerprint, answer.status, body),
                    px=_ttl_ms(max(answer.expires_at - now, 0.001)),
                )
            pipe.execute()

    def release(self, key: str, fingerprint: str) -> None:
        with self._errors("release"):
            self._release_script(
                keys=[REDIS_KEY_PREFIX + key], args=[fingerprint], client=self._client()
            )

    def get(self, key: str) -> Entry | None:
        answer = self._answers.unwritten_entry(key)
        if answer is not None:
            return answer
        if self._silent:
            self._check_silence("get")
        with self._errors("get"):
            value = self._client().get(REDIS_KEY_PREFIX + key)
            self._silent = False
            return None if value is None else decode_entry(_as_bytes(value))

    def ping(self) -> None:
        with self._errors("ping"):
            self._redis.ping()

    def close(self) -> None:
        self._answers.flush(2.0)
        with self._clients_lock:
            clients, self._clients = self._clients, []
        try:
            for client in clients:
                client.close()  # its connection goes back to the pool, which closes it
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


def open_redis(url: str, max_answer_bytes: int | None = None) -> RedisStore:
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
        # redis-py 6+ retries a timed-out command up to 3 (8.x: 10) times with backoff,
        # which turns a hung Redis into seconds per request: a timeout is final. A
        # connection found closed (a Redis restart dropped it) is tried once more at once.
        pool = redis.ConnectionPool.from_url(
            url,
            socket_timeout=DEFAULT_REDIS_TIMEOUT,
            socket_connect_timeout=DEFAULT_REDIS_TIMEOUT,
            retry=Retry(NoBackoff(), 1, supported_errors=(redis.exceptions.ConnectionError,)),
        )
        # Build (but do not connect) one connection, so that an unknown query
        # parameter is reported now rather than on the first webhook.
        pool.connection_class(**pool.connection_kwargs)
        client = redis.Redis(connection_pool=pool)
    except (TypeError, ValueError) as exc:
        raise config_error(url, f"malformed Redis URL: {exc}") from None
    store = RedisStore(client, url=mask_url(url), max_answer_bytes=max_answer_bytes)
    logger.info("idempotency store: %s", store.url)
    return store
