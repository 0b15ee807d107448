"""The README's "A bot in five minutes" and "Testing your bot", run as written (in a
temporary folder, with the venv's ``botkit`` on PATH), so that they cannot drift."""

from __future__ import annotations

import re
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

import pytest
from server import ROOT
from services import find_free_port
from test_new import background, clean_env, served

from botkit.cli.new import write_project

README = Path(ROOT, "README.md").read_text(encoding="utf-8")
#: Lines the test leaves out: this test's venv already has botkit installed from this
#: checkout (what `pip install -e ./botkit` does), and installing would reach the network.
SKIPPED = ("python3 -m venv", "pip install")
#: The port the README serves on; the test uses a free one instead.
README_PORT = "8001"


def section(title: str) -> str:
    """The text under ``## title`` up to the next heading of any level."""
    start = README.index(f"## {title}\n") + len(title) + 4
    following = re.search(r"^#{2,} ", README[start:], re.MULTILINE)
    return README[start : start + following.start()] if following else README[start:]


def blocks(text: str) -> list[tuple[str, str]]:
    return re.findall(r"^```(\w*)\n(.*?)^```", text, re.MULTILINE | re.DOTALL)


def expected_prints(code: str) -> list[str]:
    """What a block's ``print(...)  # expected`` lines say they print."""
    return [
        line.split("# ", 1)[1].strip()
        for line in code.splitlines()
        if line.lstrip().startswith("print(") and "# " in line
    ]


def test_the_sections_have_the_blocks_this_test_runs() -> None:
    kinds = [lang for lang, _ in blocks(section("A bot in five minutes"))]
    assert kinds == ["", "sh", "python", "sh", "sh"]
    assert [lang for lang, _ in blocks(section("Testing your bot"))] == ["python"]
    first = blocks(section("A bot in five minutes"))[1][1]
    assert "botkit new mybot && cd mybot" in first


@pytest.mark.slow
def test_a_bot_in_five_minutes(tmp_path: Path) -> None:
    port = str(find_free_port())
    env = clean_env()
    cwd = tmp_path
    sent: list[str] = []
    with ExitStack() as servers:
        for lang, code in blocks(section("A bot in five minutes")):
            if lang == "python":
                out = subprocess.run(
                    [sys.executable, "-c", code],
                    cwd=cwd,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
                assert out.returncode == 0, out.stderr
                assert out.stdout.splitlines() == expected_prints(code)
                continue
            if lang != "sh":
                continue  # the folder picture
            code = code.replace(README_PORT, port)
            if "gunicorn" in code:  # the server: in the background until the end
                servers.enter_context(background(served(code.strip()), cwd, env, int(port)))
                continue
            lines = [line for line in code.splitlines() if not line.startswith(SKIPPED)]
            script = "set -e\n" + "\n".join(lines) + '\necho "__CWD__=$(pwd)"\n'
            out = subprocess.run(
                ["bash", "-c", script],
                cwd=cwd,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert out.returncode == 0, out.stdout + out.stderr
            *printed, last = out.stdout.splitlines()
            cwd = Path(last.removeprefix("__CWD__="))
            sent.append("\n".join(printed))
    assert cwd == tmp_path / "mybot"
    setup, talk = sent
    assert re.search(r"^\d+ passed", setup, re.MULTILINE), setup  # the bot's own tests
    assert talk.count("HTTP 200") == 4, talk  # three sends, one with a click
    for text in ("Hello, Ada!", "alice waves at Ada 👋", "Please don't shout."):
        assert text in talk


def test_testing_your_bot(tmp_path: Path) -> None:
    ((_, code),) = blocks(section("Testing your bot"))
    project = tmp_path / "mybot"
    write_project(project)
    (project / "tests" / "test_from_readme.py").write_text(code, encoding="utf-8")
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=project,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "7 passed" in out.stdout  # the README's two tests and the project's five
