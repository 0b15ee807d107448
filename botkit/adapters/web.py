"""The web adapter: the webhook routes, body limits, and the healthz endpoint.

Everything else happens in :mod:`botkit.runtime.dispatch`; this module only moves bytes.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException
from werkzeug.wsgi import get_current_url, get_host

from ..core import signals
from ..core.config import Config, ConfigError
from ..core.pipeline import BEFORE_SEND, COMMAND, PUSH, Answer, dumps
from ..runtime.deadlines import AnsweredAtDeadline
from ..runtime.dispatch import Dispatcher
from ..runtime.runtime import Runtime
from .logs import configure_logging
from .metrics import metrics_enabled

if TYPE_CHECKING:
    from ..core.bot import Bot

log = logging.getLogger("botkit")

__all__ = ["check_startup", "create_app"]

_JSON = "application/json"
StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


_STATUS: dict[int, str] = {int(c): f"{int(c)} {c.phrase}" for c in HTTPStatus}
#: The WSGI environ keys of the headers botkit reads on every call.
_ENVIRON_KEYS = {
    "X-Signature": "HTTP_X_SIGNATURE",
    "X-Api-Key": "HTTP_X_API_KEY",
    "X-Webhook-Id": "HTTP_X_WEBHOOK_ID",
    "X-Webhook-Attempt": "HTTP_X_WEBHOOK_ATTEMPT",
}


class EnvironHeaders:
    """Request headers looked up straight in the WSGI environ (case-insensitively)."""

    __slots__ = ("environ",)

    def __init__(self, environ: dict[str, Any]) -> None:
        self.environ = environ

    def get(self, key: str, /) -> str | None:
        name = _ENVIRON_KEYS.get(key) or "HTTP_" + key.upper().replace("-", "_")
        value = self.environ.get(name)
        return value if isinstance(value, str) else None


class WebhookRoutes:
    """The webhook routes, served straight from WSGI; every other request goes to Flask.

    Stream calls these routes thousands of times a second on a busy app, and Flask's
    request and response objects would cost more than botkit's own pipeline. Flask still
    serves ``/healthz``, the playground, ``/metrics`` and your own routes.
    """

    def __init__(self, flask_wsgi: WSGIApp, dispatcher: Dispatcher, prefix: str) -> None:
        self.flask_wsgi = flask_wsgi
        self.dispatcher = dispatcher
        self.limit = dispatcher.config.max_body_bytes
        self.routes = {
            f"{prefix}/custom-commands": COMMAND,
            f"{prefix}/before-message-send": BEFORE_SEND,
            f"{prefix}/push": PUSH,
        }
        self.command_prefix = f"{prefix}/custom-commands/"
        self.inline = dispatcher.config.inline_calls > 0
        # an app built without credentials (see check_startup) verifies nothing: it refuses
        self.unconfigured = bool(dispatcher.config.credentials_error)
        self.public_url = dispatcher.config.public_url

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        now = time.monotonic()
        arrived = environ.get(ARRIVED)
        # A server that does not say: the budget counts from now.
        arrived = min(arrived, now) if isinstance(arrived, float) else now
        path: str = environ.get("PATH_INFO", "")
        kind = self.routes.get(path)
        command_type = None
        if kind is None:
            name = path[len(self.command_prefix) :]
            if not path.startswith(self.command_prefix) or not name or "/" in name:
                return self.flask_wsgi(environ, start_response)
            kind = COMMAND
            # PEP 3333 hands the path over as latin-1 text of the raw bytes
            command_type = name.encode("latin-1").decode("utf-8", "replace")
        if environ.get("REQUEST_METHOD") != "POST":
            return _answer(start_response, 405, _METHOD_NOT_ALLOWED, [("Allow", "POST")])
        if self.unconfigured:
            log.error("%s refused: %s", path, self.dispatcher.config.credentials_error)
            return _answer(start_response, 503, _UNCONFIGURED, [("Connection", "close")])
        if kind == COMMAND and command_type is None:
            query = environ.get("QUERY_STRING")
            if query:
                command_type = parse_qs(query).get("type", [""])[0] or None
        try:
            body = self._read(environ)
        except ValueError:
            return _answer(start_response, 400, _BAD_LENGTH)
        except OSError:  # the client went away while sending
            return _answer(start_response, 400, _UNREADABLE)
        early = None
        if self.inline and environ.get("SERVER_SOFTWARE", "").startswith("gunicorn/"):
            early = _EarlyAnswer(environ, start_response)
        public_url = ""
        if kind == COMMAND:  # only command handlers see it, as ctx.public_url
            public_url = self.public_url or request_public_url(environ)
        # Only a threaded server has request threads that others can queue for.
        threads = self.dispatcher.threads if environ.get("wsgi.multithread") else None
        if threads is not None:
            threads.enter()
        try:
            response = self.dispatcher.handle(
                kind, body, EnvironHeaders(environ), command_type, early, arrived, public_url
            )
        except AnsweredAtDeadline:  # the watchdog sent the answer while the handler ran
            return []
        except Exception:  # a bug in botkit: never a traceback in the response
            log.exception("unexpected error while serving %s", path)
            return _answer(start_response, 500, _INTERNAL)
        finally:
            if threads is not None:
                threads.leave()
        headers = [("X-Botkit-Outcome", response.outcome)]
        if body is None:  # refused unread: the rest of the body must not be parsed as a request
            headers.append(("Connection", "close"))
            _close_after(environ)
        return _answer(start_response, response.status, response.body, headers)

    def _read(self, environ: dict[str, Any]) -> bytes | None:
        """The body, or None when it is declared larger than the limit (left unread)."""
        stream = environ["wsgi.input"]
        length = environ.get("CONTENT_LENGTH")
        if length:
            size = int(length)
            if size < 0:
                raise ValueError(length)
            if size > self.limit:
                return None
            data: bytes = stream.read(size)
            return data
        if not environ.get("wsgi.input_terminated"):  # no length, no chunks: no body
            return b""
        # chunked: read one byte past the limit, so that the pipeline answers 413
        chunks, total = [], 0
        while total <= self.limit:
            chunk = stream.read(self.limit + 1 - total)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        return b"".join(chunks)


def request_public_url(environ: dict[str, Any]) -> str:
    """``scheme://host[/script root]`` of a request, without a trailing slash.

    The host is the one the caller asked for (Stream calls the URL it was given, so
    it is reachable from outside); the scheme is gunicorn's ``wsgi.url_scheme``, which
    honours ``X-Forwarded-Proto`` only from ``forwarded_allow_ips``. ``X-Forwarded-Host``
    is not read: anyone can send it. A proxy that rewrites Host needs
    ``BOTKIT_PUBLIC_URL``. Empty when the Host header is not a valid host name.
    """
    return _public_url(
        environ.get("wsgi.url_scheme", "http"),
        environ.get("HTTP_HOST"),
        environ.get("SERVER_NAME", ""),
        environ.get("SERVER_PORT", ""),
        environ.get("SCRIPT_NAME", ""),
    )


# Cached: werkzeug's parsing is a noticeable part of a command's time, a bot sees few
# hosts, and the bound keeps made-up Host headers from growing the cache.
@functools.lru_cache(maxsize=64)
def _public_url(
    scheme: str, host: str | None, server_name: str, server_port: str, script_name: str
) -> str:
    environ = {
        "wsgi.url_scheme": scheme,
        "SERVER_NAME": server_name,
        "SERVER_PORT": server_port,
        "SCRIPT_NAME": script_name,
    }
    if host is not None:
        environ["HTTP_HOST"] = host
    if not get_host(environ):
        return ""
    return get_current_url(environ, root_only=True).rstrip("/")


_METHOD_NOT_ALLOWED = dumps({"error": "method not allowed"})
_BAD_LENGTH = dumps({"error": "invalid Content-Length"})
_UNREADABLE = dumps({"error": "could not read the body"})
_INTERNAL = dumps({"error": "internal error"})
_UNCONFIGURED = dumps(
    {"error": "the bot has no Stream credentials: set STREAM_API_KEY and STREAM_API_SECRET"}
)


class _EarlyAnswer:
    """Sends an answer from the watchdog thread through the ``write`` callable of
    PEP 3333, which gunicorn's workers write straight to the socket with.

    The request thread is still busy with the handler, so the connection cannot take
    the client's next request soon: the answer tells the client it is closed.
    """

    __slots__ = ("environ", "start_response")

    def __init__(self, environ: dict[str, Any], start_response: StartResponse) -> None:
        self.environ = environ
        self.start_response = start_response

    def __call__(self, response: Answer) -> None:
        body = response.body
        _close_after(self.environ)
        write = self.start_response(
            _STATUS[response.status],
            [
                ("Content-Type", _JSON),
                ("Content-Length", str(len(body))),
                ("X-Botkit-Outcome", response.outcome),
            ],
        )
        write(body)


def _close_after(environ: dict[str, Any]) -> None:
    """Have gunicorn close the connection after this answer.

    gunicorn drops a ``Connection`` header the app sets and writes its own, from its
    response object: the bound method it passed as ``start_response`` (kept in the environ
    by :class:`BotkitFlask`, since middleware may wrap it on the way in).
    """
    server_start = environ.get(_SERVER_START_RESPONSE)
    force_close = getattr(getattr(server_start, "__self__", None), "force_close", None)
    if force_close is not None:
        force_close()


_SERVER_START_RESPONSE = "botkit.server_start_response"
#: Where the web server puts the ``time.monotonic()`` at which a request's first byte
#: reached the worker, before the request waited for a thread (botkit's gunicorn worker).
ARRIVED = "botkit.arrived"


class BotkitFlask(Flask):
    """Flask, keeping the web server's own ``start_response`` in the environ."""

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Any:
        environ[_SERVER_START_RESPONSE] = start_response
        return self.wsgi_app(environ, start_response)


