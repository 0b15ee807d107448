"""``Bot``: where commands, hooks and event handlers are registered."""

from __future__ import annotations

import difflib
import fnmatch
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, overload

from .commands import Command, Route, SetupError
from .help import HelpCommand
from .setup import setupmethod

if TYPE_CHECKING:
    from flask import Flask

    from ..runtime.runtime import Runtime
    from ..runtime.stores import Store
    from ..testing import TestClient
    from .config import Config

__all__ = ["Bot", "CommandGroup"]

F = TypeVar("F", bound=Callable[..., Any])
P = ParamSpec("P")
R = TypeVar("R")


#: Stream's push event types (its webhook events list; see the README), for
#: ``@bot.on(...)`` to catch typos. Types in :data:`EVENT_FAMILIES` are known as well.
# fmt: off
KNOWN_EVENT_TYPES = frozenset([
    "message.new", "message.read", "message.updated", "message.deleted", "message.flagged",
    "message.unflagged", "message.pending", "message.undeleted", "reaction.new",
    "reaction.deleted", "reaction.updated", "member.added", "member.updated", "member.removed",
    "channel.created", "channel.updated", "channel.muted", "channel.unmuted",
    "channel.truncated", "channel.deleted", "channel.hidden", "channel.visible",
    "channel.frozen", "channel.unfrozen", "user.deactivated", "user.deleted",
    "user.reactivated", "user.updated", "user.muted", "user.unmuted", "user.banned",
    "user.unbanned", "user.flagged", "user.messages.deleted", "user.unread_message_reminder",
    "export.users.success", "export.users.error", "export.channels.success",
    "export.channels.error", "reminder.created", "reminder.updated", "reminder.deleted",
    "notification.reminder_due", "notification.thread_message_new", "notification.mark_unread",
    "thread.updated", "custom",
])
# fmt: on
#: Prefixes of event families Stream keeps adding to (``moderation.flagged``, ...).
EVENT_FAMILIES = ("moderation.", "user_group.")


def _known_event(pattern: str) -> bool:
    """Whether ``pattern`` (a type or a glob) names at least one type Stream sends."""
    if pattern in KNOWN_EVENT_TYPES or pattern.startswith(EVENT_FAMILIES):
        return True
    if any(c in pattern for c in "*?["):
        return any(fnmatch.fnmatchcase(t, pattern) for t in KNOWN_EVENT_TYPES) or any(
            fnmatch.fnmatchcase(f + "x", pattern) for f in EVENT_FAMILIES
        )
    return False


def _unknown_event(pattern: str, func: Callable[..., Any]) -> SetupError:
    close = difflib.get_close_matches(pattern, sorted(KNOWN_EVENT_TYPES), n=3, cutoff=0.8)
    hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
    return SetupError(
        f"@on({pattern!r}) on {_qualname(func)}: Stream sends no event of that type; {hint}"
        f"For an event type of your own, say so: @bot.on({pattern!r}, custom=True)"
    )


def _qualname(func: Callable[..., Any]) -> str:
    return getattr(func, "__qualname__", None) or repr(func)


def _check_takes(func: Callable[..., Any], what: str, example: str, count: int = 1) -> None:
    """Raise :class:`SetupError` unless ``func`` can be called with ``count`` arguments."""
    if not callable(func):
        raise SetupError(f"{what} must be a function, got {type(func).__name__}: {example}")
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):  # some builtins and C callables have none: trust them
        return
    try:
        sig.bind(*[object()] * count)
    except TypeError as exc:
        arguments = "one argument" if count == 1 else f"{count} arguments"
        raise SetupError(
            f"{what} {_qualname(func)}{sig} cannot take what botkit passes ({exc}): "
            f"it is called with {arguments}, e.g. {example}"
        ) from None


def _command_name(func: Callable[..., Any]) -> str:
    """The command name a function gives when none is passed: its own, if it is usable."""
    name = getattr(func, "__name__", None)
    if not isinstance(name, str) or not name.isidentifier():
        raise SetupError(
            f"{func!r} has no name to register it under (a lambda registers '/<lambda>'): "
            "name the command, e.g. bot.command('hello')(lambda ctx: 'hi'), or use def"
        )
    return name


@dataclass(frozen=True)
class Hook:
    """A before-send hook."""

    func: Callable[..., Any]
    fail_closed: bool = False
    name: str = ""


