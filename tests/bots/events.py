"""A bot whose push handlers record what they did in a SQLite file, so that a test in
another process can check it. ``EVENTS_DB`` names the file (read on every call).

- ``message.new``: ``on_message`` records once.
- ``reaction.new``: ``steady`` records; ``flaky`` fails on its first two tries of an
  event, then records (so a retry must not run ``steady`` again).
- ``channel.truncated``: ``doomed`` always raises.
- ``message.updated``: ``slow`` records ``started``, sleeps ``SLOW_SECONDS`` (2), then
  records ``finished``.

Run a huey worker for it with ``python -m bots.events_worker``; serve it with
``gunicorn 'bots.events:create_app()'``.
"""

from __future__ import annotations

import os
import sqlite3
import time
from typing import Any

from botkit import Bot, Event

bot = Bot()


def _db() -> sqlite3.Connection:
    conn = sqlite3.connect(os.environ["EVENTS_DB"], timeout=10, isolation_level=None)
    conn.execute(
        "CREATE TABLE IF NOT EXISTS records (handler TEXT, type TEXT, webhook_id TEXT,"
        " attempt INTEGER, phase TEXT, pid INTEGER)"
    )
    return conn


def record(handler: str, event: Event, phase: str = "done") -> None:
    with _db() as conn:
        conn.execute(
            "INSERT INTO records VALUES (?, ?, ?, ?, ?, ?)",
            (handler, event.type, event.webhook_id, event.attempt, phase, os.getpid()),
        )
    conn.close()


def records(path: str, **where: Any) -> list[dict[str, Any]]:
    """Rows of ``path`` matching ``where`` (column=value), oldest first."""
    if not os.path.exists(path):
        return []
    conn = sqlite3.connect(path, timeout=10)
    conn.row_factory = sqlite3.Row
    try:
        query = "SELECT * FROM records"
        if where:
            query += " WHERE " + " AND ".join(f"{k} = ?" for k in where)
        try:
            rows = conn.execute(query + " ORDER BY rowid", tuple(where.values())).fetchall()
        except sqlite3.OperationalError:  # table not created yet
            return []
        return [dict(r) for r in rows]
    finally:
        conn.close()


@bot.on("message.new")
def on_message(event: Event) -> None:
    record("on_message", event)


@bot.on("reaction.new")
def steady(event: Event) -> None:
    record("steady", event)


@bot.on("reaction.new")
def flaky(event: Event) -> None:
    record("flaky", event, "try")
    with _db() as conn:
        (tries,) = conn.execute(
            "SELECT count(*) FROM records WHERE handler = 'flaky' AND phase = 'try'"
            " AND webhook_id = ?",
            (event.webhook_id,),
        ).fetchone()
    conn.close()
    if tries < 3:
        raise RuntimeError(f"flaky handler fails on try {tries}")
    record("flaky", event)


@bot.on("channel.truncated")
def doomed(event: Event) -> None:
    record("doomed", event, "try")
    raise RuntimeError("doomed handler always fails")


@bot.on("message.updated")
def slow(event: Event) -> None:
    record("slow", event, "started")
    time.sleep(float(os.environ.get("SLOW_SECONDS", "2")))
    record("slow", event, "finished")


def create_app() -> Any:
    """The Flask app, configured from the environment (for gunicorn)."""
    return bot.create_app()
