"""``memory://``: a bounded in-process LRU, for a single worker process."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from urllib.parse import urlsplit

from .base import (
    Entry,
    Store,
    capped_body,
    config_error,
    logger,
    mask_url,
    positive_number,
    single_query_params,
)

DEFAULT_MAX_ENTRIES = 10_000
#: The memory store keeps at most about this many bytes of entries (8 MiB).
DEFAULT_MAX_BYTES = 8 * 1024 * 1024
#: What an entry costs besides its body: key, fingerprint, entry, LRU slot.
ENTRY_OVERHEAD = 400

#: A memory store entry: fingerprint, status, body, expiry. A plain tuple (not a
#: NamedTuple), so that the garbage collector stops tracking it: 10,000 tracked entries
#: would be walked on every full collection of a busy worker.
_Item = tuple[str, int | None, bytes | None, float]


def _size(item: _Item) -> int:
    _, _, body, _ = item
    return ENTRY_OVERHEAD + (len(body) if body is not None else 0)


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
        max_answer_bytes: int | None = None,
    ) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise ValueError("max_entries and max_bytes must be positive")
        self.url = url
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.max_answer_bytes = max_answer_bytes
        self._bytes = 0
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, _Item] = OrderedDict()
        self._counters: dict[str, dict[str, int]] = {}

    def _live(self, key: str, now: float) -> Entry | None:
        item = self._entries.get(key)
        if item is None:
            return None
        fingerprint, status, body, expires_at = item
        if expires_at <= now:
            del self._entries[key]
            self._bytes -= _size(item)
            return None
        self._entries.move_to_end(key)
        return Entry(fingerprint, status, body)

    def _store(self, key: str, item: _Item) -> None:
        """Keep ``item`` for ``key``, evicting the least recently used past the bounds."""
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
            self._store(key, (fingerprint, None, None, now + claim_ttl))
            return None

    def complete(self, key: str, fingerprint: str, status: int, body: bytes, ttl: float) -> None:
        kept = capped_body(bytes(body), self.max_answer_bytes, key)
        with self._lock:
            self._store(key, (fingerprint, int(status), kept, self._clock() + ttl))

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


def open_memory(
    url: str, clock: Callable[[], float], max_answer_bytes: int | None = None
) -> MemoryStore:
    """The store of a ``memory://`` URL."""
    parts = urlsplit(url)
    if parts.netloc or parts.path not in ("", "/"):
        raise config_error(url, "memory:// takes no host or path; use memory://?max_entries=N")
    params = single_query_params(url, parts.query)
    max_entries, max_bytes = DEFAULT_MAX_ENTRIES, DEFAULT_MAX_BYTES
    for name, raw in params.items():
        if name == "max_entries":
            max_entries = positive_number(url, name, raw, int)
        elif name == "max_bytes":
            max_bytes = positive_number(url, name, raw, int)
        else:
            raise config_error(
                url,
                f"unknown query parameter {name!r} (memory:// accepts max_entries and max_bytes)",
            )
    logger.info("idempotency store: %s (single process only)", url)
    return MemoryStore(
        max_entries=max_entries,
        max_bytes=max_bytes,
        clock=clock,
        url=mask_url(url),
        max_answer_bytes=max_answer_bytes,
    )
