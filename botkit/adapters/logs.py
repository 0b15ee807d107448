"""botkit's log output: one line per webhook, as text or as JSON lines.

botkit logs on the ``botkit`` logger and its children. Every webhook ends with one
INFO line on ``botkit.webhook``, with its kind, command or event type, webhook id,
attempt, outcome (``ok``, ``replayed``, ``rejected-signature``, ``invalid-payload``,
``error``, ``late``, ...), HTTP status and latency::

    2025-01-01 12:00:00,000 INFO botkit.webhook: command gif id=3f2c… attempt=1 outcome=ok status=200 4.1ms

With ``BOTKIT_LOG_FORMAT=json`` each line is a JSON object instead, the webhook fields
at the top level (``kind``, ``name``, ``webhook_id``, ``attempt``, ``outcome``,
``status``, ``latency_ms``), ready for a log drain.

:func:`configure_logging` is called by ``create_app`` and by the ``botkit`` CLI. If
your application already sends the ``botkit`` logger's records somewhere (a handler on
the root logger, say), botkit leaves your set-up alone: put :class:`JSONFormatter` on
your handler to get the JSON lines. Secrets, signatures and message bodies never appear
in botkit's records at INFO or above.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import IO, Any

from ..core.config import ConfigError

__all__ = ["FORMATS", "JSONFormatter", "TextFormatter", "configure_logging", "escape"]

#: The values ``BOTKIT_LOG_FORMAT`` accepts.
FORMATS = ("text", "json")

#: The keys of the ``webhook`` record attribute, in the order they are written.
WEBHOOK_FIELDS = ("kind", "name", "webhook_id", "attempt", "outcome", "status", "latency_ms")

_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: Attributes every LogRecord has; anything else came in through ``extra=``.
_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message``, the webhook line's fields already in its message."""

    def __init__(self) -> None:
        super().__init__(_TEXT_FORMAT)
        self._second = -1
        self._stamp = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        # The logging default, with the strftime part kept for the rest of the second:
        # a busy worker writes hundreds of lines a second.
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        if second != self._second:
            self._stamp = time.strftime(self.default_time_format, self.converter(second))
            self._second = second
        return f"{self._stamp},{int(record.msecs):03d}"

    def formatMessage(self, record: logging.LogRecord) -> str:
        # The format above, without the formatting of every attribute of the record.
        return f"{record.asctime} {record.levelname} {record.name}: {record.message}"

    def format(self, record: logging.LogRecord) -> str:
        """``logging.Formatter.format``, with the message's arguments escaped."""
        record.message = escaped_message(record)
        record.asctime = self.formatTime(record, self.datefmt)
        line = self.formatMessage(record)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line = f"{line}\n{record.exc_text}"
        if record.stack_info:
            line = f"{line}\n{self.formatStack(record.stack_info)}"
        return line