@dataclass(frozen=True)
class EventHandler:
    """A push event handler and the event types (glob patterns) it wants."""

    func: Callable[..., Any]
    patterns: tuple[str, ...]  # empty: every event

    def wants(self, event_type: str) -> bool:
        if not self.patterns:
            return True
        return any(fnmatch.fnmatchcase(event_type, p) for p in self.patterns)


class Registry:
    """What :class:`Bot` and :class:`CommandGroup` share: the registration API."""

    def __init__(self) -> None:
        self.commands: dict[str, Command[Any, Any]] = {}
        self.forms: dict[str, Route] = {}
        self.hooks: list[Hook] = []
        self.event_handlers: list[EventHandler] = []
        self.error_handlers: dict[type[BaseException], Callable[..., Any]] = {}
        self.checks: list[Callable[..., Any]] = []
        #: Flask blueprints every app made from this bot serves, with their options.
        self.blueprints: list[tuple[Any, dict[str, Any]]] = []

    @property
    def started(self) -> bool:
        """True once the bot has handled a webhook: registering then raises. A group
        never starts."""
        return False

    def _check_setup_finished(self, f_name: str) -> None:
        # every registration method asks here first (``@setupmethod``)
        if self.started:
            raise SetupError(
                f"Cannot register with {f_name}(): the bot has already handled a webhook. "
                "Register every command, hook and handler at import time, before the "
                "app serves requests (gunicorn forks workers after that)."
            )

    # -- commands -------------------------------------------------------------------

    @overload
    def command(self, name: Callable[P, R], /) -> Command[P, R]: ...
    @overload
    def command(
        self,
        name: str | None = None,
        *,
        description: str | None = None,
        args: str | None = None,
        set: str | None = None,
        budget_ms: float | None = None,
        placeholder: Callable[..., Any] | str | None = None,
    ) -> Callable[[Callable[P, R]], Command[P, R]]: ...

    def command(
        self,
        name: str | Callable[..., Any] | None = None,
        *,
        description: str | None = None,
        args: str | None = None,
        set: str | None = None,
        budget_ms: float | None = None,
        placeholder: Callable[..., Any] | str | None = None,
    ) -> Command[Any, Any] | Callable[[Callable[P, R]], Command[P, R]]:
        """Register the decorated function as the custom command ``/name``.

        ``name`` defaults to the function's name (``@bot.command`` alone works too).
        Parameters after ``ctx`` are parsed from the text after the command, by their
        type annotations (see :mod:`botkit.arguments`). ``description`` and ``args`` are
        what Stream clients show while the user types; they default to the docstring's
        first line and the usage built from the parameters (``<who> <minutes> [what]``).
        ``budget_ms`` overrides the time the handler gets before botkit answers with
        ``placeholder`` and posts the result later.

        The decorated function comes back as a :class:`~botkit.Command` that still calls
        like the function and routes clicks with ``.action(...)``. Given a Command (two
        decorators stacked, or ``add_command(cmd, "other")``), it registers another name
        for it: the same handler, sharing its actions, forms and checks.
        """
        if callable(name):
            return self.add_command(name, _command_name(name))

        def decorator(func: Callable[P, R]) -> Command[P, R]:
            return self.add_command(
                func,
                name if name is not None else _command_name(func),
                description=description,
                args=args,
                set=set,
                budget_ms=budget_ms,
                placeholder=placeholder,
            )

        return decorator

    @setupmethod
    def add_command(
        self,
        func: Callable[P, R],
        name: str,
        *,
        description: str | None = None,
        args: str | None = None,
        set: str | None = None,
        budget_ms: float | None = None,
        placeholder: Callable[..., Any] | str | None = None,
    ) -> Command[P, R]:
        """Register ``func`` as ``/name``; the non-decorator form of :meth:`command`."""
        cmd = Command(
            func,
            name,
            description=description,
            args=args,
            set=set,
            budget_ms=budget_ms,
            placeholder=placeholder,
        )
        self._add_command_object(cmd)
        return cmd

    def _add_command_object(self, cmd: Command[Any, Any]) -> None:
        existing = self.commands.get(cmd.name)
        if existing is not None and not isinstance(existing, HelpCommand):
            raise SetupError(f"Command /{cmd.name} is registered twice")
        self.commands[cmd.name] = cmd  # your own /help replaces the built-in one
        if self not in cmd.bots:
            cmd.bots.append(self)

    def form(self, mml_name: str, *, schema: Any = None) -> Callable[[F], F]:
        """Handle submits of a standalone MML form ``<mml name="mml_name">``.

        Stream calls the custom-command hook with ``type=mml`` for forms that no slash
        command started; botkit routes them by ``form_data["mml_name"]``.
        """

        def decorator(func: F) -> F:
            self.add_form(func, mml_name, schema=schema)
            return func

        return decorator

    @setupmethod
    def add_form(self, func: Callable[..., Any], mml_name: str, *, schema: Any = None) -> None:
        if not mml_name:
            raise SetupError("A form handler needs the form's name")
        _check_takes(func, "The form handler", "def on_submit(ctx): ...")
        if mml_name in self.forms:
            raise SetupError(f"Form {mml_name!r} is registered twice")
        self.forms[mml_name] = Route(func, mml_name=mml_name, schema=schema)

    @setupmethod
    def errorhandler(self, exc_type: type[BaseException]) -> Callable[[F], F]:
        """Turn an exception a handler raises into a reply: ``func(ctx, exc)``.

        The function returns what a handler would (a ``str`` or a ``Message``).
        """

        def decorator(func: F) -> F:
            _check_takes(func, "The error handler", "def on_error(ctx, exc): ...", 2)
            self.error_handlers[exc_type] = func
            return func

        return decorator

    @setupmethod
    def register_blueprint(self, blueprint: Any, **options: Any) -> None:
        """Serve a Flask blueprint (your own pages, pictures, callbacks) on every app made
        from this bot: :meth:`Bot.create_app`, the test client and the playground.

        ``options`` are Flask's ``app.register_blueprint`` options (``url_prefix``, ...).
        """
        self.blueprints.append((blueprint, options))

    @setupmethod
    def check(self, func: F) -> F:
        """Run ``func(ctx)`` before every command of this bot or group.

        Return ``None`` to let the call through, or a reply (``str``/``Message``) to refuse it.
        """
        _check_takes(func, "The check", "def staff_only(ctx): ...")
        self.checks.append(func)
        return func

    # -- before-send hooks ------------------------------------------------------------

    @overload
    def before_send(self, func: F) -> F: ...
    @overload
    def before_send(self, *, fail_closed: bool = False) -> Callable[[F], F]: ...

    def before_send(
        self, func: F | None = None, *, fail_closed: bool = False
    ) -> F | Callable[[F], F]:
        """Run the function on every message before Stream stores it.

        Return ``None`` to pass it, a changed message (``str``, dict or ``Message``) to
        rewrite it, or ``ctx.reject(text)`` to refuse it. A hook that raises or overruns the
        budget lets the message through, unless registered with ``fail_closed=True``.
        """

        def decorator(f: F) -> F:
            self.add_before_send(f, fail_closed=fail_closed)
            return f

        return decorator(func) if func is not None else decorator

    @setupmethod
    def add_before_send(self, func: Callable[..., Any], *, fail_closed: bool = False) -> None:
        _check_takes(func, "The before-send hook", "def no_shouting(ctx): ...")
        name = getattr(func, "__qualname__", repr(func))
        self.hooks.append(Hook(func, fail_closed=fail_closed, name=name))

    # -- push events -------------------------------------------------------------------

    def on(self, *event_types: str, custom: bool = False) -> Callable[[F], F]:
        """Handle push events: ``@bot.on("message.new")``, ``@bot.on("reaction.*")``.

        With no types (or ``"*"``) the function receives every event, unknown types included.
        Handlers run off the request, on the task queue. A type (or pattern) that names
        none of Stream's event types raises :class:`~botkit.SetupError` with the close
        matches (``"mesage.new"``: did you mean ``"message.new"``?); ``custom=True``
        accepts types of your own.
        """

        def decorator(func: F) -> F:
            self.add_event_handler(func, *event_types, custom=custom)
            return func

        return decorator

    @setupmethod
    def add_event_handler(
        self, func: Callable[..., Any], *event_types: str, custom: bool = False
    ) -> None:
        for t in event_types:
            if not isinstance(t, str) or not t.strip():
                raise SetupError("Event types are non-empty strings such as 'message.new'")
        _check_takes(func, "The push event handler", "def on_message(event): ...")
        if not custom:
            for t in event_types:
                if t != "*" and not _known_event(t):
                    raise _unknown_event(t, func)
        patterns = () if "*" in event_types else tuple(event_types)
        self.event_handlers.append(EventHandler(func, patterns))

    def handlers_for(self, event_type: str) -> list[EventHandler]:
        return [h for h in self.event_handlers if h.wants(event_type)]


