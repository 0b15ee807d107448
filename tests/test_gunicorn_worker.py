"""botkit's gunicorn worker (botkit/adapters/gunicorn_worker.py): requests are read in the
event loop, within deadlines, before a pool thread serves them; everything else as gthread.

Raw sockets against a real gunicorn with the project's settings, so each test controls
exactly which bytes arrive when.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from server import DEV_KEY, DEV_SECRET, GunicornServer, signed_post

from botkit.testing import encode, event_payload, signed_headers

pytestmark = pytest.mark.slow

LIMITS = {"BOTKIT_HEADER_TIMEOUT": "2", "BOTKIT_BODY_TIMEOUT": "3", "BOTKIT_MAX_BODY_BYTES": "1000"}


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Says what the request looked like to the app."""
    body = environ["wsgi.input"].read()
    answer = {
        "path": environ["PATH_INFO"],
        "length": len(body),
        "arrived": environ.get("botkit.arrived"),
        "served": time.monotonic(),
        "port": environ.get("REMOTE_PORT"),
    }
    if environ["PATH_INFO"] == "/slow":
        time.sleep(1.0)
    data = json.dumps(answer).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
    )
    return [data]


@pytest.fixture(scope="module")
def server() -> Iterator[GunicornServer]:
    with GunicornServer(
        "test_gunicorn_worker:app", env=LIMITS, workers=1, threads=2, healthy=False,
        args=["--worker-connections", "40"],
    ) as started:  # fmt: skip
        yield started


@pytest.fixture(scope="module")
def bot_server() -> Iterator[GunicornServer]:
    with GunicornServer("wsgi:app", env={"BOTKIT_DEV": "1", **LIMITS}, workers=1) as started:
        yield started


