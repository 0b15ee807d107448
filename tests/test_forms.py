"""Tests for botkit.core.forms: marshmallow schemas for ``form_data``."""

from __future__ import annotations

from typing import Any

import pytest
from marshmallow import Schema, fields, validate

from botkit import Action, Attachment, Bot, CommandContext, FormError, Message
from botkit import mml as m

# These forms exist to exercise MML submits, which only the MML client line renders.
pytestmark = pytest.mark.botkit_render_warnings("ignore")


class Order(Schema):
    size = fields.String(required=True, validate=validate.OneOf(["small", "large"]))
    cups = fields.Integer(load_default=1, validate=validate.Range(1, 9))


reached: list[Any] = []


def make_bot(*, handler: str | None = None) -> Bot:
    bot = Bot()

    @bot.command("coffee")
    def coffee(ctx: CommandContext) -> Message:
        form = m.mml(
            m.input_("size"),
            m.input_("cups"),
            m.button_list(m.button("Order", name="action", value="order")),
            name="coffee",
        )
        buttons = Attachment(
            type="image",
            image_url="https://example.com/coffee.png",
            actions=[Action.button("size", "large", "Large please")],
        )
        return Message.ephemeral("What size?", mml=form, attachments=[buttons], state={"n": 1})

    @coffee.form("coffee", schema=Order)
    def order(ctx: CommandContext) -> Message:
        reached.append(ctx.form)
        return Message.publish(f"{ctx.form['cups']} {ctx.form['size']} coffee")

    @coffee.action("size", schema=Order())  # an instance works as well as the class
    def quick(ctx: CommandContext) -> str:
        reached.append(ctx.form)
        return f"quick {ctx.form['size']}"

    @bot.form("survey", schema=Order)
    def survey(ctx: CommandContext) -> str:
        reached.append(ctx.form)
        return "thanks"

    if handler == "command":

        @coffee.errorhandler(FormError)
        def ask_again(ctx: CommandContext, error: FormError) -> Message:
            return Message.ephemeral(f"Try again: {sorted(error.errors)}", state={"n": 2})

    elif handler == "bot":

        @bot.errorhandler(FormError)
        def bot_level(ctx: CommandContext, error: FormError) -> str:
            return f"bot says: {error.describe()}"

    return bot


def setup_function() -> None:
    reached.clear()


def test_valid_form_reaches_the_handler_loaded() -> None:
    with make_bot().test_client() as client:
        reply = client.command("/coffee").submit(size="large", cups="2", extra="ignored")
    assert reply.type == "regular" and reply.text == "2 large coffee"
    assert reached == [{"size": "large", "cups": 2}]  # typed, unknown fields and mml_name dropped


def test_defaults_from_the_schema() -> None:
    with make_bot().test_client() as client:
        assert client.command("/coffee").submit(size="small").text == "1 small coffee"


def test_invalid_form_never_reaches_the_handler() -> None:
    with make_bot().test_client() as client:
        reply = client.command("/coffee").submit(size="huge", cups="0")
    assert reached == []
    assert reply.status == 200
    assert reply.type == "ephemeral"  # the default: an ephemeral message listing the fields
    assert reply.text is not None and reply.text.startswith("Please check the form: ")
    assert "size: Must be one of: small, large." in reply.text
    assert "cups: Must be greater than or equal to 1" in reply.text


def test_schema_on_a_button() -> None:
    with make_bot().test_client() as client:
        reply = client.command("/coffee")
        assert reply.click("Large please").text == "quick large"
        assert (reply.click(size="tiny").text or "").startswith("Please check the form: size:")


def test_standalone_form_schema() -> None:
    with make_bot().test_client() as client:
        msg = client.command("/coffee").message
        assert msg is not None
        standalone = {**msg, "command": ""}
        assert client.action(standalone, {"mml_name": "survey", "size": "small"}).text == "thanks"
        bad = client.action(standalone, {"mml_name": "survey", "cups": "x"})
    assert "size: Missing data for required field." in (bad.text or "")
    assert "cups: Not a valid integer." in (bad.text or "")


def test_command_error_handler_decides_what_the_user_sees() -> None:
    with make_bot(handler="command").test_client() as client:
        reply = client.command("/coffee").submit(size="huge")
    assert reached == []
    assert reply.text == "Try again: ['size']"
    assert reply.state == {"n": 2}
    assert reply.mml  # still the form: the user can fix it


def test_bot_error_handler_decides_too() -> None:
    with make_bot(handler="bot").test_client() as client:
        reply = client.command("/coffee").submit(cups="12", size="small")
    assert (
        reply.text
        == "bot says: cups: Must be greater than or equal to 1 and less than or equal to 9."
    )


def test_form_error_describe() -> None:
    error = FormError({"a": ["Bad.", "Worse."], "b": "Missing.", "c": {"d": ["No"]}})
    assert error.describe() == "a: Bad. Worse. b: Missing. c.d: No."
    assert error.errors["b"] == "Missing."
