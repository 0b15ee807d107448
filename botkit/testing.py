"""Testing a bot without Stream: signed webhooks through the real app, in-process.

::

    def test_gif(bot):
        client = bot.test_client()
        reply = client.command("/gif cats", user={"id": "alice"})
        assert reply.type == "ephemeral"
        reply = reply.click("Shuffle")
        assert reply.click(image_action="send").type == "regular"

The same request builders (:func:`command_payload`, :func:`action_payload`,
:func:`signed_headers`) are what ``botkit send`` and the playground use.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .core.config import Config
from .core.payloads import (
    action_payload,
    before_send_payload,
    channel,
    command_payload,
    encode,
    event_payload,
    message,
    signed_headers,
    user,
)
from .core.signing import KeyRing
from .runtime.tasks import TASKS, TaskQueue

if TYPE_CHECKING:
    from flask import Flask

    from .core.bot import Bot

log = logging.getLogger("botkit.testing")

__all__ = [
    "Reply",
    "TestClient",
    "action_payload",
    "before_send_payload",
    "channel",
    "command_payload",
    "event_payload",
    "message",
    "signed_headers",
    "user",
]

TEST_API_KEY = "test-key"
TEST_API_SECRET = "test-secret"


# -- replies -------------------------------------------------------------------------------


class Reply:
    """What the bot answered. ``message`` is None for a deletion (``{"message": null}``)."""

    def __init__(
        self,
        client: TestClient,
        status: int,
        body: bytes,
        *,
        request: Mapping[str, Any] | None = None,
        kind: str = "command",
        errors: list[BaseException] | None = None,
    ) -> None:
        self.client = client
        self.status = status
        self.body = body
        self.request = request
        self.kind = kind
        #: Exceptions that queued work (push handlers, late results) raised during this call.
        self.errors: list[BaseException] = errors or []
        try:
            self.json: Any = json.loads(body) if body else None
        except ValueError:
            self.json = None

    @property
    def message(self) -> dict[str, Any] | None:
        if isinstance(self.json, dict):
            msg = self.json.get("message")
            return msg if isinstance(msg, dict) else None
        return None

    @property
    def deleted(self) -> bool:
        return (
            isinstance(self.json, dict) and "message" in self.json and self.json["message"] is None
        )

    @property
    def type(self) -> str | None:
        return (self.message or {}).get("type")

    @property
    def text(self) -> str | None:
        return (self.message or {}).get("text")

    @property
    def mml(self) -> str | None:
        return (self.message or {}).get("mml")

    @property
    def attachments(self) -> list[dict[str, Any]]:
        return list((self.message or {}).get("attachments") or [])

    @property
    def actions(self) -> list[dict[str, Any]]:
        """Every button of every attachment, in order."""
        return [a for att in self.attachments for a in (att.get("actions") or [])]

    @property
    def state(self) -> dict[str, Any]:
        """The message's custom fields."""
        from .core.context import custom_fields

        return custom_fields(self.message or {})

    def click(
        self,
        text: str | None = None,
        *,
        user: Mapping[str, Any] | None = None,
        **form: str,
    ) -> Reply:
        """Click a button by its label (``click("Shuffle")``) or by name and value
        (``click(image_action="shuffle")``), as a Stream client would."""
        if self.message is None:
            raise AssertionError(f"no message to click on (status {self.status}: {self.body!r})")
        if text is not None:
            matches = [a for a in self.actions if a.get("text") == text]
            if not matches:
                labels = [a.get("text") for a in self.actions]
                raise AssertionError(f"no button {text!r}; the buttons are {labels}")
            form = {matches[0]["name"]: matches[0].get("value", ""), **form}
        if not form:
            raise TypeError("click() needs a button label or name=value")
        return self.client.action(self.message, form, user=user)

    def submit(self, *, user: Mapping[str, Any] | None = None, **form_data: str) -> Reply:
        """Submit the message's MML form with ``form_data`` (``mml_name`` added for you)."""
        if self.message is None:
            raise AssertionError("no message to submit a form on")
        data = dict(form_data)
        mml = self.mml or ""
        if 'name="' in mml and "mml_name" not in data:
            data["mml_name"] = mml.split('name="', 1)[1].split('"', 1)[0]
        return self.client.action(self.message, data, user=user)

    def __repr__(self) -> str:
        return f"<Reply {self.status} {self.body[:200]!r}>"


# -- the client ----------------------------------------------------------------------------


