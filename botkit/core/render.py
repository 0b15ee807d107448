"""What Stream's own React client will show of a reply: a check from the reply's JSON alone.

Stream's client does not show every reply the way its JSON reads (the measured rules
are in the README's "What Stream's clients show"). :func:`check_reply` finds the
problems a bot author can fix, for one client line:

- ``"current"``: stream-chat-react 14.x, which renders no MML at all;
- ``"mml"``: 13.1 and older, which render MML with mml-react.

::

    from botkit.core.render import check_reply

    problems = [f"{w.where}: {w.text}" for w in check_reply(reply_message, line="current")]

Each :class:`RenderWarning` names the rule of the reference it comes from (1-3, 8, 9),
a short ``code``, a sentence for the author (what the user will see, what to do) and
``where`` in the message it is. A reply with neither attachments nor MML costs a couple
of dict lookups: the pipeline runs this on every command reply.

One problem cannot be seen in one reply: mml-react keys a form's inputs by position, so
a redraw that inserts an element above them (an error note) shows each input with its
neighbour's value. :func:`check_update` compares the clicked message with the answer.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

__all__ = ["LINES", "RenderWarning", "check_reply", "check_update"]

#: The client lines a reply can be checked for: ``current`` (14.x, no MML) and ``mml``
#: (13.1 and older, MML rendered by mml-react).
LINES = ("current", "mml")


@dataclass(frozen=True)
class RenderWarning:
    """One way a client line shows a reply differently from what its JSON says.

    ``rule`` is the rule's number in the reference (1-3, 8, 9), ``code`` a short name
    for it, ``text`` a sentence for the bot author, ``where`` the field, e.g.
    ``"attachments[0].image_url"``.
    """

    rule: int
    code: str
    text: str
    where: str

    def __str__(self) -> str:
        text = self.text if self.text.startswith(self.where) else f"{self.where}: {self.text}"
        return f"{text} (rule {self.rule}, {self.code})"


# -- rule 1: URLs the client sanitises to about:blank ------------------------------------

#: Attachment fields the client passes through @braintree/sanitize-url, and what the
#: user sees when one is refused.
_URL_FIELDS = {
    "image_url": "shows a grey placeholder; serve the picture over https",
    "thumb_url": "shows a grey placeholder; serve the picture over https",
    "title_link": "the title links nowhere; link to an https page",
    "asset_url": "the file cannot be opened; serve it over https",
}
_PICTURE = "shows a grey placeholder; serve the picture over https"
# sanitize-url drops these before it looks at the scheme, then refuses any scheme that
# starts (after non-word characters) with one of the three names.
_IGNORED_CHARS = re.compile("[\x00-\x20\x7f-\x9f\u2000-\u200d\ufeff]")
_REFUSED_SCHEME = re.compile(r"[^\w]*(javascript|data|vbscript)", re.IGNORECASE)


def _refused_scheme(url: Any) -> str | None:
    if not isinstance(url, str) or url.startswith(("https:", "http:")):
        return None  # nearly every URL: answered without a regex
    scheme, colon, _ = url.partition(":")
    if not colon:
        return None  # a relative URL
    match = _REFUSED_SCHEME.match(_IGNORED_CHARS.sub("", scheme))
    return match.group(1).lower() if match else None


def _refused_urls(attachment: Mapping[str, Any], at: str) -> list[RenderWarning]:
    found: list[tuple[str, str, str]] = []  # where, scheme, what the user sees
    for key, consequence in _URL_FIELDS.items():
        scheme = _refused_scheme(attachment.get(key))
        if scheme is not None:
            found.append((f"{at}.{key}", scheme, consequence))
    giphy = attachment.get("giphy")
    if isinstance(giphy, Mapping):
        for name, rendition in giphy.items():
            scheme = (
                _refused_scheme(rendition.get("url")) if isinstance(rendition, Mapping) else None
            )
            if scheme is not None:
                found.append((f"{at}.giphy.{name}.url", scheme, _PICTURE))
    return [
        RenderWarning(
            1,
            "refused-url",
            f"{where} is a {scheme}: URL: Stream's client replaces it with about:blank "
            f"and {consequence}",
            where,
        )
        for where, scheme, consequence in found
    ]


# -- rules 2 and 3: buttons ---------------------------------------------------------------


def _buttons_hidden(attachment: Mapping[str, Any]) -> bool:
    """Rule 2: buttons show on giphy and image attachments and on any with a title_link;
    any other attachment with buttons is replaced by an "Unsupported attachment" box."""
    return attachment.get("type") not in ("giphy", "image") and not attachment.get("title_link")


# -- MML ----------------------------------------------------------------------------------

_FIELDS = ("input", "number", "scheduler")
_WORDS = re.compile(r"[^\w@#]+")


def _norm(text: str) -> str:
    """Text as a reader compares it: case, punctuation and spacing left out."""
    return " ".join(_WORDS.sub(" ", text.casefold()).split())


@dataclass
class Form:
    """What an MML tree holds, as a client reads it (for botkit's own tools)."""

    name: str | None = None  # the root's name: sent as mml_name
    lines: list[str] = field(default_factory=list)  # text and md, line by line
    buttons: list[tuple[str, str, str]] = field(default_factory=list)  # label, name, value
    links: list[str] = field(default_factory=list)  # link buttons' labels
    fields: list[tuple[str, str, bool]] = field(default_factory=list)  # tag, name, has value
    #: The values a client submits without the user typing: name -> the initial value of
    #: every input, number and scheduler that has one (hidden inputs included).
    values: dict[str, str] = field(default_factory=dict)
    #: Every element by its position (child indexes from the root), as mml-react keys
    #: them: tag, name, and whether the user can type into it.
    positions: dict[tuple[int, ...], tuple[str, str, bool]] = field(default_factory=dict)


class _MMLReader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.form = Form()
        self._open: str | None = None  # text, md or button being read
        self._tags: list[str] = []  # the open elements
        self._path: list[int] = [0]  # the next child's index at each depth
        self._attrs: dict[str, str] = {}
        self._data: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        here = tuple(self._path)
        self._path[-1] += 1
        self._path.append(0)
        self._tags.append(tag)
        editable = tag in _FIELDS and a.get("type") != "hidden"
        self.form.positions[here] = (tag, a.get("name", ""), editable)
        if tag == "mml" and a.get("name"):
            self.form.name = a["name"]
        if tag in _FIELDS and a.get("name"):
            initial = a.get("selected" if tag == "scheduler" else "value")
            if initial is not None:
                self.form.values[a["name"]] = initial
        if tag in ("text", "md", "button"):
            self._open, self._attrs, self._data = tag, a, []
        elif tag in _FIELDS and a.get("type") != "hidden":
            filled = a.get("selected" if tag == "scheduler" else "value", "").strip() != ""
            self.form.fields.append((tag, a.get("name", ""), filled))

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._data.append(data)

    def handle_endtag(self, tag: str) -> None:
        if self._tags and self._tags[-1] == tag:
            self._tags.pop()
            self._path.pop()
        if tag != self._open:
            return
        content = "".join(self._data)
        if tag == "button":
            label = " ".join(content.split())
            if self._attrs.get("url"):
                self.form.links.append(label)
            else:
                name, value = self._attrs.get("name", ""), self._attrs.get("value", "")
                self.form.buttons.append((label, name, value))
        else:
            self.form.lines += [line.strip() for line in content.splitlines() if line.strip()]
        self._open = None


def read_form(mml: str) -> Form | None:
    """The form in ``mml``, or None when nothing in it is readable."""
    reader = _MMLReader()
    try:
        reader.feed(mml)
        reader.close()
    except Exception:  # HTMLParser is lenient; nothing readable means nothing to compare
        return None
    return reader.form


def _message_lines(message: Mapping[str, Any], attachments: list[Any]) -> list[str]:
    """Every line of words the current client shows: the text and the attachments'."""
    out: list[str] = []
    if isinstance(message.get("text"), str):
        out += message["text"].splitlines()
    for attachment in attachments:
        if not isinstance(attachment, Mapping):
            continue
        for key in ("pretext", "title", "text"):
            if isinstance(attachment.get(key), str):
                out += attachment[key].splitlines()
        for f in attachment.get("fields") or ():
            if isinstance(f, Mapping):
                out += [str(f.get("title", "")), str(f.get("value", ""))]
    return [n for n in (_norm(line) for line in out) if n]


# -- the check ----------------------------------------------------------------------------


def check_reply(message: Mapping[str, Any] | None, line: str = "current") -> list[RenderWarning]:
    """What the client line ``line`` will show differently from ``message``'s JSON.

    ``message`` is the reply's ``message`` object as Stream gets it (None, a deletion,
    has nothing to show). ``line`` is one of :data:`LINES`. Returns the warnings in the
    order of the message's fields; an empty list when the reply renders as written.
    """
    if line not in LINES:
        raise ValueError(f"unknown client line {line!r}: choose one of {', '.join(LINES)}")
    if message is None:
        return []
    raw_attachments = message.get("attachments")
    mml = message.get("mml")
    if not raw_attachments and not mml:
        return []  # the common case, on the hot path: plain text renders as written
    attachments = list(raw_attachments) if isinstance(raw_attachments, list) else []
    mml_text = mml if isinstance(mml, str) and mml and not mml.isspace() else ""
    has_mml = bool(mml_text)
    warnings: list[RenderWarning] = []
    visible_buttons: list[tuple[str, str, str, str]] = []  # where, label, name, value
    for i, attachment in enumerate(attachments):
        if not isinstance(attachment, Mapping):
            continue
        at = f"attachments[{i}]"
        warnings += _refused_urls(attachment, at)
        actions = [a for a in attachment.get("actions") or () if isinstance(a, Mapping)]
        if not actions:
            continue
        if _buttons_hidden(attachment):
            kind = attachment.get("type") or "text"
            warnings.append(
                RenderWarning(
                    2,
                    "unsupported-attachment",
                    f"{at} is a {kind} attachment with buttons but no title_link: Stream's "
                    'client will not show its buttons, it shows an "Unsupported attachment" '
                    "box in its place; give it a title_link or make it an image attachment",
                    f"{at}.actions",
                )
            )
            continue
        if isinstance(attachment.get("text"), str) and attachment["text"].strip():
            warnings.append(
                RenderWarning(
                    3,
                    "text-twice",
                    f"{at} has buttons and a text: Stream's client shows the text twice, "
                    "once more squeezed into the button row; put it in the title or the "
                    "message text and leave the attachment's text empty",
                    f"{at}.text",
                )
            )
        if not has_mml:
            continue  # the buttons are compared with the MML's only
        for j, action in enumerate(actions):
            label = str(action.get("text") or action.get("value") or action.get("name") or "")
            name, value = str(action.get("name", "")), str(action.get("value", ""))
            visible_buttons.append((f"{at}.actions[{j}]", label, name, value))
    form = read_form(mml_text) if has_mml else None
    if form is not None:
        if line == "mml":
            warnings += _shown_beside_mml(message, attachments, form, visible_buttons)
        else:
            warnings += _mml_not_shown(message, attachments, form, visible_buttons)
    return warnings


def _shown_beside_mml(
    message: Mapping[str, Any],
    attachments: list[Any],
    form: Form,
    buttons: list[tuple[str, str, str, str]],
) -> Iterator[RenderWarning]:
    """Rule 8: clients that render MML show the text and the attachments as well."""
    mml_lines = [n for n in (_norm(line) for line in form.lines) if n]
    text = message.get("text")
    if isinstance(text, str) and mml_lines:
        text_lines = [n for n in (_norm(line) for line in text.splitlines()) if n]
        repeated = [m for m in mml_lines if any(m in t for t in text_lines)]
        if repeated:
            yield RenderWarning(
                8,
                "fallback-beside-mml",
                "the message text repeats the MML's text: clients that render MML show "
                "the text and the MML together, so the user reads it twice; keep the "
                "words in the message text and only the inputs and buttons in the MML",
                "text",
            )
    mml_buttons = {(label.casefold(), name, value) for label, name, value in form.buttons}
    labels = {label for label, _, _ in mml_buttons}
    pairs = {(name, value) for _, name, value in mml_buttons if name}
    for where, label, name, value in buttons:
        if label.casefold() in labels or (name, value) in pairs:
            yield RenderWarning(
                8,
                "buttons-twice",
                f"the button {label!r} is both on an attachment and in the MML: clients "
                "that render MML show both sets of buttons; keep each choice in one place",
                where,
            )


def _mml_not_shown(
    message: Mapping[str, Any],
    attachments: list[Any],
    form: Form,
    buttons: list[tuple[str, str, str, str]],
) -> Iterator[RenderWarning]:
    """Rule 9: the current client renders no MML; what only the MML holds is lost."""
    for tag, name, filled in form.fields:
        if filled:
            continue  # the value is there already (taken from the command's arguments)
        if buttons:
            then = "the buttons go on without it"
        else:
            then = "and the reply has no button they could use instead"
        yield RenderWarning(
            9,
            "mml-only-input",
            f"the MML {tag} {name!r} is empty and only the MML can fill it: users of the "
            f"current client cannot fill this form ({then}); take the value from the "
            "command's arguments (with usage help when it is missing) or offer fixed "
            "choices as buttons",
            f"mml {tag} {name!r}",
        )
    shown = _message_lines(message, attachments)
    lines = [
        line for line in form.lines if _norm(line) and not any(_norm(line) in s for s in shown)
    ]
    labels = [_norm(label) for _, label, _, _ in buttons]
    hidden = [f"[{label}]" for label in form.links if not any(_norm(label) in s for s in shown)]
    if not form.fields:  # the buttons of a form with inputs only submit that form
        hidden += [f"[{b[0]}]" for b in form.buttons if _norm(b[0]) not in labels]
    if lines or hidden:
        # the words themselves stay out: this text goes to the log
        parts = [f"{len(lines)} line{'s' if len(lines) > 1 else ''} of text"] if lines else []
        parts += (
            [f"the button{'s' if len(hidden) > 1 else ''} {' '.join(hidden)}"] if hidden else []
        )
        yield RenderWarning(
            9,
            "mml-invisible",
            f"the MML holds {' and '.join(parts)} that the message text and attachments do "
            "not: the current client does not render MML, so its users never see them; "
            "say it in the text or offer it as an attachment button too",
            "mml",
        )


def check_update(
    before: Mapping[str, Any] | None, after: Mapping[str, Any] | None, line: str = "mml"
) -> list[RenderWarning]:
    """What ``line`` shows wrongly when the message ``before`` is redrawn as ``after``
    (the answer to a click or submit on it): rule 8, mml-react keys a form's elements by
    position, so an input that moved to where another input was shows that one's value.

    Typical cause: an error note inserted above the inputs. Keep the elements in place
    (an empty note that is always there) or put the note in the message text. Only the
    ``mml`` line renders MML; for ``current`` this is always empty.
    """
    if line not in LINES:
        raise ValueError(f"unknown client line {line!r}: choose one of {', '.join(LINES)}")
    if line != "mml" or not before or not after:
        return []
    old_mml, new_mml = before.get("mml"), after.get("mml")
    if not (isinstance(old_mml, str) and isinstance(new_mml, str) and old_mml and new_mml):
        return []
    old, new = read_form(old_mml), read_form(new_mml)
    if old is None or new is None:
        return []
    warnings = []
    for path, (tag, name, editable) in new.positions.items():
        was = old.positions.get(path)
        if editable and was is not None and was[0] == tag and was[2] and was[1] != name:
            warnings.append(
                RenderWarning(
                    8,
                    "input-shifted",
                    f"the MML {tag} {name!r} now stands where {was[1]!r} stood: mml-react "
                    "keys inputs by position, so it shows what the user typed into "
                    f"{was[1]!r}; keep the elements above the inputs the same (put an error "
                    "note in the message text, or keep an empty note in place)",
                    f"mml {tag} {name!r}",
                )
            )
    return warnings
