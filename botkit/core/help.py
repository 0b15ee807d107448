"""The automatic ``/help`` command.

Every :class:`~botkit.Bot` has it unless made with ``Bot(help_command=False)``;
registering a command named ``help`` yourself replaces it. ``/help`` lists the bot's
commands with their descriptions, ``/help NAME`` shows a command's usage and the help of
its parameters, taken from the handler's docstring::

    @bot.command("remind")
    def remind(ctx, who: str, minutes: int, what: str = ""):
        \"\"\"Remind someone of something.

        Args:
            who: Who to remind, e.g. @bob.
            minutes: In how many minutes.
            what: What to remind them of.
        \"\"\"

Both answers are ephemeral: only the user who asked sees them.
"""

from __future__ import annotations

from typing import Any

from .arguments import REQUIRED, Parameter, parse_docstring
from .commands import Command
from .context import CommandContext
from .messages import Message

__all__ = ["HelpCommand", "command_help", "command_list"]


def command_list(commands: dict[str, Command[Any, Any]]) -> str:
    """``/help``'s answer: one line per command (``/help`` itself left out)."""
    shown = sorted((c for c in commands.values() if not isinstance(c, HelpCommand)), key=_key)
    if not shown:
        return "This bot has no commands yet."
    lines = ["Commands:"]
    for cmd in shown:
        line = cmd.usage
        if cmd.description:
            line += f" — {cmd.description}"
        lines.append(line)
    if "help" in commands:
        lines.append("Type /help NAME to learn more about a command.")
    return "\n".join(lines)


def _key(cmd: Command[Any, Any]) -> str:
    return cmd.name.casefold()


def command_help(cmd: Command[Any, Any]) -> str:
    """``/help NAME``'s answer: description, usage and parameter help."""
    doc = parse_docstring(cmd.help)
    lines = [f"/{cmd.name}" + (f" — {cmd.description}" if cmd.description else "")]
    if doc.body:
        lines += ["", doc.body]
    lines += ["", f"Usage: {cmd.usage}"]
    params = cmd.signature.parameters if cmd.signature is not None else ()
    if params:
        lines.append("")
        lines += [_param_line(p) for p in params]
    return "\n".join(lines)


def _param_line(param: Parameter) -> str:
    notes: list[str] = []
    if param.expects != "text":
        notes.append(param.expects)
    if param.many:
        notes.append("one or more words" if param.required else "any number of words")
    elif not param.required:
        if param.default is None or param.default == "" or param.default is REQUIRED:
            notes.append("optional")
        else:
            notes.append(f"optional, default {_shown(param.default)}")
    line = f"• {param.name}"
    if param.help:
        line += f": {param.help}"
    if notes:
        line += f" ({'; '.join(notes)})"
    return line


def _shown(value: Any) -> str:
    from enum import Enum

    if isinstance(value, Enum):
        return value.value if isinstance(value.value, str) else value.name.lower()
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def help_handler(ctx: CommandContext, command: str = "") -> Message:
    """Show this bot's commands, or how to use one.

    Args:
        command: A command's name, e.g. help.
    """
    commands = ctx.bot.commands
    if not command:
        return Message.ephemeral(command_list(commands))
    name = command.removeprefix("/")
    cmd = commands.get(name)
    if cmd is None:
        return Message.error(f"There is no command /{name}. Type /help to see the commands.")
    return Message.ephemeral(command_help(cmd))


class HelpCommand(Command[[CommandContext, str], Message]):
    """The built-in ``/help``. A bot replaces it when you register your own ``help``."""

    def __init__(self) -> None:
        super().__init__(help_handler, "help")
