"""A bot for tests of a Redis store that hangs or restarts, under real gunicorn.

Every handler counts what it did with :func:`bots.reliability.record` (a SQLite file in
``RELIABILITY_DIR``), so a test sees how often it really ran, in any worker:

- ``/echo ARGS``: answers ``echo ARGS`` (ephemeral); records ``("echo", webhook id)``
  when ARGS hold ``[count]``.
- before-send: appends `` (checked)`` to the text, so the answer shows that the hook ran;
  records ``("hook", webhook id)`` when the text holds ``[count]``.

(Only marked calls write the effects file: under load its lock would decide the latency.)
- push ``message.new``: records ``("event", webhook id)``.

Serve it with ``gunicorn 'bots.redis_faults:create_app()'``.
"""

from __future__ import annotations

from typing import Any

from botkit import BeforeSendContext, Bot, CommandContext, Event, Message

from .reliability import record

bot = Bot()
COUNT = "[count]"


@bot.command("echo", description="Answer with the arguments")
def echo(ctx: CommandContext) -> Message:
    if COUNT in ctx.args:
        record("echo", ctx.webhook_id)
    return Message.ephemeral(f"echo {ctx.args}")


@bot.before_send
def checked(ctx: BeforeSendContext) -> str:
    if COUNT in ctx.text:
        record("hook", ctx.webhook_id)
    return f"{ctx.text} (checked)"


@bot.on("message.new")
def on_message(event: Event) -> None:
    record("event", event.webhook_id)


def create_app() -> Any:
    """The Flask app gunicorn serves: ``bots.redis_faults:create_app()``."""
    return bot.create_app()
