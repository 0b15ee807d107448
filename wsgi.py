"""The WSGI entry point: ``gunicorn wsgi:app`` serves the examples bot."""

from examples.bot import bot

app = bot.create_app()

__all__ = ["app", "bot"]
