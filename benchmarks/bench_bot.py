"""The bot the benchmark serves: the examples bot (``examples/bot.py``: /gif, the
moderation before-send hooks, ...) plus a push handler that sleeps for a second, so the
push route is measured while every handler is slow.

    gunicorn -c gunicorn.conf.py --pythonpath benchmarks bench_bot:app
"""

from __future__ import annotations

import time

from botkit import Event
from examples.bot import bot


@bot.on("message.new")
def slow_handler(event: Event) -> None:
    time.sleep(1.0)


app = bot.create_app()
