"""Signals botkit sends while it handles webhooks, for logging, metrics and tests.

Connect a receiver the way you would with Flask's signals::

    from botkit import signals

    @signals.command_completed.connect
    def log_duration(bot, ctx, reply, duration):
        ...

Every signal is sent with the :class:`~botkit.Bot` as the sender. Receivers run in the
thread that handles the request, so keep them fast.
"""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

#: Every webhook, once answered: ``kind``, ``name`` (command or event type), ``webhook_id``,
#: ``attempt``, ``outcome`` (ok, replayed, rejected-signature, invalid-payload, error, late,
#: ...), ``status``, ``latency`` (seconds). Logs and metrics listen to this one.
webhook_handled = _signals.signal("webhook-handled")
#: A custom command reached its handler: ``ctx``.
command_received = _signals.signal("command-received")
#: A custom command handler returned: ``ctx``, ``reply`` (the JSON body), ``duration`` (s).
command_completed = _signals.signal("command-completed")
#: A custom command handler raised, or failed after its deadline: ``ctx``, ``exception``.
command_failed = _signals.signal("command-failed")
#: A webhook was refused before any handler ran: ``kind``, ``reason``
#: (``"signature"``, ``"payload"``, ``"size"``, ``"conflict"``), ``status``.
request_rejected = _signals.signal("request-rejected")
#: A delivery repeated an earlier one and got its stored answer: ``kind``, ``webhook_id``.
duplicate_replayed = _signals.signal("duplicate-replayed")
#: A delivery reused a webhook id with a different body and got 409: ``kind``, ``webhook_id``.
duplicate_conflict = _signals.signal("duplicate-conflict")
#: The idempotency store could not be reached: ``kind``, ``exception``.
store_unavailable = _signals.signal("store-unavailable")
#: A before-send hook rejected a message: ``ctx``, ``text``.
message_rejected = _signals.signal("message-rejected")
#: A before-send hook changed a message: ``ctx``, ``changes`` (the changed fields).
message_rewritten = _signals.signal("message-rewritten")
#: A before-send hook raised or overran its budget: ``ctx``, ``exception``.
hook_failed = _signals.signal("hook-failed")
#: A push event was accepted and queued: ``event``.
event_received = _signals.signal("event-received")
#: A push event handler finished: ``event``, ``handler``, ``duration``.
event_handled = _signals.signal("event-handled")
#: A push event handler raised: ``event``, ``handler``, ``exception``.
event_failed = _signals.signal("event-failed")
