"""Logs: one line per webhook with every field, as text or JSON lines, and nothing secret."""

from __future__ import annotations

import io
import json
import logging
import re
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from server import GunicornServer, signed_post

from botkit import Bot, ConfigError, Message
from botkit.adapters.logs import WEBHOOK_FIELDS, JSONFormatter, configure_logging, remove_handler
from botkit.testing import TestClient, command_payload, encode, message, signed_headers

SECRET = "s3cr3t-value-never-logged-7f3a"
TEXT = "confidential plan 31337"
TEXT_LINE = re.compile(
    r"botkit\.webhook: (?P<kind>\w+) (?P<name>\S+) id=(?P<webhook_id>\S+) "
    r"attempt=(?P<attempt>\d+) outcome=(?P<outcome>\S+) status=(?P<status>\d+) "
    r"(?P<latency>[\d.]+)ms$"
)
HEX64 = re.compile(r"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])")


def make_bot() -> Bot:
    bot = Bot(help_command=False)

    @bot.command("echo", description="Say it back")
    def echo(ctx: Any) -> Message:
        return Message.ephemeral(f"you said {ctx.args}")

    @bot.command("boom", description="Fail")
    def boom(ctx: Any) -> None:
        raise RuntimeError("boom")

    @bot.before_send
    def shout(ctx: Any) -> str:
        return ctx.text.upper()

    @bot.on("message.new")
    def seen(event: Any) -> None:
        pass

    return bot


@pytest.fixture(autouse=True)
def _no_handler_left() -> Iterator[None]:
    yield
    remove_handler()


def run_webhooks(client: TestClient) -> None:
    """One of each outcome the log line must carry."""
    payload = command_payload(f"/echo {TEXT}")
    path = "/custom-commands?type=echo"
    assert client.post(path, payload, webhook_id="wh-1").status == 200
    assert client.post(path, payload, webhook_id="wh-1", attempt=2).status == 200  # replayed
    wrong = client.post(path, payload, headers={"X-Signature": "a" * 64})
    assert wrong.status == 401
    assert client.post(path, b"not json").status == 400
    assert client.command("/boom").status == 200
    assert client.before_send(TEXT).text == TEXT.upper()
    assert client.event("message.new", message=message(TEXT), webhook_id="ev-1").status == 200


def capture(fmt: str) -> tuple[str, TestClient]:
    stream = io.StringIO()
    assert configure_logging(fmt, stream=stream) is not None
    client = make_bot().test_client(api_key="key-1", secret=SECRET)
    run_webhooks(client)
    client.close()
    return stream.getvalue(), client


def assert_nothing_secret(output: str) -> None:
    assert SECRET not in output
    assert TEXT not in output and TEXT.upper() not in output
    assert HEX64.search(output) is None, "a signature-like value was logged"


def test_json_lines_have_every_field_and_no_secret() -> None:
    output, _ = capture("json")
    records = [json.loads(line) for line in output.splitlines()]
    webhook = [r for r in records if r["logger"] == "botkit.webhook"]
    assert len(webhook) == 7
    for record in webhook:
        assert set(WEBHOOK_FIELDS) <= record.keys()
        assert record["level"] == "info"
        assert isinstance(record["attempt"], int) and isinstance(record["status"], int)
        assert isinstance(record["latency_ms"], float | int) and record["latency_ms"] >= 0
        assert record["time"].endswith("Z")
    by_outcome = {(r["kind"], r["outcome"]): r for r in webhook}
    assert by_outcome["command", "ok"]["name"] == "echo"
    assert by_outcome["command", "ok"]["webhook_id"] == "wh-1"
    assert by_outcome["command", "replayed"]["webhook_id"] == "wh-1"
    assert by_outcome["command", "replayed"]["attempt"] == 2
    assert by_outcome["command", "rejected-signature"]["status"] == 401
    assert by_outcome["command", "invalid-payload"]["status"] == 400
    assert by_outcome["command", "error"]["name"] == "boom"
    assert by_outcome["before_send", "rewritten"]["name"] == "before-send"
    assert by_outcome["push", "queued"]["name"] == "message.new"
    # the handler's traceback is there, as a JSON field, at ERROR
    errors = [r for r in records if r["level"] == "error"]
    assert any("RuntimeError: boom" in (r["message"] + r.get("exception", "")) for r in errors)
    assert_nothing_secret(output)


