"""botkit.core.render: what Stream's client lines show of a reply, rule by rule.

Each rule of the reference (docs: README "What Stream's clients show") has a minimal
reply that triggers it and one that does not.
"""

from __future__ import annotations

from typing import Any

import pytest

from botkit import mml as m
from botkit.core.render import LINES, RenderWarning, check_reply, check_update

SVG = "data:image/svg+xml;base64,PHN2Zy8+"
BUTTONS = [{"name": "action", "value": "go", "text": "Go", "type": "button"}]


def codes(message: dict[str, Any] | None, line: str = "current") -> list[tuple[int, str, str]]:
    return [(w.rule, w.code, w.where) for w in check_reply(message, line)]


def test_the_api() -> None:
    assert LINES == ("current", "mml")
    (warning,) = check_reply({"attachments": [{"type": "image", "image_url": SVG}]})
    assert warning == RenderWarning(
        1,
        "refused-url",
        "attachments[0].image_url is a data: URL: Stream's client replaces it with "
        "about:blank and shows a grey placeholder; serve the picture over https",
        "attachments[0].image_url",
    )
    assert str(warning).startswith("attachments[0].image_url is a data: URL")
    assert str(warning).endswith("(rule 1, refused-url)")


def test_deletion_and_plain_text_have_nothing_to_warn() -> None:
    assert check_reply(None) == [] and check_reply(None, "mml") == []
    assert check_reply({"text": "hello", "type": "ephemeral"}) == []
    assert check_reply({"text": "hello", "attachments": [], "mml": ""}, "mml") == []


def test_an_unknown_line_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"unknown client line 'v14'.*current, mml"):
        check_reply({"text": "hi"}, "v14")
    with pytest.raises(ValueError):
        check_reply(None, "")


# -- rule 1: refused URL schemes -----------------------------------------------------------


@pytest.mark.parametrize("line", LINES)
@pytest.mark.parametrize(
    ("url", "scheme"),
    [
        (SVG, "data"),
        ("javascript:alert(1)", "javascript"),
        ("VBScript:msgbox", "vbscript"),
        ("  java\tscript:alert(1)", "javascript"),  # sanitize-url drops the whitespace too
        ("\u200bdata:text/html,x", "data"),
    ],
)
def test_rule1_refused_schemes(url: str, scheme: str, line: str) -> None:
    (warning,) = check_reply({"attachments": [{"type": "image", "image_url": url}]}, line)
    assert (warning.rule, warning.code) == (1, "refused-url")
    assert f"is a {scheme}: URL" in warning.text


@pytest.mark.parametrize("field", ["image_url", "thumb_url", "title_link", "asset_url"])
def test_rule1_every_url_field(field: str) -> None:
    message = {"attachments": [{"type": "file", field: "data:x"}]}
    assert codes(message) == [(1, "refused-url", f"attachments[0].{field}")]
    message = {"attachments": [{"type": "file", field: "https://example.com/x"}]}
    assert codes(message) == []


def test_rule1_giphy_renditions() -> None:
    giphy = {
        "original": {"url": SVG, "width": "200"},
        "fixed_height": {"url": "https://media.giphy.com/x.gif"},
    }
    message = {"attachments": [{"type": "giphy", "giphy": giphy}]}
    assert codes(message) == [(1, "refused-url", "attachments[0].giphy.original.url")]


@pytest.mark.parametrize(
    "url", ["https://example.com/cat.gif", "http://example.com/a", "/static/cat.gif", "data"]
)
def test_rule1_urls_that_display(url: str) -> None:
    assert check_reply({"attachments": [{"type": "image", "image_url": url}]}) == []


# -- rule 2: buttons the client hides ------------------------------------------------------


@pytest.mark.parametrize("line", LINES)
@pytest.mark.parametrize("attachment", [{"type": "text"}, {}, {"type": "file", "title_link": ""}])
def test_rule2_buttons_without_title_link(attachment: dict[str, Any], line: str) -> None:
    message = {"attachments": [{**attachment, "title": "T", "actions": BUTTONS}]}
    assert codes(message, line) == [(2, "unsupported-attachment", "attachments[0].actions")]
    assert "Unsupported attachment" in check_reply(message, line)[0].text


@pytest.mark.parametrize(
    "attachment",
    [{"type": "giphy"}, {"type": "image"}, {"type": "text", "title_link": "https://x.example"}],
)
def test_rule2_buttons_that_show(attachment: dict[str, Any]) -> None:
    message = {"attachments": [{**attachment, "title": "T", "actions": BUTTONS}]}
    assert check_reply(message) == []


def test_rule2_needs_buttons() -> None:
    assert check_reply({"attachments": [{"type": "text", "text": "plain card"}]}) == []


