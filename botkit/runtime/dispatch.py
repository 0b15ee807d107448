"""Exactly-once webhook delivery, deadlines and threads around the pure pipeline.

:mod:`botkit.core.pipeline` reads a webhook and builds its answers; the
:class:`Dispatcher` claims it in the idempotency store, replays the answer to copies,
runs the handlers (:mod:`botkit.runtime.runners`) within their budget, and writes the
per-webhook log line and signals. The Flask view, the test client and the CLI simulator
all call :meth:`Dispatcher.handle`.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..core import signals
from ..core.commands import Route, clicked
from ..core.context import CommandContext, custom_fields
from ..core.messages import Message
from ..core.pipeline import (
    BEFORE_SEND,
    COMMAND,
    PUSH,
    TOO_LARGE,
    Answer,
    Headers,
    Rejection,
    command_reply,
    dumps,
    read,
)
from .deadlines import AnsweredAtDeadline, RequestThreads
from .runners import BeforeSendRun, CommandRun, PushRun, ReadyAnswer, Runner
from .stores import StoreUnavailable

if TYPE_CHECKING:
    from .runtime import Runtime

log = logging.getLogger("botkit")
webhook_log = logging.getLogger("botkit.webhook")

__all__ = ["Delivery", "Dispatcher"]

#: How often a copy looks in the store for the answer of the delivery that claimed it.
_POLL = 0.02


@dataclass(slots=True)
class Delivery:
    """One delivery of a webhook: what its headers said, its budget, and its claim."""

    kind: str
    api_key: str | None
    webhook_id: str | None
    attempt: int
    deadline: float  # time.monotonic() by which it must be answered
    name: str = ""  # the command, "before-send" or the event type, for logs
    start: float = 0.0  # when the request reached botkit: its budget counts from here
    #: Sends the answer from another thread (the watchdog's), when the server allows it.
    early: Callable[[Answer], object] | None = None
    key: str | None = None  # the dedup key and fingerprint, once claimed
    fingerprint: str = ""
    public_url: str = ""  # for CommandContext.public_url


class Dispatcher:
    """Runs the pipeline for one bot in one process."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.bot = runtime.bot
        self.config = runtime.config
        self.started = False
        #: The web server's request threads: the web adapter counts them in and out.
        self.threads = RequestThreads(self.config.request_threads)

    # -- the pipeline ------------------------------------------------------------------

    def handle(
        self,
        kind: str,
        body: bytes | None,
        headers: Headers,
        command_type: str | None = None,
        early: Callable[[Answer], object] | None = None,
        arrived: float | None = None,
        public_url: str = "",
    ) -> Answer:
        """Answer one webhook. ``headers`` must look up names case-insensitively.

        ``arrived`` is the ``time.monotonic()`` at which the request reached the server
        (before it waited for a thread); the budget counts from there. Default: now.

        ``body`` is None when the web server refused it as too large before reading it:
        the call is then answered (413), logged and signalled like any other.

        ``early(answer)``, when given, sends an answer from another thread while this
        one is still busy: handlers then run in this thread, and a watchdog answers at the
        deadline (see :mod:`botkit.runtime.deadlines`). If it did, this raises
        :class:`~botkit.runtime.deadlines.AnsweredAtDeadline` once the handler has returned.

        ``public_url`` is where users reach the bot (``ctx.public_url``), from the web layer.
        """
        start = time.monotonic() if arrived is None else arrived
        if not self.started:
            self.started = True
            self.bot.mark_started()
        try:
            attempt = int(headers.get("X-Webhook-Attempt") or 1)
        except ValueError:
            attempt = 1
        budget = (
            self.config.before_send_budget if kind == BEFORE_SEND else self.config.command_budget
        )
        delivery = Delivery(
            kind,
            headers.get("X-Api-Key") or None,
            headers.get("X-Webhook-Id") or None,
            attempt,
            start + budget,
            start=start,
            early=early,
            public_url=public_url,
        )
        if body is None:
            answer = self._reject(delivery, "size", TOO_LARGE)
        else:
            answer = self._pipeline(delivery, body, headers.get("X-Signature"), command_type)
        self._finish(delivery, answer)
        return answer

    def answer_early(self, delivery: Delivery, answer: Answer) -> None:
        """Answer from the watchdog thread: store, log and send what the request thread
        would have, had it not been busy with the handler."""
        self._remember(delivery, answer)
        self._finish(delivery, answer)
        assert delivery.early is not None
        delivery.early(answer)

    def _finish(self, delivery: Delivery, answer: Answer) -> None:
        """The log line and the ``webhook_handled`` signal of one answered call."""
        kind, start = delivery.kind, delivery.start
        latency = time.monotonic() - start
        elapsed = latency * 1000
        if webhook_log.isEnabledFor(logging.INFO):
            # Logger.info without its look up the stack for the caller, which is always
            # this function: the line is written for every webhook.
            record = webhook_log.makeRecord(
                webhook_log.name,
                logging.INFO,
                __file__,
                _FINISH_LINE,
                "%s %s id=%s attempt=%d outcome=%s status=%d %.1fms",
                (
                    kind,
                    delivery.name or "-",
                    delivery.webhook_id or "-",
                    delivery.attempt,
                    answer.outcome,
                    answer.status,
                    elapsed,
                ),
                None,
                "_finish",
                {
                    "webhook": {
                        "kind": kind,
                        "name": delivery.name,
                        "webhook_id": delivery.webhook_id,
                        "attempt": delivery.attempt,
                        "outcome": answer.outcome,
                        "status": answer.status,
                        "latency_ms": round(elapsed, 2),
                    }
                },
            )
            webhook_log.handle(record)
        if signals.webhook_handled.receivers:
            signals.webhook_handled.send(
                self.bot,
                kind=kind,
                name=delivery.name,
                webhook_id=delivery.webhook_id,
                attempt=delivery.attempt,
                outcome=answer.outcome,
                status=answer.status,
                latency=latency,
            )

    def _reject(self, delivery: Delivery, reason: str, answer: Answer, detail: str = "") -> Answer:
        log.warning(
            "%s webhook rejected (%s%s) id=%s",
            delivery.kind,
            reason,
            f": {detail}" if detail else "",
            delivery.webhook_id or "-",
        )
        signals.request_rejected.send(
            self.bot, kind=delivery.kind, reason=reason, status=answer.status
        )
        return answer

    def _pipeline(
        self, delivery: Delivery, body: bytes, signature: str | None, command_type: str | None
    ) -> Answer:
        got = read(self.config, delivery.kind, delivery.api_key, signature, body)
        if isinstance(got, Rejection):
            return self._reject(delivery, got.reason, got.answer, got.detail)
        payload, body = got
        if delivery.kind == COMMAND:
            refused = self._check_route(delivery, payload, command_type)
            if refused is not None:
                return refused
            run = self._command_runner(delivery, payload, command_type)
        elif delivery.kind == BEFORE_SEND:
            delivery.name = "before-send"
            run = BeforeSendRun(self, delivery, payload)
        else:
            delivery.name = str(payload["type"])
            run = PushRun(self, delivery, payload, body)
            if self.runtime.queue.full() and run.would_queue():
                # Refused before the claim: under overload a refusal writes nothing to the
                # store. Stream retries; a copy of an event already queued is refused too
                # and answered from the store once there is room.
                return run.unqueued("the queue is full")
        if not delivery.webhook_id:
            log.debug("%s webhook without X-Webhook-Id: not deduplicated", delivery.kind)
            return run.run()
        return self._once(delivery, hashlib.sha256(body).hexdigest(), run)

    # -- exactly once -------------------------------------------------------------------

    def _once(self, delivery: Delivery, fingerprint: str, run: Runner) -> Answer:
        """Run ``run`` once per (api key, webhook id); replay its answer to copies."""
        store = self.runtime.store
        key = f"{delivery.kind}:{delivery.api_key}:{delivery.webhook_id}"
        try:
            # A claim must outlive the handler's own budget, or a copy arriving in between
            # would run it a second time; at the deadline the placeholder is stored.
            claim_ttl = max(self.config.claim_ttl, delivery.deadline - time.monotonic() + 0.5)
            entry = store.claim(key, fingerprint, claim_ttl)
        except StoreUnavailable as exc:
            return self._store_down(delivery, run, exc)
        if entry is None:
            delivery.key, delivery.fingerprint = key, fingerprint
            try:
                answer = run.run()
            except AnsweredAtDeadline:  # the watchdog stored its answer
                raise
            except BaseException:
                self._release(store, key, fingerprint)
                raise
            self._remember(delivery, answer)
            return answer
        if entry.fingerprint != fingerprint:
            return self._conflict(delivery)
        while not entry.done and time.monotonic() < delivery.deadline:
            time.sleep(_POLL)
            try:
                entry = store.get(key)
            except StoreUnavailable as exc:
                if delivery.kind == COMMAND:
                    # Another delivery holds the claim and is running the handler: running
                    # it here too would repeat its side effects. Answer as for a copy.
                    signals.store_unavailable.send(self.bot, kind=delivery.kind, exception=exc)
                    log.warning("idempotency store unavailable (%s): copy answered in flight", exc)
                    return run.in_flight()
                return self._store_down(delivery, run, exc)
            if entry is None:  # the first delivery failed and released its claim
                return self._once(delivery, fingerprint, run)
        if entry.done and entry.fingerprint != fingerprint:
            # The claim we waited on expired and a delivery of another body took the key.
            return self._conflict(delivery)
        if entry.done and entry.status is not None and entry.body is not None:
            signals.duplicate_replayed.send(
                self.bot, kind=delivery.kind, webhook_id=delivery.webhook_id
            )
            return Answer(entry.status, entry.body, "replayed")
        return run.in_flight()

    def _conflict(self, delivery: Delivery) -> Answer:
        log.warning(
            "webhook id %s reused with a different body: refused (409)", delivery.webhook_id
        )
        signals.duplicate_conflict.send(
            self.bot, kind=delivery.kind, webhook_id=delivery.webhook_id
        )
        body = dumps({"error": "webhook id reused with a different body"})
        return Answer(409, body, "conflict", cacheable=False)

    def _remember(self, delivery: Delivery, answer: Answer) -> None:
        """Keep the answer of a claimed call for its copies (written just after the
        answer goes out), or let the claim go if the answer must not be replayed."""
        key = delivery.key
        if key is None:
            return
        store = self.runtime.store
        try:
            if answer.cacheable:
                store.complete_soon(
                    key, delivery.fingerprint, answer.status, answer.body, self.config.result_ttl
                )
            else:
                store.release(key, delivery.fingerprint)
        except StoreUnavailable as exc:
            log.warning("could not store the answer to webhook %s: %s", delivery.webhook_id, exc)

    def _release(self, store: Any, key: str, fingerprint: str) -> None:
        try:
            store.release(key, fingerprint)
        except StoreUnavailable:
            pass

    def _store_down(self, delivery: Delivery, run: Runner, exc: Exception) -> Answer:
        """The claim could not be made or read. Push answers 503: an event acked without
        a claim could run twice, and Stream retries a 503. Commands and before-send fail
        open: their answer is due within the second, and a retry would come too late."""
        signals.store_unavailable.send(self.bot, kind=delivery.kind, exception=exc)
        if delivery.kind == PUSH:
            log.warning("idempotency store unavailable (%s): push answered 503", exc)
            return Answer(503, dumps({"error": "store unavailable"}), "unavailable", False)
        log.warning("idempotency store unavailable (%s): handled without dedup", exc)
        return run.run()

    # -- custom commands --------------------------------------------------------------------

    def _check_route(
        self, delivery: Delivery, payload: dict[str, Any], command_type: str | None
    ) -> Answer | None:
        """Refuse a ``type`` (query or path: not signed) that names another command than
        the signed ``message.command``: the signed body decides where a call goes.

        An MML form's submit may come as ``type=mml``; its form is then the one the
        signed ``form_data.mml_name`` names. Refused before the claim, like a bad
        signature, so that the webhook id stays free for the true call.
        """
        signed = payload["message"].get("command")
        if not signed or not command_type or command_type == signed:
            return None
        if command_type == "mml" and "mml_name" in (payload.get("form_data") or {}):
            return None
        delivery.name = signed
        return self._reject(
            delivery,
            "route",
            _WRONG_ROUTE,
            f"type {command_type!r} but the signed message.command is {signed!r}",
        )

    def _command_runner(
        self, delivery: Delivery, payload: dict[str, Any], command_type: str | None
    ) -> Runner:
        message: dict[str, Any] = payload["message"]
        form_data: dict[str, str] | None = payload.get("form_data")
        name = command_type or message.get("command") or ""
        delivery.name = name
        args = message.get("args")
        if args is None:
            text = message.get("text") or ""
            args = text.split(None, 1)[1] if text.startswith("/") and " " in text else ""
        ctx = CommandContext(
            bot=self.bot,
            message=message,
            user=payload["user"],
            command=name,
            args=args,
            form_data=form_data,
            webhook_id=delivery.webhook_id,
            attempt=delivery.attempt,
            api_key=delivery.api_key,
            state=custom_fields(message),
            public_url=delivery.public_url,
        )
        cmd = self.bot.commands.get(name)
        route: Route | None = None
        if name == "mml" and cmd is None:
            mml_name = (form_data or {}).get("mml_name", "")
            route = self.bot.forms.get(mml_name)
            if route is None:
                text = f"Sorry, no handler for the form {mml_name!r}."
                return ReadyAnswer(command_reply(ctx, Message.error(text), "unknown-form"))
        elif cmd is None:
            text = (
                f"Sorry, command {name} doesn't exist. "
                "Try posting your message without the starting /"
            )
            return ReadyAnswer(command_reply(ctx, Message.error(text), "unknown-command"))
        else:
            route = cmd.route(form_data)
            if form_data:
                ctx.action = clicked(form_data, cmd.routes)
        return CommandRun(self, delivery, ctx, cmd, route)


_WRONG_ROUTE = Answer(
    400,
    dumps({"error": "the type in the URL does not match the signed message.command"}),
    "rejected-route",
    cacheable=False,
)
#: The line the per-webhook log record names (the ``_finish`` method's).
_FINISH_LINE = Dispatcher._finish.__code__.co_firstlineno
