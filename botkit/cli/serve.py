"""``botkit run``, ``botkit worker`` and ``botkit playground``: serve the bot locally, and
run the task queue's consumer."""

from __future__ import annotations

import importlib
import os

import click

from ..core.config import ConfigError
from .common import CONTEXT, dev_credentials_default, fail, loaded


@click.command(context_settings=CONTEXT)
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, help="The port to listen on.")
@click.option(
    "--reload/--no-reload", default=True, show_default=True, help="Restart when the code changes."
)
@click.pass_context
def run(ctx: click.Context, host: str, port: int, reload: bool) -> None:
    """Serve the bot on Flask's development server (use gunicorn in production).

    Uses the development key when no Stream credentials are set.

    \b
    Examples:
      botkit run
      botkit --app examples.bot:bot run --port 5000 --no-reload
    """
    from werkzeug.serving import run_simple

    dev_credentials_default()
    located = loaded(ctx)
    app = located.app
    if app is None:
        try:
            app = located.bot.create_app()
        except ConfigError as exc:
            fail(str(exc))
    run_simple(host, port, app, use_reloader=reload, use_debugger=False, threaded=True)


@click.command(context_settings=CONTEXT)
@click.option(
    "--workers",
    "-w",
    default=2,
    show_default=True,
    type=click.IntRange(min=1),
    help="Handler threads.",
)
@click.pass_context
def worker(ctx: click.Context, workers: int) -> None:
    """Run the task queue's consumer: push event handlers and late command results.

    Needs BOTKIT_QUEUE set to a huey URL shared with the web processes.

    \b
    Example:
      BOTKIT_QUEUE=huey+redis://localhost:6379/1 botkit worker --workers 4
    """
    url = os.environ.get("BOTKIT_QUEUE", "")
    if not url.startswith("huey+"):
        fail(
            f"botkit worker needs BOTKIT_QUEUE set to a huey queue, e.g. "
            f"huey+redis://localhost:6379/1 or huey+sqlite:///queue.db (it is {url or 'unset'!r}; "
            "with thread:// events run inside the web processes and no worker is needed)"
        )
    bot = loaded(ctx).bot
    try:
        huey_queue = importlib.import_module("botkit.runtime.worker")
    except ImportError as exc:
        fail(f"botkit worker needs huey: pip install 'botkit[huey]' ({exc})")
    try:
        huey_queue.run_consumer(bot, url, workers=workers)
    except ValueError as exc:  # a queue URL it cannot use
        fail(str(exc))


@click.command(context_settings=CONTEXT)
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, help="The port to listen on.")
@click.pass_context
def playground(ctx: click.Context, host: str, port: int) -> None:
    """Open a chat-like page to try the bot in a browser, without Stream.

    \b
    Example:
      botkit playground --port 8000    # then open http://127.0.0.1:8000/playground
    """
    dev_credentials_default()
    bot = loaded(ctx).bot
    module = importlib.import_module("botkit.adapters.playground")
    try:
        module.run_playground(bot, host, port)
    except ConfigError as exc:
        fail(str(exc))
