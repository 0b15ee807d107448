"""The ``botkit`` command: register a bot with Stream, and simulate Stream locally.

::

    botkit routes                                  # what the bot handles
    botkit sync --url https://bot.example.com --dry-run
    botkit sync --url https://bot.example.com --channel-type messaging
    botkit run                                     # development server with reload
    botkit send "/gif cats" --click 2 --click 1    # talk to it as Stream would
    botkit sign body.json                          # headers for curl

The app is found with ``--app module:bot`` (or ``module:app`` for an app made by
botkit), else ``BOTKIT_APP``, else ``wsgi.py`` in the current directory. Importing it
never talks to Stream: only ``botkit sync`` does.
"""

from __future__ import annotations

import importlib
import json
import os
import shlex
import sys
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import parse_qsl, urlsplit

import click

from ..adapters.logs import configure_logging
from ..core.config import DEV_API_KEY, DEV_API_SECRET, ConfigError

if TYPE_CHECKING:
    import requests
    from flask import Flask

    from ..core.bot import Bot
    from ..runtime.stream_api import StreamClient

__all__ = ["cli", "main"]

MAX_COMMANDS = 50
DEFAULT_URL = "http://127.0.0.1:8000"
_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class CLIError(click.ClickException):
    """A problem the user can fix: printed as one line, exit status 1."""


def fail(message: str) -> NoReturn:
    raise CLIError(message)


# -- finding the app -----------------------------------------------------------------------


@dataclass
class Located:
    bot: Bot
    app: Flask | None = None


def _prefix() -> str:
    prefix = "/" + os.environ.get("BOTKIT_URL_PREFIX", "/webhooks/stream").strip().strip("/")
    return "" if prefix == "/" else prefix


def locate(ref: str | None) -> Located:
    """Import the bot named by ``ref`` (``module:attr``), ``BOTKIT_APP`` or ``wsgi.py``."""
    from flask import Flask

    from ..core.bot import Bot, default_bot

    ref = ref or os.environ.get("BOTKIT_APP") or None
    if ref is None:
        if not os.path.isfile("wsgi.py"):
            fail(
                "no app to load: pass --app module:bot (e.g. --app examples.bot:bot), "
                "set BOTKIT_APP, or run botkit in the directory that holds wsgi.py"
            )
        ref = "wsgi"
    module_name, _, attr = ref.partition(":")
    if not module_name:
        fail(f"--app {ref!r}: expected module:bot or module:app, e.g. examples.bot:bot")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ConfigError as exc:
        fail(
            f"loading {module_name} failed: {exc} "
            "(point --app at the module that defines the bot to load it without settings)"
        )
    except ImportError as exc:
        if exc.name and module_name.startswith(exc.name):
            fail(f"cannot import {module_name!r}: {exc}")
        raise
    names = [attr] if attr else ["bot", "app"]
    for name in names:
        obj = getattr(module, name, None)
        if obj is None:
            continue
        if isinstance(obj, Bot):
            return Located(obj, obj.app)
        if isinstance(obj, Flask):
            dispatcher = obj.extensions.get("botkit")
            if dispatcher is None:
                fail(f"{module_name}:{name} is a Flask app that botkit did not make")
            return Located(dispatcher.bot, obj)
        fail(f"{module_name}:{name} is a {type(obj).__name__}, not a botkit Bot or app")
    if not attr and (default_bot.commands or default_bot.hooks or default_bot.event_handlers):
        return Located(default_bot, default_bot.app)
    wanted = attr or "bot (or app)"
    fail(f"{module_name} has no {wanted}: pass --app {module_name}:NAME")


def _located(ctx: click.Context) -> Located:
    obj: dict[str, Any] = ctx.ensure_object(dict)
    if "located" not in obj:
        obj["located"] = locate(obj.get("app"))
    located: Located = obj["located"]
    return located


# -- the group -------------------------------------------------------------------------------


@click.group(context_settings=_CONTEXT)
@click.option(
    "--app",
    "app_ref",
    metavar="MODULE:BOT",
    help="The bot (or botkit app) to load; default: BOTKIT_APP, else wsgi.py.",
)
@click.version_option(package_name="botkit", prog_name="botkit")
@click.pass_context
def cli(ctx: click.Context, app_ref: str | None) -> None:
    """Run, register and try out a botkit bot.

    \b
    Examples:
      botkit routes
      botkit --app examples.bot:bot sync --url https://bot.example.com --dry-run
      botkit send "/gif cats" --click 2
    """
    ctx.ensure_object(dict)["app"] = app_ref
    try:
        configure_logging()
    except ConfigError as exc:
        fail(str(exc))


def main() -> None:
    """The ``botkit`` console script."""
    cli(prog_name="botkit")


# -- routes ----------------------------------------------------------------------------------


