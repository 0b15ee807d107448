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


# -- the render check ---------------------------------------------------------------------

RENDER_BOT = """
from botkit import Attachment, Bot, CommandContext, Message

bot = Bot()


@bot.command("pic")
def pic(ctx: CommandContext) -> Message:
    url = "data:image/svg+xml;base64,PHN2Zy8+" if ctx.args == "data" else "https://x.example/p.png"
    return Message.ephemeral(attachments=[Attachment(type="image", image_url=url)])


@bot.command("form")
def form(ctx: CommandContext) -> Message:
    return Message.ephemeral("Pick", mml='<mml name="f"><text>Pick</text><input name="q"/></mml>')
"""

RENDER_CONFTEST = """
import pytest
from renderbot import bot as render_bot


@pytest.fixture
def bot():
    return render_bot
"""

RENDER_TESTS = """
def test_good(bot_client):
    assert bot_client.command("/pic https").status == 200


def test_data_picture(bot_client):
    assert bot_client.command("/pic data").status == 200
"""


def render_project(pytester: pytest.Pytester, ini: str = "", **files: str) -> None:
    pytester.makepyfile(renderbot=RENDER_BOT, conftest=RENDER_CONFTEST, **files)
    if ini:
        pytester.makeini("[pytest]\n" + ini)
    pytester.syspathinsert()


def test_render_warnings_are_listed_by_default(pytester: pytest.Pytester) -> None:
    render_project(pytester, test_pics=RENDER_TESTS)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, warnings=1)
    result.stdout.fnmatch_lines(
        ["*RenderCheckWarning*", "*[[]current[]] attachments[[]0[]].image_url is a data: URL*"]
    )


@pytest.mark.parametrize("how", ["ini", "option"])
def test_render_warnings_can_fail_a_test(pytester: pytest.Pytester, how: str) -> None:
    if how == "ini":
        render_project(pytester, "botkit_render_warnings = error", test_pics=RENDER_TESTS)
        result = pytester.runpytest("-p", "no:cacheprovider")
    else:
        render_project(pytester, "botkit_render_warnings = ignore", test_pics=RENDER_TESTS)
        result = pytester.runpytest("-p", "no:cacheprovider", "--botkit-render-warnings=error")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*RenderCheckError: Stream's client will not show this reply as built:",
            "*[[]current[]] attachments[[]0[]].image_url is a data: URL*",
            '*@pytest.mark.botkit_render_allow(1, reason="...")*',
            "FAILED test_pics.py::test_data_picture*",
        ],
        consecutive=False,
    )


def test_render_warnings_ignored(pytester: pytest.Pytester) -> None:
    render_project(pytester, "botkit_render_warnings = ignore", test_pics=RENDER_TESTS)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    assert "RenderCheck" not in result.stdout.str()


def test_render_markers(pytester: pytest.Pytester) -> None:
    render_project(
        pytester,
        "botkit_render_warnings = ignore",
        test_markers="""
import pytest

pytestmark = pytest.mark.botkit_render_warnings("error")


@pytest.mark.botkit_render_allow(1, reason="the picture is checked elsewhere")
def test_allowed(bot_client):
    assert bot_client.command("/pic data").status == 200


def test_current_line_form(bot_client):
    bot_client.command("/form")


@pytest.mark.botkit_render_warnings("error", lines=["mml"])
def test_mml_line_form(bot_client):
    bot_client.command("/form")


@pytest.mark.botkit_render_warnings("warn")
def test_closest_marker_wins(bot_client):
    assert bot_client.command("/pic data").status == 200
""",
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-rA")
    result.assert_outcomes(passed=2, failed=2, warnings=1)
    result.stdout.fnmatch_lines(
        [
            "*[[]current[]] mml input 'q'*(rule 9, mml-only-input)*",
            "*[[]mml[]] text: the message text repeats the MML's text*(rule 8*",
            "FAILED test_markers.py::test_current_line_form*",
            "FAILED test_markers.py::test_mml_line_form*",
        ],
        consecutive=False,
    )


@pytest.mark.parametrize(
    ("ini", "test", "error"),
    [
        ("botkit_render_warnings = loud", "", "botkit_render_warnings = 'loud': choose one of"),
        ("botkit_render_lines = current v12", "", "unknown client line 'v12'"),
        (
            "",
            "@pytest.mark.botkit_render_allow(1)\ndef test_it(bot_client):\n    pass\n",
            "botkit_render_allow needs the rule numbers and a reason",
        ),
    ],
)
def test_render_settings_that_make_no_sense(
    pytester: pytest.Pytester, ini: str, test: str, error: str
) -> None:
    render_project(pytester, ini, test_bad="import pytest\n\n" + (test or "def test_it(): pass\n"))
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret != 0
    assert error in result.stdout.str() + result.stderr.str()
