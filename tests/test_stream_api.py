"""Tests for botkit.runtime.stream_api, against the local Stream stub over loopback."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator

import jwt
import pytest
import requests
from stream_stub import StreamStub, stream_stub_fixture  # noqa: F401

from botkit.runtime.stream_api import (
    StreamAPIError,
    StreamClient,
    StreamUnreachable,
    channel_type_command_names,
)

# Test secrets are short on purpose; PyJWT warns about short HMAC keys.
pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")


class SleepRecorder:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
def client(stream_stub: StreamStub, sleeps: SleepRecorder) -> Iterator[StreamClient]:
    with StreamClient(
        stream_stub.api_key,
        stream_stub.api_secret,
        base_url=stream_stub.url,
        timeout=2.0,
        sleep=sleeps,
    ) as c:
        yield c


def free_closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# -- auth and headers -----------------------------------------------------------------


def test_every_request_carries_key_jwt_and_headers(
    stream_stub: StreamStub, client: StreamClient
) -> None:
    client.get_app_settings()
    client.list_commands()
    assert len(stream_stub.requests) == 2
    for req in stream_stub.requests:
        assert req.query["api_key"] == "stub-key"
        token = req.headers["Authorization"]
        assert not token.lower().startswith("bearer")
        assert jwt.decode(token, "stub-secret", algorithms=["HS256"]) == {"server": True}
        assert req.headers["stream-auth-type"] == "jwt"
        assert req.headers["Content-Type"] == "application/json"
        assert req.headers["X-Stream-Client"].startswith("botkit-")
    # The token is computed once.
    tokens = {r.headers["Authorization"] for r in stream_stub.requests}
    assert len(tokens) == 1


def test_empty_key_or_secret_is_rejected() -> None:
    with pytest.raises(ValueError, match="API key"):
        StreamClient("", "secret")
    with pytest.raises(ValueError, match="API secret"):
        StreamClient("key", "")


def test_secret_not_in_repr() -> None:
    c = StreamClient("key", "topsecret")
    assert "topsecret" not in repr(c)
    c.close()


# -- messages -----------------------------------------------------------------------


def test_send_message(stream_stub: StreamStub, client: StreamClient) -> None:
    msg = client.send_message(
        "messaging", "general", {"text": "hi", "attachments": []}, user_id="bot"
    )
    assert msg["text"] == "hi"
    assert msg["type"] == "regular"
    assert msg["user"] == {"id": "bot"}
    assert msg["cid"] == "messaging:general"
    assert msg["id"]
    req = stream_stub.requests[-1]
    assert (req.method, req.path) == ("POST", "/channels/messaging/general/message")
    assert req.json == {
        "message": {"text": "hi", "attachments": [], "user_id": "bot"},
        "skip_push": False,
    }
    assert stream_stub.sent_messages("messaging:general")[0]["id"] == msg["id"]


def test_send_message_to_cid_and_skip_push(stream_stub: StreamStub, client: StreamClient) -> None:
    msg = client.send_message_to_cid("team:a-b", {"text": "yo"}, "bot", skip_push=True)
    assert msg["cid"] == "team:a-b"
    assert stream_stub.requests[-1].path == "/channels/team/a-b/message"
    assert stream_stub.requests[-1].json["skip_push"] is True
    with pytest.raises(ValueError, match="type:id"):
        client.send_message_to_cid("nocolon", {"text": "x"}, "bot")


def test_path_segments_are_quoted(stream_stub: StreamStub, client: StreamClient) -> None:
    with pytest.raises(StreamAPIError) as info:
        client.get_message("a/b c?d")
    assert info.value.status_code == 404
    req = stream_stub.requests[-1]
    assert req.path == "/messages/a/b c?d"  # the stub unquotes
    assert "?" not in req.raw.decode()  # and nothing leaked into the query
    assert set(req.query) == {"api_key"}


def test_message_get_update_partial_delete(stream_stub: StreamStub, client: StreamClient) -> None:
    sent = client.send_message("messaging", "general", {"text": "one"}, "bot")
    mid = sent["id"]

    assert client.get_message(mid)["text"] == "one"
    assert stream_stub.requests[-1].path == f"/messages/{mid}"

    updated = client.update_message({"id": mid, "text": "two"}, user_id="bot")
    assert updated["text"] == "two"
    req = stream_stub.requests[-1]
    assert (req.method, req.path) == ("POST", f"/messages/{mid}")
    assert req.json == {"message": {"id": mid, "text": "two", "user_id": "bot"}}

    partial = client.partial_update_message(
        mid, set={"text": "three", "color": "red"}, unset=["color"], user_id="bot"
    )
    assert partial["text"] == "three"
    assert "color" not in partial
    req = stream_stub.requests[-1]
    assert req.method == "PUT"
    assert req.json == {
        "set": {"text": "three", "color": "red"},
        "unset": ["color"],
        "user_id": "bot",
    }

    soft = client.delete_message(mid)
    assert soft["type"] == "deleted"
    assert stream_stub.requests[-1].method == "DELETE"
    assert "hard" not in stream_stub.requests[-1].query
    assert mid in stream_stub.messages

    client.delete_message(mid, hard=True)
    assert stream_stub.requests[-1].query["hard"] == "true"
    assert mid not in stream_stub.messages

    with pytest.raises(ValueError, match="id"):
        client.update_message({"text": "no id"})


def test_run_message_action(stream_stub: StreamStub, client: StreamClient) -> None:
    mid = client.send_message("messaging", "general", {"text": "gif"}, "bot")["id"]
    result = client.run_message_action(mid, {"image_action": "shuffle"}, "alice")
    assert result["message"]["id"] == mid
    req = stream_stub.requests[-1]
    assert (req.method, req.path) == ("POST", f"/messages/{mid}/action")
    assert req.json == {"form_data": {"image_action": "shuffle"}, "user_id": "alice"}
    assert stream_stub.actions[-1]["message_id"] == mid


def test_upsert_user(stream_stub: StreamStub, client: StreamClient) -> None:
    user = client.upsert_user({"id": "bot", "name": "Helper Bot"})
    assert user["name"] == "Helper Bot"
    req = stream_stub.requests[-1]
    assert (req.method, req.path) == ("POST", "/users")
    assert req.json == {"users": {"bot": {"id": "bot", "name": "Helper Bot"}}}
    assert stream_stub.users["bot"]["name"] == "Helper Bot"


# -- app settings --------------------------------------------------------------------


def test_app_settings(stream_stub: StreamStub, client: StreamClient) -> None:
    app = client.get_app_settings()
    assert app["custom_action_handler_url"] == ""
    assert app["event_hooks"] == []
    client.update_app_settings(
        custom_action_handler_url="https://bot.example.com/stream/commands?type={type}"
    )
    req = stream_stub.requests[-1]
    assert (req.method, req.path) == ("PATCH", "/app")
    assert req.json == {
        "custom_action_handler_url": "https://bot.example.com/stream/commands?type={type}"
    }
    assert client.get_app_settings()["custom_action_handler_url"].endswith("{type}")


def test_stub_event_hooks_replace_the_whole_list(client: StreamClient) -> None:
    hook_a = {"hook_type": "webhook", "webhook_url": "https://a", "event_types": []}
    hook_b = {"hook_type": "webhook", "webhook_url": "https://b", "event_types": []}
    client.update_app_settings(event_hooks=[hook_a, hook_b])
    hooks = client.get_app_settings()["event_hooks"]
    assert [h["webhook_url"] for h in hooks] == ["https://a", "https://b"]
    assert all(h["id"] for h in hooks)
    client.update_app_settings(event_hooks=[hook_b])
    hooks = client.get_app_settings()["event_hooks"]
    assert [h["webhook_url"] for h in hooks] == ["https://b"]
    client.update_app_settings(event_hooks=[])
    assert client.get_app_settings()["event_hooks"] == []


# -- commands ----------------------------------------------------------------------


def test_command_lifecycle(stream_stub: StreamStub, client: StreamClient) -> None:
    created = client.create_command("ticket", "Create a ticket", args="[text]", set="support")
    assert created["name"] == "ticket"
    req = stream_stub.requests[-1]
    assert (req.method, req.path) == ("POST", "/commands")
    assert req.json == {
        "name": "ticket",
        "description": "Create a ticket",
        "args": "[text]",
        "set": "support",
    }
    assert [c["name"] for c in client.list_commands()] == ["ticket"]

    got = client.get_command("ticket")
    assert got["description"] == "Create a ticket"
    assert "duration" not in got

    updated = client.update_command("ticket", "Open a ticket")
    assert updated["description"] == "Open a ticket"
    assert updated["args"] == "[text]"
    req = stream_stub.requests[-1]
    assert (req.method, req.path) == ("PUT", "/commands/ticket")
    assert req.json == {"description": "Open a ticket"}

    assert client.delete_command("ticket")["name"] == "ticket"
    assert stream_stub.requests[-1].method == "DELETE"
    assert client.list_commands() == []


def test_command_errors_map_to_stream_api_error(client: StreamClient) -> None:
    with pytest.raises(StreamAPIError) as info:
        client.get_command("x")
    err = info.value
    assert err.status_code == 404
    assert err.code == 16
    assert err.message == 'command "x" not found'
    assert str(err) == 'Stream API error 404 (code 16): command "x" not found'
    assert err.body is not None and err.body["StatusCode"] == 404
    assert err.unrecoverable is False

    for bad in ("giphy", "two words", "", "x" * 256):
        with pytest.raises(StreamAPIError) as info:
            client.create_command(bad, "desc")
        assert info.value.status_code == 400
    client.create_command("ok", "desc")
    with pytest.raises(StreamAPIError, match="already exists"):
        client.create_command("ok", "desc")
    with pytest.raises(StreamAPIError) as info:
        client.update_command("missing", "desc")
    assert info.value.status_code == 404


# -- channel types --------------------------------------------------------------------


def test_channel_type_get_objects_put_names(stream_stub: StreamStub, client: StreamClient) -> None:
    client.create_command("ticket", "Create a ticket")
    ct = client.get_channel_type("messaging")
    assert isinstance(ct["commands"][0], dict)
    assert ct["commands"][0]["name"] == "giphy"
    assert ct["commands"][0]["description"]
    names = channel_type_command_names(ct)
    assert names == ["giphy"]

    updated = client.update_channel_type("messaging", commands=[*names, "ticket"])
    assert updated["commands"] == ["giphy", "ticket"]
    assert client.channel_type_command_names(updated) == ["giphy", "ticket"]
    req = stream_stub.requests[-1]
    assert (req.method, req.path) == ("PUT", "/channeltypes/messaging")
    assert req.json == {"commands": ["giphy", "ticket"]}

    again = client.get_channel_type("messaging")
    assert [c["name"] for c in again["commands"]] == ["giphy", "ticket"]
    assert again["commands"][1]["description"] == "Create a ticket"


def test_stub_channel_type_command_rules(client: StreamClient) -> None:
    with pytest.raises(StreamAPIError) as info:
        client.update_channel_type("messaging", commands=["nope"])
    assert info.value.status_code == 400
    client.create_command("ticket", "Create a ticket")
    client.update_channel_type("messaging", commands=["ticket"])
    with pytest.raises(StreamAPIError) as info:
        client.delete_command("ticket")
    assert info.value.status_code == 400
    client.update_channel_type("messaging", commands=["giphy"])
    client.delete_command("ticket")
    with pytest.raises(StreamAPIError) as info:
        client.get_channel_type("unknown")
    assert info.value.status_code == 404


def test_command_names_helper_accepts_both_shapes() -> None:
    assert channel_type_command_names({"commands": ["a", {"name": "b"}]}) == ["a", "b"]
    assert channel_type_command_names({}) == []
    assert channel_type_command_names({"commands": None}) == []


# -- retries -------------------------------------------------------------------------


def test_retries_429_honouring_retry_after(
    stream_stub: StreamStub, client: StreamClient, sleeps: SleepRecorder
) -> None:
    stream_stub.fail_next(429, times=2, headers={"Retry-After": "2"})
    assert client.get_app_settings()["custom_action_handler_url"] == ""
    assert sleeps.calls == [2.0, 2.0]
    assert len(stream_stub.requests) == 3


def test_retry_after_is_capped(
    stream_stub: StreamStub, client: StreamClient, sleeps: SleepRecorder
) -> None:
    stream_stub.fail_next(429, headers={"Retry-After": "3600"})
    client.get_app_settings()
    assert sleeps.calls == [10.0]


def test_429_uses_rate_limit_reset(
    stream_stub: StreamStub, client: StreamClient, sleeps: SleepRecorder
) -> None:
    reset = int(time.time()) + 4
    stream_stub.fail_next(429, headers={"X-RateLimit-Reset": str(reset)})
    client.get_app_settings()
    assert len(sleeps.calls) == 1
    assert 2.0 <= sleeps.calls[0] <= 4.0


def test_retries_503_with_exponential_backoff(
    stream_stub: StreamStub, client: StreamClient, sleeps: SleepRecorder
) -> None:
    stream_stub.fail_next(503, times=3)
    client.list_commands()
    assert sleeps.calls == [0.5, 1.0, 2.0]
    assert len(stream_stub.requests) == 4


def test_gives_up_after_max_retries(
    stream_stub: StreamStub, client: StreamClient, sleeps: SleepRecorder
) -> None:
    stream_stub.fail_next(503, times=10)
    with pytest.raises(StreamAPIError) as info:
        client.list_commands()
    assert info.value.status_code == 503
    assert len(stream_stub.requests) == 4
    assert len(sleeps.calls) == 3


def test_no_retry_on_400(
    stream_stub: StreamStub, client: StreamClient, sleeps: SleepRecorder
) -> None:
    stream_stub.fail_next(400, body={"code": 4, "message": "bad", "StatusCode": 400})
    with pytest.raises(StreamAPIError) as info:
        client.list_commands()
    assert info.value.code == 4
    assert sleeps.calls == []
    assert len(stream_stub.requests) == 1


def test_no_retry_when_unrecoverable(
    stream_stub: StreamStub, client: StreamClient, sleeps: SleepRecorder
) -> None:
    body = {
        "code": -1,
        "message": "broken for good",
        "StatusCode": 500,
        "duration": "1ms",
        "more_info": "",
        "details": [],
        "unrecoverable": True,
    }
    stream_stub.fail_next(500, times=3, body=body)
    with pytest.raises(StreamAPIError) as info:
        client.list_commands()
    assert info.value.unrecoverable is True
    assert info.value.body == body
    assert sleeps.calls == []
    assert len(stream_stub.requests) == 1


def test_non_json_error_body(stream_stub: StreamStub, client: StreamClient) -> None:
    stream_stub.fail_next(502, times=4, body="<html><body>Bad Gateway</body></html>")
    with pytest.raises(StreamAPIError) as info:
        client.list_commands()
    err = info.value
    assert err.status_code == 502
    assert err.code is None
    assert err.body is None
    assert "Bad Gateway" in str(err)
    assert str(err).startswith("Stream API error 502: ")


# -- unreachable -----------------------------------------------------------------------


def test_unreachable_url_raises_fast(sleeps: SleepRecorder) -> None:
    url = f"http://127.0.0.1:{free_closed_port()}"
    client = StreamClient("k", "s", base_url=url, max_retries=2, sleep=sleeps)
    started = time.monotonic()
    with pytest.raises(StreamUnreachable) as info:
        client.get_app_settings()
    assert time.monotonic() - started < 2.0
    assert url in str(info.value)
    assert info.value.status_code == 0
    assert isinstance(info.value, StreamAPIError)
    assert sleeps.calls == [0.5, 1.0]


def test_read_timeout_is_retried_then_unreachable(
    stream_stub: StreamStub, sleeps: SleepRecorder
) -> None:
    stream_stub.hang_next(0.5, times=2)
    client = StreamClient(
        stream_stub.api_key,
        stream_stub.api_secret,
        base_url=stream_stub.url,
        timeout=0.1,
        max_retries=1,
        sleep=sleeps,
    )
    with pytest.raises(StreamUnreachable, match="Timeout"):
        client.get_app_settings()
    assert len(sleeps.calls) == 1
    client.close()


# -- from_env ---------------------------------------------------------------------------


def test_from_env(stream_stub: StreamStub) -> None:
    env = {
        "STREAM_API_KEY": "stub-key",
        "STREAM_API_SECRET": "stub-secret",
        "STREAM_BASE_URL": stream_stub.url,
    }
    with StreamClient.from_env(env) as client:
        assert client.base_url == stream_stub.url
        assert client.get_app_settings()["name"] == "stub-app"


def test_from_env_chat_url_and_default() -> None:
    env = {
        "STREAM_API_KEY": "k",
        "STREAM_API_SECRET": "s",
        "STREAM_CHAT_URL": "http://x/",
    }
    assert StreamClient.from_env(env).base_url == "http://x"
    env = {"STREAM_API_KEY": "k", "STREAM_API_SECRET": "s"}
    assert StreamClient.from_env(env).base_url == "https://chat.stream-io-api.com"


def test_from_env_missing_names_variables() -> None:
    with pytest.raises(ValueError, match="STREAM_API_KEY, STREAM_API_SECRET"):
        StreamClient.from_env({})
    with pytest.raises(ValueError, match="STREAM_API_SECRET") as info:
        StreamClient.from_env({"STREAM_API_KEY": "k"})
    assert "STREAM_API_KEY," not in str(info.value)


# -- the stub itself ---------------------------------------------------------------------


def test_stub_rejects_bad_credentials(stream_stub: StreamStub) -> None:
    good = jwt.encode({"server": True}, "stub-secret", algorithm="HS256")
    bad = jwt.encode({"server": True}, "wrong-secret", algorithm="HS256")
    url = stream_stub.url + "/app"
    base_headers = {"stream-auth-type": "jwt", "Content-Type": "application/json"}

    def get(params: dict[str, str], token: str) -> requests.Response:
        return requests.get(
            url,
            params=params,
            headers={**base_headers, "Authorization": token},
            timeout=2,
        )

    assert get({"api_key": "stub-key"}, good).status_code == 200
    for params, token in (
        ({"api_key": "stub-key"}, bad),
        ({"api_key": "stub-key"}, "Bearer " + good),
        ({"api_key": "other"}, good),
        ({}, good),
    ):
        resp = get(params, token)
        assert resp.status_code in (401, 403)
        body = resp.json()
        assert body["code"] == 5
        assert body["StatusCode"] == resp.status_code
        assert body["message"]


def test_client_with_wrong_secret_gets_auth_error(stream_stub: StreamStub) -> None:
    with (
        StreamClient("stub-key", "nope", base_url=stream_stub.url) as client,
        pytest.raises(StreamAPIError) as info,
    ):
        client.get_app_settings()
    assert info.value.status_code == 401
    assert info.value.code == 5


def test_stub_wait_for(stream_stub: StreamStub, client: StreamClient) -> None:
    with pytest.raises(AssertionError):
        stream_stub.wait_for(lambda: stream_stub.sent_messages(), timeout=0.05)
    client.send_message("messaging", "general", {"text": "later"}, "bot")
    msgs = stream_stub.wait_for(lambda: stream_stub.sent_messages("messaging:general"))
    assert msgs[0]["text"] == "later"


def test_secrets_are_not_logged(
    stream_stub: StreamStub,
    client: StreamClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="botkit.stream_api")
    stream_stub.fail_next(503)
    client.get_app_settings()
    token = stream_stub.requests[-1].headers["Authorization"]
    assert caplog.records
    assert token not in caplog.text
    assert "stub-secret" not in caplog.text


def test_stub_fixture_importable_under_both_names() -> None:
    import stream_stub as module

    assert module.stream_stub is module.stream_stub_fixture
