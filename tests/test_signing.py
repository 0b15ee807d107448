"""Tests for botkit.core.signing: known answers, rejections, rotation, gzip, properties."""

from __future__ import annotations

import gzip
import hmac
import json
import zlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from botkit import Bot, Config, ConfigError, Message
from botkit.core.signing import BodyTooLarge, InvalidSignature, KeyRing, gunzip, sign, verify
from botkit.testing import command_payload, encode, signed_headers

KEY = "app-key"
SECRET = "porewqKAFDSAKZssecretsercretfads"


@pytest.fixture
def ring() -> KeyRing:
    return KeyRing({KEY: (SECRET,)})


# -- known answers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("secret", "body", "expected"),
    [
        (
            "It's a Secret to Everybody",
            b"Hello, World!",
            "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        ),
        (
            SECRET,
            b"text",
            "d0b770e93a56adc3ee9ac5734533cc0acd71eea8e5e8204a28042ca0f60de1f3",
        ),
        (
            SECRET,
            b'{"a":1}',
            "e527a6ad4993a4c9a30680c8be4b3eda1c36ab104f1f7d39c744bd27016a9624",
        ),
    ],
)
def test_known_answers(secret: str, body: bytes, expected: str) -> None:
    assert sign(secret, body) == expected
    assert sign(secret.encode(), body) == expected
    verify(KeyRing({KEY: (secret,)}), KEY, expected, body)


# -- rejections ------------------------------------------------------------------------------

BODY = b'{"a":1}'
GOOD = "e527a6ad4993a4c9a30680c8be4b3eda1c36ab104f1f7d39c744bd27016a9624"


def _flip(ch: str) -> str:
    return "0" if ch != "0" else "1"


@pytest.mark.parametrize(
    ("api_key", "signature", "body", "reason"),
    [
        (KEY, sign("wrong secret", BODY), BODY, "mismatch"),
        (KEY, GOOD, BODY + b" ", "mismatch"),
        (KEY, GOOD, BODY + b"\n", "mismatch"),
        (KEY, _flip(GOOD[0]) + GOOD[1:], BODY, "mismatch"),
        (KEY, GOOD[:-1] + _flip(GOOD[-1]), BODY, "mismatch"),
        (KEY, GOOD[:-1], BODY, "malformed"),
        (KEY, GOOD[:32], BODY, "malformed"),
        (KEY, "", BODY, "missing X-Signature"),
        (KEY, None, BODY, "missing X-Signature"),
        (KEY, "foo", BODY, "malformed"),
        (KEY, "z" * 64, BODY, "malformed"),
        (KEY, "é" * 64, BODY, "malformed"),
        (KEY, "sha256=" + GOOD, BODY, "malformed"),
        (KEY, f"{GOOD},{GOOD}", BODY, "malformed"),
        (KEY, f"{GOOD}, {GOOD}", BODY, "malformed"),
        (None, GOOD, BODY, "missing X-Api-Key"),
        ("", GOOD, BODY, "missing X-Api-Key"),
        ("other-key", GOOD, BODY, "unknown X-Api-Key"),
    ],
)
def test_rejections(
    ring: KeyRing, api_key: str | None, signature: str | None, body: bytes, reason: str
) -> None:
    with pytest.raises(InvalidSignature) as info:
        verify(ring, api_key, signature, body)
    assert reason in info.value.reason


def test_uppercase_hex_is_the_same_signature(ring: KeyRing) -> None:
    verify(ring, KEY, GOOD.upper(), BODY)


def test_comparison_is_constant_time(ring: KeyRing, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, Any]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr("botkit.core.signing.hmac.compare_digest", spy)
    verify(ring, KEY, GOOD, BODY)
    assert calls, "verify must compare with hmac.compare_digest"
    calls.clear()
    with pytest.raises(InvalidSignature):
        verify(ring, KEY, _flip(GOOD[0]) + GOOD[1:], BODY)
    assert calls


# -- key ring: rotation, several apps, bad secrets ---------------------------------------------


def test_rotation_accepts_every_secret_of_a_key() -> None:
    ring = KeyRing({KEY: ("old-secret", "new-secret")})
    verify(ring, KEY, sign("old-secret", BODY), BODY)
    verify(ring, KEY, sign("new-secret", BODY), BODY)
    with pytest.raises(InvalidSignature):
        verify(ring, KEY, sign("bogus-secret", BODY), BODY)
    assert ring.secret_for(KEY) == "old-secret"  # signs with the first


def test_several_apps_from_env() -> None:
    ring = KeyRing.from_env(
        {"STREAM_API_KEYS": "app1:s1-old, app1:s1-new ,app2:s2", "STREAM_API_KEY": ""}
    )
    assert set(ring) == {"app1", "app2"}
    assert ring["app1"] == ("s1-old", "s1-new")
    for key, secret in [("app1", "s1-old"), ("app1", "s1-new"), ("app2", "s2")]:
        verify(ring, key, sign(secret, BODY), BODY)
    with pytest.raises(InvalidSignature):  # one app's secret does not open another
        verify(ring, "app2", sign("s1-new", BODY), BODY)


def test_env_single_key_and_keys_together() -> None:
    ring = KeyRing.from_env(
        {"STREAM_API_KEY": "main", "STREAM_API_SECRET": "m-secret", "STREAM_API_KEYS": "main:m2"}
    )
    assert ring["main"] == ("m-secret", "m2")


@pytest.mark.parametrize("secret", ["", " ", "\t\n"])
def test_empty_secret_is_refused_by_keyring(secret: str) -> None:
    with pytest.raises(ValueError, match="empty"):
        KeyRing({KEY: (secret,)})


