"""What Stream sends: payloads of every webhook kind and the headers that sign them.

The test client, ``botkit send`` and the playground build their requests with these.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from .signing import sign

__all__ = [
    "action_payload",
    "before_send_payload",
    "channel",
    "command_payload",
    "encode",
    "event_payload",
    "message",
    "signed_headers",
    "user",
]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def user(id: str = "alice", **fields: Any) -> dict[str, Any]:
    """A Stream user object."""
    return {"id": id, "role": "user", "name": id.capitalize(), "banned": False, **fields}


def channel(cid: str = "messaging:general", **fields: Any) -> dict[str, Any]:
    """A Stream channel object, as before-send hooks receive it."""
    kind, _, ident = cid.partition(":")
    return {"cid": cid, "id": ident, "type": kind, "frozen": False, **fields}


def message(
    text: str = "hello",
    *,
    user: Mapping[str, Any] | None = None,
    cid: str = "messaging:general",
    id: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A Stream message object. A text starting with ``/`` gets ``command`` and ``args``."""
    author = dict(user or {"id": "alice"})
    msg: dict[str, Any] = {
        "id": id if id is not None else f"{author['id']}-{uuid.uuid4()}",
        "text": text,
        "html": "",
        "type": "regular",
        "cid": cid,
        "user": author,
        "attachments": [],
        "mentioned_users": [],
        "silent": False,
        "created_at": _now(),
        "updated_at": _now(),
    }
    if text.startswith("/"):
        name, _, args = text[1:].partition(" ")
        msg["command"] = name
        msg["args"] = args.strip()
    msg.update(fields)
    return msg


def command_payload(
    text: str,
    *,
    user: Mapping[str, Any] | None = None,
    cid: str = "messaging:general",
    **message_fields: Any,
) -> dict[str, Any]:
    """The body Stream posts when ``text`` (e.g. ``"/gif cats"``) is sent."""
    author = dict(user or {"id": "alice"})
    return {"message": message(text, user=author, cid=cid, **message_fields), "user": author}


def action_payload(
    msg: Mapping[str, Any], form_data: Mapping[str, str], *, user: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The body Stream posts when a button of ``msg`` is clicked or its form submitted."""
    author = dict(user or msg.get("user") or {"id": "alice"})
    return {
        "message": dict(msg),
        "user": author,
        "form_data": {str(k): str(v) for k, v in form_data.items()},
    }


def before_send_payload(
    text: str,
    *,
    user: Mapping[str, Any] | None = None,
    cid: str = "messaging:general",
    **message_fields: Any,
) -> dict[str, Any]:
    """The body of a before-message-send call for a message with ``text``."""
    author = dict(user or {"id": "alice"})
    msg = message(text, user=author, cid=cid, id="", **message_fields)
    for key in ("command", "args", "created_at", "updated_at", "cid"):
        msg.pop(key, None)
    return {
        "message": msg,
        "user": author,
        "channel": channel(cid),
        "request_info": {"type": "client", "ip": "127.0.0.1", "user_agent": "botkit-testing"},
    }


def event_payload(type: str, **fields: Any) -> dict[str, Any]:
    """A push event body, e.g. ``event_payload("message.new", message=message("hi"))``."""
    cid = fields.pop("cid", "messaging:general")
    kind, _, ident = cid.partition(":")
    body: dict[str, Any] = {
        "type": type,
        "cid": cid,
        "channel_type": kind,
        "channel_id": ident,
        "created_at": _now(),
    }
    if "user" not in fields:
        body["user"] = {"id": "alice"}
    if type.startswith("message.") and "message" not in fields:
        body["message"] = message("hello", user=fields.get("user", body.get("user")), cid=cid)
    body.update(fields)
    return body


def signed_headers(
    body: bytes,
    *,
    api_key: str,
    secret: str,
    webhook_id: str | None = None,
    attempt: int = 1,
) -> dict[str, str]:
    """The headers Stream sends with ``body``."""
    return {
        "Content-Type": "application/json",
        "X-Api-Key": api_key,
        "X-Signature": sign(secret, body),
        "X-Webhook-Id": webhook_id or str(uuid.uuid4()),
        "X-Webhook-Attempt": str(attempt),
    }


def encode(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode("utf-8")