class InlineQueue(TaskQueue):
    """Runs queued work at once, in the calling thread; failures are kept in ``errors``."""

    url = "inline://"

    def __init__(self, bot: Bot) -> None:
        self.bot = bot
        self.errors: list[BaseException] = []

    def submit(self, name: str, payload: dict[str, Any]) -> None:
        try:
            TASKS[name](self.bot, payload)
        except Exception as exc:
            self.errors.append(exc)


class TestClient:
    """Signs and sends webhooks to a bot's real WSGI app, in-process.

    By default it uses a memory store and runs queued work (push handlers, late results)
    synchronously, so a test sees their effects as soon as the call returns.
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        bot: Bot,
        *,
        config: Config | None = None,
        api_key: str = TEST_API_KEY,
        secret: str = TEST_API_SECRET,
        user: Mapping[str, Any] | None = None,
        cid: str = "messaging:general",
        queue: TaskQueue | None = None,
    ) -> None:
        from .adapters.web import create_app
        from .runtime.runtime import Runtime

        self.bot = bot
        self.api_key = api_key
        self.secret = secret
        self.user = dict(user or {"id": "alice"})
        self.cid = cid
        if config is None:
            config = Config(keyring=KeyRing({api_key: (secret,)}), store_url="memory://")
        self.config = config
        self.queue = queue if queue is not None else InlineQueue(bot)
        self.runtime = Runtime(bot, config, queue=self.queue)
        self.app: Flask = create_app(bot, config, runtime=self.runtime)
        self._http = self.app.test_client()

    @property
    def prefix(self) -> str:
        return self.config.url_prefix

    def close(self) -> None:
        """Stop the client's thread pool and close its store (the plugin does this for you)."""
        self.runtime.close()

    def __enter__(self) -> TestClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def post(
        self,
        path: str,
        payload: Mapping[str, Any] | bytes,
        *,
        webhook_id: str | None = None,
        attempt: int = 1,
        headers: Mapping[str, str] | None = None,
        kind: str = "command",
    ) -> Reply:
        """Sign and post ``payload`` to ``path`` (below the webhook prefix)."""
        body = payload if isinstance(payload, bytes) else encode(payload)
        sent = signed_headers(
            body, api_key=self.api_key, secret=self.secret, webhook_id=webhook_id, attempt=attempt
        )
        sent.update(headers or {})
        queued = getattr(self.queue, "errors", None)
        seen = len(queued) if isinstance(queued, list) else 0
        response = self._http.post(self.prefix + path, data=body, headers=sent)
        request = payload if not isinstance(payload, bytes) else None
        errors = list(queued[seen:]) if isinstance(queued, list) else []
        return Reply(
            self,
            response.status_code,
            response.get_data(),
            request=request,
            kind=kind,
            errors=errors,
        )

    def command(
        self,
        text: str,
        *,
        user: Mapping[str, Any] | None = None,
        cid: str | None = None,
        webhook_id: str | None = None,
        **message_fields: Any,
    ) -> Reply:
        """Send ``/name args`` as a user typing it would."""
        if not text.startswith("/"):
            raise ValueError(f"a command starts with '/': {text!r}")
        payload = command_payload(
            text, user=user or self.user, cid=cid or self.cid, **message_fields
        )
        name = payload["message"]["command"]
        return self.post(f"/custom-commands?type={name}", payload, webhook_id=webhook_id)

    def action(
        self,
        msg: Mapping[str, Any],
        form_data: Mapping[str, str],
        *,
        user: Mapping[str, Any] | None = None,
        webhook_id: str | None = None,
    ) -> Reply:
        """Send a click or form submit on ``msg`` with ``form_data``."""
        payload = action_payload(msg, form_data, user=user or self.user)
        name = msg.get("command") or "mml"
        return self.post(f"/custom-commands?type={name}", payload, webhook_id=webhook_id)

    def before_send(
        self,
        text: str,
        *,
        user: Mapping[str, Any] | None = None,
        cid: str | None = None,
        webhook_id: str | None = None,
        **message_fields: Any,
    ) -> Reply:
        """Run the before-send hooks on a message with ``text``."""
        payload = before_send_payload(
            text, user=user or self.user, cid=cid or self.cid, **message_fields
        )
        return self.post("/before-message-send", payload, webhook_id=webhook_id, kind="before_send")

    def event(
        self, type: str, *, webhook_id: str | None = None, attempt: int = 1, **fields: Any
    ) -> Reply:
        """Push an event; its handlers have run when this returns.

        A handler that raised does not fail the call (Stream got its 200): its exception
        is in ``reply.errors``.
        """
        fields.setdefault("cid", self.cid)
        fields.setdefault("user", self.user)
        return self.post(
            "/push",
            event_payload(type, **fields),
            webhook_id=webhook_id,
            attempt=attempt,
            kind="push",
        )