class Raw:
    """One TCP connection: send bytes, read whole HTTP answers off it, one after another."""

    def __init__(self, server: GunicornServer, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection((server.host, server.port), timeout=timeout)
        self.file = self.sock.makefile("rb")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def answer(self) -> tuple[int, dict[str, str], bytes]:
        """The next answer (status, headers with lowercase names, body); 1xx ones too."""
        line = self.file.readline()
        if not line:
            raise ConnectionError("closed without an answer")
        status = int(line.split()[1])
        headers: dict[str, str] = {}
        while (line := self.file.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        body = self.file.read(int(headers.get("content-length", "0")))
        return status, headers, body

    def closed(self) -> bool:
        """Whether the server closed the connection (reads EOF or a reset)."""
        try:
            return self.file.read(1) == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.file.close()
        self.sock.close()


@pytest.fixture
def raw(server: GunicornServer) -> Iterator[Callable[..., Raw]]:
    opened: list[Raw] = []

    def connect(target: GunicornServer = server, timeout: float = 10.0) -> Raw:
        conn = Raw(target, timeout)
        opened.append(conn)
        return conn

    yield connect
    for conn in opened:
        conn.close()


def get(path: str = "/", extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: botkit\r\n{extra}\r\n".encode()


def post(path: str, body: bytes, extra: str = "") -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: botkit\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    return head.encode() + body


def test_a_request_in_one_packet(raw: Callable[..., Raw]) -> None:
    conn = raw()
    before = time.monotonic()
    conn.send(post("/one", b"x" * 500))
    status, _, body = conn.answer()
    after = time.monotonic()
    answer = json.loads(body)
    assert status == 200
    assert answer["length"] == 500
    assert before <= answer["arrived"] <= answer["served"] <= after  # one clock, all processes


def test_arrival_is_the_first_byte(raw: Callable[..., Raw]) -> None:
    # The moment the request reached botkit, not when it was complete or served.
    conn = raw()
    request = post("/arrival", b"y" * 100)
    first = time.monotonic()
    conn.send(request[:1])
    time.sleep(1.0)
    conn.send(request[1:])
    status, _, body = conn.answer()
    answer = json.loads(body)
    assert status == 200 and answer["length"] == 100
    assert first <= answer["arrived"] < first + 0.7  # generous: the machine may be busy
    assert answer["served"] >= first + 1.0


def test_headers_sent_slowly_within_the_deadline(raw: Callable[..., Raw]) -> None:
    conn = raw()
    for byte in post("/trickle", b"0123456789"):
        conn.send(bytes([byte]))
        time.sleep(0.01)
    status, _, body = conn.answer()
    assert status == 200 and json.loads(body)["length"] == 10


def test_headers_past_the_deadline_get_408_and_a_close(
    raw: Callable[..., Raw], server: GunicornServer
) -> None:
    conn = raw()
    conn.send(b"GET / HTTP/1.1\r\nHost: bot")  # and nothing more
    sent = time.monotonic()
    status, headers, _ = conn.answer()
    waited = time.monotonic() - sent
    assert status == 408 and headers["connection"] == "close"
    assert 1.9 < waited < 4.5  # BOTKIT_HEADER_TIMEOUT=2, checked once a second
    assert conn.closed()
    assert "request headers incomplete after 2 s" in server.log()


def test_a_body_past_its_deadline_gets_408(raw: Callable[..., Raw]) -> None:
    conn = raw()
    conn.send(post("/body", b"z" * 100)[:-90])  # the head and 10 bytes of 100
    sent = time.monotonic()
    status, _, _ = conn.answer()
    assert status == 408
    assert 2.5 < time.monotonic() - sent < 5.5  # BOTKIT_BODY_TIMEOUT=3 from the first byte
    assert conn.closed()


def test_a_slow_client_keeps_no_thread(raw: Callable[..., Raw]) -> None:
    # Two threads, ten clients stuck mid-headers: a normal request is still served at once.
    stuck = [raw() for _ in range(10)]
    for conn in stuck:
        conn.send(b"POST /stuck HTTP/1.1\r\nContent-")
    time.sleep(0.2)
    conn = raw()
    started = time.monotonic()
    conn.send(get("/fine"))
    status, _, _ = conn.answer()
    assert status == 200
    assert time.monotonic() - started < 1.5  # before BOTKIT_HEADER_TIMEOUT (2 s) frees any


def test_clients_that_leave_mid_headers_free_their_connection(
    raw: Callable[..., Raw], server: GunicornServer
) -> None:
    # The worker takes 40 connections at most (--worker-connections 40): each of these
    # must be given back when its client goes, or the worker would stop accepting.
    for _ in range(60):
        conn = Raw(server)
        conn.send(b"GET /gone HTTP/1.1\r\nHo")
        conn.close()
    time.sleep(0.3)
    conn = raw(timeout=3.0)
    conn.send(get("/after"))
    assert conn.answer()[0] == 200


def test_a_reset_mid_headers(raw: Callable[..., Raw], server: GunicornServer) -> None:
    for _ in range(5):
        sock = socket.create_connection((server.host, server.port))
        sock.sendall(b"GET / HTTP/1.1\r\n")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()  # an RST, not a FIN
    conn = raw()
    conn.send(get("/after-reset"))
    assert conn.answer()[0] == 200
    assert "Traceback" not in server.log()


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"GET /" + b"a" * 5000, 414),  # request line over limit_request_line (4094)
        (b"GET / HTTP/1.1\nHost: botkit\n", 400),  # bare LF
        (b"GET / HTTP/1.1\r\n" + b"X-Many: 1\r\n" * 90_000, 431),  # past any head's size
    ],
    ids=["request-line", "bare-lf", "head-size"],
)
def test_a_head_gunicorn_refuses_is_answered_before_it_ends(
    raw: Callable[..., Raw], head: bytes, status: int
) -> None:
    # The head never ends, yet gunicorn's parser can already tell from what it holds.
    conn = raw(timeout=1.5)
    conn.send(head)
    assert conn.answer()[0] == status


