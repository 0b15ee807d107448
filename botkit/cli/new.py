"""``botkit new DIR``: a bot project of its own, outside the botkit checkout.

The files come from ``templates/new/`` (package data): a bot with a command and its
button, a before-send hook and a push handler, its tests, a ``Procfile``, what Heroku's
Python buildpack reads (``requirements.txt``, ``.python-version``), ``.env.example``,
``.gitignore`` and a short README.
"""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata, resources
from pathlib import Path

import click

from .common import CONTEXT, fail

__all__ = ["botkit_requirement", "new", "write_project"]

#: Where each file of the project comes from, under ``templates/new/``. Dotfiles are kept
#: without their dot there, so that packaging and tools see them as ordinary files.
FILES = {
    "bot.py": "bot.py.tmpl",
    "tests/test_bot.py": "tests/test_bot.py.tmpl",
    "Procfile": "Procfile.tmpl",
    "requirements.txt": "requirements.txt.tmpl",
    ".python-version": "python-version.tmpl",
    ".env.example": "env.example.tmpl",
    ".gitignore": "gitignore.tmpl",
    "pytest.ini": "pytest.ini.tmpl",
    "README.md": "README.md.tmpl",
}
#: The extras the ``worker:`` line needs (a huey queue on Redis).
EXTRAS = "huey,redis"


def _git(checkout: Path, *args: str) -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(checkout), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):  # no git on this machine
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def _git_url(remote: str) -> str:
    """``remote`` as a URL pip can clone, or "" for a local path or an unknown form."""
    if remote.startswith(("https://", "ssh://")):
        return "git+" + remote
    if remote.startswith("git@") and ":" in remote:  # scp-like: git@github.com:you/botkit
        host, _, path = remote.partition(":")
        return f"git+ssh://{host}/{path}"
    return ""


def botkit_requirement() -> tuple[str, str]:
    """The ``requirements.txt`` line that installs the botkit running this command, and
    where it points (for the file's comment).

    botkit is not on PyPI. From a git clone with a remote, the line names that remote at
    the checked-out commit, which Heroku can fetch as well; from any other checkout, its
    ``file://`` URL, which works on this machine only.
    """
    checkout = Path(__file__).resolve().parents[2]  # botkit/cli/new.py -> the checkout
    if not (checkout / "setup.py").is_file():
        version = metadata.version("botkit")
        return f"botkit[{EXTRAS}]=={version}", "an installed botkit, not a checkout"
    url = _git_url(_git(checkout, "remote", "get-url", "origin"))
    commit = _git(checkout, "rev-parse", "HEAD")
    if url and commit:
        return f"botkit[{EXTRAS}] @ {url}@{commit}", f"the git remote of {checkout}"
    return f"botkit[{EXTRAS}] @ {checkout.as_uri()}", f"the checkout at {checkout}"


def write_project(directory: Path, requirement: str | None = None) -> list[str]:
    """Write the project into ``directory`` (created; it must not hold anything yet).

    Returns the paths written, relative to ``directory``. Raises ``FileExistsError``
    when ``directory`` is a file or holds something already.
    """
    if directory.exists():
        if not directory.is_dir():
            raise FileExistsError(f"{directory} is a file")
        held = sorted(p.name for p in directory.iterdir())
        if held:
            shown = ", ".join(held[:5]) + (", ..." if len(held) > 5 else "")
            raise FileExistsError(f"{directory} is not empty (it holds {shown})")
    source = "the --botkit option"
    if requirement is None:
        requirement, source = botkit_requirement()
    values = {
        "project": directory.resolve().name,
        "botkit_requirement": requirement,
        "botkit_source": source,
        "python_version": f"{sys.version_info.major}.{sys.version_info.minor}",
    }
    templates = resources.files("botkit.cli").joinpath("templates", "new")
    directory.mkdir(parents=True, exist_ok=True)
    for target, name in FILES.items():
        text = templates.joinpath(*name.split("/")).read_text(encoding="utf-8")
        for key, value in values.items():
            text = text.replace("{{" + key + "}}", value)
        path = directory / target
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return list(FILES)


@click.command(context_settings=CONTEXT)
@click.argument("directory", type=click.Path(path_type=Path))
@click.option(
    "--botkit",
    "requirement",
    metavar="REQUIREMENT",
    help="The requirements.txt line that installs botkit, e.g. "
    "'botkit[huey,redis] @ git+https://github.com/you/botkit@main'. Default: the git "
    "remote of the checkout this botkit runs from, else its file:// path.",
)
def new(directory: Path, requirement: str | None) -> None:
    """Create a bot project in DIRECTORY (a new or empty folder).

    It holds bot.py (a /hello command with a button, a before-send hook, a push handler),
    its tests (they need no Stream credentials), a Procfile, requirements.txt and
    .python-version for Heroku, .env.example, .gitignore and a README. Keep the project
    outside your botkit clone, and do not run it from the folder that holds the clone: a
    folder named botkit there shadows the installed package.

    \b
    Examples:
      botkit new mybot && cd mybot
      botkit new mybot --botkit 'botkit[huey,redis] @ git+https://github.com/you/botkit@v0.1.0'
    """
    if requirement is None:
        default, _ = botkit_requirement()
        if " @ " not in default:  # not from a checkout: pip finds no such release
            click.echo(
                f"Warning: requirements.txt says {default!r}, but botkit is not on PyPI: "
                "pass --botkit with a git URL or the path of your botkit clone",
                err=True,
            )
    try:
        write_project(directory, requirement)
    except FileExistsError as exc:
        fail(f"{exc}: botkit new writes a new project; give it a new folder name")
    except OSError as exc:
        fail(f"cannot write the project into {directory}: {exc.strerror or exc}")
    echo = click.echo
    echo(f"Created {directory}/: bot.py, tests/test_bot.py, Procfile, requirements.txt,")
    echo("  .python-version, .env.example, .gitignore, pytest.ini, README.md")
    echo("Next:")
    echo(f"  cd {directory}")
    echo("  python -m pytest -q")
    echo("  BOTKIT_DEV=1 PORT=8001 gunicorn -c python:botkit.adapters.gunicorn_conf bot:app")
    echo('  botkit send "/hello Ada" --url http://127.0.0.1:8001   # in another terminal')