def _table(rows: list[list[str]], headers: list[str]) -> list[str]:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return [line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def _route_label(route: Any) -> str:
    if route.mml_name is not None:
        return f"form:{route.mml_name}"
    return f"{route.name}={route.value if route.value is not None else '*'}"


def _func_name(func: Callable[..., Any]) -> str:
    return f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', repr(func))}"


@cli.command(context_settings=_CONTEXT)
@click.pass_context
def routes(ctx: click.Context) -> None:
    """List the bot's commands, forms, before-send hooks and event handlers.

    \b
    Example:
      botkit --app examples.bot:bot routes
    """
    _dev_credentials_default()  # listing routes needs no Stream app
    bot = _located(ctx).bot
    prefix = _prefix()
    rows = [
        [
            f"/{c.name}",
            c.description or "(no description)",
            c.args,
            c.set,
            ", ".join(_route_label(r) for r in c.routes) or "-",
        ]
        for c in bot.commands.values()
    ]
    click.echo(f"Commands ({len(rows)}), on POST {prefix}/custom-commands?type={{type}}:")
    if rows:
        for out in _table(rows, ["command", "description", "args", "set", "actions"]):
            click.echo("  " + out)
    else:
        click.echo("  (none)")
    if bot.forms:
        click.echo(f"\nStandalone MML forms ({len(bot.forms)}), on ?type=mml:")
        form_rows = [[name, _func_name(r.func)] for name, r in bot.forms.items()]
        for out in _table(form_rows, ["mml_name", "handler"]):
            click.echo("  " + out)
    click.echo(f"\nBefore-send hooks ({len(bot.hooks)}), on POST {prefix}/before-message-send:")
    if bot.hooks:
        hook_rows = [
            [str(i), h.name, "closed" if h.fail_closed else "open"]
            for i, h in enumerate(bot.hooks, 1)
        ]
        for out in _table(hook_rows, ["#", "hook", "on failure"]):
            click.echo("  " + out)
    else:
        click.echo("  (none)")
    click.echo(f"\nEvent handlers ({len(bot.event_handlers)}), on POST {prefix}/push:")
    if bot.event_handlers:
        handler_rows = [
            [", ".join(h.patterns) or "* (every event)", _func_name(h.func)]
            for h in bot.event_handlers
        ]
        for out in _table(handler_rows, ["events", "handler"]):
            click.echo("  " + out)
    else:
        click.echo("  (none)")


# -- sync ------------------------------------------------------------------------------------


@dataclass
class Plan:
    """What ``botkit sync`` would change in the Stream app."""

    create: list[dict[str, str]] = field(default_factory=list)
    update: list[tuple[dict[str, str], dict[str, Any]]] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    channel_types: dict[str, tuple[list[str], list[str]]] = field(default_factory=dict)
    settings: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def writes(self) -> int:
        changed_types = sum(1 for old, new in self.channel_types.values() if old != new)
        return (
            len(self.create)
            + len(self.update)
            + len(self.delete)
            + changed_types
            + (1 if self.settings else 0)
        )


def check_bot_for_stream(bot: Bot) -> list[str]:
    """Reasons Stream would refuse the bot's commands (checked before any call)."""
    from ..core.commands import RESERVED_NAMES, check_command_name

    problems: list[str] = []
    if len(bot.commands) > MAX_COMMANDS:
        problems.append(
            f"the bot has {len(bot.commands)} commands; Stream allows at most "
            f"{MAX_COMMANDS} custom commands per app"
        )
    for name, cmd in bot.commands.items():
        if name in RESERVED_NAMES:
            problems.append(
                f"/{name} is one of Stream's built-in commands ({', '.join(sorted(RESERVED_NAMES))}) "
                "and cannot be a custom command: rename it"
            )
            continue
        try:
            check_command_name(name)
        except ValueError as exc:
            problems.append(str(exc))
            continue
        if not cmd.description.strip():
            problems.append(
                f"/{name} has no description, which Stream requires: give the function a "
                "docstring or pass description=..."
            )
    return problems


def _event_types(bot: Bot) -> tuple[list[str], str | None]:
    """The ``event_types`` of the bot's push hook ([] = every event), and a note."""
    types: set[str] = set()
    for handler in bot.event_handlers:
        if not handler.patterns:
            return [], None
        for pattern in handler.patterns:
            if any(c in pattern for c in "*?["):
                return [], (
                    f"event pattern {pattern!r} is a wildcard, which Stream's event_types "
                    "cannot express: the push hook gets every event, botkit ignores the rest"
                )
            types.add(pattern)
    return sorted(types), None


def _same_hook(hook: Mapping[str, Any], url: str) -> bool:
    return hook.get("webhook_url") == url and hook.get("hook_type", "webhook") == "webhook"


def make_plan(
    bot: Bot,
    base_url: str,
    stream_commands: list[dict[str, Any]],
    app_settings: Mapping[str, Any],
    channel_types: Mapping[str, list[str]],
    *,
    prune: bool = False,
) -> Plan:
    """Compare the bot with the Stream app's current state; no I/O."""
    from ..core.commands import RESERVED_NAMES

    plan = Plan()
    prefix = _prefix()
    current = {c["name"]: c for c in stream_commands if isinstance(c.get("name"), str)}
    for cmd in bot.commands.values():
        wanted = cmd.describe()
        have = current.get(cmd.name)
        if have is None:
            plan.create.append(wanted)
        elif any(str(have.get(k) or "") != wanted[k] for k in ("description", "args", "set")):
            plan.update.append((wanted, have))
        else:
            plan.unchanged.append(cmd.name)
    for name in current:
        if name in bot.commands or name in RESERVED_NAMES:
            continue
        (plan.delete if prune else plan.extra).append(name)

    for type_name, names in channel_types.items():
        new = list(names)
        if "all" not in new:
            new += [n for n in bot.commands if n not in new]
        if plan.delete:
            new = [n for n in new if n not in plan.delete]
        plan.channel_types[type_name] = (list(names), new)

    def setting(key: str, wanted: Any) -> None:
        old = app_settings.get(key) or ""
        if old != wanted:
            plan.settings[key] = (old, wanted)

    commands_url = f"{base_url}{prefix}/custom-commands?type={{type}}"
    if bot.commands or bot.forms:
        setting("custom_action_handler_url", commands_url)
    elif prune and app_settings.get("custom_action_handler_url") == commands_url:
        setting("custom_action_handler_url", "")
    before_send_url = f"{base_url}{prefix}/before-message-send"
    if bot.hooks:
        setting("before_message_send_hook_url", before_send_url)
    elif prune and app_settings.get("before_message_send_hook_url") == before_send_url:
        setting("before_message_send_hook_url", "")

    push_url = f"{base_url}{prefix}/push"
    hooks: list[dict[str, Any]] = [
        dict(h) for h in (app_settings.get("event_hooks") or []) if isinstance(h, Mapping)
    ]
    ours = [i for i, h in enumerate(hooks) if _same_hook(h, push_url)]
    merged = [dict(h) for h in hooks]
    if bot.event_handlers:
        types, note = _event_types(bot)
        if note:
            plan.notes.append(note)
        if ours:
            hook = merged[ours[0]]
            if not hook.get("enabled", True) or sorted(hook.get("event_types") or []) != types:
                merged[ours[0]] = {**hook, "enabled": True, "event_types": types}
        else:
            merged.append(
                {
                    "enabled": True,
                    "hook_type": "webhook",
                    "webhook_url": push_url,
                    "event_types": types,
                }
            )
    elif prune and ours:
        merged = [h for i, h in enumerate(merged) if i not in ours]
    if merged != hooks:
        plan.settings["event_hooks"] = (hooks, merged)
    return plan


def _hook_line(hook: Mapping[str, Any]) -> str:
    types = hook.get("event_types") or []
    shown = ", ".join(types) if types else "every event"
    state = "" if hook.get("enabled", True) else " (disabled)"
    return f"{hook.get('hook_type', 'webhook')} {hook.get('webhook_url') or '-'} [{shown}]{state}"


def print_plan(plan: Plan, push_url: str) -> None:
    echo = click.echo
    echo("Commands:")
    for new in plan.create:
        args = f" {new['args']}" if new["args"] else ""
        echo(f"  + create     /{new['name']}{args}: {new['description']}")
    for new, old in plan.update:
        changes = [
            f"{k} {str(old.get(k) or '')!r} -> {new[k]!r}"
            for k in ("description", "args", "set")
            if str(old.get(k) or "") != new[k]
        ]
        echo(f"  ~ update     /{new['name']}: {'; '.join(changes)}")
    for name in plan.unchanged:
        echo(f"  = unchanged  /{name}")
    for name in plan.delete:
        echo(f"  - delete     /{name}")
    for name in plan.extra:
        echo(f"  ! not in bot /{name} (kept; --prune deletes it)")
    if not (plan.create or plan.update or plan.unchanged or plan.delete or plan.extra):
        echo("  (none)")
    if plan.channel_types:
        echo("Channel types:")
        for type_name, (before, after) in plan.channel_types.items():
            if before == after:
                echo(f"  = unchanged  {type_name}: {', '.join(before) or '(no commands)'}")
                continue
            added = [n for n in after if n not in before]
            removed = [n for n in before if n not in after]
            kept = [n for n in before if n in after]
            parts = []
            if added:
                parts.append("add " + ", ".join(added))
            if removed:
                parts.append("remove " + ", ".join(removed))
            if kept:
                parts.append("keep " + ", ".join(kept))
            echo(f"  ~ update     {type_name}: {'; '.join(parts)}")
    echo("App settings:")
    if not plan.settings:
        echo("  = unchanged")
    for key, (old, new) in plan.settings.items():
        if key != "event_hooks":
            echo(f"  ~ {key}: {old!r} -> {new!r}")
            continue
        old_urls = [_hook_line(h) for h in old]
        new_urls = [_hook_line(h) for h in new]
        for line in new_urls:
            if line not in old_urls:
                echo(f"  + event hook {line}")
        for line in old_urls:
            if line not in new_urls:
                echo(f"  - event hook {line}")
        others = sum(1 for h in new if not _same_hook(h, push_url))
        if others:
            echo(f"  = {others} other event hook(s) kept as they are")
    for note in plan.notes:
        echo(f"Note: {note}")


def _stream_client() -> StreamClient:
    from ..runtime.stream_api import StreamClient

    try:
        return StreamClient.from_env(max_retries=2, backoff=0.5)
    except ValueError as exc:
        fail(str(exc))


def _check_base_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        fail(f"--url {url!r}: give the bot's public address, e.g. https://bot.example.com")
    if parts.query or parts.fragment:
        fail(f"--url {url!r}: leave out the query; botkit adds the webhook paths itself")
    if parts.scheme == "http":
        click.echo(
            "Warning: Stream asks for HTTPS webhook URLs; --url starts with http://", err=True
        )
    return url.rstrip("/")


@cli.command(context_settings=_CONTEXT)
@click.option(
    "--url", required=True, help="The bot's public base URL, e.g. https://bot.example.com."
)
@click.option("--dry-run", is_flag=True, help="Print what would change; change nothing.")
@click.option(
    "--prune", is_flag=True, help="Delete Stream commands (and hook URLs) the bot no longer has."
)
@click.option(
    "--channel-type",
    "channel_types",
    multiple=True,
    metavar="NAME",
    help="Enable the commands on this channel type (repeatable), keeping its others.",
)
@click.pass_context
def sync(
    ctx: click.Context, url: str, dry_run: bool, prune: bool, channel_types: tuple[str, ...]
) -> None:
    """Register the bot's commands and webhook URLs with the Stream app.

    Reads STREAM_API_KEY, STREAM_API_SECRET (and STREAM_BASE_URL). Prints the
    difference with what Stream has, then applies it; running it twice changes
    nothing the second time. Other services' event hooks are kept.

    \b
    Examples:
      botkit sync --url https://bot.example.com --dry-run
      botkit sync --url https://bot.example.com --channel-type messaging
      botkit sync --url https://bot.example.com --prune
    """
    from ..runtime.stream_api import StreamAPIError, channel_type_command_names

    base_url = _check_base_url(url)
    bot = _located(ctx).bot
    problems = check_bot_for_stream(bot)
    if problems:
        for problem in problems:
            click.echo(f"Refused: {problem}", err=True)
        fail("nothing was sent to Stream; fix the bot's commands first")
    client = _stream_client()
    push_url = f"{base_url}{_prefix()}/push"
    try:
        with client:
            click.echo(f"Stream app {client.api_key} at {client.base_url}")
            stream_commands = client.list_commands()
            app_settings = client.get_app_settings()
            types: dict[str, list[str]] = {}
            for name in channel_types:
                try:
                    types[name] = channel_type_command_names(client.get_channel_type(name))
                except StreamAPIError as exc:
                    if exc.status_code == 404:
                        fail(f"channel type {name!r} does not exist in this Stream app")
                    raise
            plan = make_plan(bot, base_url, stream_commands, app_settings, types, prune=prune)
            total = len(bot.commands) + len(plan.extra)
            if total > MAX_COMMANDS:
                fail(
                    f"the bot's {len(bot.commands)} commands and the {len(plan.extra)} others "
                    f"already in Stream add up to {total}, over Stream's limit of "
                    f"{MAX_COMMANDS}: run with --prune or remove some"
                )
            print_plan(plan, push_url)
            if dry_run:
                click.echo("Dry run: nothing was changed.")
                return
            if not plan.writes:
                click.echo("Nothing to change: Stream already matches the bot.")
                return
            apply_plan(client, plan)
    except StreamAPIError as exc:
        fail(str(exc))
    click.echo(f"Done: {plan.writes} change(s) applied.")


def apply_plan(client: StreamClient, plan: Plan) -> None:
    """Make the changes of ``plan``: commands, channel types, app settings, deletions."""
    for new in plan.create:
        client.create_command(new["name"], new["description"], new["args"], new["set"])
    for new, _old in plan.update:
        client.update_command(new["name"], new["description"], new["args"], new["set"])
    for type_name, (before, after) in plan.channel_types.items():
        if before != after:
            client.update_channel_type(type_name, commands=after)
    if plan.settings:
        client.update_app_settings(**{k: new for k, (_old, new) in plan.settings.items()})
    for name in plan.delete:
        client.delete_command(name)


# -- send ------------------------------------------------------------------------------------


def signing_keys(warn: bool = True) -> tuple[str, str]:
    """The key and secret to sign with: the environment's, or botkit's development ones."""
    from ..core.signing import KeyRing

    try:
        ring = KeyRing.from_env(os.environ)
    except ValueError as exc:
        fail(str(exc))
    if ring:
        key = ring.default_key
        return key, ring.secret_for(key)
    if warn:
        click.echo(
            "Note: STREAM_API_KEY/STREAM_API_SECRET are not set: signing with botkit's "
            "development key (the server must run with BOTKIT_DEV=1, as `botkit run` does).",
            err=True,
        )
    return DEV_API_KEY, DEV_API_SECRET


@dataclass
class Button:
    label: str
    form_data: dict[str, str]
    source: str  # "attachment" or "mml"


class _MMLReader(HTMLParser):
    """Reads what a click on an MML form sends: the root name, fields and buttons."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.name: str | None = None
        self.fields: dict[str, str] = {}
        self.buttons: list[tuple[str, str, str]] = []
        self._button: dict[str, str] | None = None
        self._label: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "mml" and a.get("name"):
            self.name = a["name"]
        elif tag in ("input", "number") and a.get("name"):
            self.fields[a["name"]] = a.get("value", "")
        elif tag == "scheduler" and a.get("name"):
            self.fields[a["name"]] = a.get("selected", "")
        elif tag == "button" and not a.get("url"):
            self._button = a
            self._label = []

    def handle_data(self, data: str) -> None:
        if self._button is not None:
            self._label.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "button" and self._button is not None:
            b = self._button
            if b.get("name"):
                self.buttons.append(
                    (" ".join("".join(self._label).split()), b["name"], b.get("value", ""))
                )
            self._button = None


def buttons_of(message: Mapping[str, Any] | None) -> list[Button]:
    """Every button a user could click on ``message``: attachment actions, then MML."""
    if not message:
        return []
    out: list[Button] = []
    for attachment in message.get("attachments") or []:
        if not isinstance(attachment, Mapping):
            continue
        for action in attachment.get("actions") or []:
            if isinstance(action, Mapping) and action.get("name"):
                out.append(
                    Button(
                        str(action.get("text") or action.get("value") or action["name"]),
                        {str(action["name"]): str(action.get("value", ""))},
                        "attachment",
                    )
                )
    mml = message.get("mml")
    if isinstance(mml, str) and mml.strip():
        reader = _MMLReader()
        try:
            reader.feed(mml)
            reader.close()
        except Exception:  # an unreadable MML has no buttons to offer
            return out
        for label, name, value in reader.buttons:
            form = dict(reader.fields)
            if reader.name:
                form["mml_name"] = reader.name
            form[name] = value
            out.append(Button(label or value, form, "mml"))
    return out


def _short(value: Any, limit: int = 100) -> str:
    text = str(value)
    if text.startswith("data:") and len(text) > 40:
        return f"{text[:30]}… ({len(text)} characters)"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe_message(message: Mapping[str, Any] | None, *, deleted: bool = False) -> list[str]:
    """A reply message as lines of text for a terminal."""
    from ..core.context import custom_fields

    if message is None:
        if deleted:
            return ['The message is deleted ({"message": null}): the client removes it.']
        return ["(no message)"]
    lines = [f"{message.get('type') or 'regular'} message"]
    if message.get("text"):
        lines.append(f"  text: {message['text']}")
    for i, attachment in enumerate(message.get("attachments") or [], 1):
        if not isinstance(attachment, Mapping):
            continue
        title = attachment.get("title") or attachment.get("fallback") or ""
        lines.append(f"  attachment {i} ({attachment.get('type') or 'text'}): {title}".rstrip())
        for key in ("text", "title_link", "image_url", "thumb_url", "asset_url"):
            if attachment.get(key) and not (key == "thumb_url" and attachment.get("image_url")):
                lines.append(f"    {key}: {_short(attachment[key])}")
        for f in attachment.get("fields") or []:
            if isinstance(f, Mapping):
                lines.append(f"    {f.get('title', '')}: {f.get('value', '')}")
    if message.get("mml"):
        lines.append(f"  mml (clients that cannot show it show the text above): {message['mml']}")
    state = custom_fields(message)
    if state:
        shown = ", ".join(f"{k}={_short(json.dumps(v), 60)}" for k, v in state.items())
        lines.append(f"  state: {shown}")
    buttons = buttons_of(message)
    if buttons:
        lines.append("  buttons (click with --click N):")
        for i, b in enumerate(buttons, 1):
            pairs = "&".join(f"{k}={v}" for k, v in b.form_data.items())
            where = " (mml form)" if b.source == "mml" else ""
            lines.append(f"    [{i}] {b.label}  {pairs}{where}")
    return lines


def _parse_click(spec: str, message: Mapping[str, Any] | None) -> dict[str, str]:
    if message is None:
        fail(f"--click {spec}: the last reply has no message to click on")
    if spec.isdigit():
        buttons = buttons_of(message)
        index = int(spec)
        if not 1 <= index <= len(buttons):
            labels = ", ".join(f"[{i}] {b.label}" for i, b in enumerate(buttons, 1)) or "none"
            fail(f"--click {spec}: no such button; the buttons are {labels}")
        return dict(buttons[index - 1].form_data)
    if "=" not in spec:  # a button's label, as the user sees it
        buttons = buttons_of(message)
        matches = [b for b in buttons if b.label.casefold() == spec.strip().casefold()]
        if not matches:
            labels = ", ".join(f"[{i}] {b.label}" for i, b in enumerate(buttons, 1)) or "none"
            fail(f"--click {spec!r}: no button with that label; the buttons are {labels}")
        return dict(matches[0].form_data)
    pairs = parse_qsl(spec, keep_blank_values=True)
    if not pairs:
        fail(f"--click {spec!r}: give a button number, its label or name=value")
    return dict(pairs)


@dataclass
class Delivery:
    status: int
    body: bytes
    outcome: str

    @property
    def json(self) -> Any:
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None


def _tls_reason(exc: BaseException) -> str:
    """The ssl module's own words, from under the layers requests and urllib3 add."""
    import ssl

    seen: set[int] = set()
    todo: list[Any] = [exc]
    while todo:
        error = todo.pop()
        if not isinstance(error, BaseException) or id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, ssl.SSLCertVerificationError):
            return f"certificate verify failed: {error.verify_message}"
        if isinstance(error, ssl.SSLError):
            return str(error.reason or error)
        todo += [error.__cause__, error.__context__, getattr(error, "reason", None), *error.args]
    return str(exc)


