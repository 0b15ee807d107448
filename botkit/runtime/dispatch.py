"""The webhook pipeline, sans-IO: bytes and headers in, status and body out.

size -> gunzip -> signature -> parse and validate -> deduplicate -> dispatch -> reply.
The Flask view, the test client and the CLI simulator all call :meth:`Dispatcher.handle`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..core import signals
from ..core.commands import Command, Route, clicked
from ..core.context import BeforeSendContext, CommandContext, custom_fields
from ..core.messages import Message, coerce_reply
from ..core.schemas import (
    MESSAGE_FIELDS,
    InvalidPayload,
    load_before_send,
    load_command,
    load_event,
    parse_json,
    validate_reply,
)
from ..core.signing import BodyTooLarge, InvalidSignature, gunzip, is_gzip, verify
from .deadlines import AnsweredAtDeadline
from .pool import NotDone
from .stores import StoreUnavailable

if TYPE_CHECKING:
    from .pool import Call
    from .runtime import Runtime

log = logging.getLogger("botkit")
wlog = logging.getLogger("botkit.webhook")

__all__ = ["Dispatcher", "Response"]

COMMAND, BEFORE_SEND, PUSH = "command", "before_send", "push"
#: Fields a before-send hook may change (besides custom fields).
REWRITABLE = ("text", "i18n", "show_in_channel", "silent", "type", "attachments")
NEUTRAL_REJECTION = "This message could not be checked right now and was not sent."
_POLL = 0.02


_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)  # holds no state


def dumps(obj: Any) -> bytes:
    """Compact, ASCII-only JSON; NaN and infinities are refused (they are not JSON)."""
    return _ENCODER.encode(obj).encode("ascii")


class Headers(Protocol):
    """Request headers, looked up case-insensitively (Werkzeug's ``Headers``, a dict
    with canonical names...)."""

    def get(self, key: str, /) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Response:
    """What botkit answers: ``status``, a JSON ``body``, and the ``outcome`` for logs."""

    status: int
    body: bytes
    outcome: str = "ok"
    cacheable: bool = True

    def json(self) -> Any:
        return json.loads(self.body)


INVALID_SIGNATURE = Response(401, dumps({"error": "invalid signature"}), "rejected-signature")
TOO_LARGE = Response(413, dumps({"error": "body too large"}), "too-large")


def invalid_payload(fields: dict[str, Any]) -> Response:
    body = dumps({"error": "invalid payload", "fields": _jsonable(fields)})
    return Response(400, body, "invalid-payload")


def _jsonable(errors: Any) -> Any:
    if isinstance(errors, dict):
        return {str(k): _jsonable(v) for k, v in errors.items()}
    if isinstance(errors, list):
        return [_jsonable(v) for v in errors]
    return errors


@dataclass(slots=True)
class Meta:
    kind: str
    api_key: str | None
    webhook_id: str | None
    attempt: int
    deadline: float
    name: str = ""
    start: float = 0.0
    #: Sends the answer from another thread (the watchdog's), when the server allows it.
    early: Callable[[Response], object] | None = None
    key: str | None = None  # the dedup key and fingerprint, once claimed
    fingerprint: str = ""


class Dispatcher:
    """Runs the pipeline for one bot in one process."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.bot = runtime.bot
        self.config = runtime.config
        self.started = False

    # -- the pipeline ------------------------------------------------------------------

    def handle(
        self,
        kind: str,
        body: bytes | None,
        headers: Headers,
        command_type: str | None = None,
        early: Callable[[Response], object] | None = None,
    ) -> Response:
        """Answer one webhook. ``headers`` must look up names case-insensitively.

        ``body`` is None when the web server refused it as too large before reading it:
        the call is then answered (413), logged and signalled like any other.

        ``early(response)``, when given, sends an answer from another thread while this
        one is still busy: handlers then run in this thread, and a watchdog answers at the
        deadline (see :mod:`botkit.deadlines`). If it did, this raises
        :class:`~botkit.deadlines.AnsweredAtDeadline` once the handler has returned.
        """
        start = time.monotonic()
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
        meta = Meta(
            kind,
            headers.get("X-Api-Key") or None,
            headers.get("X-Webhook-Id") or None,
            attempt,
            start + budget,
            start=start,
            early=early,
        )
        if body is None:
            response = self._reject(meta, "size", TOO_LARGE)
        else:
            response = self._pipeline(meta, body, headers.get("X-Signature"), command_type)
        self._finish(meta, response)
        return response

    def answer_early(self, meta: Meta, response: Response) -> None:
        """Answer from the watchdog thread: store, log and send what the request thread
        would have, had it not been busy with the handler."""
        self._remember(meta, response)
        self._finish(meta, response)
        assert meta.early is not None
        meta.early(response)

    def _finish(self, meta: Meta, response: Response) -> None:
        """The log line and the ``webhook_handled`` signal of one answered call."""
        kind, start = meta.kind, meta.start
        latency = time.monotonic() - start
        elapsed = latency * 1000
        if wlog.isEnabledFor(logging.INFO):
            # Logger.info without its look up the stack for the caller, which is always
            # this function: the line is written for every webhook.
            record = wlog.makeRecord(
                wlog.name,
                logging.INFO,
                __file__,
                _FINISH_LINE,
                "%s %s id=%s attempt=%d outcome=%s status=%d %.1fms",
                (
                    kind,
                    meta.name or "-",
                    meta.webhook_id or "-",
                    meta.attempt,
                    response.outcome,
                    response.status,
                    elapsed,
                ),
                None,
                "_finish",
                {
                    "webhook": {
                        "kind": kind,
                        "name": meta.name,
                        "webhook_id": meta.webhook_id,
                        "attempt": meta.attempt,
                        "outcome": response.outcome,
                        "status": response.status,
                        "latency_ms": round(elapsed, 2),
                    }
                },
            )
            wlog.handle(record)
        if signals.webhook_handled.receivers:
            signals.webhook_handled.send(
                self.bot,
                kind=kind,
                name=meta.name,
                webhook_id=meta.webhook_id,
                attempt=meta.attempt,
                outcome=response.outcome,
                status=response.status,
                latency=latency,
            )

    def _reject(self, meta: Meta, reason: str, response: Response, detail: str = "") -> Response:
        log.warning(
            "%s webhook rejected (%s%s) id=%s",
            meta.kind,
            reason,
            f": {detail}" if detail else "",
            meta.webhook_id or "-",
        )
        signals.request_rejected.send(
            self.bot, kind=meta.kind, reason=reason, status=response.status
        )
        return response

    def _pipeline(
        self, meta: Meta, body: bytes, signature: str | None, command_type: str | None
    ) -> Response:
        limit = self.config.max_body_bytes
        if len(body) > limit:
            return self._reject(meta, "size", TOO_LARGE)
        if is_gzip(body):
            try:
                body = gunzip(body, limit)
            except BodyTooLarge:
                return self._reject(meta, "size", TOO_LARGE, "gzip body inflates past the limit")
            except ValueError as exc:
                return self._reject(meta, "signature", INVALID_SIGNATURE, str(exc))
        try:
            verify(self.config.keyring, meta.api_key, signature, body)
        except InvalidSignature as exc:
            return self._reject(meta, "signature", INVALID_SIGNATURE, exc.reason)
        try:
            data = parse_json(body)
            if meta.kind == COMMAND:
                payload = load_command(data)
            elif meta.kind == BEFORE_SEND:
                payload = load_before_send(data)
            else:
                load_event(data)
                payload = data
        except InvalidPayload as exc:
            return self._reject(meta, "payload", invalid_payload(exc.fields))

        if meta.kind == COMMAND:
            run = self._command_runner(meta, payload, command_type)
        elif meta.kind == BEFORE_SEND:
            meta.name = "before-send"
            run = BeforeSendRun(self, meta, payload)
        else:
            meta.name = str(payload["type"])
            run = PushRun(self, meta, payload, body)
            if self.runtime.queue.full() and run.would_queue():
                # Refused before the claim: under overload a refusal writes nothing to the
                # store. Stream retries; a copy of an event already queued is refused too
                # and answered from the store once there is room.
                return run.unqueued("the queue is full")
        if not meta.webhook_id:
            log.debug("%s webhook without X-Webhook-Id: not deduplicated", meta.kind)
            return run.run()
        return self._once(meta, hashlib.sha256(body).hexdigest(), run)

    # -- exactly once -------------------------------------------------------------------

    def _once(self, meta: Meta, fingerprint: str, run: Runner) -> Response:
        """Run ``run`` once per (api key, webhook id); replay its answer to copies."""
        store = self.runtime.store
        key = f"{meta.kind}:{meta.api_key}:{meta.webhook_id}"
        try:
            # A claim must outlive the handler's own budget, or a copy arriving in between
            # would run it a second time; at the deadline the placeholder is stored.
            claim_ttl = max(self.config.claim_ttl, meta.deadline - time.monotonic() + 0.5)
            entry = store.claim(key, fingerprint, claim_ttl)
        except StoreUnavailable as exc:
            return self._store_down(meta, run, exc)
        if entry is None:
            meta.key, meta.fingerprint = key, fingerprint
            try:
                response = run.run()
            except AnsweredAtDeadline:  # the watchdog stored its answer
                raise
            except BaseException:
                self._release(store, key, fingerprint)
                raise
            self._remember(meta, response)
            return response
        if entry.fingerprint != fingerprint:
            return self._conflict(meta)
        while not entry.done and time.monotonic() < meta.deadline:
            time.sleep(_POLL)
            try:
                entry = store.get(key)
            except StoreUnavailable as exc:
                if meta.kind == COMMAND:
                    # Another delivery holds the claim and is running the handler: running
                    # it here too would repeat its side effects. Answer as for a copy.
                    signals.store_unavailable.send(self.bot, kind=meta.kind, exception=exc)
                    log.warning("idempotency store unavailable (%s): copy answered in flight", exc)
                    return run.in_flight()
                return self._store_down(meta, run, exc)
            if entry is None:  # the first delivery failed and released its claim
                return self._once(meta, fingerprint, run)
        if entry.done and entry.fingerprint != fingerprint:
            # The SQLite store cannot tell which body another worker's claim is for, so a
            # different body is found out only when that worker's answer is stored.
            return self._conflict(meta)
        if entry.done and entry.status is not None and entry.body is not None:
            signals.duplicate_replayed.send(self.bot, kind=meta.kind, webhook_id=meta.webhook_id)
            return Response(entry.status, entry.body, "replayed")
        return run.in_flight()

    def _conflict(self, meta: Meta) -> Response:
        log.warning("webhook id %s reused with a different body: refused (409)", meta.webhook_id)
        signals.duplicate_conflict.send(self.bot, kind=meta.kind, webhook_id=meta.webhook_id)
        body = dumps({"error": "webhook id reused with a different body"})
        return Response(409, body, "conflict", cacheable=False)

    def _remember(self, meta: Meta, response: Response) -> None:
        """Keep the answer of a claimed call for its copies (written just after the
        answer goes out), or let the claim go if the answer must not be replayed."""
        key = meta.key
        if key is None:
            return
        store = self.runtime.store
        try:
            if response.cacheable:
                store.complete_soon(
                    key, meta.fingerprint, response.status, response.body, self.config.result_ttl
                )
            else:
                store.release(key, meta.fingerprint)
        except StoreUnavailable as exc:
            log.warning("could not store the answer to webhook %s: %s", meta.webhook_id, exc)

    def _release(self, store: Any, key: str, fingerprint: str) -> None:
        try:
            store.release(key, fingerprint)
        except StoreUnavailable:
            pass

    def _store_down(self, meta: Meta, run: Runner, exc: Exception) -> Response:
        signals.store_unavailable.send(self.bot, kind=meta.kind, exception=exc)
        if meta.kind == PUSH:
            log.warning("idempotency store unavailable (%s): push answered 503", exc)
            return Response(503, dumps({"error": "store unavailable"}), "unavailable", False)
        log.warning("idempotency store unavailable (%s): handled without dedup", exc)
        return run.run()

    # -- custom commands --------------------------------------------------------------------

    def _command_runner(
        self, meta: Meta, payload: dict[str, Any], command_type: str | None
    ) -> Runner:
        message: dict[str, Any] = payload["message"]
        form_data: dict[str, str] | None = payload.get("form_data")
        name = command_type or message.get("command") or ""
        meta.name = name
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
            webhook_id=meta.webhook_id,
            attempt=meta.attempt,
            api_key=meta.api_key,
            state=custom_fields(message),
        )
        cmd = self.bot.commands.get(name)
        route: Route | None = None
        if name == "mml" and cmd is None:
            mml_name = (form_data or {}).get("mml_name", "")
            route = self.bot.forms.get(mml_name)
            if route is None:
                text = f"Sorry, no handler for the form {mml_name!r}."
                return Fixed(self._reply(ctx, Message.error(text), "unknown-form"))
        elif cmd is None:
            text = (
                f"Sorry, command {name} doesn't exist. "
                "Try posting your message without the starting /"
            )
            return Fixed(self._reply(ctx, Message.error(text), "unknown-command"))
        else:
            route = cmd.route(form_data)
            if form_data:
                ctx.action = clicked(form_data, cmd.routes)
        return CommandRun(self, meta, ctx, cmd, route)

    def call_command(
        self, ctx: CommandContext, cmd: Command[Any, Any] | None, route: Route | None
    ) -> Message:
        """Checks, form schema, handler, error handlers: the handler's reply as a Message."""
        try:
            for check in (*self.bot.checks, *(cmd.checks if cmd else ())):
                refusal = check(ctx)
                if isinstance(refusal, str):  # a refusal is shown to the caller only
                    return Message.error(refusal)
                if refusal is not None:
                    return coerce_reply(refusal)
            if route is not None and route.schema is not None:
                from ..core.forms import load_form

                form, refusal = load_form(route.schema, ctx)
                if refusal is not None:
                    return refusal
                ctx.form = form
            if route is not None:
                return coerce_reply(route.func(ctx))
            assert cmd is not None
            return coerce_reply(cmd.invoke(ctx))
        except Exception as exc:
            handler = self._error_handler(cmd, exc)
            if handler is None:
                raise
            return coerce_reply(handler(ctx, exc))

    def _error_handler(
        self, cmd: Command[Any, Any] | None, exc: Exception
    ) -> Callable[..., Any] | None:
        for table in ((cmd.error_handlers if cmd else {}), self.bot.error_handlers):
            for klass in type(exc).__mro__:
                if klass in table:
                    return table[klass]
        return None

    def _reply(self, ctx: CommandContext, msg: Message, outcome: str = "ok") -> Response:
        full = msg.merge_into(ctx.message)
        if full is not None:
            for key in ("id", "user"):  # a reply always answers for the same message
                if key in ctx.message:
                    full[key] = ctx.message[key]
            errors = validate_reply(full)
            if errors:
                ref = secrets.token_hex(4)
                log.error(
                    "/%s built a reply Stream would refuse (ref %s): %s", ctx.command, ref, errors
                )
                full = _failure(ctx, ref).merge_into(ctx.message)
                outcome = "error"
            else:
                _warn_hidden_buttons(ctx.command, full)
        try:
            body = dumps({"message": full})
        except (TypeError, ValueError, RecursionError) as exc:
            ref = secrets.token_hex(4)
            log.error("/%s reply is not JSON (ref %s): %s", ctx.command, ref, exc)
            body = dumps({"message": _failure(ctx, ref).merge_into(_plain(ctx.message))})
            outcome = "error"
        return Response(200, body, outcome)

    def command_failed(self, ctx: CommandContext, exc: BaseException, late: bool = False) -> str:
        ref = secrets.token_hex(4)
        log.error(
            "/%s %s (ref %s, webhook id %s)\n%s",
            ctx.command,
            "failed after its deadline" if late else "raised",
            ref,
            ctx.webhook_id,
            "".join(traceback.format_exception(exc)),
        )
        signals.command_failed.send(self.bot, ctx=ctx, exception=exc)
        return ref


