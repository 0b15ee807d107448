"""Real services for tests: a throwaway redis-server on a free loopback port.

Test modules import the fixtures explicitly::

    from services import redis_server, redis_url  # noqa: F401

If ``redis-server`` is not on PATH the fixtures skip the test, or fail it when
the environment variable ``BOTKIT_REQUIRE_SERVICES=1`` is set (CI).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Self

import pytest

__all__ = ["RedisServer", "find_free_port", "hung", "redis_server", "redis_url"]


def find_free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _require(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        message = f"{binary} not installed"
        if os.environ.get("BOTKIT_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{message} (BOTKIT_REQUIRE_SERVICES=1)", pytrace=False)
        pytest.skip(message)
    return path


class RedisServer:
    """A redis-server process without persistence, on 127.0.0.1.

    The port is chosen once, so :meth:`stop` then :meth:`start` simulates an
    outage and a recovery at the same address.
    """

    def __init__(self, binary: str | None = None, port: int | None = None) -> None:
        self.binary = binary or _require("redis-server")
        self.host = "127.0.0.1"
        self.port = port or find_free_port(self.host)
        self.dir = tempfile.mkdtemp(prefix="botkit-redis-")
        self.logfile = os.path.join(self.dir, "redis.log")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        """Start the server and wait until it answers PING."""
        if self.running:
            return
        self.process = subprocess.Popen(
            [
                self.binary,
                "--bind", self.host,
                "--port", str(self.port),
                "--save", "",
                "--appendonly", "no",
                "--dir", self.dir,
                "--logfile", self.logfile,
                "--daemonize", "no",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited early:\n{self._log_tail()}")
            try:
                if self.command("PING") == b"+PONG":
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not answer PING:\n{self._log_tail()}")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop the server (the port becomes free again)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def command(self, *args: str) -> bytes:
        """Send one command over a fresh connection; return the first reply line."""
        payload = f"*{len(args)}\r\n".encode()
        for arg in args:
            data = arg.encode()
            payload += b"$%d\r\n%s\r\n" % (len(data), data)
        with socket.create_connection((self.host, self.port), timeout=1.0) as sock:
            sock.sendall(payload)
            reply = b""
            while not reply.endswith(b"\r\n"):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                reply += chunk
        return reply.split(b"\r\n", 1)[0]

    def flushall(self) -> None:
        reply = self.command("FLUSHALL")
        if reply != b"+OK":
            raise RuntimeError(f"FLUSHALL failed: {reply!r}")

    def _log_tail(self) -> str:
        try:
            with open(self.logfile, encoding="utf-8", errors="replace") as fh:
                return "".join(fh.readlines()[-20:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A redis-server shared by the whole session."""
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """URL of an empty Redis (restarted first if a previous test stopped it)."""
    redis_server.start()
    redis_server.flushall()
    return redis_server.url


@contextmanager
def hung(server: RedisServer) -> Iterator[None]:
    """redis-server stopped (SIGSTOP) inside the block: connections stay open, nothing
    answers. It is always continued after the block."""
    assert server.process is not None
    pid = server.process.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)
