""":func:`open_store`: the store a ``BOTKIT_STORE`` URL names."""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import urlsplit

from .base import Store, config_error
from .memory import open_memory
from .redis import open_redis
from .sqlite import open_sqlite

ACCEPTED_FORMS = (
    "memory://[?max_entries=N&max_bytes=N], "
    "sqlite:///relative/path.db, sqlite:////absolute/path.db[?busy_timeout=MS], "
    "redis://[:password@]host:port/db, rediss://host:port/db, "
    "unix:///path/to/redis.sock[?db=N]"
)


def open_store(
    url: str | None,
    *,
    instance_path: str = "instance",
    clock: Callable[[], float] = time.time,
    max_answer_bytes: int | None = None,
    max_bytes: int | None = None,
) -> Store:
    """Open the store named by ``url`` (the ``BOTKIT_STORE`` setting).

    ``None`` (or an empty string) means ``sqlite:///{instance_path}/botkit.sqlite3``.
    ``clock`` is used for expiry by the memory and SQLite stores (tests inject
    a fake one); Redis expires keys with its own clock.

    Raises :class:`StoreConfigError` for a URL that cannot be used: an unknown
    scheme, a SQLite path that cannot be created, a malformed Redis URL, or
    Redis URL without the ``redis`` package installed. A Redis server that is
    down is *not* an error here (the bot must be able to boot while Redis
    restarts); it shows up as :class:`StoreUnavailable` on use. Nor is a SQLite file
    that cannot be written now: the store tries again on use.

    ``max_answer_bytes`` (``BOTKIT_STORE_MAX_ANSWER_BYTES``): a longer answer is kept
    without its body (memory and SQLite stores). ``max_bytes``
    (``BOTKIT_STORE_MAX_BYTES``): the SQLite store's data is kept under it, the oldest
    answers evicted first; the memory store has its own ``max_bytes`` query parameter.
    """
    if not url:
        url = f"sqlite:///{instance_path}/botkit.sqlite3"
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError as exc:
        raise config_error(url, f"not a URL ({exc}); accepted forms: {ACCEPTED_FORMS}") from None
    if scheme == "memory":
        return open_memory(url, clock, max_answer_bytes)
    if scheme == "sqlite":
        return open_sqlite(url, clock, max_answer_bytes=max_answer_bytes, max_bytes=max_bytes)
    if scheme in ("redis", "rediss", "unix"):
        return open_redis(url, max_answer_bytes)
    raise config_error(url, f"unsupported scheme {scheme!r}; accepted forms: {ACCEPTED_FORMS}")
