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
    RenderCheckError,
    RenderCheckWarning,
    TestClient,
    action_payload,
    before_send_payload,
    channel,
    command_payload,
    event_payload,
    message,
    render_check,
    signed_headers,
    user,
)

#: These bots build odd replies on purpose; the render check is tested explicitly below.
pytestmark = pytest.mark.botkit_render_warnings("ignore")

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
    noted = reply.submit(note="hi")  # the form's only button: no need to name it
    assert noted.text == "noted {'mml_name': 'notes', 'note': 'hi', 'form': 'save'}"


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


# -- the test client sends what Stream's client sends (issue #21) ---------------------------

echo = Bot()


@echo.command("form")
def form_command(ctx: CommandContext) -> Message:
    """A form with two buttons, a pre-filled input, a hidden one and an empty one."""
    form = m.mml(
        m.input_("email", label="Email"),
        m.input_("priority", value="normal"),
        m.input_("token", value="t1", type="hidden"),
        m.number("cups", value=2),
        m.button_list(
            m.button("Confirm", name="action", value="confirm"),
            m.button("Not now", name="action", value="cancel"),
            m.button("Docs", url="https://example.com/docs"),
        ),
        name="ticket",
    )
    card = Attachment(
        type="image",
        image_url="https://example.com/t.png",
        actions=[Action.button("pick", "one", "One"), Action.button("pick", "two", "Two")],
    )
    return Message.ephemeral("A ticket?", mml=form, attachments=[card])


@form_command.action("action")
@form_command.action("pick")
def echo_form(ctx: CommandContext) -> str:
    return json.dumps(ctx.form_data)


@pytest.fixture
def echo_client() -> Iterator[TestClient]:
    with echo.test_client() as c:
        yield c


def sent(reply: Any) -> dict[str, str]:
    result: dict[str, str] = json.loads(reply.text)
    return result


def test_submit_sends_the_inputs_and_the_clicked_button(echo_client: TestClient) -> None:
    reply = echo_client.command("/form")
    # as mml-react: the form's name, every input's value (initial unless typed), the button
    assert sent(reply.submit("confirm", email="ann@example.com")) == {
        "mml_name": "ticket",
        "priority": "normal",
        "token": "t1",
        "cups": "2",
        "email": "ann@example.com",
        "action": "confirm",
    }
    by_label = sent(reply.submit("not now", priority="high"))  # the label, any case
    assert by_label["action"] == "cancel" and by_label["priority"] == "high"
    assert "email" not in by_label  # never typed, no initial value: nothing to send


def test_submit_needs_the_button_when_there_are_several(echo_client: TestClient) -> None:
    reply = echo_client.command("/form")
    with pytest.raises(TypeError, match=r"2 buttons: 'Confirm' \(action=confirm\), 'Not now'"):
        reply.submit(email="ann@example.com")
    with pytest.raises(AssertionError, match="no button 'Docs'; its buttons are 'Confirm'"):
        reply.submit("Docs")  # a link button opens a page, it submits nothing


def test_submit_without_a_form(echo_client: TestClient) -> None:
    reply = echo_client.command("/help")
    with pytest.raises(AssertionError, match="no MML form to submit"):
        reply.submit("confirm")


def test_click_sends_exactly_the_buttons_pair(echo_client: TestClient) -> None:
    reply = echo_client.command("/form")
    assert sent(reply.click("Two")) == {"pick": "two"}
    assert sent(reply.click(pick="one")) == {"pick": "one"}
    with pytest.raises(TypeError, match="not both"):
        reply.click("Two", pick="one")
    with pytest.raises(TypeError, match="one name=value"):
        reply.click(pick="one", action="confirm")


# -- render warnings -------------------------------------------------------------------------

render_bot = Bot()


@render_bot.command("pic")
def pic(ctx: CommandContext) -> Message:
    url = "data:image/png;base64,AA" if ctx.args == "data" else "https://example.com/p.png"
    return Message.ephemeral(attachments=[Attachment(type="image", image_url=url)])


@render_bot.command("form")
def empty_form(ctx: CommandContext) -> Message:
    return Message.ephemeral("Your email?", mml=m.mml(m.input_("email"), name="f"))


@pytest.fixture
def render_client() -> Iterator[TestClient]:
    with render_bot.test_client() as c:
        yield c


def test_replies_carry_their_warnings(render_client: TestClient) -> None:
    (warning,) = render_client.command("/pic data").warnings
    assert (warning.rule, warning.where) == (1, "attachments[0].image_url")
    assert render_client.command("/pic https").warnings == []
    form = render_client.command("/form")
    assert [w.code for w in form.warnings] == ["mml-only-input"]  # the current line
    assert form.warnings_for("mml") == []  # clients with MML show the form
    assert render_client.event("message.new").warnings == []
    with pytest.raises(ValueError, match="unknown client line"):
        form.warnings_for("v12")


def test_render_check_error_fails_at_the_call(render_client: TestClient) -> None:
    with render_check("error"):
        assert render_client.command("/pic https").status == 200
        with pytest.raises(RenderCheckError) as raised:
            render_client.command("/pic data")
        with render_check("error", allow=[1]):
            assert render_client.command("/pic data").status == 200
        with pytest.raises(RenderCheckError, match="rule 9"):
            render_client.command("/form")  # the current client shows no MML...
    with render_check("error", lines=["mml"]):
        assert render_client.command("/form").status == 200  # ...older clients do
    message = str(raised.value)
    assert "[current] attachments[0].image_url is a data: URL" in message
    assert "@pytest.mark.botkit_render_allow(1, reason=" in message


def test_render_check_warn_and_ignore(render_client: TestClient) -> None:
    with render_check("warn"), pytest.warns(RenderCheckWarning, match="data: URL"):
        assert render_client.command("/pic data").status == 200
    with render_check("ignore"):
        assert render_client.command("/pic data").status == 200
    with pytest.raises(ValueError, match="choose one of error, warn, ignore"):
        render_check("loud").__enter__()
    with pytest.raises(ValueError, match="unknown client line"):
        render_check("error", lines=["v12"]).__enter__()


@render_bot.command("ask")
def ask(ctx: CommandContext) -> Message:
    form = m.mml(m.input_("a", value="1"), m.input_("b", value="2"), name="ask")
    return Message.ephemeral("Two numbers", mml=form)


@ask.form("ask")
def ask_again(ctx: CommandContext) -> Message:
    note = [m.text("⚠ Please fix: a")] if ctx.form_data and ctx.form_data.get("a") == "x" else []
    form = m.mml(*note, m.input_("a", value="1"), m.input_("b", value="2"), name="ask")
    return Message.ephemeral("Two numbers", mml=form)


def test_the_answer_to_a_submit_is_checked_as_a_redraw(render_client: TestClient) -> None:
    reply = render_client.command("/ask")
    assert reply.warnings_for("mml") == []
    fine = reply.submit(a="3")
    assert fine.warnings_for("mml") == []
    shifted = reply.submit(a="x")
    assert [(w.code, w.where) for w in shifted.warnings_for("mml")] == [
        ("input-shifted", "mml input 'a'")
    ]
    # the current line shows no MML at all: no shift, but the note is lost there
    assert [w.code for w in shifted.warnings] == ["mml-invisible"]
