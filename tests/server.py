"""A real gunicorn serving a botkit app on a free loopback port, for end-to-end tests.

::

    from server import GunicornServer, signed_post

    with GunicornServer("wsgi:app", env={"BOTKIT_DEV": "1"}, workers=2) as server:
        conn = server.connection()
        result = signed_post(conn, "/webhooks/stream/custom-commands?type=gif", body,
                             api_key="botkit-dev-key",
                             secret="botkit-dev-secret-for-local-use-only")
        assert result.status == 200
        print(server.worker_pids(), server.log())

The server runs ``python -m gunicorn -c gunicorn.conf.py APP`` from the repository root
(so ``wsgi:app`` and the project's ``gunicorn.conf.py`` are the real ones), with ``tests/``
on ``PYTHONPATH`` (so ``bots.reliability:create_app()`` works too), ``--no-control-socket``,
and everything it prints (gunicorn's error log, the app's warnings) in ``server.log_path``.

The child's environment is this process's, minus any ``STREAM_*``/``BOTKIT_*``/gunicorn
settings a developer may have exported, plus ``env``. Unless ``env`` names one, the
idempotency store is a fresh SQLite file in the server's temporary directory, never the
repository's ``instance/``.

The ``gunicorn`` fixture starts servers that are stopped when the test ends::

    from server import gunicorn  # noqa: F401

    def test_something(gunicorn):
        server = gunicorn("wsgi:app", env={"BOTKIT_DEV": "1"})
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Self

import pytest
from services import find_free_port

from botkit.testing import signed_headers

__all__ = [
    "DEV_KEY",
    "DEV_SECRET",
    "ROOT",
    "GunicornServer",
    "HTTPResult",
    "gunicorn",
    "signed_post",
]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(ROOT, "tests")
DEV_KEY = "botkit-dev-key"
DEV_SECRET = "botkit-dev-secret-for-local-use-only"

#: Variables of the parent environment that would change what the server does.
_SCRUBBED_PREFIXES = ("STREAM_", "BOTKIT_", "GUNICORN_")
_SCRUBBED = ("WEB_CONCURRENCY", "PORT", "GIPHY_API_KEY", "FORWARDED_ALLOW_IPS")
_KEPT = ("BOTKIT_REQUIRE_SERVICES",)


class ServerError(RuntimeError):
    """gunicorn did not start (the message ends with the tail of its log)."""


class GunicornServer:
    """One gunicorn master (and its workers) that this test process started.

    Args:
        app: the WSGI app as gunicorn takes it, ``module:variable`` or ``module:factory()``.
        env: extra environment variables for the server.
        workers, threads: gunicorn's ``--workers`` and ``--threads``.
        graceful_timeout: seconds :meth:`stop` lets workers finish in-flight requests.
        args: more command-line arguments for gunicorn.
        healthy: wait for ``GET /healthz`` to answer 200 (otherwise any HTTP answer).
        config: gunicorn's ``-c``, the repository's ``gunicorn.conf.py`` unless given (e.g.
            ``python:botkit.adapters.gunicorn_conf``, the packaged settings).
    """

    def __init__(
        self,
        app: str = "wsgi:app",
        *,
        env: Mapping[str, str] | None = None,
        workers: int = 1,
        threads: int | None = None,
        graceful_timeout: float = 3,
        args: tuple[str, ...] | list[str] = (),
        healthy: bool = True,
        cwd: str = ROOT,
        config: str = "gunicorn.conf.py",
    ) -> None:
        self.app = app
        self.workers = workers
        self.threads = threads
        self.graceful_timeout = graceful_timeout
        self.args = list(args)
        self.healthy = healthy
        self.cwd = cwd
        self.config = config
        self.host = "127.0.0.1"
        self.port = 0
        self.dir = tempfile.mkdtemp(prefix="botkit-gunicorn-")
        self.log_path = os.path.join(self.dir, "server.log")
        self.env = self._environment(env or {})
        self.process: subprocess.Popen[bytes] | None = None

    def _environment(self, extra: Mapping[str, str]) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if k in _KEPT or not (k.startswith(_SCRUBBED_PREFIXES) or k in _SCRUBBED)
        }
        path = [ROOT, TESTS, *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
        env["PYTHONPATH"] = os.pathsep.join(path)
        env["PYTHONUNBUFFERED"] = "1"
        env.setdefault("PYTHONDONTWRITEBYTECODE", "1")
        env.update(extra)
        env.setdefault("BOTKIT_STORE", f"sqlite:///{self.dir}/store.db")
        return env

    # -- addresses -------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        """The gunicorn master's process id."""
        if self.process is None:
            raise RuntimeError("the server is not running")
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def connection(self, timeout: float = 15.0) -> http.client.HTTPConnection:
        """A new keep-alive HTTP/1.1 connection to the server (not yet opened)."""
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def get(self, path: str, timeout: float = 5.0) -> HTTPResult:
        """``GET path`` over a fresh connection."""
        conn = self.connection(timeout)
        try:
            conn.request("GET", path)
            return HTTPResult.read(conn.getresponse())
        finally:
            conn.close()

    # -- processes -------------------------------------------------------------------

    def worker_pids(self) -> list[int]:
        """Process ids of the master's current children (its workers), sorted."""
        if not self.running:
            return []
        out = subprocess.run(
            ["ps", "--ppid", str(self.pid), "-o", "pid="],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        return sorted(int(p) for p in out.split())

    def wait_for_workers(self, count: int | None = None, timeout: float = 15.0) -> list[int]:
        """Wait until the master has ``count`` (default: ``workers``) children."""
        count = self.workers if count is None else count
        deadline = time.monotonic() + timeout
        while True:
            pids = self.worker_pids()
            if len(pids) == count:
                return pids
            if time.monotonic() > deadline:
                raise ServerError(f"expected {count} workers, found {pids}\n{self.log_tail()}")
            time.sleep(0.05)

    def command(self) -> list[str]:
        cmd = [
            sys.executable, "-m", "gunicorn",
            "-c", self.config,
            "--bind", f"{self.host}:{self.port}",
            "--workers", str(self.workers),
            "--graceful-timeout", str(self.graceful_timeout),
            "--no-control-socket",
        ]  # fmt: skip
        if self.threads is not None:
            cmd += ["--threads", str(self.threads)]
        return [*cmd, *self.args, self.app]

    def start(self, timeout: float = 30.0) -> Self:
        """Start gunicorn and wait until ``/healthz`` answers; retry on a taken port."""
        if self.running:
            return self
        for attempt in range(3):
            self.port = find_free_port(self.host)
            self.env["BOTKIT_BIND"] = f"{self.host}:{self.port}"
            with open(self.log_path, "ab") as log:
                self.process = subprocess.Popen(
                    self.command(),
                    cwd=self.cwd,
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group, see stop()
                )
            try:
                self._wait_ready(timeout)
                return self
            except ServerError:
                in_use = "in use" in self.log_tail().lower()
                self.stop()
                if not in_use or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer"
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise ServerError(
                    f"gunicorn exited with {self.process.returncode}\n{self.log_tail()}"
                )
            try:
                result = self.get("/healthz", timeout=2.0)
            except OSError as exc:
                last = repr(exc)
            else:
                if result.status == 200 or not self.healthy:
                    return
                last = f"/healthz answered {result.status}: {result.body[:200]!r}"
            if time.monotonic() > deadline:
                raise ServerError(
                    f"gunicorn not ready after {timeout}s ({last})\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def stop(self, timeout: float | None = None) -> None:
        """SIGTERM the master, wait for a graceful stop, then SIGKILL whatever is left."""
        process, self.process = self.process, None
        if process is None:
            return
        timeout = self.graceful_timeout + 5 if timeout is None else timeout
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        # Workers (and the master, if it hung) are in the group start() created.
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        process.wait(timeout=5)

    def cleanup(self) -> None:
        """Stop the server and delete its temporary directory (log included)."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- the log ---------------------------------------------------------------------

    def log(self) -> str:
        """Everything the server printed so far."""
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as fh:
                return fh.read()
        except OSError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "".join(self.log().splitlines(keepends=True)[-lines:])

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def __repr__(self) -> str:
        return f"<GunicornServer {self.app} {self.url if self.port else '(not started)'}>"


@dataclass
class HTTPResult:
    """One HTTP answer, read whole: ``status``, ``headers`` (a list of pairs), ``body``."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    will_close: bool = False

    @classmethod
    def read(cls, response: http.client.HTTPResponse) -> HTTPResult:
        body = response.read()
        return cls(response.status, response.getheaders(), body, bool(response.will_close))

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def json(self) -> Any:
        import json

        return json.loads(self.body)


def signed_post(
    conn: http.client.HTTPConnection,
    path: str,
    body: bytes,
    *,
    api_key: str = DEV_KEY,
    secret: str = DEV_SECRET,
    webhook_id: str | None = None,
    attempt: int = 1,
    headers: Mapping[str, str] | None = None,
) -> HTTPResult:
    """POST ``body`` signed as Stream would (:func:`botkit.testing.signed_headers`)."""
    sent = signed_headers(
        body, api_key=api_key, secret=secret, webhook_id=webhook_id, attempt=attempt
    )
    sent.update(headers or {})
    conn.request("POST", path, body=body, headers=sent)
    return HTTPResult.read(conn.getresponse())


@pytest.fixture
def gunicorn() -> Iterator[Callable[..., GunicornServer]]:
    """Start servers with ``gunicorn(app, **GunicornServer kwargs)``; stopped after the test."""
    servers: list[GunicornServer] = []

    def start(app: str = "wsgi:app", **kwargs: Any) -> GunicornServer:
        server = GunicornServer(app, **kwargs)
        servers.append(server)
        return server.start()

    try:
        yield start
    finally:
        for server in servers:
            server.cleanup()
