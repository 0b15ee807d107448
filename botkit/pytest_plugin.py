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
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .testing import TestClient


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
