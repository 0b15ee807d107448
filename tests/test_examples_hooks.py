"""The moderation and stats examples, tested as a bot author would: with the test client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from botkit.testing import TestClient
from examples.bot import bot
from examples.moderation import mask_cards

#: The examples must render as meant on both client lines (issue #21).
pytestmark = pytest.mark.botkit_render_warnings("error", lines=["current", "mml"])


@pytest.fixture
def client() -> Iterator[TestClient]:
    with bot.test_client() as client:
        yield client


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("my card is 4242 4242 4242 4242", "my card is **** **** **** 4242"),
        ("4242-4242-4242-4242 ok", "****-****-****-4242 ok"),
        ("4111111111111111", "************1111"),
        ("call 1234567890123 now", "call 1234567890123 now"),  # fails the Luhn check
        ("order 12345", "order 12345"),
    ],
)
def test_mask_cards(text: str, masked: str) -> None:
    assert mask_cards(text) == masked


def test_card_numbers_are_masked_before_they_are_stored(client: TestClient) -> None:
    reply = client.before_send("pay with 4242 4242 4242 4242 please")
    assert reply.status == 200
    assert reply.text == "pay with **** **** **** 4242 please"


def test_blocked_words_are_refused_with_the_reason(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODERATION_BLOCKLIST", "rutabaga, parsnip")
    reply = client.before_send("I love Rutabaga soup")
    assert reply.status == 200 and reply.type == "error"
    assert reply.text == "Your message was not sent: “rutabaga” is not allowed here."
    assert client.before_send("badword is fine now").text == "badword is fine now"


def test_clean_messages_pass_unchanged(client: TestClient) -> None:
    reply = client.before_send("hello there")
    assert reply.text == "hello there" and reply.type == "regular"


def test_stats_counts_messages_per_channel(client: TestClient) -> None:
    before = client.command("/stats", cid="messaging:stats-a").text or ""
    assert before.startswith("0 messages in messaging:stats-a")
    for _ in range(3):
        client.event("message.new", cid="messaging:stats-a")
    client.event("message.new", cid="messaging:stats-b")
    client.event("message.updated", cid="messaging:stats-a")  # not a new message
    reply = client.command("/stats", cid="messaging:stats-a")
    assert reply.type == "ephemeral"
    assert reply.text is not None
    assert reply.text.startswith("3 messages in messaging:stats-a")
    assert "messaging:stats-b (1)" in reply.text


def test_stats_counts_each_delivery_once(client: TestClient) -> None:
    from botkit.testing import event_payload

    payload = event_payload("message.new", cid="messaging:stats-c")
    for attempt in (1, 2, 3):
        client.post("/push", payload, webhook_id="stats-once", attempt=attempt, kind="push")
    assert (client.command("/stats", cid="messaging:stats-c").text or "").startswith(
        "1 message in messaging:stats-c"
    )
