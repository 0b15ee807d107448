"""The playground: its JSON API through Flask's test client, and the page in real Chromium."""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any
from urllib.parse import urlsplit

import pytest
from browser import browser, page, wsgi_server  # noqa: F401
from flask import Response

from botkit import Action, Attachment, Bot, Config, Message
from botkit import mml as m
from botkit.adapters.playground import create_playground_app
from botkit.core.config import DEV_API_KEY, DEV_API_SECRET
from botkit.core.render import LINES, check_reply, check_update
from botkit.core.signing import KeyRing, sign
from botkit.testing import encode

KEY, SECRET = "pg-key", "pg-secret"


def make_config(**overrides: Any) -> Config:
    fields: dict[str, Any] = {
        "keyring": KeyRing({KEY: (SECRET,)}),
        "store_url": "memory://",
        "playground": True,
    }
    fields.update(overrides)
    return Config(**fields)


@pytest.fixture
def small_bot() -> tuple[Bot, list[dict[str, Any]], threading.Event]:
    """A bot with a command with buttons, a rewriting/rejecting hook and a push handler."""
    bot = Bot()
    events: list[dict[str, Any]] = []
    pushed = threading.Event()

    @bot.command("roll", description="Roll a die", args="[sides]")
    def roll(ctx: Any) -> Message:
        return Message.ephemeral(
            "You rolled 4",
            attachments=[
                Attachment(
                    type="text",
                    title="Roll",
                    title_link="https://example.com/roll",
                    actions=[
                        Action.button("roll_action", "keep", "Keep", style="primary"),
                        Action.button("roll_action", "drop", "Drop"),
                    ],
                )
            ],
        )

    @roll.action("roll_action", "keep")
    def keep(ctx: Any) -> Message:
        return Message.publish(f"{ctx.user_id} kept a 4")

    @roll.action("roll_action", "drop")
    def drop(ctx: Any) -> Message:
        return Message.delete()

    @bot.before_send
    def hook(ctx: Any) -> Any:
        if "secret" in ctx.text:
            return ctx.reject("No secrets here")
        if ctx.text.startswith("shout "):
            return ctx.text[6:].upper()
        return None

    @bot.on("message.new")
    def on_new(event: Any) -> None:
        events.append(event.data)
        pushed.set()

    return bot, events, pushed


@pytest.fixture
def api(small_bot: tuple[Bot, Any, Any]) -> Any:
    bot = small_bot[0]
    app = bot.create_app(make_config())
    return app.test_client()


def post(client: Any, path: str, body: Any) -> Any:
    return client.post(f"/playground/api/{path}", json=body)


def assert_signed(call: dict[str, Any]) -> None:
    """The request the panel shows is exactly what was signed and sent."""
    headers = call["request"]["headers"]
    assert headers["X-Api-Key"] == KEY
    assert headers["X-Signature"] == sign(SECRET, encode(call["request"]["body"]))
    assert headers["X-Webhook-Id"]
    assert isinstance(call["latency_ms"], int | float)


# -- mounting -------------------------------------------------------------------------------


def test_not_mounted_without_botkit_playground(small_bot: Any) -> None:
    config = Config.from_env({"BOTKIT_DEV": "1", "BOTKIT_STORE": "memory://"})
    client = small_bot[0].create_app(config).test_client()
    assert client.get("/playground").status_code == 404
    assert client.get("/playground/api/commands").status_code == 404
    assert post(client, "command", {"text": "/roll"}).status_code == 404


def test_mounted_with_botkit_playground_and_warns(
    small_bot: Any, caplog: pytest.LogCaptureFixture
) -> None:
    env = {"BOTKIT_DEV": "1", "BOTKIT_STORE": "memory://", "BOTKIT_PLAYGROUND": "1"}
    with caplog.at_level(logging.WARNING, logger="botkit"):
        client = small_bot[0].create_app(Config.from_env(env)).test_client()
    assert any("playground is mounted" in r.getMessage() for r in caplog.records)
    assert not any(
        DEV_API_SECRET in r.getMessage() for r in caplog.records if "playground" in r.getMessage()
    )
    page_ = client.get("/playground")
    assert page_.status_code == 200
    html = page_.get_data(as_text=True)
    assert "/playground/static/playground.js" in html
    assert client.get("/playground/static/render.js").status_code == 200
    assert client.get("/playground/static/playground.css").status_code == 200