#: The line the per-webhook log record names (the ``_finish`` method's).
_FINISH_LINE = Dispatcher._finish.__code__.co_firstlineno


def _failure(ctx: CommandContext, ref: str) -> Message:
    """What the user sees when a command failed; ``ref`` points at the log line."""
    return Message.error(f"Sorry, /{ctx.command} failed (ref {ref}).")


def _plain(message: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in message.items() if k in MESSAGE_FIELDS}


def _warn_hidden_buttons(command: str, message: Mapping[str, Any]) -> None:
    for attachment in message.get("attachments") or ():
        if not isinstance(attachment, Mapping) or not attachment.get("actions"):
            continue
        if attachment.get("type") in ("giphy", "image"):
            continue
        if attachment.get("title_link") or attachment.get("og_scrape_url"):
            continue
        log.warning(
            "/%s: an attachment has buttons but no title_link (and is not of type giphy "
            "or image): current Stream React clients will not show its buttons",
            command,
        )


# -- runners: one delivery's work, so that dedup can wrap every kind alike ----------------


class Runner:
    def run(self) -> Response:
        raise NotImplementedError

    def in_flight(self) -> Response:
        """The answer for a copy that arrived while the first is still running."""
        return Response(503, dumps({"error": "still processing"}), "in-flight", False)


