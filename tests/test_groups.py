"""Tests for blueprints (CommandGroup) and command-scoped checks and error handlers."""

from __future__ import annotations

from typing import Any

import pytest

from botkit import (
    BeforeSendContext,
    Bot,
    CommandContext,
    CommandGroup,
    Event,
    Message,
    SetupError,
)

# -- a group in its own "module" ---------------------------------------------------------------

admin = CommandGroup()
order: list[str] = []
events: list[str] = []


class Refused(Exception):
    pass


@admin.check
def admins_only(ctx: CommandContext) -> Message | None:
    order.append("group")
    if ctx.user.get("role") != "admin":
        return Message.error("Only admins can do that.")
    return None


@admin.command("kick")
def kick(ctx: CommandContext, who: str, reason: str = "") -> Message:
    """Remove someone from the channel."""
    if who == "@boss":
        raise Refused("not the boss")
    if who == "@ghost":
        raise KeyError(who)
    return Message.ephemeral(f"Kick {who}? ({reason or 'no reason'})", state={"kick": who})


@kick.check
def not_yourself(ctx: CommandContext) -> str | None:
    order.append("command")
    return "You cannot kick yourself." if ctx.args.startswith(f"@{ctx.user_id}") else None


@kick.action("kick", "yes")
def kick_yes(ctx: CommandContext) -> Message:
    return Message.publish(f"{ctx.state['kick']} was kicked.")


@kick.errorhandler(Refused)
def refused(ctx: CommandContext, error: Refused) -> Message:
    return Message.error(f"Refused: {error}")


@admin.errorhandler(KeyError)
def no_such_user(ctx: CommandContext, error: KeyError) -> Message:
    return Message.error(f"No user {error.args[0]}.")


@admin.form("ban_form")
def ban_form(ctx: CommandContext) -> str:
    return f"banned {(ctx.form_data or {}).get('who')}"


@admin.before_send
def tag_admins(ctx: BeforeSendContext) -> str | None:
    return f"[admin] {ctx.text}" if ctx.user.get("role") == "admin" else None


@admin.on("member.added")
def welcome(event: Event) -> None:
    events.append(event.type)


def make_bot() -> Bot:
    bot = Bot()

    @bot.check
    def not_banned(ctx: CommandContext) -> Message | None:
        order.append("bot")
        return Message.error("You are banned.") if ctx.user.get("banned") else None

    @bot.errorhandler(KeyError)
    def bot_key_error(ctx: CommandContext, error: KeyError) -> str:
        return "bot-level handler"

    @bot.command("ping")
    def ping(ctx: CommandContext) -> Message:
        if ctx.args == "key":
            raise KeyError("x")
        return Message.ephemeral("pong")

    bot.include(admin)
    return bot


ADMIN = {"id": "root", "role": "admin"}


@pytest.fixture(autouse=True)
def _clear() -> None:
    order.clear()
    events.clear()


def test_include_registers_everything() -> None:
    bot = make_bot()
    assert {"kick", "ping", "help"} <= set(bot.commands)
    assert bot.commands["kick"] is kick
    assert "ban_form" in bot.forms
    assert [h.func for h in bot.hooks] == [tag_admins]
    assert [h.func for h in bot.event_handlers] == [welcome]


def test_checks_run_bot_then_group_then_command() -> None:
    with make_bot().test_client() as client:
        reply = client.command("/kick @bob spam", user=ADMIN)
        assert reply.type == "ephemeral" and reply.text == "Kick @bob? (spam)"
        assert order == ["bot", "group", "command"]
        assert reply.click(kick="yes", user=ADMIN).text == "@bob was kicked."


def test_a_check_refuses_with_a_message() -> None:
    with make_bot().test_client() as client:
        refused = client.command("/kick @bob")
        assert (refused.type, refused.text) == ("error", "Only admins can do that.")
        assert order == ["bot", "group"]  # later checks and the handler did not run
        assert client.command("/kick @root", user=ADMIN).text == "You cannot kick yourself."
        banned = client.command("/kick @bob", user={**ADMIN, "banned": True})
        assert banned.text == "You are banned."


def test_group_checks_apply_to_its_commands_only() -> None:
    with make_bot().test_client() as client:
        assert client.command("/ping").text == "pong"
        assert order == ["bot"]
        assert client.command("/help").type == "ephemeral"