def test_create_playground_app_uses_dev_credentials(
    small_bot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("STREAM_API_KEY", "STREAM_API_SECRET", "STREAM_API_KEYS", "BOTKIT_PLAYGROUND"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BOTKIT_STORE", "memory://")
    client = create_playground_app(small_bot[0]).test_client()
    info = client.get("/playground/api/commands").get_json()
    assert info["api_key"] == DEV_API_KEY
    assert info["dev_credentials"] is True


# -- the API ----------------------------------------------------------------------------------


def test_commands_lists_name_description_args(api: Any) -> None:
    info = api.get("/playground/api/commands").get_json()
    assert {"name": "roll", "description": "Roll a die", "args": "[sides]"} in info["commands"]
    assert all(set(c) == {"name", "description", "args"} for c in info["commands"])
    assert info["api_key"] == KEY
    assert info["dev_credentials"] is False


def test_command_signs_and_sends_through_the_webhook_route(api: Any) -> None:
    call = post(api, "command", {"text": "/roll 6", "user": "bob"}).get_json()
    assert call["request"]["method"] == "POST"
    assert call["request"]["path"] == "/webhooks/stream/custom-commands?type=roll"
    assert_signed(call)
    sent = call["request"]["body"]["message"]
    assert (sent["command"], sent["args"], sent["user"]["id"]) == ("roll", "6", "bob")
    assert call["response"]["status"] == 200
    reply = call["response"]["body"]["message"]
    assert reply["type"] == "ephemeral"
    assert reply["id"] == sent["id"]
    assert [a["text"] for a in reply["attachments"][0]["actions"]] == ["Keep", "Drop"]


def test_webhooks_are_addressed_to_the_host_the_page_came_from(small_bot: Any) -> None:
    """A bot that builds URLs from its request (pictures it serves) gets the page's host."""
    app = small_bot[0].create_app(make_config())
    seen: list[tuple[str, str, str]] = []
    inner = app.wsgi_app

    def recorder(environ: Any, start_response: Any) -> Any:
        if environ["PATH_INFO"].startswith("/webhooks/"):
            seen.append((environ["wsgi.url_scheme"], environ["HTTP_HOST"], environ["PATH_INFO"]))
        return inner(environ, start_response)

    app.wsgi_app = recorder  # type: ignore[method-assign]
    client = app.test_client()
    call = client.post(
        "/playground/api/command", json={"text": "/roll"}, base_url="https://127.0.0.1:5555/"
    ).get_json()
    assert call["response"]["status"] == 200
    assert seen == [("https", "127.0.0.1:5555", "/webhooks/stream/custom-commands")]


def test_action_publishes_and_deletes(api: Any) -> None:
    msg = post(api, "command", {"text": "/roll"}).get_json()["response"]["body"]["message"]
    call = post(
        api, "action", {"message": msg, "form_data": {"roll_action": "keep"}, "user": "alice"}
    ).get_json()
    assert_signed(call)
    assert call["request"]["body"]["form_data"] == {"roll_action": "keep"}
    assert call["request"]["body"]["message"]["id"] == msg["id"]
    assert call["response"]["body"]["message"]["type"] == "regular"
    assert call["response"]["body"]["message"]["text"] == "alice kept a 4"

    call = post(api, "action", {"message": msg, "form_data": {"roll_action": "drop"}}).get_json()
    assert call["response"] == {"status": 200, "body": {"message": None}}


def test_before_send_passes_rewrites_and_rejects(api: Any) -> None:
    call = post(api, "before-send", {"text": "hello"}).get_json()
    assert call["request"]["path"] == "/webhooks/stream/before-message-send"
    assert_signed(call)
    assert call["response"]["body"]["message"]["text"] == "hello"
    call = post(api, "before-send", {"text": "shout hi"}).get_json()
    assert call["response"]["body"]["message"]["text"] == "HI"
    call = post(api, "before-send", {"text": "my secret"}).get_json()
    assert call["response"]["body"]["message"]["type"] == "error"
    assert call["response"]["body"]["message"]["text"] == "No secrets here"


def test_event_pushes_message_new(api: Any, small_bot: Any) -> None:
    _, events, pushed = small_bot
    msg = {"id": "alice-1", "text": "hi", "type": "regular", "user": {"id": "alice"}}
    call = post(api, "event", {"type": "message.new", "message": msg}).get_json()
    assert call["request"]["path"] == "/webhooks/stream/push"
    assert_signed(call)
    assert call["response"]["status"] == 200
    assert pushed.wait(10), "the push handler did not run"
    assert events[0]["type"] == "message.new"
    assert events[0]["message"]["id"] == "alice-1"


@pytest.mark.parametrize(
    ("path", "body", "error"),
    [
        ("command", None, "JSON"),
        ("command", [1, 2], "JSON object"),
        ("command", {}, "'text'"),
        ("command", {"text": "hello"}, "starts with '/'"),
        ("command", {"text": "/ x"}, "starts with '/'"),
        ("command", {"text": "/roll", "user": ""}, "'user'"),
        ("command", {"text": "/roll", "user": {"id": 5}}, "'user'"),
        ("command", {"text": "/" + "x" * 6000}, "longer than"),
        ("action", {"form_data": {"a": "b"}}, "'message'"),
        ("action", {"message": {"id": "m1"}}, "'form_data'"),
        ("action", {"message": {"id": "m1"}, "form_data": {"a": {"b": 1}}}, "must be a string"),
        ("action", {"message": {"id": "m1", "command": 3}, "form_data": {"a": "b"}}, "command"),
        ("before-send", {"text": "   "}, "'text'"),
        ("event", {"type": ""}, "'type'"),
        ("event", {"type": "message.new", "message": "hi"}, "'message'"),
    ],
)
def test_bad_input_is_a_clear_400(api: Any, path: str, body: Any, error: str) -> None:
    if body is None:
        response = api.post(f"/playground/api/{path}", data="text=/roll")
    else:
        response = api.post(
            f"/playground/api/{path}", data=json.dumps(body), content_type="application/json"
        )
    assert response.status_code == 400
    assert error in response.get_json()["error"]


def test_broken_json_is_a_400_not_a_500(api: Any) -> None:
    response = api.post(
        "/playground/api/command", data="{not json", content_type="application/json"
    )
    assert response.status_code == 400
    assert "error" in response.get_json()


def test_replies_carry_the_render_checks_warnings_for_both_lines(api: Any) -> None:
    call = post(api, "command", {"text": "/roll 6"}).get_json()
    reply = call["response"]["body"]["message"]
    assert set(call["warnings"]) == set(LINES)
    for line in LINES:
        assert call["warnings"][line] == [asdict(w) for w in check_reply(reply, line)]
    # /roll has a title_link card with buttons and no text: nothing to warn about
    assert call["warnings"] == {"current": [], "mml": []}

    bot = Bot()

    @bot.command("pic")
    def pic(ctx: Any) -> Message:
        return Message.ephemeral(
            "A picture", attachments=[{"type": "image", "image_url": "data:image/png;base64,AA"}]
        )

    client = bot.create_app(make_config()).test_client()
    call = post(client, "command", {"text": "/pic"}).get_json()
    for line in LINES:
        assert [(w["rule"], w["where"]) for w in call["warnings"][line]] == [
            (1, "attachments[0].image_url")
        ]
        assert set(call["warnings"][line][0]) == {"rule", "code", "text", "where"}


def test_action_answers_carry_the_redraw_check_too() -> None:
    bot = Bot()

    def form(*above: Any) -> str:
        return m.mml(*above, m.input_("a"), m.input_("b"), m.button("Go", name="x", value="go"))

    @bot.command("f")
    def f(ctx: Any) -> Message:
        return Message.ephemeral("F", mml=form(m.text("Fix it")) if ctx.is_action else form())

    client = bot.create_app(make_config()).test_client()
    msg = post(client, "command", {"text": "/f"}).get_json()["response"]["body"]["message"]
    call = post(client, "action", {"message": msg, "form_data": {"x": "go"}}).get_json()
    after = call["response"]["body"]["message"]
    shifted = [asdict(w) for w in check_update(msg, after, "mml")]
    assert shifted and all(w["code"] == "input-shifted" for w in shifted)
    assert call["warnings"]["mml"] == [asdict(w) for w in check_reply(after, "mml")] + shifted
    assert call["warnings"]["current"] == [asdict(w) for w in check_reply(after, "current")]


def test_deleted_or_failed_replies_carry_no_warnings(api: Any) -> None:
    msg = post(api, "command", {"text": "/roll"}).get_json()["response"]["body"]["message"]
    call = post(api, "action", {"message": msg, "form_data": {"roll_action": "drop"}}).get_json()
    assert call["response"]["body"] == {"message": None}
    assert "warnings" not in call
    call = post(api, "before-send", {"text": "hello"}).get_json()
    assert call["warnings"] == {"current": [], "mml": []}


# -- the page, in Chromium ------------------------------------------------------------------

#: A 1x1 PNG the test apps serve on loopback: an http picture the page can load.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
SVG_DATA = (
    "data:image/svg+xml;base64,"
    + base64.b64encode(b"<svg xmlns='http://www.w3.org/2000/svg'/>").decode()
)


def serve_png(app: Any) -> None:
    app.add_url_rule("/pic.png", "pic_png", lambda: Response(PNG, mimetype="image/png"))


def loopback_only(page: Any) -> list[str]:
    """Abort and record every request the page makes off loopback (none should leave)."""
    left: list[str] = []

    def route(r: Any) -> None:
        host = urlsplit(r.request.url).hostname
        if r.request.url.startswith("data:") or host in ("127.0.0.1", "localhost"):
            r.continue_()
        else:
            left.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    return left


def open_page(page: Any, url: str, line: str | None = None) -> list[str]:
    """Load the playground (on ``line`` if given); returns the list page errors go to."""
    from playwright.sync_api import expect

    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(url + "/playground" + (f"?line={line}" if line else ""))
    expect(page.locator("body")).to_have_attribute("data-ready", "1")
    if line:
        expect(page.locator("#line")).to_have_value(line)
    return errors


def send(page: Any, text: str) -> Any:
    """Type ``text`` in the composer and send it; the locator of the last message."""
    count = page.locator("li.msg").count()
    page.locator("#input").fill(text)
    page.locator("#input").press("Enter")
    from playwright.sync_api import expect

    expect(page.locator("li.msg")).to_have_count(count + 1)
    key = page.locator("li.msg").last.get_attribute("data-key")
    return page.locator(f'li.msg[data-key="{key}"]')


def picture_url(locator: Any) -> str:
    """The URL a message's picture was given: the <img> src, or the placeholder's."""
    return str(locator.evaluate("n => n.tagName === 'IMG' ? n.getAttribute('src') : n.dataset.url"))


def shown_warnings(item: Any) -> list[str]:
    return [t.strip() for t in item.locator(".msg-warning").all_inner_texts()]


def expected_warnings(message: dict[str, Any], line: str) -> list[str]:
    return [f"rule {w.rule} {w.text}" for w in check_reply(message, line)]


def last_reply(page: Any) -> dict[str, Any]:
    """The message of the latest call's response, as the panel shows it."""
    body = page.locator(".call").first.locator(".response-body").inner_text()
    message: dict[str, Any] = json.loads(body)["message"]
    return message


@pytest.fixture
def rules_bot() -> Bot:
    """Replies built to hit each rule of the reference (stream-react-client.md)."""
    bot = Bot()
    base = {"url": ""}  # set to the server's URL once it runs

    def png() -> str:
        return base["url"] + "/pic.png"

    bot.base = base  # type: ignore[attr-defined]

    @bot.command("pics", description="rule 1")
    def pics(ctx: Any) -> Message:
        return Message.ephemeral(
            "Pictures",
            attachments=[
                {"type": "image", "image_url": SVG_DATA},
                {"type": "image", "image_url": png()},
                {
                    "type": "text",
                    "title": "A card",
                    "title_link": "javascript:alert(1)",
                    "thumb_url": "vbscript:msgbox(1)",
                },
            ],
        )

    @bot.command("form", description="rules 8 and 9")
    def form(ctx: Any) -> Message:
        if ctx.is_action:
            return Message.ephemeral(json.dumps(ctx.form_data, sort_keys=True), mml="")
        return Message.ephemeral(
            "Fill in the form below",
            mml=m.mml(
                m.input_("email", label="Email"),
                m.button_list(m.button("Send", name="action", value="send")),
                name="signup",
            ),
            attachments=[
                Attachment(type="text", title="Sign up", title_link=png(), text=""),
            ],
        )

    @bot.command("keyed", description="mml-react keys inputs by position")
    def keyed(ctx: Any) -> Message:
        problem = [m.text("⚠ first is required")] if ctx.is_action else []
        return Message.ephemeral(
            mml=m.mml(
                m.text("Two values"),
                *problem,
                m.input_("first", label="First"),
                m.input_("second", label="Second", value="two"),
                m.button_list(m.button("Save", name="action", value="save")),
                name="keyed",
            )
        )

    @bot.command("twice", description="rule 3")
    def twice(ctx: Any) -> Message:
        if ctx.is_action:
            return Message.ephemeral(json.dumps(ctx.form_data, sort_keys=True))
        return Message.ephemeral(
            "Pick a colour",
            attachments=[
                Attachment(
                    type="text",
                    title="Colours",
                    title_link=png(),
                    text="printer on fire",
                    actions=[
                        Action.button("colour", "red", "Red", style="primary"),
                        Action.button("colour", "blue", "Blue"),
                    ],
                )
            ],
        )

    @bot.command("unsupported", description="rule 2")
    def unsupported(ctx: Any) -> Message:
        return Message.ephemeral(
            "Buttons without a link",
            attachments=[
                Attachment(type="text", title="Hidden", actions=[Action.button("x", "y", "Go")])
            ],
        )

    @bot.command("gifs", description="rule 5")
    def gifs(ctx: Any) -> Message:
        rendition = {"url": png(), "width": "1", "height": "1"}
        return Message.ephemeral(
            attachments=[
                Attachment(
                    type="giphy",
                    title=ctx.args,
                    title_link=png(),
                    image_url=png(),
                    giphy={"fixed_height": rendition, "original": rendition},
                    actions=[
                        Action.button("image_action", "send", "Send", style="primary"),
                        Action.button("image_action", "cancel", "Cancel"),
                    ],
                )
            ]
        )

    @gifs.action("image_action", "send")
    def gif_send(ctx: Any) -> Message:
        return Message.publish(text="")

    @bot.command("fail", description="rule 6")
    def fail(ctx: Any) -> Message:
        return Message.error("That did not work")

    @bot.command("quiet", description="rule 6")
    def quiet(ctx: Any) -> Message:
        return Message.ephemeral("Only for you, though the client says nothing")

    return bot


@pytest.fixture
def rules_server(rules_bot: Bot) -> Iterator[str]:
    app = create_playground_app(rules_bot, make_config())
    serve_png(app)
    with wsgi_server(app) as url:
        rules_bot.base["url"] = url  # type: ignore[attr-defined]
        yield url


class LinePage:
    """The playground on one client line, serving ``rules_bot``."""

    def __init__(self, page: Any, url: str, line: str) -> None:
        self.page, self.url, self.line = page, url, line
        self.left = loopback_only(page)
        self.errors = open_page(page, url, line)

    def send(self, text: str) -> Any:
        return send(self.page, text)


@pytest.fixture(params=LINES)
def line_page(page: Any, rules_server: str, request: Any) -> Iterator[LinePage]:
    """Each test using it runs on both lines, and ends with no page error nor traffic off
    loopback."""
    on_line = LinePage(page, rules_server, request.param)
    yield on_line
    assert on_line.errors == []
    assert on_line.left == []


@pytest.mark.slow
def test_rule1_refused_urls_show_a_placeholder_with_the_reason(line_page: LinePage) -> None:
    from playwright.sync_api import expect

    page, url = line_page.page, line_page.url
    item = line_page.send("/pics")
    images = item.locator(".att-image")
    placeholder = images.nth(0).locator(".img-placeholder")
    expect(placeholder).to_contain_text("data: URL refused")
    expect(placeholder).to_contain_text("about:blank")
    assert picture_url(placeholder) == SVG_DATA
    expect(images.nth(0).locator("img")).to_have_count(0)
    # an http picture is shown, and loads
    expect(images.nth(1).locator("img")).to_have_attribute("src", url + "/pic.png")
    loaded = (
        "i => new Promise(r => i.complete ? r(i.naturalWidth)"
        " : (i.onload = i.onerror = () => r(i.naturalWidth)))"
    )
    assert images.nth(1).locator("img").evaluate(loaded) == 1
    card = item.locator(".att-card")
    expect(card.locator(".img-placeholder")).to_contain_text("vbscript: URL refused")
    expect(card.locator("a")).to_have_count(0)
    expect(card.locator(".att-link-refused")).to_contain_text("javascript: URL refused")
    assert (
        page.locator(".messages img[src^='data:'], .messages a[href^='javascript:']").count() == 0
    )
    # the render check's warnings for this line, beside the reply
    assert shown_warnings(item) == expected_warnings(last_reply(page), line_page.line)
    assert any(w.startswith("rule 1 ") for w in shown_warnings(item))


@pytest.mark.slow
def test_rules8_9_mml_only_on_the_mml_line_and_there_with_text_and_card(
    line_page: LinePage,
) -> None:
    from playwright.sync_api import expect

    page = line_page.page
    item = line_page.send("/form")
    expect(item.locator(".msg-text")).to_have_text("Fill in the form below")
    expect(item.locator(".att-card .att-title")).to_have_text("Sign up")
    assert shown_warnings(item) == expected_warnings(last_reply(page), line_page.line)
    if line_page.line == "current":
        expect(item.locator("form.mml, .mml-field, input")).to_have_count(0)
        expect(item.locator(".mml-not-shown")).to_have_text(
            "MML is not shown by the current client"
        )
        return
    expect(item.locator("form.mml[data-mml-name='signup']")).to_be_visible()
    expect(item.locator(".mml-not-shown")).to_have_count(0)
    item.locator("input[name='email']").fill("a@example.com")
    item.get_by_role("button", name="Send").click()
    body = page.locator('.call[data-kind="action"]').first.locator(".request-body")
    expect(body).to_contain_text('"mml_name": "signup"')
    sent = json.loads(body.inner_text())["form_data"]
    assert sent == {"mml_name": "signup", "email": "a@example.com", "action": "send"}


@pytest.mark.slow
def test_rules3_4_text_twice_with_buttons_and_a_click_sends_one_pair(
    line_page: LinePage,
) -> None:
    from playwright.sync_api import expect

    item = line_page.send("/twice")
    expect(item.locator(".att-card .att-text")).to_have_text("printer on fire")
    expect(item.locator(".att-actions .att-actions-text")).to_have_text("printer on fire")
    expect(item.locator(".att-actions button")).to_have_text(["Red", "Blue"])
    item.get_by_role("button", name="Blue").click()
    expect(item.locator(".msg-text")).to_have_text('{"colour": "blue"}')
    action = line_page.page.locator('.call[data-kind="action"]').first.locator(".request-body")
    assert json.loads(action.inner_text())["form_data"] == {"colour": "blue"}


@pytest.mark.slow
def test_rule2_unsupported_attachment(line_page: LinePage) -> None:
    from playwright.sync_api import expect

    item = line_page.send("/unsupported")
    box = item.locator(".attachment")
    expect(box).to_have_text("Unsupported attachment")
    expect(box.locator("button")).to_have_count(0)
    expect(item.locator(".msg-text")).to_have_text("Buttons without a link")


@pytest.mark.slow
def test_rule5_giphy_hides_text_badge_and_mark_on_the_preview(line_page: LinePage) -> None:
    from playwright.sync_api import expect

    item = line_page.send("/gifs cats")
    expect(item.locator(".msg-text")).to_be_hidden()
    expect(item.locator(".att-giphy-badge")).to_have_text("GIPHY")
    expect(item.locator(".only-you")).to_have_text("Only visible to you")
    expect(item.locator(".att-giphy img")).to_have_attribute("src", line_page.url + "/pic.png")
    item.get_by_role("button", name="Send").click()
    expect(item).to_have_attribute("data-type", "regular")
    expect(item.locator(".att-giphy img")).to_have_count(1)
    expect(item.locator(".att-giphy-badge")).to_have_count(0)
    expect(item.locator(".only-you")).to_have_count(0)


@pytest.mark.slow
def test_rule6_error_and_ephemeral_styling(line_page: LinePage) -> None:
    from playwright.sync_api import expect

    quiet = line_page.send("/quiet")
    expect(quiet).to_have_attribute("data-type", "ephemeral")
    expect(quiet.locator(".only-you")).to_have_count(0)
    error = line_page.send("/fail")
    expect(error).to_have_attribute("data-type", "error")
    expect(error.locator(".msg-text")).to_have_text("That did not work")
    if line_page.line == "mml":
        expect(error.locator(".msg-error-label")).to_have_text("!Error · Unsent")
    else:
        expect(error.locator(".msg-error-label")).to_have_count(0)
    looks = (
        "b => { const s = getComputedStyle(b);"
        " return [s.backgroundColor, s.color, s.borderStyle, s.borderColor]; }"
    )
    assert error.locator(".bubble").evaluate(looks) == quiet.locator(".bubble").evaluate(looks)
    assert error.locator(".msg-text").evaluate("t => getComputedStyle(t).color") == (
        quiet.locator(".msg-text").evaluate("t => getComputedStyle(t).color")
    )


@pytest.mark.slow
def test_masked_card_number_is_not_formatted(line_page: LinePage) -> None:
    from playwright.sync_api import expect

    item = line_page.send("**** **** **** 4242")
    expect(item.locator(".msg-text")).to_have_text("**** **** **** 4242")
    expect(item.locator(".msg-text strong, .msg-text em")).to_have_count(0)


@pytest.mark.slow
def test_mml_inputs_are_keyed_by_position_as_mml_react_does(page: Any, rules_server: str) -> None:
    from playwright.sync_api import expect

    errors = open_page(page, rules_server, "mml")
    item = send(page, "/keyed")
    form = item.locator("form.mml[data-mml-name='keyed']")
    expect(form.locator("input[name='second']")).to_have_value("two")
    form.locator("input[name='second']").fill("typed")
    form.get_by_role("button", name="Save").click()
    expect(item.locator(".mml-text")).to_have_text(["Two values", "⚠ first is required"])
    sent = page.locator('.call[data-kind="action"]').first.locator(".request-body")
    assert json.loads(sent.inner_text())["form_data"] == {
        "mml_name": "keyed",
        "first": "",
        "second": "typed",
        "action": "save",
    }
    # The error line took the inputs' places: each input now shows the state of the
    # element that was at its position before, as in the 13.1 client.
    form = item.locator("form.mml[data-mml-name='keyed']")
    expect(form.locator("input[name='first']")).to_have_value("typed")
    expect(form.locator("input[name='second']")).to_have_value("two")
    # and the render check says so beside the reply
    call = page.locator('.call[data-kind="action"]').first
    before = json.loads(call.locator(".request-body").inner_text())["message"]
    after = json.loads(call.locator(".response-body").inner_text())["message"]
    expected = check_reply(after, "mml") + check_update(before, after, "mml")
    assert any(w.code == "input-shifted" for w in expected)
    assert shown_warnings(item) == [f"rule {w.rule} {w.text}" for w in expected]
    # A second error keeps the layout: nothing moves, the typed values stay.
    form.locator("input[name='first']").fill("one")
    form.get_by_role("button", name="Save").click()
    expect(page.locator('.call[data-kind="action"]')).to_have_count(2)
    expect(form.locator("input[name='first']")).to_have_value("one")
    # Switching lines draws afresh, from the MML alone.
    page.locator("#line").select_option("current")
    expect(item.locator("form.mml")).to_have_count(0)
    page.locator("#line").select_option("mml")
    expect(item.locator("input[name='first']")).to_have_value("")
    assert errors == []


@pytest.mark.slow
def test_the_line_is_kept_across_reloads(page: Any, rules_server: str) -> None:
    from playwright.sync_api import expect

    open_page(page, rules_server)
    expect(page.locator("#line")).to_have_value("current")  # the default
    page.locator("#line").select_option("mml")
    assert "line=mml" in page.url
    page.goto(rules_server + "/playground")  # no query: the stored choice
    expect(page.locator("body")).to_have_attribute("data-ready", "1")
    expect(page.locator("#line")).to_have_value("mml")
    page.goto(rules_server + "/playground?line=current")  # the query wins
    expect(page.locator("body")).to_have_attribute("data-ready", "1")
    expect(page.locator("#line")).to_have_value("current")
    page.goto(rules_server + "/playground?line=bogus")
    expect(page.locator("body")).to_have_attribute("data-ready", "1")
    expect(page.locator("#line")).to_have_value("current")


#: Message text and what Stream's client (remark: CommonMark + GFM strikethrough) makes
#: of it; the cases come from the CommonMark spec's emphasis, code span and link sections.
MARKDOWN = [
    ("**** **** **** 4242", "**** **** **** 4242"),
    ("****-****-****-4242", "<strong><strong>-</strong></strong>-****-4242"),
    ("hello **team**, see `make run`", "hello <strong>team</strong>, see <code>make run</code>"),
    ("a * foo bar*", "a * foo bar*"),
    ("foo*bar*", "foo<em>bar</em>"),
    ("_foo_bar", "_foo_bar"),
    ("foo_bar_", "foo_bar_"),
    ("**foo*", "*<em>foo</em>"),
    ("*foo**", "<em>foo</em>*"),
    ("***strong emph***", "<em><strong>strong emph</strong></em>"),
    ("*(*foo*)*", "<em>(<em>foo</em>)</em>"),
    ("__foo, __bar__, baz__", "<strong>foo, <strong>bar</strong>, baz</strong>"),
    ("_foo_bar_baz_", "<em>foo_bar_baz</em>"),
    ("*a `*` b*", "<em>a <code>*</code> b</em>"),
    ("`` a ` b ``", "<code>a ` b</code>"),
    ("`a", "`a"),
    ("~~gone~~ ~kept~", "<del>gone</del> ~kept~"),
    ("a\\*b\\*", "a*b*"),
    ("&amp; &copy; &nope;", "&amp; © &amp;nope;"),
    ("<b>bold?</b>", "&lt;b&gt;bold?&lt;/b&gt;"),
    ("x\n\ny\nz", "x<br><br>y<br>z"),
    ("*[foo*](https://x.org)", '*<a href="https://x.org">foo*</a>'),
    ("[js](javascript:alert(1))", "<span>js</span>"),
    (
        "see https://x.org/a_b_c. ok",
        'see <a href="https://x.org/a_b_c">https://x.org/a_b_c</a>. ok',
    ),
    ("```\ncode **x**\n```\nafter", "<pre><code>code **x**</code></pre>after"),
]


@pytest.mark.slow
def test_markdown_follows_commonmark(page: Any, rules_server: str) -> None:
    open_page(page, rules_server)
    rendered = page.evaluate(
        """cases => cases.map(text => {
            const box = document.createElement('div');
            box.append(BotkitMarkdown.markdown(text));
            box.querySelectorAll('a').forEach(a => { a.removeAttribute('target'); a.removeAttribute('rel'); });
            return box.innerHTML;
        })""",
        [text for text, _ in MARKDOWN],
    )
    assert list(zip([t for t, _ in MARKDOWN], rendered, strict=True)) == [
        (t, html) for t, html in MARKDOWN
    ]


def _check_example_reply(page: Any, item: Any, line: str) -> None:
    """The example's reply is drawn by the rules, and its warnings are the check's."""
    from playwright.sync_api import expect

    reply = last_reply(page)
    for picture in item.locator(".att-media > img, .att-media > .img-placeholder").all():
        url = picture_url(picture)
        if url.startswith(("http://", "https://")):
            expect(picture).to_have_attribute("src", url)
        else:
            expect(picture).to_have_class(re.compile("img-placeholder"))
    if reply.get("mml"):
        expect(item.locator("form.mml")).to_have_count(1 if line == "mml" else 0)
        expect(item.locator(".mml-not-shown")).to_have_count(0 if line == "mml" else 1)
    for i, att in enumerate(reply.get("attachments") or []):
        box = item.locator(".attachment").nth(i)
        if att.get("actions") and att.get("text") and att.get("title_link"):
            expect(box.locator(".att-actions-text")).to_have_text(att["text"])
    assert shown_warnings(item) == expected_warnings(reply, line)


@pytest.mark.slow
@pytest.mark.parametrize("line", LINES)
def test_example_bot_in_chromium(page: Any, line: str, tmp_path: Any) -> None:
    from playwright.sync_api import expect

    import examples.bot

    config = make_config(keyring=KeyRing({DEV_API_KEY: (DEV_API_SECRET,)}), dev_credentials=True)
    app = create_playground_app(examples.bot.bot, config)  # with /gif's pictures route
    left = loopback_only(page)
    with wsgi_server(app) as url:
        errors = open_page(page, url, line)
        composer = page.locator("#input")

        # completion of commands and their args
        composer.fill("/")
        suggestions = page.locator("#suggestions li")
        expect(suggestions.filter(has_text="/gif")).to_have_count(1)
        expect(suggestions.filter(has_text="/ticket")).to_have_count(1)
        expect(page.locator("#suggestions")).to_contain_text("[search terms]")
        composer.fill("/gi")
        composer.press("Tab")
        expect(composer).to_have_value("/gif ")
        expect(page.locator("#hint")).to_contain_text("/gif [search terms]")

        # /gif cats: the giphy preview, only visible to you, three buttons
        card = send(page, "/gif cats")
        expect(card).to_have_attribute("data-type", "ephemeral")
        expect(card.locator(".only-you")).to_have_text("Only visible to you")
        expect(card.locator(".att-giphy-badge")).to_have_text("GIPHY")
        expect(card.locator(".msg-text")).to_be_hidden()
        expect(card.locator(".att-actions button")).to_have_text(["Send", "Shuffle", "Cancel"])
        _check_example_reply(page, card, line)
        picture = card.locator(".att-giphy .att-media > *").first
        first = picture_url(picture)

        # Shuffle: same message, another picture
        card.get_by_role("button", name="Shuffle").click()
        expect(page.locator('.call[data-kind="action"]')).to_have_count(1)
        picture = card.locator(".att-giphy .att-media > *").first
        assert picture_url(picture) != first
        expect(card.locator(".att-actions button")).to_have_count(3)

        # Send: a regular message, no buttons, no mark, and a message.new push
        card.get_by_role("button", name="Send").click()
        expect(card).to_have_attribute("data-type", "regular")
        expect(card.locator(".att-actions button")).to_have_count(0)
        expect(card.locator(".only-you")).to_have_count(0)
        expect(page.locator('.call[data-kind="push"]').first).to_contain_text("message.new")

        # Cancel removes the preview ({"message": null})
        preview = send(page, "/gif dogs")
        expect(preview).to_have_attribute("data-type", "ephemeral")
        preview.get_by_role("button", name="Cancel").click()
        expect(preview).to_have_count(0)

        # /ticket and /remind, drawn by the line's rules
        for command in ("/ticket printer on fire", "/remind me 10 call mum"):
            item = send(page, command)
            expect(item).to_have_attribute("data-type", re.compile("ephemeral|error"))
            _check_example_reply(page, item, line)

        # the masking before-send hook: the masked number shows as the client shows it
        masked = send(page, "my card is 4242 4242 4242 4242")
        expect(masked.locator(".msg-text")).to_have_text("my card is **** **** **** 4242")
        expect(masked.locator(".badge--note")).to_have_text("rewritten by before-send")

        # a plain message goes through before-send into the channel
        plain = send(page, "hello **team**, see `make run`")
        expect(plain).to_have_attribute("data-type", "regular")
        expect(plain.locator(".msg-text strong")).to_have_text("team")
        expect(plain.locator(".msg-text code")).to_have_text("make run")

        # the side panel shows the signed request and the response
        latest = page.locator(".call").first
        expect(latest.locator(".headers")).to_contain_text("X-Signature: ")
        expect(latest.locator(".headers")).to_contain_text(f"X-Api-Key: {DEV_API_KEY}")
        command_call = page.locator('.call[data-kind="command"]').last
        expect(command_call).to_contain_text("/webhooks/stream/custom-commands?type=gif")
        expect(command_call.locator(".status")).to_have_text("200")

        # markup in user text is shown, never run
        item = send(page, "<img src=x onerror=alert(1)> <b>bold?</b>")
        expect(item).to_contain_text("<b>bold?</b>")
        assert page.locator(".messages img[src='x']").count() == 0

        page.screenshot(path=str(tmp_path / f"example-{line}.png"), full_page=True)
    assert (tmp_path / f"example-{line}.png").stat().st_size > 10_000
    assert errors == []
    assert left == []


EVERY_TAG = (
    '<mml name="rate" type="card">'
    "<text>How was it & why?</text>"
    "<md>**bold** and [docs](https://example.com/docs)</md>"
    '<icon name="star"/>'
    '<image src="{png}" alt="a picture"/>'
    '<number name="stars" value="3"/>'
    '<input name="comment" label="Comment" placeholder="Optional"/>'
    '<input name="token" type="hidden" value="h1"/>'
    '<scheduler name="when" selected="2030-01-02T03:04:00.000Z"/>'
    '<add_to_calendar title="Retro" start="2030-01-02T03:04:00Z" end="2030-01-02T04:04:00Z"/>'
    '<carousel><item width="120"><text>one</text></item><item><text>two</text></item></carousel>'
    '<row><col width="6"><text>left</text></col><col width="6" align="right"><text>right</text></col></row>'
    '<button_list><button name="action" value="submit">Submit</button>'
    '<button url="https://example.com/help">Help</button></button_list>'
    "</mml>"
)


@pytest.mark.slow
def test_every_mml_tag_and_attachment_in_chromium(page: Any) -> None:
    from playwright.sync_api import expect

    bot = Bot()
    base = {"url": ""}

    @bot.command("form", description="Every MML tag")
    def form(ctx: Any) -> Message:
        if ctx.is_action:
            return Message.ephemeral(json.dumps(ctx.form_data, sort_keys=True), mml="")
        broken = ctx.args == "broken"
        return Message.ephemeral(
            "A form",
            mml="<mml><column>x</column></mml>"
            if broken
            else EVERY_TAG.replace("{png}", base["url"] + "/pic.png"),
            attachments=[
                {
                    "type": "text",
                    "title": "Report",
                    "title_link": "javascript:alert(1)",
                    "text": "_all_ fields",
                    "color": "#ff0000",
                    "fields": [
                        {"title": "Owner", "value": "alice", "short": True},
                        {"title": "State", "value": "open", "short": True},
                    ],
                    "footer": "botkit",
                }
            ],
        )

    app = create_playground_app(bot, make_config())
    serve_png(app)
    left = loopback_only(page)
    with wsgi_server(app) as url:
        base["url"] = url
        errors = open_page(page, url, "mml")
        page.locator("#input").fill("/form")
        page.locator("#input").press("Enter")
        form = page.locator("form.mml--card[data-mml-name='rate']")
        expect(form).to_have_count(1)
        expect(form.locator(".mml-text").first).to_have_text("How was it & why?")
        expect(form.locator(".mml-md strong")).to_have_text("bold")
        expect(form.locator(".mml-md a")).to_have_attribute("href", "https://example.com/docs")
        expect(form.locator(".mml-icon").first).to_have_text("star")
        expect(form.locator("img.mml-image")).to_have_attribute("alt", "a picture")
        expect(form.locator("input[type='datetime-local'][name='when']")).to_have_count(1)
        expect(form.locator(".mml-calendar a")).to_have_attribute("download", "event.ics")
        expect(form.locator(".mml-carousel .mml-item")).to_have_count(2)
        expect(form.locator(".mml-row .mml-col")).to_have_count(2)
        expect(form.locator("a.mml-button")).to_have_attribute("href", "https://example.com/help")

        # the React client's card: title, plain text, no Slack-style fields or footer
        attachment = page.locator(".attachment")
        expect(attachment.locator(".att-title")).to_have_text("Report")
        expect(attachment.locator(".att-text")).to_have_text("_all_ fields")
        expect(attachment.locator("a")).to_have_count(0)  # javascript: is no link
        expect(attachment.locator(".att-link-refused")).to_contain_text("javascript:")
        expect(attachment.locator(".att-not-shown")).to_have_text(
            "not shown by Stream's React client: fields, footer, color"
        )

        form.get_by_role("button", name="increase").click()
        form.get_by_role("button", name="increase").click()
        form.locator("input[name='comment']").fill("great")
        form.get_by_role("button", name="Submit").click()
        echoed = page.locator("li.msg").last.locator(".msg-text")
        expect(echoed).to_contain_text('"mml_name": "rate"')
        data = json.loads(echoed.inner_text())
        assert data == {
            "action": "submit",
            "comment": "great",
            "mml_name": "rate",
            "stars": "5",
            "token": "h1",
            "when": "2030-01-02T03:04:00.000Z",
        }

        page.locator("#input").fill("/form broken")
        page.locator("#input").press("Enter")
        expect(page.locator(".mml-invalid")).to_have_text(
            "This chat message has invalid formatting"
        )
    assert errors == []
    assert left == []
