"""Before-message-send and push, through the real WSGI app: the same pipeline as
custom commands (401/400/413), then each hook's own rules."""

from __future__ import annotations

import gzip
import json
import threading
import time
from typing import Any

import pytest
from test_protocol import KEY, PREFIX, SECRET, MakeClient, make_client  # noqa: F401

from botkit import BeforeSendContext, Bot, Config, Event, Message, signals
from botkit.core.signing import KeyRing, sign
from botkit.runtime.stores import Entry
from botkit.testing import (
    TestClient,
    before_send_payload,
    encode,
    event_payload,
    signed_headers,
)

ROUTES = ["/before-message-send", "/push"]


def post(client: TestClient, path: str, body: bytes, **headers: str) -> Any:
    sent = signed_headers(body, api_key=KEY, secret=SECRET)
    sent.update(headers)
    return client.app.test_client().post(PREFIX + path, data=body, headers=sent)


def valid_body(path: str) -> bytes:
    if path == "/push":
        return encode(event_payload("message.new"))
    return encode(before_send_payload("hello"))


def hooked_bot() -> Bot:
    bot = Bot()

    @bot.before_send
    def passes(ctx: BeforeSendContext) -> None:
        return None

    @bot.on("message.new")
    def seen(event: Event) -> None:
        pass

    return bot


# -- the shared pipeline ---------------------------------------------------------------------


@pytest.mark.parametrize("path", ROUTES)
def test_valid_call_is_200(make_client: MakeClient, path: str) -> None:
    response = post(make_client(hooked_bot()), path, valid_body(path))
    assert response.status_code == 200


@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize(
    "headers",
    [
        {"X-Signature": "0" * 64},
        {"X-Signature": "nothex"},
        {"X-Api-Key": "someone-else"},
        {"X-Api-Key": ""},
    ],
    ids=["wrong", "malformed", "unknown-key", "empty-key"],
)
def test_bad_signature_is_401(make_client: MakeClient, path: str, headers: dict[str, str]) -> None:
    response = post(make_client(hooked_bot()), path, valid_body(path), **headers)
    assert response.status_code == 401
    assert response.get_data() == b'{"error":"invalid signature"}'


@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"not json", "_body"),
        (b"[1, 2]", "_body"),
        (b"\xff\xfe{}", "_body"),
        (b"\xef\xbb\xbf{}", "_body"),
        (b"[" * 200_000, "_body"),
        (b'{"n": ' + b"9" * 5000 + b"}", "_body"),
        (b'{"n": NaN}', "_body"),
    ],
    ids=["not-json", "array", "bad-utf8", "bom", "deep", "huge-number", "nan"],
)
def test_bad_body_is_400(make_client: MakeClient, path: str, body: bytes, field: str) -> None:
    response = post(make_client(hooked_bot()), path, body)
    assert response.status_code == 400
    data = response.get_json()
    assert data["error"] == "invalid payload" and field in data["fields"]


@pytest.mark.parametrize(
    ("path", "payload", "field"),
    [
        ("/before-message-send", {"user": {"id": "a"}}, "message"),
        ("/before-message-send", {"message": {"text": "x"}}, "user"),
        ("/before-message-send", {"message": {"text": 5}, "user": {"id": "a"}}, "message"),
        ("/push", {"cid": "messaging:general"}, "type"),
        ("/push", {"type": ""}, "type"),
        ("/push", {"type": 7}, "type"),
    ],
)
def test_wrong_shape_names_the_field(
    make_client: MakeClient, path: str, payload: dict[str, Any], field: str
) -> None:
    response = post(make_client(hooked_bot()), path, encode(payload))
    assert response.status_code == 400
    assert field in response.get_json()["fields"]


@pytest.mark.parametrize("path", ROUTES)
def test_too_large_is_413(make_client: MakeClient, path: str) -> None:
    client = make_client(hooked_bot(), max_body_bytes=2048)
    body = encode(before_send_payload("x" * 4096))
    response = post(client, path, body)
    assert response.status_code == 413