class Fixed(Runner):
    def __init__(self, response: Response) -> None:
        self.response = response

    def run(self) -> Response:
        return self.response


class CommandRun(Runner):
    def __init__(
        self,
        dispatcher: Dispatcher,
        meta: Meta,
        ctx: CommandContext,
        cmd: Command[Any, Any] | None,
        route: Route | None,
    ) -> None:
        self.d = dispatcher
        self.meta = meta
        self.ctx = ctx
        self.cmd = cmd
        self.route = route
        if cmd is not None and cmd.budget_ms is not None:
            meta.deadline = meta.deadline - dispatcher.config.command_budget + cmd.budget_ms / 1000

    def run(self) -> Response:
        d, ctx = self.d, self.ctx
        if signals.command_received.receivers:
            signals.command_received.send(d.bot, ctx=ctx)
        start = time.monotonic()
        meta = self.meta
        watchdog = d.runtime.watchdog
        name = f"/{meta.name}"
        msg: Message | None = None
        error: Exception | None = None
        if meta.early is not None and watchdog.allows(name):
            turn = watchdog.watch(name, meta.deadline, self._at_deadline)
            try:
                msg = d.call_command(ctx, self.cmd, self.route)
            except Exception as exc:
                error = exc
            finally:
                answered = watchdog.finish(turn)
            if not answered:
                self._late(msg, error)
                raise AnsweredAtDeadline
        else:
            future = d.runtime.executor.submit(d.call_command, ctx, self.cmd, self.route)
            try:
                msg = future.result(timeout=max(0.0, meta.deadline - time.monotonic()))
            except NotDone:
                future.add_done_callback(self._late_call)
                return self.in_flight()
            except Exception as exc:
                error = exc
        if error is not None:
            response = d._reply(ctx, _failure(ctx, d.command_failed(ctx, error)), "error")
            return Response(response.status, response.body, "error", cacheable=False)
        assert msg is not None
        response = d._reply(ctx, msg)
        if signals.command_completed.receivers:
            signals.command_completed.send(
                d.bot, ctx=ctx, reply=response.body, duration=time.monotonic() - start
            )
        return response

    def in_flight(self) -> Response:
        cmd, ctx = self.cmd, self.ctx
        placeholder = cmd.placeholder if cmd is not None else None
        if callable(placeholder):
            msg = coerce_reply(placeholder(ctx))
        elif isinstance(placeholder, str):
            msg = Message.ephemeral(placeholder)
        else:
            msg = Message.ephemeral(f"Working on /{ctx.command}…")
        response = self.d._reply(ctx, msg, "late")
        return response

    def _at_deadline(self) -> None:
        """In the watchdog thread: the handler is still running in the request thread."""
        self.d.answer_early(self.meta, self.in_flight())

    def _late_call(self, future: Call[Message]) -> None:
        exc = future.exception()
        self._late(None if exc is not None else future.result(), exc)

    def _late(self, msg: Message | None, exc: BaseException | None) -> None:
        """Post the result of a handler that finished after its deadline."""
        d, ctx = self.d, self.ctx
        if exc is not None:
            d.command_failed(ctx, exc, late=True)
            return
        assert msg is not None
        full = msg.merge_into(ctx.message)
        if full is None or full.get("type") == "error":
            log.warning(
                "/%s finished after its deadline with %s: nothing to post",
                ctx.command,
                "a deletion" if full is None else "an error message",
            )
            return
        payload = {
            "command": ctx.command,
            "cid": ctx.cid,
            "message": full,
            "webhook_id": ctx.webhook_id,
        }
        try:
            d.runtime.queue.submit("late_result", payload)
        except Exception:
            log.exception("/%s: could not queue its late result", ctx.command)


