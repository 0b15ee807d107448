"""Settings, read from the environment (12-factor, as Heroku sets them)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from .signing import KeyRing

log = logging.getLogger("botkit")

#: The key and secret ``make run`` uses when no Stream credentials are set.
DEV_API_KEY = "botkit-dev-key"
DEV_API_SECRET = "botkit-dev-secret-for-local-use-only"


class ConfigError(ValueError):
    """A setting is missing or wrong; the message names the variable."""


NO_CREDENTIALS = (
    "No Stream credentials: set STREAM_API_KEY and STREAM_API_SECRET "
    "(or STREAM_API_KEYS=key:secret,...). For local development only, "
    "BOTKIT_DEV=1 uses a built-in development key."
)


def url_prefix(raw: str) -> str:
    """The path the webhooks are served under, from a ``BOTKIT_URL_PREFIX`` value.

    Slashes and spaces around it do not matter: ``"bots/"`` gives ``"/bots"``, and
    ``"/"`` gives ``""`` (the webhooks at the site's root).
    """
    prefix = "/" + raw.strip().strip("/")
    return "" if prefix == "/" else prefix


def public_url(raw: str) -> str | None:
    """The bot's public base URL from a ``BOTKIT_PUBLIC_URL`` value, without a trailing
    slash (``"https://bot.example.com/"`` gives ``"https://bot.example.com"``); None when
    empty. Raises :class:`ConfigError` unless it is an absolute ``http(s)`` URL."""
    url = raw.strip().rstrip("/")
    if not url:
        return None
    try:
        parts = urlsplit(url)
        _ = parts.port  # a port that is not a number raises ValueError
    except ValueError:
        parts = None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.query
        or parts.fragment
        or parts.username is not None
        or any(c.isspace() for c in url)
    ):
        raise ConfigError(
            f"BOTKIT_PUBLIC_URL={raw!r} is not a public base URL: give the address users' "
            "browsers reach the bot at, e.g. https://bot.example.com"
        )
    return url


def env_positive(environ: Mapping[str, str], name: str, default: float) -> float:
    """The number ``environ[name]`` (``default`` if unset or blank); a
    :class:`ConfigError` naming the variable unless it is a number greater than 0."""
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if not value > 0:  # NaN too
        raise ConfigError(f"{name} must be greater than 0, got {raw!r}")
    return value


def _count(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit():
        raise ConfigError(f"{name}={raw!r} is not a whole number of 0 or more")
    return int(raw)


@dataclass
class Config:
    """Everything botkit reads from the environment. See the README's table."""

    keyring: KeyRing
    url_prefix: str = "/webhooks/stream"
    max_body_bytes: int = 1024 * 1024
    store_url: str | None = None
    queue_url: str | None = None
    bot_user_id: str | None = None
    stream_base_url: str = "https://chat.stream-io-api.com"
    command_budget: float = 0.8
    before_send_budget: float = 1.2
    result_ttl: float = 24 * 3600.0
    claim_ttl: float = 30.0
    #: An answer longer than this is stored without its body (copies get the in-flight
    #: answer; the handler does not run again). Stream's replies are a message of a few
    #: KB; 256 KiB leaves room for big attachments lists and keeps a flood of huge
    #: answers from filling the disk.
    store_max_answer_bytes: int = 256 * 1024
    #: The SQLite store keeps its data under this many bytes, the oldest answers evicted
    #: first: 256 MiB holds a day of about 100,000 answers of 2 KB.
    store_max_bytes: int = 256 * 1024 * 1024
    #: Handler calls per worker that may run in the request thread at once (under
    #: gunicorn); 0 hands every call to a pool thread. See :mod:`botkit.deadlines`.
    inline_calls: int = 4
    #: The web server's request threads per worker (gunicorn's ``threads``): when all are
    #: taken, a request waiting for its handler answers its placeholder at once, so that
    #: requests queued behind it keep their deadline (:class:`botkit.runtime.deadlines.RequestThreads`).
    request_threads: int = 8
    log_format: str = "text"
    playground: bool = False
    dev_credentials: bool = False
    #: Why this app cannot serve webhooks yet: the missing-credentials message, when
    #: :meth:`from_env` was asked to defer it (``defer_credentials=True``); "" otherwise.
    credentials_error: str = ""
    #: Where users' browsers reach the bot, e.g. ``https://bot.example.com``; None: the
    #: scheme and host each webhook came in on. Handlers read it as ``ctx.public_url``.
    public_url: str | None = None

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, defer_credentials: bool = False
    ) -> Config:
        """Read the settings; raise :class:`ConfigError` naming any bad variable.

        With ``defer_credentials=True`` missing Stream credentials do not raise: the
        config comes back with no keys and the message in :attr:`credentials_error`, so
        that importing a bot (its tests, the CLI) never needs them, while the server
        refuses to start (:func:`botkit.adapters.web.check_startup`).
        """
        env = os.environ if environ is None else environ
        dev = False
        missing = ""
        try:
            keyring = KeyRing.from_env(env)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if not keyring:
            if env.get("BOTKIT_DEV", "") in ("1", "true", "yes"):
                keyring = KeyRing({DEV_API_KEY: (DEV_API_SECRET,)})
                dev = True
            elif defer_credentials:
                missing = NO_CREDENTIALS
            else:
                raise ConfigError(NO_CREDENTIALS)
        return cls(
            keyring=keyring,
            url_prefix=url_prefix(env.get("BOTKIT_URL_PREFIX", "/webhooks/stream")),
            max_body_bytes=int(env_positive(env, "BOTKIT_MAX_BODY_BYTES", 1024 * 1024)),
            store_url=env.get("BOTKIT_STORE") or None,
            queue_url=env.get("BOTKIT_QUEUE") or None,
            bot_user_id=env.get("STREAM_BOT_USER_ID") or None,
            stream_base_url=env.get("STREAM_BASE_URL")
            or env.get("STREAM_CHAT_URL")
            or "https://chat.stream-io-api.com",
            command_budget=env_positive(env, "BOTKIT_COMMAND_BUDGET_MS", 800) / 1000,
            before_send_budget=env_positive(env, "BOTKIT_BEFORE_SEND_BUDGET_MS", 1200) / 1000,
            result_ttl=env_positive(env, "BOTKIT_RESULT_TTL", 24 * 3600),
            claim_ttl=env_positive(env, "BOTKIT_CLAIM_TTL", 30),
            store_max_answer_bytes=int(
                env_positive(env, "BOTKIT_STORE_MAX_ANSWER_BYTES", 256 * 1024)
            ),
            store_max_bytes=int(env_positive(env, "BOTKIT_STORE_MAX_BYTES", 256 * 1024 * 1024)),
            inline_calls=_count(
                env, "BOTKIT_INLINE_CALLS", int(env_positive(env, "GUNICORN_THREADS", 8)) // 2
            ),
            request_threads=int(env_positive(env, "GUNICORN_THREADS", 8)),
            log_format=env.get("BOTKIT_LOG_FORMAT", "text"),
            playground=env.get("BOTKIT_PLAYGROUND", "") in ("1", "true", "yes"),
            dev_credentials=dev,
            credentials_error=missing,
            public_url=public_url(env.get("BOTKIT_PUBLIC_URL", "")),
        )
