"""The huey worker process: ``botkit worker``, or ``huey_consumer botkit.runtime.worker.huey``
with ``BOTKIT_APP=module:bot`` naming the bot."""

from __future__ import annotations

import importlib
import inspect
import logging
import os
from typing import Any

from ..core.bot import Bot
from ..core.config import ConfigError
from .huey_queue import ACCEPTED_FORMS, SHUTDOWN_TIMEOUT, HueyQueue, QueueConfigError
from .runtime import runtime_for
from .stores import mask_url

log = logging.getLogger("botkit.tasks")

__all__ = ["run_consumer"]


def run_consumer(
    bot: Bot,
    url: str | None = None,
    *,
    workers: int = 2,
    shutdown_timeout: float = SHUTDOWN_TIMEOUT,
) -> None:
    """Run the queue's worker for ``bot`` in this process until SIGTERM or SIGINT.

    ``url`` defaults to ``BOTKIT_QUEUE``. ``workers`` threads run handlers side by side.
    On SIGTERM or SIGINT the worker stops taking tasks, lets running ones finish for up
    to ``shutdown_timeout`` seconds, puts back those still running, and returns. Call it
    from the main thread (it installs signal handlers). This is ``botkit worker``.
    """
    url = url or os.environ.get("BOTKIT_QUEUE") or ""
    if not url.startswith("huey+"):
        raise QueueConfigError(
            f"BOTKIT_QUEUE={mask_url(url)!r}: a worker needs a huey queue shared with the "
            f"web processes ({ACCEPTED_FORMS}). With thread:// (the default) events run "
            "inside the web processes and there is nothing for a worker to do."
        )
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    runtime = runtime_for(bot)  # the store and Stream client its tasks use (late results)
    if runtime.config.credentials_error:  # the bot's app was built without them at import
        raise ConfigError(runtime.config.credentials_error)
    queue = HueyQueue(url, bot)
    options: dict[str, Any] = {
        "workers": workers,
        "worker_type": "thread",
        "periodic": False,
        "shutdown_timeout": shutdown_timeout,
    }
    from huey.consumer import Consumer

    if "graceful_signal" in inspect.signature(Consumer).parameters:
        options["graceful_signal"] = "TERM"
    else:
        log.warning(
            "this huey version stops at once on SIGTERM (running handlers are cut off); "
            "upgrade huey, or stop the worker with SIGINT"
        )
    consumer = queue.huey.create_consumer(**options)
    log.info("botkit worker: %d threads on %s", workers, queue.url)
    try:
        consumer.run()
    finally:
        queue.close()
    log.info("botkit worker stopped")


def _bot_from_env() -> Bot:
    target = os.environ.get("BOTKIT_APP", "")
    module_name, _, attr = target.partition(":")
    if not module_name:
        raise RuntimeError(
            "set BOTKIT_APP=module:bot to name the bot the worker runs (e.g. BOTKIT_APP=wsgi:bot)"
        )
    module = importlib.import_module(module_name)
    obj = getattr(module, attr or "bot", None)
    if not isinstance(obj, Bot):
        raise RuntimeError(f"BOTKIT_APP={target!r} does not name a botkit.Bot")
    return obj


_env_huey: Any = None


def __getattr__(name: str) -> Any:
    # ``huey_consumer botkit.runtime.worker.huey``: built on first access, not at import time.
    global _env_huey
    if name == "huey":
        if _env_huey is None:
            bot = _bot_from_env()
            runtime_for(bot)
            _env_huey = HueyQueue(os.environ.get("BOTKIT_QUEUE", ""), bot).huey
        return _env_huey
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
