"""The gunicorn settings (botkit/adapters/gunicorn_conf.py, which the repository's
gunicorn.conf.py re-exports): how workers share a port, their malloc arenas, the printed
address, and serving a bot outside the checkout."""

from __future__ import annotations

import ctypes
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from server import ROOT, GunicornServer, signed_post

from botkit.testing import command_payload, encode

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not sys.platform.startswith("linux"), reason="SO_REUSEPORT balances on Linux"
    ),
]


def listening_sockets(port: int) -> int:
    """How many sockets listen on 127.0.0.1:``port`` (``/proc/net/tcp``, state 0A)."""
    with open("/proc/net/tcp", encoding="ascii") as fh:
        rows = [line.split() for line in fh.readlines()[1:]]
    return sum(1 for row in rows if row[1] == f"0100007F:{port:04X}" and row[3] == "0A")


def wait_for_listeners(port: int, count: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while listening_sockets(port) < count:
        assert time.monotonic() < deadline, f"{listening_sockets(port)} sockets listen on {port}"
        time.sleep(0.05)


def pids_of_connections(server: GunicornServer, count: int) -> Counter[str]:
    """Open ``count`` connections at once, then ask each which worker serves it."""
    conns = [server.connection(timeout=10) for _ in range(count)]
    try:
        for conn in conns:
            conn.connect()
        served: Counter[str] = Counter()
        for conn in conns:
            conn.request("GET", "/")
            served[conn.getresponse().read().decode()] += 1
        return served
    finally:
        for conn in conns:
            conn.close()


def test_a_burst_of_connections_is_spread_over_the_workers() -> None:
    # On one shared socket, the worker that wakes first tends to accept a whole burst.
    # Each worker now has a socket of its own and the kernel hashes connections over them:
    # all 32 on one of two workers has a chance of 2 in 2**32.
    with GunicornServer("bots.pids:app", workers=2, healthy=False) as server:
        workers = {str(pid) for pid in server.wait_for_workers()}
        wait_for_listeners(server.port, 2)  # a socket for each worker, bound once it booted
        served = pids_of_connections(server, 32)
    assert set(served) == workers, served


def test_a_port_in_use_stops_the_start() -> None:
    # Workers bind with SO_REUSEPORT, which a second server could share silently.
    with GunicornServer("bots.pids:app", healthy=False) as first:
        second = GunicornServer("bots.pids:app", healthy=False)
        second.port = first.port
        cmd = second.command()
        cmd[cmd.index("--bind") + 1] = f"127.0.0.1:{first.port}"
        out = subprocess.run(
            cmd, cwd=ROOT, env=second.env, capture_output=True, text=True, timeout=30, check=False
        )
        second.cleanup()
        assert out.returncode != 0
        assert f"botkit: cannot listen on 127.0.0.1:{first.port}" in out.stderr
        assert "in use" in out.stderr
        assert first.get("/").status == 200  # the first one goes on serving


def test_reuse_port_can_be_turned_off() -> None:
    with GunicornServer("bots.pids:app", env={"GUNICORN_REUSE_PORT": "0"}, healthy=False) as server:
        server.wait_for_workers()
        assert pids_of_connections(server, 4).total() == 4
        log = server.log_tail()
        assert listening_sockets(server.port) == 1
    # the master binds the one shared socket itself, and says so
    assert f"Listening at: http://127.0.0.1:{server.port}" in log


def test_port_0_gets_one_shared_socket() -> None:
    # With reuse_port, every worker binding port 0 would get a port of its own.
    server = GunicornServer("bots.pids:app", workers=2, healthy=False)
    cmd = server.command()
    cmd[cmd.index("--bind") + 1] = "127.0.0.1:0"
    try:
        with open(server.log_path, "ab") as log:
            server.process = subprocess.Popen(
                cmd, cwd=ROOT, env=server.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + 15
        while not (found := re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", server.log())):
            assert time.monotonic() < deadline and server.running, server.log_tail()
            time.sleep(0.05)
        server.port = int(found.group(1))
        workers = {str(pid) for pid in server.wait_for_workers()}
        served = pids_of_connections(server, 32)
        assert listening_sockets(server.port) == 1
    finally:
        server.cleanup()
    assert set(served) <= workers, served


def children(pid: int) -> set[int]:
    out = subprocess.run(
        ["ps", "--ppid", str(pid), "-o", "pid="], capture_output=True, text=True, check=False
    ).stdout
    return {int(p) for p in out.split()}


def test_a_re_executed_master_takes_over_the_port() -> None:
    # USR2 starts a new master next to the old one (a zero-downtime upgrade). It must not
    # take its own port for a taken one, and its workers share the port with the old ones.
    with GunicornServer("bots.pids:app", workers=2, healthy=False) as server:
        old_master = server.pid
        old_workers = set(server.wait_for_workers())
        os.kill(old_master, signal.SIGUSR2)
        deadline = time.monotonic() + 20
        new_master, new_workers = 0, set()
        while len(new_workers) < 2:
            assert time.monotonic() < deadline, server.log_tail()
            assert server.running, server.log_tail()
            time.sleep(0.1)
            masters = children(old_master) - old_workers
            if masters:
                new_master = masters.pop()
                new_workers = children(new_master)
        wait_for_listeners(server.port, 4)  # old and new workers, a socket each
        os.kill(old_master, signal.SIGTERM)  # the operator lets the old one go
        server.process.wait(timeout=30)  # type: ignore[union-attr]
        assert listening_sockets(server.port) == 2  # the old workers are gone
        served = set(pids_of_connections(server, 16))
        os.kill(new_master, signal.SIGTERM)
        log = server.log_tail(200)
    assert served <= {str(pid) for pid in new_workers}, (served, new_workers)
    assert "cannot listen" not in log


def arenas(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """A WSGI app: 8 threads allocate at once, then the answer is the worker's arena count."""
    barrier = threading.Barrier(8)

    def allocate() -> None:
        barrier.wait()
        bytearray(64 * 1024)  # past pymalloc's small objects: from the thread's arena
        barrier.wait()  # alive until every thread allocated, so none hands its arena on

    threads = [threading.Thread(target=allocate) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    libc = ctypes.CDLL("libc.so.6")
    libc.fdopen.restype = ctypes.c_void_p
    libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
    libc.fclose.argtypes = [ctypes.c_void_p]
    with tempfile.TemporaryFile() as fh:
        stream = libc.fdopen(os.dup(fh.fileno()), b"w")
        libc.malloc_info(0, stream)  # XML, a <heap nr="..."> per arena
        libc.fclose(stream)
        fh.seek(0)
        body = str(fh.read().count(b"<heap nr=")).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


@pytest.mark.parametrize(("env", "expected"), [({}, 2), ({"MALLOC_ARENA_MAX": "4"}, 4)])
def test_a_worker_allocates_from_two_arenas(env: dict[str, str], expected: int) -> None:
    # glibc would give each of the 8 threads an arena of its own; the master asked for two,
    # and its workers inherit that. MALLOC_ARENA_MAX, when set, wins.
    with GunicornServer("test_gunicorn_conf:arenas", env=env, healthy=False) as server:
        assert int(server.get("/").body) == expected


# -- the packaged settings ---------------------------------------------------------------

MYBOT = """\
from botkit import Bot

bot = Bot()


@bot.command("hello", description="Say hello")
def hello(ctx):
    return "hello from mybot"


app = bot.create_app()
"""


def test_a_bot_outside_the_checkout_runs_with_the_packaged_settings(tmp_path: Any) -> None:
    # The folder holds only the bot: no gunicorn.conf.py, no checkout on the path.
    (tmp_path / "mybot.py").write_text(MYBOT)
    server = GunicornServer(
        "mybot:app",
        env={"BOTKIT_DEV": "1"},
        workers=2,
        cwd=str(tmp_path),
        config="python:botkit.adapters.gunicorn_conf",
    )
    paths = server.env["PYTHONPATH"].split(os.pathsep)
    server.env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p != ROOT)
    with server:
        body = encode(command_payload("/hello"))
        reply = signed_post(
            server.connection(), "/webhooks/stream/custom-commands?type=hello", body
        )
        server.wait_for_workers()
        wait_for_listeners(server.port, 2)  # reuse_port: the packaged settings apply
        log = server.log()
    assert reply.status == 200
    assert reply.json()["message"]["text"] == "hello from mybot"
    assert "Using worker: botkit.adapters.gunicorn_worker.BotkitWorker" in log
    assert f"botkit listening on http://127.0.0.1:{server.port} (2 workers)" in log


def test_the_repository_settings_are_the_packaged_ones() -> None:
    # gunicorn.conf.py is executed as a file; gunicorn keeps the names it knows, hooks too.
    namespace: dict[str, Any] = {}
    with open(os.path.join(ROOT, "gunicorn.conf.py"), encoding="utf-8") as fh:
        exec(compile(fh.read(), "gunicorn.conf.py", "exec"), namespace)
    from botkit.adapters import gunicorn_conf

    for name in gunicorn_conf.__all__:
        assert namespace[name] is getattr(gunicorn_conf, name), name
    for hook in ("on_starting", "when_ready", "post_worker_init", "child_exit"):
        assert callable(namespace[hook])


def test_the_settings_module_loads_neither_flask_nor_the_app() -> None:
    # gunicorn's master imports it before anything else: it must stay light.
    code = (
        "import sys, botkit.adapters.gunicorn_conf; "
        "print(sorted(m for m in ('flask', 'werkzeug', 'wsgi', 'examples') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_the_listening_address_is_printed() -> None:
    # With reuse_port the master binds nothing, and gunicorn's own line has no address.
    with GunicornServer("bots.pids:app", workers=2, healthy=False) as server:
        server.wait_for_workers()
        log = server.log()
    assert "Listening at:" not in log  # gunicorn's own line would be blank: left out
    assert f"botkit listening on http://127.0.0.1:{server.port} (2 workers)" in log


def test_the_listening_address_without_reuse_port() -> None:
    env = {"GUNICORN_REUSE_PORT": "0"}
    with GunicornServer("bots.pids:app", env=env, workers=1, healthy=False) as server:
        server.wait_for_workers()
        log = server.log()
    assert f"botkit listening on http://127.0.0.1:{server.port} (1 worker)" in log


def test_a_bad_read_limit_stops_the_start() -> None:
    server = GunicornServer("bots.pids:app", env={"BOTKIT_HEADER_TIMEOUT": "soon"}, healthy=False)
    try:
        out = subprocess.run(
            server.command(), cwd=ROOT, env=server.env, capture_output=True, text=True,
            timeout=30, check=False,
        )  # fmt: skip
    finally:
        server.cleanup()
    assert out.returncode != 0
    assert "botkit: BOTKIT_HEADER_TIMEOUT='soon' is not a number" in out.stderr
    assert "Traceback" not in out.stderr
