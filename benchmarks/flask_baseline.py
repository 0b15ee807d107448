"""The hand-written Flask app the benchmark compares botkit with.

What a careful developer would write without a framework, in one file: read the raw
body, check its size, verify ``X-Signature`` (HMAC-SHA256 of the body, compared with
``hmac.compare_digest``), parse the JSON, check the few fields the handler uses, do the
bot's work (``handwork.py``: the same /gif catalog and moderation rules as
``examples/``) and answer the same JSON as botkit. No deduplication, no deadlines, no
logging per request: that is the work botkit adds, and what the ratio measures.

    gunicorn -c gunicorn.conf.py --pythonpath benchmarks flask_baseline:app
"""

from __future__ import annotations

from typing import Any

import handwork as work
from flask import Flask, Response, request

app = Flask(__name__)
app.config["MAX_CONTENT_LENGTH"] = work.MAX_BODY

_JSON = "application/json"


def _error(status: int, error: str) -> Response:
    return Response(work.dumps({"error": error}), status=status, mimetype=_JSON)


def _verified() -> dict[str, Any] | Response:
    body = request.get_data(cache=False)
    if not work.signature_ok(
        request.headers.get("X-Api-Key"), request.headers.get("X-Signature"), body
    ):
        return _error(401, "invalid signature")
    data = work.parse(body)
    if data is None:
        return _error(400, "invalid payload")
    return data


@app.post(f"{work.PREFIX}/custom-commands")
def custom_commands() -> Response:
    data = _verified()
    if isinstance(data, Response):
        return data
    message = data.get("message")
    if not isinstance(message, dict) or not work.valid_user(data.get("user")):
        return _error(400, "invalid payload")
    if (request.args.get("type") or message.get("command")) != "gif":
        return _error(400, "unknown command")
    return Response(
        work.dumps({"message": work.gif_reply(message, request.host_url.rstrip("/"))}),
        mimetype=_JSON,
    )


@app.post(f"{work.PREFIX}/before-message-send")
def before_message_send() -> Response:
    data = _verified()
    if isinstance(data, Response):
        return data
    message = data.get("message")
    if not isinstance(message, dict) or not work.valid_user(data.get("user")):
        return _error(400, "invalid payload")
    return Response(work.dumps({"message": work.before_send_reply(message)}), mimetype=_JSON)


@app.post(f"{work.PREFIX}/push")
def push() -> Response:
    data = _verified()
    if isinstance(data, Response):
        return data
    if not isinstance(data.get("type"), str) or not data["type"]:
        return _error(400, "invalid payload")
    work.queue_event(data)
    return Response(work.dumps({"ok": True}), mimetype=_JSON)
