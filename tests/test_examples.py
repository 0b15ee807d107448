"""The example bot (examples/bot.py): /gif and /ticket, followed as a user of Stream's
current client would (the command's text and button clicks only), plus the MML form that
clients of the last MML line (13.1) also show.

Every reply of these tests is checked against what both client lines show (the pytest
plugin's render check, :func:`botkit.core.render.check_reply`): no refused picture, no
hidden button, no text twice, nothing only an MML form can fill.
"""

from __future__ import annotations

import json
import re
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from botkit import Config
from botkit.core.signing import KeyRing
from botkit.testing import Reply, TestClient
from examples import gif as gif_example
from examples.bot import bot as examples_bot

KEY, SECRET = "examples-key", "examples-secret"


#: The examples must render as meant on both client lines (issue #21): any render warning
#: of botkit.core.render.check_reply fails the test at the call that got the reply.
pytestmark = pytest.mark.botkit_render_warnings("error", lines=["current", "mml"])


def make_client(**settings: Any) -> TestClient:
    config = Config(
        keyring=KeyRing({KEY: (SECRET,)}),
        store_url="memory://",
        command_budget=10.0,  # Giphy's own 0.5 s timeout must decide, not botkit's budget
        **settings,
    )
    test_client = examples_bot.test_client(config=config, api_key=KEY, secret=SECRET)
    return test_client


@pytest.fixture
def client() -> Iterator[TestClient]:
    test_client = make_client()
    yield test_client
    test_client.close()


