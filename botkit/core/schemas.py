"""marshmallow schemas for what Stream sends and what botkit answers.

Unknown fields are kept on the way in: a message's custom fields are where a bot keeps
its state between a command and the clicks on its buttons.
"""

from __future__ import annotations

import json
import math
from typing import Any

from marshmallow import INCLUDE, Schema, ValidationError, fields, validate

__all__ = ["InvalidPayload", "parse_json", "validate_reply"]

MESSAGE_TYPES = ("regular", "ephemeral", "error", "reply", "system", "deleted")

#: Message fields Stream defines; every other top-level key is a custom field (state).
MESSAGE_FIELDS = frozenset(
    {
        "id", "text", "html", "type", "command", "args", "cid", "created_at", "updated_at",
        "deleted_at", "attachments", "mml", "user", "latest_reactions", "own_reactions",
        "reaction_counts", "reaction_scores", "reaction_groups", "reply_count",
        "mentioned_users", "silent", "parent_id", "show_in_channel", "i18n",
        "command_info", "shadowed", "pinned", "pinned_at", "pinned_by", "pin_expires",
        "quoted_message_id", "quoted_message", "thread_participants", "restricted_visibility",
        "before_message_send_failed", "poll_id", "poll", "member", "deleted_reply_count",
        "message_text_updated_at", "image_labels", "channel",
    }
)  # fmt: skip


class InvalidPayload(Exception):
    """A signed body that botkit cannot accept; ``fields`` says what is wrong."""

    def __init__(self, fields: dict[str, Any]) -> None:
        super().__init__(fields)
        self.fields = fields


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):  # 1e999 would come back out as Infinity, not JSON
        raise ValueError(f"number {literal[:20]} is out of range")
    return value


# json.loads with options builds a decoder on every call; one is enough, shared by the
# threads as json.loads shares its own default decoder.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)


def parse_json(body: bytes) -> dict[str, Any]:
    """Decode a webhook body: strict UTF-8 (no BOM), strict JSON, an object at the top."""
    try:
        text = body.decode("utf-8")
        if text.startswith("\ufeff"):  # as json.loads says
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        data = _DECODER.decode(text)
    except UnicodeDecodeError:
        raise InvalidPayload({"_body": ["body is not valid UTF-8"]}) from None
    except RecursionError:
        raise InvalidPayload({"_body": ["JSON is nested too deeply"]}) from None
    except ValueError as exc:  # JSONDecodeError, NaN/Infinity, huge integers
        msg = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise InvalidPayload({"_body": [f"body is not valid JSON: {msg}"]}) from None
    if not isinstance(data, dict):
        raise InvalidPayload({"_body": ["body must be a JSON object"]})
    return data


class _Open(Schema):
    class Meta:
        unknown = INCLUDE


class UserSchema(_Open):
    id = fields.String(required=True, validate=validate.Length(min=1))
    name = fields.String(allow_none=True)
    role = fields.String(allow_none=True)
    Custom = fields.Dict(keys=fields.String(), allow_none=True)


class MessageSchema(_Open):
    id = fields.String(load_default="")
    text = fields.String(allow_none=True)
    html = fields.String(allow_none=True)
    type = fields.String(allow_none=True)
    command = fields.String(allow_none=True)
    args = fields.String(allow_none=True)
    cid = fields.String(allow_none=True)
    mml = fields.String(allow_none=True)
    attachments = fields.List(fields.Dict(keys=fields.String()), allow_none=True)
    user = fields.Nested(UserSchema, allow_none=True)


class CommandPayloadSchema(_Open):
    message = fields.Nested(MessageSchema, required=True)
    user = fields.Nested(UserSchema, required=True)
    form_data = fields.Dict(keys=fields.String(), values=fields.String(), allow_none=True)


class ChannelSchema(_Open):
    cid = fields.String(allow_none=True)
    id = fields.String(allow_none=True)
    type = fields.String(allow_none=True)


class BeforeSendPayloadSchema(_Open):
    message = fields.Nested(MessageSchema, required=True)
    user = fields.Nested(UserSchema, required=True)
    channel = fields.Nested(ChannelSchema, allow_none=True)
    request_info = fields.Dict(keys=fields.String(), allow_none=True)


class EventSchema(_Open):
    type = fields.String(required=True, validate=validate.Length(min=1))
    user = fields.Nested(UserSchema, allow_none=True)
    message = fields.Nested(MessageSchema, allow_none=True)
    cid = fields.String(allow_none=True)


# -- outgoing -----------------------------------------------------------------------------


class _ActionOut(_Open):
    name = fields.String(required=True, validate=validate.Length(min=1))
    text = fields.String(required=True, validate=validate.Length(min=1))
    type = fields.String(required=True, validate=validate.Length(min=1))
    value = fields.String(allow_none=True)
    style = fields.String(allow_none=True)


class _FieldOut(_Open):
    title = fields.String(required=True)
    value = fields.String(required=True)
    short = fields.Boolean(required=True)


class _AttachmentOut(_Open):
    type = fields.String(allow_none=True)
    actions = fields.List(fields.Nested(_ActionOut), allow_none=True)
    fields_ = fields.List(fields.Nested(_FieldOut), allow_none=True, data_key="fields")


class _MessageOut(_Open):
    text = fields.String(allow_none=True)
    type = fields.String(allow_none=True, validate=validate.OneOf(MESSAGE_TYPES))
    mml = fields.String(allow_none=True)
    attachments = fields.List(
        fields.Nested(_AttachmentOut), allow_none=True, validate=validate.Length(max=30)
    )


