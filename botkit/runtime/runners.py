"""Runners: one delivery's work, so that exactly-once delivery wraps every kind alike.

:class:`~botkit.runtime.dispatch.Dispatcher` builds one runner per webhook and calls
:meth:`Runner.run` once per (api key, webhook id); copies that arrive while it runs get
:meth:`Runner.in_flight`. The runners own the deadlines: a handler runs under the
watchdog (request thread) or in the pool, and its answer is a placeholder once the
budget is spent.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from ..core import signals
from ..core.commands import Command, Route
from ..core.context import BeforeSendContext, CommandContext
from ..core.messages import Message, coerce_reply
from ..core.pipeline import (
    NEUTRAL_REJECTION,
    Answer,
    before_send_answer,
    call_command,
    command_failed,
    command_reply,
    dumps,
    failure_message,
)
from .deadlines import AnsweredAtDeadline

if TYPE_CHECKING:
    from .dispatch import Delivery, Dispatcher
    from .pool import Call

log = logging.getLogger("botkit")

__all__ = ["BeforeSendRun", "CommandRun", "PushRun", "ReadyAnswer", "Runner"]


def _has_time(delivery: Delivery) -> bool:
    """Whether some of the budget is left: a handler runs in the request thread only
    then, since the watchdog cannot take back a thread it answered for."""
    return delivery.deadline > time.monotonic()


class Runner:
    def run(self) -> Answer:
        raise NotImplementedError

    def in_flight(self) -> Answer:
        """The answer for a copy that arrived while the first is still running."""
        return Answer(503, dumps({"error": "still processing"}), "in-flight", False)


class ReadyAnswer(Runner):
    """A delivery whose answer is known before anything runs (an unknown command)."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer

    def run(self) -> Answer:
        return self.answer


class CommandRun(Runner):
    def __init__(
        self,
        dispatcher: Dispatcher,
        delivery: Delivery,
        ctx: CommandContext,
        cmd: Command[Any, Any] | None,
        route: Route | None,
    ) -> None:
        self.dispatcher = dispatcher
        self.delivery = delivery
        self.ctx = ctx
        self.cmd = cmd
        self.route = route
        if cmd is not None and cmd.budget_ms is not None:
            budget = dispatcher.config.command_budget
            delivery.deadline = delivery.deadline - budget + cmd.budget_ms / 1000

    def run(self) -> Answer:
        dispatcher, ctx = self.dispatcher, self.ctx
        if signals.command_received.receivers:
            signals.command_received.send(dispatcher.bot, ctx=ctx)
        start = time.monotonic()
        delivery = self.delivery
        watchdog = dispatcher.runtime.watchdog
        name = f"/{delivery.name}"
        msg: Message | None = None
        error: Exception | None = None
        turn = None
        if delivery.early is not None and _has_time(delivery):
            turn = watchdog.admit(name, delivery.deadline, self._at_deadline)
        if turn is not None:
            try:
                msg = call_command(ctx, self.cmd, self.route)
            except Exception as exc:
                error = exc
            finally:
                answered = watchdog.finish(turn)
            if not answered:
                self._late(msg, error)
                raise AnsweredAtDeadline
        else:
            # A request whose budget is spent, or whose thread another request needs,
            # answers the placeholder without waiting: the handler still runs, when a pool
            # thread is free, and its result is posted late.
            future = dispatcher.runtime.executor.submit(call_command, ctx, self.cmd, self.route)
            if not dispatcher.threads.wait(future, delivery.deadline):
                future.add_done_callback(self._late_call)
                return self.in_flight()
            try:
                msg = future.result(timeout=0)
            except Exception as exc:
                error = exc
        if error is not None:
            answer = command_reply(ctx, failure_message(ctx, command_failed(ctx, error)), "error")
            return Answer(answer.status, answer.body, "error", cacheable=False)
        assert msg is not None
        answer = command_reply(ctx, msg)
        if signals.command_completed.receivers:
            signals.command_completed.send(
                dispatcher.bot, ctx=ctx, reply=answer.body, duration=time.monotonic() - start
            )
        return answer

    def in_flight(self) -> Answer:
        cmd, ctx = self.cmd, self.ctx
        placeholder = cmd.placeholder if cmd is not None else None
        if callable(placeholder):
            msg = coerce_reply(placeholder(ctx))
        elif isinstance(placeholder, str):
            msg = Message.ephemeral(placeholder)
        else:
            msg = Message.ephemeral(f"Working on /{ctx.command}…")
        return command_reply(ctx, msg, "late")

    def _at_deadline(self) -> None:
        """In the watchdog thread: the handler is still running in the request thread."""
        self.dispatcher.answer_early(self.delivery, self.in_flight())

    def _late_call(self, future: Call[Message]) -> None:
        exc = future.exception()
        self._late(None if exc is not None else future.result(), exc)

    def _late(self, msg: Message | None, exc: BaseException | None) -> None:
        """Post the result of a handler that finished after its deadline."""
        ctx = self.ctx
        if exc is not None:
            command_failed(ctx, exc, late=True)
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
            self.dispatcher.runtime.queue.submit("late_result", payload)
        except Exception:
            log.exception("/%s: could not queue its late result", ctx.command)