@pytest.fixture(autouse=True)
def offline_catalog(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GIPHY_API_KEY", raising=False)


def mml_fields(reply: Reply) -> list[tuple[str, str | None, str | None]]:
    """The MML form's elements in order: (tag, name, value)."""
    assert reply.mml, f"no MML in {reply!r}"
    root = ET.fromstring(reply.mml)
    return [(el.tag, el.get("name"), el.get("value")) for el in root.iter() if el is not root]


# -- /gif, offline catalog ------------------------------------------------------------------------


def test_gif_flow(client: TestClient) -> None:
    preview = client.command("/gif cats")
    assert preview.status == 200
    assert preview.type == "ephemeral"
    assert preview.state == {"gif_query": "cats", "gif_pick": 0}
    assert [a["text"] for a in preview.actions] == ["Send", "Shuffle", "Cancel"]
    (card,) = preview.attachments
    assert card["type"] == "giphy"
    # a picture the bot serves itself, at an absolute http(s) URL: the client shows it
    assert card["image_url"] == "http://localhost/examples/gif/cats-1.svg"
    assert card["thumb_url"] == card["giphy"]["fixed_height"]["url"] == card["image_url"]
    assert "text" not in card

    shuffled = preview.click("Shuffle")
    assert shuffled.status == 200
    assert shuffled.type == "ephemeral"
    assert shuffled.state == {"gif_query": "cats", "gif_pick": 1}
    assert shuffled.attachments[0]["image_url"] == "http://localhost/examples/gif/cats-2.svg"
    assert shuffled.message is not None and preview.message is not None
    assert shuffled.message["id"] == preview.message["id"]

    sent = shuffled.click("Send")
    assert sent.status == 200
    assert sent.type == "regular"
    assert sent.actions == []
    (published,) = sent.attachments
    assert published["image_url"] == shuffled.attachments[0]["image_url"]
    assert "actions" not in published
    assert sent.state["gif_query"] == "cats"

    cancelled = shuffled.click("Cancel")
    assert cancelled.status == 200 and cancelled.body == b'{"message":null}'


def test_gif_pictures_are_served_by_the_bot(client: TestClient) -> None:
    web = client.app.test_client()
    seen = set()
    for topic in ("cats", "dogs", "coffee"):
        reply = client.command(f"/gif {topic}")
        for _ in range(3):
            url = reply.attachments[0]["image_url"]
            seen.add(url)
            response = web.get(urlparse(url).path)
            assert response.status_code == 200, url
            assert response.mimetype == "image/svg+xml"
            assert response.data.startswith(b"<svg") and topic.encode() in response.data
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            reply = reply.click("Shuffle")
    assert len(seen) == 9  # three different pictures per topic
    missing = web.get("/examples/gif/nothing-here.svg")
    assert missing.status_code == 404 and missing.get_json() == {"error": "not found"}


def test_gif_pictures_at_the_public_url_setting() -> None:
    with make_client(public_url="https://bot.example.com/chat") as public:
        (card,) = public.command("/gif party").attachments
    assert card["image_url"] == "https://bot.example.com/chat/examples/gif/party-1.svg"


def test_gif_unknown_topic_picks_from_the_whole_catalog(client: TestClient) -> None:
    (card,) = client.command("/gif zebras").attachments
    assert re.fullmatch(r"http://localhost/examples/gif/\w+-\d\.svg", card["image_url"])
    assert (
        urlparse(card["image_url"]).path.removeprefix("/examples/gif/").removesuffix(".svg")
        in gif_example.CATALOG
    )


def test_gif_without_query_is_a_usage_error(client: TestClient) -> None:
    reply = client.command("/gif")
    assert (reply.status, reply.type) == (200, "error")
    assert reply.text == "Usage: /gif [search terms]"


# -- /gif against a local Giphy -------------------------------------------------------------------


class FakeGiphy(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _GiphyHandler)
        self.mode = "ok"
        self.requests: list[dict[str, list[str]]] = []
        self.release = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1/gifs/search"

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the slow mode's client has gone away: nothing to report


class _GiphyHandler(BaseHTTPRequestHandler):
    server: FakeGiphy

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        query = parse_qs(urlparse(self.path).query)
        self.server.requests.append(query)
        mode = self.server.mode
        if mode == "slow":
            self.server.release.wait(5)
        if mode == "500":
            self._send(500, b'{"message": "internal"}')
            return
        if mode == "garbage":
            self._send(200, b"<html>not json</html>")
            return
        offset = int(query.get("offset", ["0"])[0])
        data = [] if mode == "empty" else [
            {
                "url": f"https://giphy.example/page/{offset}",
                "images": {
                    "fixed_height": {
                        "url": f"https://media.giphy.example/{offset}.gif",
                        "width": "356",
                        "height": "200",
                    }
                },
            }
        ]  # fmt: skip
        self._send(200, json.dumps({"data": data}).encode())

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def giphy(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGiphy]:
    server = FakeGiphy()
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    monkeypatch.setenv("GIPHY_API_KEY", "giphy-test-key")
    monkeypatch.setenv("GIPHY_API_URL", server.url)
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_gif_with_giphy(client: TestClient, giphy: FakeGiphy) -> None:
    preview = client.command("/gif happy cats")
    assert preview.type == "ephemeral"
    (card,) = preview.attachments
    assert card["image_url"] == "https://media.giphy.example/0.gif"
    assert card["title_link"] == "https://giphy.example/page/0"
    assert card["giphy"]["fixed_height"] == {
        "url": "https://media.giphy.example/0.gif",
        "width": "356",
        "height": "200",
    }
    assert giphy.requests[0]["api_key"] == ["giphy-test-key"]
    assert giphy.requests[0]["q"] == ["happy cats"]

    shuffled = preview.click("Shuffle")
    assert shuffled.attachments[0]["image_url"] == "https://media.giphy.example/1.gif"
    assert shuffled.type == "ephemeral"
    assert shuffled.state == {"gif_query": "happy cats", "gif_pick": 1}


def test_gif_with_no_giphy_results(client: TestClient, giphy: FakeGiphy) -> None:
    giphy.mode = "empty"
    reply = client.command("/gif zzzz")
    assert reply.type == "error" and reply.text is not None and "No GIFs found" in reply.text


@pytest.mark.parametrize("mode", ["500", "garbage", "slow"])
def test_giphy_failure_is_a_friendly_error(client: TestClient, giphy: FakeGiphy, mode: str) -> None:
    giphy.mode = mode
    reply = client.command("/gif cats")
    assert reply.status == 200
    assert reply.type == "error"
    assert reply.text == "Sorry, Giphy is not answering right now. Try again in a moment."


def test_giphy_failure_on_shuffle_is_a_friendly_error(client: TestClient, giphy: FakeGiphy) -> None:
    preview = client.command("/gif cats")
    giphy.mode = "500"
    reply = preview.click("Shuffle")
    assert (reply.status, reply.type) == (200, "error")
    assert reply.text is not None and "Giphy is not answering" in reply.text
    assert reply.attachments == []  # no buttons left on an error


# -- /ticket on the current client: the command's arguments and clicks ---------------------------

TICKET = "/ticket ann@example.com printer on fire"


def test_ticket_prompt(client: TestClient) -> None:
    prompt = client.command(TICKET)
    assert prompt.status == 200
    assert prompt.type == "ephemeral"
    assert prompt.text == "Open a ticket for ann@example.com, priority normal?"
    (card,) = prompt.attachments
    assert card["title"] == "printer on fire" and card["title_link"].startswith("https://")
    assert "text" not in card  # the client would show it again in the button row
    assert [(a["text"], a["name"], a["value"], a["style"]) for a in prompt.actions] == [
        ("Low", "priority", "low", "default"),
        ("Normal", "priority", "normal", "primary"),  # the current priority
        ("High", "priority", "high", "default"),
        ("Confirm", "action", "confirm", "primary"),
        ("Cancel", "action", "cancel", "default"),
    ]
    assert prompt.state == {
        "ticket_email": "ann@example.com",
        "ticket_summary": "printer on fire",
        "ticket_priority": "normal",
    }


def test_ticket_completed_with_clicks_only(client: TestClient) -> None:
    """What a user of stream-chat-react 14 can do: type the command, click buttons."""
    prompt = client.command(TICKET)
    high = prompt.click("High")
    assert high.type == "ephemeral"
    assert high.text == "Open a ticket for ann@example.com, priority high?"
    assert [a["text"] for a in high.actions if a["style"] == "primary"] == ["High", "Confirm"]
    created = high.click("Confirm")
    assert created.status == 200
    assert created.type == "regular"
    assert created.text is not None
    assert re.fullmatch(r"Ticket T-\d{5} created: printer on fire", created.text)
    assert created.mml == ""
    assert created.attachments == [] and created.actions == []
    assert created.state["ticket_email"] == "ann@example.com"
    assert created.state["ticket_priority"] == "high"
    assert created.text.split()[1] == created.state["ticket_id"]


def test_ticket_confirm_right_away_uses_normal_priority(client: TestClient) -> None:
    created = client.command(TICKET).click("Confirm")
    assert created.type == "regular"
    assert created.state["ticket_priority"] == "normal"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("/ticket", "Missing email."),
        ("/ticket printer on fire", "“printer” is not an email address."),
        ("/ticket ann@example.com", "Missing summary."),
        ("/ticket ann@ printer on fire", "“ann@” is not an email address."),
        ("/ticket ann@example.com " + "x" * 201, "The summary must be at most 200 characters."),
    ],
)
def test_ticket_usage_help(client: TestClient, text: str, problem: str) -> None:
    reply = client.command(text)
    assert reply.status == 200
    assert reply.type == "ephemeral"
    assert reply.text == (
        f"{problem}\nType the email to answer and what is wrong, "
        "e.g. /ticket you@example.com printer on fire"
    )
    assert reply.attachments == [] and not reply.mml


