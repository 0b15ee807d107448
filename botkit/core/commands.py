"""A custom command: its metadata for Stream, its handler and its action routes."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar

from .arguments import ArgumentError, Signature, parse_signature
from .context import ClickedAction, CommandContext
from .messages import Message
from .setup import setupmethod

if TYPE_CHECKING:
    from .bot import Registry

if TYPE_CHECKING:
    from .bot import Bot

__all__ = [
    "RESERVED_NAMES",
    "Command",
    "SetupError",
    "check_command_name",
    "find_error_handler",
]

P = ParamSpec("P")
R = TypeVar("R")
F = TypeVar("F", bound=Callable[..., Any])

#: Names Stream keeps for its built-in commands; a custom command cannot use them.
RESERVED_NAMES = frozenset({"giphy", "ban", "unban", "mute", "unmute", "flag", "imgur"})


class SetupError(RuntimeError):
    """Registration that came too late (after the first webhook), or twice."""


def check_command_name(name: str) -> None:
    """Raise ``ValueError`` for a name Stream would refuse."""
    if not isinstance(name, str) or not name:
        raise ValueError("A command needs a name, e.g. @bot.command('gif')")
    if any(c.isspace() for c in name):
        raise ValueError(f"Command name {name!r} has a space; Stream refuses such names")
    if name.startswith("/"):
        raise ValueError(f"Command name {name!r}: leave out the leading '/'")
    if len(name) > 255:
        raise ValueError(f"Command name {name[:20]!r}... is longer than 255 characters")
    if name in RESERVED_NAMES:
        raise ValueError(
            f"{name!r} is one of Stream's built-in commands and cannot be a custom command; "
            f"pick another name (e.g. 'gif' instead of 'giphy')"
        )


@dataclass(frozen=True)
class Route:
    """A function that handles some clicks or form submits of a command."""

    func: Callable[..., Any]
    name: str | None = None  # form_data key (None for a form route)
    value: str | None = None  # form_data value (None: any value)
    mml_name: str | None = None
    schema: Any = None

    def matches(self, form_data: Mapping[str, str]) -> bool:
        if self.mml_name is not None:
            return form_data.get("mml_name") == self.mml_name
        if self.name is None or self.name not in form_data:
            return False
        return self.value is None or form_data[self.name] == self.value


def clicked(form_data: Mapping[str, str], routes: list[Route]) -> ClickedAction | None:
    """Which button a ``form_data`` names: a routed name, ``action``, or the only key."""
    keys = [k for k in form_data if k != "mml_name"]
    for route in routes:
        if route.name is not None and route.name in form_data:
            return ClickedAction(route.name, form_data[route.name])
    if "action" in form_data:
        return ClickedAction("action", form_data["action"])
    if len(keys) == 1:
        return ClickedAction(keys[0], form_data[keys[0]])
    return None


class Command(Generic[P, R]):
    """A registered command. Calls like the function it wraps.

    Use it to route clicks::

        @bot.command("gif")
        def gif(ctx): ...

        @gif.action("image_action", "shuffle")
        def shuffle(ctx): ...

    Parameters after ``ctx`` are read from the text after the command
    (see :mod:`botkit.arguments`): ``def remind(ctx, who: str, minutes: int)``. Their
    types are checked here, at registration; ``signature`` holds the result (None for a
    handler that takes only ``ctx``).
    """

    func: Callable[P, R]
    description: str
    args: str
    set: str
    budget_ms: float | None
    placeholder: Callable[[CommandContext], Any] | str | None

    def __init__(
        self,
        func: Callable[P, R],
        name: str,
        *,
        description: str | None = None,
        args: str | None = None,
        set: str | None = None,
        budget_ms: float | None = None,
        placeholder: Callable[[CommandContext], Any] | str | None = None,
    ) -> None:
        check_command_name(name)
        if not callable(func):
            raise TypeError(f"@command({name!r}) must decorate a function")
        original: Command[Any, Any] | None = func if isinstance(func, Command) else None
        if original is not None:
            # Another name for a command (stacked decorators, or add_command(cmd, "alias")):
            # the same handler, and what is not given is the original's.
            func = original.func
            description = original.description if description is None else description
            args = original.args if args is None else args
            set = set or original.set
            budget_ms = original.budget_ms if budget_ms is None else budget_ms
            placeholder = original.placeholder if placeholder is None else placeholder
        self.func = func
        self.name = name
        self.signature: Signature | None = parse_signature(func, name)
        doc = inspect.getdoc(func) or ""
        self.description = description if description is not None else doc.partition("\n")[0]
        self.help = doc
        if args is None:
            args = self.signature.usage if self.signature is not None else ""
        self.args = args
        self.set = set or ""
        self.budget_ms = budget_ms
        self.placeholder = placeholder
        self.routes: list[Route] = []
        self.checks: list[Callable[[CommandContext], Any]] = []
        self.error_handlers: dict[type[BaseException], Callable[..., Any]] = {}
        if original is not None:  # shared: an action or check added to either is on both
            self.routes, self.checks = original.routes, original.checks
            self.error_handlers = original.error_handlers
        #: The bots and groups serving this command (set by ``add_command`` and ``include``).
        self.bots: list[Registry] = []
        # The function's name and docstring, not its __dict__: a Command's would bring
        # along its name, routes and bots.
        functools.update_wrapper(self, func, updated=())

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.func(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<Command /{self.name}>"

    def _check_setup_finished(self, f_name: str) -> None:
        if any(bot.started for bot in self.bots):
            raise SetupError(
                f"Cannot add to /{self.name} with {f_name}(): the bot has already handled "
                "a webhook. Register every route at import time."
            )

    def action(
        self, name: str, value: str | None = None, *, schema: Any = None
    ) -> Callable[[F], F]:
        """Route clicks that send ``form_data[name] == value`` (any value if None)."""

        def decorator(func: F) -> F:
            self.add_action(func, name, value, schema=schema)
            return func

        return decorator

    @setupmethod
    def add_action(
        self, func: Callable[..., Any], name: str, value: str | None = None, *, schema: Any = None
    ) -> None:
        if not name:
            raise ValueError(f"/{self.name}: an action route needs the button's name")
        for route in self.routes:
            if route.name == name and route.value == value:
                raise ValueError(f"/{self.name}: action {name}={value} is routed twice")
        self.routes.append(Route(func, name=name, value=value, schema=schema))

    @setupmethod
    def form(self, mml_name: str, *, schema: Any = None) -> Callable[[F], F]:
        """Route submits of the MML form ``<mml name="mml_name">`` of this command."""

        def decorator(func: F) -> F:
            if not mml_name:
                raise ValueError(f"/{self.name}: a form route needs the form's name")
            self.routes.insert(0, Route(func, mml_name=mml_name, schema=schema))
            return func

        return decorator

    @setupmethod
    def check(self, func: F) -> F:
        """Run ``func(ctx)`` before every call; a returned message refuses the call."""
        self.checks.append(func)
        return func

    @setupmethod
    def errorhandler(self, exc_type: type[BaseException]) -> Callable[[F], F]:
        """Turn ``exc_type`` raised by this command into a reply: ``func(ctx, exc)``."""

        def decorator(func: F) -> F:
            self.error_handlers[exc_type] = func
            return func

        return decorator

    def route(self, form_data: Mapping[str, str] | None) -> Route | None:
        """The route a click goes to, or None for the command function itself."""
        if not form_data:
            return None
        for route in self.routes:
            if route.matches(form_data):
                return route
        return None

    @property
    def usage(self) -> str:
        """``/remind <who> <minutes> [what]``: the command and its ``args`` hint."""
        return f"/{self.name} {self.args}".rstrip()

    def invoke(self, ctx: CommandContext) -> Any:
        """Call the handler for ``ctx`` (the command function itself, not a route).

        Typed parameters are parsed from ``ctx.args`` first and also stored in
        ``ctx.params``. Text that does not fit answers with ``Message.error`` holding the
        usage line, or raises :class:`~botkit.arguments.ArgumentError` when an error
        handler for it is registered.
        """
        func: Callable[..., Any] = self.func
        if self.signature is None:
            return func(ctx)
        try:
            call, values = self.signature.parse(ctx.args)
        except ArgumentError as exc:
            exc.usage = self.usage  # the author's ``args`` text, if given
            if find_error_handler(self, ctx.bot, type(exc), ArgumentError) is not None:
                raise
            return Message.error(exc.describe())
        ctx.params = values
        return func(ctx, *call)

    def describe(self) -> dict[str, str]:
        """The command as Stream's ``POST /commands`` takes it."""
        return {
            "name": self.name,
            "description": self.description,
            "args": self.args,
            "set": self.set,
        }


def find_error_handler(
    cmd: Command[Any, Any] | None,
    bot: Bot,
    exc_type: type[BaseException],
    within: type[BaseException] = BaseException,
) -> Callable[..., Any] | None:
    """The error handler for ``exc_type``: the command's own first, then the bot's, each
    for the exception's class or its nearest base class.

    Only classes that are ``within`` count: a handler for ``ValueError`` (an
    ``ArgumentError``'s base) is for the handler's own errors, not for usage errors.
    """
    for table in (cmd.error_handlers if cmd is not None else {}, bot.error_handlers):
        if table:
            for klass in exc_type.__mro__:
                if klass in table and issubclass(klass, within):
                    return table[klass]
    return None