def _answer(
    start_response: StartResponse,
    status: int,
    body: bytes,
    headers: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    start_response(
        _STATUS[status],
        [("Content-Type", _JSON), ("Content-Length", str(len(body))), *(headers or ())],
    )
    return [body]


def create_app(
    bot: Bot, config: Config | None = None, *, runtime: Runtime | None = None, **flask_config: Any
) -> Flask:
    """Build the Flask app that serves ``bot``; see :meth:`botkit.Bot.create_app`.

    Missing Stream credentials do not stop the build (importing a bot never needs them):
    the app then answers webhooks 503, and :func:`check_startup` raises at server start.
    """
    config = config or (runtime.config if runtime else Config.from_env(defer_credentials=True))
    configure_logging(config.log_format)
    if config.credentials_error:  # a server that does not call check_startup: say why 503
        log.warning("%s Until then the webhooks answer 503.", config.credentials_error)
    if config.dev_credentials:
        log.warning(
            "No Stream credentials set: using the development key %r and secret %r. "
            "They are for local use only; set STREAM_API_KEY and STREAM_API_SECRET.",
            config.keyring.default_key,
            config.keyring.secret_for(),
        )
    app = BotkitFlask(
        "botkit", instance_path=os.path.abspath(flask_config.pop("instance_path", "instance"))
    )
    app.config.update(MAX_CONTENT_LENGTH=config.max_body_bytes, **flask_config)
    try:
        if runtime is None:
            runtime = Runtime(bot, config, instance_path=app.instance_path)
    except ValueError as exc:  # StoreConfigError and queue URL errors
        raise ConfigError(str(exc)) from exc
    dispatcher = Dispatcher(runtime)
    app.extensions["botkit"] = dispatcher
    bot.app = app

    app.wsgi_app = WebhookRoutes(app.wsgi_app, dispatcher, config.url_prefix)  # type: ignore[method-assign]

    @app.get("/healthz", endpoint="healthz")
    def healthz() -> Response:
        state: dict[str, Any] = {"status": "ok"}
        try:
            runtime.store.ping()
            state["store"] = {"url": runtime.store.url, "ok": True}
        except Exception as exc:  # SQLite's ping is a small write: a read-only or full disk fails
            state["store"] = {"url": runtime.store.url, "ok": False, "error": str(exc)}
            state["status"] = "unavailable"
            signals.store_unavailable.send(bot, kind="healthz", exception=exc)
        state["queue"] = runtime.queue.state()
        if config.credentials_error:
            state["credentials"] = {"ok": False, "error": config.credentials_error}
            state["status"] = "unavailable"
        if not state["queue"].get("ok", True):  # push events could not be queued
            state["status"] = "unavailable"
        status = 200 if state["status"] == "ok" else 503
        return Response(dumps(state), status=status, mimetype=_JSON)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        code = exc.code or 500
        body = dumps({"error": (exc.name or "error").lower()})
        out = Response(body, status=code, mimetype=_JSON)
        if code == 413:
            out.headers["Connection"] = "close"
        return out

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:  # never a traceback in a response
        log.exception("unexpected error while serving %s", request.path)
        return Response(dumps({"error": "internal error"}), status=500, mimetype=_JSON)

    for blueprint, options in bot.blueprints:
        app.register_blueprint(blueprint, **options)
    if metrics_enabled():
        from .metrics import init_metrics

        init_metrics(app)
    if config.playground and not config.credentials_error:  # it signs with the app's secret
        from .playground import register_playground

        register_playground(app, bot, config)
    return app


def check_startup(app: Any) -> None:
    """Raise :class:`~botkit.ConfigError` when ``app`` cannot serve webhooks.

    ``bot.create_app()`` builds an app even without Stream credentials, so that importing
    a bot (its tests, ``botkit routes``) never needs them; a server must not start with
    such an app. gunicorn's settings call this when a worker has loaded the app
    (``post_worker_init``), so the server stops with the message instead of answering
    every webhook 503. Other WSGI apps served with the same settings (your own, or the
    benchmarks' hand-written ones) have nothing for botkit to check: they pass.
    """
    dispatcher = getattr(app, "extensions", {}).get("botkit")
    if isinstance(dispatcher, Dispatcher) and dispatcher.config.credentials_error:
        raise ConfigError(dispatcher.config.credentials_error)