# -- rule 3: attachment text shown twice -------------------------------------------------


@pytest.mark.parametrize("line", LINES)
def test_rule3_text_on_an_attachment_with_buttons(line: str) -> None:
    card = {"type": "image", "title": "T", "text": "printer on fire", "actions": BUTTONS}
    assert codes({"attachments": [card]}, line) == [(3, "text-twice", "attachments[0].text")]


def test_rule3_not_without_buttons_or_without_text() -> None:
    assert check_reply({"attachments": [{"type": "image", "text": "caption"}]}) == []
    card = {"type": "image", "title": "printer on fire", "text": " ", "actions": BUTTONS}
    assert check_reply({"attachments": [card]}) == []


def test_rule3_not_on_an_attachment_the_client_replaces() -> None:
    card = {"type": "text", "text": "shown nowhere", "actions": BUTTONS}
    assert codes({"attachments": [card]}) == [
        (2, "unsupported-attachment", "attachments[0].actions")
    ]


# -- rule 8 (mml line): everything shows together -----------------------------------------

FORM = m.mml(
    m.input_("email", label="Email"),
    m.button_list(m.button("Save email", name="form", value="save")),
    name="ticket",
)


def test_rule8_a_fallback_text_beside_the_mml() -> None:
    form = m.mml(m.text("Create a ticket?"), m.input_("email"), name="ticket")
    message = {"text": m.fallback_text(form), "mml": str(form)}
    assert codes(message, "mml") == [(8, "fallback-beside-mml", "text")]


def test_rule8_text_that_is_not_in_the_mml() -> None:
    message = {"text": "Create a ticket about “printer on fire”?", "mml": str(FORM)}
    assert check_reply(message, "mml") == []


def test_rule8_buttons_twice() -> None:
    form = m.mml(
        m.input_("email"),
        m.button_list(
            m.button("Confirm", name="action", value="confirm"),
            m.button("Drop it", name="action", value="cancel"),
        ),
        name="ticket",
    )
    actions = [
        {"name": "action", "value": "confirm", "text": "Confirm"},  # the same label
        {"name": "action", "value": "cancel", "text": "Cancel"},  # the same name and value
        {"name": "action", "value": "later", "text": "Later"},
    ]
    card = {"type": "image", "title": "T", "actions": actions}
    message = {"text": "A ticket?", "mml": str(form), "attachments": [card]}
    assert codes(message, "mml") == [
        (8, "buttons-twice", "attachments[0].actions[0]"),
        (8, "buttons-twice", "attachments[0].actions[1]"),
    ]
    assert check_reply({**message, "attachments": [{**card, "actions": actions[2:]}]}, "mml") == []


def test_rule8_is_for_the_mml_line_only() -> None:
    form = m.mml(m.text("Create a ticket?"), m.input_("email", value="a@b.example"), name="t")
    message = {"text": m.fallback_text(form), "mml": str(form)}
    assert check_reply(message, "current") == []


# -- rule 9 (current line): MML does not render ------------------------------------------


def test_rule9_an_input_only_the_mml_can_fill() -> None:
    message = {"text": "Your email?", "mml": str(FORM)}
    assert codes(message) == [(9, "mml-only-input", "mml input 'email'")]
    assert "users of the current client cannot fill this form" in check_reply(message)[0].text


@pytest.mark.parametrize(
    "field",
    [m.number("count"), m.scheduler("when"), m.input_("what", placeholder="call mum")],
)
def test_rule9_every_kind_of_field(field: m.Element) -> None:
    message = {"text": "Fill it in", "mml": str(m.mml(field, name="f"))}
    assert [w.code for w in check_reply(message)] == ["mml-only-input"]


@pytest.mark.parametrize(
    "field",
    [
        m.input_("email", value="ann@example.com"),  # filled from the command's arguments
        m.number("count", value=3),
        m.scheduler("when", selected="2026-12-24T10:00:00"),
        m.input_("token", value="", type="hidden"),
    ],
)
def test_rule9_a_filled_field_is_an_enhancement(field: m.Element) -> None:
    message = {"text": "Fill it in", "mml": str(m.mml(field, name="f"))}
    assert check_reply(message) == []


def test_rule9_says_whether_a_button_is_left() -> None:
    without = check_reply({"text": "?", "mml": str(FORM)})[0].text
    card = {"type": "image", "title": "T", "actions": BUTTONS}
    with_button = check_reply({"text": "?", "mml": str(FORM), "attachments": [card]})[0].text
    assert "no button they could use instead" in without
    assert "the buttons go on without it" in with_button