def _post(session: requests.Session, url: str, body: bytes, headers: Mapping[str, str]) -> Delivery:
    import requests

    try:
        response = session.post(url, data=body, headers=dict(headers), timeout=15)
    except requests.exceptions.SSLError as exc:
        fail(
            f"TLS with {url} failed ({_tls_reason(exc)}); for a self-signed "
            "certificate, set REQUESTS_CA_BUNDLE=/path/to/cert.pem"
        )
    except requests.ConnectionError:
        root = urlsplit(url)
        fail(
            f"cannot reach {root.scheme}://{root.netloc}: is the bot running? "
            "(start it with `botkit run`, or pass --url)"
        )
    except requests.Timeout:
        fail(f"{url} did not answer within 15 s")
    except requests.RequestException as exc:
        fail(f"request to {url} failed: {exc}")
    return Delivery(
        response.status_code, response.content, response.headers.get("X-Botkit-Outcome", "?")
    )


def _show(kind: str, sent: Mapping[str, Any], delivery: Delivery, raw: bool) -> None:
    if raw:
        data = delivery.json
        click.echo(json.dumps(data, indent=2) if data is not None else delivery.body.decode())
        return
    click.echo(f"HTTP {delivery.status} (outcome: {delivery.outcome})")
    data = delivery.json
    if delivery.status >= 400 or not isinstance(data, dict):
        click.echo(f"  {delivery.body.decode('utf-8', 'replace')[:500]}")
        if delivery.status == 401:
            click.echo(
                "  The bot refused the signature: sign with the same STREAM_API_KEY and "
                "STREAM_API_SECRET as the server (or run both with development credentials)."
            )
        return
    if kind == "before_send":
        message = data.get("message") or {}
        if message.get("type") == "error":
            click.echo(f"rejected: {message.get('text')}")
        else:
            original = sent.get("message") or {}
            changed = {k: v for k, v in message.items() if original.get(k) != v}
            if changed:
                click.echo("rewritten:")
                for key, value in changed.items():
                    click.echo(f"  {key}: {_short(json.dumps(value), 200)}")
            else:
                click.echo("passed unchanged")
        return
    if kind == "push":
        click.echo("  " + json.dumps(data))
        return
    for line in describe_message(
        data.get("message"), deleted="message" in data and data["message"] is None
    ):
        click.echo(line)


