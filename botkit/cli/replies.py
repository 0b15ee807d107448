"""Reading a bot's reply as a terminal shows it: its text, attachments, state, the
buttons ``botkit send --click`` can press (attachment actions and MML forms) and what
Stream's client lines will show differently (the render check)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qsl

from .common import fail


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


def short(value: Any, limit: int = 100) -> str:
    """``value`` cut to ``limit`` characters; a data: URL shown by its size only."""
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
                lines.append(f"    {key}: {short(attachment[key])}")
        for f in attachment.get("fields") or []:
            if isinstance(f, Mapping):
                lines.append(f"    {f.get('title', '')}: {f.get('value', '')}")
    if message.get("mml"):
        lines.append(f"  mml (clients that cannot show it show the text above): {message['mml']}")
    state = custom_fields(message)
    if state:
        shown = ", ".join(f"{k}={short(json.dumps(v), 60)}" for k, v in state.items())
        lines.append(f"  state: {shown}")
    buttons = buttons_of(message)
    if buttons:
        lines.append("  buttons (click with --click N):")
        for i, b in enumerate(buttons, 1):
            pairs = "&".join(f"{k}={v}" for k, v in b.form_data.items())
            where = " (mml form)" if b.source == "mml" else ""
            lines.append(f"    [{i}] {b.label}  {pairs}{where}")
    return lines


def describe_warnings(
    message: Mapping[str, Any] | None, before: Mapping[str, Any] | None = None
) -> list[str]:
    """What Stream's client lines show differently from ``message`` (redrawn over the
    clicked message ``before``), as terminal lines: each warning once, with the lines it
    holds for (``current``, ``mml``)."""
    from ..core.render import LINES, check_reply, check_update

    found: dict[tuple[int, str, str, str], list[str]] = {}
    for line in LINES:
        for w in check_reply(message, line) + check_update(before, message, line):
            found.setdefault((w.rule, w.code, w.where, w.text), []).append(line)
    if not found:
        return []
    out = ["  what Stream's clients will show differently (README: What Stream's clients show):"]
    for (rule, _code, where, text), lines in found.items():
        said = text if text.startswith(where) else f"{where}: {text}"
        out.append(f"    [{', '.join(lines)}] rule {rule}: {said}")
    return out


def parse_click(spec: str, message: Mapping[str, Any] | None) -> dict[str, str]:
    """The form data a ``--click`` sends: button N, the button labelled so, or name=value."""
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
