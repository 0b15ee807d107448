"""Tests for botkit.mml: renderings, escaping, validation and fallback text."""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given
from hypothesis import strategies as st

from botkit.mml import (
    TAGS,
    Element,
    add_to_calendar,
    button,
    button_list,
    carousel,
    col,
    escape_attr,
    escape_text,
    fallback_text,
    icon,
    image,
    input_,
    item,
    md,
    mml,
    number,
    row,
    scheduler,
    text,
)

# --------------------------------------------------------------- renderings


@pytest.mark.parametrize(
    ("element", "expected"),
    [
        (mml(), "<mml/>"),
        (
            mml(text("hi"), name="n", type="card"),
            '<mml name="n" type="card"><text>hi</text></mml>',
        ),
        (mml("bare"), "<mml><text>bare</text></mml>"),
        (text("hello"), "<text>hello</text>"),
        (text(""), "<text/>"),
        (md("**bold**"), "<md>**bold**</md>"),
        (icon("favorite"), '<icon name="favorite"/>'),
        (image("https://x/y.png"), '<image src="https://x/y.png"/>'),
        (
            image("https://x/y.png", alt="A", title="T"),
            '<image src="https://x/y.png" alt="A" title="T"/>',
        ),
        (button("Go", name="a", value="b"), '<button name="a" value="b">Go</button>'),
        (
            button("Site", url="https://e.com"),
            '<button url="https://e.com">Site</button>',
        ),
        (
            button("Up", name="n", value=1, icon="add", variant="floating"),
            '<button name="n" value="1" icon="add" variant="floating">Up</button>',
        ),
        (
            button("Yes", name="ok", value=True),
            '<button name="ok" value="true">Yes</button>',
        ),
        (
            button_list(button("A", name="x", value="1"), variant="floating"),
            '<button_list variant="floating"><button name="x" value="1">A</button></button_list>',
        ),
        (input_("email"), '<input name="email"/>'),
        (
            input_("e", value="v", type="hidden", label="L", placeholder="P"),
            '<input name="e" value="v" type="hidden" label="L" placeholder="P"/>',
        ),
        (number("qty"), '<number name="qty"/>'),
        (number("qty", value=3), '<number name="qty" value="3"/>'),
        (scheduler("when"), '<scheduler name="when"/>'),
        (
            scheduler(
                "when",
                selected="2024-01-02T10:00:00Z",
                duration=45,
                date_interval=2,
                time_interval=15,
                date_format="ddd",
                time_format="HH:mm",
                full_day=False,
                ical_availability="https://cal/x.ics",
            ),
            (
                '<scheduler name="when" selected="2024-01-02T10:00:00Z" duration="45"'
                ' dateInterval="2" timeInterval="15" dateFormat="ddd" timeFormat="HH:mm"'
                ' fullDay="false" icalAvailability="https://cal/x.ics"/>'
            ),
        ),
        (
            scheduler("d", selected=dt.date(2024, 5, 6), full_day=True),
            '<scheduler name="d" selected="2024-05-06" fullDay="true"/>',
        ),
        (
            add_to_calendar("Party", "2024-01-01T20:00"),
            '<add_to_calendar title="Party" start="2024-01-01T20:00"/>',
        ),
        (
            add_to_calendar(
                "Party",
                dt.datetime(2024, 1, 1, 20, 0),
                end=dt.datetime(2024, 1, 1, 23, 0),
                description="Fun",
                location="Home",
            ),
            (
                '<add_to_calendar title="Party" start="2024-01-01T20:00:00"'
                ' end="2024-01-01T23:00:00" description="Fun" location="Home"/>'
            ),
        ),
        (
            carousel(item(text("a")), item("b", width="50%"), slide_width="40%"),
            (
                '<carousel slideWidth="40%"><item><text>a</text></item>'
                '<item width="50%"><text>b</text></item></carousel>'
            ),
        ),
        (
            row(
                col(text("a"), width=6, offset=1, align="center"),
                col("b", width="auto"),
            ),
            (
                '<row><col width="6" offset="1" align="center"><text>a</text></col>'
                '<col width="auto"><text>b</text></col></row>'
            ),
        ),
        (col(width="12"), '<col width="12"/>'),
        (col(offset=0), '<col offset="0"/>'),
    ],
)
def test_known_renderings(element: Element, expected: str) -> None:
    assert element.render() == expected
    assert str(element) == expected
    ET.fromstring(expected)  # well-formed


