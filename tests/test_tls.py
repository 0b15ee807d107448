"""HTTPS: the gunicorn settings serve TLS themselves when BOTKIT_TLS_CERT and BOTKIT_TLS_KEY are set
(tested with a self-signed certificate made here with openssl)."""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from server import GunicornServer, signed_post

from botkit.cli import cli
from botkit.testing import command_payload, encode


def make_certificate(directory: Path) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 (subjectAltName IP), valid one day."""
    openssl = shutil.which("openssl")
    if openssl is None:
        if os.environ.get("BOTKIT_REQUIRE_SERVICES") == "1":
            pytest.fail("openssl not installed (BOTKIT_REQUIRE_SERVICES=1)", pytrace=False)
        pytest.skip("openssl not installed")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert),
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return str(cert), str(key)


class TLSServer(GunicornServer):
    """The project's gunicorn launcher, talking HTTPS (trusting only our certificate)."""

    def __init__(self, *args: Any, cafile: str, **kwargs: Any) -> None:
        self.context = ssl.create_default_context(cafile=cafile)
        super().__init__(*args, **kwargs)

    def connection(self, timeout: float = 15.0) -> http.client.HTTPConnection:
        return http.client.HTTPSConnection(
            self.host, self.port, timeout=timeout, context=self.context
        )

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSServer]:
    cert, key = make_certificate(tmp_path_factory.mktemp("tls"))
    env = {"BOTKIT_DEV": "1", "BOTKIT_TLS_CERT": cert, "BOTKIT_TLS_KEY": key}
    with TLSServer("wsgi:app", env=env, cafile=cert) as server:
        yield server


def test_https_healthz_and_a_signed_webhook(tls_server: TLSServer) -> None:
    health = tls_server.get("/healthz")
    assert health.status == 200
    conn = tls_server.connection()
    body = encode(command_payload("/gif rain"))
    reply = signed_post(conn, "/webhooks/stream/custom-commands?type=gif", body)
    conn.close()
    assert reply.status == 200
    assert reply.json()["message"]["type"] == "ephemeral"


def test_plain_http_is_not_served_on_the_tls_port(tls_server: TLSServer) -> None:
    conn = http.client.HTTPConnection(tls_server.host, tls_server.port, timeout=5)
    try:
        conn.request("GET", "/healthz")
        response = conn.getresponse()
        status: int | None = response.status
    except (OSError, http.client.HTTPException):
        status = None
    finally:
        conn.close()
    assert status != 200


def test_an_untrusted_certificate_is_refused(tls_server: TLSServer) -> None:
    conn = http.client.HTTPSConnection(
        tls_server.host, tls_server.port, timeout=5, context=ssl.create_default_context()
    )
    with pytest.raises(ssl.SSLCertVerificationError):
        conn.request("GET", "/healthz")
    conn.close()


def test_botkit_send_over_https(tls_server: TLSServer) -> None:
    cafile = tls_server.env["BOTKIT_TLS_CERT"]
    env = {
        "REQUESTS_CA_BUNDLE": cafile,
        "STREAM_API_KEY": None,
        "STREAM_API_SECRET": None,
        "STREAM_API_KEYS": None,
        "BOTKIT_URL_PREFIX": None,
    }
    result = CliRunner().invoke(
        cli, ["send", "/gif rain", "--url", tls_server.url, "--click", "1"], env=env
    )
    assert result.exit_code == 0, result.output
    assert result.output.count("HTTP 200") == 2
    assert "regular message" in result.output


def test_botkit_send_explains_an_untrusted_certificate(tls_server: TLSServer) -> None:
    env = {"REQUESTS_CA_BUNDLE": None, "CURL_CA_BUNDLE": None, "STREAM_API_KEY": None}
    result = CliRunner().invoke(cli, ["send", "/gif rain", "--url", tls_server.url], env=env)
    assert result.exit_code == 1
    assert "TLS with https://127.0.0.1" in result.output, result.output
    assert "certificate verify failed: self-signed certificate" in result.output
    assert len(result.output.strip().splitlines()) == 2  # the dev-key note and the error
    assert "REQUESTS_CA_BUNDLE" in result.output
    assert "Traceback" not in result.output


