"""Tests for botkit.schemas: strict JSON decoding and payload validation."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from botkit.schemas import (
    InvalidPayload,
    load_before_send,
    load_command,
    load_event,
    parse_json,
    validate_reply,
)
from botkit.testing import before_send_payload, command_payload, encode, event_payload

LOADERS: list[Callable[[dict[str, Any]], dict[str, Any]]] = [
    load_command,
    load_before_send,
    load_event,
]

# -- strategies -------------------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
#: objects that look a bit like Stream's, so validation goes past the first field
field_names = st.sampled_from(
    ["id", "text", "type", "command", "args", "cid", "mml", "attachments", "user", "Custom",
     "name", "role", "form_data", "message", "channel", "request_info", "html", "x_state"]
)  # fmt: skip
shaped = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(field_names | st.text(max_size=5), children, max_size=5)
    ),
    max_leaves=25,
)
payloads = st.fixed_dictionaries(
    {},
    optional={
        "message": shaped,
        "user": shaped,
        "form_data": shaped,
        "type": shaped,
        "channel": shaped,
        "request_info": shaped,
    },
)


def _only_invalid_payload(data: dict[str, Any]) -> None:
    for load in LOADERS:
        try:
            result = load(data)
        except InvalidPayload as exc:
            assert exc.fields
            json.dumps(exc.fields)  # the 400 answer can always show it
        else:
            assert isinstance(result, dict)


# -- parse_json ---------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_arbitrary_bytes_only_raise_invalid_payload(body: bytes) -> None:
    try:
        data = parse_json(body)
    except InvalidPayload as exc:
        assert "_body" in exc.fields
        return
    _only_invalid_payload(data)


@settings(max_examples=150, deadline=None)
@given(json_values)
def test_arbitrary_json_only_raises_invalid_payload(value: Any) -> None:
    body = json.dumps(value).encode()
    try:
        data = parse_json(body)
    except InvalidPayload as exc:
        assert not isinstance(value, dict)
        assert exc.fields == {"_body": ["body must be a JSON object"]}
        return
    assert data == value
    _only_invalid_payload(data)


@settings(max_examples=200, deadline=None)
@given(payloads)
def test_stream_shaped_payloads_only_raise_invalid_payload(data: dict[str, Any]) -> None:
    _only_invalid_payload(data)


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"", "not valid JSON"),
        (b"not json", "not valid JSON"),
        (b"[]", "JSON object"),
        (b"[1, 2]", "JSON object"),
        (b'"text"', "JSON object"),
        (b"null", "JSON object"),
        (b"\xff\xfe{}", "UTF-8"),
        (b'{"a": "\xc3\x28"}', "UTF-8"),
        (b'\xef\xbb\xbf{"a": 1}', "not valid JSON"),  # UTF-8 BOM
        (b"[" * 200_000, "nested too deeply"),
        (b'{"a": ' + b"9" * 5000 + b"}", "not valid JSON"),
        (b'{"a": NaN}', "not valid JSON"),
        (b'{"a": Infinity}', "not valid JSON"),
        (b'{"a": -Infinity}', "not valid JSON"),
        (b'{"a": 1e999}', "not valid JSON"),
        (b'{"a": -1e400}', "not valid JSON"),
        (b'{"a": 1} trailing', "not valid JSON"),
    ],
)
def test_parse_json_refuses(body: bytes, why: str) -> None:
    with pytest.raises(InvalidPayload) as info:
        parse_json(body)
    assert why in info.value.fields["_body"][0]


def test_parse_json_accepts_big_but_finite_numbers() -> None:
    assert parse_json(b'{"a": 1e300, "b": 123456789012345678901234567890}') == {
        "a": 1e300,
        "b": 123456789012345678901234567890,
    }


# -- loaders --------------------------------------------------------------------------------------


def test_command_payload_keeps_custom_fields() -> None:
    payload = command_payload("/gif cats", gif_query="cats", gif_pick=2, nested={"a": [1]})
    payload["user"]["Custom"] = {"team": "blue"}
    payload["user"]["favourite"] = "tea"
    payload["extra_top"] = True
    loaded = load_command(json.loads(encode(payload)))
    assert loaded["message"]["gif_query"] == "cats"
    assert loaded["message"]["gif_pick"] == 2
    assert loaded["message"]["nested"] == {"a": [1]}
    assert loaded["user"]["Custom"] == {"team": "blue"}
    assert loaded["user"]["favourite"] == "tea"
    assert loaded["extra_top"] is True


def test_user_custom_may_be_null() -> None:
    payload = command_payload("/gif cats")
    payload["user"]["Custom"] = None
    assert load_command(payload)["user"]["Custom"] is None


def test_form_data_values_must_be_strings() -> None:
    payload = command_payload("/gif cats")
    payload["form_data"] = {"image_action": "send"}
    assert load_command(payload)["form_data"] == {"image_action": "send"}
    payload["form_data"] = {"image_action": 1}
    with pytest.raises(InvalidPayload) as info:
        load_command(payload)
    assert "form_data" in info.value.fields
    payload["form_data"] = ["image_action"]
    with pytest.raises(InvalidPayload) as info:
        load_command(payload)
    assert "form_data" in info.value.fields


@pytest.mark.parametrize(
    ("data", "fields"),
    [
        ({}, {"message", "user"}),
        ({"user": {"id": "a"}}, {"message"}),
        ({"message": {}}, {"user"}),
        ({"message": "hi", "user": {"id": "a"}}, {"message"}),
        ({"message": {"text": 5}, "user": {"id": 7}}, {"message", "user"}),
        ({"message": {}, "user": {"id": ""}}, {"user"}),
        ({"message": {"attachments": "x"}, "user": {"id": "a"}}, {"message"}),
    ],
)
def test_command_payload_errors_name_the_fields(data: dict[str, Any], fields: set[str]) -> None:
    with pytest.raises(InvalidPayload) as info:
        load_command(data)
    assert set(info.value.fields) == fields


def test_before_send_and_event_payloads() -> None:
    loaded = load_before_send(json.loads(encode(before_send_payload("hello"))))
    assert loaded["channel"]["cid"] == "messaging:general"
    event = load_event(json.loads(encode(event_payload("message.new"))))
    assert event["type"] == "message.new"
    with pytest.raises(InvalidPayload) as info:
        load_event({"cid": "messaging:general"})
    assert "type" in info.value.fields


# -- outgoing ------------------------------------------------------------------------------------


def test_validate_reply() -> None:
    assert validate_reply({"text": "hi", "type": "ephemeral", "attachments": []}) == {}
    assert "type" in validate_reply({"type": "bogus"})
    assert "attachments" in validate_reply({"attachments": [{}] * 31})
    assert validate_reply({"attachments": [{}] * 30}) == {}
    bad_action = {"attachments": [{"actions": [{"name": "", "text": "Go", "type": "button"}]}]}
    assert "attachments" in validate_reply(bad_action)