def test_text_lines_have_every_field_and_no_secret() -> None:
    output, _ = capture("text")
    lines = [line for line in output.splitlines() if "botkit.webhook:" in line]
    assert len(lines) == 7
    parsed = [TEXT_LINE.search(line) for line in lines]
    assert all(parsed), lines
    outcomes = {m["outcome"] for m in parsed if m}
    assert outcomes == {
        "ok",
        "replayed",
        "rejected-signature",
        "invalid-payload",
        "error",
        "rewritten",
        "queued",
    }
    assert all(" INFO " in line for line in lines)
    assert_nothing_secret(output)


def test_format_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setenv("BOTKIT_LOG_FORMAT", "JSON")
    handler = configure_logging(stream=stream)
    assert handler is not None and isinstance(handler.formatter, JSONFormatter)
    logging.getLogger("botkit.test").info("hello %s", "there", extra={"n": 3})
    assert json.loads(stream.getvalue()) | {"time": None} == {
        "time": None,
        "level": "info",
        "logger": "botkit.test",
        "message": "hello there",
        "n": 3,
    }
    monkeypatch.setenv("BOTKIT_LOG_FORMAT", "xml")
    with pytest.raises(ConfigError, match="BOTKIT_LOG_FORMAT='xml'"):
        configure_logging()


def test_configured_once_and_never_over_the_apps_own(monkeypatch: pytest.MonkeyPatch) -> None:
    botkit_logger = logging.getLogger("botkit")
    monkeypatch.setattr(logging.getLogger(), "handlers", [])  # no logging set up at all
    monkeypatch.setattr(botkit_logger, "level", logging.NOTSET)
    first = configure_logging("text")
    assert first is not None and first in botkit_logger.handlers
    assert botkit_logger.level == logging.INFO
    again = configure_logging("json")  # create_app calls it again: the first one stays
    assert again is first and not isinstance(again.formatter, JSONFormatter)
    assert sum(h is first for h in botkit_logger.handlers) == 1
    remove_handler()
    # the application already logs botkit's records (a handler on root): left alone
    monkeypatch.setattr(logging.getLogger(), "handlers", [logging.StreamHandler(io.StringIO())])
    assert configure_logging("json") is None
    assert not [h for h in botkit_logger.handlers if h.formatter is not None]


def test_gunicorn_json_logs_with_real_credentials() -> None:
    """create_app sets up the JSON lines in each gunicorn worker; nothing secret leaks."""
    env = {
        "STREAM_API_KEY": "live-key",
        "STREAM_API_SECRET": SECRET,
        "BOTKIT_LOG_FORMAT": "json",
    }
    with GunicornServer("wsgi:app", env=env) as server:
        conn = server.connection()
        body = encode(command_payload(f"/gif {TEXT}"))
        ok = signed_post(conn, "/webhooks/stream/custom-commands?type=gif", body,
                         api_key="live-key", secret=SECRET, webhook_id="gw-1")  # fmt: skip
        assert ok.status == 200
        bad = signed_post(conn, "/webhooks/stream/custom-commands?type=gif", body,
                          api_key="live-key", secret="wrong", webhook_id="gw-2")  # fmt: skip
        assert bad.status == 401
        conn.close()
        server.stop()  # flush and end the workers before reading the log
        log = server.log()
    records = []
    for line in log.splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))
    webhook = {r["webhook_id"]: r for r in records if r.get("logger") == "botkit.webhook"}
    assert webhook["gw-1"]["outcome"] == "ok" and webhook["gw-1"]["name"] == "gif"
    assert webhook["gw-2"]["outcome"] == "rejected-signature"
    assert webhook["gw-2"]["status"] == 401
    for record in webhook.values():
        assert set(WEBHOOK_FIELDS) <= record.keys()
    assert_nothing_secret(log)


