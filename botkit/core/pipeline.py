"""The webhook pipeline's pure steps: bytes and headers in, payloads and answers out.

size -> gunzip -> signature -> parse and validate (:func:`read`), then a command's
handler (:func:`call_command`) and its reply (:func:`command_reply`), or a before-send
answer (:func:`before_send_answer`). Nothing here waits, keeps state or touches a store:
:mod:`botkit.runtime.dispatch` adds the deadlines, the threads and exactly-once delivery.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from . import signals
from .commands import Command, Route, find_error_handler
from .config import Config
from .context import CommandContext, custom_fields
from .forms import load_form
from .messages import Message, coerce_reply
from .render import check_reply
from .schemas import (
    MESSAGE_FIELDS,
    InvalidPayload,
    load_before_send,
    load_command,
    load_event,
    parse_json,
    validate_reply,
)
from .signing import BodyTooLarge, InvalidSignature, gunzip, is_gzip, verify

log = logging.getLogger("botkit")

__all__ = [
    "BEFORE_SEND",
    "COMMAND",
    "INVALID_SIGNATURE",
    "NEUTRAL_REJECTION",
    "PUSH",
    "REWRITABLE",
    "TOO_LARGE",
    "Answer",
    "Headers",
    "Rejection",
    "before_send_answer",
    "call_command",
    "command_failed",
    "command_reply",
    "dumps",
    "failure_message",
    "invalid_payload",
    "read",
]

#: The three webhooks, as :meth:`botkit.runtime.dispatch.Dispatcher.handle` names them.
COMMAND, BEFORE_SEND, PUSH = "command", "before_send", "push"
#: Fields a before-send hook may change (besides custom fields).
REWRITABLE = ("text", "i18n", "show_in_channel", "silent", "type", "attachments")
NEUTRAL_REJECTION = "This message could not be checked right now and was not sent."


_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)  # holds no state


def dumps(obj: Any) -> bytes:
    """Compact, ASCII-only JSON; NaN and infinities are refused (they are not JSON)."""
    return _ENCODER.encode(obj).encode("ascii")


class Headers(Protocol):
    """Request headers, looked up case-insensitively (Werkzeug's ``Headers``, a dict
    with canonical names...)."""

    def get(self, key: str, /) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Answer:
    """What botkit answers: ``status``, a JSON ``body``, and the ``outcome`` for logs.

    ``cacheable`` says whether copies of the webhook may be answered with it again.
    """

    status: int
    body: bytes
    outcome: str = "ok"
    cacheable: bool = True

    def json(self) -> Any:
        return json.loads(self.body)


INVALID_SIGNATURE = Answer(401, dumps({"error": "invalid signature"}), "rejected-signature")
TOO_LARGE = Answer(413, dumps({"error": "body too large"}), "too-large")


def invalid_payload(fields: dict[str, Any]) -> Answer:
    body = dumps({"error": "invalid payload", "fields": _jsonable(fields)})
    return Answer(400, body, "invalid-payload")


def _jsonable(errors: Any) -> Any:
    if isinstance(errors, dict):
        return {str(k): _jsonable(v) for k, v in errors.items()}
    if isinstance(errors, list):
        return [_jsonable(v) for v in errors]
    return errors


# -- reading a webhook -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rejection:
    """A webhook refused before dispatch: the ``answer``, and for the log the step that
    refused it (``reason``: size, signature or payload) and why (``detail``)."""

    reason: str
    answer: Answer
    detail: str = ""


def read(
    config: Config, kind: str, api_key: str | None, signature: str | None, body: bytes
) -> tuple[dict[str, Any], bytes] | Rejection:
    """Check and load one webhook's body: size, gunzip, signature, JSON, schema.

    Returns the payload with the (uncompressed) body it was read from, or the
    :class:`Rejection` of the first step that refused it.
    """
    limit = config.max_body_bytes
    if len(body) > limit:
        return Rejection("size", TOO_LARGE)
    if is_gzip(body):
        try:
            body = gunzip(body, limit)
        except BodyTooLarge:
            return Rejection("size", TOO_LARGE, "gzip body inflates past the limit")
        except ValueError as exc:
            return Rejection("signature", INVALID_SIGNATURE, str(exc))
    try:
        verify(config.keyring, api_key, signature, body)
    except InvalidSignature as exc:
        return Rejection("signature", INVALID_SIGNATURE, exc.reason)
    try:
        data = parse_json(body)
        if kind == COMMAND:
            payload = load_command(data)
        elif kind == BEFORE_SEND:
            payload = load_before_send(data)
        else:
            load_event(data)
            payload = data
    except InvalidPayload as exc:
        return Rejection("payload", invalid_payload(exc.fields))
    return payload, body


# -- custom commands ---------------------------------------------------------------------


def call_command(
    ctx: CommandContext, cmd: Command[Any, Any] | None, route: Route | None
) -> Message:
    """Checks, form schema, handler, error handlers: the handler's reply as a Message.

    Raises what the handler raised when no error handler takes it.
    """
    bot = ctx.bot
    try:
        for check in (*bot.checks, *(cmd.checks if cmd else ())):
            refusal = check(ctx)
            if isinstance(refusal, str):  # a refusal is shown to the caller only
                return Message.error(refusal)
            if refusal is not None:
                return coerce_reply(refusal)
        if route is not None and route.schema is not None:
            form, refusal = load_form(route.schema, ctx)
            if refusal is not None:
                return refusal
            ctx.form = form
        if route is not None:
            return coerce_reply(route.func(ctx))
        assert cmd is not None
        return coerce_reply(cmd.invoke(ctx))
    except Exception as exc:
        handler = find_error_handler(cmd, bot, type(exc))
        if handler is None:
            raise
        return coerce_reply(handler(ctx, exc))


def command_failed(ctx: CommandContext, exc: BaseException, late: bool = False) -> str:
    """Log a command's exception and signal it; returns the ref the user is shown."""
    ref = secrets.token_hex(4)
    log.error(
        "/%s %s (ref %s, webhook id %s)",
        ctx.command,
        "failed after its deadline" if late else "raised",
        ref,
        ctx.webhook_id,
        exc_info=exc,
    )
    signals.command_failed.send(ctx.bot, ctx=ctx, exception=exc)
    return ref


