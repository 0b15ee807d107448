"""Tests for botkit.core.schemas: strict JSON decoding and payload validation."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from botkit.core.schemas import (
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


# -- the fast path agrees with the schemas -----------------------------------------------------

import copy  # noqa: E402

from marshmallow import ValidationError  # noqa: E402

from botkit.core import schemas  # noqa: E402

opt_str_reply = st.none() | st.text(max_size=8)
valid_actions = st.fixed_dictionaries(
    {k: st.text(min_size=1, max_size=5) for k in ("name", "text", "type")},
    optional={"value": opt_str_reply, "style": opt_str_reply},
)
valid_fields = st.fixed_dictionaries(
    {"title": st.text(max_size=5), "value": st.text(max_size=5), "short": st.booleans()}
)
valid_attachments = st.fixed_dictionaries(
    {},
    optional={
        "type": opt_str_reply,
        "actions": st.none() | st.lists(valid_actions, max_size=3),
        "fields": st.none() | st.lists(valid_fields, max_size=2),
        "title_link": st.text(max_size=5),
    },
)


@st.composite
def replies(draw: st.DrawFn) -> dict[str, Any]:
    """Valid replies (up to 31 attachments), half with one value replaced."""
    reply: dict[str, Any] = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "type": st.none() | st.sampled_from(["regular", "ephemeral", "error", "x"]),
                "text": opt_str_reply,
                "mml": opt_str_reply,
                "attachments": st.none()
                | st.lists(valid_attachments, max_size=3)
                | st.lists(st.just({}), min_size=29, max_size=31),
                "x_state": json_values,
            },
        )
    )
    if draw(st.booleans()) and _paths(reply):
        path = draw(st.sampled_from(_paths(reply)))
        holder: Any = reply
        for step in path[:-1]:
            holder = holder[step]
        holder[path[-1]] = draw(st.sampled_from(["", None, 0, True, [], {}]) | json_values)
    return reply


# Well-formed payloads, half of them with one value somewhere replaced by a random one, so
# both sides of every fast check are exercised (random payloads almost never pass it).
opt_str = st.none() | st.text(max_size=8)
valid_users = st.fixed_dictionaries(
    {"id": st.text(min_size=1, max_size=6)},
    optional={
        "name": opt_str,
        "role": opt_str,
        "Custom": st.none() | st.dictionaries(st.text(max_size=5), json_values, max_size=3),
        "x_custom": json_values,
    },
)
valid_messages = st.fixed_dictionaries(
    {},
    optional={
        "id": st.text(max_size=8),
        **{k: opt_str for k in ("text", "html", "type", "command", "args", "cid", "mml")},
        "attachments": st.none()
        | st.lists(st.dictionaries(st.text(max_size=5), json_values, max_size=3), max_size=3),
        "user": st.none() | valid_users,
        "x_state": json_values,
    },
)
valid_payloads = st.fixed_dictionaries(
    {"message": valid_messages, "user": valid_users},
    optional={
        "form_data": st.none() | st.dictionaries(st.text(max_size=5), st.text(max_size=5)),
        "type": st.text(min_size=1, max_size=12),
        "cid": opt_str,
        "channel": st.none()
        | st.fixed_dictionaries({}, optional={"cid": opt_str, "id": opt_str, "type": opt_str}),
        "request_info": st.none() | st.dictionaries(st.text(max_size=5), json_values),
    },
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


@st.composite
def well_formed(draw: st.DrawFn) -> dict[str, Any]:
    payload: dict[str, Any] = draw(valid_payloads)
    if draw(st.booleans()):
        path = draw(st.sampled_from(_paths(payload)))
        holder: Any = payload
        for step in path[:-1]:
            holder = holder[step]
        holder[path[-1]] = draw(st.sampled_from(["", None, 0, True, [], {}]) | json_values)
    return payload


FAST_PATHS = [
    (schemas._command_ok, schemas._command_schema),
    (schemas._before_send_ok, schemas._before_send_schema),
    (schemas._event_ok, schemas._event_schema),
]


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(payloads | well_formed())
def test_fast_path_accepts_only_what_the_schemas_accept(data: dict[str, Any]) -> None:
    """A payload the fast check lets through is one marshmallow accepts, and the loaded
    result holds the same values (botkit then uses the payload itself)."""
    for fast, schema in FAST_PATHS:
        if not fast(copy.deepcopy(data)):
            continue
        try:
            loaded = schema.load(copy.deepcopy(data))
        except ValidationError as exc:  # pragma: no cover - the failure is the report
            pytest.fail(f"{fast.__name__} accepted what the schema refuses: {exc.messages}")
        expected = copy.deepcopy(data)
        if isinstance(expected.get("message"), dict):
            expected["message"].setdefault("id", "")
        assert loaded == expected


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(replies())
def test_fast_reply_check_accepts_only_valid_replies(message: dict[str, Any]) -> None:
    if schemas._reply_ok(message):
        assert schemas._message_out.validate(message) == {}