@pytest.mark.parametrize("path", ROUTES)
def test_gzip_bomb_is_413_and_gzip_verifies_inflated(make_client: MakeClient, path: str) -> None:
    client = make_client(hooked_bot(), max_body_bytes=4096)
    plain = valid_body(path)
    ok = client.app.test_client().post(
        PREFIX + path,
        data=gzip.compress(plain),
        headers={**signed_headers(plain, api_key=KEY, secret=SECRET), "Content-Encoding": "gzip"},
    )
    assert ok.status_code == 200
    bomb = gzip.compress(b'{"a": "' + b"0" * 1_000_000 + b'"}')
    assert len(bomb) < 4096
    response = client.app.test_client().post(
        PREFIX + path, data=bomb, headers={"X-Api-Key": KEY, "X-Signature": sign(SECRET, bomb)}
    )
    assert response.status_code == 413


# -- before-message-send -----------------------------------------------------------------------


def test_hooks_run_in_order_and_see_earlier_changes(make_client: MakeClient) -> None:
    bot = Bot()
    seen: list[str] = []

    @bot.before_send
    def first(ctx: BeforeSendContext) -> Message:
        seen.append(ctx.text)
        return Message(text=ctx.text.upper())

    @bot.before_send
    def second(ctx: BeforeSendContext) -> dict[str, Any]:
        seen.append(ctx.text)
        return {"text": ctx.text + "!", "mood": "loud"}

    reply = make_client(bot).before_send("hi")
    assert seen == ["hi", "HI"]
    assert reply.status == 200
    assert reply.message == {
        "text": "HI!",
        "type": "regular",
        "silent": False,
        "attachments": [],
        "mood": "loud",
    }


def test_only_rewritable_fields_go_back(make_client: MakeClient) -> None:
    bot = Bot()

    @bot.before_send
    def meddle(ctx: BeforeSendContext) -> dict[str, Any]:
        return {"text": "new", "created_at": "2000-01-01", "html": "<b>x</b>", "id": "forged"}

    reply = make_client(bot).before_send("old")
    assert reply.message is not None
    assert reply.message["text"] == "new"
    for field in ("created_at", "html", "id", "user"):
        assert field not in reply.message


def test_unchanged_message_is_echoed_and_empty_id_accepted(make_client: MakeClient) -> None:
    client = make_client(hooked_bot())
    payload = before_send_payload("plain", i18n={"fr_text": "simple"})
    assert payload["message"]["id"] == ""
    reply = client.post("/before-message-send", payload, kind="before_send")
    assert reply.status == 200
    assert reply.text == "plain" and reply.message["i18n"] == {"fr_text": "simple"}


def test_reject_with_ctx_reject_and_message_error(make_client: MakeClient) -> None:
    bot = Bot()
    rejected: list[str] = []

    @bot.before_send
    def no_caps(ctx: BeforeSendContext) -> Message | None:
        if ctx.text.isupper():
            return ctx.reject("Please don't shout.")
        if "spam" in ctx.text:
            return Message.error("No spam.")
        return None

    def receiver(sender: Any, ctx: BeforeSendContext, text: str) -> None:
        rejected.append(text)

    signals.message_rejected.connect(receiver)
    try:
        client = make_client(bot)
        shout = client.before_send("HELLO")
        spam = client.before_send("buy spam")
        fine = client.before_send("hello")
    finally:
        signals.message_rejected.disconnect(receiver)
    assert shout.status == 200 and shout.json == {
        "message": {"type": "error", "text": "Please don't shout."}
    }
    assert spam.json == {"message": {"type": "error", "text": "No spam."}}
    assert fine.text == "hello" and fine.type == "regular"
    assert rejected == ["Please don't shout.", "No spam."]


def test_rewrite_signal_carries_the_changes(make_client: MakeClient) -> None:
    bot = Bot()
    seen: list[dict[str, Any]] = []

    @bot.before_send
    def polite(ctx: BeforeSendContext) -> str:
        return ctx.text.replace("stupid", "silly")

    def receiver(sender: Any, ctx: BeforeSendContext, changes: dict[str, Any]) -> None:
        seen.append(changes)

    signals.message_rewritten.connect(receiver)
    try:
        reply = make_client(bot).before_send("a stupid idea")
    finally:
        signals.message_rewritten.disconnect(receiver)
    assert reply.text == "a silly idea"
    assert seen == [{"text": "a silly idea"}]