class BeforeSendRun(Runner):
    def __init__(self, dispatcher: Dispatcher, delivery: Delivery, payload: dict[str, Any]) -> None:
        self.dispatcher = dispatcher
        self.delivery = delivery
        self.payload = payload
        self.position = 0  # index of the hook running now

    def _ctx(self, message: dict[str, Any]) -> BeforeSendContext:
        p, delivery = self.payload, self.delivery
        return BeforeSendContext(
            bot=self.dispatcher.bot,
            message=message,
            user=p["user"],
            channel=p.get("channel"),
            request_info=p.get("request_info"),
            webhook_id=delivery.webhook_id,
            attempt=delivery.attempt,
            api_key=delivery.api_key,
        )

    def _reject(self, ctx: BeforeSendContext, text: str, outcome: str = "rejected") -> Answer:
        signals.message_rejected.send(self.dispatcher.bot, ctx=ctx, text=text)
        return Answer(200, dumps({"message": {"type": "error", "text": text}}), outcome)

    def run(self) -> Answer:
        hooks = self.dispatcher.bot.hooks
        original: dict[str, Any] = self.payload["message"]
        if not hooks:
            return before_send_answer(original)
        delivery = self.delivery
        runtime = self.dispatcher.runtime
        watchdog = runtime.watchdog
        turn = None
        if delivery.early is not None and _has_time(delivery):
            turn = watchdog.admit("before-send hooks", delivery.deadline, self._at_deadline)
        if turn is not None:
            try:
                answer = self._run_hooks(original)
            finally:
                answered = watchdog.finish(turn)
            if not answered:
                raise AnsweredAtDeadline
            return answer
        future = runtime.executor.submit(self._run_hooks, original)
        if not self.dispatcher.threads.wait(future, delivery.deadline):
            return self._unfinished()
        return future.result(timeout=0)

    def _at_deadline(self) -> None:
        """In the watchdog thread: the hooks are still running in the request thread."""
        self.dispatcher.answer_early(self.delivery, self._unfinished())

    def _unfinished(self) -> Answer:
        """The answer while the hooks still run: past their budget, or before it when
        every request thread is taken and this one is freed for the next request."""
        bot = self.dispatcher.bot
        late = bot.hooks[self.position :]
        at = late[0].name if late else "-"
        if time.monotonic() < self.delivery.deadline:
            log.warning(
                "before-send hooks still running (at %s) while every request thread is busy:"
                " answered early to free this one",
                at,
            )
            why = "answered early: every request thread busy"
        else:
            log.warning("before-send hooks overran their budget (at %s)", at)
            why = "budget spent"
        ctx = self._ctx(self.payload["message"])
        signals.hook_failed.send(bot, ctx=ctx, exception=TimeoutError(why))
        return self.in_flight()

    def in_flight(self) -> Answer:
        """What a copy gets while the first delivery's hooks run, and what the first gets
        when they are unfinished: the message as sent (marked late), or the neutral
        rejection if a hook still to run is fail-closed."""
        late = self.dispatcher.bot.hooks[self.position :]
        if any(h.fail_closed for h in late):
            return self._reject(self._ctx(self.payload["message"]), NEUTRAL_REJECTION, "late")
        return before_send_answer(self.payload["message"], "late")

    def _run_hooks(self, original: dict[str, Any]) -> Answer:
        bot = self.dispatcher.bot
        current = dict(original)
        raised = False  # a hook that raised passes the message (fail-open) but is no "ok"
        for index, hook in enumerate(bot.hooks):
            self.position = index
            ctx = self._ctx(current)
            try:
                reply = coerce_reply(hook.func(ctx))
            except Exception as exc:
                log.error(
                    "before-send hook %s raised (webhook id %s)",
                    hook.name,
                    self.delivery.webhook_id,
                    exc_info=True,
                )
                signals.hook_failed.send(bot, ctx=ctx, exception=exc)
                if hook.fail_closed:
                    return self._reject(ctx, NEUTRAL_REJECTION, "error")
                raised = True
                continue
            if reply.deleted:
                log.warning("before-send hook %s returned a deletion; ignored", hook.name)
                continue
            if reply.type == "error":
                return self._reject(ctx, reply.text or "This message was not allowed.")
            current.update(reply.changes)
        self.position = len(bot.hooks)
        changes = {k: v for k, v in current.items() if original.get(k, _MISSING) != v}
        if changes:
            signals.message_rewritten.send(bot, ctx=self._ctx(current), changes=changes)
        if raised:
            return before_send_answer(current, "error")
        return before_send_answer(current, "rewritten" if changes else "ok")


_MISSING = object()
#: The body of every queued event's answer, encoded once.
_QUEUED = dumps({"ok": True})


class PushRun(Runner):
    def __init__(
        self, dispatcher: Dispatcher, delivery: Delivery, event: dict[str, Any], body: bytes
    ) -> None:
        self.dispatcher = dispatcher
        self.delivery = delivery
        self.event = event
        self.body = body  # what is queued: bytes cost the queue less than the parsed event

    def _is_own(self) -> bool:
        bot_user = self.dispatcher.config.bot_user_id
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
        return not self._is_own() and bool(self.dispatcher.bot.handlers_for(self.delivery.name))

    def unqueued(self, reason: object) -> Answer:
        """503 for an event that could not be queued (Stream retries it)."""
        log.error("push event %s could not be queued: %s", self.delivery.webhook_id, reason)
        return Answer(503, dumps({"error": "could not queue the event"}), "unavailable", False)

    def run(self) -> Answer:
        dispatcher, delivery = self.dispatcher, self.delivery
        if self._is_own():
            return Answer(200, dumps({"ok": True, "ignored": "own event"}), "ignored")
        if not dispatcher.bot.handlers_for(delivery.name):
            return Answer(200, dumps({"ok": True, "ignored": "no handler"}), "ignored")
        payload = {
            "body": self.body,
            "webhook_id": delivery.webhook_id,
            "attempt": delivery.attempt,
            "api_key": delivery.api_key,
        }
        try:
            dispatcher.runtime.queue.submit("event", payload)
        except Exception as exc:
            return self.unqueued(exc)
        if signals.event_received.receivers:
            signals.event_received.send(dispatcher.bot, event=self.event)
        return Answer(200, _QUEUED, "queued")
