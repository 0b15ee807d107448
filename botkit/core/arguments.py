"""Typed command arguments, read from the handler's signature.

Declare what a command takes as ordinary parameters after ``ctx``::

    @bot.command("remind")
    def remind(ctx, who: str, minutes: int, what: str = ""):
        \"\"\"Remind someone of something.

        Args:
            who: Who to remind, e.g. @bob.
            minutes: In how many minutes.
            what: What to remind them of.
        \"\"\"

``/remind @bob 10 "call mum"`` calls ``remind(ctx, "@bob", 10, "call mum")``. The text is
split on spaces; quotes (``"..."``, ``'...'``, ``“...”``) keep words together. The last
parameter, when it is a ``str``, takes the rest of the text as typed, so
``/remind @bob 10 call mum`` works too.

Supported annotations: ``str`` (also no annotation), ``int``, ``float``, ``bool``
(yes/no, true/false, on/off, 1/0), an :class:`enum.Enum` (a member's name or value,
any case), ``Literal["a", "b"]``, ``Optional[...]`` / ``X | None`` (``None`` when
left out), defaults, and ``list[X]`` or ``*rest: X`` for the remaining words.

Text that does not fit answers the user with a ``type: "error"`` message::

    Usage: /remind <who> <minutes> [what]
    minutes must be a whole number, not 'soon'.

Register ``@bot.errorhandler(ArgumentError)`` to answer differently. The raw text stays
in ``ctx.args``; the parsed values are also in ``ctx.params``.
"""

from __future__ import annotations

import enum
import inspect
import math
import re
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Union, get_args, get_origin

__all__ = ["ArgumentError", "Parameter", "Signature", "parse_docstring", "parse_signature"]

#: ``Parameter.default`` of a parameter the user must give.
REQUIRED: Any = inspect.Parameter.empty

_TRUE = frozenset({"yes", "true", "on", "1"})
_FALSE = frozenset({"no", "false", "off", "0"})
#: Opening quote -> closing quote.
_QUOTES = {'"': '"', "'": "'", "“": "”", "‘": "’", "„": "“"}
_SUPPORTED = (
    "str, int, float, bool, an Enum, Literal[...], Optional[...] or list[...] "
    "(or *rest for the remaining words)"
)


class ArgumentError(ValueError):
    """The text after a command does not fit the handler's parameters.

    ``problem`` says what was wrong (``"minutes must be a whole number, not 'soon'."``),
    ``usage`` is the usage line (``"/remind <who> <minutes> [what]"``) and ``param`` the
    parameter at fault, if any. Unless you register ``@bot.errorhandler(ArgumentError)``
    (or on the command), the user gets ``Message.error(error.describe())``.
    """

    def __init__(self, problem: str, *, usage: str = "", param: str | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.usage = usage
        self.param = param

    def describe(self) -> str:
        """``"Usage: /remind <who> <minutes> [what]\\n<what was wrong>"``."""
        return f"Usage: {self.usage}\n{self.problem}" if self.usage else self.problem


# -- docstrings ------------------------------------------------------------------------------

_ARGS_HEADERS = frozenset({"args", "arguments", "parameters", "params"})
_OTHER_HEADERS = frozenset(
    {
        "returns", "return", "raises", "yields", "examples", "example", "note", "notes",
        "see also", "warning", "warnings", "attributes", "todo", "references",
    }
)  # fmt: skip
_ENTRY = re.compile(r"^\*{0,2}(?P<name>\w+)\s*(?:\([^)]*\))?\s*:\s*(?P<text>.*)$")
_SPHINX = re.compile(r"^:param\s+(?:[^:]*\s)?(?P<name>\w+)\s*:\s*(?P<text>.*)$")


@dataclass(frozen=True)
class Docstring:
    """A handler's docstring, split the way ``/help`` shows it."""

    summary: str = ""
    body: str = ""
    params: Mapping[str, str] = field(default_factory=dict)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def parse_docstring(doc: str | None) -> Docstring:
    """Split a docstring into its first line, the text before any section, and the
    parameter help of a Google-style ``Args:`` section (or Sphinx ``:param x:`` lines)."""
    lines = inspect.cleandoc(doc or "").splitlines()
    summary = lines[0].strip() if lines else ""
    body: list[str] = []
    params: dict[str, str] = {}
    in_body = True
    i = 1
    while i < len(lines):
        line = lines[i]
        header = line.strip().rstrip(":").lower()
        sphinx = _SPHINX.match(line.strip())
        if sphinx:
            in_body = False
            params[sphinx["name"]] = sphinx["text"].strip()
            i += 1
            while i < len(lines) and lines[i].strip() and _indent(lines[i]) > _indent(line):
                params[sphinx["name"]] += " " + lines[i].strip()
                i += 1
            continue
        if line.strip().endswith(":") and header in _ARGS_HEADERS | _OTHER_HEADERS:
            in_body = False
            base = _indent(line)
            i += 1
            entry_indent: int | None = None
            name: str | None = None
            while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > base):
                text = lines[i]
                if header in _ARGS_HEADERS and text.strip():
                    match = _ENTRY.match(text.strip())
                    if entry_indent is None:
                        entry_indent = _indent(text)
                    if match and _indent(text) == entry_indent:
                        name = match["name"]
                        params[name] = match["text"].strip()
                    elif name is not None:
                        params[name] = (params[name] + " " + text.strip()).strip()
                i += 1
            continue
        if in_body:
            body.append(line)
        i += 1
    return Docstring(summary, "\n".join(body).strip(), params)