def test_module_example() -> None:
    form = mml(
        text("Your email?"),
        input_("email", label="Email"),
        button_list(button("Submit", name="action", value="submit")),
        name="ticket",
    )
    assert str(form) == (
        '<mml name="ticket"><text>Your email?</text><input name="email" label="Email"/>'
        '<button_list><button name="action" value="submit">Submit</button>'
        "</button_list></mml>"
    )
    assert fallback_text(form) == "Your email?\nEmail\n[Submit]"


def test_element_is_immutable_and_hashable() -> None:
    el = button("A", name="n", value="v")
    with pytest.raises(AttributeError):
        el.tag = "text"  # type: ignore[misc]
    assert hash(el) == hash(button("A", name="n", value="v"))
    assert el == button("A", name="n", value="v")
    assert el.attr("name") == "n"
    assert el.attr("url") is None
    assert el.attr("url", "dflt") == "dflt"
    assert dict(el.attrs) == {"name": "n", "value": "v"}
    assert el.children == ("A",)


def test_only_known_tags_anywhere() -> None:
    tree = mml(
        text("t"),
        md("m"),
        icon("i"),
        image("s"),
        button_list(button("b", name="n")),
        input_("i"),
        number("n"),
        scheduler("s"),
        add_to_calendar("t", "2024-01-01"),
        carousel(item(text("x"))),
        row(col(text("y"))),
    )
    tags = {el.tag for el in ET.fromstring(str(tree)).iter()}
    assert tags <= TAGS
    assert "column" not in TAGS


# ----------------------------------------------------------------- escaping


def test_hostile_text_stays_text() -> None:
    hostile = '</text><button name="x">'
    rendered = str(mml(text(hostile)))
    assert rendered == '<mml><text>&lt;/text&gt;&lt;button name="x"&gt;</text></mml>'
    root = ET.fromstring(rendered)
    assert [c.tag for c in root] == ["text"]
    assert root[0].text == hostile


def test_hostile_label_and_attrs() -> None:
    el = button('x"><button name="evil">', name='a" b="c', value="1 & 2 < 3 > 0")
    root = ET.fromstring(str(el))
    assert root.attrib == {"name": 'a" b="c', "value": "1 & 2 < 3 > 0"}
    assert root.text == 'x"><button name="evil">'
    assert list(root) == []


def test_ampersand() -> None:
    assert str(text("Tom & Jerry")) == "<text>Tom &amp; Jerry</text>"
    assert str(icon("a&b")) == '<icon name="a&amp;b"/>'
    # Already-escaped-looking text is escaped again, not trusted.
    assert str(text("&amp;")) == "<text>&amp;amp;</text>"


def test_quote_delimiter_choice() -> None:
    # Only a double quote: use single-quote delimiters, no entity needed.
    assert str(input_("n", label='say "hi"')) == '<input name="n" label=\'say "hi"\'/>'
    # Only a single quote: plain double-quote delimiters.
    assert str(input_("n", label="it's")) == '<input name="n" label="it\'s"/>'
    # Both: &quot; is the only way.
    both = str(input_("n", label='it\'s "x"'))
    assert both == '<input name="n" label="it\'s &quot;x&quot;"/>'
    assert ET.fromstring(both).attrib["label"] == 'it\'s "x"'


def test_escape_helpers() -> None:
    assert escape_text("a<b>&c\"'") == "a&lt;b&gt;&amp;c\"'"
    assert escape_attr("a<b>&c\"'") == "a&lt;b&gt;&amp;c&quot;'"
    assert escape_attr("a<b>&c\"'", quote="'") == 'a&lt;b&gt;&amp;c"&apos;'
    assert escape_text("a\x00b\r\nc\rd") == "ab\nc\nd"
    assert escape_attr("a\x01b\tc\r\nd\ne") == "ab c d e"
    with pytest.raises(ValueError, match="quote"):
        escape_attr("x", quote="`")


