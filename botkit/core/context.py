"""What a handler receives."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from .messages import Message
from .schemas import MESSAGE_FIELDS

if TYPE_CHECKING:
    from .bot import Bot

__all__ = ["BeforeSendContext", "ClickedAction", "CommandContext", "Event"]


class ClickedAction(NamedTuple):
    """The button (or form submit button) a user clicked: ``form_data[name] == value``."""

    name: str
    value: str


def custom_fields(message: Mapping[str, Any]) -> dict[str, Any]:
    """A message's custom fields: every key Stream does not define itself."""
    return {k: v for k, v in message.items() if k not in MESSAGE_FIELDS}


def split_cid(cid: str | None) -> tuple[str | None, str | None]:
    """``"messaging:general"`` -> ``("messaging", "general")``."""
    if not cid or ":" not in cid:
        return None, None
    kind, _, ident = cid.partition(":")
    return kind, ident


@dataclass
class CommandContext:
    """A custom command call or a click on one of its buttons or forms.

    ``message`` and ``user`` are the payload's objects as Stream sent them. ``args`` is the
    raw text after the command. ``state`` holds the message's custom fields: put values
    there with ``Message.ephemeral(..., state={...})`` and read them back on the click.
    """

    bot: Bot
    message: dict[str, Any]
    user: dict[str, Any]
    command: str
    args: str = ""
    form_data: dict[str, str] | None = None
    action: ClickedAction | None = None
    webhook_id: str | None = None
    attempt: int = 1
    api_key: str | None = None
    state: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    form: Any = None
    #: Where users' browsers reach the bot, without a trailing slash, e.g.
    #: ``"https://bot.example.com"``: ``BOTKIT_PUBLIC_URL`` when set, else the scheme and
    #: host this webhook came in on. Link to your own routes with it:
    #: ``f"{ctx.public_url}/pictures/cat.png"``. Empty when the call did not come over HTTP.
    public_url: str = ""

    @property
    def cid(self) -> str | None:
        """The channel the command was typed in, as ``"type:id"``."""
        cid = self.message.get("cid")
        return cid if isinstance(cid, str) else None

    @property
    def user_id(self) -> str:
        return str(self.user.get("id", ""))

    @property
    def is_action(self) -> bool:
        """True on a button click or form submit (``form_data`` present)."""
        return self.form_data is not None

    def error(self, text: str) -> Message:
        """Deprecated: return ``Message.error(text)``, which does the same."""
        warnings.warn(
            "ctx.error(text) is deprecated; use Message.error(text)",
            DeprecationWarning,
            stacklevel=2,
        )
        return Message.error(text)


@dataclass
class BeforeSendContext:
    """A message about to be stored, for a ``@bot.before_send`` hook.

    ``message`` reflects the changes of the hooks that ran before this one.
    """

    bot: Bot
    message: dict[str, Any]
    user: dict[str, Any]
    channel: dict[str, Any] | None = None
    request_info: dict[str, Any] | None = None
    webhook_id: str | None = None
    attempt: int = 1
    api_key: str | None = None

    @property
    def text(self) -> str:
        text = self.message.get("text")
        return text if isinstance(text, str) else ""

    @property
    def cid(self) -> str | None:
        if self.channel and isinstance(self.channel.get("cid"), str):
            return str(self.channel["cid"])
        cid = self.message.get("cid")
        return cid if isinstance(cid, str) else None

    def reject(self, text: str) -> Message:
        """Refuse the message; the sender sees ``text`` as an error."""
        return Message.error(text)


@dataclass
class Event:
    """A push event (``message.new``, ``reaction.new``, ...) as Stream sent it."""

    data: dict[str, Any]
    webhook_id: str | None = None
    attempt: int = 1
    api_key: str | None = None
    bot: Bot | None = None

    @property
    def type(self) -> str:
        return str(self.data["type"])

    @property
    def user(self) -> dict[str, Any] | None:
        user = self.data.get("user")
        return user if isinstance(user, dict) else None

    @property
    def message(self) -> dict[str, Any] | None:
        message = self.data.get("message")
        return message if isinstance(message, dict) else None

    @property
    def cid(self) -> str | None:
        cid = self.data.get("cid")
        if isinstance(cid, str):
            return cid
        message = self.message
        if message and isinstance(message.get("cid"), str):
            return str(message["cid"])
        return None

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)
