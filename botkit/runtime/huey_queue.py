"""Push events and late command results on huey, a durable task queue.

Set ``BOTKIT_QUEUE`` to one of:

``huey+redis://host:6379/0`` (also ``huey+rediss://`` and ``huey+unix:///path.sock``)
    huey on Redis: the web dynos and any number of worker dynos share it.
``huey+sqlite:///instance/queue.sqlite3`` (relative) or ``huey+sqlite:////abs/queue.db``
    huey on a SQLite file: web and worker processes on one machine share it.

and run a worker next to the web processes (``pip install botkit[huey]``)::

    # Procfile
    web: gunicorn wsgi:app
    worker: botkit worker

``botkit worker`` runs the bot of ``wsgi.py`` (or ``botkit --app module:bot worker``, or
``BOTKIT_APP=module:bot``) with :func:`run_consumer`.

The web process answers Stream's push webhook with 200 only once the event is stored
in the queue, and with 503 (so that Stream retries) when it cannot be stored, e.g.
while Redis is down. The worker runs the bot's ``@bot.on(...)`` handlers. An event
whose handler raises is tried up to 3 times in all, 1 s and then 2 s later; handlers of
the same event that already succeeded are not run again. After the last attempt the
failure is logged (logger ``botkit.tasks``) with its traceback and webhook id.

huey's own ``huey_consumer`` works too: it imports this module's ``huey`` attribute,
built from ``BOTKIT_QUEUE`` for the bot that ``BOTKIT_APP`` (``module:attribute``)
names::

    BOTKIT_APP=wsgi:bot huey_consumer botkit.huey_queue.huey -w 2 -g TERM -t 20

Handlers run at least once, so keep them idempotent. SIGTERM (what Heroku and systemd
send) lets running handlers finish for up to ``shutdown_timeout`` seconds; tasks still
running after that, or cut off by a second SIGTERM, are put back on the queue and run
again by the next worker. One case loses a task: huey removes a task from the queue when
a worker takes it, so a worker killed with SIGKILL (or a crashed machine) in the middle
of a handler loses that event.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .stores import mask_url
from .tasks import MAX_ATTEMPTS, TASKS, QueueUnavailable, TaskQueue

if TYPE_CHECKING:
    from ..core.bot import Bot

log = logging.getLogger("botkit.tasks")

__all__ = ["HueyQueue", "QueueConfigError", "QueueUnavailable"]

#: huey's queue name (a Redis key suffix, a column in the SQLite file).
QUEUE_NAME = "botkit"
#: Seconds before the first retry of a failed task; each further retry waits twice as long.
RETRY_DELAY = 1.0
RETRY_BACKOFF = 2.0
#: Seconds a stopping worker waits for running handlers (Heroku kills after 30 s).
SHUTDOWN_TIMEOUT = 20.0
#: Redis timeouts (seconds). Enqueueing runs inside Stream's 6 s push budget.
REDIS_CONNECT_TIMEOUT = 1.0
REDIS_SOCKET_TIMEOUT = 5.0

ACCEPTED_FORMS = (
    "huey+redis://host:6379/0, huey+rediss://host:6380/0, huey+unix:///path/redis.sock, "
    "huey+sqlite:///relative/queue.db or huey+sqlite:////absolute/queue.db"
)


class QueueConfigError(ValueError):
    """A ``BOTKIT_QUEUE`` URL that cannot be used; the message names it (password masked)."""


def _config_error(url: str, problem: str) -> QueueConfigError:
    return QueueConfigError(f"BOTKIT_QUEUE {mask_url(url)!r}: {problem}")


def _import_huey(url: str) -> Any:
    try:
        import huey
    except ImportError:
        raise _config_error(
            url, "huey is not installed; install it with: pip install 'botkit[huey]'"
        ) from None
    return huey


def _storage_for(url: str) -> tuple[str, dict[str, Any]]:
    """``("sqlite" | "redis", huey keyword arguments)`` for a ``huey+...`` URL."""
    if not url.startswith("huey+"):
        raise _config_error(url, f"not a huey URL; accepted forms: {ACCEPTED_FORMS}")
    inner = url[len("huey+") :]
    try:
        parts = urlsplit(inner)
    except ValueError as exc:
        raise _config_error(url, f"not a URL ({exc}); accepted forms: {ACCEPTED_FORMS}") from None
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        if parts.netloc:
            raise _config_error(
                url,
                "a sqlite URL has no host: use huey+sqlite:///relative/queue.db (three "
                "slashes) or huey+sqlite:////absolute/queue.db (four)",
            )
        if parts.query:
            raise _config_error(url, "a huey+sqlite URL takes no query parameters")
        path = parts.path[1:]
        if not path or path == ":memory:" or path.startswith("file:"):
            raise _config_error(
                url,
                "needs a file that web and worker processes share: "
                "huey+sqlite:///relative/queue.db or huey+sqlite:////absolute/queue.db",
            )
        return "sqlite", {"filename": path}
    if scheme in ("redis", "rediss", "unix"):
        if scheme != "unix" and not parts.hostname:
            raise _config_error(url, "missing Redis host, e.g. huey+redis://localhost:6379/0")
        try:
            parts.port  # noqa: B018  (raises ValueError for a bad port)
        except ValueError as exc:
            raise _config_error(url, str(exc)) from None
        return "redis", {"url": inner}
    raise _config_error(
        url, f"unsupported storage {scheme or '(none)'!r}; accepted forms: {ACCEPTED_FORMS}"
    )


class HueyQueue(TaskQueue):
    """A durable queue on huey: ``submit`` stores the task, a worker process runs it.

    ``url`` is the ``BOTKIT_QUEUE`` value (``huey+redis://...`` or ``huey+sqlite:///...``).
    Raises :class:`QueueConfigError` (a ``ValueError``) naming the URL when it cannot be
    used or huey is not installed. A Redis server that is down is not an error here:
    ``submit`` raises :class:`~botkit.tasks.QueueUnavailable` until it is back.

    ``attempts``, ``retry_delay`` and ``retry_backoff`` apply to the tasks this queue
    submits: a failing task runs ``attempts`` times in all, waiting ``retry_delay``
    seconds before the first retry and ``retry_backoff`` times longer before each next.
    """

    durable = True

    def __init__(
        self,
        url: str,
        bot: Bot,
        *,
        attempts: int = MAX_ATTEMPTS,
        retry_delay: float = RETRY_DELAY,
        retry_backoff: float = RETRY_BACKOFF,
    ) -> None:
        if attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {attempts}")
        self.kind, self._options = _storage_for(url)
        _import_huey(url)
        if self.kind == "redis":
            try:
                import redis  # noqa: F401
            except ImportError:
                raise _config_error(
                    url, "the redis package is not installed: pip install 'botkit[huey,redis]'"
                ) from None
        self.url = mask_url(url)
        self.bot = bot
        self.attempts = attempts
        self.retry_delay = retry_delay
        self.retry_backoff = retry_backoff
        self._raw_url = url
        self._huey: Any = None
        self._task: Any = None
        self._pid = 0
        self._lock = threading.Lock()
        if self.kind == "sqlite":
            parent = os.path.dirname(self._options["filename"])
            try:
                if parent:
                    os.makedirs(parent, exist_ok=True)
                self.huey  # noqa: B018  (creates the file and its tables now)
            except Exception as exc:
                raise _config_error(url, f"cannot open or create the queue file: {exc}") from exc

    # -- the huey instance, made per process (safe with gunicorn's preload_app) ----------

    @property
    def huey(self) -> Any:
        """The ``huey.Huey`` instance of this process, with botkit's task registered."""
        if self._huey is None or self._pid != os.getpid():
            with self._lock:
                if self._huey is None or self._pid != os.getpid():
                    self._huey, self._task = self._make_huey()
                    self._pid = os.getpid()
        return self._huey

    def _make_huey(self) -> tuple[Any, Any]:
        huey_mod = _import_huey(self._raw_url)
        if self.kind == "sqlite":
            instance = huey_mod.SqliteHuey(QUEUE_NAME, results=False, **self._options)
        else:
            from redis import ConnectionPool

            pool = ConnectionPool.from_url(
                self._options["url"],
                socket_connect_timeout=REDIS_CONNECT_TIMEOUT,
                socket_timeout=REDIS_SOCKET_TIMEOUT,
            )
            instance = huey_mod.RedisHuey(QUEUE_NAME, results=False, connection_pool=pool)
        bot = self.bot

        def run(name: str, payload: dict[str, Any], policy: dict[str, Any] | None = None) -> None:
            _run_task(bot, name, payload, **(policy or {}))

        task = instance.task(name="run")(run)

        from huey.signals import SIGNAL_INTERRUPTED

        def requeue(signal: str, interrupted: Any, *args: Any, **kwargs: Any) -> None:
            # A worker stopped (shutdown timeout, second SIGTERM) while the task ran:
            # put it back so that the next worker runs the handlers that did not finish.
            try:
                instance.enqueue(interrupted)
                log.warning(
                    "task %s interrupted by shutdown; queued again (webhook id %s)",
                    _task_name(interrupted),
                    _webhook_id(interrupted),
                )
            except Exception:
                log.exception(
                    "task %s interrupted by shutdown and could not be queued again "
                    "(webhook id %s): it is lost",
                    _task_name(interrupted),
                    _webhook_id(interrupted),
                )

        instance.signal(SIGNAL_INTERRUPTED)(requeue)
        return instance, task

    # -- TaskQueue -----------------------------------------------------------------------

    def submit(self, name: str, payload: dict[str, Any]) -> None:
        """Store ``TASKS[name](bot, payload)`` in the queue; durable when this returns.

        Raises :class:`~botkit.tasks.QueueUnavailable` when the queue cannot store it.
        """
        if name not in TASKS:
            raise KeyError(f"no task named {name!r}; known tasks: {sorted(TASKS)}")
        try:
            self.huey  # noqa: B018
            # (One positional dict: huey's task call takes retry_delay=... for itself.)
            policy = {
                "attempts": self.attempts,
                "retry_delay": self.retry_delay,
                "retry_backoff": self.retry_backoff,
            }
            self._task(name, payload, policy)
        except Exception as exc:
            raise QueueUnavailable(f"queue {self.url} could not store the task: {exc}") from exc

    def state(self) -> dict[str, Any]:
        """For ``/healthz``: URL (password masked), tasks waiting and waiting to retry."""
        state: dict[str, Any] = {"url": self.url, "durable": True}
        try:
            state["pending"] = int(self.huey.pending_count())
            state["scheduled"] = int(self.huey.scheduled_count())
            state["ok"] = True
        except Exception as exc:
            state["ok"] = False
            state["error"] = f"{type(exc).__name__}: {exc}"
        return state

    def close(self) -> None:
        instance, self._huey = self._huey, None
        if instance is not None and self._pid == os.getpid():
            try:
                instance.storage.close()
            except Exception:
                pass


def _task_name(task: Any) -> str:
    args: Any = getattr(task, "args", ())
    return str(args[0]) if args else "?"


def _webhook_id(task: Any) -> Any:
    args: Any = getattr(task, "args", ())
    payload = args[1] if len(args) > 1 else None
    return payload.get("webhook_id") if isinstance(payload, dict) else None


def _run_task(
    bot: Bot,
    name: str,
    payload: dict[str, Any],
    attempts: int = MAX_ATTEMPTS,
    retry_delay: float = RETRY_DELAY,
    retry_backoff: float = RETRY_BACKOFF,
) -> None:
    """Run one queued task in the worker; on failure ask huey to run it again later.

    huey stores the task again with ``payload`` as it is now, so the retry knows
    (``payload["done"]``) which handlers already succeeded and (``payload["tries"]``)
    how many tries were made.
    """
    from huey.exceptions import RetryTask

    func = TASKS.get(name)
    if func is None:
        log.error(
            "unknown task %r dropped (webhook id %s): are the web and worker processes "
            "running the same botkit version?",
            name,
            payload.get("webhook_id"),
        )
        return
    tries = int(payload.get("tries") or 0) + 1
    payload["tries"] = tries
    try:
        func(bot, payload)
    except Exception as exc:
        if tries < attempts:
            delay = retry_delay * retry_backoff ** (tries - 1)
            log.warning(
                "task %s failed on try %d of %d (webhook id %s): %s; retrying in %.1fs",
                name,
                tries,
                attempts,
                payload.get("webhook_id"),
                type(exc).__name__,
                delay,
            )
            raise RetryTask(f"try {tries} of {attempts} failed", delay=delay) from exc
        log.error(
            "task %s gave up after %d tries (webhook id %s)",
            name,
            tries,
            payload.get("webhook_id"),
            exc_info=True,
        )
