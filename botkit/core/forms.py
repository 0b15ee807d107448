"""Validating ``form_data`` with a marshmallow schema before a handler sees it."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError

from .commands import find_error_handler
from .context import CommandContext
from .messages import Message

__all__ = ["FormError", "load_form"]


class FormError(Exception):
    """Raised for you to map: ``form_data`` did not match the route's schema.

    Register ``@bot.errorhandler(FormError)`` (or on a command) to decide what the user
    sees; by default they get an ephemeral error listing the fields.
    """

    def __init__(self, errors: dict[str, Any]) -> None:
        super().__init__(errors)
        self.errors = errors

    def describe(self) -> str:
        """The problems as sentences, field by field: ``size: Not a valid integer.
        cups: Missing data for required field.``"""
        parts = []
        for name, problems in self.errors.items():
            if isinstance(problems, dict):  # a nested schema's fields: name.field
                nested = {f"{name}.{field}": value for field, value in problems.items()}
                parts.append(FormError(nested).describe())
                continue
            sentences = [
                _sentence(p) for p in (problems if isinstance(problems, list) else [problems])
            ]
            parts.append(f"{name}: {' '.join(sentences)}")
        return " ".join(parts)


def _sentence(problem: object) -> str:
    text = str(problem).strip()
    return text if text.endswith((".", "!", "?")) else f"{text}."


def load_form(schema: Any, ctx: CommandContext) -> tuple[Any, Message | None]:
    """Load ``ctx.form_data`` with ``schema`` (a Schema class or instance).

    Returns ``(data, None)``, or raises :class:`FormError` when a handler for it is
    registered, else returns ``(None, an ephemeral error message)``.
    """
    instance: Schema = schema() if isinstance(schema, type) else schema
    data = {k: v for k, v in (ctx.form_data or {}).items() if k != "mml_name"}
    try:
        return instance.load(data, unknown="exclude"), None
    except ValidationError as exc:
        error = FormError(exc.normalized_messages())  # type: ignore[no-untyped-call]
        cmd = ctx.bot.commands.get(ctx.command)
        if find_error_handler(cmd, ctx.bot, FormError, FormError) is not None:
            raise error from None
        return None, Message.ephemeral(f"Please check the form: {error.describe()}")