def test_lines_from_many_threads_are_all_written_whole() -> None:
    """The handler lets no thread wait for another's write: a thread that finds the
    write turn taken leaves its line to the writer. Every line still comes out once,
    whole, by the time every thread's log call has returned."""
    stream = io.StringIO()
    assert configure_logging("text", stream=stream) is not None
    log = logging.getLogger("botkit.webhook")
    start = threading.Barrier(8)

    def write(n: int) -> None:
        start.wait()
        for i in range(500):
            log.info("thread %d line %d %s", n, i, "x" * 200)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 8 * 500
    assert len(set(lines)) == 8 * 500
    pattern = re.compile(r"botkit\.webhook: thread (\d) line (\d+) x{200}$")
    seen = {(int(m[1]), int(m[2])) for m in map(pattern.search, lines) if m}
    assert seen == {(n, i) for n in range(8) for i in range(500)}


def test_the_webhook_record_is_a_whole_record_for_the_apps_own_handlers() -> None:
    """botkit makes the webhook line's record itself (it skips Logger.info's look up the
    stack): handlers, filters and levels of the app see a record like any other."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        logging.Formatter("%(levelname)s %(name)s %(module)s.%(funcName)s:%(lineno)d %(message)s")
    )
    seen: list[logging.LogRecord] = []

    def keep(record: logging.LogRecord) -> bool:
        seen.append(record)
        return record.getMessage().startswith("command")

    logger = logging.getLogger("botkit.webhook")
    logger.addHandler(handler)
    logger.addFilter(keep)
    try:
        client = make_bot().test_client(api_key="key-1", secret=SECRET)
        client.command("/echo hi", webhook_id="wh-r")
        client.before_send("hi")  # filtered out
        logger.setLevel(logging.WARNING)
        client.command("/echo again", webhook_id="wh-w")  # below the level: no record
        client.close()
    finally:
        logger.removeHandler(handler)
        logger.removeFilter(keep)
        logger.setLevel(logging.NOTSET)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert re.fullmatch(
        r"INFO botkit\.webhook dispatch\._finish:\d+ command echo id=wh-r attempt=1 "
        r"outcome=ok status=200 [\d.]+ms",
        lines[0],
    ), lines
    assert [r.webhook["kind"] for r in seen] == ["command", "before_send"]  # type: ignore[attr-defined]
    assert seen[0].pathname.endswith("dispatch.py") and seen[0].thread is not None


def test_text_lines_start_with_the_time_level_and_logger() -> None:
    output, _ = capture("text")
    line = next(line for line in output.splitlines() if "botkit.webhook:" in line)
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO botkit\.webhook: command ", line)


# -- what a request sends is escaped ---------------------------------------------------------

#: A webhook id with what gunicorn lets through in a header (it refuses the ASCII control
#: characters but tab): a tab, NEL (0x85, a line break to some readers) and CSI (0x9b, a
#: terminal's escape sequence), as latin-1 obs-text.
HOSTILE_ID = b"wh\tTAB\x85NEL\x9b2JCSI"


def _raw_post(server: GunicornServer, target: str, body: bytes, webhook_id: bytes) -> bytes:
    """POST with bytes in the headers that http.client refuses to send."""
    headers = signed_headers(body, api_key="live-key", secret=SECRET)
    lines = [f"POST {target} HTTP/1.1".encode(), b"Host: 127.0.0.1", b"Connection: close"]
    headers.pop("X-Webhook-Id", None)
    headers["Content-Type"] = "application/json"
    headers["Content-Length"] = str(len(body))
    lines += [f"{k}: {v}".encode() for k, v in headers.items()]
    lines.append(b"X-Webhook-Id: " + webhook_id)
    with socket.create_connection((server.host, server.port), timeout=15) as sock:
        sock.sendall(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_request_fields_cannot_forge_or_break_log_lines(fmt: str) -> None:
    """``type=`` is percent-decoded and a header may carry control characters: each
    request still writes its lines whole, one per record, with those characters escaped."""
    env = {"STREAM_API_KEY": "live-key", "STREAM_API_SECRET": SECRET, "BOTKIT_LOG_FORMAT": fmt}
    target = "/webhooks/stream/custom-commands?type=x%0aFAKE%20LINE%1b%5b2J%e2%80%a8"
    with GunicornServer("wsgi:app", env=env) as server:
        # no message.command: the type names the (unknown) command
        plain = encode({"message": message("hello"), "user": {"id": "alice"}})
        unknown = _raw_post(server, target, plain, b"wh-plain")
        # a signed /gif under another type: refused, and the refusal logged
        refused = _raw_post(server, target, encode(command_payload("/gif cats")), HOSTILE_ID)
        server.stop()  # flush and end the workers before reading the log
        log = server.log()
    assert unknown.startswith(b"HTTP/1.1 200 ") and b"doesn't exist" in unknown
    decoded = "x\nFAKE LINE\x1b[2J\u2028"
    hostile = HOSTILE_ID.decode("latin-1")
    for line in log.split("\n"):
        assert line.isprintable(), repr(line)
        assert not line.startswith("FAKE"), line
    assert refused.startswith(b"HTTP/1.1 400 ")  # routed by the signed /gif: refused
    if fmt == "json":
        records = [json.loads(line) for line in log.split("\n") if line.startswith("{")]
        webhook = {r["webhook_id"]: r for r in records if r["logger"] == "botkit.webhook"}
        assert webhook["wh-plain"]["name"] == decoded  # the value itself, JSON-escaped
        assert webhook[hostile]["outcome"] == "rejected-route"
        return
    webhook_lines = [line for line in log.split("\n") if "botkit.webhook:" in line]
    assert len(webhook_lines) == 2, log
    escaped_type = "x\\nFAKE LINE\\x1b[2J\\u2028"
    assert f"command {escaped_type} id=wh-plain attempt=1 outcome=unknown-command" in log
    escaped_id = "wh\\tTAB\\x85NEL\\x9b2JCSI"
    assert f"command gif id={escaped_id} attempt=1 outcome=rejected-route status=400" in log
    (warning,) = [line for line in log.split("\n") if "rejected (route" in line]
    assert escaped_id in warning and "'x\\nFAKE LINE\\x1b[2J\\u2028'" in warning


def test_text_formatter_escapes_the_arguments_not_the_format() -> None:
    stream = io.StringIO()
    configure_logging("text", stream=stream)
    log = logging.getLogger("botkit.test")
    log.warning("a\tb %s %r %d %.1f %s", "x\ny", "p\rq", 3, 0.25, ValueError("v\x1bw"))
    log.warning("%(who)s left", {"who": "eve\u2028mallory"})
    log.warning("clean %s", "é ünïcode stays")
    assert stream.getvalue().split("\n")[:-1] == [line for line in stream.getvalue().splitlines()]
    first, second, third = (line.split(": ", 1)[1] for line in stream.getvalue().splitlines())
    assert first == "a\tb x\\ny 'p\\rq' 3 0.2 v\\x1bw"
    assert second == "eve\\u2028mallory left"
    assert third == "clean é ünïcode stays"


def test_control_characters_in_headers_are_escaped_under_any_server() -> None:
    """Servers other than gunicorn may pass ASCII control characters in a header."""
    stream = io.StringIO()
    configure_logging("text", stream=stream)
    client = make_bot().test_client(api_key="key-1", secret=SECRET)
    body = encode(command_payload("/echo hi"))
    headers = signed_headers(body, api_key="key-1", secret=SECRET)
    hostile = "wh\nFAKE LINE\r\x1b[2J\x00"
    response = client.app.test_client().post(
        "/webhooks/stream/custom-commands?type=echo",
        data=body,
        headers=headers,
        environ_overrides={"HTTP_X_WEBHOOK_ID": hostile},
    )
    client.close()
    assert response.status_code == 200
    lines = [line for line in stream.getvalue().split("\n") if "FAKE" in line]
    assert len(lines) == 1, lines
    assert all(line.isprintable() for line in stream.getvalue().split("\n"))
    assert "command echo id=wh\\nFAKE LINE\\r\\x1b[2J\\x00 attempt=1 outcome=ok" in lines[0]
