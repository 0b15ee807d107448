"""A gunicorn worker that reads each request in its event loop before a thread takes it.

gunicorn's gthread worker waits for a connection's first byte in its selector, then hands
the connection to a pool thread that reads the headers and the body with no deadline:
16 clients sending their headers a byte at a time hold all 8 threads of two workers, and
the server answers no one (issue 20, "slowloris"). :class:`BotkitWorker` is gthread with
one change: a connection goes to the pool only once its request is complete. Until then
its socket stays in the worker's poller, non-blocking, and the bytes are buffered:

- the header block (up to gunicorn's own ``limit_request_*`` bounds), within
  ``BOTKIT_HEADER_TIMEOUT`` seconds (default 10) of the request's first byte;
- the body, of ``Content-Length`` or chunked, up to ``BOTKIT_MAX_BODY_BYTES`` of data,
  within ``BOTKIT_BODY_TIMEOUT`` seconds (default 30) of the first byte. ``Expect:
  100-continue`` is answered from the loop so the client sends it.

Past a deadline the connection gets a 408 and is closed. A worker holds at most
``BOTKIT_READ_BUFFER_BYTES`` (64 MiB) of unfinished requests; past that, it hands further
ones to the pool as they are, to be read there as under gthread (and logs a warning). What the loop cannot judge goes
to the pool as soon as gunicorn or the app can answer it from the bytes buffered, as
under gthread: a malformed or oversized head (400, 414, 431), a body over the limit
(botkit answers 413; one declared too large is not read), a malformed chunked body, a
transfer coding other than chunked. TLS that gunicorn terminates (``BOTKIT_TLS_*``) is read
in the loop too: the handshake, non-blocking, within ``BOTKIT_HEADER_TIMEOUT`` of the
accept, then the request as above. HTTP/2 (TLS with ALPN h2 included), the PROXY protocol
and uwsgi keep gthread's path entirely: put a proxy in front of those deployments.

The request's arrival, ``time.monotonic()`` when the worker read its first byte, is in
the WSGI environ as ``botkit.arrived`` (a float; absent under other servers). For a
request that came pipelined behind another, it is when the worker took it up; on
gthread's path (HTTP/2, PROXY), when the connection turned readable.

**gunicorn internals.** gunicorn has no public hook for reading a request before a
thread takes it, so the class relies on gthread's private structure, pinned in setup.py
to gunicorn 27 (``GUNICORN_MAJOR``), checked at start (:func:`check_gunicorn`) and by
``tests/test_gunicorn_worker.py`` and ``tests/test_slowloris.py``: the ``ThreadWorker``
methods ``enqueue_req`` (the one way into the pool: after accept, for a kept-alive
connection that turns readable, and for bytes left over after a request),
``handle_request`` (runs in the pool thread), ``murder_pending`` (called on every turn of
the loop), ``load_wsgi`` and the attributes ``poller``, ``nr_conns``, ``alive``, ``wsgi``;
``TConn``'s ``sock``, ``client``, ``parser``, ``data_ready`` (skips gthread's in-thread
wait for a first byte) and ``close``; ``gunicorn.http.get_parser`` and the parser's
``unreader.unread``/``take_buffered``, the way ``TConn.init`` hands over bytes it read;
``gunicorn.sock.ssl_context`` (TLS: ``TConn.init`` wraps no socket that has a parser).
"""

from __future__ import annotations

import os
import selectors
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import gunicorn  # type: ignore[import-untyped]
from gunicorn import http as gunicorn_http
from gunicorn import sock as gunicorn_sock
from gunicorn.workers.gthread import ThreadWorker  # type: ignore[import-untyped]

from ..core.config import env_positive

__all__ = ["BotkitWorker", "ReadLimits", "check_gunicorn"]

