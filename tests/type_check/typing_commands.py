"""Checked by mypy (``make typecheck``), never run: decorated handlers keep their types."""

from __future__ import annotations

import enum
from typing import assert_type

from botkit import (
    ArgumentError,
    BeforeSendContext,
    Bot,
    Command,
    CommandContext,
    CommandGroup,
    Event,
    FormError,
    Message,
    command,
)

bot = Bot()
group = CommandGroup()


class Priority(enum.Enum):
    LOW = "low"
    HIGH = "high"


@bot.command("remind")
def remind(ctx: CommandContext, who: str, minutes: int, what: str = "") -> Message:
    return Message.ephemeral(f"{who} {minutes} {what}")


@bot.command
def bare(ctx: CommandContext) -> str:
    return "bare"


@group.command("ticket", description="Open a ticket")
def ticket(ctx: CommandContext, title: str, priority: Priority = Priority.LOW) -> str | None:
    return None


@command("hello")
def hello(ctx: CommandContext) -> str:
    return "hello"


def plain(ctx: CommandContext, n: int) -> int:
    return n


ctx = CommandContext(bot=bot, message={}, user={}, command="remind")

# The decorator gives back a Command that calls like the function.
assert_type(remind(ctx, "@bob", 10), Message)
assert_type(remind(ctx, "@bob", 10, what="tea"), Message)
assert_type(bare(ctx), str)
assert_type(ticket(ctx, "printer", Priority.HIGH), str | None)
assert_type(hello(ctx), str)
assert_type(bot.add_command(plain, "plain")(ctx, 1), int)
assert_type(remind.name, str)
assert_type(remind.usage, str)
assert_type(remind.describe(), dict[str, str])
assert isinstance(remind, Command)

# Wrong calls are type errors (warn_unused_ignores proves that they are).
remind(ctx, "@bob", "ten")  # type: ignore[arg-type]
remind(ctx)  # type: ignore[call-arg]
bare(ctx, 1)  # type: ignore[call-arg]


# Routes, checks, hooks and handlers come back unchanged.
@remind.action("remind", "schedule")
def schedule(ctx: CommandContext) -> Message:
    return Message.publish("scheduled")


@remind.form("remind_edit", schema=None)
def edit(ctx: CommandContext) -> str:
    return "edited"


@remind.check
def remind_check(ctx: CommandContext) -> str | None:
    return None


@remind.errorhandler(ArgumentError)
def usage(ctx: CommandContext, error: ArgumentError) -> Message:
    return Message.error(error.describe())


@bot.errorhandler(FormError)
def bad_form(ctx: CommandContext, error: FormError) -> str:
    return error.describe()


@bot.check
def bot_check(ctx: CommandContext) -> None:
    return None


@bot.form("survey")
def survey(ctx: CommandContext) -> Message:
    return Message.ephemeral("thanks")


@bot.before_send
def hook(ctx: BeforeSendContext) -> Message | None:
    return ctx.reject("no") if ctx.text == "x" else None


@bot.before_send(fail_closed=True)
def strict_hook(ctx: BeforeSendContext) -> None:
    return None


@bot.on("message.new")
def on_new(event: Event) -> None:
    return None


assert_type(schedule(ctx), Message)
assert_type(edit(ctx), str)
assert_type(remind_check(ctx), str | None)
assert_type(usage(ctx, ArgumentError("x")), Message)
assert_type(bad_form(ctx, FormError({})), str)
assert_type(bot_check(ctx), None)
assert_type(survey(ctx), Message)
assert_type(on_new(Event({"type": "message.new"})), None)
bc = BeforeSendContext(bot=bot, message={}, user={})
assert_type(hook(bc), Message | None)
assert_type(strict_hook(bc), None)
bot.include(group)