def escape(text: str) -> str:
    """``text`` with each character that is not printable written as its Python escape
    (``\\n``, ``\\x1b``, ``\\u2028``...), so that what a request sent can neither start a
    log line of its own nor rewrite the terminal."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class _Escaped:
    """An argument of a log call, shown escaped whether ``%s`` or ``%r`` shows it."""

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value

    def __str__(self) -> str:
        return escape(str(self.value))

    def __repr__(self) -> str:
        return escape(repr(self.value))


def _safe(value: object) -> object:
    # Numbers keep their type for %d and %.1f; a clean string is kept as it is (the
    # per-webhook line's arguments, on every call).
    if isinstance(value, (int, float)) or value is None:
        return value
    if isinstance(value, str) and value.isprintable():
        return value
    return _Escaped(value)


def escaped_message(record: logging.LogRecord) -> str:
    """The record's message, each of its arguments escaped (see :func:`escape`).

    The arguments are what a log call got from elsewhere (a request's command, webhook
    id, event type...); the format string is the program's own and is left as it is.
    """
    msg = str(record.msg)
    args = record.args
    if not args:
        return msg
    if isinstance(args, Mapping):
        return msg % {key: _safe(value) for key, value in args.items()}
    return msg % tuple(_safe(value) for value in args)


class JSONFormatter(logging.Formatter):
    """One JSON object per line: ``time``, ``level``, ``logger``, ``message``, the
    webhook fields (for the per-webhook line) and ``exception`` (a traceback, if any).

    Values given with ``extra=`` that are JSON-friendly are kept as they are; other
    values are written with ``str()``.
    """

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        webhook = getattr(record, "webhook", None)
        if isinstance(webhook, Mapping):
            for key in WEBHOOK_FIELDS:
                if key in webhook:
                    out[key] = webhook[key]
        for key, value in record.__dict__.items():
            if key in _RESERVED or key == "webhook" or key.startswith("_") or key in out:
                continue
            out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exception"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        line = json.dumps(out, default=str, ensure_ascii=False)
        if not line.isprintable():
            # JSON escapes only the ASCII control characters: NEL, U+2028 and the like
            # would still split the line for some readers. Outside strings JSON is ASCII.
            line = "".join(c if c.isprintable() else json.dumps(c)[1:-1] for c in line)
        return line


class _BotkitHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler :func:`configure_logging` installs (so it can find it again).

    Every webhook writes a line, from many threads at once, so no thread waits here for
    another's write: a line is formatted outside any lock and queued, and whichever
    thread holds the write turn writes every queued line in one go. Every line is
    written before the ``emit`` that queued it returns, or by the thread then writing.
    """

    def __init__(self, stream: IO[str]) -> None:
        super().__init__(stream)
        self._lines: deque[str] = deque()
        self._turn = threading.Lock()

    def handle(self, record: logging.LogRecord) -> bool:
        # Handler.handle without its lock: emit() takes care of concurrent writers.
        rv: object = self.filter(record)
        if isinstance(rv, logging.LogRecord):  # Python 3.12+ filters may return a record
            record = rv
        if rv:
            self.emit(record)
        return bool(rv)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        lines = self._lines
        lines.append(line)
        # A thread that finds the turn taken leaves its line to the holder, which looks
        # at the queue again after letting go: no line is left behind.
        while lines and self._turn.acquire(blocking=False):
            try:
                batch = []
                while lines:
                    batch.append(lines.popleft())
                if batch:
                    with self.lock:  # type: ignore[union-attr]  # setStream() takes it too
                        self.stream.write("".join(batch))
                        self.flush()
            except Exception:
                self.handleError(record)
            finally:
                self._turn.release()


def _formatter(fmt: str) -> logging.Formatter:
    return JSONFormatter() if fmt == "json" else TextFormatter()


def _resolve_format(fmt: str | None, environ: Mapping[str, str]) -> str:
    value = (fmt if fmt is not None else environ.get("BOTKIT_LOG_FORMAT", "")).strip().lower()
    value = value or "text"
    if value not in FORMATS:
        raise ConfigError(f"BOTKIT_LOG_FORMAT={value!r}: use 'text' (the default) or 'json'")
    return value


def _handled_elsewhere(logger: logging.Logger) -> bool:
    """Whether someone else's handler already receives ``logger``'s INFO records."""
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            if not isinstance(handler, _BotkitHandler) and handler.level <= logging.INFO:
                return True
        current = current.parent if current.propagate else None
    return False


def configure_logging(
    fmt: str | None = None,
    *,
    stream: IO[str] | None = None,
    level: int = logging.INFO,
    environ: Mapping[str, str] | None = None,
) -> logging.Handler | None:
    """Send the ``botkit`` logger's records to ``stream`` (stderr by default).

    ``fmt`` is ``"text"`` or ``"json"``; by default ``BOTKIT_LOG_FORMAT`` decides.
    The first call installs the handler; later calls (every ``create_app`` makes one)
    leave it as it is, unless they pass a new ``stream``. Without ``stream``, nothing is
    installed when the application already handles botkit's records itself.
    Returns the handler botkit uses, or None.
    Raises :class:`~botkit.ConfigError` for an unknown format.
    """
    chosen = _resolve_format(fmt, os.environ if environ is None else environ)
    logger = logging.getLogger("botkit")
    ours = [h for h in logger.handlers if isinstance(h, _BotkitHandler)]
    if ours:
        handler = ours[0]
        if stream is not None:  # an explicit new destination: reconfigure
            handler.setStream(stream)
            handler.setFormatter(_formatter(chosen))
        return handler
    if stream is None and _handled_elsewhere(logger):
        return None
    handler = _BotkitHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(_formatter(chosen))
    logger.addHandler(handler)
    if logger.level == logging.NOTSET or logger.level > level:
        logger.setLevel(level)
    return handler


def remove_handler() -> None:
    """Take out the handler :func:`configure_logging` installed (for tests)."""
    logger = logging.getLogger("botkit")
    for handler in [h for h in logger.handlers if isinstance(h, _BotkitHandler)]:
        logger.removeHandler(handler)
