"""Tests for botkit.core.arguments: typed command arguments parsed from the handler's signature."""

from __future__ import annotations

import enum
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal, Optional

import pytest

from botkit import ArgumentError, Bot, CommandContext, Message
from botkit.core.arguments import parse_docstring, parse_signature
from botkit.testing import TestClient

if TYPE_CHECKING:
    from datetime import datetime


class Priority(enum.Enum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"


class Empty(enum.Enum):
    pass


class Level(enum.IntEnum):
    QUIET = 1
    LOUD = 2


bot = Bot()
seen: dict[str, Any] = {}


@bot.command("remind")
def remind(ctx: CommandContext, who: str, minutes: int, what: str = "") -> Message:
    """Remind someone of something.

    Args:
        who: Who to remind.
        minutes: In how many minutes.
        what: What to remind them of.
    """
    seen["remind"] = (who, minutes, what, ctx.args, ctx.params)
    return Message.ephemeral(f"{who}|{minutes}|{what}")


@bot.command("types")
def types_(
    ctx: CommandContext,
    ratio: float,
    loud: bool,
    priority: Priority,
    level: Level,
    mode: Literal["fast", "slow"],
    limit: Optional[int] = None,  # noqa: UP045 (Optional[...] must work too)
    retries: int | None = 3,
) -> str:
    seen["types"] = (ratio, loud, priority, level, mode, limit, retries)
    return "ok"


@bot.command("tag")
def tag(ctx: CommandContext, item: str, tags: list[str]) -> str:
    seen["tag"] = (item, tags)
    return "ok"


@bot.command("sum")
def sum_(ctx: CommandContext, *numbers: int) -> str:
    seen["sum"] = numbers
    return str(sum(numbers))


@bot.command("pick")
def pick(ctx: CommandContext, choice: Priority = Priority.NORMAL) -> str:
    return choice.value


@bot.command("echo")
def echo(ctx: CommandContext) -> str:
    """Takes only ctx: called exactly as before."""
    return f"raw:{ctx.args}"


@bot.command("quoted", args="<a> <b>")
def quoted(ctx: CommandContext, a: int, b: int) -> str:
    return str(a + b)


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with bot.test_client() as c:
        yield c


def test_positional_and_default(client: TestClient) -> None:
    reply = client.command("/remind @bob 10")
    assert reply.type == "ephemeral" and reply.text == "@bob|10|"
    assert seen["remind"][3] == "@bob 10"  # the raw text stays in ctx.args
    assert seen["remind"][4] == {"who": "@bob", "minutes": 10, "what": ""}


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ('/remind @bob 10 "call mum"', "call mum"),
        ("/remind @bob 10 call mum", "call mum"),  # the last str takes the rest
        ("/remind @bob 10 don't   forget", "don't   forget"),  # as typed
        ("/remind @bob 10 'call mum'", "call mum"),
        ("/remind @bob 10 “call mum”", "call mum"),
        ('/remind @bob 10 "a" b', '"a" b'),
        ('/remind @bob 10 say "hi', 'say "hi'),
        ('/remind "@bob smith" 10 x', "x"),
    ],
)
def test_quoting(client: TestClient, text: str, what: str) -> None:
    assert client.command(text).type == "ephemeral"
    assert seen["remind"][2] == what


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("/remind", "Missing who."),
        ("/remind @bob", "Missing minutes (a whole number)."),
        ("/remind @bob ten", "minutes must be a whole number, not 'ten'."),
        ("/remind @bob 1.5", "minutes must be a whole number, not '1.5'."),
        ('/remind "@bob 10 x', "A quote is never closed"),
        ('/remind @bob 10 "call mum', 'A quote is never closed: "call mum.'),
    ],
)
def test_bad_arguments_answer_with_usage(client: TestClient, text: str, problem: str) -> None:
    reply = client.command(text)
    assert reply.status == 200
    assert reply.type == "error"
    usage, _, detail = (reply.text or "").partition("\n")
    assert usage == "Usage: /remind <who> <minutes> [what]"
    assert detail.startswith(problem)


