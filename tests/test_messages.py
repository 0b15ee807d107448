"""Tests for botkit.core.messages: builders, merge semantics, to_dict, coerce_reply."""

from __future__ import annotations

from typing import Any

import pytest

from botkit import Action, Attachment, Bot, CommandContext, Field, Message
from botkit import mml as m
from botkit.core.messages import coerce_reply

INCOMING: dict[str, Any] = {
    "id": "msg-1",
    "text": "/gif cats",
    "type": "ephemeral",
    "command": "gif",
    "args": "cats",
    "cid": "messaging:general",
    "mml": '<mml name="f"><text>x</text></mml>',
    "attachments": [
        {
            "type": "giphy",
            "image_url": "https://example.com/cat.gif",
            "actions": [{"name": "image_action", "value": "send", "text": "Send"}],
        }
    ],
    "gif_query": "cats",
    "gif_pick": 1,
}


def test_ephemeral_keeps_id_and_state() -> None:
    out = Message.ephemeral("hi", state={"gif_pick": 2}).merge_into(INCOMING)
    assert out is not None
    assert out["id"] == "msg-1"
    assert out["type"] == "ephemeral"
    assert out["text"] == "hi"
    assert out["gif_query"] == "cats"  # untouched state kept
    assert out["gif_pick"] == 2  # changed state applied
    assert out["attachments"] == INCOMING["attachments"]  # not given: unchanged
    assert INCOMING["gif_pick"] == 1  # the incoming message is not mutated


def test_ephemeral_with_attachments_replaces_them() -> None:
    att = Attachment(type="image", image_url="https://example.com/dog.png")
    out = Message.ephemeral(attachments=[att]).merge_into(INCOMING)
    assert out is not None
    assert out["attachments"] == [{"type": "image", "image_url": "https://example.com/dog.png"}]


def test_publish_drops_actions_and_clears_mml() -> None:
    out = Message.publish(text="").merge_into(INCOMING)
    assert out is not None
    assert out["type"] == "regular"
    assert out["id"] == "msg-1"
    assert out["gif_query"] == "cats"
    assert out["mml"] == ""
    assert out["attachments"] == [{"type": "giphy", "image_url": "https://example.com/cat.gif"}]
    assert all("actions" not in a for a in out["attachments"])


def test_regular_is_a_deprecated_alias_of_publish() -> None:
    with pytest.warns(DeprecationWarning, match=r"use Message\.publish\(\)") as warned:
        old = Message.regular("done", state={"pick": 2})
    assert warned[0].filename == __file__  # points at the caller, not at botkit
    assert old == Message.publish("done", state={"pick": 2})
    assert old.merge_into(INCOMING) == Message.publish("done", state={"pick": 2}).merge_into(
        INCOMING
    )


def test_publish_with_new_attachments_drops_their_actions_too() -> None:
    att = Attachment(type="image", image_url="u", actions=[Action.button("a", "b", "C")])
    out = Message.publish("done", attachments=[att]).merge_into(INCOMING)
    assert out is not None
    assert out["attachments"] == [{"type": "image", "image_url": "u"}]
    assert out["text"] == "done"


def test_publish_keeps_an_explicit_mml() -> None:
    out = Message.publish("done", mml="<mml><text>ok</text></mml>").merge_into(INCOMING)
    assert out is not None and out["mml"] == "<mml><text>ok</text></mml>"


def test_error_clears_attachments_and_mml() -> None:
    out = Message.error("Nope").merge_into(INCOMING)
    assert out is not None
    assert out["type"] == "error"
    assert out["text"] == "Nope"
    assert out["attachments"] == []
    assert out["mml"] == ""
    assert out["id"] == "msg-1"


def test_ctx_error_is_a_deprecated_alias_of_message_error() -> None:
    ctx = CommandContext(bot=Bot(), message=dict(INCOMING), user={"id": "alice"}, command="gif")
    with pytest.warns(DeprecationWarning, match=r"use Message\.error\(text\)") as warned:
        old = ctx.error("Nope")
    assert warned[0].filename == __file__
    assert old == Message.error("Nope")
    assert old.merge_into(INCOMING) == Message.error("Nope").merge_into(INCOMING)


