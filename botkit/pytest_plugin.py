"""botkit's pytest plugin (registered through the ``pytest11`` entry point, so installing
botkit is enough).

Provide a ``bot`` fixture (in ``conftest.py`` or the test module) and use ``bot_client``::

    # conftest.py
    import pytest
    from mybot import bot as my_bot

    @pytest.fixture
    def bot():
        return my_bot

    # test_mybot.py
    def test_hello(bot_client):
        assert bot_client.command("/hello").text == "Hello, alice!"

Fixtures:

- ``bot_client``: a :class:`botkit.testing.TestClient` for your ``bot``: signed webhooks
  through the real app, a memory store, queued work run at once. Closed after the test.
- ``bot_payloads``: the payload factories of :mod:`botkit.testing` (``user``,
  ``channel``, ``message``, ``event_payload``...).

The render check: every reply a test client gets is checked against what Stream's
client shows (``reply.warnings``). What happens to a warning is set by::

    # pytest.ini
    [pytest]
    botkit_render_warnings = error     # error | warn (the default: listed) | ignore
    botkit_render_lines = current mml  # the client lines to check (default: current)

or ``pytest --botkit-render-warnings=error``, and per test or module with markers::

    pytestmark = pytest.mark.botkit_render_warnings("error", lines=["current", "mml"])

    @pytest.mark.botkit_render_allow(3, reason="the card text is meant to repeat")
    def test_card(bot_client): ...

A marker's mode wins over the command line, which wins over the ini file.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .core.render import LINES
from .testing import RENDER_MODES, TestClient, render_check

_MODE_HELP = "what a render warning does in a test: error, warn (default) or ignore"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("botkit_render_warnings", _MODE_HELP, default="warn")
    parser.addini(
        "botkit_render_lines",
        "the Stream client lines the render check covers: current (default), mml",
        type="args",
        default=["current"],
    )
    parser.getgroup("botkit").addoption(
        "--botkit-render-warnings",
        dest="botkit_render_warnings",
        choices=RENDER_MODES,
        default=None,
        help=_MODE_HELP + " (overrides the ini option)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "botkit_render_warnings(mode, lines=None): what botkit's render warnings do in "
        "this test (error, warn, ignore), for which client lines (current, mml)",
    )
    config.addinivalue_line(
        "markers",
        "botkit_render_allow(*rules, reason): let botkit's render warnings of these rule "
        "numbers through in this test; say why in reason",
    )
    _mode_and_lines(config, None)  # a bad ini value is a usage error before any test runs


def _mode_and_lines(config: pytest.Config, item: pytest.Item | None) -> tuple[str, list[str]]:
    mode = config.getoption("botkit_render_warnings") or config.getini("botkit_render_warnings")
    lines = list(config.getini("botkit_render_lines"))
    marker = item.get_closest_marker("botkit_render_warnings") if item is not None else None
    if marker is not None:
        if len(marker.args) != 1:
            raise pytest.UsageError("botkit_render_warnings takes one mode: error, warn, ignore")
        mode = marker.args[0]
        lines = list(marker.kwargs.get("lines") or lines)
    if mode not in RENDER_MODES:
        raise pytest.UsageError(
            f"botkit_render_warnings = {mode!r}: choose one of {', '.join(RENDER_MODES)}"
        )
    for line in lines:
        if line not in LINES:
            raise pytest.UsageError(
                f"botkit render lines: unknown client line {line!r} (choose from "
                f"{', '.join(LINES)})"
            )
    return str(mode), lines


@pytest.fixture(autouse=True)
def _botkit_render_check(request: pytest.FixtureRequest) -> Iterator[None]:
    """Applies the render check's mode, lines and allowed rules to this test's replies."""
    mode, lines = _mode_and_lines(request.config, request.node)
    allow: set[int] = set()
    for marker in request.node.iter_markers("botkit_render_allow"):
        if not marker.args or not marker.kwargs.get("reason"):
            raise pytest.UsageError(
                "botkit_render_allow needs the rule numbers and a reason, e.g. "
                '@pytest.mark.botkit_render_allow(1, reason="...")'
            )
        allow.update(int(rule) for rule in marker.args)
    with render_check(mode, lines, allow):
        yield


@pytest.fixture
def bot_client(request: pytest.FixtureRequest) -> Iterator[TestClient]:
    """A :class:`botkit.testing.TestClient` for the ``bot`` fixture you provide."""
    try:
        bot: Any = request.getfixturevalue("bot")
    except pytest.FixtureLookupError:
        raise pytest.UsageError(
            "bot_client needs a fixture named 'bot' that returns your botkit.Bot"
        ) from None
    from .core.bot import Bot

    if not isinstance(bot, Bot):
        raise pytest.UsageError(
            f"the 'bot' fixture must return a botkit.Bot, not {type(bot).__name__}"
        )
    client = TestClient(bot)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def bot_payloads() -> Any:
    """The payload factories of :mod:`botkit.testing` (user, channel, message, event...)."""
    from . import testing

    return testing