#: The gunicorn release whose gthread internals this module was written against.
GUNICORN_MAJOR = 27
_TIMEOUT_ANSWER = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
# How long a stopping worker waits for the first byte on a connection it accepted, as
# gthread gives its kept-alive connections (STOP_KEEPALIVE_LINGER).
_STOP_LINGER = 2.0
_ARRIVED = "botkit.arrived"
# Deadlines are checked this often (seconds) at most; gthread's loop also wakes once a
# second when idle, so a deadline is kept within about a second.
_SWEEP_EVERY = 0.25


def check_gunicorn(version: str = gunicorn.__version__) -> None:
    """Refuse a gunicorn whose gthread worker this class was not written for."""
    major = int(version.split(".")[0])
    if major != GUNICORN_MAJOR:
        raise RuntimeError(
            f"botkit's worker relies on gunicorn {GUNICORN_MAJOR}'s gthread internals, found "
            f"gunicorn {version}: pin gunicorn=={GUNICORN_MAJOR}.* or set worker_class=gthread"
        )


def _peer(client: Any) -> str:
    if isinstance(client, tuple) and len(client) >= 2:
        return f"{client[0]}:{client[1]}"
    return str(client)


@dataclass(frozen=True)
class ReadLimits:
    """How long a request may take to arrive, and how large a body is buffered."""

    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_body_bytes: int = 1024 * 1024
    #: bytes of unfinished requests one worker holds at most
    buffer_bytes: int = 64 * 1024 * 1024

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> ReadLimits:
        """``BOTKIT_HEADER_TIMEOUT``, ``BOTKIT_BODY_TIMEOUT``, ``BOTKIT_MAX_BODY_BYTES``,
        ``BOTKIT_READ_BUFFER_BYTES``."""
        header = env_positive(environ, "BOTKIT_HEADER_TIMEOUT", cls.header_timeout)
        body = env_positive(environ, "BOTKIT_BODY_TIMEOUT", cls.body_timeout)
        size = env_positive(environ, "BOTKIT_MAX_BODY_BYTES", cls.max_body_bytes)
        held = env_positive(environ, "BOTKIT_READ_BUFFER_BYTES", cls.buffer_bytes)
        return cls(header, max(header, body), int(size), int(held))


@dataclass
class _Read:
    """A request being buffered in the loop."""

    deadline: float
    buf: bytearray = field(default_factory=bytearray)
    arrived: float | None = None
    #: where the body starts, once the head is complete
    body_at: int | None = None
    #: the request's length in bytes, once known (a body of Content-Length)
    length: int | None = None
    #: a chunked body: where its next chunk-size line starts, and the data bytes so far
    chunk_at: int | None = None
    decoded: int = 0
    #: a TLS connection whose handshake is not done yet
    handshaking: bool = False


@dataclass(frozen=True)
class _Framing:
    content_length: int | None
    chunked: bool
    #: the body's length cannot be judged here (several or bad lengths, other codings)
    unknown: bool
    expect_continue: bool


def _framing(head: bytes) -> _Framing:
    """What the header block says about the body, read just enough to wait for it."""
    lengths: list[bytes] = []
    codings: list[bytes] = []
    expect = False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            lengths.append(value.strip())
        elif name == b"transfer-encoding":
            codings.append(value.strip().lower())
        elif name == b"expect":
            expect = value.strip().lower() == b"100-continue"
    # gunicorn's parser refuses or decides these itself: let it say so
    unknown = len(lengths) > 1 or (bool(lengths) and not lengths[0].isdigit())
    chunked = codings == [b"chunked"] and not lengths
    unknown = unknown or (bool(codings) and not chunked)
    length = int(lengths[0]) if lengths and not unknown else None
    return _Framing(length, chunked, unknown, expect)


def _bare_lf(buf: bytearray, start: int) -> bool:
    """Whether a line feed from ``start`` on has no carriage return before it."""
    at = buf.find(b"\n", start)
    while at >= 0:
        if at == 0 or buf[at - 1] != 13:  # 13: "\r"
            return True
        at = buf.find(b"\n", at + 1)
    return False