def test_types(client: TestClient) -> None:
    assert client.command("/types 1.5 yes HIGH loud FAST").text == "ok"
    assert seen["types"] == (1.5, True, Priority.HIGH, Level.LOUD, "fast", None, 3)
    assert client.command("/types 2,5 off normal 1 slow 7 0").text == "ok"
    assert seen["types"] == (2.5, False, Priority.NORMAL, Level.QUIET, "slow", 7, 0)


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        ("x yes low 1 fast", "ratio must be a number, not 'x'."),
        ("nan yes low 1 fast", "ratio must be a number, not 'nan'."),
        ("1 maybe low 1 fast", "loud must be yes or no, not 'maybe'."),
        ("1 on urgent 1 fast", "priority must be one of low, normal, high, not 'urgent'."),
        ("1 on low 3 fast", "level must be one of quiet, loud, not '3'."),
        ("1 on low 1 medium", "mode must be one of fast, slow, not 'medium'."),
        ("1 on low 1 fast 2 3 4", "Too many arguments: '4'."),
    ],
)
def test_type_errors(client: TestClient, args: str, problem: str) -> None:
    reply = client.command(f"/types {args}")
    assert reply.type == "error"
    assert (reply.text or "").splitlines()[1].startswith(problem)


def test_usage_lists_choices() -> None:
    assert types_.args == (
        "<ratio> <loud> <priority: low|normal|high> <level: quiet|loud> "
        "<mode: fast|slow> [limit] [retries]"
    )
    assert pick.args == "[choice: low|normal|high]"


def test_remainders(client: TestClient) -> None:
    assert client.command('/tag laptop urgent "needs repair"').text == "ok"
    assert seen["tag"] == ("laptop", ["urgent", "needs repair"])
    reply = client.command("/tag laptop")
    assert reply.type == "error" and "Missing tags." in (reply.text or "")
    assert client.command("/sum 1 2 3").text == "6"
    assert seen["sum"] == (1, 2, 3)
    assert client.command("/sum").text == "0"
    reply = client.command("/sum 1 two")
    assert reply.text == "Usage: /sum [numbers...]\nnumbers: 'two' is not a whole number."
    assert tag.args == "<item> <tags...>"


def test_enum_default_and_case(client: TestClient) -> None:
    assert client.command("/pick").text == "normal"
    assert client.command("/pick High").text == "high"


def test_ctx_only_handlers_are_unchanged(client: TestClient) -> None:
    reply = client.command('/echo anything "goes here')
    assert reply.text == 'raw:anything "goes here'
    assert echo.signature is None and echo.args == ""


def test_given_args_win_for_usage(client: TestClient) -> None:
    assert quoted.args == "<a> <b>"
    assert (
        client.command("/quoted 1 x").text
        == "Usage: /quoted <a> <b>\nb must be a whole number, not 'x'."
    )


def test_direct_calls_keep_working() -> None:
    ctx = CommandContext(bot=bot, message={}, user={"id": "a"}, command="remind")
    assert remind(ctx, "@x", 1, "y").text == "@x|1|y"


def test_argument_error_handler_decides() -> None:
    own = Bot()

    @own.command("add")
    def add(ctx: CommandContext, a: int, b: int) -> str:
        return str(a + b)

    @own.errorhandler(ArgumentError)
    def explain(ctx: CommandContext, error: ArgumentError) -> Message:
        return Message.ephemeral(f"Try /add 1 2 ({error.param}: {error.problem})")

    with own.test_client() as client:
        reply = client.command("/add 1 x")
    assert reply.type == "ephemeral"
    assert reply.text == "Try /add 1 2 (b: b must be a whole number, not 'x'.)"


