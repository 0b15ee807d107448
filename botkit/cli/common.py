"""What every ``botkit`` command shares: loading the app named by ``--app``, errors for
the user, the click settings, and plain-text tables."""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

import click

from ..core.config import ConfigError, url_prefix

if TYPE_CHECKING:
    from flask import Flask

    from ..core.bot import Bot

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class CLIError(click.ClickException):
    """A problem the user can fix: printed as one line, exit status 1."""


def fail(message: str) -> NoReturn:
    raise CLIError(message)


# -- finding the app -----------------------------------------------------------------------


@dataclass
class Located:
    bot: Bot
    app: Flask | None = None


def webhook_prefix() -> str:
    """The path the server puts the webhooks under, as it reads it from the environment."""
    return url_prefix(os.environ.get("BOTKIT_URL_PREFIX", "/webhooks/stream"))


def locate(ref: str | None) -> Located:
    """Import the bot named by ``ref`` (``module:attr``), ``BOTKIT_APP``, ``wsgi.py`` or
    ``bot.py``."""
    from flask import Flask

    from ..core.bot import Bot, default_bot
    from ..core.commands import SetupError

    ref = ref or os.environ.get("BOTKIT_APP") or None
    if ref is None:
        # wsgi.py as in this repository, bot.py as `botkit new` makes it
        ref = next((m for m in ("wsgi", "bot") if os.path.isfile(f"{m}.py")), None)
        if ref is None:
            fail(
                "no app to load: pass --app module:bot (e.g. --app examples.bot:bot), "
                "set BOTKIT_APP, or run botkit in the directory that holds wsgi.py or bot.py"
            )
    module_name, _, attr = ref.partition(":")
    if not module_name:
        fail(f"--app {ref!r}: expected module:bot or module:app, e.g. examples.bot:bot")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ConfigError as exc:
        # a setting is wrong (the app builds without credentials): the loading was fine
        fail(str(exc))
    except SetupError as exc:  # a registration mistake in the bot's module
        fail(f"{module_name}: {exc}")
    except ImportError as exc:
        if exc.name and module_name.startswith(exc.name):
            fail(f"cannot import {module_name!r}: {exc}")
        raise
    names = [attr] if attr else ["bot", "app"]
    for name in names:
        obj = getattr(module, name, None)
        if obj is None:
            continue
        if isinstance(obj, Bot):
            return Located(obj, obj.app)
        if isinstance(obj, Flask):
            dispatcher = obj.extensions.get("botkit")
            if dispatcher is None:
                fail(f"{module_name}:{name} is a Flask app that botkit did not make")
            return Located(dispatcher.bot, obj)
        fail(f"{module_name}:{name} is a {type(obj).__name__}, not a botkit Bot or app")
    if not attr and (default_bot.commands or default_bot.hooks or default_bot.event_handlers):
        return Located(default_bot, default_bot.app)
    wanted = attr or "bot (or app)"
    fail(f"{module_name} has no {wanted}: pass --app {module_name}:NAME")


def loaded(ctx: click.Context) -> Located:
    """The app named by the group's ``--app``, imported once per run."""
    obj: dict[str, Any] = ctx.ensure_object(dict)
    if "located" not in obj:
        obj["located"] = locate(obj.get("app"))
    located: Located = obj["located"]
    return located


def dev_credentials_default() -> None:
    """Without Stream credentials, use botkit's development key (BOTKIT_DEV=1)."""
    if not any(
        os.environ.get(k) for k in ("STREAM_API_KEY", "STREAM_API_SECRET", "STREAM_API_KEYS")
    ):
        os.environ.setdefault("BOTKIT_DEV", "1")


# -- output ----------------------------------------------------------------------------------


def table(rows: list[list[str]], headers: list[str]) -> list[str]:
    """``rows`` under ``headers`` as aligned lines of text, with a rule under the headers."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return [line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)]