def test_keep_alive_over_https(tls_server: TLSServer) -> None:
    # botkit's worker reads TLS requests in its loop and hands them to the pool, and a
    # kept-alive connection comes back to the loop for its next request.
    conn = tls_server.connection()
    try:
        for attempt in range(3):
            body = encode(command_payload("/gif rain"))
            reply = signed_post(conn, "/webhooks/stream/custom-commands?type=gif", body)
            assert reply.status == 200, attempt
            assert not reply.will_close
    finally:
        conn.close()
    assert "Using worker: botkit.adapters.gunicorn_worker.BotkitWorker" in tls_server.log()
    assert f"botkit listening on https://127.0.0.1:{tls_server.port}" in tls_server.log()


def test_a_body_of_many_tls_records_is_read_whole(tls_server: TLSServer) -> None:
    # TLS records are 16 KB at most: the worker reads every one the peer sent, also those
    # already inside the TLS object, where its poller cannot see them.
    body = encode(command_payload("/gif " + "rain " * 60_000))  # about 300 KB
    conn = tls_server.connection()
    try:
        reply = signed_post(conn, "/webhooks/stream/custom-commands?type=gif", body)
    finally:
        conn.close()
    assert reply.status == 200
    assert reply.json()["message"]["type"] == "ephemeral"


@pytest.fixture(scope="module")
def impatient_tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSServer]:
    cert, key = make_certificate(tmp_path_factory.mktemp("tls"))
    env = {
        "BOTKIT_DEV": "1",
        "BOTKIT_TLS_CERT": cert,
        "BOTKIT_TLS_KEY": key,
        "BOTKIT_HEADER_TIMEOUT": "1",
    }
    with TLSServer("wsgi:app", env=env, cafile=cert, workers=1) as server:
        yield server


def test_tls_headers_too_slow_get_a_408(impatient_tls_server: TLSServer) -> None:
    raw = socket.create_connection((impatient_tls_server.host, impatient_tls_server.port))
    tls = impatient_tls_server.context.wrap_socket(raw, server_hostname="127.0.0.1")
    try:
        tls.settimeout(10)
        tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: botkit\r\n")  # and no end of head
        started = time.monotonic()
        answer = tls.recv(1024)
        waited = time.monotonic() - started
    finally:
        tls.close()
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert 0.5 < waited < 5  # BOTKIT_HEADER_TIMEOUT=1, swept a few times a second


def test_a_tls_handshake_that_stalls_is_closed(impatient_tls_server: TLSServer) -> None:
    """A client that starts its handshake and stops holds no thread, and is let go within
    the header deadline of its connection; the server answers others meanwhile."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    hello = impatient_tls_server.context.wrap_bio(incoming, outgoing, server_hostname="x")
    with pytest.raises(ssl.SSLWantReadError):
        hello.do_handshake()
    client_hello = outgoing.read()
    stalled = [
        socket.create_connection((impatient_tls_server.host, impatient_tls_server.port))
        for _ in range(20)  # more than the worker's 8 threads
    ]
    try:
        started = time.monotonic()
        for sock in stalled:
            sock.sendall(client_hello[:20])  # part of the hello, then nothing
            sock.settimeout(10)
        assert impatient_tls_server.get("/healthz").status == 200
        for sock in stalled:
            assert sock.recv(1024) == b""  # closed by the server
        assert time.monotonic() - started < 5
    finally:
        for sock in stalled:
            sock.close()


def test_certificate_files_are_read_per_connection(tmp_path: Path) -> None:
    """As gunicorn does: a renewed certificate is served without a restart, and while the
    files cannot be read a connection is closed and logged, the worker keeps going."""
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    first_cert, first_key = make_certificate(tmp_path / "first")
    second_cert, second_key = make_certificate(tmp_path / "second")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    shutil.copy(first_cert, cert)
    shutil.copy(first_key, key)
    env = {"BOTKIT_DEV": "1", "BOTKIT_TLS_CERT": str(cert), "BOTKIT_TLS_KEY": str(key)}
    with TLSServer("wsgi:app", env=env, cafile=first_cert, workers=1) as server:
        assert server.get("/healthz").status == 200
        cert.unlink()
        with pytest.raises((OSError, http.client.HTTPException)):
            server.get("/healthz")
        assert "botkit: TLS not set up for" in server.log()
        shutil.copy(second_cert, cert)  # renewed (a new self-signed one: trust it)
        shutil.copy(second_key, key)
        server.context = ssl.create_default_context(cafile=second_cert)
        assert server.get("/healthz").status == 200
        assert server.running
