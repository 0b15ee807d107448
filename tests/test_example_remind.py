"""The /remind example, tested the way a bot author tests a bot: with the test client only.

A user of Stream's current client types the command and clicks; the MML edit form is for
clients that still render MML (13.1). Every reply is checked for both client lines by the
pytest plugin's render check.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from botkit import Bot
from examples.bot import bot as examples_bot

#: The examples must render as meant on both client lines (issue #21).
pytestmark = pytest.mark.botkit_render_warnings("error", lines=["current", "mml"])

USAGE = "Usage: /remind <who> <minutes> <what>"
EXAMPLE = "For example: /remind me 10 stretch your legs"


@pytest.fixture
def bot() -> Bot:
    return examples_bot


def inputs(reply):
    """The MML form's elements in order: (tag, name, value)."""
    root = ET.fromstring(reply.mml)
    return [(el.tag, el.get("name"), el.get("value")) for el in root.iter() if el is not root]


def test_remind_someone(bot_client):
    reply = bot_client.command('/remind @bob 10 "call mum"', user={"id": "alice"})
    assert reply.type == "ephemeral"
    assert reply.text == "Remind @bob in 10 min: call mum?"
    (card,) = reply.attachments
    assert card["title"] == "Reminder" and card["title_link"].startswith("https://")
    assert "text" not in card  # the client would show it again in the button row
    assert [a["text"] for a in reply.actions] == ["Schedule", "Cancel"]
    done = reply.click("Schedule")
    assert done.type == "regular"
    assert done.text == "⏰ @bob, in 10 min: call mum"
    assert done.actions == [] and done.attachments == [] and done.mml == ""
    assert done.state["remind_due"].endswith("+00:00")


def test_no_quotes_needed_and_me(bot_client):
    reply = bot_client.command("/remind me 5 water the plants", user={"id": "carol"})
    assert reply.text == "Remind @carol in 5 min: water the plants?"
    assert reply.click("Schedule").text == "⏰ @carol, in 5 min: water the plants"


def test_without_a_text_says_what_to_type(bot_client):
    """The current client cannot fill an MML form: a missing text gets usage help."""
    reply = bot_client.command("/remind @bob 10")
    assert reply.type == "ephemeral"
    assert reply.text == f"{USAGE}\nMissing what.\n{EXAMPLE}"
    assert reply.attachments == [] and not reply.mml
    assert reply.actions == []  # no Schedule that could only fail


def test_edit_with_the_mml_form(bot_client):
    reply = bot_client.command("/remind @bob 10 tea")
    assert inputs(reply) == [
        ("input", "minutes", "10"),
        ("input", "what", "tea"),
        ("button_list", None, None),
        ("button", "action", "save"),
    ]
    edited = reply.submit("Save", minutes="30", what="stand-up")
    assert edited.text == "Remind @bob in 30 min: stand-up?"
    assert edited.click("Schedule").text == "⏰ @bob, in 30 min: stand-up"


def test_a_bad_form_asks_again_keeping_what_was_typed(bot_client):
    reply = bot_client.command("/remind @bob 10 tea").submit("Save", minutes="soon", what="x" * 201)
    assert reply.type == "ephemeral"
    assert reply.text.startswith("Remind @bob in 10 min: tea?\n⚠ Please fix: ")
    assert "minutes: Not a whole number." in reply.text
    assert "what: Length must be between 1 and 200." in reply.text
    # the note is in the text, not above the inputs: each input keeps its typed value
    assert inputs(reply)[:2] == [("input", "minutes", "soon"), ("input", "what", "x" * 201)]
    assert "Please fix" not in reply.mml
    fixed = reply.submit("Save", minutes="2", what="tea")
    assert fixed.text == "Remind @bob in 2 min: tea?"
    assert fixed.click("Schedule").text == "⏰ @bob, in 2 min: tea"


def test_an_emptied_field_shows_the_saved_value(bot_client):
    reply = bot_client.command("/remind @bob 10 tea").submit("Save", minutes="", what="")
    assert "Please fix" in reply.text
    assert inputs(reply)[:2] == [("input", "minutes", "10"), ("input", "what", "tea")]


def test_cancel(bot_client):
    assert bot_client.command("/remind @bob 10 tea").click("Cancel").deleted


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("/remind", "Missing who."),
        ("/remind @bob", "Missing minutes (a whole number)."),
        ("/remind @bob soon tea", "minutes must be a whole number, not 'soon'."),
        ("/remind @bob 0 tea", "minutes must be from 1 to 10080."),
        ("/remind @bob 10 " + "x" * 201, "what must be at most 200 characters."),
        ('/remind "@bob 10 tea', "A quote is never closed"),
    ],
)
def test_usage_help(bot_client, text, problem):
    reply = bot_client.command(text)
    assert reply.type == "ephemeral"
    usage, detail, example = reply.text.split("\n")
    assert usage == USAGE
    assert detail.startswith(problem)
    assert example == EXAMPLE


def test_help(bot_client):
    assert "/remind <who> <minutes> <what> — Remind someone of something." in (
        bot_client.command("/help").text
    )
    details = bot_client.command("/help remind").text
    assert "• minutes: In how many minutes, up to a week (10080). (a whole number)" in details