@pytest.mark.parametrize(
    "fields",
    [b"X-Big: " + b"b" * 9000 + b"\r\n", b"X-Many: 1\r\n" * 101],
    ids=["field-size", "field-count"],
)
def test_a_head_over_gunicorns_field_limits_gets_431(
    raw: Callable[..., Raw], fields: bytes
) -> None:
    conn = raw(timeout=1.5)
    conn.send(b"GET / HTTP/1.1\r\n" + fields + b"\r\n")
    assert conn.answer()[0] == 431


def test_a_body_over_the_limit_is_refused_unread(
    raw: Callable[..., Raw], bot_server: GunicornServer
) -> None:
    conn = raw(bot_server, timeout=3.0)
    body = b"{" + b" " * 5000 + b"}"
    head = signed_headers(body, api_key=DEV_KEY, secret=DEV_SECRET)
    lines = "".join(f"{name}: {value}\r\n" for name, value in head.items())
    conn.send(post("/webhooks/stream/push", b"", lines).replace(b"Length: 0", b"Length: 5002"))
    status, headers, _ = conn.answer()  # the body was never sent
    assert status == 413 and headers["connection"] == "close"
    assert conn.closed()


def test_keep_alive_reuses_the_connection_and_reads_each_request_anew(
    raw: Callable[..., Raw],
) -> None:
    conn = raw()
    ports = set()
    for index in range(3):
        conn.send(post(f"/keep/{index}", b"k" * index))
        status, headers, body = conn.answer()
        assert status == 200 and headers["connection"] == "keep-alive"
        ports.add(json.loads(body)["port"])
    assert len(ports) == 1
    # the next request on a kept-alive connection has the same deadline
    conn.send(b"GET /late HTTP/1.1\r\n")
    assert conn.answer()[0] == 408


def test_pipelined_requests_are_answered_in_order(raw: Callable[..., Raw]) -> None:
    conn = raw()
    conn.send(post("/p/1", b"a" * 10) + get("/p/2") + post("/p/3", b"c" * 30) + get("/p/4")[:10])
    answers = [json.loads(conn.answer()[2]) for _ in range(3)]
    assert [(a["path"], a["length"]) for a in answers] == [("/p/1", 10), ("/p/2", 0), ("/p/3", 30)]
    conn.send(get("/p/4")[10:])  # the fourth was cut short: it completes like any other
    assert json.loads(conn.answer()[2])["path"] == "/p/4"


def test_expect_100_continue(raw: Callable[..., Raw]) -> None:
    # The client sends its body only after "100 Continue": the loop must say it.
    conn = raw(timeout=3.0)
    conn.send(post("/expect", b"", "Expect: 100-continue\r\n").replace(b"Length: 0", b"Length: 20"))
    assert conn.answer()[0] == 100
    conn.send(b"e" * 20)
    answers = [conn.answer()]
    while answers[-1][0] == 100:  # gunicorn says it again when the app reads the body
        answers.append(conn.answer())
    assert answers[-1][0] == 200 and json.loads(answers[-1][2])["length"] == 20


CHUNKED = b"POST /chunked HTTP/1.1\r\nHost: botkit\r\nTransfer-Encoding: chunked\r\n\r\n"


def test_a_chunked_body_is_read_in_the_loop(raw: Callable[..., Raw]) -> None:
    conn = raw()
    first = time.monotonic()
    conn.send(CHUNKED + b"5\r\nhello\r\n")
    time.sleep(0.5)
    conn.send(b"6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n" + get("/next"))
    status, _, body = conn.answer()
    answer = json.loads(body)
    assert status == 200 and answer["length"] == 11
    assert answer["served"] > first + 0.5 > answer["arrived"]  # served once it was whole
    assert json.loads(conn.answer()[2])["path"] == "/next"  # what followed it, pipelined