def test_illegal_characters_are_stripped() -> None:
    el = text("a\x00b\x08c\x0bd\x0ce\x1ff\ufffeg\uffffh\ud800i")
    assert el.children == ("abcdefghi",)
    assert str(el) == "<text>abcdefghi</text>"
    el = input_("n", label="x\x00y\tz\nw")
    assert el.attr("label") == "xy z w"
    # Tab and newline are legal in text and kept.
    assert text("a\tb\nc").children == ("a\tb\nc",)


def test_mml_react_only_sees_entities_it_decodes() -> None:
    # mml-react re-escapes every entity except &amp; &lt; &gt;.
    tree = mml(
        text("<&>\"'\n\t"),
        input_("n", label='<&>"\n\t', placeholder="it's"),
        button("'quoted'", name="a\tb", value='"v"'),
    )
    assert re.search(r"&(?!amp;|lt;|gt;)", str(tree)) is None


# ---------------------------------------------------------------- hypothesis

XML_CHAR = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def expected_text(s: str) -> str:
    """The documented policy: drop illegal chars, CR/CRLF -> LF."""
    return re.sub(r"\r\n?", "\n", XML_CHAR.sub("", s))


def expected_attr(s: str) -> str:
    """The documented policy: drop illegal chars, CRLF/CR/LF/tab -> space."""
    return re.sub(r"\r\n|[\t\n\r]", " ", XML_CHAR.sub("", s))


anything = st.text()
nonblank = anything.filter(lambda s: expected_attr(s).strip() != "")


@given(body=anything, label=anything, value=anything, placeholder=anything)
def test_any_strings_round_trip(body: str, label: str, value: str, placeholder: str) -> None:
    tree = mml(
        text(body),
        md(body),
        input_("field", value=value, label=label, placeholder=placeholder),
        button_list(button(body, name="n", value=value)),
        name=label if label.strip() else None,
    )
    root = ET.fromstring(str(tree))
    assert [c.tag for c in root] == ["text", "md", "input", "button_list"]
    assert (root[0].text or "") == expected_text(body)
    assert (root[1].text or "") == expected_text(body)
    assert root[2].attrib == {
        "name": "field",
        "value": expected_attr(value),
        "label": expected_attr(label),
        "placeholder": expected_attr(placeholder),
    }
    (btn,) = root[3]
    assert (btn.text or "") == expected_text(body)
    assert btn.attrib["value"] == expected_attr(value)
    if label.strip():
        assert root.attrib["name"] == expected_attr(label)


@given(
    body=st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\r")),
    attr=st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\t\n\r")),
)
def test_legal_strings_round_trip_exactly(body: str, attr: str) -> None:
    body = XML_CHAR.sub("", body)
    attr = XML_CHAR.sub("", attr)
    root = ET.fromstring(str(mml(text(body), image("s", alt=attr))))
    assert (root[0].text or "") == body
    assert root[1].attrib["alt"] == attr


@given(name=nonblank, s=anything)
def test_element_values_match_what_clients_parse(name: str, s: str) -> None:
    txt, ico = text(s), icon(name)
    root = ET.fromstring(str(col(txt, ico)))
    assert (root[0].text or "") == "".join(str(c) for c in txt.children)
    assert root[1].attrib["name"] == ico.attr("name")


# --------------------------------------------------------------- validation


@pytest.mark.parametrize("width", [0, 13, -1, "13", "wide", True, 6.5, "0"])
def test_col_width_invalid(width: object) -> None:
    with pytest.raises(ValueError, match="col width"):
        col(width=width)  # type: ignore[arg-type]


@pytest.mark.parametrize("width", [1, 12, "auto", "7"])
def test_col_width_valid(width: int | str) -> None:
    col(width=width)


