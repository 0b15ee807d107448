"""Tests for botkit.core.help: the automatic /help command."""

from __future__ import annotations

import enum

import pytest

from botkit import Bot, CommandContext, CommandGroup, Message, SetupError
from botkit.core.help import HelpCommand


class Size(enum.Enum):
    SMALL = "small"
    LARGE = "large"


def make_bot(**kwargs: bool) -> Bot:
    bot = Bot(**kwargs)

    @bot.command("remind")
    def remind(ctx: CommandContext, who: str, minutes: int, what: str = "") -> None:
        """Remind someone of something.

        The reminder is posted in the channel.

        Args:
            who: Who to remind, e.g. @bob.
            minutes: In how many
                minutes.
        """

    @bot.command("gif", description="Post a GIF", args="[search terms]")
    def gif(ctx: CommandContext) -> None: ...

    @bot.command("coffee")
    def coffee(ctx: CommandContext, size: Size = Size.SMALL, sugar: bool = False) -> None:
        """Order a coffee."""

    return bot


def test_help_lists_commands() -> None:
    with make_bot().test_client() as client:
        reply = client.command("/help")
    assert reply.type == "ephemeral"
    assert reply.text == (
        "Commands:\n"
        "/coffee [size: small|large] [sugar] — Order a coffee.\n"
        "/gif [search terms] — Post a GIF\n"
        "/remind <who> <minutes> [what] — Remind someone of something.\n"
        "Type /help NAME to learn more about a command."
    )


def test_help_for_one_command() -> None:
    with make_bot().test_client() as client:
        reply = client.command("/help remind")
        assert client.command("/help /remind").text == reply.text
        coffee = client.command("/help coffee").text
        gif = client.command("/help gif").text
    assert reply.type == "ephemeral"
    assert reply.text == (
        "/remind — Remind someone of something.\n"
        "\n"
        "The reminder is posted in the channel.\n"
        "\n"
        "Usage: /remind <who> <minutes> [what]\n"
        "\n"
        "• who: Who to remind, e.g. @bob.\n"
        "• minutes: In how many minutes. (a whole number)\n"
        "• what (optional)"
    )
    assert coffee == (
        "/coffee — Order a coffee.\n\nUsage: /coffee [size: small|large] [sugar]\n\n"
        "• size (one of small, large; optional, default small)\n"
        "• sugar (yes or no; optional, default no)"
    )
    assert gif == "/gif — Post a GIF\n\nUsage: /gif [search terms]"


def test_help_about_help_and_unknown_names() -> None:
    with make_bot().test_client() as client:
        assert "Usage: /help [command]" in (client.command("/help help").text or "")
        reply = client.command("/help nope")
    assert reply.type == "error"
    assert reply.text == "There is no command /nope. Type /help to see the commands."


def test_help_is_registered_for_stream() -> None:
    bot = make_bot()
    assert isinstance(bot.commands["help"], HelpCommand)
    assert bot.commands["help"].describe() == {
        "name": "help",
        "description": "Show this bot's commands, or how to use one.",
        "args": "[command]",
        "set": "",
    }


def test_help_can_be_turned_off() -> None:
    bot = make_bot(help_command=False)
    assert "help" not in bot.commands
    with bot.test_client() as client:
        reply = client.command("/help")
    assert reply.type == "error" and "help doesn't exist" in (reply.text or "")


def test_help_can_be_replaced() -> None:
    bot = make_bot()

    @bot.command("help")
    def my_help(ctx: CommandContext) -> Message:
        return Message.ephemeral("Ask in #support.")

    assert bot.commands["help"] is my_help
    with pytest.raises(SetupError, match="registered twice"):
        bot.add_command(my_help, "help")  # only the built-in one gives way
    with bot.test_client() as client:
        assert client.command("/help").text == "Ask in #support."


def test_help_replaced_by_a_group() -> None:
    group = CommandGroup()

    @group.command("help")
    def group_help(ctx: CommandContext) -> str:
        return "group help"

    bot = make_bot()
    bot.include(group)
    with bot.test_client() as client:
        assert client.command("/help").text == "group help"


def test_help_on_an_empty_bot_and_checks_apply() -> None:
    bot = Bot()

    @bot.check
    def members_only(ctx: CommandContext) -> str | None:
        return None if ctx.user_id == "alice" else "Members only."

    with bot.test_client() as client:
        assert client.command("/help").text == "This bot has no commands yet."
        assert client.command("/help", user={"id": "eve"}).text == "Members only."