def test_a_slow_chunked_body_gets_408(raw: Callable[..., Raw], server: GunicornServer) -> None:
    conn = raw()
    conn.send(CHUNKED + b"5\r\nhel")
    sent = time.monotonic()
    assert conn.answer()[0] == 408
    assert 2.5 < time.monotonic() - sent < 5.5
    assert "request body incomplete after 3 s" in server.log()


def test_a_malformed_chunk_is_refused_at_once(raw: Callable[..., Raw]) -> None:
    conn = raw(timeout=1.5)
    conn.send(CHUNKED + b"0x5\r\nhello\r\n")
    assert conn.answer()[0] == 400


def test_a_chunked_body_over_the_limit_gets_413(
    raw: Callable[..., Raw], bot_server: GunicornServer
) -> None:
    # The app reads one byte past BOTKIT_MAX_BODY_BYTES (1000): the worker hands the
    # request over once it holds that much, though the body goes on.
    body = b"x" * 1500
    head = signed_headers(body, api_key=DEV_KEY, secret=DEV_SECRET)
    lines = "".join(f"{name}: {value}\r\n" for name, value in head.items())
    conn = raw(bot_server, timeout=3.0)
    conn.send(
        f"POST /webhooks/stream/push HTTP/1.1\r\nHost: b\r\n{lines}"
        "Transfer-Encoding: chunked\r\n\r\n".encode()
        + b"5dc\r\n" + body + b"\r\n"
    )  # fmt: skip
    assert conn.answer()[0] == 413


def test_past_the_buffer_budget_requests_are_read_by_threads(raw: Callable[..., Raw]) -> None:
    # BOTKIT_READ_BUFFER_BYTES=5000: a worker holds no more of unfinished requests; the
    # next one is served the way gthread serves it, by a thread reading its body.
    env = {"BOTKIT_READ_BUFFER_BYTES": "5000", "BOTKIT_BODY_TIMEOUT": "30"}
    with GunicornServer("test_gunicorn_worker:app", env=env, healthy=False) as small:
        held = raw(small)
        held.send(post("/held", b"h" * 4000)[:-1000])  # 3000 bytes of body, then a stall
        time.sleep(0.3)
        over = raw(small)
        request = post("/over", b"o" * 4000)
        over.send(request[:-1000])  # the worker now holds over 5000 bytes
        time.sleep(0.3)
        over.send(request[-1000:])
        status, _, body = over.answer()
        assert status == 200 and json.loads(body)["length"] == 4000
        held.send(b"h" * 1000)  # the first one was not dropped: it completes as usual
        assert json.loads(held.answer()[2])["length"] == 4000
        log = small.log()
    assert log.count("unfinished requests hold over 5000 bytes") == 1


def test_signed_webhooks_through_the_worker(bot_server: GunicornServer) -> None:
    conn = bot_server.connection()
    for attempt in range(3):
        body = encode(event_payload("message.new", id=f"event-{attempt}"))
        assert signed_post(conn, "/webhooks/stream/push", body).status == 200
    conn.close()


def test_a_stopping_worker_does_not_wait_for_idle_connections() -> None:
    # An accepted connection that never sends a byte must not hold up a graceful stop.
    server = GunicornServer("test_gunicorn_worker:app", healthy=False, graceful_timeout=15)
    with server:
        idle = socket.create_connection((server.host, server.port))
        time.sleep(0.2)
        started = time.monotonic()
        server.stop()
        took = time.monotonic() - started
        idle.close()
    assert took < 6, took  # the stop linger (2 s) and a turn of the loop, not 15 s


def test_the_worker_refuses_another_gunicorn_major() -> None:
    from botkit.adapters.gunicorn_worker import GUNICORN_MAJOR, check_gunicorn

    check_gunicorn(f"{GUNICORN_MAJOR}.0.1")
    with pytest.raises(RuntimeError, match="relies on gunicorn 27's gthread internals"):
        check_gunicorn(f"{GUNICORN_MAJOR + 1}.0.0")
