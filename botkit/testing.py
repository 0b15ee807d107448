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

Every reply carries what Stream's client would show differently from its JSON
(``reply.warnings``, see :mod:`botkit.core.render`); :func:`render_check` (or, under
pytest, the plugin's ``botkit_render_warnings`` option) makes them fail a test.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
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
from .core.render import LINES, RenderWarning, check_reply, check_update, read_form
from .core.signing import KeyRing
from .runtime.tasks import TASKS, TaskQueue

if TYPE_CHECKING:
    from flask import Flask

    from .core.bot import Bot

log = logging.getLogger("botkit.testing")

__all__ = [
    "RENDER_MODES",
    "RenderCheckError",
    "RenderCheckWarning",
    "Reply",
    "TestClient",
    "action_payload",
    "before_send_payload",
    "channel",
    "command_payload",
    "event_payload",
    "message",
    "render_check",
    "signed_headers",
    "user",
]

TEST_API_KEY = "test-key"
TEST_API_SECRET = "test-secret"


# -- the render check ----------------------------------------------------------------------

#: What a test client does with a reply's render warnings: fail, warn or nothing.
RENDER_MODES = ("error", "warn", "ignore")


class RenderCheckError(AssertionError):
    """A reply that Stream's client would show differently from its JSON (mode ``error``)."""


class RenderCheckWarning(UserWarning):
    """The same, reported as a Python warning (mode ``warn``; pytest lists them)."""


@dataclass(frozen=True)
class _Policy:
    mode: str = "ignore"
    lines: tuple[str, ...] = ("current",)
    allow: frozenset[int] = frozenset()


_policy = _Policy()


@contextmanager
def render_check(
    mode: str = "error", lines: Collection[str] = ("current",), allow: Collection[int] = ()
) -> Iterator[None]:
    """Within the block, every reply of every test client is render-checked.

    ``mode``: ``"error"`` raises :class:`RenderCheckError` at the call that got the
    reply, ``"warn"`` warns :class:`RenderCheckWarning`, ``"ignore"`` does nothing (the
    default outside it). ``lines``: the client lines to check (:data:`LINES`).
    ``allow``: rule numbers to let through. Under pytest, the plugin sets this for each
    test from the ``botkit_render_warnings`` option and markers.
    """
    global _policy
    if mode not in RENDER_MODES:
        raise ValueError(f"render check mode {mode!r}: choose one of {', '.join(RENDER_MODES)}")
    for line in lines:
        if line not in LINES:
            raise ValueError(f"unknown client line {line!r}: choose from {', '.join(LINES)}")
    before = _policy
    _policy = _Policy(mode, tuple(lines), frozenset(allow))
    try:
        yield
    finally:
        _policy = before


def _apply_render_check(reply: Reply) -> None:
    policy = _policy
    if policy.mode == "ignore" or reply.kind == "push" or reply.message is None:
        return
    found = [
        (line, w)
        for line in policy.lines
        for w in reply.warnings_for(line)
        if w.rule not in policy.allow
    ]
    if not found:
        return
    listed = "\n".join(f"  [{line}] {w}" for line, w in found)
    if policy.mode == "warn":
        warnings.warn(
            RenderCheckWarning(f"Stream's client will not show this reply as built:\n{listed}"),
            stacklevel=4,
        )
        return
    rules = ", ".join(str(r) for r in sorted({w.rule for _, w in found}))
    raise RenderCheckError(
        f"Stream's client will not show this reply as built:\n{listed}\n"
        "Fix the reply, or let these rules through for this test with "
        f'@pytest.mark.botkit_render_allow({rules}, reason="...").'
    )


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
    def warnings(self) -> list[RenderWarning]:
        """What Stream's current client shows differently from this reply's JSON."""
        return self.warnings_for("current")

    def warnings_for(self, line: str) -> list[RenderWarning]:
        """The render warnings for client ``line`` (``"current"`` or ``"mml"``).

        For the answer to a click or submit, this includes what goes wrong when the
        clicked message is redrawn as this one (:func:`botkit.core.render.check_update`).
        """
        if self.kind == "push":
            return check_reply(None, line)
        found = check_reply(self.message, line)
        request = self.request or {}
        if "form_data" in request and isinstance(request.get("message"), Mapping):
            found += check_update(request["message"], self.message, line)
        return found

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
        **button: str,
    ) -> Reply:
        """Click a button by its label (``click("Shuffle")``) or by name and value
        (``click(image_action="shuffle")``).

        As Stream's client does, it sends exactly one pair: ``{name: value}`` of the
        button (for a name and value, whatever you give, so a test can send a stale click).
        """
        if self.message is None:
            raise AssertionError(f"no message to click on (status {self.status}: {self.body!r})")
        if text is not None:
            if button:
                raise TypeError("click() takes a button label or name=value, not both")
            matches = [a for a in self.actions if a.get("text") == text]
            if not matches:
                labels = [a.get("text") for a in self.actions]
                raise AssertionError(f"no button {text!r}; the buttons are {labels}")
            button = {str(matches[0]["name"]): str(matches[0].get("value", ""))}
        if len(button) != 1:
            raise TypeError(
                "click() needs a button label or one name=value (a client sends one pair)"
            )
        return self.client.action(self.message, button, user=user)

    def submit(
        self,
        button: str | None = None,
        *,
        user: Mapping[str, Any] | None = None,
        **inputs: str,
    ) -> Reply:
        """Submit the message's MML form as mml-react does: ``mml_name``, every input's
        value (its initial value unless given in ``inputs``) and the clicked button's
        ``name: value``.

        ``button`` is the button's value or label; it may be left out when the form has
        one button only::

            reply.submit("confirm", email="ann@example.com")
        """
        if self.message is None:
            raise AssertionError("no message to submit a form on")
        form = read_form(self.mml or "")
        if form is None or not (form.name or form.values or form.buttons or form.fields):
            raise AssertionError(f"the reply has no MML form to submit (mml: {self.mml!r})")
        data: dict[str, str] = {}
        if form.name:
            data["mml_name"] = form.name
        data.update(form.values)
        data.update(inputs)
        choices = [(label, name, value) for label, name, value in form.buttons if name]
        described = ", ".join(f"{label!r} ({name}={value})" for label, name, value in choices)
        if button is None:
            if len(choices) > 1:
                raise TypeError(
                    f"the form has {len(choices)} buttons: {described}; say which one to "
                    "click, e.g. submit(button=...) with its value or label"
                )
            chosen = choices[0] if choices else None
        else:
            wanted = button.casefold()
            picked = [c for c in choices if c[2] == button] or [
                c for c in choices if c[0].casefold() == wanted
            ]
            if not picked:
                raise AssertionError(
                    f"the form has no button {button!r}; its buttons are {described or 'none'}"
                )
            chosen = picked[0]
        if chosen is not None:
            data[chosen[1]] = chosen[2]
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
        reply = Reply(
            self,
            response.status_code,
            response.get_data(),
            request=request,
            kind=kind,
            errors=errors,
        )
        _apply_render_check(reply)
        return reply

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