@cli.command(context_settings=_CONTEXT)
@click.argument("text", required=False)
@click.option(
    "--url", default=DEFAULT_URL, show_default=True, envvar="BOTKIT_URL", help="The running bot."
)
@click.option("--user", "user_id", default="alice", show_default=True, help="Who sends it.")
@click.option(
    "--channel", "cid", default="messaging:general", show_default=True, help="The channel's cid."
)
@click.option(
    "--click",
    "clicks",
    multiple=True,
    metavar="N|LABEL|NAME=VALUE",
    help="Then click button N (or the button labelled LABEL) of the reply, or send "
    "NAME=VALUE&...; repeatable, each on the previous reply.",
)
@click.option(
    "--event", "event_type", metavar="TYPE", help="Send a push event instead, e.g. message.new."
)
@click.option(
    "--before-send", "before_send", is_flag=True, help="Send TEXT to the before-message-send hook."
)
@click.option("--text", "text_option", help="The message text (for --event and --before-send).")
@click.option("--raw", is_flag=True, help="Print the JSON answers as they are.")
@click.option(
    "--repeat",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Send each webhook N times with the same id (to watch dedup).",
)
def send(
    text: str | None,
    url: str,
    user_id: str,
    cid: str,
    clicks: tuple[str, ...],
    event_type: str | None,
    before_send: bool,
    text_option: str | None,
    raw: bool,
    repeat: int,
) -> None:
    """Send a webhook to a running bot exactly as Stream would, and print the answer.

    Signs with STREAM_API_KEY/STREAM_API_SECRET, or botkit's development key
    when they are not set.

    \b
    Examples:
      botkit send "/gif cats"
      botkit send "/gif cats" --click 2 --click image_action=send
      botkit send "/gif cats" --click Shuffle --click Send
      botkit send "/ticket printer" --click 'action=confirm&email=me@example.com'
      botkit send --before-send "my card is 4242 4242 4242 4242"
      botkit send --event message.new --text "hello"
      botkit send "/gif cats" --repeat 3 --url http://127.0.0.1:8000
    """
    import requests

    from ..core.payloads import (
        action_payload,
        before_send_payload,
        command_payload,
        encode,
        event_payload,
        message,
        signed_headers,
        user,
    )

    if ":" not in cid:
        fail(f"--channel {cid!r}: a cid looks like type:id, e.g. messaging:general")
    if event_type and before_send:
        fail("choose one of --event and --before-send")
    body_text = text_option if text_option is not None else text
    author = user(user_id)
    base = url.rstrip("/")
    prefix = _prefix()
    if event_type:
        fields: dict[str, Any] = {"cid": cid, "user": author}
        if body_text is not None:
            fields["message"] = message(body_text, user=author, cid=cid)
        kind, path = "push", "/push"
        payload = event_payload(event_type, **fields)
    elif before_send:
        if body_text is None:
            fail('--before-send needs the message text: botkit send --before-send "hello"')
        kind, path = "before_send", "/before-message-send"
        payload = before_send_payload(body_text, user=author, cid=cid)
    else:
        if not text or not text.startswith("/"):
            fail(
                'give a command starting with "/", e.g. botkit send "/gif cats" '
                "(or use --before-send or --event for the other hooks)"
            )
        payload = command_payload(text, user=author, cid=cid)
        kind, path = "command", f"/custom-commands?type={payload['message']['command']}"
    if clicks and kind != "command":
        fail("--click follows a command's reply; it cannot be used with --event or --before-send")

    api_key, secret = signing_keys()
    failed = False
    with requests.Session() as session:
        steps = 1 + len(clicks)
        for step in range(steps):
            if step:
                click.echo(f"\n--click {clicks[step - 1]}")
            body = encode(payload)
            webhook_id = str(uuid.uuid4())
            deliveries: list[Delivery] = []
            for attempt in range(1, repeat + 1):
                headers = signed_headers(
                    body, api_key=api_key, secret=secret, webhook_id=webhook_id, attempt=attempt
                )
                deliveries.append(_post(session, base + prefix + path, body, headers))
            _show(kind, payload, deliveries[0], raw)
            if repeat > 1:
                first = deliveries[0]
                for i, d in enumerate(deliveries, 1):
                    same = "same answer" if d.body == first.body else "different answer"
                    click.echo(
                        f"  delivery {i}/{repeat} (X-Webhook-Id {webhook_id}): "
                        f"HTTP {d.status}, outcome {d.outcome}" + (f", {same}" if i > 1 else "")
                    )
            last = deliveries[-1]
            if any(d.status >= 400 for d in deliveries):
                failed = True
                break
            if step + 1 < steps:
                data = last.json
                reply = data.get("message") if isinstance(data, dict) else None
                form = _parse_click(clicks[step], reply)
                assert reply is not None
                payload = action_payload(reply, form, user=author)
                path = f"/custom-commands?type={reply.get('command') or 'mml'}"
    if failed:
        sys.exit(1)