class BeforeSendRun(Runner):
    def __init__(self, dispatcher: Dispatcher, meta: Meta, payload: dict[str, Any]) -> None:
        self.d = dispatcher
        self.meta = meta
        self.payload = payload
        self.position = 0  # index of the hook running now

    def _ctx(self, message: dict[str, Any]) -> BeforeSendContext:
        p = self.payload
        return BeforeSendContext(
            bot=self.d.bot,
            message=message,
            user=p["user"],
            channel=p.get("channel"),
            request_info=p.get("request_info"),
            webhook_id=self.meta.webhook_id,
            attempt=self.meta.attempt,
            api_key=self.meta.api_key,
        )

    def _answer(self, message: Mapping[str, Any], outcome: str = "ok") -> Response:
        out = {k: message[k] for k in REWRITABLE if k in message}
        out.update(custom_fields(message))
        return Response(200, dumps({"message": out}), outcome)

    def _reject(self, ctx: BeforeSendContext, text: str, outcome: str = "rejected") -> Response:
        signals.message_rejected.send(self.d.bot, ctx=ctx, text=text)
        return Response(200, dumps({"message": {"type": "error", "text": text}}), outcome)

    def run(self) -> Response:
        hooks = self.d.bot.hooks
        original: dict[str, Any] = self.payload["message"]
        if not hooks:
            return self._answer(original)
        meta = self.meta
        watchdog = self.d.runtime.watchdog
        if meta.early is not None and watchdog.allows("before-send hooks"):
            turn = watchdog.watch("before-send hooks", meta.deadline, self._at_deadline)
            try:
                response = self._run_hooks(original)
            finally:
                answered = watchdog.finish(turn)
            if not answered:
                raise AnsweredAtDeadline
            return response
        future = self.d.runtime.executor.submit(self._run_hooks, original)
        try:
            return future.result(timeout=max(0.0, meta.deadline - time.monotonic()))
        except NotDone:
            return self.in_flight()

    def _at_deadline(self) -> None:
        """In the watchdog thread: the hooks are still running in the request thread."""
        self.d.answer_early(self.meta, self.in_flight())

    def in_flight(self) -> Response:
        hooks = self.d.bot.hooks
        ctx = self._ctx(self.payload["message"])
        late = hooks[self.position :]
        log.warning("before-send hooks overran their budget (at %s)", late[0].name if late else "-")
        signals.hook_failed.send(self.d.bot, ctx=ctx, exception=TimeoutError("budget spent"))
        if any(h.fail_closed for h in late):
            return self._reject(ctx, NEUTRAL_REJECTION, "late")
        return self._answer(self.payload["message"], "late")

    def _run_hooks(self, original: dict[str, Any]) -> Response:
        current = dict(original)
        for index, hook in enumerate(self.d.bot.hooks):
            self.position = index
            ctx = self._ctx(current)
            try:
                reply = coerce_reply(hook.func(ctx))
            except Exception as exc:
                log.error(
                    "before-send hook %s raised (webhook id %s)\n%s",
                    hook.name,
                    self.meta.webhook_id,
                    traceback.format_exc(),
                )
                signals.hook_failed.send(self.d.bot, ctx=ctx, exception=exc)
                if hook.fail_closed:
                    return self._reject(ctx, NEUTRAL_REJECTION, "error")
                continue
            if reply.deleted:
                log.warning("before-send hook %s returned a deletion; ignored", hook.name)
                continue
            if reply.type == "error":
                return self._reject(ctx, reply.text or "This message was not allowed.")
            current.update(reply.changes)
        self.position = len(self.d.bot.hooks)
        changes = {k: v for k, v in current.items() if original.get(k, _MISSING) != v}
        if changes:
            signals.message_rewritten.send(self.d.bot, ctx=self._ctx(current), changes=changes)
            return self._answer(current, "rewritten")
        return self._answer(current)


