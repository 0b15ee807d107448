"""Slowloris: many clients sending their headers a byte at a time must not take the server
down (issue 20). The project's own gunicorn settings, two workers, real sockets.

To see what the worker class buys, run this with gthread's own worker (the test fails)::

    SLOWLORIS_WORKER_CLASS=gthread pytest tests/test_slowloris.py
"""

from __future__ import annotations

import http.client
import os
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import pytest
from server import GunicornServer, signed_post

from botkit.testing import encode, event_payload

pytestmark = pytest.mark.slow

SLOW_CLIENTS = 150
BYTE_EVERY = 2.0  # seconds
ATTACK = 12.0  # seconds
BOUND = 1.0  # a normal request is answered within this, or it counts as failed
PACE = 0.1  # seconds between two normal requests


@pytest.fixture
def server() -> Iterator[GunicornServer]:
    worker_class = os.environ.get("SLOWLORIS_WORKER_CLASS")
    args = ["--worker-class", worker_class] if worker_class else []
    # workers=2, threads from the settings (8): as `gunicorn wsgi:app` runs by default
    with GunicornServer("wsgi:app", env={"BOTKIT_DEV": "1"}, workers=2, args=args) as started:
        started.wait_for_workers()
        yield started


def slow_clients(server: GunicornServer) -> list[socket.socket]:
    """Open the connections and send their first byte; ``drip`` sends the rest."""
    socks = []
    for _ in range(SLOW_CLIENTS):
        sock = socket.create_connection((server.host, server.port), timeout=5)
        sock.sendall(b"G")
        socks.append(sock)
    return socks


def drip(socks: list[socket.socket], stop: threading.Event) -> None:
    """One more byte of an endless head on every connection, every BYTE_EVERY seconds."""
    head = b"ET / HTTP/1.1\r\nHost: botkit\r\nX-Slow: " + b"s" * 1000
    sent = 0
    while not stop.wait(BYTE_EVERY):
        for sock in socks:
            try:
                sock.send(head[sent : sent + 1])
            except OSError:  # the server gave up on it (its header deadline): fine
                pass
        sent += 1


def probe(server: GunicornServer, index: int) -> float | None:
    """A normal request on a fresh connection: seconds to its answer, None if none came."""
    started = time.monotonic()
    conn = http.client.HTTPConnection(server.host, server.port, timeout=BOUND)
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
    socks = slow_clients(server)
    dripper = threading.Thread(target=drip, args=(socks, stop), daemon=True)
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
        for sock in socks:
            sock.close()
    times = [f.result() for f in probes]
    answered = [t for t in times if t is not None and t <= BOUND]
    assert len(answered) >= 0.95 * len(times), (
        f"{len(answered)} of {len(times)} answered within {BOUND} s: "
        f"{[None if t is None else round(t, 3) for t in times]}"
    )
    assert "Using worker: botkit.adapters.gunicorn_worker.BotkitWorker" in server.log()