def test_error_handlers_are_scoped() -> None:
    with make_bot().test_client() as client:
        # the command's own handler
        assert client.command("/kick @boss", user=ADMIN).text == "Refused: not the boss"
        # the group's handler wins over the bot's for the group's commands
        assert client.command("/kick @ghost", user=ADMIN).text == "No user @ghost."
        # other commands get the bot's handler
        assert client.command("/ping key").text == "bot-level handler"


def test_group_forms_hooks_and_events() -> None:
    with make_bot().test_client() as client:
        msg = client.command("/ping").message
        assert msg is not None
        form = client.action({**msg, "command": ""}, {"mml_name": "ban_form", "who": "eve"})
        assert form.text == "banned eve"
        assert client.before_send("hi", user=ADMIN).text == "[admin] hi"
        assert client.before_send("hi").text == "hi"
        client.event("member.added", member={"user_id": "new"})
        assert events == ["member.added"]


def test_a_group_can_be_included_once_per_bot_only() -> None:
    group = CommandGroup()

    @group.command("solo")
    def solo(ctx: CommandContext) -> None: ...

    bot = Bot()
    bot.include(group)
    with pytest.raises(SetupError, match="/solo is registered twice"):
        bot.include(group)


def test_typed_commands_in_groups_keep_their_usage() -> None:
    assert kick.args == "<who> [reason]"
    assert kick.describe()["description"] == "Remove someone from the channel."
    bot = make_bot()
    with bot.test_client() as client:
        reply = client.command("/kick", user=ADMIN)
    assert reply.text == "Usage: /kick <who> [reason]\nMissing who."


def test_group_registration_is_the_same_api() -> None:
    group: Any = CommandGroup()
    for name in ("command", "add_command", "form", "check", "errorhandler", "before_send", "on"):
        assert callable(getattr(group, name))


def test_a_group_refuses_registration_after_include() -> None:
    group = CommandGroup()

    @group.command("early")
    def early(ctx: CommandContext) -> None: ...

    bot = Bot(help_command=False)
    bot.include(group)
    assert not group.started  # a group never serves; it is refused for being included
    for register in (
        lambda: group.add_command(early, "late"),
        lambda: group.command("late")(early),
        lambda: group.add_before_send(early),
        lambda: group.before_send(early),
        lambda: group.add_event_handler(early, "member.added"),
        lambda: group.on("member.added")(early),
        lambda: group.check(early),
        lambda: group.errorhandler(KeyError)(early),
        lambda: group.add_form(early, "late_form"),
        lambda: group.form("late_form")(early),
    ):
        with pytest.raises(SetupError, match=r"before bot\.include\(group\)"):
            register()
    # nothing was half-registered: not on the group, and so not lost for the bot either
    assert set(group.commands) == set(bot.commands) == {"early"}
    assert (group.hooks, group.event_handlers, group.checks) == ([], [], [])
    assert (group.error_handlers, group.forms) == ({}, {})


def test_a_group_included_twice_is_still_included() -> None:
    group = CommandGroup()

    @group.command("shared")
    def shared(ctx: CommandContext) -> None: ...

    first, second = Bot(help_command=False), Bot(help_command=False)
    first.include(group)
    second.include(group)  # several bots (tests, several apps) may share a group
    assert first.commands["shared"] is second.commands["shared"] is shared
    with pytest.raises(SetupError, match="already included"):
        group.check(admins_only)


def test_blueprints_of_the_bot_and_its_groups_are_served_by_every_app() -> None:
    from flask import Blueprint

    pages = Blueprint("pages", __name__)
    pages.add_url_rule("/hello", "hello", lambda: "hi")
    pictures = Blueprint("pictures", __name__)
    pictures.add_url_rule("/cat.svg", "cat", lambda: "<svg/>")
    group = CommandGroup()
    group.register_blueprint(pictures, url_prefix="/img")
    bot = Bot()
    bot.register_blueprint(pages)
    bot.include(group)
    with bot.test_client() as client:
        http = client.app.test_client()
        assert http.get("/hello").text == "hi"
        assert http.get("/img/cat.svg").text == "<svg/>"
        client.command("/help")
    with pytest.raises(SetupError):
        bot.register_blueprint(Blueprint("late", __name__))
    with pytest.raises(SetupError):
        group.register_blueprint(Blueprint("late", __name__))
