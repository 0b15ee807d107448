"""The HTTP contract (DESIGN.md §1) for custom commands, through the real WSGI app."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from botkit import (
    Action,
    Attachment,
    Bot,
    ClickedAction,
    CommandContext,
    Config,
    Message,
    signals,
)
from botkit.core.signing import KeyRing, sign
from botkit.testing import (
    TestClient,
    action_payload,
    command_payload,
    encode,
    message,
    signed_headers,
)

KEY = "proto-key"
SECRET = "proto-secret-9f8e7d6c5b4a"
PREFIX = "/webhooks/stream"
UNKNOWN_TEXT = "Sorry, command {} doesn't exist. Try posting your message without the starting /"
REF = re.compile(r"ref ([0-9a-f]{8})")

MakeClient = Callable[..., TestClient]


@pytest.fixture
def make_client() -> Iterator[MakeClient]:
    clients: list[TestClient] = []

    def make(bot: Bot, **settings: Any) -> TestClient:
        settings.setdefault("command_budget", 10.0)  # a loaded CI box must not hit it
        settings.setdefault("before_send_budget", 10.0)
        config = Config(keyring=KeyRing({KEY: (SECRET,)}), store_url="memory://", **settings)
        client = bot.test_client(config=config, api_key=KEY, secret=SECRET)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.runtime.close()


def raw_post(
    client: TestClient,
    body: bytes,
    *,
    path: str = "/custom-commands?type=echo",
    headers: dict[str, str] | None = None,
    sign_body: bool = True,
) -> Any:
    """Post ``body`` with hand-built headers (signed unless ``sign_body`` is False)."""
    sent = signed_headers(body, api_key=KEY, secret=SECRET) if sign_body else {}
    sent.update(headers or {})
    return client.app.test_client().post(PREFIX + path, data=body, headers=sent)


def echo_bot() -> Bot:
    bot = Bot()

    @bot.command("echo")
    def echo(ctx: CommandContext) -> Message:
        return Message.ephemeral(f"{ctx.command}:{ctx.args}")

    return bot


def refs(caplog: pytest.LogCaptureFixture) -> dict[str, logging.LogRecord]:
    found = {}
    for record in caplog.records:
        for ref in REF.findall(record.getMessage()):
            found[ref] = record
    return found


# -- routing -----------------------------------------------------------------------------------


def test_both_url_forms(make_client: MakeClient) -> None:
    client = make_client(echo_bot())
    payload = command_payload("/echo hi there")
    for path in ("/custom-commands?type=echo", "/custom-commands/echo"):
        reply = client.post(path, payload)
        assert reply.status == 200, reply
        assert (reply.type, reply.text) == ("ephemeral", "echo:hi there")
        assert reply.message is not None and reply.message["id"] == payload["message"]["id"]


def test_without_type_falls_back_to_message_command(make_client: MakeClient) -> None:
    client = make_client(echo_bot())
    reply = client.post("/custom-commands", command_payload("/echo hi"))
    assert (reply.status, reply.text) == (200, "echo:hi")


def test_args_fall_back_to_the_text(make_client: MakeClient) -> None:
    client = make_client(echo_bot())
    payload = command_payload("/echo one two")
    del payload["message"]["args"]
    assert client.post("/custom-commands?type=echo", payload).text == "echo:one two"


def test_mml_type_routes_by_form_name(make_client: MakeClient) -> None:
    bot = Bot()
    seen: list[CommandContext] = []

    @bot.form("feedback")
    def feedback(ctx: CommandContext) -> Message:
        seen.append(ctx)
        return Message.publish(f"Thanks for {ctx.form_data['rating']} stars")

    client = make_client(bot)
    msg = message("Rate us", mml='<mml name="feedback"><number name="rating"/></mml>')
    assert "command" not in msg
    reply = client.action(msg, {"mml_name": "feedback", "rating": "5"})
    assert reply.status == 200
    assert (reply.type, reply.text) == ("regular", "Thanks for 5 stars")
    assert reply.mml == ""
    assert seen[0].command == "mml"

    other = client.action(msg, {"mml_name": "nope", "rating": "5"})
    assert other.status == 200 and other.type == "error"
    assert "no handler for the form 'nope'" in (other.text or "")


@pytest.mark.parametrize("path", ["/custom-commands?type=echo", "/custom-commands/echo"])
def test_the_signed_command_decides_and_a_different_type_is_refused(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    # The type in the URL is not signed: a captured body for /admin must not reach echo
    # (nor the other way round) by rewriting it.
    bot = echo_bot()
    ran: list[str] = []

    @bot.command("admin")
    def admin(ctx: CommandContext) -> str:
        ran.append(ctx.args)
        return "done"

    client = make_client(bot)
    payload = command_payload("/admin wipe")
    with caplog.at_level(logging.INFO, logger="botkit"):
        refused = client.post(path, payload, webhook_id="route-1")
    assert refused.status == 400
    assert json.loads(refused.body) == {
        "error": "the type in the URL does not match the signed message.command"
    }
    assert ran == []
    rejected = [r.getMessage() for r in caplog.records if "rejected (route" in r.getMessage()]
    assert rejected == [
        "command webhook rejected (route: type 'echo' but the signed message.command "
        "is 'admin') id=route-1"
    ]
    # Refused before the claim: the true call with the same id still runs, once.
    reply = client.post("/custom-commands?type=admin", payload, webhook_id="route-1")
    assert (reply.status, reply.text, ran) == (200, "done", ["wipe"])
    # Without a type in the URL, the signed command routes as before.
    assert client.post("/custom-commands", command_payload("/echo hi")).text == "echo:hi"


@pytest.mark.botkit_render_warnings("ignore")  # an MML-only form: the protocol is the point
def test_an_mml_submit_may_say_type_mml_and_a_click_keeps_its_command(
    make_client: MakeClient,
) -> None:
    bot = echo_bot()
    seen: list[tuple[str, dict[str, str] | None]] = []

    @bot.form("feedback")
    def feedback(ctx: CommandContext) -> str:
        seen.append((ctx.command, ctx.form_data))
        return "thanks"

    client = make_client(bot)
    # A form in a reply to /echo: its submit carries the message's command, and Stream's
    # docs name MML calls type=mml; the signed mml_name picks the form.
    msg = message("/echo rate", mml='<mml name="feedback"><number name="rating"/></mml>')
    payload = action_payload(msg, {"mml_name": "feedback", "rating": "4"})
    reply = client.post("/custom-commands?type=mml", payload)
    assert (reply.status, reply.text) == (200, "thanks")
    assert seen == [("mml", {"mml_name": "feedback", "rating": "4"})]
    # type=mml without a form's name is no MML submit: refused like any other type.
    click = action_payload(msg, {"action": "go"})
    assert client.post("/custom-commands?type=mml", click).status == 400
    # a click on /echo's buttons comes with type=echo: routed as ever
    assert client.post("/custom-commands?type=echo", click).status == 200


@pytest.mark.parametrize("path", ["/custom-commands?type=nope", "/custom-commands/nope"])
def test_unknown_type_is_a_readable_error(make_client: MakeClient, path: str) -> None:
    client = make_client(echo_bot())
    payload = command_payload("/nope x")
    reply = client.post(path, payload)
    assert reply.status == 200
    assert reply.type == "error"
    assert reply.text == UNKNOWN_TEXT.format("nope")
    assert reply.message is not None and reply.message["id"] == payload["message"]["id"]


def test_action_routing(make_client: MakeClient) -> None:
    bot = Bot()
    calls: list[tuple[str, ClickedAction | None]] = []

    @bot.command("pick")
    def pick(ctx: CommandContext) -> Message:
        calls.append(("command", ctx.action))
        return Message.ephemeral("command")

    @pick.action("choice", "send")
    def send(ctx: CommandContext) -> Message:
        calls.append(("send", ctx.action))
        return Message.publish("sent")

    @pick.action("choice")
    def any_choice(ctx: CommandContext) -> str:
        calls.append(("any", ctx.action))
        return f"any {ctx.form_data['choice'] if ctx.form_data else ''}"

    client = make_client(bot)
    first = client.command("/pick")
    assert first.text == "command"
    assert first.click(choice="send").text == "sent"
    assert first.click(choice="other").text == "any other"
    assert first.click(unrouted="x").text == "command"
    assert calls == [
        ("command", None),
        ("send", ClickedAction("choice", "send")),
        ("any", ClickedAction("choice", "other")),
        ("command", ClickedAction("unrouted", "x")),
    ]


def test_ctx_fields(make_client: MakeClient) -> None:
    bot = Bot()
    seen: list[CommandContext] = []

    @bot.command("state")
    def state(ctx: CommandContext) -> Message:
        seen.append(ctx)
        return Message.ephemeral("ok", state={"counter": 1})

    client = make_client(bot)
    payload = command_payload("/state a b", user={"id": "bob"}, cid="team:dev")
    reply = client.post("/custom-commands?type=state", payload, webhook_id="wh-1", attempt=3)
    assert reply.state == {"counter": 1}
    ctx = seen[0]
    assert (ctx.webhook_id, ctx.attempt, ctx.api_key) == ("wh-1", 3, KEY)
    assert (ctx.command, ctx.args, ctx.cid, ctx.user_id) == ("state", "a b", "team:dev", "bob")
    assert ctx.form_data is None and ctx.action is None and not ctx.is_action
    assert ctx.state == {}

    assert reply.message is not None
    click = action_payload(reply.message, {"go": "1"}, user={"id": "bob"})
    client.post("/custom-commands?type=state", click, webhook_id="wh-2")
    ctx = seen[1]
    assert ctx.state == {"counter": 1}
    assert ctx.form_data == {"go": "1"}
    assert ctx.action == ClickedAction("go", "1") and ctx.is_action
    assert ctx.message["id"] == payload["message"]["id"]


def test_delete_answers_null(make_client: MakeClient) -> None:
    bot = Bot()

    @bot.command("gone")
    def gone(ctx: CommandContext) -> Message:
        return Message.delete()

    @bot.command("gone2")
    def gone2(ctx: CommandContext) -> dict[str, Any]:
        return {"message": None}

    client = make_client(bot)
    for name in ("gone", "gone2"):
        reply = client.command(f"/{name}")
        assert reply.status == 200
        assert reply.body == b'{"message":null}'
        assert reply.deleted


def test_reply_forms(make_client: MakeClient) -> None:
    bot = Bot()

    @bot.command("none")
    def none(ctx: CommandContext) -> None:
        return None

    @bot.command("text")
    def text(ctx: CommandContext) -> str:
        return "plain"

    @bot.command("dict")
    def as_dict(ctx: CommandContext) -> dict[str, Any]:
        return {"text": "from dict", "type": "ephemeral", "mine": 1}

    client = make_client(bot)
    payload = command_payload("/none", custom_thing="kept")
    unchanged = client.post("/custom-commands?type=none", payload)
    assert unchanged.message == payload["message"]
    assert client.command("/text").text == "plain"
    reply = client.command("/dict")
    assert (reply.text, reply.state) == ("from dict", {"mine": 1})


# -- errors inside the bot -----------------------------------------------------------------------


def test_handler_exception_is_a_200_error_with_a_logged_ref(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    bot = Bot()

    @bot.command("boom")
    def boom(ctx: CommandContext) -> None:
        raise RuntimeError("kaboom-detail")

    client = make_client(bot)
    with caplog.at_level(logging.INFO, logger="botkit"):
        reply = client.command("/boom")
    assert reply.status == 200
    assert reply.type == "error"
    assert "kaboom-detail" not in reply.body.decode()
    assert "Traceback" not in reply.body.decode()
    match = REF.search(reply.text or "")
    assert match, reply.text
    record = refs(caplog)[match.group(1)]
    assert record.levelno == logging.ERROR
    assert "/boom" in record.getMessage()
    traceback = logging.Formatter().formatException(record.exc_info)  # type: ignore[arg-type]
    assert "Traceback" in traceback and "kaboom-detail" in traceback


def test_errorhandler_mapping(make_client: MakeClient) -> None:
    bot = Bot()

    class Missing(LookupError):
        pass

    @bot.command("find")
    def find(ctx: CommandContext) -> None:
        raise Missing(ctx.args)

    @bot.command("find2")
    def find2(ctx: CommandContext) -> None:
        raise Missing(ctx.args)

    @bot.errorhandler(LookupError)
    def not_found(ctx: CommandContext, exc: Exception) -> Message:
        return Message.error(f"Nothing called {exc}.")

    @find2.errorhandler(Missing)
    def command_level(ctx: CommandContext, exc: Exception) -> str:
        return f"command-level {exc}"

    client = make_client(bot)
    reply = client.command("/find cats")
    assert (reply.status, reply.type, reply.text) == (200, "error", "Nothing called cats.")
    assert client.command("/find2 dogs").text == "command-level dogs"


def test_checks_refuse(make_client: MakeClient) -> None:
    bot = Bot()
    ran: list[str] = []

    @bot.command("admin")
    def admin(ctx: CommandContext) -> str:
        ran.append(ctx.user_id)
        return "done"

    @bot.check
    def not_banned(ctx: CommandContext) -> str | None:
        return "You are banned." if ctx.user_id == "mallory" else None

    @admin.check
    def admins_only(ctx: CommandContext) -> Message | None:
        return None if ctx.user.get("role") == "admin" else Message.error("Admins only.")

    client = make_client(bot)
    assert (
        client.command("/admin", user={"id": "mallory", "role": "admin"}).text == "You are banned."
    )
    refused = client.command("/admin", user={"id": "bob", "role": "user"})
    assert (refused.type, refused.text) == ("error", "Admins only.")
    assert client.command("/admin", user={"id": "root", "role": "admin"}).text == "done"
    assert ran == ["root"]


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(
            lambda: Message.ephemeral(
                attachments=[Attachment(type="image", actions=[Action("", "v", "Go")])]
            ),
            id="action-without-name",
        ),
        pytest.param(
            lambda: Message.ephemeral(attachments=[Attachment(type="image")] * 31),
            id="31-attachments",
        ),
        pytest.param(
            lambda: Message.ephemeral("x", state={"when": dt.datetime(2024, 1, 1)}),
            id="not-json",
        ),
        pytest.param(lambda: Message.ephemeral(text=5), id="text-not-a-string"),  # type: ignore[arg-type]
        pytest.param(lambda: {"type": "bogus"}, id="bad-type"),
        pytest.param(lambda: 42, id="bad-return-type"),
    ],
)
def test_broken_reply_is_logged_and_the_user_gets_an_error(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture, build: Callable[[], Any]
) -> None:
    bot = Bot()

    @bot.command("broken")
    def broken(ctx: CommandContext) -> Any:
        return build()

    client = make_client(bot)
    with caplog.at_level(logging.INFO, logger="botkit"):
        reply = client.command("/broken")
    assert reply.status == 200
    assert reply.type == "error"
    match = REF.search(reply.text or "")
    assert match, reply.text
    assert refs(caplog)[match.group(1)].levelno == logging.ERROR
    assert reply.message is not None and reply.message["id"]


def _deep(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    "state",
    [
        pytest.param({"score": float("nan")}, id="nan"),
        pytest.param({"score": float("inf")}, id="infinity"),
        pytest.param({"deep": _deep(1500)}, id="too-deep"),
    ],
)
def test_unencodable_reply_is_refused(make_client: MakeClient, state: dict[str, Any]) -> None:
    bot = Bot()

    @bot.command("odd")
    def odd(ctx: CommandContext) -> Message:
        return Message.ephemeral("x", state=state)

    reply = make_client(bot).command("/odd")
    assert reply.status == 200
    json.loads(reply.body, parse_constant=lambda name: pytest.fail(f"{name} in the reply"))
    assert reply.type == "error"


@pytest.mark.botkit_render_warnings("ignore")  # the warning in the log is what it checks
def test_warns_when_buttons_would_not_render(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    bot = Bot()
    button = Action.button("a", "b", "Go")

    @bot.command("hidden")
    def hidden(ctx: CommandContext) -> Message:
        return Message.ephemeral(attachments=[Attachment(type="text", actions=[button])])

    @bot.command("shown")
    def shown(ctx: CommandContext) -> Message:
        return Message.ephemeral(
            attachments=[
                Attachment(type="text", title_link="https://example.com", actions=[button]),
                Attachment(type="image", actions=[button]),
                Attachment(type="giphy", actions=[button]),
            ]
        )

    client = make_client(bot)
    with caplog.at_level(logging.WARNING, logger="botkit"):
        assert client.command("/shown").status == 200
        assert not [r for r in caplog.records if "will not show its buttons" in r.getMessage()]
        reply = client.command("/hidden")
    assert reply.status == 200 and reply.type == "ephemeral" and reply.actions
    warnings = [r for r in caplog.records if "will not show its buttons" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert "/hidden" in warnings[0].getMessage()


# -- bad input: the right 4xx, never a 500 ---------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status"),
    [
        pytest.param(b"not json", 400, id="not-json"),
        pytest.param(b"", 400, id="empty"),
        pytest.param(b"[1,2,3]", 400, id="json-array"),
        pytest.param(b'"a string"', 400, id="json-string"),
        pytest.param(b'{"message": "\xff\xfe"}', 400, id="invalid-utf8"),
        pytest.param(b'\xef\xbb\xbf{"message": {}, "user": {"id": "a"}}', 400, id="utf8-bom"),
        pytest.param(b"[" * 200_000, 400, id="deep-nesting"),
        pytest.param(b'{"message": {"n": ' + b"7" * 5000 + b"}}", 400, id="5000-digits"),
        pytest.param(b'{"message": {"n": NaN}, "user": {"id": "a"}}', 400, id="nan"),
        pytest.param(b'{"message": {"n": 1e999}, "user": {"id": "a"}}', 400, id="overflow"),
        pytest.param(b'{"user": {"id": "a"}}', 400, id="missing-message"),
        pytest.param(b'{"message": {"text": "/echo"}}', 400, id="missing-user"),
        pytest.param(b'{"message": null, "user": {"id": "a"}}', 400, id="null-message"),
    ],
)
def test_bad_bodies_get_400(make_client: MakeClient, body: bytes, status: int) -> None:
    client = make_client(echo_bot())
    response = raw_post(client, body)
    assert response.status_code == status
    assert response.mimetype == "application/json"
    data = response.get_json()
    assert data["error"] == "invalid payload"
    assert isinstance(data["fields"], dict) and data["fields"]


def test_wrong_types_name_the_fields(make_client: MakeClient) -> None:
    client = make_client(echo_bot())
    body = encode(
        {
            "message": {"text": 5, "attachments": "nope", "command": "echo"},
            "user": {"id": 7},
            "form_data": {"a": 1},
        }
    )
    response = raw_post(client, body)
    assert response.status_code == 400
    fields = response.get_json()["fields"]
    assert set(fields) == {"message", "user", "form_data"}
    assert set(fields["message"]) == {"text", "attachments"}
    assert set(fields["user"]) == {"id"}


def test_declared_body_over_the_limit_is_413(make_client: MakeClient) -> None:
    client = make_client(echo_bot(), max_body_bytes=1024)
    small = encode(command_payload("/echo hi"))
    assert raw_post(client, small).status_code == 200
    big = encode(command_payload("/echo " + "x" * 2000))
    response = raw_post(client, big)
    assert response.status_code == 413
    assert response.get_json() == {"error": "body too large"}


def test_streamed_body_over_the_limit_is_413(make_client: MakeClient) -> None:
    client = make_client(echo_bot(), max_body_bytes=1024)
    big = encode(command_payload("/echo " + "x" * 4000))
    headers = signed_headers(big, api_key=KEY, secret=SECRET)
    headers["Transfer-Encoding"] = "chunked"
    response = client.app.test_client().post(
        PREFIX + "/custom-commands?type=echo",
        input_stream=io.BytesIO(big),
        headers=headers,
        environ_overrides={"wsgi.input_terminated": True},  # as gunicorn sets for chunked
    )
    assert response.status_code == 413


def _sig_cases() -> list[Any]:
    body = encode(command_payload("/echo hi"))
    good = sign(SECRET, body)
    base = {"Content-Type": "application/json"}
    return [
        pytest.param(body, {**base, "X-Api-Key": KEY, "X-Signature": sign("wrong", body)}, id="wrong-secret"),
        pytest.param(body, {**base, "X-Api-Key": KEY}, id="missing-signature"),
        pytest.param(body, {**base, "X-Api-Key": KEY, "X-Signature": ""}, id="empty-signature"),
        pytest.param(body, {**base, "X-Api-Key": KEY, "X-Signature": "foo"}, id="foo"),
        pytest.param(body, {**base, "X-Api-Key": KEY, "X-Signature": "sha256=" + good}, id="prefixed"),
        pytest.param(body, {**base, "X-Api-Key": KEY, "X-Signature": good[:-1]}, id="truncated"),
        pytest.param(body, {**base, "X-Signature": good}, id="missing-key"),
        pytest.param(body, {**base, "X-Api-Key": "", "X-Signature": good}, id="empty-key"),
        pytest.param(body, {**base, "X-Api-Key": "nobody", "X-Signature": good}, id="unknown-key"),
        pytest.param(body + b" ", {**base, "X-Api-Key": KEY, "X-Signature": good}, id="suffix"),
    ]  # fmt: skip


@pytest.mark.parametrize(("body", "headers"), _sig_cases())
def test_bad_signatures_get_401(
    make_client: MakeClient, body: bytes, headers: dict[str, str]
) -> None:
    client = make_client(echo_bot())
    response = raw_post(client, body, headers=headers, sign_body=False)
    assert response.status_code == 401
    assert response.get_data() == b'{"error":"invalid signature"}'


def test_duplicated_signature_headers_get_401(make_client: MakeClient) -> None:
    client = make_client(echo_bot())
    body = encode(command_payload("/echo hi"))
    good = sign(SECRET, body)
    headers = [
        ("Content-Type", "application/json"),
        ("X-Api-Key", KEY),
        ("X-Signature", good),
        ("X-Signature", good),
    ]
    response = client.app.test_client().post(
        PREFIX + "/custom-commands?type=echo", data=body, headers=headers
    )
    assert response.status_code == 401
    assert response.get_data() == b'{"error":"invalid signature"}'


def test_logs_hold_no_secret_signature_or_body(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    bot = echo_bot()

    @bot.command("boom")
    def boom(ctx: CommandContext) -> None:
        raise RuntimeError("boom")

    client = make_client(bot)
    marker = "zebra-private-words-42"
    body = encode(command_payload(f"/echo {marker}"))
    boom_body = encode(command_payload(f"/boom {marker}"))
    wrong = sign("wrong-secret", body)
    with caplog.at_level(logging.DEBUG):
        assert raw_post(client, body).status_code == 200
        assert raw_post(client, boom_body, path="/custom-commands?type=boom").status_code == 200
        raw_post(client, body, headers={"X-Signature": wrong})
        raw_post(client, body + b"x")
        raw_post(client, b'{"message": "' + marker.encode() + b'"}')
        raw_post(client, encode({"message": {"text": marker}, "user": {"id": 5}}))
    records = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert records, "expected at least the per-webhook log lines"
    for record in records:
        text = record.getMessage() + (record.exc_text or "") + repr(vars(record))
        for secret in (SECRET, sign(SECRET, body), sign(SECRET, boom_body), wrong, marker):
            assert secret not in text, (secret, record.getMessage())


# -- other routes ------------------------------------------------------------------------------------


def test_get_on_a_webhook_route_is_405_json(make_client: MakeClient) -> None:
    http = make_client(echo_bot()).app.test_client()
    for path in ("/custom-commands", "/custom-commands/echo"):
        response = http.get(PREFIX + path)
        assert response.status_code == 405
        assert response.mimetype == "application/json"
        assert response.get_json() == {"error": "method not allowed"}


def test_webhook_routes_answer_below_flask_for_every_route(make_client: MakeClient) -> None:
    http = make_client(echo_bot()).app.test_client()
    for path in ("/before-message-send", "/push"):
        response = http.get(PREFIX + path)
        assert response.status_code == 405 and response.headers["Allow"] == "POST"
    body = encode(command_payload("/echo hi"))
    bad_length = http.post(
        PREFIX + "/custom-commands?type=echo",
        data=body,
        headers={**signed_headers(body, api_key=KEY, secret=SECRET)},
        environ_overrides={"CONTENT_LENGTH": "-5"},
    )
    assert bad_length.status_code == 400
    assert bad_length.get_json() == {"error": "invalid Content-Length"}
    # deeper paths below the command route are not commands
    assert http.post(PREFIX + "/custom-commands/echo/extra", data=body).status_code == 404
    assert http.get("/healthz").status_code == 200  # Flask still serves the rest


def test_command_name_in_the_path_may_be_utf8(make_client: MakeClient) -> None:
    bot = Bot()

    @bot.command("café")
    def cafe(ctx: CommandContext) -> str:
        return f"served {ctx.command}"

    client = make_client(bot)
    body = encode(command_payload("/café au lait"))
    response = client.app.test_client().post(
        PREFIX + "/custom-commands/caf%C3%A9",
        data=body,
        headers=signed_headers(body, api_key=KEY, secret=SECRET),
    )
    assert response.status_code == 200
    assert response.get_json()["message"]["text"] == "served café"


def test_unknown_path_is_404_json(make_client: MakeClient) -> None:
    http = make_client(echo_bot()).app.test_client()
    for method in (http.get, http.post):
        response = method("/nowhere")
        assert response.status_code == 404
        assert response.get_json() == {"error": "not found"}


def test_custom_url_prefix(make_client: MakeClient) -> None:
    client = make_client(echo_bot(), url_prefix="/hooks")
    assert client.command("/echo hi").text == "echo:hi"
    http = client.app.test_client()
    assert http.post(PREFIX + "/custom-commands?type=echo").status_code == 404


# -- signals -----------------------------------------------------------------------------------------


def test_signals(make_client: MakeClient) -> None:
    bot = echo_bot()

    @bot.command("boom")
    def boom(ctx: CommandContext) -> None:
        raise ValueError("bad")

    client = make_client(bot)
    events: list[tuple[str, dict[str, Any]]] = []

    def receiver(name: str) -> Callable[..., None]:
        def receive(sender: Any, **kwargs: Any) -> None:
            assert sender is bot
            events.append((name, kwargs))

        return receive

    on_received = receiver("received")
    on_completed = receiver("completed")
    on_failed = receiver("failed")
    on_rejected = receiver("rejected")
    with (
        signals.command_received.connected_to(on_received, sender=bot),
        signals.command_completed.connected_to(on_completed, sender=bot),
        signals.command_failed.connected_to(on_failed, sender=bot),
        signals.request_rejected.connected_to(on_rejected, sender=bot),
    ):
        client.command("/echo hi")
        client.command("/boom")
        raw_post(client, b"{}", sign_body=False)
        raw_post(client, b"[]")
        raw_post(client, b"x" * (2 * 1024 * 1024))
    names = [name for name, _ in events]
    assert names == [
        "received",
        "completed",
        "received",
        "failed",
        "rejected",
        "rejected",
        "rejected",
    ]
    received = events[0][1]
    assert received["ctx"].command == "echo"
    completed = events[1][1]
    assert completed["ctx"].command == "echo"
    assert completed["duration"] >= 0
    assert json.loads(completed["reply"])["message"]["text"] == "echo:hi"
    failed = events[3][1]
    assert failed["ctx"].command == "boom" and isinstance(failed["exception"], ValueError)
    reasons = [(kw["reason"], kw["status"], kw["kind"]) for _, kw in events[4:]]
    assert reasons == [
        ("signature", 401, "command"),
        ("payload", 400, "command"),
        ("size", 413, "command"),
    ]
    # disconnected: nothing more arrives
    client.command("/echo again")
    assert len(events) == 7