# -- sign ------------------------------------------------------------------------------------


def _guess_path(body: bytes) -> str:
    prefix = _prefix()
    try:
        data = json.loads(body)
    except ValueError:
        return f"{prefix}/custom-commands?type=COMMAND"
    if isinstance(data, dict):
        msg = data["message"] if isinstance(data.get("message"), dict) else {}
        if isinstance(data.get("type"), str) and "form_data" not in data:
            return f"{prefix}/push"
        if "request_info" in data or "channel" in data:
            return f"{prefix}/before-message-send"
        name = msg.get("command") or ("mml" if "form_data" in data else "COMMAND")
        return f"{prefix}/custom-commands?type={name}"
    return f"{prefix}/custom-commands?type=COMMAND"


@cli.command(context_settings=_CONTEXT)
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option(
    "--url",
    default=DEFAULT_URL,
    show_default=True,
    envvar="BOTKIT_URL",
    help="The bot, for the curl example.",
)
@click.option(
    "--path", default=None, help="The webhook path for the curl example (guessed from the body)."
)
def sign(file: str, url: str, path: str | None) -> None:
    """Print the headers Stream would send with the body in FILE (- for stdin).

    Signs with STREAM_API_KEY/STREAM_API_SECRET, or botkit's development key
    when they are not set, and prints a curl command that sends the same bytes.

    \b
    Examples:
      botkit sign body.json
      echo '{"type": "message.new"}' | botkit sign -
    """
    from ..core.payloads import signed_headers

    with click.open_file(file, "rb") as fh:
        body = fh.read()
    api_key, secret = signing_keys()
    headers = signed_headers(body, api_key=api_key, secret=secret)
    for name in ("X-Api-Key", "X-Signature", "X-Webhook-Id", "X-Webhook-Attempt", "Content-Type"):
        click.echo(f"{name}: {headers[name]}")
    target = url.rstrip("/") + (path or _guess_path(body))
    source = "@-" if file == "-" else "@" + file
    click.echo("\ncurl -X POST " + shlex.quote(target) + " \\")
    for name, value in headers.items():
        click.echo(f"  -H {shlex.quote(f'{name}: {value}')} \\")
    click.echo(f"  --data-binary {shlex.quote(source)}")
    if source == "@-":
        click.echo("(pipe the very same bytes into curl: the signature covers them exactly)")


