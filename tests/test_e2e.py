"""End to end: the examples bot (``wsgi:app``) under real gunicorn, over real sockets."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from typing import Any

import pytest
from server import DEV_KEY, DEV_SECRET, GunicornServer, HTTPResult, signed_post

from botkit.testing import action_payload, command_payload, encode, signed_headers

pytestmark = pytest.mark.slow

COMMANDS = "/webhooks/stream/custom-commands"
LIMIT = 8192


@pytest.fixture(scope="module")
def server() -> Iterator[GunicornServer]:
    env = {"BOTKIT_DEV": "1", "BOTKIT_MAX_BODY_BYTES": str(LIMIT)}
    with GunicornServer("wsgi:app", env=env, workers=2) as srv:
        yield srv


@pytest.fixture
def conn(server: GunicornServer) -> Iterator[http.client.HTTPConnection]:
    c = server.connection()
    yield c
    c.close()


def local_address(conn: http.client.HTTPConnection) -> Any:
    assert conn.sock is not None, "the connection was closed"
    return conn.sock.getsockname()


def post_json(conn: http.client.HTTPConnection, path: str, payload: dict[str, Any]) -> HTTPResult:
    result = signed_post(conn, path, encode(payload))
    assert result.header("Content-Type") == "application/json"
    return result


def test_gif_flow_over_one_keep_alive_connection(conn: http.client.HTTPConnection) -> None:
    path = f"{COMMANDS}?type=gif"
    first = post_json(conn, path, command_payload("/gif cats", user={"id": "alice"}))
    socket_name = local_address(conn)
    assert first.status == 200 and not first.will_close
    preview = first.json()["message"]
    assert preview["type"] == "ephemeral"
    (card,) = preview["attachments"]
    assert card["type"] == "giphy"
    assert [a["text"] for a in card["actions"]] == ["Send", "Shuffle", "Cancel"]
    assert {a["name"] for a in card["actions"]} == {"image_action"}

    shuffled = post_json(conn, path, action_payload(preview, {"image_action": "shuffle"}))
    assert shuffled.status == 200
    assert local_address(conn) == socket_name
    other = shuffled.json()["message"]
    assert other["type"] == "ephemeral"
    assert other["id"] == preview["id"]
    assert other["attachments"][0]["image_url"] != card["image_url"]
    assert len(other["attachments"][0]["actions"]) == 3

    sent = post_json(conn, path, action_payload(other, {"image_action": "send"}))
    assert sent.status == 200
    assert local_address(conn) == socket_name
    published = sent.json()["message"]
    assert published["type"] == "regular"
    assert published["attachments"][0]["image_url"] == other["attachments"][0]["image_url"]
    assert all("actions" not in a for a in published["attachments"])

    cancelled = post_json(conn, path, action_payload(other, {"image_action": "cancel"}))
    assert cancelled.status == 200
    assert cancelled.json() == {"message": None}
    assert local_address(conn) == socket_name
    assert not cancelled.will_close


def _still_usable(
    server: GunicornServer, conn: http.client.HTTPConnection, after: HTTPResult
) -> None:
    """The next request on ``conn`` works, unless the server said it closes it (then a
    new connection works): no garbage left over from the refused body."""
    if after.will_close:
        conn.close()
        conn = server.connection()
    before = local_address(conn) if conn.sock is not None else None
    result = post_json(conn, f"{COMMANDS}?type=gif", command_payload("/gif dogs"))
    assert result.status == 200, result
    assert result.json()["message"]["type"] == "ephemeral"
    if before is not None:
        assert local_address(conn) == before


def _oversized() -> bytes:
    payload = command_payload("/gif cats")
    payload["message"]["padding"] = "x" * (2 * LIMIT)
    return encode(payload)


def test_declared_content_length_over_the_limit_is_413(
    server: GunicornServer, conn: http.client.HTTPConnection
) -> None:
    post_json(conn, f"{COMMANDS}?type=gif", command_payload("/gif cats"))  # open it
    result = signed_post(conn, f"{COMMANDS}?type=gif", _oversized())
    assert result.status == 413
    assert result.json() == {"error": "body too large"}
    assert result.will_close  # the body was left unread: gunicorn must not read on
    _still_usable(server, conn, result)


@pytest.mark.parametrize("size", [LIMIT + 1, 3 * LIMIT])
def test_chunked_body_over_the_limit_is_413(
    server: GunicornServer, conn: http.client.HTTPConnection, size: int
) -> None:
    post_json(conn, f"{COMMANDS}?type=gif", command_payload("/gif cats"))  # open it
    body = b" " * (size - len(encoded := encode(command_payload("/gif cats")))) + encoded
    assert len(body) == size
    headers = signed_headers(body, api_key=DEV_KEY, secret=DEV_SECRET)
    chunks = (body[i : i + 1000] for i in range(0, len(body), 1000))
    conn.request("POST", f"{COMMANDS}?type=gif", body=chunks, headers=headers, encode_chunked=True)
    result = HTTPResult.read(conn.getresponse())
    assert result.status == 413, result
    assert result.json() == {"error": "body too large"}
    _still_usable(server, conn, result)


def test_chunked_body_within_the_limit_is_served(conn: http.client.HTTPConnection) -> None:
    body = encode(command_payload("/gif party"))
    headers = signed_headers(body, api_key=DEV_KEY, secret=DEV_SECRET)
    chunks = (body[i : i + 100] for i in range(0, len(body), 100))
    conn.request("POST", f"{COMMANDS}?type=gif", body=chunks, headers=headers, encode_chunked=True)
    result = HTTPResult.read(conn.getresponse())
    assert result.status == 200
    assert result.json()["message"]["attachments"][0]["type"] == "giphy"


def _post_raw_headers(
    conn: http.client.HTTPConnection, path: str, body: bytes, headers: list[tuple[str, str]]
) -> HTTPResult:
    conn.putrequest("POST", path, skip_accept_encoding=True)
    for name, value in headers:
        conn.putheader(name, value)
    conn.putheader("Content-Length", str(len(body)))
    conn.endheaders(body)
    return HTTPResult.read(conn.getresponse())


@pytest.mark.parametrize("second", ["same", "wrong"])
def test_duplicated_signature_headers_are_401(
    server: GunicornServer, conn: http.client.HTTPConnection, second: str
) -> None:
    body = encode(command_payload("/gif cats"))
    signed = signed_headers(body, api_key=DEV_KEY, secret=DEV_SECRET)
    headers = list(signed.items())
    headers.append(("X-Signature", signed["X-Signature"] if second == "same" else "0" * 64))
    result = _post_raw_headers(conn, f"{COMMANDS}?type=gif", body, headers)
    assert result.status == 401
    assert result.json() == {"error": "invalid signature"}
    _still_usable(server, conn, result)


def test_no_tracebacks_in_the_server_log(server: GunicornServer) -> None:
    assert "Traceback" not in server.log()
