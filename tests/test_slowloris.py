"""Slowloris: many clients sending their headers a byte at a time must not take the server
down (issue 20). The project's own gunicorn settings, two workers, real sockets; over
plain HTTP, and over TLS that gunicorn terminates itself (``BOTKIT_TLS_*``), where half the
slow clients also send their TLS handshake a byte at a time.

To see what the worker class buys, run this with gthread's own worker (the test fails)::

    SLOWLORIS_WORKER_CLASS=gthread pytest tests/test_slowloris.py
"""

from __future__ import annotations

import http.client
import os
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import pytest
from server import GunicornServer, signed_post
from test_tls import TLSServer, make_certificate

from botkit.testing import encode, event_payload

pytestmark = pytest.mark.slow

SLOW_CLIENTS = 150
BYTE_EVERY = 2.0  # seconds
ATTACK = 12.0  # seconds
BOUND = 1.0  # a normal request is answered within this, or it counts as failed
PACE = 0.1  # seconds between two normal requests


@pytest.fixture(params=["http", "https"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GunicornServer]:
    worker_class = os.environ.get("SLOWLORIS_WORKER_CLASS")
    args = ["--worker-class", worker_class] if worker_class else []
    # workers=2, threads from the settings (8): as `gunicorn wsgi:app` runs by default
    env = {"BOTKIT_DEV": "1"}
    if request.param == "http":
        started = GunicornServer("wsgi:app", env=env, workers=2, args=args)
    else:
        cert, key = make_certificate(tmp_path_factory.mktemp("tls"))
        env.update(BOTKIT_TLS_CERT=cert, BOTKIT_TLS_KEY=key)
        started = TLSServer("wsgi:app", env=env, workers=2, args=args, cafile=cert)
    with started:
        started.wait_for_workers()
        yield started


class SlowClient:
    """A connection that sends its request, over TLS its handshake too, one byte at a time.

    Over TLS, odd-numbered clients finish the handshake at once and drip the head through
    it (a TLS record a byte); even ones drip the handshake itself: its bytes come from a
    TLS object over memory buffers, and the server's replies are fed back to it.
    """

    HEAD = b"GET / HTTP/1.1\r\nHost: botkit\r\nX-Slow: " + b"s" * 1000

    def __init__(self, server: GunicornServer, index: int, down: threading.Event) -> None:
        self.raw = socket.create_connection((server.host, server.port), timeout=5)
        self.sent = 0
        self.tls: ssl.SSLSocket | None = None
        self.handshake: ssl.SSLObject | None = None
        context = getattr(server, "context", None)
        if context is None:
            self.pending = self.HEAD
        elif index % 2:
            self.pending = self.HEAD
            try:
                if not down.is_set():
                    self.raw.settimeout(2)
                    self.tls = context.wrap_socket(self.raw, server_hostname=server.host)
            except OSError:  # no thread of the server took the handshake: it is down
                down.set()
            if self.tls is None:
                self.pending = b""
        else:
            self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
            self.handshake = context.wrap_bio(
                self.incoming, self.outgoing, server_hostname=server.host
            )
            self.pending = b""
            self.step()
        self.drip()

    def step(self) -> None:
        """Move the memory-buffered handshake on: what it wants sent joins the drip."""
        assert self.handshake is not None
        try:
            self.handshake.do_handshake()
        except ssl.SSLWantReadError:
            pass
        self.pending += self.outgoing.read()

    def drip(self) -> None:
        try:
            if self.handshake is not None:
                self.raw.setblocking(False)
                try:
                    self.incoming.write(self.raw.recv(65536))
                    self.step()
                except BlockingIOError:
                    pass
            if self.sent < len(self.pending):
                byte = self.pending[self.sent : self.sent + 1]
                (self.tls or self.raw).send(byte)
                self.sent += 1
        except OSError:  # the server gave up on it (its header deadline): fine
            pass

    def close(self) -> None:
        (self.tls or self.raw).close()


def slow_clients(server: GunicornServer) -> list[SlowClient]:
    """Open the connections and send their first byte; ``drip`` sends the rest."""
    down = threading.Event()  # one handshake not served: the others are not tried
    return [SlowClient(server, index, down) for index in range(SLOW_CLIENTS)]


def drip(clients: list[SlowClient], stop: threading.Event) -> None:
    """One more byte of every client's endless head (or handshake) every BYTE_EVERY s."""
    while not stop.wait(BYTE_EVERY):
        for client in clients:
            client.drip()


def probe(server: GunicornServer, index: int) -> float | None:
    """A normal request on a fresh connection: seconds to its answer, None if none came."""
    started = time.monotonic()
    conn = server.connection(timeout=BOUND)
    try:
        if index % 2:
            status = server_get(conn)
        else:
            body = encode(event_payload("message.new", id=f"probe-{index}"))
            status = signed_post(conn, "/webhooks/stream/push", body).status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()
    return time.monotonic() - started if status == 200 else None


def server_get(conn: http.client.HTTPConnection) -> int:
    conn.request("GET", "/healthz")
    response = conn.getresponse()
    response.read()
    return response.status


def test_slow_headers_leave_normal_requests_answered(server: GunicornServer) -> None:
    stop = threading.Event()
    clients = slow_clients(server)
    dripper = threading.Thread(target=drip, args=(clients, stop), daemon=True)
    dripper.start()
    probes: list[Future[float | None]] = []
    try:
        time.sleep(0.5)  # the workers have taken every slow connection by now
        # A steady stream, one request every PACE seconds whatever the answers take
        # (a probe waiting for its answer does not hold back the next one).
        with ThreadPoolExecutor(max_workers=int(BOUND / PACE) + 5) as pool:
            start = time.monotonic()
            for index in range(int((ATTACK - 0.5) / PACE)):
                time.sleep(max(0.0, start + index * PACE - time.monotonic()))
                probes.append(pool.submit(probe, server, index))
    finally:
        stop.set()
        dripper.join(timeout=5)
        for client in clients:
            client.close()
    times = [f.result() for f in probes]
    answered = [t for t in times if t is not None and t <= BOUND]
    assert len(answered) >= 0.95 * len(times), (
        f"{len(answered)} of {len(times)} answered within {BOUND} s: "
        f"{[None if t is None else round(t, 3) for t in times]}"
    )
    assert "Using worker: botkit.adapters.gunicorn_worker.BotkitWorker" in server.log()
