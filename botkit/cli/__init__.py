"""The ``botkit`` command: register a bot with Stream, and simulate Stream locally.

::

    botkit routes                                  # what the bot handles
    botkit sync --url https://bot.example.com --dry-run
    botkit sync --url https://bot.example.com --channel-type messaging
    botkit run                                     # development server with reload
    botkit send "/gif cats" --click 2 --click 1    # talk to it as Stream would
    botkit sign body.json                          # headers for curl
    botkit new mybot                               # a bot project of your own

The app is found with ``--app module:bot`` (or ``module:app`` for an app made by
botkit), else ``BOTKIT_APP``, else ``wsgi.py`` (or ``bot.py``, as ``botkit new`` makes
it) in the current directory. Importing it
never talks to Stream: only ``botkit sync`` does.
"""

from __future__ import annotations

import click

from ..adapters.logs import configure_logging
from ..core.config import ConfigError
from . import new, send, serve, sync
from .common import CONTEXT, fail

__all__ = ["cli", "main"]


@click.group(context_settings=CONTEXT)
@click.option(
    "--app",
    "app_ref",
    metavar="MODULE:BOT",
    help="The bot (or botkit app) to load; default: BOTKIT_APP, else wsgi.py.",
)
@click.version_option(package_name="botkit", prog_name="botkit")
@click.pass_context
def cli(ctx: click.Context, app_ref: str | None) -> None:
    """Run, register and try out a botkit bot.

    \b
    Examples:
      botkit new mybot && cd mybot
      botkit routes
      botkit --app examples.bot:bot sync --url https://bot.example.com --dry-run
      botkit send "/gif cats" --click 2
    """
    ctx.ensure_object(dict)["app"] = app_ref
    try:
        configure_logging()
    except ConfigError as exc:
        fail(str(exc))


def main() -> None:
    """The ``botkit`` console script."""
    cli(prog_name="botkit")


# Added here, not with @cli.command, so that the command modules need not import this one.
cli.add_command(sync.routes)
cli.add_command(sync.sync)
cli.add_command(send.send)
cli.add_command(send.sign)
cli.add_command(serve.run)
cli.add_command(serve.worker)
cli.add_command(serve.playground)
cli.add_command(new.new)
