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

from .core import signals as signals
from .core.arguments import ArgumentError as ArgumentError
from .core.bot import Bot as Bot
from .core.bot import CommandGroup as CommandGroup
from .core.bot import default_bot as default_bot
from .core.commands import Command as Command
from .core.commands import SetupError as SetupError
from .core.config import Config as Config
from .core.config import ConfigError as ConfigError
from .core.context import BeforeSendContext as BeforeSendContext
from .core.context import ClickedAction as ClickedAction
from .core.context import CommandContext as CommandContext
from .core.context import Event as Event
from .core.forms import FormError as FormError
from .core.messages import Action as Action
from .core.messages import Attachment as Attachment
from .core.messages import Field as Field
from .core.messages import Message as Message

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
