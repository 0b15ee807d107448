"""The same work as ``flask_baseline.py`` as a bare WSGI callable: the floor for Python
under gunicorn (no routing library, no request objects).

    gunicorn -c gunicorn.conf.py --pythonpath benchmarks wsgi_baseline:app
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

import handwork as work

_JSON = [("Content-Type", "application/json")]
_STATUS = {200: "200 OK", 400: "400 Bad Request", 401: "401 Unauthorized",
           404: "404 Not Found", 405: "405 Method Not Allowed", 413: "413 Payload Too Large"}  # fmt: skip


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    status, body = _handle(environ)
    headers = [*_JSON, ("Content-Length", str(len(body)))]
    start_response(_STATUS[status], headers)
    return [body]


def _error(status: int, error: str) -> tuple[int, bytes]:
    return status, work.dumps({"error": error})


def _handle(environ: dict[str, Any]) -> tuple[int, bytes]:
    path = environ.get("PATH_INFO", "")
    if not path.startswith(work.PREFIX + "/"):
        return _error(404, "not found")
    route = path[len(work.PREFIX) + 1 :]
    if route not in ("custom-commands", "before-message-send", "push"):
        return _error(404, "not found")
    if environ["REQUEST_METHOD"] != "POST":
        return _error(405, "method not allowed")
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > work.MAX_BODY:
        return _error(413, "body too large")
    body = environ["wsgi.input"].read(length) if length > 0 else b""
    if not work.signature_ok(environ.get("HTTP_X_API_KEY"), environ.get("HTTP_X_SIGNATURE"), body):
        return _error(401, "invalid signature")
    data = work.parse(body)
    if data is None:
        return _error(400, "invalid payload")

    if route == "push":
        if not isinstance(data.get("type"), str) or not data["type"]:
            return _error(400, "invalid payload")
        work.queue_event(data)
        return 200, work.dumps({"ok": True})

    message = data.get("message")
    if not isinstance(message, dict) or not work.valid_user(data.get("user")):
        return _error(400, "invalid payload")
    if route == "before-message-send":
        return 200, work.dumps({"message": work.before_send_reply(message)})
    command = parse_qs(environ.get("QUERY_STRING", "")).get("type", [None])[0]
    if (command or message.get("command")) != "gif":
        return _error(400, "unknown command")
    return 200, work.dumps(
        {
            "message": work.gif_reply(
                message, f"{environ['wsgi.url_scheme']}://{environ['HTTP_HOST']}"
            )
        }
    )