class CommandGroup(Registry):
    """Commands, hooks and handlers kept in one module and added to a bot later::

        # tickets.py
        group = CommandGroup()

        @group.command("ticket")
        def ticket(ctx): ...

        # app.py
        bot.include(group)

    A group's ``check`` and ``errorhandler`` apply to the group's own commands only.
    ``include`` copies what the group holds at that moment, so register everything on
    the group first: registering on it afterwards raises :class:`~botkit.SetupError`.
    """

    def __init__(self) -> None:
        super().__init__()
        self._included = False  # set by Bot.include

    def _check_setup_finished(self, f_name: str) -> None:
        if self._included:
            raise SetupError(
                f"Cannot register with {f_name}(): this group is already included in a "
                "bot, which took only what the group held then. Register everything on "
                "the group before bot.include(group)."
            )


class Bot(Registry):
    """A Stream Chat bot. Register handlers with its decorators, then serve
    :meth:`create_app` with gunicorn."""

    def __init__(self, *, help_command: bool = True) -> None:
        """``help_command=False`` leaves out the automatic ``/help`` (see :mod:`botkit.help`);
        registering your own command named ``help`` replaces it instead."""
        super().__init__()
        self._started = False
        self.help_command = help_command
        self.app: Flask | None = None
        #: The parts serving this bot in this process (store, queue, Stream client): set
        #: when :meth:`create_app`, :meth:`test_client` or ``botkit worker`` makes them.
        self.runtime: Runtime | None = None
        if help_command:
            self._add_command_object(HelpCommand())

    @property
    def started(self) -> bool:
        """True once the bot has handled a webhook: registering then raises."""
        return self._started

    def mark_started(self) -> None:
        """Refuse registration from now on; botkit calls it with the first webhook."""
        self._started = True

    @setupmethod
    def include(self, group: CommandGroup) -> None:
        """Add a :class:`CommandGroup`'s commands, forms, hooks and handlers to this bot.

        The bot takes what the group holds now; the group refuses registration from then on.
        """
        group._included = True
        for cmd in group.commands.values():
            # a group included in several bots (tests, several apps) adds its checks once
            cmd.checks[:0] = [c for c in group.checks if c not in cmd.checks]
            for exc_type, handler in group.error_handlers.items():
                cmd.error_handlers.setdefault(exc_type, handler)
            self._add_command_object(cmd)
        for name, route in group.forms.items():
            if name in self.forms:
                raise SetupError(f"Form {name!r} is registered twice")
            self.forms[name] = route
        self.hooks.extend(group.hooks)
        self.event_handlers.extend(group.event_handlers)
        self.blueprints.extend(b for b in group.blueprints if b not in self.blueprints)

    @property
    def store(self) -> Store:
        """The idempotency store of this process; it also keeps small shared counters
        (``bot.store.incr(name, field)``, ``bot.store.counters(name)``) for handlers."""
        if self.runtime is None:
            raise SetupError(
                "bot.store is there once the bot serves: make the app (bot.create_app() "
                "or bot.test_client()) or run botkit worker first"
            )
        return self.runtime.store

    def create_app(self, config: Config | None = None, **flask_config: Any) -> Flask:
        """A Flask app serving this bot's webhooks (``gunicorn wsgi:app``).

        Settings come from the environment unless ``config`` is given; a missing secret
        or an unusable store URL fails here, at start-up, with a message that names it.
        """
        from ..adapters.web import create_app

        return create_app(self, config, **flask_config)

    def test_client(self, **kwargs: Any) -> TestClient:
        """A client that signs and sends webhooks through this bot's app, for tests."""
        from ..testing import TestClient

        return TestClient(self, **kwargs)


#: The bot that the module-level ``botkit.command`` and friends register on.
default_bot = Bot()
