"""The Flask adapter: routes, body limits, and the healthz endpoint.

Everything else happens in :mod:`botkit.dispatch`; this module only moves bytes.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from .config import Config, ConfigError
from .dispatch import BEFORE_SEND, COMMAND, PUSH, Dispatcher, dumps
from .dispatch import Response as BotResponse
from .logs import configure_logging
from .metrics import metrics_enabled
from .runtime import Runtime

if TYPE_CHECKING:
    from .bot import Bot

log = logging.getLogger("botkit")

__all__ = ["create_app"]

_JSON = "application/json"


def _to_flask(response: BotResponse, close: bool = False) -> Response:
    out = Response(response.body, status=response.status, mimetype=_JSON)
    # What botkit made of the call (ok, replayed, ...): `botkit send --repeat` shows it.
    out.headers["X-Botkit-Outcome"] = response.outcome
    if close:
        out.headers["Connection"] = "close"
    return out


def create_app(
    bot: Bot, config: Config | None = None, *, runtime: Runtime | None = None, **flask_config: Any
) -> Flask:
    """Build the Flask app that serves ``bot``; see :meth:`botkit.Bot.create_app`."""
    config = config or (runtime.config if runtime else Config.from_env())
    configure_logging(config.log_format)
    if config.dev_credentials:
        log.warning(
            "No Stream credentials set: using the development key %r and secret %r. "
            "They are for local use only; set STREAM_API_KEY and STREAM_API_SECRET.",
            config.keyring.default_key,
            config.keyring.secret_for(),
        )
    app = Flask(
        "botkit", instance_path=os.path.abspath(flask_config.pop("instance_path", "instance"))
    )
    # One byte more than the limit: Werkzeug silently truncates a streamed (chunked) body
    # at MAX_CONTENT_LENGTH, so the dispatcher must see the extra byte to answer 413.
    app.config.update(MAX_CONTENT_LENGTH=config.max_body_bytes + 1, **flask_config)
    try:
        if runtime is None:
            runtime = Runtime(bot, config, instance_path=app.instance_path)
    except ValueError as exc:  # StoreConfigError and queue URL errors
        raise ConfigError(str(exc)) from exc
    dispatcher = Dispatcher(runtime)
    app.extensions["botkit"] = dispatcher
    bot.app = app

    def serve(kind: str, command_type: str | None = None) -> Response:
        try:
            body = request.get_data(cache=False)
        except RequestEntityTooLarge:  # declared too large: answered without reading it
            return _to_flask(dispatcher.handle(kind, None, request.headers), close=True)
        return _to_flask(dispatcher.handle(kind, body, request.headers, command_type))

    prefix = config.url_prefix

    @app.post(f"{prefix}/custom-commands", endpoint="custom_commands")
    def custom_commands() -> Response:
        return serve(COMMAND, request.args.get("type") or None)

    @app.post(f"{prefix}/custom-commands/<command_type>", endpoint="custom_commands_path")
    def custom_commands_path(command_type: str) -> Response:
        return serve(COMMAND, command_type)

    @app.post(f"{prefix}/before-message-send", endpoint="before_message_send")
    def before_message_send() -> Response:
        return serve(BEFORE_SEND)

    @app.post(f"{prefix}/push", endpoint="push")
    def push() -> Response:
        return serve(PUSH)

    @app.get("/healthz", endpoint="healthz")
    def healthz() -> Response:
        state: dict[str, Any] = {"status": "ok"}
        try:
            runtime.store.ping()
            state["store"] = {"url": runtime.store.url, "ok": True}
        except Exception as exc:
            state["store"] = {"url": runtime.store.url, "ok": False, "error": str(exc)}
            state["status"] = "unavailable"
        state["queue"] = runtime.queue.state()
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

    if metrics_enabled():
        from .metrics import init_metrics

        init_metrics(app)
    if config.playground:
        from .playground import register_playground

        register_playground(app, bot, config)
    return app
