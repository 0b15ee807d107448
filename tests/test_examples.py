"""The example bot (examples/bot.py): /gif and /ticket, driven through the test client."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from botkit import Config
from botkit.core.signing import KeyRing
from botkit.testing import TestClient
from examples.bot import bot as examples_bot

#: The examples must render as meant on both client lines (issue #21).
pytestmark = pytest.mark.botkit_render_warnings("error", lines=["current", "mml"])
#: Known to render badly today; the lead removes these once the examples are fixed.
GIF_RENDERS_BADLY = pytest.mark.botkit_render_allow(
    1, reason="rule 1: the offline catalog's data: SVG pictures; fixed by the examples work"
)
TICKET_RENDERS_BADLY = pytest.mark.botkit_render_allow(
    3,
    8,
    9,
    reason="rule 3: the card's text twice; rule 8: fallback text and buttons beside the MML; "
    "rule 9: the email only in the MML; fixed by the examples work",
)

KEY, SECRET = "examples-key", "examples-secret"


@pytest.fixture
def client() -> Iterator[TestClient]:
    config = Config(
        keyring=KeyRing({KEY: (SECRET,)}),
        store_url="memory://",
        command_budget=10.0,  # Giphy's own 0.5 s timeout must decide, not botkit's budget
    )
    test_client = examples_bot.test_client(config=config, api_key=KEY, secret=SECRET)
    yield test_client
    test_client.runtime.close()


@pytest.fixture(autouse=True)
def offline_catalog(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GIPHY_API_KEY", raising=False)


# -- /gif, offline catalog ------------------------------------------------------------------------


@GIF_RENDERS_BADLY
def test_gif_flow(client: TestClient) -> None:
    preview = client.command("/gif cats")
    assert preview.status == 200
    assert preview.type == "ephemeral"
    assert preview.state == {"gif_query": "cats", "gif_pick": 0}
    assert [a["text"] for a in preview.actions] == ["Send", "Shuffle", "Cancel"]
    (card,) = preview.attachments
    assert card["type"] == "giphy" and card["image_url"]

    shuffled = preview.click("Shuffle")
    assert shuffled.status == 200
    assert shuffled.type == "ephemeral"
    assert shuffled.state == {"gif_query": "cats", "gif_pick": 1}
    assert shuffled.attachments[0]["image_url"] != card["image_url"]
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


# -- /ticket ---------------------------------------------------------------------------------------


@TICKET_RENDERS_BADLY
def test_ticket_prompt(client: TestClient) -> None:
    prompt = client.command("/ticket printer on fire")
    assert prompt.status == 200
    assert prompt.type == "ephemeral"
    assert prompt.mml is not None and prompt.mml.startswith('<mml name="ticket">')
    assert '<input name="email"' in prompt.mml
    assert prompt.text is not None and "printer on fire" in prompt.text  # fallback text
    assert [(a["text"], a["value"]) for a in prompt.actions] == [
        ("Confirm", "confirm"),
        ("Cancel", "cancel"),
    ]
    assert prompt.state == {"ticket_summary": "printer on fire"}


def test_ticket_without_summary(client: TestClient) -> None:
    reply = client.command("/ticket")
    assert (reply.type, reply.text) == ("error", "Usage: /ticket [summary]")


@TICKET_RENDERS_BADLY
def test_ticket_bad_email_brings_the_form_back(client: TestClient) -> None:
    prompt = client.command("/ticket printer on fire")
    again = prompt.submit("confirm", email="not-an-email", priority="normal")
    assert again.status == 200
    assert again.type == "ephemeral"
    assert again.mml is not None and '<mml name="ticket">' in again.mml
    assert "Please fix: email" in again.mml
    assert 'value="not-an-email"' in again.mml
    assert again.text is not None and "Please fix: email" in again.text
    assert again.state == {"ticket_summary": "printer on fire"}


@TICKET_RENDERS_BADLY
def test_ticket_bad_priority(client: TestClient) -> None:
    prompt = client.command("/ticket printer on fire")
    again = prompt.submit("confirm", email="ann@example.com", priority="urgent")
    assert again.type == "ephemeral"
    assert again.mml is not None and "Please fix: priority" in again.mml


@TICKET_RENDERS_BADLY
def test_ticket_valid_submit_publishes(client: TestClient) -> None:
    prompt = client.command("/ticket printer on fire")
    created = prompt.submit("confirm", email="ann@example.com", priority="high")
    assert created.status == 200
    assert created.type == "regular"
    assert created.text is not None
    assert re.fullmatch(r"Ticket T-\d{5} created: printer on fire", created.text)
    assert created.mml == ""
    assert created.actions == []
    assert created.state["ticket_email"] == "ann@example.com"
    assert created.state["ticket_priority"] == "high"
    assert created.text.split()[1] == created.state["ticket_id"]


@TICKET_RENDERS_BADLY
def test_ticket_cancel_deletes(client: TestClient) -> None:
    prompt = client.command("/ticket printer on fire")
    assert prompt.click("Cancel").body == b'{"message":null}'
    assert prompt.submit("Cancel").deleted
