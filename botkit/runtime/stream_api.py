"""A small client for Stream Chat's server-side REST API.

Bots use it to post messages as the bot user, and the ``botkit`` CLI uses it to
register custom commands and webhook URLs with Stream::

    from botkit.stream_api import StreamClient

    with StreamClient.from_env() as stream:
        stream.send_message("messaging", "general", {"text": "hello"}, user_id="bot")

Every request carries the API key as the ``api_key`` query parameter and a
server-side JWT (HS256, signed with the API secret) in the ``Authorization``
header, as Stream's own SDKs do. Rate-limited (429) and server-side (5xx)
answers and connection errors are retried with exponential backoff; other
errors raise :class:`StreamAPIError`.
"""

from __future__ import annotations

import email.utils
import logging
import os
import sys
import time
import warnings
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import jwt
import requests
from jwt.warnings import InsecureKeyLengthWarning
from requests.adapters import HTTPAdapter

__all__ = [
    "DEFAULT_BASE_URL",
    "StreamAPIError",
    "StreamClient",
    "StreamUnreachable",
    "channel_type_command_names",
]

logger = logging.getLogger("botkit.stream_api")

#: Stream's default API host (the SDKs' "CDN style" URL, picks the closest region).
DEFAULT_BASE_URL = "https://chat.stream-io-api.com"

#: The longest a single wait between retries may last, whatever the server asks for.
MAX_RETRY_WAIT = 10.0

_FALLBACK_VERSION = "0.1.0"


def _botkit_version() -> str:
    module = sys.modules.get("botkit")
    version = getattr(module, "__version__", None)
    if isinstance(version, str) and version:
        return version
    try:
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as dist_version

        try:
            return dist_version("botkit")
        except PackageNotFoundError:
            return _FALLBACK_VERSION
    except ImportError:  # pragma: no cover - always present on 3.11
        return _FALLBACK_VERSION


class StreamAPIError(Exception):
    """Stream answered a request with an error.

    Attributes:
        status_code: the HTTP status (0 when Stream could not be reached).
        code: Stream's numeric error code from the body (``None`` if absent).
        message: Stream's error message, or a description of a body that was not JSON.
        body: the parsed error body, or ``None`` when it was not a JSON object.
        unrecoverable: ``True`` when Stream says retrying the request cannot help.
    """

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        code: int | None = None,
        body: dict[str, Any] | None = None,
        unrecoverable: bool = False,
    ) -> None:
        self.status_code = status_code
        self.code = code
        self.message = message
        self.body = body
        self.unrecoverable = unrecoverable
        super().__init__(str(self))

    def __str__(self) -> str:
        code = f" (code {self.code})" if self.code is not None else ""
        return f"Stream API error {self.status_code}{code}: {self.message}"

    @classmethod
    def from_response(cls, response: requests.Response) -> StreamAPIError:
        """Build the error from one of Stream's error answers.

        Stream's error body is ``{code, message, StatusCode, duration, more_info,
        details, unrecoverable}``; a body that is not JSON (a proxy's HTML page,
        say) still gives a readable error naming the status and a short excerpt.
        """
        status = response.status_code
        try:
            parsed: Any = response.json()
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            excerpt = " ".join(response.text.split())[:200]
            reason = response.reason or "error"
            if excerpt:
                message = f"{reason} (response was not Stream's JSON error: {excerpt!r})"
            else:
                message = f"{reason} (empty response body)"
            return cls(status, message)
        raw_code = parsed.get("code")
        code = raw_code if isinstance(raw_code, int) and not isinstance(raw_code, bool) else None
        raw_message = parsed.get("message")
        message = (
            raw_message
            if isinstance(raw_message, str) and raw_message
            else response.reason or "error"
        )
        return cls(
            status,
            message,
            code=code,
            body=parsed,
            unrecoverable=parsed.get("unrecoverable") is True,
        )


