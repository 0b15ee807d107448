"""Where /gif's pictures are loaded from: ``BOTKIT_PUBLIC_URL``, else the scheme and host
the webhook came in on, under a real gunicorn (``wsgi:app``) that serves the pictures too.

Stream's client refuses ``data:`` pictures, and the user's browser loads each picture from
the URL in the reply, so it must be absolute, ``http(s)``, and reachable from outside.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlparse

import pytest
from server import GunicornServer, gunicorn, signed_post  # noqa: F401

from botkit import Config, ConfigError
from botkit.testing import command_payload, encode

COMMANDS = "/webhooks/stream/custom-commands?type=gif"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://bot.example.com", "https://bot.example.com"),
        ("https://bot.example.com/", "https://bot.example.com"),
        (" http://127.0.0.1:8000/chat/ ", "http://127.0.0.1:8000/chat"),
        ("", None),
    ],
)
def test_public_url_setting(raw: str, expected: str | None) -> None:
    env = {"BOTKIT_DEV": "1", "BOTKIT_PUBLIC_URL": raw}
    assert Config.from_env(env).public_url == expected


@pytest.mark.parametrize(
    "raw",
    [
        "bot.example.com",
        "ftp://bot.example.com",
        "data:image/svg+xml,x",
        "https://",
        "https://bot.example.com/?a=1",
        "https://bot.example.com/#top",
        "https://user:pw@bot.example.com",
        "https://bot.example.com:port",
        "https://bot example.com",
    ],
)
def test_public_url_setting_refuses_what_is_not_a_base_url(raw: str) -> None:
    with pytest.raises(ConfigError, match=r"BOTKIT_PUBLIC_URL=.*e\.g\. https://bot\.example\.com"):
        Config.from_env({"BOTKIT_DEV": "1", "BOTKIT_PUBLIC_URL": raw})


def gif_picture(server: GunicornServer, headers: dict[str, str] | None = None) -> str:
    """The picture URL of ``/gif cats`` as the server answers it."""
    conn = server.connection()
    try:
        result = signed_post(conn, COMMANDS, encode(command_payload("/gif cats")), headers=headers)
    finally:
        conn.close()
    assert result.status == 200, result.body
    (card,) = result.json()["message"]["attachments"]
    url: str = card["image_url"]
    assert card["thumb_url"] == card["giphy"]["fixed_height"]["url"] == url
    return url


def assert_served(server: GunicornServer, url: str) -> None:
    """The picture at ``url`` is served by ``server`` itself."""
    picture = server.get(urlparse(url).path)
    assert picture.status == 200
    assert picture.header("Content-Type") == "image/svg+xml; charset=utf-8"
    assert picture.body.startswith(b"<svg") and b"cats #1" in picture.body


@pytest.mark.slow
def test_pictures_from_the_request_host_and_forwarded_scheme(
    gunicorn: Callable[..., GunicornServer],
) -> None:
    # gunicorn.conf.py trusts X-Forwarded-Proto from 127.0.0.1 (FORWARDED_ALLOW_IPS)
    server = gunicorn("wsgi:app", env={"BOTKIT_DEV": "1"})
    direct = gif_picture(server)
    assert direct == f"{server.url}/examples/gif/cats-1.svg"
    assert_served(server, direct)

    proxied = gif_picture(server, {"Host": "bot.example.com", "X-Forwarded-Proto": "https"})
    assert proxied == "https://bot.example.com/examples/gif/cats-1.svg"
    assert_served(server, proxied)

    # anyone can send X-Forwarded-Host: it is not read
    assert gif_picture(server, {"X-Forwarded-Host": "evil.example"}) == direct
    # a Host that is no host name is not copied into the reply
    for host in ("evil.example/<script>", 'a"b', "bad host"):
        assert gif_picture(server, {"Host": host}) == "/examples/gif/cats-1.svg"


@pytest.mark.slow
def test_forwarded_scheme_from_an_untrusted_address_is_ignored(
    gunicorn: Callable[..., GunicornServer],
) -> None:
    server = gunicorn("wsgi:app", env={"BOTKIT_DEV": "1", "FORWARDED_ALLOW_IPS": "10.9.9.9"})
    url = gif_picture(server, {"Host": "bot.example.com", "X-Forwarded-Proto": "https"})
    assert url == "http://bot.example.com/examples/gif/cats-1.svg"


@pytest.mark.slow
def test_pictures_from_the_public_url_setting(gunicorn: Callable[..., GunicornServer]) -> None:
    env = {"BOTKIT_DEV": "1", "BOTKIT_PUBLIC_URL": "https://pub.example.com/bot/"}
    server = gunicorn("wsgi:app", env=env)
    for headers in (None, {"Host": "internal:8000", "X-Forwarded-Proto": "http"}):
        url = gif_picture(server, headers)
        assert url == "https://pub.example.com/bot/examples/gif/cats-1.svg"
    # the proxy at pub.example.com/bot passes /examples/gif/... on to the bot
    assert_served(server, url.replace("/bot/", "/", 1))
