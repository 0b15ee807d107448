"""``botkit send`` and ``botkit sign``: talk to a running bot exactly as Stream would."""

from __future__ import annotations

import json
import os
import shlex
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import click

from ..core.config import DEV_API_KEY, DEV_API_SECRET
from .common import CONTEXT, fail, webhook_prefix
from .replies import describe_message, describe_warnings, parse_click, short

if TYPE_CHECKING:
    import requests

DEFAULT_URL = "http://127.0.0.1:8000"


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
                    click.echo(f"  {key}: {short(json.dumps(value), 200)}")
            else:
                click.echo("passed unchanged")
        return
    if kind == "push":
        click.echo("  " + json.dumps(data))
        return
    reply = data.get("message")
    for line in describe_message(reply, deleted="message" in data and reply is None):
        click.echo(line)
    clicked = sent.get("message") if "form_data" in sent else None
    for line in describe_warnings(
        reply if isinstance(reply, Mapping) else None,
        clicked if isinstance(clicked, Mapping) else None,
    ):
        click.echo(line)


@click.command(context_settings=CONTEXT)
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
    prefix = webhook_prefix()
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
                form = parse_click(clicks[step], reply)
                assert reply is not None
                payload = action_payload(reply, form, user=author)
                path = f"/custom-commands?type={reply.get('command') or 'mml'}"
    if failed:
        sys.exit(1)


# -- sign ------------------------------------------------------------------------------------


def _guess_path(body: bytes) -> str:
    prefix = webhook_prefix()
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


@click.command(context_settings=CONTEXT)
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