class StreamUnreachable(StreamAPIError):
    """Stream could not be reached (connection refused, DNS failure, timeout), even after retrying.

    ``status_code`` is 0 and ``base_url`` names the host that was tried.
    """

    def __init__(self, base_url: str, method: str, path: str, reason: str) -> None:
        self.base_url = base_url
        self.method = method
        self.path = path
        self.reason = reason
        super().__init__(0, reason)

    def __str__(self) -> str:
        return (
            f"Stream API at {self.base_url} is unreachable ({self.method} {self.path}): {self.reason}. "
            "Check the network and STREAM_BASE_URL."
        )


def channel_type_command_names(channel_type: Mapping[str, Any]) -> list[str]:
    """Return the command names a channel type enables, in order.

    ``GET /channeltypes/{name}`` lists ``commands`` as command objects
    (``{"name": ..., "description": ...}``) while ``PUT /channeltypes/{name}``
    takes and echoes plain names; this accepts either shape (and a mix)::

        names = channel_type_command_names(stream.get_channel_type("messaging"))
        if "ticket" not in names:
            stream.update_channel_type("messaging", commands=[*names, "ticket"])
    """
    names: list[str] = []
    for item in channel_type.get("commands") or []:
        if isinstance(item, str):
            names.append(item)
        elif isinstance(item, Mapping) and isinstance(item.get("name"), str):
            names.append(item["name"])
    return names


def _segment(value: str) -> str:
    """URL-quote one path segment (slashes included)."""
    return quote(str(value), safe="")


def _parse_retry_after(response: requests.Response) -> float | None:
    """Seconds a 429 answer asks us to wait, from ``Retry-After`` or ``X-RateLimit-Reset``."""
    retry_after = response.headers.get("Retry-After")
    if retry_after:
        try:
            return max(0.0, float(retry_after))
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(retry_after)
            except (TypeError, ValueError):
                when = None
            if when is not None:
                return max(0.0, when.timestamp() - time.time())
    reset = response.headers.get("X-RateLimit-Reset")
    if reset:
        try:
            return max(0.0, float(reset) - time.time())
        except ValueError:
            return None
    return None


