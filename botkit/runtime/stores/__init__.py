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
    worker waits for another one's write lock. One row per webhook id: a claim is a
    pending row with the body's fingerprint, the answer replaces it. A file made
    read-only, a full disk, a file deleted or replaced stop no worker: the store
    reopens its connections after an error and notices a new file by its inode, and
    ``/healthz`` fails (a small write) until writes work again. The data is kept under
    ``BOTKIT_STORE_MAX_BYTES`` (the oldest answers evicted first), and an answer over
    ``BOTKIT_STORE_MAX_ANSWER_BYTES`` is kept without its body.

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

from .base import Entry, Store, StoreConfigError, StoreUnavailable, mask_url
from .memory import MemoryStore
from .urls import open_store

__all__ = [
    "Entry",
    "MemoryStore",
    "Store",
    "StoreConfigError",
    "StoreUnavailable",
    "mask_url",
    "open_store",
]