_command_schema = CommandPayloadSchema()
_before_send_schema = BeforeSendPayloadSchema()
_event_schema = EventSchema()
_message_out = _MessageOut()


def _load(schema: Schema, data: dict[str, Any]) -> dict[str, Any]:
    try:
        result: dict[str, Any] = schema.load(data)
    except ValidationError as exc:
        raise InvalidPayload(exc.normalized_messages()) from None  # type: ignore[no-untyped-call]
    except RecursionError:
        raise InvalidPayload({"_body": ["JSON is nested too deeply"]}) from None
    return result


# -- the fast path ----------------------------------------------------------------------------
#
# Every webhook passes through here, and marshmallow costs more than everything else
# botkit does for a call. These checks accept a subset of what the schemas accept (the
# property tests hold them to that); a payload they do not accept goes through the schema,
# which accepts it or says precisely what is wrong. The schemas stay the definition.

_NONE = type(None)
_MESSAGE_STRINGS = ("text", "html", "type", "command", "args", "cid", "mml")


def _user_ok(user: Any) -> bool:
    if type(user) is not dict:
        return False
    uid = user.get("id")
    if type(uid) is not str or not uid:
        return False
    for key in ("name", "role"):
        if type(user.get(key)) not in (str, _NONE):
            return False
    return type(user.get("Custom")) in (dict, _NONE)


def _message_ok(message: Any) -> bool:
    if type(message) is not dict:
        return False
    if "id" in message and type(message["id"]) is not str:
        return False
    for key in _MESSAGE_STRINGS:
        if type(message.get(key)) not in (str, _NONE):
            return False
    attachments = message.get("attachments")
    if attachments is not None:
        if type(attachments) is not list:
            return False
        for item in attachments:
            if type(item) is not dict:
                return False
    user = message.get("user")
    return user is None or _user_ok(user)


def _command_ok(data: dict[str, Any]) -> bool:
    if not (_message_ok(data.get("message")) and _user_ok(data.get("user"))):
        return False
    form = data.get("form_data")
    if form is None:
        return True
    return type(form) is dict and all(type(v) is str for v in form.values())


def _before_send_ok(data: dict[str, Any]) -> bool:
    if not (_message_ok(data.get("message")) and _user_ok(data.get("user"))):
        return False
    channel = data.get("channel")
    if channel is not None:
        if type(channel) is not dict:
            return False
        for key in ("cid", "id", "type"):
            if type(channel.get(key)) not in (str, _NONE):
                return False
    return type(data.get("request_info")) in (dict, _NONE)


def _event_ok(data: dict[str, Any]) -> bool:
    kind = data.get("type")
    if type(kind) is not str or not kind:
        return False
    if type(data.get("cid")) not in (str, _NONE):
        return False
    user, message = data.get("user"), data.get("message")
    return (user is None or _user_ok(user)) and (message is None or _message_ok(message))


def load_command(data: dict[str, Any]) -> dict[str, Any]:
    """A custom-command payload, validated; ``message.id`` defaults to ``""``."""
    if _command_ok(data):
        data["message"].setdefault("id", "")
        return data
    return _load(_command_schema, data)


def load_before_send(data: dict[str, Any]) -> dict[str, Any]:
    """A before-message-send payload, validated (an empty ``message.id`` is fine)."""
    if _before_send_ok(data):
        data["message"].setdefault("id", "")
        return data
    return _load(_before_send_schema, data)


def load_event(data: dict[str, Any]) -> dict[str, Any]:
    """A push event, validated: ``type`` is required, everything else is kept."""
    if _event_ok(data):
        message = data.get("message")
        if message is not None:
            message.setdefault("id", "")
        return data
    return _load(_event_schema, data)


def _action_ok(action: Any) -> bool:
    if type(action) is not dict:
        return False
    for key in ("name", "text", "type"):
        value = action.get(key)
        if type(value) is not str or not value:
            return False
    return type(action.get("value")) in (str, _NONE) and type(action.get("style")) in (str, _NONE)


def _field_ok(item: Any) -> bool:
    return (
        type(item) is dict
        and type(item.get("title")) is str
        and type(item.get("value")) is str
        and type(item.get("short")) is bool
    )


def _attachment_ok(attachment: Any) -> bool:
    if type(attachment) is not dict or type(attachment.get("type")) not in (str, _NONE):
        return False
    actions = attachment.get("actions")
    if actions is not None and (type(actions) is not list or not all(map(_action_ok, actions))):
        return False
    items = attachment.get("fields")
    return items is None or (type(items) is list and all(map(_field_ok, items)))


def _reply_ok(message: dict[str, Any]) -> bool:
    kind = message.get("type")
    if kind is not None and kind not in MESSAGE_TYPES:
        return False
    if type(message.get("text")) not in (str, _NONE) or type(message.get("mml")) not in (
        str,
        _NONE,
    ):
        return False
    attachments = message.get("attachments")
    if attachments is None:
        return True
    return (
        type(attachments) is list
        and len(attachments) <= 30
        and all(map(_attachment_ok, attachments))
    )


def validate_reply(message: dict[str, Any]) -> dict[str, Any]:
    """Errors in an outgoing message (empty when it is one Stream accepts)."""
    if _reply_ok(message):
        return {}
    errors: dict[str, Any] = _message_out.validate(message)
    return errors
