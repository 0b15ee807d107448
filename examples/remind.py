"""``/remind @bob 10 call mum``: typed arguments, buttons, and a form checked by a schema.

The handler declares its arguments in its signature; botkit parses them from the text
(``minutes`` must be a whole number) and answers a usage error by itself. The preview
offers Schedule / Cancel buttons and an MML form to change the time or the text,
validated by a marshmallow schema before the handler sees it.

Delivering the reminder when it is due is a scheduler's job (for example a periodic
huey task reading ``remind_due`` from the published message); this example stops at the
published confirmation.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from marshmallow import Schema, fields, validate

from botkit import Action, Attachment, CommandContext, CommandGroup, FormError, Message
from botkit import mml as m

group = CommandGroup()

REMINDERS_URL = os.environ.get("REMINDERS_URL", "https://reminders.example.com")
MAX_MINUTES = 7 * 24 * 60


class EditForm(Schema):
    """The preview's form: a new time and text."""

    minutes = fields.Integer(
        required=True,
        validate=validate.Range(1, MAX_MINUTES),
        error_messages={"invalid": "Not a whole number."},
    )
    what = fields.String(required=True, validate=validate.Length(1, 200))


def preview(who: str, minutes: int, what: str, problem: str | None = None) -> Message:
    """The ephemeral preview: what will be reminded, with buttons and an edit form."""
    summary = f"Remind {who} in {minutes} min: {what}" if what else f"Remind {who} in {minutes} min"
    form = m.mml(
        m.text(summary + "?"),
        *([m.text(f"⚠ {problem}")] if problem else []),
        m.input_("minutes", value=minutes, label="In how many minutes"),
        m.input_("what", value=what or None, label="What", placeholder="call mum"),
        m.button_list(m.button("Save", name="action", value="save")),
        name="remind_edit",
    )
    attachment = Attachment(
        type="text",
        title="Reminder",
        title_link=REMINDERS_URL,
        text=summary,
        actions=[
            Action.button("remind", "schedule", "Schedule", style="primary"),
            Action.button("remind", "cancel", "Cancel"),
        ],
    )
    return Message.ephemeral(
        summary + "?" + (f"\n⚠ {problem}" if problem else ""),
        mml=form,
        attachments=[attachment],
        state={"remind_who": who, "remind_minutes": minutes, "remind_what": what},
    )


@group.command("remind")
def remind(ctx: CommandContext, who: str, minutes: int, what: str = "") -> Message:
    """Remind someone of something.

    Args:
        who: Who to remind: @name, or me.
        minutes: In how many minutes, up to a week (10080).
        what: What to remind them of; no quotes needed.
    """
    if not 1 <= minutes <= MAX_MINUTES:
        return Message.error(f"Usage: {remind.usage}\nminutes must be from 1 to {MAX_MINUTES}.")
    if who.casefold() == "me":
        who = f"@{ctx.user_id}"
    return preview(who, minutes, what)


def _current(ctx: CommandContext) -> tuple[str, int, str]:
    state = ctx.state
    return (
        str(state.get("remind_who", "")),
        int(state.get("remind_minutes") or 1),
        str(state.get("remind_what", "")),
    )


@remind.form("remind_edit", schema=EditForm)
def edit(ctx: CommandContext) -> Message:
    who, _, _ = _current(ctx)
    return preview(who, ctx.form["minutes"], ctx.form["what"])


@remind.errorhandler(FormError)
def bad_edit(ctx: CommandContext, error: FormError) -> Message:
    who, minutes, what = _current(ctx)
    return preview(who, minutes, what, problem=f"Please fix: {error.describe()}")


@remind.action("remind", "schedule")
def schedule(ctx: CommandContext) -> Message:
    who, minutes, what = _current(ctx)
    if not what:
        return preview(who, minutes, what, problem="Say what to remind them of first.")
    due = datetime.now(UTC) + timedelta(minutes=minutes)
    return Message.publish(
        f"⏰ {who}, in {minutes} min: {what}",
        mml="",
        remind_due=due.isoformat(timespec="seconds"),
    )


@remind.action("remind", "cancel")
def cancel(ctx: CommandContext) -> Message:
    return Message.delete()
