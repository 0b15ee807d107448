"""The examples bot that ``wsgi.py`` serves: every example command on one bot."""

from __future__ import annotations

from typing import Any

from flask import Flask

from botkit import Bot, Config

from . import gif, moderation, remind, stats, ticket

bot = Bot()
bot.include(gif.group)
bot.include(ticket.group)
bot.include(remind.group)
bot.include(moderation.group)
bot.include(stats.group)


def add_routes(app: Flask) -> Flask:
    """Add the examples' own web routes to an app made from :data:`bot`: the pictures
    ``/gif`` shows when no ``GIPHY_API_KEY`` is set."""
    app.register_blueprint(gif.pictures)
    return app


def create_app(config: Config | None = None, **flask_config: Any) -> Flask:
    """The examples bot's Flask app, with its routes (``wsgi.py``)."""
    return add_routes(bot.create_app(config, **flask_config))
