"""Build Stream Chat MML (Message Markup Language) safely from Python.

MML is the small XML dialect Stream Chat carries in ``message["mml"]``; it
is rendered by `mml-react <https://github.com/GetStream/mml-react>`_.  An
unknown tag or malformed markup breaks the *whole* message, so instead of
formatting strings by hand, build a tree of :class:`Element` values with
the builder functions below (one per MML tag, named after it) and call
``str()`` on the root::

    from botkit.mml import button, button_list, fallback_text, input_, mml, text

    form = mml(
        text("Your email?"),
        input_("email", label="Email"),
        button_list(button("Submit", name="action", value="submit")),
        name="ticket",
    )
    message = {"text": fallback_text(form), "mml": str(form)}

When the user submits the form, the bot receives ``form_data`` such as
``{"mml_name": "ticket", "email": "...", "action": "submit"}``.

Always send a plain-text fallback (:func:`fallback_text`) next to the MML:
current Stream React clients no longer render MML at all.

Escaping and character policy
-----------------------------
Any string may be passed in, including hostile user input such as
``'</text><button name="x">'``; it always ends up as text or an attribute
value, never as markup.

* Characters XML 1.0 forbids (NUL and other C0 control characters except
  tab, newline and carriage return, lone surrogates, U+FFFE and U+FFFF) are
  silently **removed** from text and attribute values.
* Line endings are normalised the way every XML parser would do it anyway:
  in text ``\\r\\n`` and ``\\r`` become ``\\n``; in attribute values tab,
  newline and carriage return become a single space each (``\\r\\n`` counts
  as one).  :class:`Element` stores the cleaned values, so what you read
  back from an element is exactly what a client parses out of the markup.
* Only ``&amp;``, ``&lt;`` and ``&gt;`` are used for escaping.  mml-react
  re-escapes every other entity (``&quot;``, ``&apos;``, ``&#10;``, ...) and
  would show it literally.  Quotes inside attribute values are therefore
  handled by choosing the delimiter: a value containing ``"`` but no ``'``
  is written between single quotes.  Only a value containing *both* kinds
  of quote needs ``&quot;`` (valid XML, but mml-react will show it as
  ``&quot;``).
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "TAGS",
    "AttrValue",
    "Element",
    "Node",
    "add_to_calendar",
    "button",
    "button_list",
    "carousel",
    "col",
    "escape_attr",
    "escape_text",
    "fallback_text",
    "icon",
    "image",
    "input_",
    "item",
    "md",
    "mml",
    "number",
    "row",
    "scheduler",
    "text",
]

#: Every tag mml-react understands.  Nothing else may be produced.
TAGS: frozenset[str] = frozenset(
    {
        "mml",
        "text",
        "md",
        "icon",
        "image",
        "button",
        "button_list",
        "input",
        "number",
        "scheduler",
        "add_to_calendar",
        "carousel",
        "item",
        "row",
        "col",
    }
)

#: A value accepted for an attribute: ``True`` becomes ``"true"``, ints are
#: written in decimal and ``None`` leaves the attribute out.
AttrValue = str | int | bool | None

# Tags whose children are text only (the text, the markdown, the label).
_TEXT_TAGS = frozenset({"text", "md", "button"})
# Tags that never have children.
_EMPTY_TAGS = frozenset({"icon", "image", "input", "number", "scheduler", "add_to_calendar"})
# Containers whose children must all be one specific tag.
_ONLY_CHILD: dict[str, str] = {
    "button_list": "button",
    "carousel": "item",
    "row": "col",
}
# Containers of arbitrary (non-root) elements.
_BLOCK_TAGS = frozenset({"mml", "item", "col"})

_ILLEGAL_XML_CHARS = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_ATTR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*\Z")
_NEWLINE = re.compile(r"\r\n?")
_ATTR_WHITESPACE = re.compile(r"\r\n|[\t\n\r]")


def _clean_text(s: str) -> str:
    """Remove XML-illegal characters and normalise line endings to ``\\n``."""
    return _NEWLINE.sub("\n", _ILLEGAL_XML_CHARS.sub("", s))


def _clean_attr(s: str) -> str:
    """Remove XML-illegal characters; tab/CR/LF become a space."""
    return _ATTR_WHITESPACE.sub(" ", _ILLEGAL_XML_CHARS.sub("", s))


def escape_text(s: str) -> str:
    """Return *s* ready to be placed between MML tags.

    ``&``, ``<`` and ``>`` are escaped; characters XML 1.0 forbids are
    removed and line endings become ``\\n`` (see the module docstring).

    >>> escape_text("a < b & c")
    'a &lt; b &amp; c'
    """
    return _clean_text(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def escape_attr(s: str, quote: str = '"') -> str:
    """Return *s* ready to be placed inside an attribute delimited by *quote*.

    ``&``, ``<``, ``>`` and the delimiting *quote* (``"`` or ``'``) are
    escaped; the other quote character is left alone because mml-react
    shows ``&apos;``/``&quot;`` literally.  Characters XML 1.0 forbids are
    removed and tab/CR/LF become spaces (see the module docstring).

    >>> escape_attr('say "hi" & <go>')
    'say &quot;hi&quot; &amp; &lt;go&gt;'
    """
    if quote not in ('"', "'"):
        raise ValueError(f"quote must be '\"' or \"'\", not {quote!r}")
    escaped = _clean_attr(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return escaped.replace(quote, "&quot;" if quote == '"' else "&apos;")


def _quote_attr(value: str) -> str:
    """Delimit *value*, picking the quote that avoids entities if possible."""
    if '"' in value and "'" not in value:
        return "'" + escape_attr(value, "'") + "'"
    return '"' + escape_attr(value, '"') + '"'


@dataclass(frozen=True)
class Element:
    """One MML tag with its attributes and children; immutable.

    You normally get elements from the builder functions (:func:`mml`,
    :func:`text`, :func:`button`, ...) rather than constructing them.
    ``str(element)`` (or :meth:`render`) gives the MML source.

    Attributes:
        tag: One of :data:`TAGS`.
        attrs: ``(name, value)`` pairs in the order they are written, using
            the wire names (``dateInterval``, ``slideWidth``, ...).  Use
            ``dict(element.attrs)`` or :meth:`attr` to read them.
        children: Child elements and text strings.

    Construction checks the tag, attribute names and the allowed children,
    and cleans text and attribute values (see the module docstring), so an
    ``Element`` always renders to well-formed MML.
    """

    tag: str
    attrs: tuple[tuple[str, str], ...] = ()
    children: tuple[Element | str, ...] = ()

    def __post_init__(self) -> None:
        if self.tag not in TAGS:
            raise ValueError(
                f"unknown MML tag {self.tag!r}; it would break the whole "
                f"message (allowed: {', '.join(sorted(TAGS))})"
            )
        attrs: list[tuple[str, str]] = []
        seen: set[str] = set()
        for name, value in self.attrs:
            if not isinstance(name, str) or not _ATTR_NAME.match(name):
                raise ValueError(f"invalid attribute name {name!r} on <{self.tag}>")
            if name in seen:
                raise ValueError(f"duplicate attribute {name!r} on <{self.tag}>")
            if not isinstance(value, str):
                raise TypeError(
                    f"attribute {name!r} on <{self.tag}> must be a str, got {type(value).__name__}"
                )
            seen.add(name)
            attrs.append((name, _clean_attr(value)))
        children: list[Element | str] = []
        for child in self.children:
            if isinstance(child, str):
                children.append(_clean_text(child))
            elif isinstance(child, Element):
                children.append(child)
            else:
                raise TypeError(
                    f"children of <{self.tag}> must be Element or str, got {type(child).__name__}"
                )
        self._check_children(children)
        object.__setattr__(self, "attrs", tuple(attrs))
        object.__setattr__(self, "children", tuple(children))

    def _check_children(self, children: list[Element | str]) -> None:
        tag = self.tag
        if tag in _EMPTY_TAGS:
            if children:
                raise ValueError(f"<{tag}> cannot have children")
        elif tag in _TEXT_TAGS:
            if any(not isinstance(c, str) for c in children):
                raise ValueError(f"<{tag}> can only contain text")
        elif tag in _ONLY_CHILD:
            want = _ONLY_CHILD[tag]
            for c in children:
                if not isinstance(c, Element) or c.tag != want:
                    got = f"<{c.tag}>" if isinstance(c, Element) else repr(c)
                    raise ValueError(f"<{tag}> can only contain <{want}>, got {got}")
        else:  # _BLOCK_TAGS
            for c in children:
                if isinstance(c, str):
                    raise TypeError(f"<{tag}> cannot contain bare text; use text()")
                if c.tag == "mml":
                    raise ValueError("<mml> can only be the root element")

    def attr(self, name: str, default: str | None = None) -> str | None:
        """Return the value of attribute *name* (wire name), or *default*."""
        for key, value in self.attrs:
            if key == name:
                return value
        return default

    def render(self) -> str:
        """Return the MML source of this element and its children."""
        head = self.tag + "".join(f" {k}={_quote_attr(v)}" for k, v in self.attrs)
        if not self.children:
            return f"<{head}/>"
        inner = "".join(escape_text(c) if isinstance(c, str) else c.render() for c in self.children)
        return f"<{head}>{inner}</{self.tag}>"

    def __str__(self) -> str:
        return self.render()


#: A child of an element: another element or a text string.
Node = Element | str


def _attr_str(value: str | int | bool) -> str:
    # bool is a subclass of int, so it must be checked first.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value
    raise TypeError(f"attribute values must be str, int or bool, not {value!r}")


def _make(
    tag: str, attrs: Iterable[tuple[str, AttrValue]], children: Iterable[Node] = ()
) -> Element:
    pairs = tuple((k, _attr_str(v)) for k, v in attrs if v is not None)
    return Element(tag, pairs, tuple(children))


def _blocks(children: Iterable[Node]) -> list[Node]:
    """Wrap bare strings in ``text()`` for container builders."""
    return [text(c) if isinstance(c, str) else c for c in children]


def _required(what: str, value: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be a non-empty string, got {value!r}")
    return value


def _optional(what: str, value: str | None) -> str | None:
    return None if value is None else _required(what, value)


def _variant(value: str | None) -> str | None:
    if value not in (None, "floating"):
        raise ValueError(f"variant must be 'floating' or None, got {value!r}")
    return value


def _when(value: str | _dt.date | None) -> str | None:
    if isinstance(value, _dt.date):  # datetime is a subclass of date
        return value.isoformat()
    return value


# --------------------------------------------------------------------- tags


def mml(*children: Node, name: str | None = None, type: str | None = None) -> Element:
    """The root ``<mml>`` element; every MML message has exactly one.

    Args:
        children: The content.  Bare strings are wrapped in :func:`text`.
        name: Identifies the form; sent back as ``form_data["mml_name"]``.
        type: ``"card"`` draws the content inside a card.
    """
    if type not in (None, "card"):
        raise ValueError(f"mml type must be 'card' or None, got {type!r}")
    return _make(
        "mml",
        [("name", _optional("mml name", name)), ("type", type)],
        _blocks(children),
    )


def text(s: str) -> Element:
    """Plain text, shown as-is (``<text>``)."""
    return _make("text", [], [s] if s else [])


def md(s: str) -> Element:
    """Markdown text (``<md>``)."""
    return _make("md", [], [s] if s else [])


def icon(name: str) -> Element:
    """A Material icon, e.g. ``icon("favorite")`` (``<icon>``)."""
    return _make("icon", [("name", _required("icon name", name))])


def image(src: str, alt: str | None = None, title: str | None = None) -> Element:
    """An image loaded from the URL *src* (``<image>``)."""
    return _make("image", [("src", _required("image src", src)), ("alt", alt), ("title", title)])


def button(
    label: str,
    name: str | None = None,
    value: str | int | bool | None = None,
    url: str | None = None,
    icon: str | None = None,
    variant: str | None = None,
) -> Element:
    """A button labelled *label* (``<button>``).

    With *url* it is a link that opens the URL.  Otherwise clicking it
    submits the form with ``form_data[name] = value``.

    Args:
        label: The text on the button.
        name: The form field set when the button is clicked.
        value: The value sent for *name*.
        url: Makes the button a link; cannot be combined with name/value.
        icon: A Material icon name shown on the button.
        variant: ``"floating"`` for a floating button.
    """
    if url is not None and (name is not None or value is not None):
        raise ValueError("a button with url= is a link; name/value would be ignored")
    if value is not None and name is None:
        raise ValueError("a button value needs a name to be submitted under")
    return _make(
        "button",
        [
            ("name", _optional("button name", name)),
            ("value", value),
            ("url", _optional("button url", url)),
            ("icon", _optional("button icon", icon)),
            ("variant", _variant(variant)),
        ],
        [label] if label else [],
    )


def button_list(*buttons: Element, variant: str | None = None) -> Element:
    """A group of :func:`button` elements (``<button_list>``)."""
    return _make("button_list", [("variant", _variant(variant))], buttons)


def input_(
    name: str,
    value: str | int | None = None,
    type: str | None = None,
    label: str | None = None,
    placeholder: str | None = None,
) -> Element:
    """A text field (``<input>``); called ``input_`` to avoid the builtin.

    On submit the typed text is sent as ``form_data[name]``.

    Args:
        name: The form field name.
        value: The initial value.
        type: ``"text"`` (the default) or ``"hidden"`` to send *value*
            without showing a field.
        label: Shown above the field.
        placeholder: Shown in the empty field.
    """
    return _make(
        "input",
        [
            ("name", _required("input name", name)),
            ("value", value),
            ("type", _optional("input type", type)),
            ("label", label),
            ("placeholder", placeholder),
        ],
    )


def number(name: str, value: int | None = None) -> Element:
    """A number stepper (``<number>``); submits ``form_data[name]``."""
    return _make("number", [("name", _required("number name", name)), ("value", value)])


def scheduler(
    name: str,
    selected: str | _dt.date | None = None,
    duration: int | None = None,
    date_interval: int | None = None,
    time_interval: int | None = None,
    date_format: str | None = None,
    time_format: str | None = None,
    full_day: bool | None = None,
    ical_availability: str | None = None,
) -> Element:
    """A date/time picker (``<scheduler>``); submits ``form_data[name]``.

    Args:
        name: The form field name.
        selected: Initially selected moment, an ISO string or a
            ``date``/``datetime`` (written with ``isoformat()``).
        duration: Event length in minutes (used with *ical_availability*).
        date_interval: Days between selectable dates (``dateInterval``).
        time_interval: Minutes between selectable times (``timeInterval``).
        date_format: dayjs format for dates (``dateFormat``).
        time_format: dayjs format for times (``timeFormat``).
        full_day: Pick a day only, no time (``fullDay``).
        ical_availability: Public iCal URL; busy slots are not offered
            (``icalAvailability``).
    """
    return _make(
        "scheduler",
        [
            ("name", _required("scheduler name", name)),
            ("selected", _when(selected)),
            ("duration", duration),
            ("dateInterval", date_interval),
            ("timeInterval", time_interval),
            ("dateFormat", date_format),
            ("timeFormat", time_format),
            ("fullDay", full_day),
            ("icalAvailability", ical_availability),
        ],
    )


def add_to_calendar(
    title: str,
    start: str | _dt.date,
    end: str | _dt.date | None = None,
    description: str | None = None,
    location: str | None = None,
) -> Element:
    """An "add to calendar" card for an event (``<add_to_calendar>``).

    *start* and *end* are ISO strings or ``date``/``datetime`` values.
    """
    start_s = _when(start)
    return _make(
        "add_to_calendar",
        [
            ("title", _required("add_to_calendar title", title)),
            ("start", _required("add_to_calendar start", start_s or "")),
            ("end", _when(end)),
            ("description", description),
            ("location", location),
        ],
    )


def carousel(*items: Element, slide_width: str | None = None) -> Element:
    """A horizontally scrolling list of :func:`item` slides (``<carousel>``).

    Args:
        items: The slides, each made with :func:`item`.
        slide_width: CSS width of each slide, e.g. ``"40%"`` or ``"200px"``
            (``slideWidth``).
    """
    return _make("carousel", [("slideWidth", slide_width)], items)


def item(*children: Node, width: str | None = None) -> Element:
    """One slide of a :func:`carousel` (``<item>``).

    Bare strings are wrapped in :func:`text`; *width* overrides the
    carousel's ``slide_width`` for this slide.
    """
    return _make("item", [("width", width)], _blocks(children))


def row(*cols: Element) -> Element:
    """A grid row holding :func:`col` elements (``<row>``)."""
    return _make("row", [], cols)


def col(
    *children: Node,
    width: int | str | None = None,
    offset: int | None = None,
    align: str | None = None,
) -> Element:
    """A grid column inside a :func:`row` (``<col>``).

    Args:
        children: The content.  Bare strings are wrapped in :func:`text`.
        width: 1-12 (of a 12-column grid) or ``"auto"``; default 12.
        offset: Columns to skip before this one, 0-11.
        align: ``"left"`` (default), ``"center"`` or ``"right"``.
    """
    width_s: str | None = None
    if width is not None:
        if width == "auto":
            width_s = "auto"
        else:
            n = 0
            if isinstance(width, int) and not isinstance(width, bool):
                n = width
            elif isinstance(width, str) and width.isascii() and width.isdigit():
                n = int(width)  # accept "6" as well as 6
            if not 1 <= n <= 12:
                raise ValueError(f"col width must be 1-12 or 'auto', got {width!r}")
            width_s = str(n)
    if offset is not None and (
        isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= 11
    ):
        raise ValueError(f"col offset must be an int 0-11, got {offset!r}")
    if align not in (None, "left", "center", "right"):
        raise ValueError(f"col align must be left, center or right, got {align!r}")
    return _make(
        "col",
        [("width", width_s), ("offset", offset), ("align", align)],
        _blocks(children),
    )


# ----------------------------------------------------------------- fallback

_INLINE_CHILDREN = frozenset({"button_list", "row"})


def fallback_text(element: Element) -> str:
    """Return a plain-text version of an MML tree for ``message["text"]``.

    Texts and markdown are kept as written, buttons become ``[Label]``
    (link buttons ``[Label](url)``), inputs show their label (or
    placeholder), images their alt text or title and calendar events their
    title and times.  Hidden inputs, icons, numbers and schedulers are left
    out.  Blocks are separated by newlines; the buttons of a
    ``button_list`` and the columns of a ``row`` are joined by spaces.
    """
    tag = element.tag
    a = dict(element.attrs)
    if tag in ("text", "md"):
        return "".join(c for c in element.children if isinstance(c, str)).strip()
    if tag == "button":
        label = "".join(c for c in element.children if isinstance(c, str)).strip()
        label = label or a.get("name", "") or a.get("icon", "")
        return f"[{label}]({a['url']})" if "url" in a else f"[{label}]"
    if tag == "input":
        if a.get("type") == "hidden":
            return ""
        return a.get("label") or a.get("placeholder") or ""
    if tag == "image":
        return a.get("alt") or a.get("title") or ""
    if tag == "add_to_calendar":
        when = a["start"] + (f" – {a['end']}" if "end" in a else "")
        parts = [a["title"], when, a.get("location", "")]
        return " | ".join(p for p in parts if p)
    parts = [fallback_text(c) for c in element.children if isinstance(c, Element)]
    sep = " " if tag in _INLINE_CHILDREN else "\n"
    return sep.join(p for p in parts if p)
