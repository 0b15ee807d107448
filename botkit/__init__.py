"""botkit: a framework for Stream Chat bots.

Write decorated functions; botkit serves them as Stream's custom-command,
before-message-send and push webhooks on a Flask app::

    from botkit import Bot, Message

    bot = Bot()

    @bot.command("hello", description="Say hello")
    def hello(ctx):
        return Message.ephemeral(f"Hello, {ctx.user['id']}!")

    app = bot.create_app()   # gunicorn wsgi:app
"""

from __future__ import annotations

from typing import Any

from . import signals as signals
from .arguments import ArgumentError as ArgumentError
from .bot import Bot as Bot
from .bot import CommandGroup as CommandGroup
from .bot import default_bot as default_bot
from .commands import Command as Command
from .commands import SetupError as SetupError
from .config import Config as Config
from .config import ConfigError as ConfigError
from .context import BeforeSendContext as BeforeSendContext
from .context import ClickedAction as ClickedAction
from .context import CommandContext as CommandContext
from .context import Event as Event
from .forms import FormError as FormError
from .messages import Action as Action
from .messages import Attachment as Attachment
from .messages import Field as Field
from .messages import Message as Message

__version__ = "0.1.0"

__all__ = [
    "Action",
    "ArgumentError",
    "Attachment",
    "BeforeSendContext",
    "Bot",
    "ClickedAction",
    "Command",
    "CommandContext",
    "CommandGroup",
    "Config",
    "ConfigError",
    "Event",
    "Field",
    "FormError",
    "Message",
    "SetupError",
    "before_send",
    "command",
    "create_app",
    "default_bot",
    "on",
    "signals",
]

#: ``@command("gif")`` registers on :data:`default_bot`, which :func:`create_app` serves.
command = default_bot.command
before_send = default_bot.before_send
on = default_bot.on


def create_app(**kwargs: Any) -> Any:
    """The Flask app for :data:`default_bot` (the bot the module-level decorators use)."""
    return default_bot.create_app(**kwargs)
