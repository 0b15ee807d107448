"""Reply builders: what a handler returns to Stream.

A handler returns ``None`` (leave the message as it is), a ``str`` (new text), a
:class:`Message`, or a ``dict`` of message fields. botkit merges the reply over the
incoming message, so the reply always keeps the message id and the custom fields that
hold the bot's state.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .mml import Element, fallback_text

__all__ = ["Action", "Attachment", "Field", "Message"]

Style = Literal["default", "primary"]
#: The button styles Stream clients know (React adds the class ``...-button--<style>``).
STYLES: tuple[str, ...] = ("default", "primary")


@dataclass(frozen=True)
class Action:
    """A button on an attachment. A click sends ``form_data = {name: value}``."""

    name: str
    value: str
    text: str
    style: Style = "default"
    type: str = "button"

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            close = difflib.get_close_matches(str(self.style), STYLES, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ValueError(
                f"Unknown button style {self.style!r} on button {self.text!r}: {hint}"
                f"Stream clients know {' and '.join(repr(s) for s in STYLES)}"
            )

    @classmethod
    def button(cls, name: str, value: str, text: str, style: Style = "default") -> Action:
        """A button that sends ``{name: value}`` when clicked; ``text`` is its label."""
        return cls(name=name, value=value, text=text, style=style)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "text": self.text,
            "type": self.type,
            "style": self.style,
            "value": self.value,
        }


@dataclass(frozen=True)
class Field:
    """A title/value pair shown in an attachment's table."""

    title: str
    value: str
    short: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, "value": self.value, "short": self.short}


@dataclass
class Attachment:
    """An attachment: an image, a giphy card, a link card, with optional buttons.

    Current Stream React clients show buttons only on ``giphy`` and ``image`` attachments
    or on attachments with a ``title_link`` (or ``og_scrape_url``); botkit warns in the
    log when a reply's buttons would not render. Custom keys go in ``extra`` and are sent
    flat, as Stream's API expects.
    """

    type: str | None = None
    title: str | None = None
    title_link: str | None = None
    text: str | None = None
    pretext: str | None = None
    fallback: str | None = None
    color: str | None = None
    image_url: str | None = None
    thumb_url: str | None = None
    asset_url: str | None = None
    og_scrape_url: str | None = None
    author_name: str | None = None
    author_link: str | None = None
    author_icon: str | None = None
    footer: str | None = None
    footer_icon: str | None = None
    giphy: dict[str, Any] | None = None
    fields: list[Field] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.extra)
        for name in (
            "type", "title", "title_link", "text", "pretext", "fallback", "color",
            "image_url", "thumb_url", "asset_url", "og_scrape_url", "author_name",
            "author_link", "author_icon", "footer", "footer_icon", "giphy",
        ):  # fmt: skip
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.fields:
            out["fields"] = [f.to_dict() for f in self.fields]
        if self.actions:
            out["actions"] = [a.to_dict() for a in self.actions]
        return out


def _attachment_dict(a: Attachment | Mapping[str, Any]) -> dict[str, Any]:
    return a.to_dict() if isinstance(a, Attachment) else dict(a)


class Message:
    """The changes a handler makes to the message it was called for.

    Build one with :meth:`ephemeral`, :meth:`publish`, :meth:`error` or :meth:`delete`. ``state`` sets custom fields on the message: they
    come back on the next button click as ``ctx.state``.
    """

    __slots__ = ("changes", "deleted", "publish_")

    def __init__(
        self,
        type: str | None = None,
        text: str | None = None,
        *,
        attachments: Iterable[Attachment | Mapping[str, Any]] | None = None,
        mml: Element | str | None = None,
        state: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> None:
        changes: dict[str, Any] = dict(state or {})
        changes.update(fields)
        if type is not None:
            changes["type"] = type
        if attachments is not None:
            changes["attachments"] = [_attachment_dict(a) for a in attachments]
        if mml is not None:
            if isinstance(mml, Element):
                if text is None:
                    text = fallback_text(mml)
                mml = mml.render()
            changes["mml"] = mml
        if text is not None:
            changes["text"] = text
        self.changes = changes
        self.deleted = False
        self.publish_ = type == "regular"

    @classmethod
    def ephemeral(
        cls,
        text: str | None = None,
        *,
        attachments: Iterable[Attachment | Mapping[str, Any]] | None = None,
        mml: Element | str | None = None,
        state: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> Message:
        """A message only the user who ran the command sees, e.g. a preview with buttons."""
        return cls("ephemeral", text, attachments=attachments, mml=mml, state=state, **fields)

    @classmethod
    def publish(
        cls,
        text: str | None = None,
        *,
        attachments: Iterable[Attachment | Mapping[str, Any]] | None = None,
        state: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> Message:
        """Publish the message to the channel. Buttons and MML forms are removed."""
        return cls("regular", text, attachments=attachments, state=state, **fields)

    @classmethod
    def regular(
        cls,
        text: str | None = None,
        *,
        attachments: Iterable[Attachment | Mapping[str, Any]] | None = None,
        state: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> Message:
        """Deprecated: use :meth:`publish`, which does the same."""
        warnings.warn(
            "Message.regular() is deprecated; use Message.publish()",
            DeprecationWarning,
            stacklevel=2,
        )
        return cls.publish(text, attachments=attachments, state=state, **fields)

    @classmethod
    def error(cls, text: str) -> Message:
        """An error only the sender sees; for before-send hooks, a rejection."""
        return cls("error", text, attachments=[], mml="")

    @classmethod
    def delete(cls) -> Message:
        """Remove the (ephemeral) message: answers ``{"message": null}``."""
        msg = cls()
        msg.deleted = True
        return msg

    @property
    def type(self) -> str | None:
        t = self.changes.get("type")
        return t if isinstance(t, str) else None

    @property
    def text(self) -> str | None:
        t = self.changes.get("text")
        return t if isinstance(t, str) else None

    def merge_into(self, incoming: Mapping[str, Any]) -> dict[str, Any] | None:
        """The full reply: the incoming message with these changes applied."""
        if self.deleted:
            return None
        out = dict(incoming)
        out.update(self.changes)
        if self.publish_:
            attachments = out.get("attachments") or []
            out["attachments"] = [
                {k: v for k, v in a.items() if k != "actions"}
                for a in attachments
                if isinstance(a, Mapping)
            ]
            if "mml" not in self.changes and out.get("mml"):
                out["mml"] = ""
        return out

    def __repr__(self) -> str:
        if self.deleted:
            return "Message.delete()"
        return f"Message({self.changes!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message):
            return NotImplemented
        return (self.changes, self.deleted) == (other.changes, other.deleted)

    __hash__ = None  # type: ignore[assignment]


def coerce_reply(value: Any) -> Message:
    """Turn what a handler returned into a :class:`Message`; ``TypeError`` otherwise."""
    if value is None:
        return Message()
    if isinstance(value, Message):
        return value
    if isinstance(value, str):
        return Message(text=value)
    if isinstance(value, Mapping):
        if set(value) == {"message"}:
            inner = value["message"]
            if inner is None:
                return Message.delete()
            if not isinstance(inner, Mapping):
                raise TypeError("a handler's {'message': ...} must hold a dict or None")
            value = inner
        msg = Message()
        msg.changes = dict(value)
        msg.publish_ = value.get("type") == "regular"
        return msg
    raise TypeError(
        f"a handler returned {type(value).__name__}; return None, a str, a Message or a dict"
    )
