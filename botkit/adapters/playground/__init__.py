"""The playground: a local page at ``/playground`` that plays Stream's part.

Type ``/gif cats`` in a chat-like page and see the reply rendered as Stream's React
client renders it, for the client line picked on the page: ``current`` (stream-chat-react
14.x, no MML) or ``mml`` (13.1, the last that renders MML). Click its buttons, submit its
MML forms, and read beside it the exact signed request the bot received, what it
answered, and the render check's warnings (:mod:`botkit.core.render`) for each line.

The page never signs anything itself. It calls the small JSON endpoints below
``/playground/api/``; they build the webhook bodies with :mod:`botkit.core.payloads`'s
builders, sign them with the app's own secret and post them through the app's real
webhook routes, the ones Stream calls. Because they sign with the bot's secret, the
playground is only mounted when it is asked for (``BOTKIT_PLAYGROUND=1``, ``make run``,
``botkit playground``): never enable it in production.

The endpoints only accept ``Content-Type: application/json`` POSTs, which a web page
on another origin cannot send without a CORS preflight that this app never grants.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Flask, Response, render_template, request

from ...core.config import Config
from ...core.payloads import (
    action_payload,
    before_send_payload,
    command_payload,
    encode,
    event_payload,
    signed_headers,
)
from ...core.payloads import user as make_user
from ...core.render import LINES, check_reply, check_update

if TYPE_CHECKING:
    from ...core.bot import Bot

log = logging.getLogger("botkit")

__all__ = ["create_playground_app", "register_playground", "run_playground"]

#: Where the page is served.
URL_PATH = "/playground"
#: The channel the playground's messages belong to.
PLAYGROUND_CID = "messaging:playground"

_JSON = "application/json"
_MAX_TEXT = 5000
_MAX_USER_ID = 64


class BadRequest(Exception):
    """What the page sent cannot be turned into a webhook; the text says why."""


def _json(obj: Any, status: int = 200) -> Response:
    return Response(json.dumps(obj), status=status, mimetype=_JSON)


def _error(text: str, status: int = 400) -> Response:
    return _json({"error": text}, status)


def _input() -> dict[str, Any]:
    if not request.is_json:
        raise BadRequest("send a JSON object with Content-Type: application/json")
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    return data


def _text(data: Mapping[str, Any], key: str = "text") -> str:
    text = data.get(key)
    if not isinstance(text, str) or not text.strip():
        raise BadRequest(f"'{key}' must be a non-empty string")
    if len(text) > _MAX_TEXT:
        raise BadRequest(f"'{key}' is longer than {_MAX_TEXT} characters")
    return text


def _user(data: Mapping[str, Any]) -> dict[str, Any]:
    raw = data.get("user", "alice")
    if isinstance(raw, dict):
        raw = raw.get("id")
    if not isinstance(raw, str) or not raw.strip() or len(raw) > _MAX_USER_ID:
        raise BadRequest(f"'user' must be a user id of 1 to {_MAX_USER_ID} characters")
    return make_user(raw.strip())


def _message(data: Mapping[str, Any]) -> dict[str, Any]:
    msg = data.get("message")
    if not isinstance(msg, dict) or not isinstance(msg.get("id"), str) or not msg["id"]:
        raise BadRequest("'message' must be a message object with an 'id'")
    return msg


def _form_data(data: Mapping[str, Any]) -> dict[str, str]:
    form = data.get("form_data")
    if not isinstance(form, dict) or not form:
        raise BadRequest("'form_data' must be a non-empty object of name: value strings")
    out: dict[str, str] = {}
    for key, value in form.items():
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise BadRequest(f"form_data[{key!r}] must be a string")
        out[str(key)] = str(value)
    return out


def _parse(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except ValueError:
        return body.decode("utf-8", "replace")


class _Caller:
    """Signs a payload and posts it through the app's own webhook routes."""

    def __init__(self, app: Flask, config: Config) -> None:
        self.app = app
        self.config = config
        self.api_key = config.keyring.default_key
        self.secret = config.keyring.secret_for(self.api_key)

    def post(
        self, path: str, payload: Mapping[str, Any], before: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Sign and send ``payload``; ``before`` is the message a click or submit redraws."""
        url = self.config.url_prefix + path
        body = encode(payload)
        headers = signed_headers(body, api_key=self.api_key, secret=self.secret)
        start = time.perf_counter()
        # The test client goes through the same WSGI app, routes and pipeline as Stream,
        # addressed to the host the page came from: URLs the bot builds from its request
        # (pictures it serves itself) then point where the browser can load them.
        response = self.app.test_client().post(
            url, data=body, headers=headers, base_url=request.host_url
        )
        latency = (time.perf_counter() - start) * 1000
        answer = _parse(response.get_data())
        call: dict[str, Any] = {
            "request": {"method": "POST", "path": url, "headers": headers, "body": payload},
            "response": {"status": response.status_code, "body": answer},
            "latency_ms": round(latency, 1),
        }
        reply = answer.get("message") if isinstance(answer, dict) else None
        if response.status_code == 200 and isinstance(reply, dict):
            call["warnings"] = _warnings(reply, before)
        return call


def _warnings(
    reply: Mapping[str, Any], before: Mapping[str, Any] | None
) -> dict[str, list[dict[str, Any]]]:
    """What each client line will show differently from the reply's JSON (the render
    check), and, for the answer to a click or submit, what redrawing ``before`` as it
    gets wrong."""
    return {
        line: [
            dataclasses.asdict(w)
            for w in [*check_reply(reply, line), *check_update(before, reply, line)]
        ]
        for line in LINES
    }


def register_playground(app: Flask, bot: Bot, config: Config) -> None:
    """Mount the playground page and its API on ``app`` at ``/playground``.

    :func:`botkit.web.create_app` calls this when ``config.playground`` is true
    (``BOTKIT_PLAYGROUND=1``). It logs a warning, because the page makes the app sign
    webhooks with its secret for anyone who can reach it.
    """
    caller = _Caller(app, config)
    bp = Blueprint(
        "playground",
        __name__,
        url_prefix=URL_PATH,
        static_folder="static",
        static_url_path="/static",
        template_folder="templates",
    )

    @bp.get("", strict_slashes=False)
    def page() -> str:
        return render_template("playground.html")

    @bp.get("/api/commands")
    def commands() -> Response:
        listed = [
            {
                "name": cmd.name,
                "description": cmd.description or "",
                "args": cmd.args or "",
            }
            for cmd in sorted(bot.commands.values(), key=lambda c: c.name)
        ]
        return _json(
            {
                "commands": listed,
                "cid": PLAYGROUND_CID,
                "api_key": caller.api_key,
                "dev_credentials": config.dev_credentials,
                "webhook_prefix": config.url_prefix,
            }
        )

    @bp.post("/api/command")
    def command() -> Response:
        data = _input()
        text = _text(data).strip()
        if not text.startswith("/") or len(text) < 2 or text[1].isspace():
            raise BadRequest("a command starts with '/' and a name, e.g. '/gif cats'")
        payload = command_payload(text, user=_user(data), cid=PLAYGROUND_CID)
        name = payload["message"]["command"]
        return _json(caller.post(f"/custom-commands?type={name}", payload))

    @bp.post("/api/action")
    def action() -> Response:
        data = _input()
        msg = _message(data)
        payload = action_payload(msg, _form_data(data), user=_user(data))
        name = msg.get("command") or "mml"
        if not isinstance(name, str):
            raise BadRequest("'message.command' must be a string")
        return _json(caller.post(f"/custom-commands?type={name}", payload, before=msg))

    @bp.post("/api/before-send")
    def before_send() -> Response:
        data = _input()
        payload = before_send_payload(_text(data), user=_user(data), cid=PLAYGROUND_CID)
        return _json(caller.post("/before-message-send", payload))

    @bp.post("/api/event")
    def event() -> Response:
        data = _input()
        event_type = data.get("type", "message.new")
        if not isinstance(event_type, str) or not event_type.strip():
            raise BadRequest("'type' must be an event type such as 'message.new'")
        fields: dict[str, Any] = {"user": _user(data), "cid": PLAYGROUND_CID}
        if "message" in data:
            msg = _message(data)
            fields["message"] = msg
            if isinstance(msg.get("cid"), str) and ":" in msg["cid"]:
                fields["cid"] = msg["cid"]
        return _json(caller.post("/push", event_payload(event_type.strip(), **fields)))

    @bp.errorhandler(BadRequest)
    def bad_request(exc: BadRequest) -> Response:
        return _error(str(exc))

    app.register_blueprint(bp)
    log.warning(
        "The playground is mounted at %s: it signs webhooks with the app's secret (key %r) "
        "for anyone who can reach it. Use it for local development only; never set "
        "BOTKIT_PLAYGROUND=1 in production.",
        URL_PATH,
        caller.api_key,
    )


def create_playground_app(bot: Bot, config: Config | None = None) -> Flask:
    """The bot's Flask app with the playground mounted.

    Without ``config`` the settings come from the environment, with the development
    credentials when no Stream credentials are set.
    """
    if config is None:
        env = dict(os.environ)
        env["BOTKIT_DEV"] = "1"  # only used when no Stream credentials are set
        config = Config.from_env(env)
    config = dataclasses.replace(config, playground=True)
    return bot.create_app(config)


def run_playground(bot: Bot, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve ``bot`` with the playground on Werkzeug's development server until stopped.

    The page is at ``http://{host}:{port}/playground``. This is a development server:
    for anything else use gunicorn (``gunicorn wsgi:app``).
    """
    from werkzeug.serving import run_simple

    app = create_playground_app(bot)
    shown = f"[{host}]" if ":" in host else host
    log.info("botkit playground on http://%s:%d%s", shown, port, URL_PATH)
    run_simple(host, port, app, threaded=True, use_reloader=False, use_debugger=False)
