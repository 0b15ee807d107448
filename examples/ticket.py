"""``/ticket printer on fire``: a confirm prompt with an MML form, validated by a schema."""

from __future__ import annotations

import os
import secrets

from marshmallow import Schema, fields, validate

from botkit import Action, Attachment, CommandContext, CommandGroup, FormError, Message
from botkit import mml as m

group = CommandGroup()

TICKETS_URL = os.environ.get("TICKETS_URL", "https://tickets.example.com/new")
PRIORITIES = ("low", "normal", "high")


class TicketForm(Schema):
    email = fields.Email(required=True)
    priority = fields.String(load_default="normal", validate=validate.OneOf(PRIORITIES))


def prompt(summary: str, problem: str | None = None, email: str = "") -> Message:
    intro = f"Create a ticket about “{summary}”?"
    form = m.mml(
        m.text(intro),
        *([m.text(f"⚠ {problem}")] if problem else []),
        m.input_("email", label="Email", placeholder="you@example.com", value=email or None),
        m.input_("priority", label="Priority (low, normal, high)", value="normal"),
        m.button_list(
            m.button("Confirm", name="action", value="confirm"),
            m.button("Cancel", name="action", value="cancel"),
        ),
        name="ticket",
    )
    fallback = intro + (f"\n⚠ {problem}" if problem else "")
    attachment = Attachment(
        type="text",
        title="New ticket",
        title_link=TICKETS_URL,
        text=summary,
        actions=[
            Action.button("action", "confirm", "Confirm", style="primary"),
            Action.button("action", "cancel", "Cancel"),
        ],
    )
    return Message.ephemeral(
        fallback, mml=form, attachments=[attachment], state={"ticket_summary": summary}
    )


@group.command("ticket", description="Open a support ticket", args="[summary]")
def ticket(ctx: CommandContext) -> Message:
    summary = ctx.args.strip()
    if not summary:
        return Message.error("Usage: /ticket [summary]")
    return prompt(summary)


@ticket.action("action", "confirm", schema=TicketForm)
def confirm(ctx: CommandContext) -> Message:
    summary = ctx.state.get("ticket_summary", "")
    ticket_id = f"T-{secrets.randbelow(90000) + 10000}"
    return Message.publish(
        f"Ticket {ticket_id} created: {summary}",
        mml="",
        ticket_id=ticket_id,
        ticket_email=ctx.form["email"],
        ticket_priority=ctx.form["priority"],
    )


@ticket.action("action", "cancel")
def cancel(ctx: CommandContext) -> Message:
    return Message.delete()


@ticket.errorhandler(FormError)
def bad_form(ctx: CommandContext, error: FormError) -> Message:
    summary = str(ctx.state.get("ticket_summary", ""))
    email = (ctx.form_data or {}).get("email", "")
    return prompt(summary, problem=f"Please fix: {error.describe()}", email=email)
