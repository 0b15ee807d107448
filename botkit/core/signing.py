"""Signing and verifying Stream webhooks. Pure functions: no Flask, no I/O.

Stream signs every webhook with ``X-Signature``: the lowercase hex HMAC-SHA256 of the raw
(uncompressed) body, keyed by the secret of the app that ``X-Api-Key`` names.
"""

from __future__ import annotations

import hashlib
import hmac
import zlib
from collections.abc import Iterator, Mapping

__all__ = [
    "BodyTooLarge",
    "InvalidSignature",
    "KeyRing",
    "gunzip",
    "sign",
    "verify",
]

_HEX = frozenset("0123456789abcdef")


class InvalidSignature(Exception):
    """The webhook's signature did not verify. ``reason`` is for the log only."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BodyTooLarge(Exception):
    """The body (or what it inflates to) is over the configured limit."""


class KeyRing(Mapping[str, tuple[str, ...]]):
    """The API keys this bot accepts, each with one or more secrets (for rotation).

    The first secret of a key is the one botkit signs with (test client, CLI).
    """

    def __init__(self, keys: Mapping[str, tuple[str, ...] | list[str]] | None = None) -> None:
        self._keys: dict[str, tuple[str, ...]] = {}
        self._raw: dict[str, tuple[bytes, ...]] = {}
        for key, secrets in (keys or {}).items():
            for secret in secrets:
                self.add(key, secret)

    def add(self, api_key: str, secret: str) -> None:
        """Accept ``secret`` for ``api_key`` (after the secrets it already has)."""
        api_key = api_key.strip()
        if not api_key:
            raise ValueError("An API key is empty")
        if not secret or not secret.strip():
            raise ValueError(f"The secret for API key {api_key!r} is empty")
        if secret in self._keys.get(api_key, ()):
            return
        self._keys[api_key] = (*self._keys.get(api_key, ()), secret)
        self._raw[api_key] = (*self._raw.get(api_key, ()), secret.encode("utf-8"))

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> KeyRing:
        """Build from ``STREAM_API_KEY``/``STREAM_API_SECRET`` and ``STREAM_API_KEYS``.

        ``STREAM_API_KEYS`` is ``key:secret,key:secret2,other:secret``: several apps, and
        several secrets for one app while you rotate it.
        """
        ring = cls()
        key = environ.get("STREAM_API_KEY", "").strip()
        secret = environ.get("STREAM_API_SECRET", "")
        if key or secret:
            if not key:
                raise ValueError("STREAM_API_SECRET is set but STREAM_API_KEY is empty")
            if not secret.strip():
                raise ValueError("STREAM_API_KEY is set but STREAM_API_SECRET is empty")
            ring.add(key, secret.strip())
        for item in environ.get("STREAM_API_KEYS", "").split(","):
            if not item.strip():
                continue
            k, sep, s = item.partition(":")
            if not sep or not k.strip() or not s.strip():
                raise ValueError(
                    "STREAM_API_KEYS must look like key:secret,key:secret2 "
                    f"(an entry for {k.strip() or '?'!r} has no key or no secret)"
                )
            ring.add(k.strip(), s.strip())
        return ring

    def secret_for(self, api_key: str | None = None) -> str:
        """The secret to sign with for ``api_key`` (default: the first key)."""
        if api_key is None:
            api_key = next(iter(self._keys))
        return self._keys[api_key][0]

    @property
    def default_key(self) -> str:
        return next(iter(self._keys))

    def raw_secrets(self, api_key: str) -> tuple[bytes, ...]:
        return self._raw.get(api_key, ())

    def __getitem__(self, api_key: str) -> tuple[str, ...]:
        return self._keys[api_key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:  # never show secrets
        return f"KeyRing(keys={list(self._keys)!r})"


def sign(secret: str | bytes, body: bytes) -> str:
    """The ``X-Signature`` Stream would send for ``body``."""
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def verify(keyring: KeyRing, api_key: str | None, signature: str | None, body: bytes) -> None:
    """Check a webhook's signature; raise :class:`InvalidSignature` with the reason.

    ``body`` is the uncompressed body. The signature must be 64 hex digits (either case:
    Stream sends lowercase) and match one of the key's secrets, compared in constant time.
    """
    if not api_key:
        raise InvalidSignature("missing X-Api-Key")
    secrets = keyring.raw_secrets(api_key)
    if not secrets:
        raise InvalidSignature("unknown X-Api-Key")
    if not signature:
        raise InvalidSignature("missing X-Signature")
    signature = signature.strip().lower()
    if len(signature) != 64 or not _HEX.issuperset(signature):
        # also catches duplicated headers, which WSGI servers join with ","
        raise InvalidSignature("malformed X-Signature")
    given = signature.encode("ascii")
    ok = False
    for secret in secrets:
        expected = hmac.new(secret, body, hashlib.sha256).hexdigest().encode("ascii")
        ok |= hmac.compare_digest(expected, given)
    if not ok:
        raise InvalidSignature("signature mismatch")


def is_gzip(body: bytes) -> bool:
    return body[:2] == b"\x1f\x8b"


def gunzip(body: bytes, limit: int) -> bytes:
    """Inflate a gzip body, refusing to produce more than ``limit`` bytes.

    Raises :class:`BodyTooLarge` past the limit and ``ValueError`` for a broken stream.
    """
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise ValueError(f"bad gzip body: {exc}") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise BodyTooLarge(f"gzip body inflates past {limit} bytes")
    if not inflater.eof:
        raise ValueError("truncated gzip body")
    return out
