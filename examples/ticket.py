"""``/ticket you@example.com printer on fire``: a confirm prompt built for today's clients.

Stream's current client (stream-chat-react 14) lets a user type nothing but the command
and click buttons, so every free value comes from the command's arguments: the email and
the summary, checked before the prompt shows, with usage help when they are missing or
wrong. Fixed choices are buttons: Low / Normal / High set the priority, Confirm / Cancel
finish. Clients that still render MML (13.1 and older) also get a small form to correct
the email or the summary without typing the command again.
"""

from __future__ import annotations

import os
import secrets
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

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

TICKETS_URL = os.environ.get("TICKETS_URL", "https://tickets.example.com/new")
PRIORITIES = ("low", "normal", "high")
EXAMPLE = "/ticket you@example.com printer on fire"


class TicketForm(Schema):
    """A ticket's free values, from the command's arguments or the MML form."""

    email = fields.Email(required=True, error_messages={"required": "Say where to answer."})
    summary = fields.String(required=True, validate=validate.Length(1, 200))


def usage(problem: str) -> Message:
    """What to type, for a ``/ticket`` that cannot become a prompt yet (ephemeral)."""
    return Message.ephemeral(
        f"{problem}\nType the email to answer and what is wrong, e.g. {EXAMPLE}",
        attachments=[],
        mml="",
    )


def prompt(
    email: str,
    summary: str,
    priority: str = "normal",
    problem: str | None = None,
    typed: dict[str, str] | None = None,
) -> Message:
    """The ephemeral prompt: the ticket's values in the text, the choices as buttons.

    ``typed`` holds what the user last typed into the MML form; after an error the form
    shows it again. A problem goes in the message text, never above the inputs: mml-react
    keys inputs by position, and a line above them would shift every typed value.
    """
    shown = typed or {}
    text = f"Open a ticket for {email}, priority {priority}?"
    if problem:
        text += f"\n⚠ {problem}"
    form = m.mml(
        m.input_("email", label="Email", value=shown.get("email") or email),
        m.input_("summary", label="Summary", value=shown.get("summary") or summary),
        m.button_list(m.button("Update", name="action", value="update")),
        name="ticket",
    )
    card = Attachment(
        type="text",
        title=summary,
        title_link=TICKETS_URL,
        # no text: on an attachment with buttons the client shows it again in the button row
        actions=[
            *(
                Action.button(
                    "priority", p, p.capitalize(), "primary" if p == priority else "default"
                )
                for p in PRIORITIES
            ),
            Action.button("action", "confirm", "Confirm", style="primary"),
            Action.button("action", "cancel", "Cancel"),
        ],
    )
    state = {"ticket_email": email, "ticket_summary": summary, "ticket_priority": priority}
    return Message.ephemeral(text, mml=form, attachments=[card], state=state)


def _saved(ctx: CommandContext) -> tuple[str, str, str]:
    state = ctx.state
    priority = str(state.get("ticket_priority") or "normal")
    return (
        str(state.get("ticket_email", "")),
        str(state.get("ticket_summary", "")),
        priority if priority in PRIORITIES else "normal",
    )


@group.command("ticket", description="Open a support ticket")
def ticket(ctx: CommandContext, email: str, summary: str) -> Message:
    """Open a support ticket.

    Args:
        email: Where to answer, e.g. you@example.com.
        summary: What is wrong; no quotes needed.
    """
    try:
        values: dict[str, Any] = TicketForm().load({"email": email, "summary": summary})
    except ValidationError as exc:
        if "email" in exc.messages:
            return usage(f"“{email}” is not an email address.")
        return usage("The summary must be at most 200 characters.")
    return prompt(values["email"], values["summary"])


@ticket.errorhandler(ArgumentError)
def missing_arguments(ctx: CommandContext, error: ArgumentError) -> Message:
    return usage(error.problem)


@ticket.action("priority")
def set_priority(ctx: CommandContext) -> Message:
    email, summary, priority = _saved(ctx)
    chosen = (ctx.form_data or {}).get("priority", "")
    if chosen not in PRIORITIES:
        return prompt(email, summary, priority, problem=f"Pick one of {', '.join(PRIORITIES)}.")
    return prompt(email, summary, chosen)


@ticket.form("ticket", schema=TicketForm)
def update(ctx: CommandContext) -> Message:
    """The MML form (clients that render MML): a corrected email or summary."""
    _, _, priority = _saved(ctx)
    return prompt(ctx.form["email"], ctx.form["summary"], priority)


@ticket.errorhandler(FormError)
def bad_form(ctx: CommandContext, error: FormError) -> Message:
    email, summary, priority = _saved(ctx)
    typed = {k: v for k, v in (ctx.form_data or {}).items() if k in ("email", "summary")}
    return prompt(email, summary, priority, problem=f"Please fix: {error.describe()}", typed=typed)


@ticket.action("action", "confirm")
def confirm(ctx: CommandContext) -> Message:
    email, summary, priority = _saved(ctx)
    if not email or not summary:  # not a prompt this bot made
        return usage("This prompt has no ticket to open.")
    ticket_id = f"T-{secrets.randbelow(90000) + 10000}"
    return Message.publish(
        f"Ticket {ticket_id} created: {summary}",
        attachments=[],  # the card would show the summary a second time
        mml="",
        ticket_id=ticket_id,
        ticket_email=email,
        ticket_priority=priority,
    )


@ticket.action("action", "cancel")
def cancel(ctx: CommandContext) -> Message:
    return Message.delete()