# -- splitting the text ----------------------------------------------------------------------


class _Reader:
    """Reads words (quoted or not) off the text after a command, one at a time."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def _skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def at_end(self) -> bool:
        self._skip_space()
        return self.pos >= len(self.text)

    def word(self) -> str:
        """The next word; a quoted word runs to its closing quote (then a space or the end)."""
        self._skip_space()
        text, start = self.text, self.pos
        opening = text[start]
        if opening not in _QUOTES:
            end = start
            while end < len(text) and not text[end].isspace():
                end += 1
            self.pos = end
            return text[start:end]
        closing = _QUOTES[opening]
        out: list[str] = []
        i = start + 1
        while i < len(text):
            c = text[i]
            if c == "\\" and i + 1 < len(text) and text[i + 1] in (closing, "\\"):
                out.append(text[i + 1])
                i += 2
                continue
            if c == closing and (i + 1 == len(text) or text[i + 1].isspace()):
                self.pos = i + 1
                return "".join(out)
            out.append(c)
            i += 1
        snippet = text[start : start + 20] + ("…" if len(text) - start > 20 else "")
        raise ArgumentError(
            f"A quote is never closed: {snippet}. Close it, or leave the quotes out."
        )

    def rest(self) -> str:
        """Everything left, as typed; a single quoted word loses its quotes.

        Quotes inside the text (``don't``, ``say "hi"``) are kept as typed; a quote that
        opens the rest must be closed.
        """
        self._skip_space()
        remaining = self.text[self.pos :].rstrip()
        self.pos = len(self.text)
        if remaining[:1] in _QUOTES:
            probe = _Reader(remaining)
            word = probe.word()  # a quote opened here must be closed
            if probe.at_end():
                return word
        return remaining


# -- parameters ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Parameter:
    """One typed parameter of a command, as botkit parses it and ``/help`` shows it."""

    name: str
    convert: Callable[[str], Any]
    #: What the user must type, for messages: "a whole number", "yes or no", ...
    expects: str
    default: Any = REQUIRED
    #: Takes every remaining word (``list[X]`` or ``*rest``).
    many: bool = False
    #: A ``*rest`` parameter (passed as separate positional arguments).
    variadic: bool = False
    #: The last ``str`` parameter: takes the rest of the text as typed.
    greedy: bool = False
    choices: tuple[str, ...] = ()
    help: str = ""

    @property
    def required(self) -> bool:
        return self.default is REQUIRED and not self.variadic

    @property
    def usage(self) -> str:
        """``<who>``, ``[what]``, ``<level: low|high>``, ``[tags...]``."""
        label = self.name
        if self.choices:
            label += ": " + "|".join(self.choices)
        if self.many:
            label += "..."
        return f"<{label}>" if self.required else f"[{label}]"

    def parse(self, word: str) -> Any:
        try:
            return self.convert(word)
        except (ValueError, KeyError):
            problem = (
                f"{self.name}: {word!r} is not {self.expects}."
                if self.many
                else f"{self.name} must be {self.expects}, not {word!r}."
            )
            raise ArgumentError(problem, param=self.name) from None


def _int(word: str) -> int:
    if not re.fullmatch(r"[+-]?\d+", word):
        raise ValueError(word)
    return int(word)


def _float(word: str) -> float:
    value = float(word.replace(",", "."))
    if not math.isfinite(value):
        raise ValueError(word)
    return value


def _bool(word: str) -> bool:
    folded = word.casefold()
    if folded in _TRUE:
        return True
    if folded in _FALSE:
        return False
    raise ValueError(word)


def _enum_converter(
    tp: type[enum.Enum],
) -> tuple[Callable[[str], Any], tuple[str, ...]]:
    members = list(tp)
    if not members:
        raise ValueError("it has no members")
    labels = tuple(m.value if isinstance(m.value, str) else m.name.lower() for m in members)
    lookup: dict[str, enum.Enum] = {}
    for member, label in zip(members, labels, strict=True):
        for key in (member.name, str(member.value), label):
            lookup.setdefault(key.casefold(), member)

    def convert(word: str) -> enum.Enum:
        return lookup[word.casefold()]

    return convert, labels


def _literal_converter(values: tuple[Any, ...]) -> tuple[Callable[[str], Any], tuple[str, ...]]:
    if not all(isinstance(v, str | int) and not isinstance(v, bool) for v in values):
        raise ValueError("only Literal[...] of strings or integers can be typed")
    labels = tuple(str(v) for v in values)
    lookup = {label.casefold(): v for label, v in zip(labels, values, strict=True)}

    def convert(word: str) -> Any:
        return lookup[word.casefold()]

    return convert, labels


def _scalar(tp: Any) -> tuple[Callable[[str], Any], str, tuple[str, ...]]:
    """(convert, what the user must type, choices) for one word of type ``tp``."""
    if tp is inspect.Parameter.empty or tp is str or tp is Any:
        return str, "text", ()
    if tp is bool:
        return _bool, "yes or no", ()
    if tp is int:
        return _int, "a whole number", ()
    if tp is float:
        return _float, "a number", ()
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        convert, labels = _enum_converter(tp)
        return convert, "one of " + ", ".join(labels), labels
    if get_origin(tp) is Literal:
        convert, labels = _literal_converter(get_args(tp))
        return convert, "one of " + ", ".join(labels), labels
    raise ValueError("botkit cannot read that type from text")


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    if get_origin(tp) in (Union, types.UnionType):
        args = get_args(tp)
        others = [a for a in args if a is not type(None)]
        if len(others) == 1 and len(others) < len(args):
            return others[0], True
        raise ValueError("a union other than Optional[X] cannot be read from text")
    return tp, False


def _type_name(tp: Any) -> str:
    if isinstance(tp, str):
        return tp
    if isinstance(tp, type) and get_origin(tp) is None:
        return tp.__qualname__
    return repr(tp).replace("typing.", "")


def _resolve(annotation: Any, func: Callable[..., Any]) -> Any:
    if not isinstance(annotation, str):
        return annotation
    target = inspect.unwrap(func)
    namespace = dict(getattr(target, "__globals__", {}))
    try:
        return eval(annotation, namespace)  # the same lookup typing.get_type_hints does
    except Exception as exc:
        raise NameError(
            f"cannot resolve the annotation {annotation!r} ({exc}); define the type at "
            "module level and import it at run time, not only under TYPE_CHECKING"
        ) from None


@dataclass(frozen=True)
class Signature:
    """The typed parameters of a command handler, after ``ctx``."""

    command: str
    parameters: tuple[Parameter, ...]

    @property
    def usage(self) -> str:
        """``<who> <minutes> [what]``: the ``args`` hint Stream shows while typing."""
        return " ".join(p.usage for p in self.parameters)

    def usage_line(self) -> str:
        """``/remind <who> <minutes> [what]``."""
        return f"/{self.command} {self.usage}".rstrip()

    def parse(self, text: str) -> tuple[list[Any], dict[str, Any]]:
        """The positional arguments to call the handler with (after ``ctx``), and the
        values by name. Raises :class:`ArgumentError` with the usage line."""
        try:
            return self._parse(text or "")
        except ArgumentError as exc:
            exc.usage = self.usage_line()
            raise

    def _parse(self, text: str) -> tuple[list[Any], dict[str, Any]]:
        reader = _Reader(text)
        call: list[Any] = []
        values: dict[str, Any] = {}
        for param in self.parameters:
            if param.many:
                words = []
                while not reader.at_end():
                    words.append(reader.word())
                if not words and param.required:
                    raise ArgumentError(f"Missing {param.name}.", param=param.name)
                items = [param.parse(w) for w in words]
                value: Any = items if words or param.variadic else param.default
                values[param.name] = value
                if param.variadic:
                    call.extend(items)
                else:
                    call.append(value)
                continue
            if reader.at_end():
                if param.required:
                    kind = "" if param.expects == "text" else f" ({param.expects})"
                    raise ArgumentError(f"Missing {param.name}{kind}.", param=param.name)
                value = param.default
            elif param.greedy:
                value = reader.rest()
            else:
                value = param.parse(reader.word())
            values[param.name] = value
            call.append(value)
        if not reader.at_end():
            extra = reader.text[reader.pos :].strip()
            hint = " Put text with spaces in quotes." if self.parameters else ""
            raise ArgumentError(f"Too many arguments: {extra!r}.{hint}")
        return call, values


def parse_signature(func: Callable[..., Any], command: str) -> Signature | None:
    """Read the typed parameters after ``ctx`` from ``func``'s signature and docstring.

    Returns None for a handler that takes only ``ctx`` (it gets called as ``func(ctx)``).
    Raises ``TypeError`` naming the parameter for anything botkit cannot parse, so a
    mistake shows at registration, not on the first call.
    """
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return None
    params = list(sig.parameters.values())
    if not params:
        raise TypeError(f"/{command}: the handler must take the context: def {command}(ctx)")
    if params[0].kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
        return None
    if params[0].kind is inspect.Parameter.KEYWORD_ONLY:
        raise TypeError(f"/{command}: the first parameter must take the context (ctx)")
    rest = params[1:]
    if not rest:
        return None
    docs = parse_docstring(inspect.getdoc(func)).params
    typed = [
        p for p in rest if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
    ]
    for p in rest:
        if p.kind is p.KEYWORD_ONLY and p.default is p.empty:
            raise TypeError(
                f"/{command}: keyword-only parameter {p.name!r} needs a default; botkit "
                "fills only the parameters before '*' from the text"
            )
    built: list[Parameter] = []
    for index, p in enumerate(typed):
        last = index == len(typed) - 1
        try:
            built.append(_parameter(p, _resolve(p.annotation, func), last, docs.get(p.name, "")))
        except (ValueError, NameError) as exc:
            shown = p.annotation if isinstance(p.annotation, str) else _type_name(p.annotation)
            raise TypeError(
                f"/{command}: parameter {p.name!r} is annotated {shown}: {exc}. Use {_SUPPORTED}."
            ) from None
    for param in built[:-1]:
        if param.many:
            raise TypeError(
                f"/{command}: list parameter {param.name!r} takes every remaining word, so it "
                "must be the last parameter"
            )
    return Signature(command, tuple(built))


def _parameter(p: inspect.Parameter, tp: Any, last: bool, help: str) -> Parameter:
    default = p.default
    tp, optional = _strip_optional(tp)
    if optional and default is p.empty:
        default = None
    many = variadic = False
    if p.kind is p.VAR_POSITIONAL:
        many = variadic = True
    elif tp is list or get_origin(tp) is list:
        many = True
        inner = get_args(tp)
        tp = inner[0] if inner else str
    convert, expects, choices = _scalar(tp)
    greedy = last and not many and convert is str
    return Parameter(
        name=p.name,
        convert=convert,
        expects=expects,
        default=default,
        many=many,
        variadic=variadic,
        greedy=greedy,
        choices=choices,
        help=help,
    )