@pytest.mark.parametrize(
    "env",
    [
        {"STREAM_API_KEY": "k", "STREAM_API_SECRET": ""},
        {"STREAM_API_KEY": "k", "STREAM_API_SECRET": "   "},
        {"STREAM_API_KEY": "", "STREAM_API_SECRET": "s"},
        {"STREAM_API_KEYS": "k:"},
        {"STREAM_API_KEYS": "k:  "},
        {"STREAM_API_KEYS": "k"},
        {"STREAM_API_KEYS": ":s"},
    ],
)
def test_empty_secret_is_refused_by_config(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="STREAM_API"):
        Config.from_env(env)


def test_repr_never_shows_secrets() -> None:
    ring = KeyRing({KEY: (SECRET,)})
    assert SECRET not in repr(ring)
    assert SECRET not in repr(Config(keyring=ring))


# -- gzip ---------------------------------------------------------------------------------------


def test_gunzip_round_trip_and_limits() -> None:
    data = b"x" * 1000
    assert gunzip(gzip.compress(data), 1000) == data
    with pytest.raises(BodyTooLarge):
        gunzip(gzip.compress(data), 999)
    with pytest.raises(ValueError):
        gunzip(gzip.compress(data)[:-8], 2000)  # truncated
    with pytest.raises(ValueError):
        gunzip(b"\x1f\x8bnot gzip at all", 2000)


def test_gunzip_bomb_stops_at_the_limit() -> None:
    bomb = gzip.compress(b"\0" * (20 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 64 * 1024
    with pytest.raises(BodyTooLarge):
        gunzip(bomb, 64 * 1024)


@pytest.fixture
def gz_client() -> Any:
    bot = Bot()

    @bot.command("echo")
    def echo(ctx: Any) -> Message:
        return Message.ephemeral(f"echo {ctx.args}")

    config = Config(
        keyring=KeyRing({KEY: (SECRET,)}),
        store_url="memory://",
        max_body_bytes=64 * 1024,
        command_budget=10.0,
    )
    client = bot.test_client(config=config, api_key=KEY, secret=SECRET)
    yield client.app.test_client()
    client.runtime.close()


def _post(http: Any, body: bytes, signed_over: bytes) -> Any:
    headers = signed_headers(signed_over, api_key=KEY, secret=SECRET)
    return http.post("/webhooks/stream/custom-commands?type=echo", data=body, headers=headers)


def test_gzip_body_verifies_over_the_inflated_bytes(gz_client: Any) -> None:
    raw = encode(command_payload("/echo hi"))
    response = _post(gz_client, gzip.compress(raw), raw)
    assert response.status_code == 200
    assert response.get_json()["message"]["text"] == "echo hi"


def test_signature_over_compressed_bytes_is_refused(gz_client: Any) -> None:
    raw = encode(command_payload("/echo hi"))
    packed = gzip.compress(raw)
    response = _post(gz_client, packed, packed)
    assert response.status_code == 401
    assert response.get_data() == b'{"error":"invalid signature"}'


def test_gzip_bomb_gets_413(gz_client: Any) -> None:
    inner = json.dumps({"message": {"text": "a" * (2 * 1024 * 1024)}}).encode()
    bomb = gzip.compress(inner, compresslevel=9)
    assert len(bomb) < 64 * 1024
    response = _post(gz_client, bomb, inner)
    assert response.status_code == 413


def test_broken_gzip_is_refused_not_500(gz_client: Any) -> None:
    raw = encode(command_payload("/echo hi"))
    broken = gzip.compress(raw)[:-10]
    response = _post(gz_client, broken, raw)
    assert 400 <= response.status_code < 500


# -- properties -------------------------------------------------------------------------------

secrets_st = st.text(min_size=1, max_size=40).filter(lambda s: s.strip() != "")


@settings(max_examples=60, deadline=None)
@given(secret=secrets_st, body=st.binary(max_size=512))
def test_round_trip(secret: str, body: bytes) -> None:
    ring = KeyRing({KEY: (secret,)})
    signature = sign(secret, body)
    assert len(signature) == 64 and signature == signature.lower()
    verify(ring, KEY, signature, body)


@settings(max_examples=60, deadline=None)
@given(
    secret=secrets_st,
    body=st.binary(max_size=256),
    other=st.binary(max_size=256),
)
def test_any_other_body_fails(secret: str, body: bytes, other: bytes) -> None:
    if other == body:
        other = body + b"\0"
    ring = KeyRing({KEY: (secret,)})
    with pytest.raises(InvalidSignature):
        verify(ring, KEY, sign(secret, body), other)


@settings(max_examples=60, deadline=None)
@given(
    secret=secrets_st,
    body=st.binary(max_size=256),
    index=st.integers(min_value=0, max_value=63),
    digit=st.sampled_from("0123456789abcdef"),
)
def test_any_signature_change_fails(secret: str, body: bytes, index: int, digit: str) -> None:
    signature = sign(secret, body)
    if signature[index] == digit:
        digit = "f" if digit != "f" else "0"
    mutated = signature[:index] + digit + signature[index + 1 :]
    with pytest.raises(InvalidSignature):
        verify(KeyRing({KEY: (secret,)}), KEY, mutated, body)


@settings(max_examples=40, deadline=None)
@given(body=st.binary(max_size=4096))
def test_gunzip_round_trip_property(body: bytes) -> None:
    packed = gzip.compress(body)
    assert gunzip(packed, len(body)) == body
    if body:
        with pytest.raises(BodyTooLarge):
            gunzip(packed, len(body) - 1)


def test_zlib_error_is_value_error() -> None:
    # a gzip header followed by garbage deflate data
    header = gzip.compress(b"")[:10]
    with pytest.raises(ValueError):
        gunzip(header + zlib.compress(b"abc")[2:] + b"\xff" * 8, 100)