# -- run, worker, playground --------------------------------------------------------------------


def _dev_credentials_default() -> None:
    if not any(
        os.environ.get(k) for k in ("STREAM_API_KEY", "STREAM_API_SECRET", "STREAM_API_KEYS")
    ):
        os.environ.setdefault("BOTKIT_DEV", "1")


@cli.command(context_settings=_CONTEXT)
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, help="The port to listen on.")
@click.option(
    "--reload/--no-reload", default=True, show_default=True, help="Restart when the code changes."
)
@click.pass_context
def run(ctx: click.Context, host: str, port: int, reload: bool) -> None:
    """Serve the bot on Flask's development server (use gunicorn in production).

    Uses the development key when no Stream credentials are set.

    \b
    Examples:
      botkit run
      botkit --app examples.bot:bot run --port 5000 --no-reload
    """
    from werkzeug.serving import run_simple

    _dev_credentials_default()
    located = _located(ctx)
    app = located.app
    if app is None:
        try:
            app = located.bot.create_app()
        except ConfigError as exc:
            fail(str(exc))
    run_simple(host, port, app, use_reloader=reload, use_debugger=False, threaded=True)


@cli.command(context_settings=_CONTEXT)
@click.option(
    "--workers",
    "-w",
    default=2,
    show_default=True,
    type=click.IntRange(min=1),
    help="Handler threads.",
)
@click.pass_context
def worker(ctx: click.Context, workers: int) -> None:
    """Run the task queue's consumer: push event handlers and late command results.

    Needs BOTKIT_QUEUE set to a huey URL shared with the web processes.

    \b
    Example:
      BOTKIT_QUEUE=huey+redis://localhost:6379/1 botkit worker --workers 4
    """
    url = os.environ.get("BOTKIT_QUEUE", "")
    if not url.startswith("huey+"):
        fail(
            f"botkit worker needs BOTKIT_QUEUE set to a huey queue, e.g. "
            f"huey+redis://localhost:6379/1 or huey+sqlite:///queue.db (it is {url or 'unset'!r}; "
            "with thread:// events run inside the web processes and no worker is needed)"
        )
    bot = _located(ctx).bot
    try:
        huey_queue = importlib.import_module("botkit.runtime.worker")
    except ImportError as exc:
        fail(f"botkit worker needs huey: pip install 'botkit[huey]' ({exc})")
    try:
        huey_queue.run_consumer(bot, url, workers=workers)
    except ValueError as exc:  # a queue URL it cannot use
        fail(str(exc))


@cli.command(context_settings=_CONTEXT)
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, help="The port to listen on.")
@click.pass_context
def playground(ctx: click.Context, host: str, port: int) -> None:
    """Open a chat-like page to try the bot in a browser, without Stream.

    \b
    Example:
      botkit playground --port 8000    # then open http://127.0.0.1:8000/playground
    """
    _dev_credentials_default()
    bot = _located(ctx).bot
    module = importlib.import_module("botkit.adapters.playground")
    try:
        module.run_playground(bot, host, port)
    except ConfigError as exc:
        fail(str(exc))