def test_col_offset_and_align() -> None:
    with pytest.raises(ValueError, match="offset"):
        col(offset=12)
    with pytest.raises(ValueError, match="offset"):
        col(offset=-1)
    with pytest.raises(ValueError, match="align"):
        col(align="middle")


def test_container_children_checked() -> None:
    with pytest.raises(ValueError, match="button_list> can only contain <button>"):
        button_list(text("nope"))
    with pytest.raises(ValueError, match="button_list"):
        button_list("nope")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="row> can only contain <col>"):
        row(text("nope"))
    with pytest.raises(ValueError, match="carousel> can only contain <item>"):
        carousel(text("nope"))
    with pytest.raises(ValueError, match="root"):
        mml(mml())
    with pytest.raises(ValueError, match="root"):
        item(mml())


@pytest.mark.parametrize(
    "make",
    [
        lambda: input_(""),
        lambda: input_("   "),
        lambda: number(""),
        lambda: scheduler(""),
        lambda: icon(""),
        lambda: image(""),
        lambda: add_to_calendar("", "2024-01-01"),
        lambda: add_to_calendar("t", ""),
        lambda: button("b", name=""),
        lambda: mml(name=""),
    ],
)
def test_empty_required_names(make: object) -> None:
    with pytest.raises(ValueError, match="non-empty"):
        make()  # type: ignore[operator]


def test_other_validation() -> None:
    with pytest.raises(ValueError, match="variant"):
        button("b", variant="big")
    with pytest.raises(ValueError, match="variant"):
        button_list(variant="big")
    with pytest.raises(ValueError, match="type"):
        mml(type="form")
    with pytest.raises(ValueError, match="url"):
        button("b", name="n", url="https://e.com")
    with pytest.raises(ValueError, match="needs a name"):
        button("b", value="v")


def test_element_constructor_checks() -> None:
    with pytest.raises(ValueError, match="unknown MML tag 'column'"):
        Element("column")
    with pytest.raises(ValueError, match="attribute name"):
        Element("text", (("bad name", "x"),))
    with pytest.raises(ValueError, match="duplicate"):
        Element("icon", (("name", "a"), ("name", "b")))
    with pytest.raises(TypeError):
        Element("icon", (("name", 1),))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cannot have children"):
        Element("icon", (("name", "a"),), ("x",))
    with pytest.raises(ValueError, match="only contain text"):
        Element("text", (), (text("x"),))
    with pytest.raises(TypeError, match="bare text"):
        Element("mml", (), ("x",))
    with pytest.raises(TypeError):
        Element("mml", (), (42,))  # type: ignore[arg-type]


# ----------------------------------------------------------------- fallback


def test_fallback_text() -> None:
    tree = mml(
        text("Pick one"),
        md("**Really**"),
        icon("star"),
        image("https://x/y.png", alt="A cat"),
        input_("email", label="Email"),
        input_("q", placeholder="Search"),
        input_("secret", value="x", type="hidden"),
        number("qty"),
        scheduler("when"),
        button_list(
            button("Yes", name="a", value="y"),
            button("No", name="a", value="n"),
            button("Docs", url="https://e.com/docs"),
        ),
        row(col(text("left")), col(text("right"))),
        carousel(item(text("one")), item(text("two"))),
        add_to_calendar("Party", "2024-01-01", end="2024-01-02", location="Home"),
    )
    assert fallback_text(tree) == (
        "Pick one\n"
        "**Really**\n"
        "A cat\n"
        "Email\n"
        "Search\n"
        "[Yes] [No] [Docs](https://e.com/docs)\n"
        "left right\n"
        "one\ntwo\n"
        "Party | 2024-01-01 – 2024-01-02 | Home"
    )


def test_fallback_text_of_leaf_and_empty() -> None:
    assert fallback_text(text("  hi  ")) == "hi"
    assert fallback_text(button("OK", name="ok")) == "[OK]"
    assert fallback_text(mml()) == ""
    assert fallback_text(mml(icon("x"))) == ""
