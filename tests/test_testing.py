"""Tests for botkit.testing: the test client, replies, and the payload factories."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from botkit import Action, Attachment, Bot, CommandContext, Event, Message
from botkit import mml as m
from botkit.testing import (
    TEST_API_KEY,
    TEST_API_SECRET,
    TestClient,
    action_payload,
    before_send_payload,
    channel,
    command_payload,
    event_payload,
    message,
    signed_headers,
    user,
)

bot = Bot()
events: list[Event] = []


@bot.command("count")
def count(ctx: CommandContext, start: int = 0) -> Message:
    """Count clicks."""
    return Message.ephemeral(
        f"count {start}",
        attachments=[
            Attachment(
                type="image",
                image_url="https://example.com/c.png",
                actions=[
                    Action.button("step", "up", "Up", style="primary"),
                    Action.button("step", "done", "Done"),
                    Action.button("step", "drop", "Drop"),
                ],
            )
        ],
        mml=m.mml(m.input_("note"), m.button_list(m.button("Save", "form", "save")), name="notes"),
        state={"counter": start},
    )


@count.action("step", "up")
def up(ctx: CommandContext) -> Message:
    n = int(ctx.state["counter"]) + 1
    return Message.ephemeral(f"count {n} by {ctx.user_id}", state={"counter": n})


@count.action("step", "done")
def done(ctx: CommandContext) -> Message:
    return Message.publish(f"final count {ctx.state['counter']}")


@count.action("step", "drop")
def drop(ctx: CommandContext) -> Message:
    return Message.delete()


@count.form("notes")
def note(ctx: CommandContext) -> str:
    return f"noted {ctx.form_data}"


@bot.before_send
def no_shouting(ctx: Any) -> Message | None:
    if ctx.text.isupper():
        return ctx.reject("Please don't shout.")
    return None


@bot.on("message.new")
def remember(event: Event) -> None:
    events.append(event)


@bot.on("reaction.new")
def broken(event: Event) -> None:
    raise RuntimeError("reaction handler broke")


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with bot.test_client() as c:
        yield c


def test_command_reply(client: TestClient) -> None:
    reply = client.command("/count 3", user={"id": "bob"})
    assert reply.status == 200
    assert reply.type == "ephemeral"
    assert reply.text == "count 3"
    assert reply.state == {"counter": 3}
    assert [a["text"] for a in reply.actions] == ["Up", "Done", "Drop"]
    assert reply.attachments[0]["type"] == "image"
    assert reply.message is not None and reply.message["user"]["id"] == "bob"
    assert reply.mml is not None and 'name="notes"' in reply.mml
    assert not reply.deleted
    assert "200" in repr(reply)


def test_a_conversation_carries_state(client: TestClient) -> None:
    reply = client.command("/count")
    reply = reply.click("Up").click("Up")
    assert reply.text == "count 2 by alice"
    assert reply.state["counter"] == 2
    reply = reply.click(step="up", user={"id": "carol"})
    assert reply.text == "count 3 by carol"
    final = reply.click("Done")
    assert final.type == "regular"
    assert final.text == "final count 3"
    assert final.actions == []  # publishing removes the buttons


def test_delete_and_submit(client: TestClient) -> None:
    reply = client.command("/count")
    dropped = reply.click("Drop")
    assert dropped.deleted and dropped.message is None and dropped.type is None
    noted = reply.submit(note="hi", form="save")
    assert noted.text == "noted {'note': 'hi', 'form': 'save', 'mml_name': 'notes'}"


def test_click_mistakes(client: TestClient) -> None:
    reply = client.command("/count")
    with pytest.raises(
        AssertionError, match=r"no button 'Nope'; the buttons are \['Up', 'Done', 'Drop'\]"
    ):
        reply.click("Nope")
    with pytest.raises(TypeError, match="needs a button label"):
        reply.click()
    with pytest.raises(AssertionError, match="no message to click on"):
        reply.click("Drop").click("Up")
    with pytest.raises(ValueError, match="starts with '/'"):
        client.command("count")


def test_unknown_command(client: TestClient) -> None:
    reply = client.command("/nothing here")
    assert reply.type == "error"
    assert "command nothing doesn't exist" in (reply.text or "")


def test_before_send(client: TestClient) -> None:
    passed = client.before_send("hello there")
    assert passed.status == 200 and passed.kind == "before_send"
    assert passed.text == "hello there"
    rejected = client.before_send("HELLO THERE", user={"id": "bob"})
    assert rejected.type == "error"
    assert rejected.text == "Please don't shout."


def test_events_run_synchronously(client: TestClient) -> None:
    events.clear()
    reply = client.event("message.new", message=message("hi", user={"id": "dave"}))
    assert reply.status == 200
    assert reply.errors == []
    assert [e.type for e in events] == ["message.new"]
    assert events[0].message is not None and events[0].message["text"] == "hi"
    assert events[0].user == {"id": "alice"}


def test_event_handler_errors_are_kept(client: TestClient) -> None:
    reply = client.event("reaction.new", reaction={"type": "like"})
    assert reply.status == 200  # Stream got its answer
    assert [str(e) for e in reply.errors] == ["reaction handler broke"]


def test_payload_factories() -> None:
    assert user("bob", role="admin") == {
        "id": "bob",
        "role": "admin",
        "name": "Bob",
        "banned": False,
    }
    assert channel("team:dev")["id"] == "dev"
    msg = message("/gif cats", user={"id": "x"})
    assert (msg["command"], msg["args"], msg["user"]) == ("gif", "cats", {"id": "x"})
    assert "command" not in message("plain")
    body = command_payload("/remind me 5", user=user("eve"))
    assert body["user"]["id"] == "eve" and body["message"]["args"] == "me 5"
    click = action_payload(body["message"], {"step": 1})
    assert click["form_data"] == {"step": "1"}
    hook = before_send_payload("hi")
    assert hook["message"]["id"] == "" and hook["channel"]["cid"] == "messaging:general"
    assert "cid" not in hook["message"]
    ev = event_payload("message.new", cid="team:dev")
    assert (ev["channel_type"], ev["channel_id"]) == ("team", "dev")
    assert ev["message"]["cid"] == "team:dev"


def test_post_signs_with_the_clients_key(client: TestClient) -> None:
    body = json.dumps(command_payload("/count")).encode()
    headers = signed_headers(body, api_key=TEST_API_KEY, secret=TEST_API_SECRET, webhook_id="w1")
    assert headers["X-Webhook-Id"] == "w1" and headers["X-Api-Key"] == TEST_API_KEY
    assert client.post("/custom-commands?type=count", body).text == "count 0"
    bad = client.post("/custom-commands?type=count", body, headers={"X-Signature": "0" * 64})
    assert bad.status == 401 and bad.message is None


def test_retries_are_answered_once(client: TestClient) -> None:
    first = client.command("/count 1", webhook_id="same-id")
    again = client.post(
        "/custom-commands?type=count", first.request or {}, webhook_id="same-id", attempt=2
    )
    assert again.body == first.body
