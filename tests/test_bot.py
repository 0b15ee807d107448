"""Tests for botkit.core.bot: registration rules, decorators, groups, the default bot."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import botkit
from botkit import (
    Action,
    Attachment,
    Bot,
    Command,
    CommandContext,
    CommandGroup,
    Message,
    SetupError,
)
from botkit.core.config import DEV_API_KEY, DEV_API_SECRET
from botkit.testing import command_payload, encode, signed_headers


def hello(ctx: CommandContext) -> str:
    """Say hello.

    Longer help text.
    """
    return f"hello {ctx.user_id}"


# -- names ------------------------------------------------------------------------------------


def test_command_metadata_from_the_function() -> None:
    bot = Bot(help_command=False)
    cmd = bot.add_command(hello, "hello", args="[name]")
    assert isinstance(cmd, Command)
    assert bot.commands["hello"] is cmd
    assert cmd.describe() == {
        "name": "hello",
        "description": "Say hello.",
        "args": "[name]",
        "set": "",
    }
    assert "Longer help text." in cmd.help


def test_decorator_default_name_and_bare_form() -> None:
    bot = Bot(help_command=False)

    @bot.command()
    def first(ctx: CommandContext) -> None: ...

    @bot.command
    def second(ctx: CommandContext) -> None: ...

    assert set(bot.commands) == {"first", "second"}
    assert isinstance(second, Command) and second.name == "second"


def test_a_command_under_another_name_is_an_alias_with_its_own_name() -> None:
    bot = Bot(help_command=False)

    @bot.command("jif")
    @bot.command("gif", budget_ms=300)
    def gif(ctx: CommandContext) -> Message:
        """Post a gif."""
        buttons = Attachment(type="image", actions=[Action.button("go", "a", "Go")])
        return Message.ephemeral("pick", attachments=[buttons])

    @gif.action("go")
    def go(ctx: CommandContext) -> Message:
        return Message.publish(f"went from /{ctx.command}")

    assert gif.name == "jif" and bot.commands["gif"].name == "gif"
    assert gif.func is bot.commands["gif"].func  # the function, not the other Command
    assert gif.budget_ms == 300 and gif.description == "Post a gif."
    client = bot.test_client()
    for name in ("gif", "jif"):  # the action added to the alias routes on both
        assert client.command(f"/{name}").click("Go").text == f"went from /{name}"

    # add_command with a Command: a new name in another bot, the first left as it was
    other = Bot(help_command=False)
    yif = other.add_command(bot.commands["gif"], "yif", description="Gifs again.")
    assert yif.name == "yif" and list(other.commands) == ["yif"]
    assert yif.description == "Gifs again." and bot.commands["gif"].description == "Post a gif."
    assert other.test_client().command("/yif").click("Go").text == "went from /yif"
    assert bot.commands["gif"].bots == [bot]  # the alias's bot is not the original's


def test_duplicate_name() -> None:
    bot = Bot(help_command=False)
    bot.add_command(hello, "hello")
    with pytest.raises(SetupError, match="/hello is registered twice"):
        bot.add_command(hello, "hello")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "needs a name"),
        ("two words", "has a space"),
        ("tab\tname", "has a space"),
        ("/gif", "leading '/'"),
        ("x" * 256, "longer than 255"),
        ("giphy", "built-in"),
    ],
)
def test_bad_names(name: str, message: str) -> None:
    bot = Bot(help_command=False)
    with pytest.raises(ValueError, match=message):
        bot.add_command(hello, name)
    with pytest.raises(ValueError, match=message):
        bot.command(name)(hello)
    assert bot.commands == {}


def test_255_characters_is_fine() -> None:
    bot = Bot(help_command=False)
    bot.add_command(hello, "x" * 255)
    assert "x" * 255 in bot.commands


def test_duplicate_form_and_action_routes() -> None:
    bot = Bot(help_command=False)
    bot.add_form(hello, "f")
    with pytest.raises(SetupError, match="registered twice"):
        bot.add_form(hello, "f")
    with pytest.raises(SetupError, match="needs the form's name"):
        bot.add_form(hello, "")
    cmd = bot.add_command(hello, "hello")
    cmd.add_action(hello, "btn", "go")
    with pytest.raises(ValueError, match="routed twice"):
        cmd.add_action(hello, "btn", "go")
    with pytest.raises(ValueError, match="needs the button's name"):
        cmd.add_action(hello, "")


def test_bad_event_types() -> None:
    bot = Bot(help_command=False)
    with pytest.raises(SetupError, match="non-empty strings"):
        bot.on("")(hello)


# -- late registration ---------------------------------------------------------------------------


def test_registration_after_the_first_webhook_is_an_error() -> None:
    bot = Bot(help_command=False)
    bot.add_command(hello, "hello")
    client = bot.test_client()
    try:
        assert not bot.started
        assert client.command("/hello").text == "hello alice"
        assert bot.started
        for register in (
            lambda: bot.add_command(hello, "late"),
            lambda: bot.command("late2")(hello),
            lambda: bot.add_form(hello, "late-form"),
            lambda: bot.form("late-form")(hello),
            lambda: bot.errorhandler(KeyError)(hello),
            lambda: bot.check(hello),
            lambda: bot.add_before_send(hello),
            lambda: bot.before_send(hello),
            lambda: bot.before_send(fail_closed=True)(hello),
            lambda: bot.add_event_handler(hello, "message.new"),
            lambda: bot.on("message.new")(hello),
            lambda: bot.include(CommandGroup()),
        ):
            with pytest.raises(SetupError, match="already handled a webhook"):
                register()
        assert set(bot.commands) == {"hello"}
        assert (bot.forms, bot.hooks, bot.event_handlers) == ({}, [], [])
        assert (bot.error_handlers, bot.checks) == ({}, [])
    finally:
        client.runtime.close()


def test_command_routes_after_the_first_webhook_are_an_error() -> None:
    bot = Bot(help_command=False)
    cmd = bot.add_command(hello, "hello")
    with bot.test_client() as client:
        assert client.command("/hello").text == "hello alice"
        for register in (
            lambda: cmd.add_action(hello, "btn", "go"),
            lambda: cmd.action("btn")(hello),
            lambda: cmd.form("late-form")(hello),
            lambda: cmd.check(hello),
            lambda: cmd.errorhandler(KeyError)(hello),
        ):
            with pytest.raises(SetupError, match=r"/hello .*already handled a webhook"):
                register()
    assert (cmd.routes, cmd.checks, cmd.error_handlers) == ([], [], {})


def test_command_routes_of_a_group_after_the_first_webhook_are_an_error() -> None:
    group = CommandGroup()
    cmd = group.add_command(hello, "hello")
    bot = Bot(help_command=False)
    bot.include(group)
    cmd.add_action(hello, "btn", "go")  # a group's command may still grow until the bot starts
    with bot.test_client() as client:
        client.command("/hello")
        with pytest.raises(SetupError, match="already handled a webhook"):
            cmd.add_action(hello, "btn", "stop")
    assert [r.value for r in cmd.routes] == ["go"]


# -- decorators give the function back -------------------------------------------------------------


def test_decorators_return_callables_that_call_like_the_function() -> None:
    bot = Bot(help_command=False)

    @bot.command("add")
    def add(ctx: Any, extra: int = 0) -> int:
        """Add."""
        return 1 + extra

    assert add(None) == 1
    assert add(None, extra=2) == 3
    assert add.__name__ == "add" and add.__doc__ == "Add."

    @add.action("btn", "go")
    def go(ctx: Any) -> str:
        return "went"

    @bot.form("my-form")
    def form(ctx: Any) -> str:
        return "formed"

    @bot.errorhandler(KeyError)
    def on_key(ctx: Any, exc: Exception) -> str:
        return "key"

    @bot.check
    def allow(ctx: Any) -> None:
        return None

    @bot.before_send
    def hook(ctx: Any) -> None:
        return None

    @bot.before_send(fail_closed=True)
    def strict(ctx: Any) -> None:
        return None

    @bot.on("message.new")
    def handler(event: Any) -> str:
        return "handled"

    assert go(None) == "went"
    assert form(None) == "formed"
    assert on_key(None, KeyError()) == "key"
    assert allow(None) is None and hook(None) is None and strict(None) is None
    assert handler(None) == "handled"
    assert [h.fail_closed for h in bot.hooks] == [False, True]


# -- groups -----------------------------------------------------------------------------------------


def test_command_group_include() -> None:
    group = CommandGroup()
    seen: list[str] = []

    @group.command("ticket")
    def ticket(ctx: CommandContext) -> str:
        raise KeyError("nope")

    @group.check
    def only_bob(ctx: CommandContext) -> str | None:
        seen.append(ctx.user_id)
        return None if ctx.user_id == "bob" else "Only Bob may do that."

    @group.errorhandler(KeyError)
    def on_key(ctx: CommandContext, exc: Exception) -> Message:
        return Message.error("No such key.")

    @group.form("standalone")
    def standalone(ctx: CommandContext) -> str:
        return "form ok"

    @group.before_send
    def hook(ctx: Any) -> None:
        return None

    @group.on("message.new")
    def on_new(event: Any) -> None:
        return None

    bot = Bot(help_command=False)

    @bot.command("other")
    def other(ctx: CommandContext) -> str:
        return "other ok"

    bot.include(group)
    assert set(bot.commands) == {"other", "ticket"}
    assert "standalone" in bot.forms
    assert len(bot.hooks) == 1 and len(bot.event_handlers) == 1

    client = bot.test_client()
    try:
        assert client.command("/ticket x").text == "Only Bob may do that."
        reply = client.command("/ticket x", user={"id": "bob"})
        assert (reply.type, reply.text) == ("error", "No such key.")
        # the group's check applies to the group's commands only
        assert client.command("/other").text == "other ok"
        assert seen == ["alice", "bob"]
    finally:
        client.runtime.close()


def test_include_refuses_duplicates() -> None:
    group = CommandGroup()
    group.add_command(hello, "hello")
    group.add_form(hello, "f")
    bot = Bot(help_command=False)
    bot.add_command(hello, "hello")
    with pytest.raises(SetupError, match="registered twice"):
        bot.include(group)
    other = CommandGroup()
    other.add_form(hello, "f")
    bot2 = Bot(help_command=False)
    bot2.add_form(hello, "f")
    with pytest.raises(SetupError, match="registered twice"):
        bot2.include(other)


# -- the module-level default bot ------------------------------------------------------------------


@pytest.fixture
def fresh_default_bot() -> Iterator[Bot]:
    """botkit.default_bot is global: empty it for the test and put it back after."""
    bot = botkit.default_bot
    saved = {
        "commands": dict(bot.commands),
        "forms": dict(bot.forms),
        "hooks": list(bot.hooks),
        "event_handlers": list(bot.event_handlers),
        "error_handlers": dict(bot.error_handlers),
        "checks": list(bot.checks),
        "started": bot.started,
        "app": bot.app,
    }
    saved_runtime = bot.runtime
    bot.commands.clear()
    bot.forms.clear()
    bot.hooks.clear()
    bot.event_handlers.clear()
    bot.error_handlers.clear()
    bot.checks.clear()
    # A bot never un-starts, by design, so there is no public way back: this fixture
    # alone resets the private flag, because the default bot is one global for all tests.
    bot._started = False
    try:
        yield bot
    finally:
        if bot.runtime is not None and bot.runtime is not saved_runtime:
            bot.runtime.close()
        for name in ("commands", "forms", "error_handlers"):
            getattr(bot, name).clear()
            getattr(bot, name).update(saved[name])
        for name in ("hooks", "event_handlers", "checks"):
            getattr(bot, name)[:] = saved[name]
        bot._started = saved["started"]
        bot.app = saved["app"]
        bot.runtime = saved_runtime


def test_one_file_style(fresh_default_bot: Bot, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("STREAM_API_KEY", "STREAM_API_SECRET", "STREAM_API_KEYS", "BOTKIT_QUEUE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BOTKIT_DEV", "1")
    monkeypatch.setenv("BOTKIT_STORE", "memory://")
    monkeypatch.setenv("BOTKIT_COMMAND_BUDGET_MS", "10000")

    @botkit.command("gif", description="Post a GIF")
    def gif(ctx: CommandContext) -> Message:
        return Message.ephemeral(f"gif for {ctx.args}")

    assert fresh_default_bot.commands["gif"] is gif
    assert gif.description == "Post a GIF"

    app = botkit.create_app()
    body = encode(command_payload("/gif cats"))
    headers = signed_headers(body, api_key=DEV_API_KEY, secret=DEV_API_SECRET)
    response = app.test_client().post(
        "/webhooks/stream/custom-commands?type=gif", data=body, headers=headers
    )
    assert response.status_code == 200
    message = response.get_json()["message"]
    assert (message["type"], message["text"]) == ("ephemeral", "gif for cats")


# -- mistakes caught at registration (issue 22) ---------------------------------------------------


def on_event(event: Any) -> None:
    pass


def test_unknown_event_type_suggests_the_close_match() -> None:
    bot = Bot(help_command=False)
    with pytest.raises(SetupError, match=r"did you mean 'message\.new'") as info:
        bot.on("mesage.new")(on_event)
    assert "custom=True" in str(info.value)  # the way to say it is meant
    with pytest.raises(SetupError, match="Stream sends no event of that type"):
        bot.on("message.new", "reaction.nwe")(on_event)
    with pytest.raises(SetupError, match="mesage"):
        bot.on("mesage.*")(on_event)  # a pattern that matches no known type
    assert bot.event_handlers == []


def test_known_types_patterns_and_custom_types_are_accepted() -> None:
    bot = Bot(help_command=False)
    bot.on("message.new", "reaction.*", "channel.?pdated")(on_event)
    bot.on("*")(on_event)
    bot.on()(on_event)
    bot.on("moderation.flagged", "user_group.*")(on_event)  # families Stream keeps growing
    bot.on("custom.thing", custom=True)(on_event)
    assert len(bot.handlers_for("reaction.new")) == 3
    assert len(bot.handlers_for("custom.thing")) == 3  # the custom one and the two catch-alls
    group = CommandGroup()
    with pytest.raises(SetupError, match="did you mean"):
        group.on("messsage.new")(on_event)


def test_a_lambda_command_needs_a_name() -> None:
    bot = Bot(help_command=False)
    with pytest.raises(SetupError, match="'/<lambda>'") as info:
        bot.command(lambda ctx: "hi")
    assert "bot.command('hello')(lambda ctx: 'hi')" in str(info.value)
    with pytest.raises(SetupError, match="no name"):
        bot.command()(lambda ctx: "hi")
    assert bot.commands == {}
    bot.command("hi")(lambda ctx: "hi")
    assert list(bot.commands) == ["hi"]


def test_signatures_that_cannot_take_what_botkit_passes() -> None:
    bot = Bot(help_command=False)

    def hook_without_ctx() -> None:
        pass

    def handler_without_event() -> None:
        pass

    def handler_wanting_two(event: Any, other: Any) -> None:
        pass

    def command_without_ctx() -> str:
        return "x"

    with pytest.raises(SetupError, match=r"hook_without_ctx\(\).*def no_shouting\(ctx\)"):
        bot.before_send(hook_without_ctx)
    with pytest.raises(SetupError, match=r"handler_without_event\(\).*def on_message\(event\)"):
        bot.on("message.new")(handler_without_event)
    with pytest.raises(SetupError, match="handler_wanting_two"):
        bot.on("message.new")(handler_wanting_two)
    with pytest.raises(TypeError, match=r"must take the context: def ping\(ctx\)"):
        bot.command("ping")(command_without_ctx)
    assert bot.hooks == [] and bot.event_handlers == [] and bot.commands == {}

    def flexible(*args: Any) -> None:
        pass

    def with_default(event: Any, extra: int = 1) -> None:
        pass

    bot.before_send(flexible)
    bot.on("message.new")(with_default)
    assert len(bot.hooks) == 1 and len(bot.event_handlers) == 1


def test_a_raising_before_send_hook_is_logged_as_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bot = Bot(help_command=False)

    @bot.before_send
    def broken(ctx: Any) -> None:
        raise KeyError("oops")

    with bot.test_client() as client, caplog.at_level("INFO", logger="botkit"):
        reply = client.before_send("hello")
    assert reply.status == 200 and reply.text == "hello"  # fail-open: the message passes
    lines = [r.getMessage() for r in caplog.records if r.name == "botkit.webhook"]
    assert len(lines) == 1 and "outcome=error" in lines[0], lines


def test_push_handlers_log_each_handled_event_at_info(caplog: pytest.LogCaptureFixture) -> None:
    bot = Bot(help_command=False)

    @bot.on("message.new")
    def count(event: Any) -> None:
        pass

    with bot.test_client() as client, caplog.at_level("INFO", logger="botkit"):
        client.event("message.new", webhook_id="wh-22", message={"id": "m1", "text": "secret"})
    (record,) = [r for r in caplog.records if r.name == "botkit.tasks"]
    assert record.levelname == "INFO"
    line = record.getMessage()
    assert line.startswith("event message.new handler=test_bot.")
    assert "count" in line and "id=wh-22" in line and line.endswith("ms")
    assert "secret" not in line  # never the body


# -- building the app without credentials (issue 22) ----------------------------------------------


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("STREAM_API_KEY", "STREAM_API_SECRET", "STREAM_API_KEYS", "BOTKIT_DEV"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BOTKIT_STORE", "memory://")


@pytest.mark.usefixtures("no_credentials")
def test_the_app_builds_without_credentials_but_refuses_to_serve(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from botkit.adapters.web import check_startup
    from botkit.core.config import NO_CREDENTIALS, Config, ConfigError

    with pytest.raises(ConfigError, match="No Stream credentials"):
        Config.from_env()  # still reported where it is asked for
    bot = Bot(help_command=False)
    bot.add_command(hello, "hello")
    with caplog.at_level("WARNING", logger="botkit"):
        app = bot.create_app()  # at import of a bot module: no credentials needed
    assert f"{NO_CREDENTIALS} Until then the webhooks answer 503." in caplog.messages
    with pytest.raises(ConfigError) as info:
        check_startup(app)
    assert str(info.value) == NO_CREDENTIALS
    http = app.test_client()
    body = encode(command_payload("/hello"))
    for key, secret in (("any-key", "any-secret"), (DEV_API_KEY, DEV_API_SECRET)):
        answer = http.post(
            "/webhooks/stream/custom-commands?type=hello",
            data=body,
            headers=signed_headers(body, api_key=key, secret=secret),
        )
        assert answer.status_code == 503
        assert answer.get_json() == {
            "error": "the bot has no Stream credentials: set STREAM_API_KEY and STREAM_API_SECRET"
        }
    health = http.get("/healthz")
    assert health.status_code == 503
    assert health.get_json()["credentials"] == {"ok": False, "error": NO_CREDENTIALS}
    # the test client brings its own key: it works all the same
    with bot.test_client() as client:
        assert client.command("/hello").text == "hello alice"


def test_numeric_settings_refuse_what_is_not_a_number_above_zero() -> None:
    from botkit.adapters.gunicorn_worker import ReadLimits
    from botkit.core.config import Config, ConfigError

    for raw in ("nan", "NaN", "0", "-1", "soon"):
        with pytest.raises(ConfigError, match="BOTKIT_RESULT_TTL"):
            Config.from_env({"BOTKIT_DEV": "1", "BOTKIT_RESULT_TTL": raw})
        with pytest.raises(ConfigError, match="BOTKIT_HEADER_TIMEOUT"):  # the same reading
            ReadLimits.from_environ({"BOTKIT_HEADER_TIMEOUT": raw})
    assert Config.from_env({"BOTKIT_DEV": "1", "BOTKIT_RESULT_TTL": " 60 "}).result_ttl == 60


def test_check_startup_passes_apps_with_credentials_and_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flask import Flask

    from botkit.adapters.web import check_startup
    from botkit.core.config import ConfigError

    monkeypatch.setenv("STREAM_API_KEY", "k")
    monkeypatch.setenv("STREAM_API_SECRET", "s")
    monkeypatch.setenv("BOTKIT_STORE", "memory://")
    check_startup(Bot().create_app())
    # apps botkit did not make, served with the same gunicorn settings, pass
    check_startup(Flask("other"))
    check_startup(lambda environ, start_response: [b""])
    monkeypatch.delenv("STREAM_API_KEY")
    monkeypatch.delenv("STREAM_API_SECRET")
    monkeypatch.delenv("BOTKIT_DEV", raising=False)
    with pytest.raises(ConfigError, match="No Stream credentials"):
        check_startup(Bot().create_app())


@pytest.mark.usefixtures("no_credentials")
def test_the_worker_refuses_to_start_without_credentials(tmp_path: Any) -> None:
    from botkit.core.config import ConfigError
    from botkit.runtime.worker import run_consumer

    bot = Bot(help_command=False)
    bot.on("message.new")(on_event)
    bot.create_app()
    with pytest.raises(ConfigError, match="No Stream credentials"):
        run_consumer(bot, f"huey+sqlite:///{tmp_path}/queue.db")


def test_checks_error_handlers_and_forms_are_checked_too() -> None:
    bot = Bot(help_command=False)

    def no_args() -> None:
        pass

    def one(ctx: Any) -> None:
        pass

    def two(ctx: Any, exc: Exception) -> None:
        pass

    with pytest.raises(SetupError, match=r"The check .*no_args\(\).*def staff_only\(ctx\)"):
        bot.check(no_args)
    with pytest.raises(SetupError, match=r"called with 2 arguments.*def on_error\(ctx, exc\)"):
        bot.errorhandler(ValueError)(one)
    with pytest.raises(SetupError, match=r"The form handler .*no_args\(\)"):
        bot.form("ticket")(no_args)
    bot.check(one)
    bot.errorhandler(ValueError)(two)
    bot.form("ticket")(one)
    assert bot.checks == [one] and bot.error_handlers == {ValueError: two}