def test_a_raising_hook_fails_open_and_the_others_still_run(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    bot = Bot()
    failures: list[BaseException] = []

    @bot.before_send
    def broken(ctx: BeforeSendContext) -> None:
        raise RuntimeError("moderation service down")

    @bot.before_send
    def mask(ctx: BeforeSendContext) -> str:
        return ctx.text.replace("secret", "******")

    def receiver(sender: Any, ctx: BeforeSendContext, exception: BaseException) -> None:
        failures.append(exception)

    signals.hook_failed.connect(receiver)
    try:
        reply = make_client(bot).before_send("my secret")
    finally:
        signals.hook_failed.disconnect(receiver)
    assert reply.status == 200 and reply.text == "my ******"
    assert [str(e) for e in failures] == ["moderation service down"]
    assert "moderation service down" in caplog.text and "Traceback" in caplog.text


def test_a_raising_fail_closed_hook_rejects_neutrally(make_client: MakeClient) -> None:
    bot = Bot()

    @bot.before_send(fail_closed=True)
    def strict(ctx: BeforeSendContext) -> None:
        raise RuntimeError("classifier timed out: internal detail")

    reply = make_client(bot).before_send("hello")
    assert reply.status == 200 and reply.type == "error"
    assert reply.text == "This message could not be checked right now and was not sent."
    assert "internal detail" not in reply.body.decode()


def test_budget_overrun_fails_open_or_closed(make_client: MakeClient) -> None:
    release = threading.Event()
    open_bot, closed_bot = Bot(), Bot()

    @open_bot.before_send
    def slow_open(ctx: BeforeSendContext) -> str:
        release.wait(5)
        return "too late"

    @closed_bot.before_send(fail_closed=True)
    def slow_closed(ctx: BeforeSendContext) -> str:
        release.wait(5)
        return "too late"

    try:
        passed = make_client(open_bot, before_send_budget=0.05).before_send("hello")
        refused = make_client(closed_bot, before_send_budget=0.05).before_send("hello")
    finally:
        release.set()
    assert passed.status == 200 and passed.text == "hello"
    assert refused.status == 200 and refused.type == "error"


def test_only_the_delivery_that_ran_the_hooks_says_they_overran(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A copy that reaches its deadline before the first delivery's answer is stored (the
    first on another worker, its answer not written yet) gets the in-flight answer too;
    it is not a hook that overran: that log line and ``hook_failed`` are the first's."""
    bot = Bot()
    release = threading.Event()

    @bot.before_send
    def slow(ctx: BeforeSendContext) -> str:
        release.wait(5)
        return "too late"

    failures: list[BaseException] = []

    def receiver(sender: Any, ctx: BeforeSendContext, exception: BaseException) -> None:
        failures.append(exception)

    client = make_client(bot, before_send_budget=0.2)
    store = client.runtime.store
    read = store.get

    def not_written_yet(key: str) -> Entry | None:
        entry = read(key)
        return None if entry is None else Entry(entry.fingerprint, None, None)

    monkeypatch.setattr(store, "get", not_written_yet)
    payload = before_send_payload("hello")
    replies: list[Any] = []

    def post() -> None:
        replies.append(
            client.post("/before-message-send", payload, webhook_id="bs-c", kind="before_send")
        )

    signals.hook_failed.connect(receiver)
    try:
        first = threading.Thread(target=post)
        first.start()
        time.sleep(0.05)  # the first has claimed the id and is in the hook
        post()  # the copy: waits for the first's answer until its deadline, then in flight
        first.join(5)
    finally:
        release.set()
        signals.hook_failed.disconnect(receiver)
    assert [r.text for r in replies] == ["hello", "hello"]  # both passed as sent
    assert caplog.text.count("before-send hooks overran their budget") == 1
    assert [str(e) for e in failures] == ["budget spent"]


def test_duplicate_delivery_gets_the_same_decision(make_client: MakeClient) -> None:
    bot = Bot()
    calls: list[str] = []

    @bot.before_send
    def count(ctx: BeforeSendContext) -> str:
        calls.append(ctx.text)
        return f"{ctx.text} #{len(calls)}"

    client = make_client(bot)
    payload = before_send_payload("hi")
    first = client.post("/before-message-send", payload, webhook_id="bs-1", kind="before_send")
    again = client.post("/before-message-send", payload, webhook_id="bs-1", kind="before_send")
    assert calls == ["hi"]
    assert again.body == first.body and first.text == "hi #1"


# -- push ---------------------------------------------------------------------------------------


def test_push_runs_matching_handlers_with_the_event(make_client: MakeClient) -> None:
    bot = Bot()
    got: list[tuple[str, str | None, str | None]] = []

    @bot.on("message.new", "message.updated")
    def on_message(event: Event) -> None:
        got.append((event.type, event.cid, event.webhook_id))

    @bot.on("reaction.*")
    def on_reaction(event: Event) -> None:
        got.append((event.type, event.cid, event.webhook_id))

    client = make_client(bot)
    assert client.event("message.new", webhook_id="w1").json == {"ok": True}
    client.event("reaction.new", webhook_id="w2")
    ignored = client.event("channel.created", webhook_id="w3")
    assert ignored.status == 200 and ignored.json == {"ok": True, "ignored": "no handler"}
    assert got == [
        ("message.new", "messaging:general", "w1"),
        ("reaction.new", "messaging:general", "w2"),
    ]


def test_unknown_event_types_reach_the_catch_all(make_client: MakeClient) -> None:
    bot = Bot()
    got: list[dict[str, Any]] = []

    @bot.on()
    def everything(event: Event) -> None:
        got.append(event.data)

    make_client(bot).event("future.thing", extra={"kept": True})
    assert got[0]["type"] == "future.thing" and got[0]["extra"] == {"kept": True}


def test_the_bots_own_events_are_ignored(make_client: MakeClient) -> None:
    bot = Bot()
    got: list[str] = []

    @bot.on("message.new", "reaction.new")
    def seen(event: Event) -> None:
        got.append(f"{event.type} by {event.user['id'] if event.user else '?'}")

    client = make_client(bot, bot_user_id="helper-bot")
    own = client.event("message.new", user={"id": "helper-bot"})
    assert own.json == {"ok": True, "ignored": "own event"}
    # someone reacting to one of the bot's messages is not the bot's own event
    from botkit.testing import message

    client.event(
        "reaction.new", user={"id": "bob"}, message=message("hi", user={"id": "helper-bot"})
    )
    assert got == ["reaction.new by bob"]


def test_push_is_deduplicated(make_client: MakeClient) -> None:
    bot = Bot()
    got: list[str] = []

    @bot.on("message.new")
    def seen(event: Event) -> None:
        got.append(event.type)

    client = make_client(bot)
    payload = event_payload("message.new")  # Stream retries with the same body
    replies = [
        client.post("/push", payload, webhook_id="same", attempt=n, kind="push") for n in (1, 2, 3)
    ]
    assert got == ["message.new"]
    assert [r.status for r in replies] == [200, 200, 200]
    assert len({r.body for r in replies}) == 1


def test_push_signals(make_client: MakeClient) -> None:
    bot = Bot()

    @bot.on("message.new")
    def fine(event: Event) -> None:
        pass

    @bot.on("message.new")
    def broken(event: Event) -> None:
        raise ValueError("boom")

    received: list[str] = []
    handled: list[str] = []
    failed: list[str] = []

    def on_received(sender: Any, event: dict[str, Any]) -> None:
        received.append(event["type"])

    def on_handled(sender: Any, event: Event, handler: Any, duration: float) -> None:
        handled.append(handler.__name__)

    def on_failed(sender: Any, event: Event, handler: Any, exception: BaseException) -> None:
        failed.append(f"{handler.__name__}: {exception}")

    signals.event_received.connect(on_received)
    signals.event_handled.connect(on_handled)
    signals.event_failed.connect(on_failed)
    try:
        reply = make_client(bot).event("message.new")
    finally:
        signals.event_received.disconnect(on_received)
        signals.event_handled.disconnect(on_handled)
        signals.event_failed.disconnect(on_failed)
    assert reply.status == 200
    assert received == ["message.new"]
    assert handled == ["fine"]
    assert failed == ["broken: boom"]


def test_push_answers_503_when_the_event_cannot_be_queued(make_client: MakeClient) -> None:
    from botkit.runtime.tasks import QueueUnavailable, TaskQueue

    class Refusing(TaskQueue):
        def submit(self, name: str, payload: dict[str, Any]) -> None:
            raise QueueUnavailable("queue is full")

    bot = hooked_bot()
    config = Config(keyring=KeyRing({KEY: (SECRET,)}), store_url="memory://")
    client = bot.test_client(config=config, api_key=KEY, secret=SECRET, queue=Refusing())
    payload = event_payload("message.new")
    try:
        first = client.post("/push", payload, webhook_id="q1", kind="push")
        retry = client.post("/push", payload, webhook_id="q1", attempt=2, kind="push")
    finally:
        client.runtime.close()
    assert first.status == 503 and retry.status == 503
    assert json.loads(first.body) == {"error": "could not queue the event"}