def test_delete_merges_to_none() -> None:
    msg = Message.delete()
    assert msg.deleted
    assert msg.merge_into(INCOMING) is None
    assert repr(msg) == "Message.delete()"


def test_mml_element_gives_fallback_text() -> None:
    form = m.mml(m.text("Pick one"), name="f")
    msg = Message.ephemeral(mml=form)
    assert msg.changes["mml"].startswith('<mml name="f">')
    assert msg.text and "Pick one" in msg.text
    explicit = Message.ephemeral("my fallback", mml=form)
    assert explicit.text == "my fallback"


def test_type_text_properties_and_equality() -> None:
    msg = Message.ephemeral("hi", state={"a": 1})
    assert msg.type == "ephemeral" and msg.text == "hi"
    assert msg == Message.ephemeral("hi", state={"a": 1})
    assert msg != Message.ephemeral("ho")
    assert Message().type is None and Message().text is None
    with pytest.raises(TypeError):
        hash(msg)


def test_action_field_attachment_to_dict() -> None:
    action = Action.button("image_action", "send", "Send", style="primary")
    assert action.to_dict() == {
        "name": "image_action",
        "text": "Send",
        "type": "button",
        "style": "primary",
        "value": "send",
    }
    assert Action("a", "b", "C").to_dict()["style"] == "default"
    assert Field("Priority", "high").to_dict() == {
        "title": "Priority",
        "value": "high",
        "short": True,
    }
    att = Attachment(
        type="image",
        title="T",
        title_link="https://example.com",
        fields=[Field("k", "v", short=False)],
        actions=[action],
        extra={"custom_key": 1},
    )
    assert att.to_dict() == {
        "custom_key": 1,
        "type": "image",
        "title": "T",
        "title_link": "https://example.com",
        "fields": [{"title": "k", "value": "v", "short": False}],
        "actions": [action.to_dict()],
    }
    assert Attachment().to_dict() == {}


def test_attachments_may_be_dicts() -> None:
    msg = Message.ephemeral(attachments=[{"type": "image", "image_url": "u"}])
    assert msg.changes["attachments"] == [{"type": "image", "image_url": "u"}]


# -- coerce_reply -----------------------------------------------------------------------------


def test_coerce_none_changes_nothing() -> None:
    msg = coerce_reply(None)
    assert msg.changes == {} and not msg.deleted
    assert msg.merge_into(INCOMING) == INCOMING


def test_coerce_str_sets_text() -> None:
    out = coerce_reply("new text").merge_into(INCOMING)
    assert out is not None
    assert out["text"] == "new text" and out["type"] == "ephemeral" and out["id"] == "msg-1"


def test_coerce_message_is_itself() -> None:
    msg = Message.ephemeral("x")
    assert coerce_reply(msg) is msg


def test_coerce_dict_is_changes() -> None:
    msg = coerce_reply({"text": "t", "my_state": 3})
    assert msg.changes == {"text": "t", "my_state": 3}
    regular = coerce_reply({"type": "regular"}).merge_into(INCOMING)
    assert regular is not None and all("actions" not in a for a in regular["attachments"])


def test_coerce_wrapped_dict_and_null() -> None:
    assert coerce_reply({"message": {"text": "t"}}).changes == {"text": "t"}
    assert coerce_reply({"message": None}).deleted


@pytest.mark.parametrize("value", [42, 1.5, ["text"], b"bytes", object()])
def test_coerce_bad_type(value: Any) -> None:
    with pytest.raises(TypeError, match="return None, a str, a Message or a dict"):
        coerce_reply(value)


def test_coerce_bad_wrapped_message() -> None:
    with pytest.raises(TypeError, match="dict or None"):
        coerce_reply({"message": "text"})


def test_unknown_button_style_says_the_fix() -> None:
    with pytest.raises(ValueError, match="did you mean 'primary'") as info:
        Action.button("coin", "flip", "Flip", style="primery")  # type: ignore[arg-type]
    assert "'default' and 'primary'" in str(info.value)
    with pytest.raises(ValueError, match="Unknown button style 'danger'"):
        Action("coin", "flip", "Flip", style="danger")  # type: ignore[arg-type]
    assert Action.button("coin", "flip", "Flip", style="primary").style == "primary"
