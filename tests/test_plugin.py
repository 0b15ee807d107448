"""Tests for botkit.pytest_plugin: a bot author's test files, run through pytest."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

BOT_MODULE = '''
from botkit import Action, Attachment, Bot, CommandContext, Event, Message

bot = Bot()
greeted = []


@bot.command("hello")
def hello(ctx: CommandContext, name: str = "") -> Message:
    """Say hello."""
    return Message.ephemeral(
        f"Hello, {name or ctx.user_id}!",
        attachments=[
            Attachment(
                type="image",
                image_url="https://example.com/wave.png",
                actions=[Action.button("wave", "back", "Wave back")],
            )
        ],
        state={"greeted": name or ctx.user_id},
    )


@hello.action("wave", "back")
def wave_back(ctx: CommandContext) -> Message:
    return Message.publish(f"{ctx.user_id} waves at {ctx.state['greeted']}")


@bot.on("member.added")
def welcome(event: Event) -> None:
    greeted.append(event["member"]["user_id"])
'''

CONFTEST = """
import pytest
from mybot import bot as my_bot


@pytest.fixture
def bot():
    return my_bot
"""

TEST_FILE = """
import mybot


def test_hello(bot_client):
    reply = bot_client.command("/hello bob", user={"id": "alice"})
    assert reply.type == "ephemeral" and reply.text == "Hello, bob!"
    assert reply.click("Wave back").text == "alice waves at bob"


def test_usage(bot_client):
    assert bot_client.command("/hello a b c").text == "Hello, a b c!"
    assert bot_client.command("/help").text.startswith("Commands:")


def test_events(bot_client, bot_payloads):
    bot_client.event("member.added", member={"user_id": "zoe"}, user=bot_payloads.user("zoe"))
    assert mybot.greeted == ["zoe"]
"""


def test_an_authors_tests_pass_through_the_plugin(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(mybot=BOT_MODULE, conftest=CONFTEST, test_mybot=TEST_FILE)
    pytester.syspathinsert()
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)


def test_a_failing_conversation_is_reported(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        mybot=BOT_MODULE,
        conftest=CONFTEST,
        test_fail="""
def test_wrong(bot_client):
    assert bot_client.command("/hello").text == "Goodbye"
""",
    )
    pytester.syspathinsert()
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*AssertionError*", "*Hello, alice!*"])


def test_bot_client_needs_a_bot_fixture(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_nobot="""
def test_it(bot_client):
    pass
""",
        test_wrongbot="""
import pytest

@pytest.fixture
def bot():
    return "my bot"

def test_it(bot_client):
    pass
""",
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        [
            "*bot_client needs a fixture named 'bot' that returns your botkit.Bot*",
            "*the 'bot' fixture must return a botkit.Bot, not str*",
        ],
        consecutive=False,
    )


def test_the_plugin_is_registered_by_entry_point(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("-p", "no:cacheprovider", "--fixtures")
    result.stdout.fnmatch_lines(["*bot_client*", "*bot_payloads*"])