def failure_message(ctx: CommandContext, ref: str) -> Message:
    """What the user sees when a command failed; ``ref`` points at the log line."""
    return Message.error(f"Sorry, /{ctx.command} failed (ref {ref}).")


def command_reply(ctx: CommandContext, msg: Message, outcome: str = "ok") -> Answer:
    """The answer to a custom command: ``msg`` applied to the incoming message, checked
    against what Stream accepts (a reply it would refuse becomes a failure message)."""
    full = msg.merge_into(ctx.message)
    if full is not None:
        for key in ("id", "user"):  # a reply always answers for the same message
            if key in ctx.message:
                full[key] = ctx.message[key]
        errors = validate_reply(full)
        if errors:
            ref = secrets.token_hex(4)
            log.error(
                "/%s built a reply Stream would refuse (ref %s): %s", ctx.command, ref, errors
            )
            full = failure_message(ctx, ref).merge_into(ctx.message)
            outcome = "error"
        else:
            _warn_render_problems(ctx.command, full)
    try:
        body = dumps({"message": full})
    except (TypeError, ValueError, RecursionError) as exc:
        ref = secrets.token_hex(4)
        log.error("/%s reply is not JSON (ref %s): %s", ctx.command, ref, exc)
        body = dumps({"message": failure_message(ctx, ref).merge_into(_plain(ctx.message))})
        outcome = "error"
    return Answer(200, body, outcome)


def _plain(message: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in message.items() if k in MESSAGE_FIELDS}


def _warn_render_problems(command: str, message: Mapping[str, Any]) -> None:
    """Log once what Stream's current client shows differently from this reply."""
    if not message.get("attachments") and not message.get("mml"):
        return  # plain text renders as written: no call on the hot path
    warnings = check_reply(message, "current")
    if warnings:
        log.warning(
            "/%s: Stream's current client will not show this reply as built: %s",
            command,
            "; ".join(str(w) for w in warnings),
        )


# -- before-message-send -----------------------------------------------------------------


def before_send_answer(message: Mapping[str, Any], outcome: str = "ok") -> Answer:
    """The answer letting ``message`` through: only the fields a hook may change."""
    out = {k: message[k] for k in REWRITABLE if k in message}
    out.update(custom_fields(message))
    return Answer(200, dumps({"message": out}), outcome)