def test_command_error_handler_for_argument_error() -> None:
    own = Bot()

    @own.command("add")
    def add(ctx: CommandContext, a: int) -> str:
        return str(int("x")) if a == 0 else str(a)

    @add.errorhandler(ValueError)  # for the handler's own errors, not the usage error
    def explain(ctx: CommandContext, error: ValueError) -> str:
        return "handler failed"

    @own.command("sub")
    def sub(ctx: CommandContext, a: int) -> str:
        return str(-a)

    @sub.errorhandler(ArgumentError)
    def usage(ctx: CommandContext, error: ArgumentError) -> str:
        return f"usage: {error.usage}"

    with own.test_client() as client:
        assert (
            client.command("/add x").text == "Usage: /add <a>\na must be a whole number, not 'x'."
        )
        assert client.command("/add 0").text == "handler failed"
        assert client.command("/sub x").text == "usage: /sub <a>"


# -- registration ----------------------------------------------------------------------------


def _weird(ctx: CommandContext, when: datetime) -> None: ...


def test_bad_annotations_fail_at_registration() -> None:
    own = Bot()

    def dates(ctx: CommandContext, when: dict[str, int]) -> None: ...

    with pytest.raises(TypeError, match=r"/dates: parameter 'when' is annotated dict\[str, int\]"):
        own.add_command(dates, "dates")

    def union(ctx: CommandContext, x: int | str) -> None: ...

    with pytest.raises(TypeError, match="a union other than Optional"):
        own.add_command(union, "union")

    with pytest.raises(TypeError, match="cannot resolve the annotation 'datetime'"):
        own.add_command(_weird, "weird")

    def early(ctx: CommandContext, items: list[str], last: str) -> None: ...

    with pytest.raises(TypeError, match="must be the last parameter"):
        own.add_command(early, "early")

    def kwonly(ctx: CommandContext, *, flag: bool) -> None: ...

    with pytest.raises(TypeError, match="keyword-only parameter 'flag' needs a default"):
        own.add_command(kwonly, "kwonly")

    def nothing() -> None: ...

    with pytest.raises(TypeError, match="must take the context"):
        own.add_command(nothing, "nothing")

    def empty(ctx: CommandContext, e: Empty) -> None: ...

    with pytest.raises(TypeError, match="it has no members"):
        own.add_command(empty, "empty")
    assert set(own.commands) == {"help"}


def test_wrappers_and_keyword_defaults() -> None:
    def generic(*args: Any, **kwargs: Any) -> None: ...

    assert parse_signature(generic, "g") is None

    def with_kw(ctx: CommandContext, n: int, *, debug: bool = False) -> None: ...

    sig = parse_signature(with_kw, "kw")
    assert sig is not None and [p.name for p in sig.parameters] == ["n"]
    assert sig.parse("5") == ([5], {"n": 5})


def test_parse_docstring() -> None:
    doc = parse_docstring(
        """Summary line.

        Longer text,
        two lines.

        Args:
            who (str): The person.
            minutes: How long,
                in minutes.

        Returns:
            nothing: not a parameter.
        """
    )
    assert doc.summary == "Summary line."
    assert doc.body == "Longer text,\ntwo lines."
    assert doc.params == {"who": "The person.", "minutes": "How long, in minutes."}
    sphinx = parse_docstring("Do it.\n\n:param int n: how many\n    times.\n:returns: x")
    assert sphinx.params == {"n": "how many times."}
    assert parse_docstring(None).summary == ""
    assert remind.signature is not None
    assert [p.help for p in remind.signature.parameters] == [
        "Who to remind.",
        "In how many minutes.",
        "What to remind them of.",
    ]


def test_argument_error_describe() -> None:
    error = ArgumentError("x is wrong.", usage="/cmd <x>", param="x")
    assert error.describe() == "Usage: /cmd <x>\nx is wrong."
    assert ArgumentError("plain").describe() == "plain"