_MISSING = object()
_QUEUED = dumps({"ok": True})


class PushRun(Runner):
    def __init__(
        self, dispatcher: Dispatcher, meta: Meta, event: dict[str, Any], body: bytes
    ) -> None:
        self.d = dispatcher
        self.meta = meta
        self.event = event
        self.body = body  # what is queued: bytes cost the queue less than the parsed event

    def _is_own(self) -> bool:
        bot_user = self.d.config.bot_user_id
        if not bot_user:
            return False
        # The event's own ``user`` is who acted (a reaction on the bot's message is
        # someone else's event); only events without one fall back to the message's author.
        user = self.event.get("user")
        if not isinstance(user, dict):
            message = self.event.get("message")
            user = message.get("user") if isinstance(message, dict) else None
        return isinstance(user, dict) and user.get("id") == bot_user

    def would_queue(self) -> bool:
        """Whether :meth:`run` queues this event (not the bot's own, and handled)."""
        return not self._is_own() and bool(self.d.bot.handlers_for(self.meta.name))

    def unqueued(self, reason: object) -> Response:
        """503 for an event that could not be queued (Stream retries it)."""
        log.error("push event %s could not be queued: %s", self.meta.webhook_id, reason)
        return Response(503, dumps({"error": "could not queue the event"}), "unavailable", False)

    def run(self) -> Response:
        d = self.d
        if self._is_own():
            return Response(200, dumps({"ok": True, "ignored": "own event"}), "ignored")
        if not d.bot.handlers_for(self.meta.name):
            return Response(200, dumps({"ok": True, "ignored": "no handler"}), "ignored")
        payload = {
            "body": self.body,
            "webhook_id": self.meta.webhook_id,
            "attempt": self.meta.attempt,
            "api_key": self.meta.api_key,
        }
        try:
            d.runtime.queue.submit("event", payload)
        except Exception as exc:
            return self.unqueued(exc)
        if signals.event_received.receivers:
            signals.event_received.send(d.bot, event=self.event)
        return Response(200, _QUEUED, "queued")
