"""Deadlines count from a request's arrival, and no request waits for a slot past it.

A crowd of slow commands must not make anybody wait past Stream's second: every answer
(a placeholder counts) comes within the budget of its arrival, and fast commands keep
their own reply. End to end under gunicorn with the project's own config (2 workers x 8
threads); the parts in-process, where the clock can be set, are in ``test_deadlines.py``.
"""

from __future__ import annotations

import http.client
import json
import statistics
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from bots.crowd import PLACEHOLDER
from server import GunicornServer
from stream_stub import StreamStub

from botkit.testing import command_payload, encode, signed_headers

KEY, SECRET = "crowd-key", "crowd-secret"
SLOW, FAST = 100, 20
#: Every sixth request is a fast one, so that they arrive among the slow ones.
FAST_ONES = range(5, SLOW + FAST, 6)
SLOW_ONES = [i for i in range(SLOW + FAST) if i not in FAST_ONES]
PATH = "/webhooks/stream/custom-commands"


@pytest.fixture(scope="module")
def stub() -> Iterator[StreamStub]:
    with StreamStub(KEY, SECRET) as s:
        yield s


def _crowd(server: GunicornServer) -> list[tuple[str, float, int, dict[str, Any]]]:
    """Send SLOW slow and FAST fast commands at once, each on its own connection.

    Returns (command, seconds from send to the whole answer, status, body) for each.
    """
    names = ["fast" if i in FAST_ONES else "slow" for i in range(SLOW + FAST)]
    connections = []
    for _ in names:
        conn = http.client.HTTPConnection(server.host, server.port, timeout=30)
        conn.connect()
        connections.append(conn)
    start = threading.Barrier(len(names))
    results: list[tuple[str, float, int, dict[str, Any]] | None] = [None] * len(names)

    def send(i: int, name: str) -> None:
        body = encode(command_payload(f"/{name} {i}"))
        headers = signed_headers(body, api_key=KEY, secret=SECRET, webhook_id=str(uuid.uuid4()))
        headers["Content-Type"] = "application/json"
        conn = connections[i]
        start.wait()
        sent = time.monotonic()
        conn.request("POST", f"{PATH}?type={name}", body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        results[i] = (name, time.monotonic() - sent, response.status, json.loads(data))

    threads = [threading.Thread(target=send, args=(i, n)) for i, n in enumerate(names)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for conn in connections:
        conn.close()
    assert all(r is not None for r in results), "some requests got no answer"
    return [r for r in results if r is not None]


def _warm_up(server: GunicornServer) -> None:
    """A few quick commands, each on a new connection, so that both workers have loaded
    the app (healthz answered from one): the crowd meets a running server, not one
    still starting. The slow command stays new to both."""
    for i in range(24):  # the kernel spreads connections over the workers' sockets
        conn = server.connection()
        try:
            body = encode(command_payload(f"/fast warm-up {i}"))
            headers = signed_headers(body, api_key=KEY, secret=SECRET, webhook_id=str(uuid.uuid4()))
            conn.request("POST", f"{PATH}?type=fast", body=body, headers=headers)
            assert conn.getresponse().read()
        finally:
            conn.close()


@pytest.mark.slow
def test_a_crowd_of_slow_commands_is_answered_within_a_second_and_fast_ones_as_usual(
    stub: StreamStub,
) -> None:
    """Before: 84 of 100 slow commands answered late (up to 5.9 s), quick ones waited
    behind them. Now every answer within 1 s at p99 (measured by the client, so with the
    time it waited for a thread), the quick ones with their own reply."""
    env = {
        "STREAM_API_KEY": KEY,
        "STREAM_API_SECRET": SECRET,
        "STREAM_BASE_URL": stub.url,
        "STREAM_BOT_USER_ID": "bot",
    }
    # the project's gunicorn.conf.py, with its defaults: 2 workers of 8 threads, and the
    # default store (a SQLite file, here in the server's temporary directory)
    with GunicornServer("bots.crowd:create_app()", env=env, workers=2) as server:
        _warm_up(server)
        results = _crowd(server)
        times = sorted(t for _, t, _, _ in results)
        p99 = statistics.quantiles(times, n=100)[98]
        late = [(round(t, 2), name) for name, t, _, _ in results if t > 1.0]
        summary = (
            f"p50 {statistics.median(times):.2f} s, p99 {p99:.2f} s, max {times[-1]:.2f} s, "
            f"{len(late)} of {len(times)} over 1 s: {late[:5]}"
        )
        assert all(status == 200 for _, _, status, _ in results), summary
        texts = {name: [body["message"]["text"] for n, _, _, body in results if n == name]
                 for name in ("slow", "fast")}  # fmt: skip
        assert sorted(texts["fast"]) == sorted(f"fast {i}" for i in FAST_ONES), summary
        assert texts["slow"] == [PLACEHOLDER] * SLOW, summary
        assert p99 <= 1.0, summary
        # Each slow command ran once, and its result was posted to the channel.
        posted = stub.wait_for(
            lambda: (m := stub.sent_messages("messaging:general")) and len(m) >= SLOW and m,
            timeout=60,
        )
        assert sorted(m["text"] for m in posted) == sorted(f"slow {i}" for i in SLOW_ONES)
