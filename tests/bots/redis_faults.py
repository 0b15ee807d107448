"""A bot for tests of a Redis store that hangs or restarts, under real gunicorn.

Every handler counts what it did with :func:`bots.reliability.record` (a SQLite file in
``RELIABILITY_DIR``), so a test sees how often it really ran, in any worker:

- ``/echo ARGS``: records ``("echo", webhook id)``, answers ``echo ARGS`` (ephemeral).
- before-send: records ``("hook", webhook id)`` and appends `` (checked)`` to the text,
  so the answer shows that the hook ran.
- push ``message.new``: records ``("event", webhook id)``.

Serve it with ``gunicorn 'bots.redis_faults:create_app()'``.
"""

from __future__ import annotations

from typing import Any

from botkit import BeforeSendContext, Bot, CommandContext, Event, Message

from .reliability import record

bot = Bot()


@bot.command("echo", description="Answer with the arguments")
def echo(ctx: CommandContext) -> Message:
    record("echo", ctx.webhook_id)
    return Message.ephemeral(f"echo {ctx.args}")


@bot.before_send
def checked(ctx: BeforeSendContext) -> str:
    record("hook", ctx.webhook_id)
    return f"{ctx.text} (checked)"


@bot.on("message.new")
def on_message(event: Event) -> None:
    record("event", event.webhook_id)


def create_app() -> Any:
    """The Flask app gunicorn serves: ``bots.redis_faults:create_app()``."""
    return bot.create_app()
