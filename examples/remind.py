"""``/remind @bob 10 call mum``: typed arguments, buttons, and a form checked by a schema.

The handler declares its arguments in its signature; botkit parses them from the text
(``minutes`` must be a whole number), and anything missing or wrong gets usage help
saying what to type: on Stream's current client the command's text is the only thing a
user can type, so every value comes from it. The preview offers Schedule / Cancel
buttons; clients that still render MML (13.1 and older) also get a form to change the
time or the text, validated by a marshmallow schema before the handler sees it.

Delivering the reminder when it is due is a scheduler's job (for example a periodic
huey task reading ``remind_due`` from the published message); this example stops at the
published confirmation.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from marshmallow import Schema, fields, validate

from botkit import (
    Action,
    ArgumentError,
    Attachment,
    CommandContext,
    CommandGroup,
    FormError,
    Message,
)
from botkit import mml as m

group = CommandGroup()

REMINDERS_URL = os.environ.get("REMINDERS_URL", "https://reminders.example.com")
MAX_MINUTES = 7 * 24 * 60
EXAMPLE = "/remind me 10 stretch your legs"


class EditForm(Schema):
    """The preview's form: a new time and text."""

    minutes = fields.Integer(
        required=True,
        validate=validate.Range(1, MAX_MINUTES),
        error_messages={"invalid": "Not a whole number."},
    )
    what = fields.String(required=True, validate=validate.Length(1, 200))


def usage(problem: str) -> Message:
    """What to type, for a ``/remind`` that cannot become a preview yet (ephemeral)."""
    return Message.ephemeral(
        f"Usage: {remind.usage}\n{problem}\nFor example: {EXAMPLE}", attachments=[], mml=""
    )


def preview(
    who: str,
    minutes: int,
    what: str,
    problem: str | None = None,
    typed: dict[str, str] | None = None,
) -> Message:
    """The ephemeral preview: what will be reminded, with buttons and an edit form.

    ``typed`` holds what the user last typed into the MML form, shown again after an
    error. The problem goes in the message text, never above the inputs: mml-react keys
    inputs by position, and a line above them would shift every typed value.
    """
    shown = typed or {}
    text = f"Remind {who} in {minutes} min: {what}?"
    if problem:
        text += f"\n⚠ {problem}"
    form = m.mml(
        m.input_("minutes", value=shown.get("minutes") or minutes, label="In how many minutes"),
        m.input_("what", value=shown.get("what") or what, label="What"),
        m.button_list(m.button("Save", name="action", value="save")),
        name="remind_edit",
    )
    card = Attachment(
        type="text",
        title="Reminder",
        title_link=REMINDERS_URL,
        # no text: on an attachment with buttons the client shows it again in the button row
        actions=[
            Action.button("remind", "schedule", "Schedule", style="primary"),
            Action.button("remind", "cancel", "Cancel"),
        ],
    )
    return Message.ephemeral(
        text,
        mml=form,
        attachments=[card],
        state={"remind_who": who, "remind_minutes": minutes, "remind_what": what},
    )


@group.command("remind")
def remind(ctx: CommandContext, who: str, minutes: int, what: str) -> Message:
    """Remind someone of something.

    Args:
        who: Who to remind: @name, or me.
        minutes: In how many minutes, up to a week (10080).
        what: What to remind them of; no quotes needed.
    """
    if not 1 <= minutes <= MAX_MINUTES:
        return usage(f"minutes must be from 1 to {MAX_MINUTES}.")
    if len(what) > 200:
        return usage("what must be at most 200 characters.")
    if who.casefold() == "me":
        who = f"@{ctx.user_id}"
    return preview(who, minutes, what)


@remind.errorhandler(ArgumentError)
def bad_arguments(ctx: CommandContext, error: ArgumentError) -> Message:
    return usage(error.problem)


def _current(ctx: CommandContext) -> tuple[str, int, str]:
    state = ctx.state
    return (
        str(state.get("remind_who", "")),
        int(state.get("remind_minutes") or 1),
        str(state.get("remind_what", "")),
    )


@remind.form("remind_edit", schema=EditForm)
def edit(ctx: CommandContext) -> Message:
    """The MML form (clients that render MML): a new time or text."""
    who, _, _ = _current(ctx)
    return preview(who, ctx.form["minutes"], ctx.form["what"])


@remind.errorhandler(FormError)
def bad_edit(ctx: CommandContext, error: FormError) -> Message:
    who, minutes, what = _current(ctx)
    typed = {k: v for k, v in (ctx.form_data or {}).items() if k in ("minutes", "what")}
    return preview(who, minutes, what, problem=f"Please fix: {error.describe()}", typed=typed)


@remind.action("remind", "schedule")
def schedule(ctx: CommandContext) -> Message:
    who, minutes, what = _current(ctx)
    if not who or not what:  # not a preview this bot made
        return usage("This preview has nothing to schedule.")
    due = datetime.now(UTC) + timedelta(minutes=minutes)
    return Message.publish(
        f"⏰ {who}, in {minutes} min: {what}",
        attachments=[],  # the card has nothing to add once it is scheduled
        mml="",
        remind_due=due.isoformat(timespec="seconds"),
    )


@remind.action("remind", "cancel")
def cancel(ctx: CommandContext) -> Message:
    return Message.delete()
