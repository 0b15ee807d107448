"""``botkit routes`` and ``botkit sync``: what the bot handles, and registering it with
the Stream app (the plan is computed without I/O, then applied)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import click

from .common import CONTEXT, dev_credentials_default, fail, loaded, table, webhook_prefix

if TYPE_CHECKING:
    from ..core.bot import Bot
    from ..runtime.stream_api import StreamClient

MAX_COMMANDS = 50


# -- routes ----------------------------------------------------------------------------------


def _route_label(route: Any) -> str:
    if route.mml_name is not None:
        return f"form:{route.mml_name}"
    return f"{route.name}={route.value if route.value is not None else '*'}"


def _func_name(func: Callable[..., Any]) -> str:
    return f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', repr(func))}"


@click.command(context_settings=CONTEXT)
@click.pass_context
def routes(ctx: click.Context) -> None:
    """List the bot's commands, forms, before-send hooks and event handlers.

    \b
    Example:
      botkit --app examples.bot:bot routes
    """
    dev_credentials_default()  # listing routes needs no Stream app
    bot = loaded(ctx).bot
    prefix = webhook_prefix()
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
        for out in table(rows, ["command", "description", "args", "set", "actions"]):
            click.echo("  " + out)
    else:
        click.echo("  (none)")
    if bot.forms:
        click.echo(f"\nStandalone MML forms ({len(bot.forms)}), on ?type=mml:")
        form_rows = [[name, _func_name(r.func)] for name, r in bot.forms.items()]
        for out in table(form_rows, ["mml_name", "handler"]):
            click.echo("  " + out)
    click.echo(f"\nBefore-send hooks ({len(bot.hooks)}), on POST {prefix}/before-message-send:")
    if bot.hooks:
        hook_rows = [
            [str(i), h.name, "closed" if h.fail_closed else "open"]
            for i, h in enumerate(bot.hooks, 1)
        ]
        for out in table(hook_rows, ["#", "hook", "on failure"]):
            click.echo("  " + out)
    else:
        click.echo("  (none)")
    click.echo(f"\nEvent handlers ({len(bot.event_handlers)}), on POST {prefix}/push:")
    if bot.event_handlers:
        handler_rows = [
            [", ".join(h.patterns) or "* (every event)", _func_name(h.func)]
            for h in bot.event_handlers
        ]
        for out in table(handler_rows, ["events", "handler"]):
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


def _stale_hook(hook: Mapping[str, Any], url: str, route: str) -> bool:
    """A push hook of this bot at another address: its URL's path ends with the bot's push
    route (``{prefix}/push``) but it is not ``url`` (another host, or a base path before
    the prefix)."""
    other = hook.get("webhook_url")
    if hook.get("hook_type", "webhook") != "webhook" or not isinstance(other, str):
        return False
    path = urlsplit(other).path.rstrip("/")
    return other != url and path.endswith(route)


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
    prefix = webhook_prefix()
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
    stale = [i for i, h in enumerate(hooks) if _stale_hook(h, push_url, f"{prefix}/push")]
    merged = [dict(h) for h in hooks]
    stale_ids = {id(merged[i]) for i in stale}  # the dicts themselves: indexes shift below
    for i in stale:
        if not prune:
            plan.notes.append(
                f"event hook {hooks[i].get('webhook_url')} looks like this bot's at an old "
                "address (its path ends with the push route): --prune removes it"
            )
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
    if prune and stale_ids:
        merged = [h for h in merged if id(h) not in stale_ids]
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
    base = url.rstrip("/")
    prefix = webhook_prefix()
    if prefix and urlsplit(base).path.endswith(prefix):
        base = base[: -len(prefix)]
        click.echo(
            f"Note: --url ends with the webhook prefix {prefix}: taken as {base} "
            f"(the webhooks are at {base}{prefix}/...)",
            err=True,
        )
    return base


def _enabled_nowhere(
    client: StreamClient, bot: Bot, plan: Plan, channel_types: Mapping[str, list[str]]
) -> list[str]:
    """The bot's commands that no channel type enables once ``plan`` is applied."""
    from ..runtime.stream_api import channel_type_command_names

    listed = client.request("GET", "/channeltypes").get("channel_types") or {}
    enabled: set[str] = set()
    for name, settings in listed.items():
        if name in plan.channel_types:
            names = plan.channel_types[name][1]
        elif name in channel_types:
            names = channel_types[name]
        else:
            names = channel_type_command_names(settings) if isinstance(settings, Mapping) else []
        if "all" in names:
            return []
        enabled.update(names)
    return [name for name in bot.commands if name not in enabled]


@click.command(context_settings=CONTEXT)
@click.option(
    "--url", required=True, help="The bot's public base URL, e.g. https://bot.example.com."
)
@click.option("--dry-run", is_flag=True, help="Print what would change; change nothing.")
@click.option(
    "--prune",
    is_flag=True,
    help="Delete Stream commands the bot no longer has, its hook URLs it no longer needs, and "
    "its push hooks at old addresses (event hooks whose URL path ends with the bot's push "
    "route, /webhooks/stream/push or BOTKIT_URL_PREFIX/push, on another host or base path).",
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
    nothing the second time. Other services' event hooks are kept. --url is the
    bot's base address; one that already ends with the webhook prefix
    (https://bot.example.com/webhooks/stream) is taken as that prefix, not doubled.
    A command works only on the channel types that enable it: sync warns about
    commands that no channel type enables.

    \b
    Examples:
      botkit sync --url https://bot.example.com --channel-type messaging --dry-run
      botkit sync --url https://bot.example.com --channel-type messaging
      botkit sync --url https://new-host.example.com --channel-type messaging --prune
    """
    from ..runtime.stream_api import StreamAPIError, channel_type_command_names

    base_url = _check_base_url(url)
    bot = loaded(ctx).bot
    problems = check_bot_for_stream(bot)
    if problems:
        for problem in problems:
            click.echo(f"Refused: {problem}", err=True)
        fail("nothing was sent to Stream; fix the bot's commands first")
    client = _stream_client()
    push_url = f"{base_url}{webhook_prefix()}/push"
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
            nowhere = _enabled_nowhere(client, bot, plan, types)
            if nowhere:
                click.echo(
                    f"Warning: {', '.join('/' + n for n in nowhere)} "
                    f"{'is' if len(nowhere) == 1 else 'are'} enabled on no channel type, so "
                    "no one can use them: add --channel-type messaging (or the types where "
                    "they should work)",
                    err=True,
                )
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