def test_rule9_mml_content_the_text_does_not_carry() -> None:
    form = m.mml(m.text("Pick a colour"), m.button_list(m.button("Red", name="c", value="r")))
    assert codes({"text": "Colours", "mml": str(form)}) == [(9, "mml-invisible", "mml")]
    warning = check_reply({"text": "Colours", "mml": str(form)})[0]
    assert "the MML holds 1 line of text and the button [Red] that" in warning.text


def test_rule9_mml_content_the_reply_carries_too() -> None:
    form = m.mml(m.text("Pick a colour"), m.button_list(m.button("Red", name="c", value="r")))
    card = {
        "type": "image",
        "title": "Colours",
        "actions": [{"name": "c", "value": "r", "text": "Red"}],
    }
    message = {"text": "Pick a colour!", "mml": str(form), "attachments": [card]}
    assert check_reply(message) == []


def test_rule9_is_for_the_current_line_only() -> None:
    assert check_reply({"text": "Your email?", "mml": str(FORM)}, "mml") == []


# -- rule 8 (mml line): a redraw that moves the inputs -------------------------------------


def ticket_form(*notes: str, email: str | None = None) -> dict[str, Any]:
    form = m.mml(
        *[m.text(n) for n in notes],
        m.input_("email", value=email),
        m.input_("priority", value="normal"),
        m.button_list(m.button("Confirm", name="action", value="confirm")),
        name="ticket",
    )
    return {"text": "A ticket?", "mml": str(form)}


def test_rule8_an_error_note_above_the_inputs_shifts_them() -> None:
    before, after = ticket_form(), ticket_form("⚠ Please fix: email", email="nope")
    assert [(w.rule, w.code, w.where) for w in check_update(before, after)] == [
        (8, "input-shifted", "mml input 'email'")
    ]
    (warning,) = check_update(before, after, "mml")
    assert "shows what the user typed into 'priority'" in warning.text


def test_rule8_a_note_that_is_always_there_keeps_them_in_place() -> None:
    before = ticket_form("")
    after = ticket_form("⚠ Please fix: email", email="nope")
    assert check_update(before, after) == []
    assert check_update(ticket_form(), ticket_form(email="a@b.example")) == []


def test_check_update_only_where_there_is_a_redraw_of_mml() -> None:
    before, after = ticket_form(), ticket_form("⚠ Please fix: email")
    assert check_update(before, after, "current") == []  # no MML on the current line
    assert check_update(None, after) == check_update(before, None) == []
    assert check_update({"text": "x"}, after) == []
    with pytest.raises(ValueError, match="unknown client line"):
        check_update(before, after, "v12")


def test_unreadable_or_empty_mml_is_left_alone() -> None:
    assert check_reply({"text": "x", "mml": "   "}) == []
    assert check_reply({"text": "x", "mml": "<mml><text>unclosed"}, "mml") == []


def test_odd_shapes_do_not_raise() -> None:
    message: dict[str, Any] = {
        "attachments": ["x", None, {"actions": ["x", None], "giphy": {"a": "b"}}],
        "mml": 3,
    }
    assert check_reply(message) == []
    assert check_reply({"attachments": {"not": "a list"}}) == []


# -- in the pipeline: one WARNING per command reply, for the current line ------------------


@pytest.mark.botkit_render_warnings("ignore")  # the log is under test here
def test_the_pipeline_logs_a_replys_warnings_once(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from botkit import Attachment, Bot, CommandContext, Message

    bot = Bot()

    @bot.command("bad")
    def bad(ctx: CommandContext) -> Message:
        card = Attachment(type="image", image_url=SVG, thumb_url="javascript:x")
        return Message.ephemeral("Your email?", attachments=[card], mml=str(FORM))

    @bot.command("mmlonly")
    def mml_only(ctx: CommandContext) -> Message:  # a problem of the MML line only
        form = m.mml(m.text("Pick one"), m.input_("x", value="1"), name="f")
        return Message.ephemeral("Pick one", mml=form)

    @bot.command("plain")
    def plain(ctx: CommandContext) -> str:
        return "hello"

    def warned() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.name == "botkit" and r.levelno >= logging.WARNING]

    with bot.test_client() as client, caplog.at_level(logging.WARNING, logger="botkit"):
        client.command("/plain")
        client.command("/mmlonly")
        assert warned() == []
        client.command("/bad")
    (record,) = warned()
    text = record.getMessage()
    assert record.levelno == logging.WARNING
    assert text.startswith("/bad: Stream's current client will not show this reply as built: ")
    assert "attachments[0].image_url is a data: URL" in text
    assert "attachments[0].thumb_url is a javascript: URL" in text
    assert "(rule 9, mml-only-input)" in text
    assert "Your email?" not in text  # what the reply says stays out of the log
