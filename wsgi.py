"""The WSGI entry point: ``gunicorn wsgi:app`` serves the examples bot."""

from examples.bot import bot, create_app

app = create_app()

__all__ = ["app", "bot"]