def test_ticket_crafted_priority_is_refused(client: TestClient) -> None:
    again = client.command(TICKET).click(priority="urgent")
    assert again.type == "ephemeral"
    assert again.text == (
        "Open a ticket for ann@example.com, priority normal?\n⚠ Pick one of low, normal, high."
    )
    assert again.state["ticket_priority"] == "normal"


def test_ticket_cancel_deletes(client: TestClient) -> None:
    prompt = client.command(TICKET)
    assert prompt.click("Cancel").body == b'{"message":null}'


# -- /ticket on a client that renders MML (13.1) -------------------------------------------------


def test_ticket_mml_form_corrects_the_values(client: TestClient) -> None:
    prompt = client.command(TICKET)
    assert prompt.mml is not None and prompt.mml.startswith('<mml name="ticket">')
    # only inputs and a button of its own: the text and the card say the rest, once
    assert mml_fields(prompt) == [
        ("input", "email", "ann@example.com"),
        ("input", "summary", "printer on fire"),
        ("button_list", None, None),
        ("button", "action", "update"),
    ]
    # mml-react sends the inputs and the clicked button's name/value
    updated = prompt.submit("Update", email="bob@example.com", summary="toner empty")
    assert updated.type == "ephemeral"
    assert updated.text == "Open a ticket for bob@example.com, priority normal?"
    assert updated.attachments[0]["title"] == "toner empty"
    created = updated.click("Low").click("Confirm")
    assert created.type == "regular"
    assert created.text is not None and created.text.endswith("created: toner empty")
    assert (created.state["ticket_email"], created.state["ticket_priority"]) == (
        "bob@example.com",
        "low",
    )


def test_ticket_mml_error_keeps_what_was_typed_in_place(client: TestClient) -> None:
    prompt = client.command(TICKET).click("High")
    again = prompt.submit("Update", email="not-an-email", summary="printer on fire!")
    assert again.status == 200
    assert again.type == "ephemeral"
    assert again.text == (
        "Open a ticket for ann@example.com, priority high?\n"
        "⚠ Please fix: email: Not a valid email address."
    )
    # nothing inserted above the inputs (mml-react keys them by position), typed values kept
    assert mml_fields(again) == [
        ("input", "email", "not-an-email"),
        ("input", "summary", "printer on fire!"),
        ("button_list", None, None),
        ("button", "action", "update"),
    ]
    assert again.state == prompt.state  # the saved ticket is unchanged
    fixed = again.submit("Update", email="ann@example.org", summary="printer on fire!")
    assert fixed.text == "Open a ticket for ann@example.org, priority high?"
    assert fixed.click("Confirm").state["ticket_email"] == "ann@example.org"


def test_ticket_mml_emptied_field_shows_the_saved_value(client: TestClient) -> None:
    again = client.command(TICKET).submit("Update", email="", summary="")
    assert again.text is not None and "Please fix: email:" in again.text
    assert "summary: Length must be between 1 and 200." in again.text
    assert mml_fields(again)[:2] == [
        ("input", "email", "ann@example.com"),
        ("input", "summary", "printer on fire"),
    ]


def test_ticket_help_says_what_to_type(client: TestClient) -> None:
    assert "/ticket <email> <summary> — Open a support ticket" in (
        client.command("/help").text or ""
    )
    details = client.command("/help ticket").text or ""
    assert "Usage: /ticket <email> <summary>" in details
    assert "• email: Where to answer, e.g. you@example.com." in details
