"""A bot for exactly-once and deadline tests under real gunicorn.

Its handlers record every side effect in a SQLite file (``effects.db`` in the directory
that ``RELIABILITY_DIR`` names), so a test can count how often a handler really ran,
across worker processes. Serve it with the factory (importing this module makes no app,
so tests can import :func:`count` freely)::

    GunicornServer("bots.reliability:create_app()", env={"RELIABILITY_DIR": tmp, ...})

Commands (all answers depend only on the request, so copies answer byte for byte alike):

- ``/count ARGS``: records ``("count", webhook id)``, sleeps 100 ms, answers
  ``counted ARGS`` (ephemeral). Budget 10 s, so overlapping copies wait for its answer.
- ``/slow ARGS``: sleeps ``RELIABILITY_SLOW_SECONDS`` (3 s) under the normal budget, then
  returns ``slow result for ARGS`` to publish: botkit answers the placeholder and posts
  the result to the channel later.
- ``/where``: answers ``request`` or ``pool``: the thread the handler ran in. ``/slow``
  records the same as ``slow-in:request`` or ``slow-in:pool``.
- ``/block``: budget 30 s. On attempt 1 it writes its worker's pid to ``block.pid`` and
  sleeps 60 s (long enough to be killed); on a later attempt it answers at once.

Before-send hooks, in order: ``closed_guard`` (``fail_closed=True``) sleeps when the text
contains ``slow-closed``; ``open_guard`` sleeps when it contains ``slow-open``; both sleep
``RELIABILITY_HOOK_SECONDS`` (2 s). Push: ``message.new`` records ``("event", id)``.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from typing import Any

from botkit import BeforeSendContext, Bot, CommandContext, Event, Message

bot = Bot()

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS effects ("
    " kind TEXT NOT NULL, key TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (kind, key))"
)


def _directory(directory: str | None = None) -> str:
    directory = directory or os.environ.get("RELIABILITY_DIR")
    if not directory:
        raise RuntimeError("set RELIABILITY_DIR to a directory for the bot's effects")
    return directory


def _connect(directory: str | None = None) -> sqlite3.Connection:
    conn = sqlite3.connect(os.path.join(_directory(directory), "effects.db"), timeout=15)
    conn.execute(_SCHEMA)
    return conn


def init_effects(directory: str) -> None:
    """Create the effects database (call it before the server starts)."""
    conn = _connect(directory)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()


def record(kind: str, key: str | None) -> None:
    """Count one side effect ``kind`` for ``key`` (a webhook id)."""
    conn = _connect()
    try:
        with conn:
            conn.execute(
                "INSERT INTO effects (kind, key, n) VALUES (?, ?, 1)"
                " ON CONFLICT (kind, key) DO UPDATE SET n = n + 1",
                (kind, key or "-"),
            )
    finally:
        conn.close()


def count(directory: str, kind: str, key: str) -> int:
    """How many times ``kind`` happened for ``key``."""
    conn = _connect(directory)
    try:
        row = conn.execute(
            "SELECT n FROM effects WHERE kind = ? AND key = ?", (kind, key)
        ).fetchone()
    finally:
        conn.close()
    return int(row[0]) if row else 0


def _seconds(name: str, default: float) -> float:
    return float(os.environ.get(name) or default)


@bot.command("count", description="Count a side effect", budget_ms=10_000)
def count_command(ctx: CommandContext) -> Message:
    record("count", ctx.webhook_id)
    time.sleep(0.1)
    return Message.ephemeral(f"counted {ctx.args}")


@bot.command("slow", description="Take longer than the budget")
def slow(ctx: CommandContext) -> Message:
    record("slow-start", ctx.webhook_id)
    record(f"slow-in:{_where()}", ctx.webhook_id)
    time.sleep(_seconds("RELIABILITY_SLOW_SECONDS", 3))
    record("slow-done", ctx.webhook_id)
    return Message.publish(f"slow result for {ctx.args}")


def _where() -> str:
    """``pool`` in a thread of botkit's handler pool, else ``request``."""
    return "pool" if threading.current_thread().name.startswith("botkit-handler") else "request"


@bot.command("where", description="Say which thread the handler ran in")
def where(ctx: CommandContext) -> Message:
    return Message.ephemeral(_where())


@bot.command("block", description="Block until killed (first attempt)", budget_ms=30_000)
def block(ctx: CommandContext) -> Message:
    record("block", ctx.webhook_id)
    if ctx.attempt == 1:
        path = os.path.join(_directory(), "block.pid")
        with open(path + ".tmp", "w") as fh:
            fh.write(str(os.getpid()))
        os.replace(path + ".tmp", path)
        time.sleep(60)
    return Message.ephemeral(f"unblocked on attempt {ctx.attempt}")


@bot.before_send(fail_closed=True)
def closed_guard(ctx: BeforeSendContext) -> None:
    if "slow-closed" in ctx.text:
        time.sleep(_seconds("RELIABILITY_HOOK_SECONDS", 2))


@bot.before_send
def open_guard(ctx: BeforeSendContext) -> None:
    if "slow-open" in ctx.text:
        time.sleep(_seconds("RELIABILITY_HOOK_SECONDS", 2))


@bot.on("message.new")
def on_message(event: Event) -> None:
    record("event", event.webhook_id)


def create_app() -> Any:
    """The Flask app gunicorn serves: ``bots.reliability:create_app()``.

    Every answer carries ``X-Worker-Pid``, the process that served it.
    """
    app = bot.create_app()
    inner = app.wsgi_app  # webhook routes are answered below Flask: wrap the WSGI app

    def with_worker_pid(environ: dict[str, Any], start_response: Any) -> Any:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            return start_response(status, [*headers, ("X-Worker-Pid", str(os.getpid()))], exc_info)

        return inner(environ, start)

    app.wsgi_app = with_worker_pid  # type: ignore[method-assign]
    return app