class StreamClient:
    """A server-side client for Stream Chat's REST API.

    Args:
        api_key: the app's API key (public).
        api_secret: the app's API secret; signs the server token and never leaves this process.
        base_url: the API host; defaults to Stream's global endpoint.
        timeout: seconds to wait for each HTTP request (connect and read).
        max_retries: how many times to retry after a 429, a 5xx or a connection error
            (so up to ``max_retries + 1`` attempts).
        backoff: the first wait between attempts in seconds; it doubles each retry and
            never exceeds 10 s. A 429's ``Retry-After`` / ``X-RateLimit-Reset`` wins when given.
        session: a ``requests.Session`` to use (the client then does not close it);
            by default the client makes its own, with a connection pool.
        sleep: the function that waits between retries (inject one in tests).

    Use it as a context manager, or call :meth:`close`, to release pooled connections.
    """

    def __init__(
        self,
        api_key: str,
        api_secret: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 6.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not api_key:
            raise ValueError("StreamClient needs an API key: pass api_key or set STREAM_API_KEY.")
        if not api_secret:
            raise ValueError(
                "StreamClient needs an API secret: pass api_secret or set STREAM_API_SECRET."
            )
        if max_retries < 0:
            raise ValueError("max_retries must be 0 or more.")
        self.api_key = api_key
        self._api_secret = api_secret
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self._sleep = sleep
        with warnings.catch_warnings():
            # Stream issues the secret; its length is not the bot author's choice.
            warnings.simplefilter("ignore", InsecureKeyLengthWarning)
            self._token = jwt.encode({"server": True}, api_secret, algorithm="HS256")
        self._owns_session = session is None
        if session is None:
            session = requests.Session()
            adapter = HTTPAdapter(pool_connections=10, pool_maxsize=10, max_retries=0)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
        self._session = session
        self._headers = {
            "Authorization": self._token,
            "stream-auth-type": "jwt",
            "Content-Type": "application/json",
            "X-Stream-Client": f"botkit-{_botkit_version()}",
        }

    def __repr__(self) -> str:
        return f"<StreamClient api_key={self.api_key!r} base_url={self.base_url!r}>"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **kwargs: Any) -> StreamClient:
        """Build a client from ``STREAM_API_KEY``, ``STREAM_API_SECRET`` and ``STREAM_BASE_URL``.

        ``STREAM_CHAT_URL`` (the variable Stream's SDKs read) is used when
        ``STREAM_BASE_URL`` is not set. Other keyword arguments go to the constructor.
        Raises ``ValueError`` naming the variables that are missing.
        """
        env = os.environ if environ is None else environ
        api_key = env.get("STREAM_API_KEY", "").strip()
        api_secret = env.get("STREAM_API_SECRET", "").strip()
        missing = [
            name
            for name, value in (
                ("STREAM_API_KEY", api_key),
                ("STREAM_API_SECRET", api_secret),
            )
            if not value
        ]
        if missing:
            raise ValueError(
                f"Missing environment variable(s) {', '.join(missing)}: set them to your Stream app's "
                "API key and secret (Stream dashboard > App > Chat Overview)."
            )
        base_url = env.get("STREAM_BASE_URL", "").strip() or env.get("STREAM_CHAT_URL", "").strip()
        if base_url and "base_url" not in kwargs:
            kwargs["base_url"] = base_url
        return cls(api_key, api_secret, **kwargs)

    # -- plumbing -----------------------------------------------------------------

    def close(self) -> None:
        """Release pooled connections (a session passed in by the caller is left open)."""
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _retry_wait(self, attempt: int, response: requests.Response | None = None) -> float:
        wait: float | None = None
        if response is not None and response.status_code == 429:
            wait = _parse_retry_after(response)
        if wait is None:
            wait = self.backoff * (2**attempt)
        return min(wait, MAX_RETRY_WAIT)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Send one API request and return the parsed JSON answer.

        ``path`` is relative to the base URL (e.g. ``"/app"``) and must already be
        quoted. Retries 429, 5xx and connection errors; raises :class:`StreamAPIError`
        for error answers and :class:`StreamUnreachable` when Stream cannot be reached.
        """
        url = self.base_url + path
        query = {"api_key": self.api_key, **(params or {})}
        attempt = 0
        while True:
            started = time.monotonic()
            try:
                response = self._session.request(
                    method,
                    url,
                    params=query,
                    json=json,
                    headers=self._headers,
                    timeout=self.timeout,
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                reason = f"{type(exc).__name__}: {exc}"
                if attempt >= self.max_retries:
                    raise StreamUnreachable(self.base_url, method, path, reason) from exc
                wait = self._retry_wait(attempt)
                logger.warning(
                    "Stream API %s %s failed (%s); retry %d/%d in %.2fs",
                    method,
                    path,
                    type(exc).__name__,
                    attempt + 1,
                    self.max_retries,
                    wait,
                )
                self._sleep(wait)
                attempt += 1
                continue

            elapsed_ms = (time.monotonic() - started) * 1000
            logger.debug(
                "Stream API %s %s -> %d (%.0f ms)",
                method,
                path,
                response.status_code,
                elapsed_ms,
            )
            if response.status_code < 400:
                return self._parse_success(response)

            error = StreamAPIError.from_response(response)
            retryable = (
                response.status_code == 429 or response.status_code >= 500
            ) and not error.unrecoverable
            if not retryable or attempt >= self.max_retries:
                logger.info("Stream API %s %s failed: %s", method, path, error)
                raise error
            wait = self._retry_wait(attempt, response)
            logger.warning(
                "Stream API %s %s answered %d; retry %d/%d in %.2fs",
                method,
                path,
                response.status_code,
                attempt + 1,
                self.max_retries,
                wait,
            )
            self._sleep(wait)
            attempt += 1

    @staticmethod
    def _parse_success(response: requests.Response) -> dict[str, Any]:
        if not response.content:
            return {}
        try:
            parsed: Any = response.json()
        except ValueError:
            excerpt = " ".join(response.text.split())[:200]
            raise StreamAPIError(
                response.status_code, f"expected a JSON answer, got {excerpt!r}"
            ) from None
        if not isinstance(parsed, dict):
            raise StreamAPIError(
                response.status_code,
                f"expected a JSON object, got {type(parsed).__name__}",
            )
        return parsed

    # -- messages -----------------------------------------------------------------

    def send_message(
        self,
        channel_type: str,
        channel_id: str,
        message: Mapping[str, Any],
        user_id: str,
        *,
        skip_push: bool = False,
    ) -> dict[str, Any]:
        """Post ``message`` to a channel as ``user_id`` and return the stored message.

        ``POST /channels/{type}/{id}/message`` with
        ``{"message": {...message, "user_id": user_id}, "skip_push": skip_push}``.
        ``message`` holds ``text``, ``attachments``, ``mml``, ``parent_id``… as Stream
        expects them.
        """
        path = f"/channels/{_segment(channel_type)}/{_segment(channel_id)}/message"
        body = {"message": {**message, "user_id": user_id}, "skip_push": skip_push}
        return self._inner(self.request("POST", path, json=body), "message")

    def send_message_to_cid(
        self,
        cid: str,
        message: Mapping[str, Any],
        user_id: str,
        *,
        skip_push: bool = False,
    ) -> dict[str, Any]:
        """Like :meth:`send_message`, addressing the channel by its ``cid`` (``"type:id"``)."""
        channel_type, sep, channel_id = cid.partition(":")
        if not sep or not channel_type or not channel_id:
            raise ValueError(
                f"cid must look like 'type:id' (e.g. 'messaging:general'), got {cid!r}"
            )
        return self.send_message(channel_type, channel_id, message, user_id, skip_push=skip_push)

    def get_message(self, message_id: str) -> dict[str, Any]:
        """Return one message (``GET /messages/{id}``)."""
        return self._inner(self.request("GET", f"/messages/{_segment(message_id)}"), "message")

    def update_message(
        self, message: Mapping[str, Any], user_id: str | None = None
    ) -> dict[str, Any]:
        """Replace a message (``POST /messages/{id}``); ``message["id"]`` names it.

        Fields left out are cleared, as in Stream's full update; use
        :meth:`partial_update_message` to change a few fields only.
        """
        message_id = message.get("id")
        if not isinstance(message_id, str) or not message_id:
            raise ValueError("update_message needs the message's 'id'.")
        body_message = dict(message)
        if user_id is not None:
            body_message["user_id"] = user_id
        path = f"/messages/{_segment(message_id)}"
        return self._inner(self.request("POST", path, json={"message": body_message}), "message")

    def partial_update_message(
        self,
        message_id: str,
        set: Mapping[str, Any] | None = None,
        unset: list[str] | None = None,
        user_id: str | None = None,
    ) -> dict[str, Any]:
        """Set and/or unset some fields of a message (``PUT /messages/{id}``)."""
        body: dict[str, Any] = {"set": dict(set or {}), "unset": list(unset or [])}
        if user_id is not None:
            body["user_id"] = user_id
        path = f"/messages/{_segment(message_id)}"
        return self._inner(self.request("PUT", path, json=body), "message")

    def delete_message(self, message_id: str, hard: bool = False) -> dict[str, Any]:
        """Delete a message (``DELETE /messages/{id}``); ``hard=True`` removes it for good."""
        params = {"hard": "true"} if hard else None
        path = f"/messages/{_segment(message_id)}"
        return self._inner(self.request("DELETE", path, params=params), "message")

    def run_message_action(
        self, message_id: str, form_data: Mapping[str, str], user_id: str
    ) -> dict[str, Any]:
        """Run a message action as ``user_id``, as if they clicked a button (``POST /messages/{id}/action``).

        Returns Stream's whole answer (it holds ``"message"`` when the action left one).
        Mostly useful in tests and tools.
        """
        path = f"/messages/{_segment(message_id)}/action"
        return self.request("POST", path, json={"form_data": dict(form_data), "user_id": user_id})

    # -- app settings ---------------------------------------------------------------

    def get_app_settings(self) -> dict[str, Any]:
        """Return the app's settings (the ``"app"`` object of ``GET /app``)."""
        return self._inner(self.request("GET", "/app"), "app")

    def update_app_settings(self, **settings: Any) -> dict[str, Any]:
        """Change app settings (``PATCH /app``), e.g. ``custom_action_handler_url=...``.

        Careful: ``event_hooks`` replaces Stream's whole list of hooks; read the
        current ones with :meth:`get_app_settings` first and merge.
        """
        return self.request("PATCH", "/app", json=settings)

    # -- commands -------------------------------------------------------------------

    def list_commands(self) -> list[dict[str, Any]]:
        """Return the app's custom commands (``GET /commands``)."""
        commands = self.request("GET", "/commands").get("commands") or []
        return [command for command in commands if isinstance(command, dict)]

    def get_command(self, name: str) -> dict[str, Any]:
        """Return one command's fields (``GET /commands/{name}``)."""
        response = self.request("GET", f"/commands/{_segment(name)}")
        response.pop("duration", None)
        return response

    def create_command(
        self,
        name: str,
        description: str,
        args: str | None = None,
        set: str | None = None,
    ) -> dict[str, Any]:
        """Register a custom command with Stream (``POST /commands``) and return it."""
        body: dict[str, Any] = {"name": name, "description": description}
        if args is not None:
            body["args"] = args
        if set is not None:
            body["set"] = set
        return self._inner(self.request("POST", "/commands", json=body), "command")

    def update_command(
        self,
        name: str,
        description: str,
        args: str | None = None,
        set: str | None = None,
    ) -> dict[str, Any]:
        """Change a command (``PUT /commands/{name}``); a command cannot be renamed."""
        body: dict[str, Any] = {"description": description}
        if args is not None:
            body["args"] = args
        if set is not None:
            body["set"] = set
        return self._inner(self.request("PUT", f"/commands/{_segment(name)}", json=body), "command")

    def delete_command(self, name: str) -> dict[str, Any]:
        """Delete a command (``DELETE /commands/{name}``).

        Stream refuses (400) while a channel type lists the command explicitly.
        """
        return self.request("DELETE", f"/commands/{_segment(name)}")

    # -- channel types ----------------------------------------------------------------

    def get_channel_type(self, name: str) -> dict[str, Any]:
        """Return a channel type's settings (``GET /channeltypes/{name}``).

        Its ``commands`` are command objects; see :func:`channel_type_command_names`.
        """
        return self.request("GET", f"/channeltypes/{_segment(name)}")

    def update_channel_type(self, name: str, **settings: Any) -> dict[str, Any]:
        """Change a channel type (``PUT /channeltypes/{name}``), e.g. ``commands=["giphy", "ticket"]``.

        ``commands`` takes names and replaces the whole list.
        """
        return self.request("PUT", f"/channeltypes/{_segment(name)}", json=settings)

    channel_type_command_names = staticmethod(channel_type_command_names)

    # -- users ------------------------------------------------------------------------

    def upsert_user(self, user: Mapping[str, Any]) -> dict[str, Any]:
        """Create or update a user, e.g. the bot itself (``POST /users``); returns the user."""
        user_id = user.get("id")
        if not isinstance(user_id, str) or not user_id:
            raise ValueError("upsert_user needs the user's 'id'.")
        response = self.request("POST", "/users", json={"users": {user_id: dict(user)}})
        users = response.get("users")
        if isinstance(users, dict) and isinstance(users.get(user_id), dict):
            result: dict[str, Any] = users[user_id]
            return result
        return response

    # -- helpers ----------------------------------------------------------------------

    @staticmethod
    def _inner(response: dict[str, Any], key: str) -> dict[str, Any]:
        value = response.get(key)
        if not isinstance(value, dict):
            raise StreamAPIError(200, f"Stream's answer has no {key!r} object")
        return value
