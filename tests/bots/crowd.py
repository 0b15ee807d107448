"""A bot for the crowd test: many slow commands and a few fast ones at once.

- ``/slow ARGS``: sleeps ``CROWD_SLOW_SECONDS`` (3 s), then returns ``slow ARGS`` to
  publish: botkit answers the placeholder ``still thinking`` and posts the result later.
- ``/fast ARGS``: answers ``fast ARGS`` (ephemeral) at once.

Serve it with the factory, ``bots.crowd:create_app()`` (importing this module makes no
app, so a test can import its names).
"""

from __future__ import annotations

import os
import time

from flask import Flask

from botkit import Bot, CommandContext, Message

bot = Bot()
PLACEHOLDER = "still thinking"


@bot.command("slow", description="Answers after a few seconds", placeholder=PLACEHOLDER)
def slow(ctx: CommandContext) -> Message:
    time.sleep(float(os.environ.get("CROWD_SLOW_SECONDS", "3")))
    return Message.publish(f"slow {ctx.args}")


@bot.command("fast", description="Answers at once")
def fast(ctx: CommandContext) -> Message:
    return Message.ephemeral(f"fast {ctx.args}")


def create_app() -> Flask:
    return bot.create_app()
