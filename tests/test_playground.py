"""The playground: its JSON API through Flask's test client, and the page in real Chromium."""

from __future__ import annotations

import json
import logging
import re
import threading
from typing import Any

import pytest
from browser import browser, page, wsgi_server  # noqa: F401

from botkit import Action, Attachment, Bot, Config, Message
from botkit.adapters.playground import create_playground_app
from botkit.core.config import DEV_API_KEY, DEV_API_SECRET
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


# -- the page, in Chromium ------------------------------------------------------------------


@pytest.mark.slow
def test_page_in_chromium(page: Any, tmp_path: Any) -> None:
    from playwright.sync_api import expect

    from examples.bot import bot

    config = make_config(keyring=KeyRing({DEV_API_KEY: (DEV_API_SECRET,)}), dev_credentials=True)
    app = create_playground_app(bot, config)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    with wsgi_server(app) as url:
        page.goto(url + "/playground")
        expect(page.locator("body")).to_have_attribute("data-ready", "1")
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

        # /gif cats: the giphy card, only visible to you, three buttons
        composer.fill("/gif cats")
        composer.press("Enter")
        card = page.locator('li.msg[data-type="ephemeral"]').filter(has=page.locator(".att-giphy"))
        expect(card).to_have_count(1)
        expect(card.locator(".only-you")).to_have_text("Only visible to you")
        expect(card.locator(".att-actions button")).to_have_text(["Send", "Shuffle", "Cancel"])
        image = card.locator(".att-giphy img")
        first_src = image.get_attribute("src")
        assert first_src and first_src.startswith("data:image/svg+xml")

        # Shuffle: same message, another image
        card.get_by_role("button", name="Shuffle").click()
        expect(image).not_to_have_attribute("src", first_src)
        expect(card.locator(".att-actions button")).to_have_count(3)

        # Send: a regular message, no buttons, not ephemeral, and a message.new push
        card.get_by_role("button", name="Send").click()
        sent = page.locator("li.msg").filter(has=page.locator(".att-giphy")).last
        expect(sent).to_have_attribute("data-type", "regular")
        expect(sent.locator(".att-actions button")).to_have_count(0)
        expect(sent.locator(".only-you")).to_have_count(0)
        expect(page.locator('.call[data-kind="push"]').first).to_contain_text("message.new")

        # Cancel removes the preview ({"message": null})
        composer.fill("/gif dogs")
        composer.press("Enter")
        preview = page.locator('li.msg[data-type="ephemeral"]').filter(
            has=page.locator(".att-giphy")
        )
        expect(preview).to_have_count(1)
        preview.get_by_role("button", name="Cancel").click()
        expect(preview).to_have_count(0)

        # /ticket: the MML form, a bad email, then a good one
        composer.fill("/ticket printer on fire")
        composer.press("Enter")
        form = page.locator("form.mml[data-mml-name='ticket']")
        expect(form).to_have_count(1)
        form.locator("input[name='email']").fill("not-an-email")
        form.get_by_role("button", name="Confirm").click()
        expect(page.locator("li.msg").last).to_contain_text("Not a valid email address")
        action_call = page.locator('.call[data-kind="action"]').first
        expect(action_call.locator(".request-body")).to_contain_text('"mml_name": "ticket"')
        expect(action_call.locator(".request-body")).to_contain_text('"action": "confirm"')
        expect(action_call.locator(".request-body")).to_contain_text('"email": "not-an-email"')
        form = page.locator("form.mml[data-mml-name='ticket']")
        expect(form.locator("input[name='email']")).to_have_value("not-an-email")
        form.locator("input[name='email']").fill("alice@example.com")
        form.get_by_role("button", name="Confirm").click()
        ticket = page.locator("li.msg").filter(has_text=re.compile(r"Ticket T-\d+ created"))
        expect(ticket).to_have_count(1)
        expect(ticket).to_have_attribute("data-type", "regular")
        expect(page.locator("form.mml")).to_have_count(0)

        # a plain message goes through before-send into the channel
        composer.fill("hello **team**, see `make run`")
        composer.press("Enter")
        plain = page.locator("li.msg").filter(has_text="hello team")
        expect(plain).to_have_attribute("data-type", "regular")
        expect(plain.locator(".msg-text strong")).to_have_text("team")
        expect(plain.locator(".msg-text code")).to_have_text("make run")
        expect(page.locator('.call[data-kind="before-send"]')).to_have_count(1)

        # the side panel shows the signed request and the response
        latest = page.locator(".call").first
        expect(latest.locator(".headers")).to_contain_text("X-Signature: ")
        expect(latest.locator(".headers")).to_contain_text(f"X-Api-Key: {DEV_API_KEY}")
        command_call = page.locator('.call[data-kind="command"]').last
        expect(command_call).to_contain_text("/webhooks/stream/custom-commands?type=gif")
        expect(command_call.locator(".status")).to_have_text("200")

        # markup in user text is shown, never run
        composer.fill("<img src=x onerror=alert(1)> <b>bold?</b>")
        composer.press("Enter")
        expect(page.locator("li.msg").last).to_contain_text("<b>bold?</b>")
        assert page.locator(".messages img[src='x']").count() == 0

        page.screenshot(path=str(tmp_path / "playground.png"), full_page=True)
    assert (tmp_path / "playground.png").stat().st_size > 10_000
    assert errors == []


EVERY_TAG = (
    '<mml name="rate" type="card">'
    "<text>How was it & why?</text>"
    "<md>**bold** and [docs](https://example.com/docs)</md>"
    '<icon name="star"/>'
    '<image src="https://example.com/a.png" alt="a picture"/>'
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

    @bot.command("form", description="Every MML tag")
    def form(ctx: Any) -> Message:
        if ctx.is_action:
            return Message.ephemeral(json.dumps(ctx.form_data, sort_keys=True), mml="")
        broken = ctx.args == "broken"
        return Message.ephemeral(
            "A form",
            mml="<mml><column>x</column></mml>" if broken else EVERY_TAG,
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
    with wsgi_server(app) as url:
        page.goto(url + "/playground")
        expect(page.locator("body")).to_have_attribute("data-ready", "1")
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

        attachment = page.locator(".attachment")
        expect(attachment.locator(".att-fields .field--short")).to_have_count(2)
        expect(attachment.locator(".att-text em")).to_have_text("all")
        expect(attachment.locator(".att-title a")).to_have_count(0)  # javascript: is no link
        expect(attachment.locator(".att-footer")).to_have_text("botkit")

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