_HEX = b"0123456789abcdefABCDEF"
_WAIT = -1
_HAND_OVER = -2


class BotkitWorker(ThreadWorker):  # type: ignore[misc]
    """gthread, reading each request's head and body in the event loop (module docs)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        check_gunicorn()
        super().__init__(*args, **kwargs)
        self.limits = ReadLimits.from_environ(os.environ)
        cfg = self.cfg
        # Anything but HTTP/1.x on TCP, with or without TLS, keeps gthread's path (module
        # docs); TLS only without ALPN's h2, which gthread's own handshake negotiates.
        self.tls = bool(cfg.is_ssl)
        self.buffering = not (
            "h2" in cfg.http_protocols
            or cfg.http2_cleartext != "off"
            or cfg.proxy_protocol != "off"
            or getattr(cfg, "protocol", "http") != "http"
        )
        # Past these many bytes gunicorn's parser refuses a head: hand it over to say so.
        line = cfg.limit_request_line if cfg.limit_request_line > 0 else 0
        fields = cfg.limit_request_fields if cfg.limit_request_fields > 0 else 32768
        size = cfg.limit_request_field_size if cfg.limit_request_field_size > 0 else 8190
        # a request line, after one leading empty line, is refused past ``line`` bytes
        self.max_request_line = line + 2 if line else 0
        self.max_head = 2 + (line or 1024 * 1024) + 2 + fields * (size + 2) + 4
        self.max_chunk_line = size
        self.reads: dict[Any, _Read] = {}
        self.buffered = 0  # bytes held in self.reads
        self.next_budget_warning = 0.0
        self.next_sweep = 0.0
        self.local = threading.local()

    # -- the pool's entry ------------------------------------------------------------

    def enqueue_req(self, conn: Any) -> None:
        """gthread's way into the pool: read the request in the loop first."""
        if not self.buffering:
            conn.botkit_arrived = time.monotonic()  # readable now: about its first byte
            super().enqueue_req(conn)
            return
        conn.sock.setblocking(False)
        now = time.monotonic()
        read = _Read(deadline=now + self.cfg.keepalive)
        if self.tls and not isinstance(conn.sock, ssl.SSLSocket):
            # A new connection: its handshake is read here too, within the header deadline
            # from the accept (gthread's own would block a pool thread with no deadline).
            try:
                conn.sock = gunicorn_sock.ssl_context(self.cfg).wrap_socket(
                    conn.sock,
                    server_side=True,
                    do_handshake_on_connect=False,
                    suppress_ragged_eofs=self.cfg.suppress_ragged_eofs,
                )
            except (OSError, ValueError) as exc:  # the certificate cannot be read now
                self.log.error("botkit: TLS not set up for %s: %s", _peer(conn.client), exc)
                self._close(conn)
                return
            read.handshaking = True
            read.deadline = now + self.limits.header_timeout
        self.reads[conn] = read
        # Bytes already read past the last request (a pipelined one) start this one.
        leftover = conn.parser.unreader.take_buffered() if conn.parser is not None else b""
        if leftover:
            self._guarded(self._received, conn, read, leftover, now)
        if conn in self.reads:
            # A kept-alive connection comes here because it is readable: read it now,
            # and wait in the poller only if the request is not complete yet.
            self._on_readable(conn, conn.sock)
        if conn in self.reads:
            self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_readable, conn))

    def _on_readable(self, conn: Any, _sock: Any) -> None:
        read = self.reads.get(conn)
        if read is None:
            return
        sock = conn.sock
        if read.handshaking and not self._handshake(conn, read):
            return
        chunks = []
        try:
            # TLS: read until it wants the socket again, as the ssl docs advise for
            # non-blocking sockets: its own framing may hold data the poller cannot see.
            while data := sock.recv(65536):
                chunks.append(data)
                if not self.tls:
                    break
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            if not chunks:
                return
        except OSError:  # reset by the peer, or a TLS error
            self._close(conn)
            return
        if not chunks:  # the client closed, or gave up mid-request
            self._close(conn)
            return
        self._guarded(self._received, conn, read, b"".join(chunks), time.monotonic())

    def _handshake(self, conn: Any, read: _Read) -> bool:
        """Go on with a TLS handshake in the loop; True once it is done."""
        try:
            conn.sock.do_handshake()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            # Waiting for the client. (Writing waits only if the server's hello did not
            # fit a fresh socket's buffer, tens of KB; the deadline would then close it.)
            return False
        except OSError as exc:  # not TLS (plain HTTP on this port), refused, or reset
            self.log.debug("botkit: TLS handshake with %s failed: %s", _peer(conn.client), exc)
            self._close(conn)
            return False
        read.handshaking = False
        return True

    def _guarded(self, step: Callable[..., None], conn: Any, *args: Any) -> None:
        # The loop serves every connection of the worker: a bug met on one request
        # closes that connection, never the worker.
        try:
            step(conn, *args)
        except Exception:
            self.log.exception("botkit: error while reading a request from %s", conn.client)
            if conn in self.reads:
                self._close(conn)

    def _received(self, conn: Any, read: _Read, data: bytes, now: float) -> None:
        if read.arrived is None:
            read.arrived = now
            read.deadline = now + self.limits.header_timeout
        buf = read.buf
        scanned = len(buf)
        buf += data
        self.buffered += len(data)
        if self.buffered > self.limits.buffer_bytes:
            # Memory stays bounded when many clients send large requests slowly: past the
            # budget a request is read by a pool thread, as under gthread.
            self._over_budget()
            self._hand_over(conn, read)
            return
        if read.body_at is None:
            # only the new bytes, and the three before them, can complete the head
            end = buf.find(b"\r\n\r\n", max(0, scanned - 3))
            if end < 0:
                refused = (
                    len(buf) > self.max_head
                    or (0 < self.max_request_line < len(buf) and buf.find(b"\r\n", 2) < 0)
                    or _bare_lf(buf, scanned)  # gunicorn answers 400
                )
                if refused:
                    self._hand_over(conn, read)
                return
            read.body_at = end + 4
            framing = _framing(bytes(buf[:end]))
            size = framing.content_length
            if framing.unknown or (size is not None and size > self.limits.max_body_bytes):
                # malformed, or a body botkit refuses unread (413): gunicorn and the app
                # read what they need, as under gthread
                self._hand_over(conn, read)
                return
            if framing.chunked:
                read.chunk_at = read.body_at
            else:
                read.length = read.body_at + (size or 0)
            if len(buf) < (read.length or 0) or framing.chunked:
                read.deadline = read.arrived + self.limits.body_timeout
                if framing.expect_continue and not self._send(conn, _CONTINUE):
                    self._close(conn)
                    return
        if read.chunk_at is not None:
            end = self._chunked_end(read)
            if end == _WAIT:
                return
            if end != _HAND_OVER:
                read.length = end
                read.chunk_at = None
            else:
                self._hand_over(conn, read)
                return
        if read.length is not None and len(buf) >= read.length:
            self._hand_over(conn, read)

    def _chunked_end(self, read: _Read) -> int:
        """Where a chunked body ends, _WAIT for more bytes, or _HAND_OVER to gunicorn
        (a malformed body, or more data than botkit accepts: gunicorn or the app says so
        from the bytes already buffered)."""
        buf, pos = read.buf, read.chunk_at
        assert pos is not None
        while True:
            line_end = buf.find(b"\r\n", pos)
            if line_end < 0:
                return _HAND_OVER if len(buf) - pos > self.max_chunk_line else _WAIT
            size_field = bytes(buf[pos:line_end]).split(b";", 1)[0].rstrip(b" \t")
            if not size_field or size_field.strip(_HEX):
                return _HAND_OVER  # gunicorn answers 400
            size = int(size_field, 16)
            if size == 0:  # the last chunk, then the trailer section up to an empty line
                if buf[line_end + 2 : line_end + 4] == b"\r\n":
                    return line_end + 4
                trailers_end = buf.find(b"\r\n\r\n", line_end + 2)
                if trailers_end >= 0:
                    return trailers_end + 4
                return _HAND_OVER if len(buf) - line_end > self.max_head else _WAIT
            data_at = line_end + 2
            available = min(size, len(buf) - data_at)
            if read.decoded + available > self.limits.max_body_bytes:
                return _HAND_OVER  # the app reads one byte past its limit: 413
            if len(buf) < data_at + size + 2:
                return _WAIT
            if buf[data_at + size : data_at + size + 2] != b"\r\n":
                return _HAND_OVER
            read.decoded += size
            pos = read.chunk_at = data_at + size + 2

    def _hand_over(self, conn: Any, read: _Read) -> None:
        """Give the buffered bytes to gunicorn's parser and the connection to the pool."""
        self._forget(conn)
        if conn.parser is None:
            conn.parser = gunicorn_http.get_parser(self.cfg, conn.sock, conn.client)
        conn.parser.unreader.unread(bytes(read.buf))
        conn.data_ready = True  # the bytes are in the parser, not on the socket
        conn.botkit_arrived = read.arrived
        super().enqueue_req(conn)

    # -- deadlines -------------------------------------------------------------------

    def murder_pending(self) -> None:
        """gthread's per-turn timeout sweep, plus the deadlines of requests being read."""
        super().murder_pending()
        now = time.monotonic()
        if not self.reads or now < self.next_sweep:
            return
        self.next_sweep = now + _SWEEP_EVERY  # the loop turns on every event: not each time
        for conn, read in list(self.reads.items()):
            if read.arrived is None and not self.alive:
                read.deadline = min(read.deadline, now + _STOP_LINGER)
            if read.deadline > now:
                continue
            if read.arrived is not None:
                self.log.info(
                    "botkit: closed a connection from %s: request %s incomplete after %.0f s",
                    _peer(conn.client),
                    "headers" if read.body_at is None else "body",
                    now - read.arrived,
                )
                self._send(conn, _TIMEOUT_ANSWER)
            self._close(conn)

    def _send(self, conn: Any, data: bytes) -> bool:
        """Write a short answer without blocking the loop; False if it did not fit."""
        try:
            return bool(conn.sock.send(data) == len(data))
        except OSError:
            return False

    def _over_budget(self) -> None:
        now = time.monotonic()
        if now >= self.next_budget_warning:
            self.next_budget_warning = now + 60  # once a minute at most, under an attack
            self.log.warning(
                "botkit: unfinished requests hold over %d bytes (BOTKIT_READ_BUFFER_BYTES): "
                "reading further ones in pool threads, without deadlines",
                self.limits.buffer_bytes,
            )

    def _forget(self, conn: Any) -> None:
        read = self.reads.pop(conn, None)
        if read is not None:
            self.buffered -= len(read.buf)
        try:
            self.poller.unregister(conn.sock)
        except (KeyError, ValueError, OSError):
            pass  # handed over before it was registered

    def _close(self, conn: Any) -> None:
        self._forget(conn)
        self.nr_conns -= 1
        conn.close()

    # -- the arrival, into the environ -------------------------------------------------

    def load_wsgi(self) -> None:
        super().load_wsgi()
        app: Callable[..., Iterable[bytes]] = getattr(self, "wsgi")  # noqa: B009 (untyped base)
        local = self.local

        def with_arrival(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
            arrived = getattr(local, "arrived", None)
            if arrived is not None:
                environ[_ARRIVED] = arrived
            return app(environ, start_response)

        self.wsgi = with_arrival

    def handle_request(self, req: Any, conn: Any) -> Any:
        # Runs in the pool thread that serves this request: the app reads it from there.
        self.local.arrived = getattr(conn, "botkit_arrived", None)
        try:
            return super().handle_request(req, conn)
        finally:
            self.local.arrived = None
