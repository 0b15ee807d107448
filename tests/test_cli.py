"""The ``botkit`` CLI: app discovery, routes, sync against a stand-in Stream, send against
a real gunicorn, sign, run, worker and playground."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner, Result
from server import DEV_KEY, DEV_SECRET, ROOT, GunicornServer
from services import find_free_port
from stream_stub import StreamStub, stream_stub_fixture  # noqa: F401

from botkit import Bot, Command, Config, Message
from botkit.cli import cli
from botkit.cli.common import Located, locate
from botkit.cli.replies import buttons_of
from botkit.core.signing import KeyRing, sign

BOTKIT = os.path.join(os.path.dirname(sys.executable), "botkit")
URL = "https://bot.example.com"
PREFIX = "/webhooks/stream"

# -- bots used by the tests (module level, so `--app test_cli:NAME` finds them) --------------

full_bot = Bot(help_command=False)


@full_bot.command("weather", description="Show the weather", args="[city]")
def weather(ctx: Any) -> str:
    return "sunny"


@weather.action("units", None)
def units(ctx: Any) -> str:
    return "in celsius"


@full_bot.command("ticket", description="Open a ticket", args="[summary]", set="support")
def ticket(ctx: Any) -> str:
    return "ok"


@full_bot.before_send
def passthrough(ctx: Any) -> None:
    return None


@full_bot.on("message.new", "reaction.new")
def on_message(event: Any) -> None:
    pass


@full_bot.on("message.new")
def on_message_again(event: Any) -> None:
    pass


commands_only = Bot(help_command=False)


@commands_only.command("ping", description="Answer pong")
def ping(ctx: Any) -> str:
    return "pong"


flask_app = commands_only.create_app(Config(keyring=KeyRing({"k": ("s",)}), store_url="memory://"))
not_a_bot = 42


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def invoke(runner: CliRunner, args: list[str], bot: Bot | None = None, **kw: Any) -> Result:
    obj = {"located": Located(bot)} if bot is not None else None
    return runner.invoke(cli, args, obj=obj, catch_exceptions=False, **kw)


def stream_env(stub: StreamStub) -> dict[str, str | None]:
    return {
        "STREAM_API_KEY": stub.api_key,
        "STREAM_API_SECRET": stub.api_secret,
        "STREAM_BASE_URL": stub.url,
        "STREAM_API_KEYS": None,
        "BOTKIT_URL_PREFIX": None,
    }


def writes(stub: StreamStub) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in stub.requests if r.method != "GET"]


# -- app discovery ------------------------------------------------------------------------------


def test_locate_module_bot_and_flask_app() -> None:
    assert locate("test_cli:full_bot").bot is full_bot
    found = locate("test_cli:flask_app")
    assert found.bot is commands_only and found.app is flask_app
    # without an attribute: `bot`, then `app`, else the module-level default bot
    assert locate("examples.bot").bot.commands.keys() >= {"gif", "ticket"}


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("no_such_module_xyz:bot", "cannot import 'no_such_module_xyz'"),
        ("test_cli:missing", "test_cli has no missing"),
        ("test_cli:not_a_bot", "is a int, not a botkit Bot"),
        (":bot", "expected module:bot"),
    ],
)
def test_locate_errors_are_one_line(runner: CliRunner, ref: str, message: str) -> None:
    result = runner.invoke(cli, ["--app", ref, "routes"])
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output


def test_app_from_env_and_from_wsgi_py(
    runner: CliRunner, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = runner.invoke(cli, ["routes"], env={"BOTKIT_APP": "test_cli:full_bot"})
    assert result.exit_code == 0, result.output
    assert "/weather" in result.output

    (tmp_path / "wsgi.py").write_text(
        "from botkit import Bot\n"
        "bot = Bot(help_command=False)\n"
        "@bot.command('hello', description='Say hello')\n"
        "def hello(ctx):\n    return 'hi'\n"
        "app = bot.create_app()\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "wsgi", raising=False)
    env = {
        "BOTKIT_APP": None,
        "BOTKIT_DEV": "1",
        "STREAM_API_KEY": None,
        "BOTKIT_STORE": "memory://",
    }
    try:
        result = runner.invoke(cli, ["routes"], env=env)
    finally:
        sys.modules.pop("wsgi", None)
    assert result.exit_code == 0, result.output
    assert "/hello" in result.output and "Say hello" in result.output


def test_no_app_found(runner: CliRunner, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(cli, ["routes"], env={"BOTKIT_APP": None})
    assert result.exit_code == 1
    assert "no app to load: pass --app module:bot" in result.output


def test_loading_the_app_never_calls_stream(stream_stub: StreamStub) -> None:
    """Importing the app (wsgi.py registers nothing at import time) makes no Stream call."""
    env = {**os.environ, "STREAM_API_KEY": "stub-key", "STREAM_API_SECRET": "stub-secret"}
    env.update(STREAM_BASE_URL=stream_stub.url, BOTKIT_STORE="memory://")
    out = subprocess.run(
        [BOTKIT, "routes"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "/gif" in out.stdout
    assert stream_stub.requests == []


def test_routes_from_wsgi_without_credentials(tmp_path: Any) -> None:
    """A fresh checkout: `botkit routes` lists the examples without any Stream settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STREAM_", "BOTKIT_"))}
    env["BOTKIT_STORE"] = f"sqlite:///{tmp_path}/store.db"
    out = subprocess.run(
        [BOTKIT, "routes"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "/gif" in out.stdout and "/ticket" in out.stdout


# -- routes ---------------------------------------------------------------------------------------


def test_routes_table(runner: CliRunner) -> None:
    result = invoke(runner, ["routes"], full_bot)
    assert result.exit_code == 0
    out = result.output
    assert "Commands (2), on POST /webhooks/stream/custom-commands?type={type}" in out
    weather_line = next(line for line in out.splitlines() if "/weather" in line)
    assert "Show the weather" in weather_line and "[city]" in weather_line
    assert "units=*" in weather_line
    assert "support" in next(line for line in out.splitlines() if "/ticket" in line)
    assert "Before-send hooks (1)" in out and "passthrough" in out
    assert "Event handlers (2)" in out and "message.new, reaction.new" in out


# -- sync -------------------------------------------------------------------------------------------


def test_sync_dry_run_changes_nothing(runner: CliRunner, stream_stub: StreamStub) -> None:
    before = json.dumps([stream_stub.app, stream_stub.commands, stream_stub.channel_types])
    result = invoke(
        runner,
        ["sync", "--url", URL, "--dry-run", "--channel-type", "messaging"],
        full_bot,
        env=stream_env(stream_stub),
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "+ create     /weather [city]: Show the weather" in out
    assert "+ create     /ticket [summary]: Open a ticket" in out
    assert "messaging: add weather, ticket; keep giphy" in out
    assert f"custom_action_handler_url: '' -> '{URL}{PREFIX}/custom-commands?type={{type}}'" in out
    assert "+ event hook webhook" in out
    assert "Dry run: nothing was changed." in out
    assert writes(stream_stub) == []
    assert json.dumps([stream_stub.app, stream_stub.commands, stream_stub.channel_types]) == before


def test_sync_registers_then_is_a_no_op(runner: CliRunner, stream_stub: StreamStub) -> None:
    other_hook = {
        "id": "other-1",
        "enabled": True,
        "hook_type": "webhook",
        "webhook_url": "https://analytics.example.com/hook",
        "event_types": ["channel.created"],
    }
    sqs_hook = {"id": "other-2", "enabled": True, "hook_type": "sqs", "event_types": []}
    with stream_stub.lock:
        stream_stub.app["event_hooks"] = [other_hook, sqs_hook]
    args = ["sync", "--url", URL + "/", "--channel-type", "messaging"]
    result = invoke(runner, args, full_bot, env=stream_env(stream_stub))
    assert result.exit_code == 0, result.output
    assert "Done:" in result.output

    assert stream_stub.commands["weather"]["description"] == "Show the weather"
    assert stream_stub.commands["weather"]["args"] == "[city]"
    assert stream_stub.commands["ticket"]["set"] == "support"
    assert stream_stub.channel_types["messaging"]["commands"] == ["giphy", "weather", "ticket"]
    app = stream_stub.app
    assert app["custom_action_handler_url"] == f"{URL}{PREFIX}/custom-commands?type={{type}}"
    assert app["before_message_send_hook_url"] == f"{URL}{PREFIX}/before-message-send"
    hooks = app["event_hooks"]
    assert [h["id"] for h in hooks[:2]] == ["other-1", "other-2"]  # other services' hooks kept
    assert hooks[0]["webhook_url"] == other_hook["webhook_url"]
    assert hooks[0]["event_types"] == ["channel.created"]
    ours = hooks[2]
    assert ours["webhook_url"] == f"{URL}{PREFIX}/push"
    assert ours["event_types"] == ["message.new", "reaction.new"]
    assert ours["enabled"] is True and ours["hook_type"] == "webhook"

    stream_stub.requests.clear()
    again = invoke(runner, args, full_bot, env=stream_env(stream_stub))
    assert again.exit_code == 0, again.output
    assert "Nothing to change: Stream already matches the bot." in again.output
    assert "= unchanged  /weather" in again.output
    assert writes(stream_stub) == []
    assert stream_stub.requests  # it did read


def test_sync_updates_changed_commands_and_hook(runner: CliRunner, stream_stub: StreamStub) -> None:
    env = stream_env(stream_stub)
    assert invoke(runner, ["sync", "--url", URL], full_bot, env=env).exit_code == 0
    with stream_stub.lock:
        stream_stub.commands["weather"]["description"] = "Old text"
        hook = stream_stub.app["event_hooks"][0]
        hook["event_types"] = ["message.new"]
        hook_id = hook["id"]
    stream_stub.requests.clear()
    result = invoke(runner, ["sync", "--url", URL], full_bot, env=env)
    assert result.exit_code == 0, result.output
    assert "~ update     /weather: description 'Old text' -> 'Show the weather'" in result.output
    assert writes(stream_stub) == [("PUT", "/commands/weather"), ("PATCH", "/app")]
    assert stream_stub.commands["weather"]["description"] == "Show the weather"
    (hook,) = stream_stub.app["event_hooks"]
    assert hook["id"] == hook_id  # updated in place, not duplicated
    assert hook["event_types"] == ["message.new", "reaction.new"]


def test_sync_prune(runner: CliRunner, stream_stub: StreamStub) -> None:
    env = stream_env(stream_stub)
    with stream_stub.lock:
        stream_stub.commands["retired"] = {
            "name": "retired",
            "description": "Gone",
            "args": "",
            "set": "",
        }
        stream_stub.channel_types["messaging"]["commands"] = ["giphy", "retired"]
    args = ["sync", "--url", URL, "--channel-type", "messaging"]
    kept = invoke(runner, args, commands_only, env=env)
    assert kept.exit_code == 0, kept.output
    assert "! not in bot /retired (kept; --prune deletes it)" in kept.output
    assert "retired" in stream_stub.commands
    assert "before_message_send_hook_url" not in kept.output
    assert stream_stub.app["before_message_send_hook_url"] == ""  # the bot has no hooks
    assert stream_stub.app["event_hooks"] == []  # nor event handlers

    pruned = invoke(runner, [*args, "--prune"], commands_only, env=env)
    assert pruned.exit_code == 0, pruned.output
    assert "- delete     /retired" in pruned.output
    assert "retired" not in stream_stub.commands
    assert stream_stub.channel_types["messaging"]["commands"] == ["giphy", "ping"]
    assert ("DELETE", "/commands/retired") in writes(stream_stub)


def test_sync_prune_removes_only_our_push_hook(runner: CliRunner, stream_stub: StreamStub) -> None:
    env = stream_env(stream_stub)
    other = {
        "webhook_url": "https://other.example.com/x",
        "hook_type": "webhook",
        "event_types": [],
    }
    with stream_stub.lock:
        stream_stub.app["event_hooks"] = [other]
    assert invoke(runner, ["sync", "--url", URL], full_bot, env=env).exit_code == 0
    assert len(stream_stub.app["event_hooks"]) == 2
    result = invoke(runner, ["sync", "--url", URL, "--prune"], commands_only, env=env)
    assert result.exit_code == 0, result.output
    hooks = stream_stub.app["event_hooks"]
    assert [h["webhook_url"] for h in hooks] == [other["webhook_url"]]
    assert stream_stub.app["before_message_send_hook_url"] == ""


def test_sync_wildcard_handlers_ask_for_every_event(
    runner: CliRunner, stream_stub: StreamStub
) -> None:
    bot = Bot(help_command=False)
    bot.on("reaction.*")(lambda event: None)
    result = invoke(runner, ["sync", "--url", URL], bot, env=stream_env(stream_stub))
    assert result.exit_code == 0, result.output
    assert "wildcard" in result.output
    (hook,) = stream_stub.app["event_hooks"]
    assert hook["event_types"] == []
    assert stream_stub.app["custom_action_handler_url"] == ""  # no commands, no URL


def _bot_with_reserved_name() -> Bot:
    bot = Bot(help_command=False)
    cmd: Command[Any, Any] = Command(lambda ctx: None, "placeholder", description="x")
    cmd.name = "giphy"  # registration refuses it; sync must too
    bot.commands["giphy"] = cmd
    return bot


def _bot_with_51_commands() -> Bot:
    bot = Bot(help_command=False)
    for i in range(51):
        bot.add_command(lambda ctx: None, f"c{i}", description=f"command {i}")
    return bot


@pytest.mark.parametrize(
    ("make_bot", "reason"),
    [
        (_bot_with_reserved_name, "/giphy is one of Stream's built-in commands"),
        (_bot_with_51_commands, "the bot has 51 commands; Stream allows at most 50"),
    ],
)
def test_sync_refuses_before_any_request(
    runner: CliRunner, stream_stub: StreamStub, make_bot: Any, reason: str
) -> None:
    result = runner.invoke(
        cli,
        ["sync", "--url", URL],
        obj={"located": Located(make_bot())},
        env=stream_env(stream_stub),
    )
    assert result.exit_code == 1
    assert reason in result.output
    assert "nothing was sent to Stream" in result.output
    assert stream_stub.requests == []


def test_sync_refuses_when_stream_would_pass_50(runner: CliRunner, stream_stub: StreamStub) -> None:
    with stream_stub.lock:
        for i in range(50):
            stream_stub.commands[f"old{i}"] = {"name": f"old{i}", "description": "d"}
    result = runner.invoke(
        cli, ["sync", "--url", URL], obj={"located": Located(full_bot)}, env=stream_env(stream_stub)
    )
    assert result.exit_code == 1
    assert "over Stream's limit of 50: run with --prune" in result.output
    assert writes(stream_stub) == []


def test_sync_missing_credentials_and_unreachable_stream(
    runner: CliRunner, stream_stub: StreamStub
) -> None:
    env = {**stream_env(stream_stub), "STREAM_API_SECRET": None}
    result = runner.invoke(cli, ["sync", "--url", URL], obj={"located": Located(full_bot)}, env=env)
    assert result.exit_code == 1
    assert "Missing environment variable(s) STREAM_API_SECRET" in result.output
    assert "Traceback" not in result.output

    closed = f"http://127.0.0.1:{find_free_port()}"
    env = {**stream_env(stream_stub), "STREAM_BASE_URL": closed}
    result = runner.invoke(cli, ["sync", "--url", URL], obj={"located": Located(full_bot)}, env=env)
    assert result.exit_code == 1
    assert f"Stream API at {closed} is unreachable" in result.output
    assert len(result.output.strip().splitlines()) <= 3
    assert "Traceback" not in result.output


def test_sync_unknown_channel_type_and_bad_url(runner: CliRunner, stream_stub: StreamStub) -> None:
    env = stream_env(stream_stub)
    args = ["sync", "--url", URL, "--channel-type", "nope"]
    result = runner.invoke(cli, args, obj={"located": Located(full_bot)}, env=env)
    assert result.exit_code == 1
    assert "channel type 'nope' does not exist" in result.output
    assert writes(stream_stub) == []
    result = runner.invoke(
        cli, ["sync", "--url", "bot.example.com"], obj={"located": Located(full_bot)}, env=env
    )
    assert result.exit_code == 1
    assert "give the bot's public address" in result.output


def test_sync_stream_error_is_one_line(runner: CliRunner, stream_stub: StreamStub) -> None:
    stream_stub.fail_next(403, body={"code": 17, "message": "not allowed for this key"})
    result = runner.invoke(
        cli, ["sync", "--url", URL], obj={"located": Located(full_bot)}, env=stream_env(stream_stub)
    )
    assert result.exit_code == 1
    assert "Stream API error 403 (code 17): not allowed for this key" in result.output
    assert "Traceback" not in result.output


def test_sync_subprocess_dry_run_then_sync(stream_stub: StreamStub) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STREAM_", "BOTKIT_"))}
    env.update(
        STREAM_API_KEY="stub-key", STREAM_API_SECRET="stub-secret", STREAM_BASE_URL=stream_stub.url
    )
    cmd = [BOTKIT, "--app", "examples.bot:bot", "sync", "--url", URL, "--channel-type", "messaging"]
    dry = subprocess.run(
        [*cmd, "--dry-run"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert dry.returncode == 0, dry.stderr
    assert "+ create     /gif [search terms]: Post a GIF" in dry.stdout
    assert writes(stream_stub) == []
    real = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert real.returncode == 0, real.stderr
    assert {"gif", "ticket"} <= set(stream_stub.commands)
    assert stream_stub.app["before_message_send_hook_url"] == f"{URL}{PREFIX}/before-message-send"


# -- send against a real gunicorn -----------------------------------------------------------------


@pytest.fixture(scope="module")
def examples_server() -> Iterator[GunicornServer]:
    with GunicornServer("wsgi:app", env={"BOTKIT_DEV": "1"}, workers=1, threads=4) as server:
        yield server


def dev_env(**extra: str | None) -> dict[str, str | None]:
    env: dict[str, str | None] = {
        "STREAM_API_KEY": None,
        "STREAM_API_SECRET": None,
        "STREAM_API_KEYS": None,
        "BOTKIT_URL_PREFIX": None,
        "BOTKIT_URL": None,
    }
    env.update(extra)
    return env


def send(runner: CliRunner, server: GunicornServer, *args: str, **env: str | None) -> Result:
    return runner.invoke(
        cli, ["send", *args, "--url", server.url], env=dev_env(**env), catch_exceptions=False
    )


def test_send_gif_flow_with_clicks(runner: CliRunner, examples_server: GunicornServer) -> None:
    result = send(runner, examples_server, "/gif cats", "--click", "2", "--click", "1")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "signing with botkit's development key" in out
    first, shuffled, sent = out.split("\n--click ")
    assert first.count("HTTP 200") == shuffled.count("HTTP 200") == sent.count("HTTP 200") == 1
    assert "ephemeral message" in first
    assert "attachment 1 (giphy): cats" in first
    assert "image_url: data:image/svg+xml;base64" in first
    assert "[1] Send  image_action=send" in first
    assert "[2] Shuffle  image_action=shuffle" in first
    assert "[3] Cancel  image_action=cancel" in first
    assert "gif_pick=0" in first
    assert shuffled.startswith("2") and "gif_pick=1" in shuffled and "ephemeral" in shuffled
    assert sent.startswith("1") and "regular message" in sent and "[1]" not in sent


def test_send_click_by_label(runner: CliRunner, examples_server: GunicornServer) -> None:
    result = send(runner, examples_server, "/gif cats", "--click", "shuffle", "--click", "Send")
    assert result.exit_code == 0, result.output
    _, shuffled, sent = result.output.split("\n--click ")
    assert "ephemeral message" in shuffled and "gif_pick=1" in shuffled
    assert "regular message" in sent and "[1]" not in sent


def test_send_click_by_name_cancel_deletes(
    runner: CliRunner, examples_server: GunicornServer
) -> None:
    result = send(runner, examples_server, "/gif dogs", "--click", "image_action=cancel")
    assert result.exit_code == 0, result.output
    assert 'The message is deleted ({"message": null})' in result.output


def test_send_mml_form_and_validation(runner: CliRunner, examples_server: GunicornServer) -> None:
    result = send(runner, examples_server, "/ticket printer on fire")
    assert result.exit_code == 0, result.output
    assert "(mml form)" in result.output
    assert "mml_name=ticket" in result.output
    bad = send(runner, examples_server, "/ticket printer", "--click", "action=confirm&email=nope")
    assert "Please fix" in bad.output
    good = send(
        runner, examples_server, "/ticket printer", "--click", "action=confirm&email=me@example.com"
    )
    assert good.exit_code == 0, good.output
    assert "regular message" in good.output and "Ticket T-" in good.output


def test_send_repeat_shows_dedup(runner: CliRunner, examples_server: GunicornServer) -> None:
    result = send(runner, examples_server, "/gif cats", "--repeat", "3")
    assert result.exit_code == 0, result.output
    assert "delivery 1/3" in result.output
    assert "HTTP 200, outcome ok" in result.output
    assert result.output.count("outcome replayed, same answer") == 2


def test_send_raw_before_send_and_event(runner: CliRunner, examples_server: GunicornServer) -> None:
    raw = send(runner, examples_server, "/gif cats", "--raw")
    assert raw.exit_code == 0
    data = json.loads(raw.output[raw.output.index("{") :])
    assert data["message"]["type"] == "ephemeral"

    masked = send(runner, examples_server, "--before-send", "card 4242 4242 4242 4242")
    assert masked.exit_code == 0, masked.output
    assert "rewritten:" in masked.output and "**** **** **** 4242" in masked.output
    plain = send(runner, examples_server, "--before-send", "hello there")
    assert "passed unchanged" in plain.output
    refused = send(runner, examples_server, "--before-send", "--text", "a badword here")
    assert "rejected: Your message was not sent" in refused.output

    event = send(runner, examples_server, "--event", "message.new", "--text", "hi")
    assert event.exit_code == 0, event.output
    assert "HTTP 200" in event.output


#: A bot whose replies render badly on purpose, for the render check in ``botkit send``.
render_bot = Bot()


@render_bot.command("pic")
def render_pic(ctx: Any) -> Message:
    return Message.ephemeral(
        "Fill it in",
        attachments=[{"type": "image", "image_url": "data:image/png;base64,AA"}],
        mml='<mml name="f"><text>Fill it in</text><input name="q"/></mml>',
    )


@render_bot.command("ask")
def render_ask(ctx: Any) -> Message:
    note = "<text>Please fix: a</text>" if ctx.form_data else ""
    return Message.ephemeral(
        "Two numbers",
        mml=f'<mml name="ask">{note}<input name="a" value="1"/><input name="b" value="2"/>'
        '<button_list><button name="go" value="1">Go</button></button_list></mml>',
    )


@render_bot.command("plain")
def render_plain(ctx: Any) -> str:
    return "hello"


def make_render_app() -> Any:
    """gunicorn's app factory (``test_cli:make_render_app()``)."""
    return render_bot.create_app()


def test_send_prints_the_render_warnings_of_both_lines(runner: CliRunner) -> None:
    app = "test_cli:make_render_app()"
    with GunicornServer(app, env={"BOTKIT_DEV": "1"}, workers=1, threads=2) as server:
        result = send(runner, server, "/pic")
        plain = send(runner, server, "/plain")
        raw = send(runner, server, "/pic", "--raw")
        redraw = send(runner, server, "/ask", "--click", "1")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "what Stream's clients will show differently" in out
    assert (
        "    [current, mml] rule 1: attachments[0].image_url is a data: URL: Stream's client "
        "replaces it with about:blank" in out
    )
    assert "    [current] rule 9: mml input 'q': the MML input 'q' is empty" in out
    assert "    [mml] rule 8: text: the message text repeats the MML's text" in out
    assert plain.exit_code == 0 and "hello" in plain.output
    assert "show differently" not in plain.output
    assert "show differently" not in raw.output  # --raw is the JSON only
    json.loads(raw.output[raw.output.index("{") :])
    assert redraw.exit_code == 0, redraw.output
    first, answer = redraw.output.split("\n--click ")
    assert "show differently" not in first
    assert "    [mml] rule 8: mml input 'a': the MML input 'a' now stands where 'b'" in answer


def test_send_errors(runner: CliRunner, examples_server: GunicornServer) -> None:
    wrong = send(runner, examples_server, "/gif cats", STREAM_API_KEY="k", STREAM_API_SECRET="s")
    assert wrong.exit_code == 1
    assert "HTTP 401 (outcome: rejected-signature)" in wrong.output
    assert "The bot refused the signature" in wrong.output

    closed = f"http://127.0.0.1:{find_free_port()}"
    down = runner.invoke(cli, ["send", "/gif cats", "--url", closed], env=dev_env())
    assert down.exit_code == 1
    assert f"cannot reach {closed}: is the bot running?" in down.output
    assert "Traceback" not in down.output

    for args, message in [
        (["gif cats"], 'give a command starting with "/"'),
        (["/gif cats", "--click", "9"], "--click 9: no such button"),
        (
            ["/gif cats", "--click", "nonsense"],
            "no button with that label; the buttons are [1] Send",
        ),
        (["/gif cats", "--channel", "general"], "a cid looks like type:id"),
        (["--before-send"], "--before-send needs the message text"),
    ]:
        result = send(runner, examples_server, *args)
        assert result.exit_code != 0, args
        assert message in result.output, (args, result.output)


def test_send_subprocess_whole_gif_flow(examples_server: GunicornServer) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STREAM_", "BOTKIT_"))}
    out = subprocess.run(
        [
            BOTKIT,
            "send",
            "/gif party",
            "--url",
            examples_server.url,
            "--click",
            "2",
            "--click",
            "1",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("HTTP 200") == 3
    assert "regular message" in out.stdout.split("--click 1")[1]
    assert "development key" in out.stderr


def test_buttons_of_reads_attachments_and_mml() -> None:
    msg = Message.ephemeral(
        "pick",
        mml='<mml name="rate"><number name="stars" value="3"/><input name="c"/>'
        '<button name="action" value="ok">Fine &amp; good</button>'
        '<button url="https://x.example">Link</button></mml>',
    ).merge_into({"id": "m1", "text": ""})
    buttons = buttons_of(msg)
    assert [(b.label, b.form_data) for b in buttons] == [
        ("Fine & good", {"stars": "3", "c": "", "mml_name": "rate", "action": "ok"})
    ]


# -- sign -----------------------------------------------------------------------------------------


def test_sign_prints_headers_and_a_working_curl(
    runner: CliRunner, examples_server: GunicornServer, tmp_path: Any
) -> None:
    from botkit.testing import command_payload, encode

    body = encode(command_payload("/gif coffee"))
    path = tmp_path / "body.json"
    path.write_bytes(body)
    result = runner.invoke(cli, ["sign", str(path), "--url", examples_server.url], env=dev_env())
    assert result.exit_code == 0, result.output
    lines = dict(
        line.split(": ", 1) for line in result.output.splitlines() if line.startswith("X-")
    )
    assert lines["X-Api-Key"] == DEV_KEY
    assert lines["X-Signature"] == sign(DEV_SECRET, body)
    assert lines["X-Webhook-Attempt"] == "1"
    assert len(lines["X-Webhook-Id"]) == 36
    assert f"{examples_server.url}{PREFIX}/custom-commands?type=gif" in result.output
    curl = result.output[result.output.index("curl ") :]
    if shutil.which("curl") is None:
        pytest.skip("curl not installed")
    answer = subprocess.run(
        ["sh", "-c", curl.split("\n(")[0]], capture_output=True, text=True, timeout=30
    )
    assert json.loads(answer.stdout)["message"]["type"] == "ephemeral"


def test_sign_stdin_with_real_credentials(runner: CliRunner) -> None:
    body = b'{"type": "message.new"}'
    env = {"STREAM_API_KEY": "key1", "STREAM_API_SECRET": "sec1", "STREAM_API_KEYS": None}
    result = runner.invoke(cli, ["sign", "-"], input=body, env=env)
    assert result.exit_code == 0
    assert f"X-Signature: {sign('sec1', body)}" in result.output
    assert "sec1" not in result.output.replace(sign("sec1", body), "")
    assert f"{PREFIX}/push" in result.output and "--data-binary @-" in result.output
    assert "development key" not in result.output


def test_sign_missing_file(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["sign", "/no/such/file.json"])
    assert result.exit_code == 2
    assert "does not exist" in result.output


# -- help, run, worker, playground ------------------------------------------------------------------


@pytest.mark.parametrize(
    "command", ["routes", "sync", "send", "sign", "run", "worker", "playground"]
)
def test_every_command_has_help_with_an_example(runner: CliRunner, command: str) -> None:
    result = runner.invoke(cli, [command, "--help"])
    assert result.exit_code == 0
    assert "Example" in result.output and "botkit" in result.output


def test_help_as_a_subprocess() -> None:
    out = subprocess.run([BOTKIT, "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    assert "sync" in out.stdout and "send" in out.stdout


def test_run_serves_the_bot_with_reload(tmp_path: Any) -> None:
    port = find_free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STREAM_", "BOTKIT_"))}
    env["BOTKIT_STORE"] = f"sqlite:///{tmp_path}/store.db"
    with open(tmp_path / "run.log", "wb") as log:
        process = subprocess.Popen(
            [BOTKIT, "--app", "examples.bot:bot", "run", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert process.poll() is None, (tmp_path / "run.log").read_text()
                assert time.monotonic() < deadline, (tmp_path / "run.log").read_text()
                time.sleep(0.1)
        result = CliRunner().invoke(
            cli, ["send", "/gif cats", "--url", f"http://127.0.0.1:{port}"], env=dev_env()
        )
        assert result.exit_code == 0, result.output
        assert "ephemeral message" in result.output
        assert "Restarting with" in (tmp_path / "run.log").read_text()  # the reloader
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


def test_worker_needs_a_huey_queue(runner: CliRunner) -> None:
    for value in (None, "thread://"):
        result = invoke(runner, ["worker"], full_bot, env={"BOTKIT_QUEUE": value})
        assert result.exit_code == 1
        assert "botkit worker needs BOTKIT_QUEUE set to a huey queue" in result.output


def test_worker_and_playground_call_their_runners(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    import botkit.adapters.playground
    import botkit.runtime.worker

    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(
        botkit.runtime.worker,
        "run_consumer",
        lambda bot, url, workers: calls.append((bot, url, workers)),
    )
    monkeypatch.setattr(
        botkit.adapters.playground,
        "run_playground",
        lambda bot, host, port: calls.append((bot, host, port)),
    )
    url = "huey+sqlite:///tmp/q.db"
    result = invoke(runner, ["worker", "-w", "3"], full_bot, env={"BOTKIT_QUEUE": url})
    assert result.exit_code == 0, result.output
    result = invoke(runner, ["playground", "--port", "9999"], full_bot)
    assert result.exit_code == 0, result.output
    assert calls == [(full_bot, url, 3), (full_bot, "127.0.0.1", 9999)]


def test_bad_log_format_is_a_clear_error(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["routes"], env={"BOTKIT_LOG_FORMAT": "xml"})
    assert result.exit_code == 1
    assert "BOTKIT_LOG_FORMAT='xml'" in result.output
