"""``botkit new``: the project it writes, its own tests without credentials, and its
``web:`` line under a real gunicorn answering ``botkit send``."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from server import ROOT
from services import find_free_port

from botkit.cli import cli
from botkit.cli.new import FILES, _git_url, botkit_requirement, write_project

BIN = os.path.dirname(sys.executable)
PACKAGED_SETTINGS = "python:botkit.adapters.gunicorn_conf"


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without Stream or botkit settings (nor PYTHONPATH: the project
    must find botkit as installed), with the venv's scripts first on PATH."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("STREAM_", "BOTKIT_", "GUNICORN_"))
        and k not in ("PYTHONPATH", "PORT", "WEB_CONCURRENCY")
    }
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra)
    return env


def served(command: str) -> str:
    """A shell line that starts gunicorn, as a test may run it: servers started by tests
    never open gunicorn's control socket."""
    return command.replace("gunicorn ", "gunicorn --no-control-socket ", 1)


def wait_healthy(port: int, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited with {process.returncode}:\n{log.read_text()}")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            conn.request("GET", "/healthz")
            response = conn.getresponse()
            body = response.read()
            if response.status == 200:
                return
            last = f"{response.status} {body[:200]!r}"
        except OSError as exc:
            last = repr(exc)
        finally:
            conn.close()
        time.sleep(0.1)
    raise AssertionError(f"/healthz not 200 after {timeout}s ({last}):\n{log.read_text()}")


@contextmanager
def background(
    command: str, cwd: Path, env: Mapping[str, str], port: int, timeout: float = 60
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a shell line that serves on ``port`` until the block ends, then stop its
    whole process group (the shell, gunicorn's master and its workers)."""
    log = Path(tempfile.mkstemp(prefix="botkit-new-", suffix=".log")[1])
    with open(log, "wb") as out:
        process = subprocess.Popen(
            ["bash", "-c", command],
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_healthy(port, process, log, timeout)
        yield process
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                break
            try:
                process.wait(timeout=10)
                break
            except subprocess.TimeoutExpired:
                continue
        log.unlink(missing_ok=True)


def procfile(project: Path) -> dict[str, str]:
    lines = project.joinpath("Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip())


# -- the files -----------------------------------------------------------------------------------


def test_new_writes_the_project(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["new", str(tmp_path / "mybot")])
    assert result.exit_code == 0, result.output
    project = tmp_path / "mybot"
    written = sorted(str(p.relative_to(project)) for p in project.rglob("*") if p.is_file())
    assert written == sorted(FILES)
    assert "cd " + str(tmp_path / "mybot") in result.output
    assert procfile(project) == {
        "web": f"gunicorn -c {PACKAGED_SETTINGS} bot:app",
        "worker": "botkit worker",
    }
    requirement, _ = botkit_requirement()
    requirements = project.joinpath("requirements.txt").read_text().splitlines()
    assert [r for r in requirements if not r.startswith("#")] == [requirement]
    # this test runs from the checkout, which has no git remote here: its file:// URL
    assert requirement == f"botkit[huey,redis] @ {Path(ROOT).as_uri()}"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert project.joinpath(".python-version").read_text().strip() == version
    assert "STREAM_API_KEY=" in project.joinpath(".env.example").read_text()
    assert ".env" in project.joinpath(".gitignore").read_text().split()
    readme = project.joinpath("README.md").read_text()
    assert readme.startswith("# mybot\n") and "{{" not in readme


def test_new_refuses_a_folder_that_holds_something(tmp_path: Path) -> None:
    (tmp_path / "mybot").mkdir()
    (tmp_path / "mybot" / "notes.txt").write_text("mine")
    result = CliRunner().invoke(cli, ["new", str(tmp_path / "mybot")])
    assert result.exit_code == 1
    assert "is not empty (it holds notes.txt)" in result.output
    assert "give it a new folder name" in result.output
    assert os.listdir(tmp_path / "mybot") == ["notes.txt"]  # untouched
    (tmp_path / "afile").write_text("x")
    result = CliRunner().invoke(cli, ["new", str(tmp_path / "afile")])
    assert result.exit_code == 1 and "is a file" in result.output
    # an empty folder is fine
    (tmp_path / "empty").mkdir()
    assert CliRunner().invoke(cli, ["new", str(tmp_path / "empty")]).exit_code == 0


def test_requirement_from_a_git_remote_and_from_the_option(tmp_path: Path) -> None:
    assert _git_url("https://github.com/you/botkit.git") == (
        "git+https://github.com/you/botkit.git"
    )
    assert _git_url("git@github.com:you/botkit.git") == "git+ssh://git@github.com/you/botkit.git"
    assert _git_url("/srv/git/botkit") == ""  # a local path: Heroku could not fetch it
    spec = "botkit[huey,redis] @ git+https://example.com/botkit@v1"
    write_project(tmp_path / "p", spec)
    assert spec in (tmp_path / "p" / "requirements.txt").read_text().splitlines()


def test_the_bots_replies_follow_the_client_rules(tmp_path: Path) -> None:
    """The scaffold's button shows in today's React client: on an attachment with a
    title_link, and no text on it (the client repeats it in the button row)."""
    write_project(tmp_path / "p")
    namespace: dict[str, Any] = {}
    source = (tmp_path / "p" / "bot.py").read_text()
    env = {"BOTKIT_STORE": "memory://"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        exec(compile(source, "bot.py", "exec"), namespace)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    with namespace["bot"].test_client() as client:
        reply = client.command("/hello Ada")
        (attachment,) = reply.attachments
        assert attachment["title_link"].startswith("https://")
        assert not attachment.get("text")
        assert [a["style"] for a in reply.actions] == ["primary", "default"]
        assert reply.text == "Hello, Ada!"


# -- the project on its own ------------------------------------------------------------------------


def test_the_projects_tests_pass_without_credentials(tmp_path: Path) -> None:
    write_project(tmp_path / "mybot")
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=tmp_path / "mybot",
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "5 passed" in out.stdout


@pytest.mark.slow
def test_the_web_line_serves_and_botkit_send_gets_the_reply(tmp_path: Path) -> None:
    write_project(tmp_path / "mybot")
    project = tmp_path / "mybot"
    port = find_free_port()
    env = clean_env(PORT=str(port), BOTKIT_DEV="1", WEB_CONCURRENCY="1")
    url = f"http://127.0.0.1:{port}"
    with background(served(procfile(project)["web"]), project, env, port):
        send = subprocess.run(
            ["botkit", "send", "/hello Ada", "--url", url, "--raw"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert send.returncode == 0, send.stdout + send.stderr
        assert '"text": "Hello, Ada!"' in send.stdout or '"text":"Hello, Ada!"' in send.stdout
        clicked = subprocess.run(
            ["botkit", "send", "/hello Ada", "--url", url, "--click", "Wave"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert clicked.returncode == 0, clicked.stdout + clicked.stderr
        assert "alice waves at Ada" in clicked.stdout


@pytest.mark.slow
def test_the_server_refuses_to_start_without_credentials(tmp_path: Path) -> None:
    """The packaged settings' post_worker_init stops the server with the message."""
    write_project(tmp_path / "mybot")
    project = tmp_path / "mybot"
    port = find_free_port()
    command = [
        "gunicorn", "--no-control-socket", "-c", PACKAGED_SETTINGS,
        "--bind", f"127.0.0.1:{port}", "--workers", "1", "bot:app",
    ]  # fmt: skip
    out = subprocess.run(
        command,
        cwd=project,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0
    assert "No Stream credentials: set STREAM_API_KEY and STREAM_API_SECRET" in out.stderr
    assert "Worker failed to boot" in out.stderr


@pytest.mark.slow
def test_the_worker_line_runs_push_handlers_and_logs_each(tmp_path: Path) -> None:
    """web: queues a push event on huey, worker: (`botkit worker`, which finds bot.py)
    runs the scaffold's handler and logs one INFO line for it."""
    write_project(tmp_path / "mybot")
    project = tmp_path / "mybot"
    port = find_free_port()
    env = clean_env(
        PORT=str(port),
        BOTKIT_DEV="1",
        WEB_CONCURRENCY="1",
        BOTKIT_QUEUE=f"huey+sqlite:///{tmp_path}/queue.db",
        BOTKIT_STORE=f"sqlite:///{tmp_path}/store.db",
    )
    worker_log = tmp_path / "worker.log"
    with open(worker_log, "wb") as out:
        worker = subprocess.Popen(
            ["bash", "-c", procfile(project)["worker"]],
            cwd=project,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        with background(served(procfile(project)["web"]), project, env, port):
            event = ["--event", "message.new", "--text", "hi", "--channel", "messaging:town"]
            send = subprocess.run(
                ["botkit", "send", *event, "--url", f"http://127.0.0.1:{port}"],
                cwd=project,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert send.returncode == 0, send.stdout + send.stderr
            deadline = time.monotonic() + 60
            wanted = "INFO botkit.tasks: event message.new handler=bot.count_messages id="
            while wanted not in worker_log.read_text() and time.monotonic() < deadline:
                assert worker.poll() is None, worker_log.read_text()
                time.sleep(0.1)
            text = worker_log.read_text()
            assert wanted in text, text
            assert '"hi"' not in text and " hi" not in text.split(wanted)[1].split("\n")[0]
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=5)
