"""A local stand-in for Stream Chat's server-side REST API, for tests.

``StreamStub`` is a real HTTP server on 127.0.0.1 (a free port) that checks
authentication like Stream does, keeps app settings, commands, channel types,
messages and users in memory with Stream's semantics (see
/work/shared/reference/stream-protocol.md, section 8), records every request,
and can be told to fail the next requests (429, 503, ...)::

    from stream_stub import stream_stub_fixture  # noqa: F401  (the fixture)

    def test_something(stream_stub):
        client = StreamClient(stream_stub.api_key, stream_stub.api_secret,
                              base_url=stream_stub.url)
        ...
        msg = stream_stub.wait_for(lambda: stream_stub.sent_messages("messaging:general"))
"""

from __future__ import annotations

import copy
import json
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

import jwt
import pytest
from jwt.warnings import InsecureKeyLengthWarning
from requests.structures import CaseInsensitiveDict

T = TypeVar("T")

#: Built-in commands Stream knows without being told, with the sets they belong to.
BUILTIN_COMMANDS: dict[str, dict[str, str]] = {
    "giphy": {
        "description": "Post a random gif to the channel",
        "args": "[text]",
        "set": "fun_set",
    },
    "imgur": {
        "description": "Post a random image from imgur",
        "args": "[text]",
        "set": "fun_set",
    },
    "ban": {
        "description": "Ban a user",
        "args": "[@username] [text]",
        "set": "moderation_set",
    },
    "unban": {
        "description": "Unban a user",
        "args": "[@username]",
        "set": "moderation_set",
    },
    "mute": {
        "description": "Mute a user",
        "args": "[@username]",
        "set": "moderation_set",
    },
    "unmute": {
        "description": "Unmute a user",
        "args": "[@username]",
        "set": "moderation_set",
    },
    "flag": {
        "description": "Flag a user",
        "args": "[@username]",
        "set": "moderation_set",
    },
}
RESERVED_COMMAND_NAMES = frozenset(BUILTIN_COMMANDS)
MAX_CUSTOM_COMMANDS = 50

# Stream's error codes (doc error table).
CODE_INTERNAL = -1
CODE_INPUT = 4
CODE_AUTH = 5
CODE_RATE_LIMIT = 9
CODE_NOT_FOUND = 16
CODE_NOT_ALLOWED = 17


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _error_body(status: int, code: int, message: str) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "StatusCode": status,
        "duration": "0.00ms",
        "more_info": "https://getstream.io/chat/docs/api_errors_response",
        "details": [],
    }


@dataclass
class RecordedRequest:
    """One request the stub received (``headers`` is case-insensitive)."""

    method: str
    path: str
    query: dict[str, str]
    headers: CaseInsensitiveDict[str]
    json: Any
    raw: bytes = b""
    status: int = 0  # the status the stub answered


@dataclass
class _Failure:
    status: int
    headers: dict[str, str]
    body: dict[str, Any] | str | None


class StubError(Exception):
    """Raised by a route to answer with a Stream-style error."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass
class _State:
    app: dict[str, Any] = field(default_factory=dict)
    commands: dict[str, dict[str, Any]] = field(default_factory=dict)
    channel_types: dict[str, dict[str, Any]] = field(default_factory=dict)
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)


class StreamStub:
    """A fake Stream REST API on loopback. Attributes hold its state (read them
    freely; hold ``stub.lock`` while changing them from a test):

    - ``app``: app settings (``GET``/``PATCH /app``)
    - ``commands``: custom commands by name
    - ``channel_types``: channel types by name; ``commands`` there is a list of names
    - ``messages``: messages by id (in order of creation)
    - ``users``: upserted users by id
    - ``actions``: ``POST /messages/{id}/action`` bodies, with ``message_id``
    - ``requests``: every :class:`RecordedRequest`, in order
    """

    def __init__(self, api_key: str = "stub-key", api_secret: str = "stub-secret") -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        self.lock = threading.RLock()
        self.requests: list[RecordedRequest] = []
        self.actions: list[dict[str, Any]] = []
        self._failures: list[_Failure] = []
        self._delays: list[float] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._state = _State()
        self.reset()

    # -- state -------------------------------------------------------------------

    @property
    def app(self) -> dict[str, Any]:
        return self._state.app

    @property
    def commands(self) -> dict[str, dict[str, Any]]:
        return self._state.commands

    @property
    def channel_types(self) -> dict[str, dict[str, Any]]:
        return self._state.channel_types

    @property
    def messages(self) -> dict[str, dict[str, Any]]:
        return self._state.messages

    @property
    def users(self) -> dict[str, dict[str, Any]]:
        return self._state.users

    def reset(self) -> None:
        """Forget everything: back to a fresh app with the ``messaging`` channel type."""
        with self.lock:
            now = _now()
            self._state = _State(
                app={
                    "name": "stub-app",
                    "custom_action_handler_url": "",
                    "before_message_send_hook_url": "",
                    "before_message_send_hook_attempt_timeout_ms": 0,
                    "webhook_url": "",
                    "webhook_events": [],
                    "event_hooks": [],
                    "disable_auth_checks": False,
                    "disable_permissions_checks": False,
                    "multi_tenant_enabled": False,
                },
                channel_types={
                    "messaging": {
                        "name": "messaging",
                        "commands": ["giphy"],
                        "typing_events": True,
                        "read_events": True,
                        "connect_events": True,
                        "search": True,
                        "reactions": True,
                        "replies": True,
                        "mutes": True,
                        "uploads": True,
                        "url_enrichment": True,
                        "custom_events": True,
                        "message_retention": "infinite",
                        "max_message_length": 5000,
                        "automod": "disabled",
                        "created_at": now,
                        "updated_at": now,
                    }
                },
            )
            self.requests.clear()
            self.actions.clear()
            self._failures.clear()
            self._delays.clear()

    def sent_messages(self, cid: str | None = None) -> list[dict[str, Any]]:
        """Messages sent through ``POST /channels/.../message`` (optionally in one channel)."""
        with self.lock:
            return [
                copy.deepcopy(m)
                for m in self.messages.values()
                if cid is None or m.get("cid") == cid
            ]

    def requests_to(self, method: str, path: str) -> list[RecordedRequest]:
        """The recorded requests with this method and (unquoted) path."""
        with self.lock:
            return [r for r in self.requests if r.method == method and r.path == path]

    # -- failure injection ---------------------------------------------------------------

    def fail_next(
        self,
        status: int,
        times: int = 1,
        headers: dict[str, str] | None = None,
        body: dict[str, Any] | str | None = None,
    ) -> None:
        """Make the next ``times`` requests answer ``status`` (before any other check).

        The body defaults to a Stream-style error; pass ``body`` (a dict, e.g. with
        ``"unrecoverable": True``, or a ``str`` sent as-is as text/html, as a proxy
        would) or ``headers`` (e.g. ``{"Retry-After": "2"}``).
        """
        with self.lock:
            for _ in range(times):
                self._failures.append(_Failure(status, dict(headers or {}), body))

    def hang_next(self, seconds: float, times: int = 1) -> None:
        """Make the next ``times`` requests wait ``seconds`` before answering (timeout tests)."""
        with self.lock:
            self._delays.extend([seconds] * times)

    def wait_for(
        self, predicate: Callable[[], T], timeout: float = 5.0, interval: float = 0.02
    ) -> T:
        """Poll ``predicate`` until it returns something truthy, and return that.

        Raises ``AssertionError`` after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            result = predicate()
            if result:
                return result
            if time.monotonic() >= deadline:
                raise AssertionError(f"stream stub: condition not met within {timeout}s")
            time.sleep(interval)

    # -- server ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL to give a client, e.g. ``http://127.0.0.1:54321``."""
        if self._server is None:
            raise RuntimeError("StreamStub is not started; call start() first")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Self:
        if self._server is not None:
            return self
        stub = self

        class Handler(_Handler):
            pass

        Handler.stub = stub
        server = _Server(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="stream-stub",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- request handling (called from server threads) ---------------------------------------

    def _handle(
        self, method: str, raw_path: str, headers: CaseInsensitiveDict[str], raw: bytes
    ) -> tuple[int, dict[str, str], dict[str, Any] | str]:
        split = urlsplit(raw_path)
        path = unquote(split.path)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        body: Any = None
        bad_json = False
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                bad_json = True
        record = RecordedRequest(method, path, query, headers, body, raw)
        with self.lock:
            self.requests.append(record)
            delay = self._delays.pop(0) if self._delays else 0.0
            failure = self._failures.pop(0) if self._failures else None
        if delay:
            time.sleep(delay)
        if failure is not None:
            fbody = failure.body
            if fbody is None:
                code = CODE_RATE_LIMIT if failure.status == 429 else CODE_INTERNAL
                fbody = _error_body(failure.status, code, f"injected failure {failure.status}")
            record.status = failure.status
            return failure.status, failure.headers, fbody
        try:
            self._check_auth(query, headers)
            if bad_json:
                raise StubError(400, CODE_INPUT, "invalid JSON body")
            segments = [unquote(s) for s in split.path.strip("/").split("/")]
            with self.lock:
                status, payload = self._route(method, segments, query, body)
        except StubError as exc:
            record.status = exc.status
            return exc.status, {}, _error_body(exc.status, exc.code, exc.message)
        payload.setdefault("duration", "0.42ms")
        record.status = status
        return status, {}, payload

    def _check_auth(self, query: dict[str, str], headers: CaseInsensitiveDict[str]) -> None:
        if "api_key" not in query:
            raise StubError(401, CODE_AUTH, "api_key not found in the query string")
        if query["api_key"] != self.api_key:
            raise StubError(401, CODE_AUTH, f"api_key not valid: {query['api_key']!r}")
        if headers.get("stream-auth-type") != "jwt":
            raise StubError(
                401,
                CODE_AUTH,
                "stream-auth-type header must be 'jwt' for server-side requests",
            )
        token = headers.get("Authorization", "")
        if not token:
            raise StubError(401, CODE_AUTH, "Authorization header is missing")
        if token.lower().startswith("bearer "):
            raise StubError(
                401,
                CODE_AUTH,
                "Authorization must be the raw JWT, without a 'Bearer ' prefix",
            )
        try:
            with warnings.catch_warnings():  # short test secrets are fine here
                warnings.simplefilter("ignore", InsecureKeyLengthWarning)
                claims = jwt.decode(token, self.api_secret, algorithms=["HS256"])
        except jwt.InvalidTokenError as exc:
            raise StubError(401, CODE_AUTH, f"JWT signature could not be verified: {exc}") from None
        if "user_id" in claims and not claims.get("server"):
            raise StubError(
                403,
                CODE_NOT_ALLOWED,
                "a user token cannot be used for server-side requests",
            )

    # -- routes (self.lock held) ---------------------------------------------------------

    def _route(
        self, method: str, seg: list[str], query: dict[str, str], body: Any
    ) -> tuple[int, dict[str, Any]]:
        data: dict[str, Any] = body if isinstance(body, dict) else {}
        match seg:
            case ["app"]:
                if method == "GET":
                    return 200, {"app": copy.deepcopy(self.app)}
                if method == "PATCH":
                    return self._patch_app(data)
            case ["commands"]:
                if method == "GET":
                    return 200, {"commands": [copy.deepcopy(c) for c in self.commands.values()]}
                if method == "POST":
                    return self._create_command(data)
            case ["commands", name]:
                return self._command(method, name, data)
            case ["channeltypes"]:
                if method == "GET":
                    return 200, {
                        "channel_types": {n: self._channel_type_view(n) for n in self.channel_types}
                    }
                if method == "POST":
                    return self._create_channel_type(data)
            case ["channeltypes", name]:
                return self._channel_type(method, name, data)
            case ["channels", ctype, cid, "message"] if method == "POST":
                return self._send_message(ctype, cid, data)
            case ["messages", message_id]:
                return self._message(method, message_id, query, data)
            case ["messages", message_id, "action"] if method == "POST":
                return self._action(message_id, data)
            case ["users"] if method == "POST":
                return self._upsert_users(data)
        raise StubError(404, CODE_NOT_FOUND, f"{method} /{'/'.join(seg)} is not an endpoint")

    def _patch_app(self, data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        for key, value in data.items():
            if key == "event_hooks":
                if not isinstance(value, list):
                    raise StubError(400, CODE_INPUT, "event_hooks must be a list")
                hooks = []
                now = _now()
                for hook in value:
                    if not isinstance(hook, dict):
                        raise StubError(400, CODE_INPUT, "each event hook must be an object")
                    hook = copy.deepcopy(hook)
                    hook.setdefault("id", str(uuid.uuid4()))
                    hook.setdefault("enabled", True)
                    hook.setdefault("event_types", [])
                    hook.setdefault("created_at", now)
                    hook["updated_at"] = now
                    hooks.append(hook)
                self.app["event_hooks"] = hooks
            else:
                self.app[key] = copy.deepcopy(value)
        return 200, {}

    # commands

    def _command_view(self, name: str) -> dict[str, Any]:
        if name in self.commands:
            return copy.deepcopy(self.commands[name])
        builtin = BUILTIN_COMMANDS[name]
        return {"name": name, **builtin, "created_at": "", "updated_at": ""}

    def _create_command(self, data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        name = data.get("name")
        if not isinstance(name, str) or not name:
            raise StubError(400, CODE_INPUT, 'CreateCommand failed with error: "name is required"')
        if " " in name or len(name) > 255:
            raise StubError(
                400,
                CODE_INPUT,
                f'CreateCommand failed with error: "name {name!r} is not valid"',
            )
        if name in RESERVED_COMMAND_NAMES:
            raise StubError(
                400,
                CODE_INPUT,
                f'CreateCommand failed with error: "{name} is a reserved name"',
            )
        if name in self.commands:
            raise StubError(
                400,
                CODE_INPUT,
                f'CreateCommand failed with error: "command {name} already exists"',
            )
        description = data.get("description")
        if not isinstance(description, str) or not description:
            raise StubError(
                400,
                CODE_INPUT,
                'CreateCommand failed with error: "description is required"',
            )
        if len(self.commands) >= MAX_CUSTOM_COMMANDS:
            raise StubError(
                400,
                CODE_INPUT,
                f"an app can have at most {MAX_CUSTOM_COMMANDS} custom commands",
            )
        now = _now()
        command = {
            "name": name,
            "description": description,
            "args": str(data.get("args") or ""),
            "set": str(data.get("set") or ""),
            "created_at": now,
            "updated_at": now,
        }
        self.commands[name] = command
        return 201, {"command": copy.deepcopy(command)}

    def _command(self, method: str, name: str, data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if method not in ("GET", "PUT", "DELETE"):
            raise StubError(404, CODE_NOT_FOUND, f"{method} /commands/{name} is not an endpoint")
        if name not in self.commands:
            raise StubError(404, CODE_NOT_FOUND, f'command "{name}" not found')
        command = self.commands[name]
        if method == "GET":
            return 200, copy.deepcopy(command)
        if method == "PUT":
            description = data.get("description")
            if not isinstance(description, str) or not description:
                raise StubError(
                    400,
                    CODE_INPUT,
                    'UpdateCommand failed with error: "description is required"',
                )
            command["description"] = description
            for key in ("args", "set"):
                if key in data:
                    command[key] = str(data[key] or "")
            command["updated_at"] = _now()
            return 200, {"command": copy.deepcopy(command)}
        users = [n for n, ct in self.channel_types.items() if name in ct.get("commands", [])]
        if users:
            raise StubError(
                400,
                CODE_INPUT,
                f'command "{name}" is used by channel type(s) {", ".join(users)}; '
                "remove it from them first",
            )
        del self.commands[name]
        return 200, {"name": name}

    # channel types

    def _known_command(self, name: str) -> bool:
        return name == "all" or name in BUILTIN_COMMANDS or name in self.commands

    def _check_command_names(self, value: Any) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
            raise StubError(400, CODE_INPUT, "commands must be a list of command names")
        unknown = [n for n in value if not self._known_command(n)]
        if unknown:
            raise StubError(400, CODE_INPUT, f"commands {', '.join(unknown)} do not exist")
        return list(value)

    def _channel_type_view(self, name: str) -> dict[str, Any]:
        """The GET shape: commands as objects."""
        ct = copy.deepcopy(self.channel_types[name])
        names: list[str] = ct.get("commands", [])
        if "all" in names:
            names = [*BUILTIN_COMMANDS, *self.commands]
        ct["commands"] = [self._command_view(n) for n in names if self._known_command(n)]
        return ct

    def _create_channel_type(self, data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        name = data.get("name")
        if not isinstance(name, str) or not name:
            raise StubError(400, CODE_INPUT, "channel type name is required")
        if name in self.channel_types:
            raise StubError(400, CODE_INPUT, f"channel type {name} already exists")
        commands = self._check_command_names(data.get("commands", ["all"]))
        now = _now()
        ct = {
            **copy.deepcopy(data),
            "commands": commands,
            "created_at": now,
            "updated_at": now,
        }
        self.channel_types[name] = ct
        return 201, copy.deepcopy(ct)

    def _channel_type(
        self, method: str, name: str, data: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        if name not in self.channel_types:
            raise StubError(404, CODE_NOT_FOUND, f'channel type "{name}" not found')
        if method == "GET":
            return 200, self._channel_type_view(name)
        if method == "PUT":
            ct = self.channel_types[name]
            for key, value in data.items():
                if key == "commands":
                    ct["commands"] = self._check_command_names(value)
                elif key != "name":
                    ct[key] = copy.deepcopy(value)
            ct["updated_at"] = _now()
            return 200, copy.deepcopy(ct)
        if method == "DELETE":
            del self.channel_types[name]
            return 200, {}
        raise StubError(404, CODE_NOT_FOUND, f"{method} /channeltypes/{name} is not an endpoint")

    # messages

    def _user_id(self, data: dict[str, Any], message: dict[str, Any] | None = None) -> str | None:
        for source in (message or {}, data):
            uid = source.get("user_id")
            if isinstance(uid, str) and uid:
                return uid
            user = source.get("user")
            if isinstance(user, dict) and isinstance(user.get("id"), str) and user["id"]:
                return str(user["id"])
        return None

    def _send_message(
        self, channel_type: str, channel_id: str, data: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        message = data.get("message")
        if not isinstance(message, dict):
            raise StubError(400, CODE_INPUT, 'SendMessage failed with error: "message is required"')
        user_id = self._user_id(data, message)
        if user_id is None:
            raise StubError(
                400,
                CODE_INPUT,
                'SendMessage failed with error: "either message.user or message.user_id '
                'must be provided when using server side auth."',
            )
        mtype = message.get("type", "regular")
        if mtype not in ("regular", "system"):
            raise StubError(
                400,
                CODE_INPUT,
                f'SendMessage failed with error: "message type {mtype!r} is not allowed"',
            )
        message_id = message.get("id") or str(uuid.uuid4())
        if message_id in self.messages:
            raise StubError(
                400,
                CODE_INPUT,
                f'SendMessage failed with error: "a message with ID {message_id} already exists"',
            )
        now = _now()
        stored = {k: copy.deepcopy(v) for k, v in message.items() if k not in ("user_id", "user")}
        stored.update(
            {
                "id": message_id,
                "text": message.get("text", ""),
                "type": mtype,
                "user": {"id": user_id},
                "cid": f"{channel_type}:{channel_id}",
                "attachments": copy.deepcopy(message.get("attachments") or []),
                "created_at": now,
                "updated_at": now,
                "skip_push": bool(data.get("skip_push", False)),
            }
        )
        self.messages[message_id] = stored
        return 201, {"message": copy.deepcopy(stored)}

    def _get_message(self, message_id: str) -> dict[str, Any]:
        if message_id not in self.messages:
            raise StubError(404, CODE_NOT_FOUND, f'message with id "{message_id}" not found')
        return self.messages[message_id]

    def _message(
        self, method: str, message_id: str, query: dict[str, str], data: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        current = self._get_message(message_id)
        if method == "GET":
            return 200, {"message": copy.deepcopy(current)}
        if method == "POST":
            message = data.get("message")
            if not isinstance(message, dict):
                raise StubError(
                    400,
                    CODE_INPUT,
                    'UpdateMessage failed with error: "message is required"',
                )
            if message.get("id", message_id) != message_id:
                raise StubError(400, CODE_INPUT, "message.id does not match the URL")
            keep = {k: current[k] for k in ("id", "cid", "user", "created_at", "type")}
            updated = {
                k: copy.deepcopy(v) for k, v in message.items() if k not in ("user_id", "user")
            }
            updated.setdefault("text", "")
            updated.update(keep)
            updated["updated_at"] = _now()
            self.messages[message_id] = updated
            return 200, {"message": copy.deepcopy(updated)}
        if method == "PUT":
            set_fields = data.get("set") or {}
            unset_fields = data.get("unset") or []
            if not isinstance(set_fields, dict) or not isinstance(unset_fields, list):
                raise StubError(400, CODE_INPUT, "set must be an object and unset a list")
            protected = {"id", "cid", "user", "created_at"}
            for key, value in set_fields.items():
                if key not in protected:
                    current[key] = copy.deepcopy(value)
            for key in unset_fields:
                if key not in protected:
                    current.pop(key, None)
            current["updated_at"] = _now()
            return 200, {"message": copy.deepcopy(current)}
        if method == "DELETE":
            now = _now()
            if query.get("hard") == "true":
                deleted = self.messages.pop(message_id)
            else:
                deleted = current
            deleted["type"] = "deleted"
            deleted["deleted_at"] = now
            return 200, {"message": copy.deepcopy(deleted)}
        raise StubError(404, CODE_NOT_FOUND, f"{method} /messages/{message_id} is not an endpoint")

    def _action(self, message_id: str, data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        message = self._get_message(message_id)
        form_data = data.get("form_data")
        if not isinstance(form_data, dict):
            raise StubError(
                400,
                CODE_INPUT,
                'RunMessageAction failed with error: "form_data is required"',
            )
        if self._user_id(data) is None:
            raise StubError(
                400,
                CODE_INPUT,
                'RunMessageAction failed with error: "user_id is required"',
            )
        self.actions.append({"message_id": message_id, **copy.deepcopy(data)})
        return 201, {"message": copy.deepcopy(message)}

    def _upsert_users(self, data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        users = data.get("users")
        if not isinstance(users, dict) or not users:
            raise StubError(400, CODE_INPUT, 'UpdateUsers failed with error: "users is required"')
        now = _now()
        result = {}
        for key, user in users.items():
            if not isinstance(user, dict) or user.get("id") != key:
                raise StubError(
                    400,
                    CODE_INPUT,
                    f"user {key!r} must be an object whose id is {key!r}",
                )
            stored = {
                **self.users.get(key, {"created_at": now, "role": "user"}),
                **copy.deepcopy(user),
            }
            stored["updated_at"] = now
            self.users[key] = stored
            result[key] = copy.deepcopy(stored)
        return 201, {"users": result}


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Ignore clients that hang up early (timeout tests); report anything else."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    stub: StreamStub
    protocol_version = "HTTP/1.1"
    server_version = "StreamStub/1.0"
    # One write per answer and no Nagle delay: keep-alive requests stay fast.
    wbufsize = -1
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet (the default logs every request to stderr)."""

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers: CaseInsensitiveDict[str] = CaseInsensitiveDict(dict(self.headers.items()))
        try:
            status, extra, payload = self.stub._handle(self.command, self.path, headers, raw)
        except Exception as exc:
            status, extra, payload = (
                500,
                {},
                _error_body(500, CODE_INTERNAL, f"stub error: {exc!r}"),
            )
        if isinstance(payload, str):
            data, content_type = payload.encode(), "text/html; charset=utf-8"
        else:
            data, content_type = json.dumps(payload).encode(), "application/json"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch


@pytest.fixture(name="stream_stub")
def stream_stub_fixture() -> Iterator[StreamStub]:
    """A started :class:`StreamStub` (api_key ``stub-key``, secret ``stub-secret``).

    Import either name into a test module to get the ``stream_stub`` fixture.
    ``from stream_stub import stream_stub_fixture  # noqa: F401`` keeps ruff's F811
    quiet (a test parameter named like an imported name is a "redefinition").
    """
    with StreamStub("stub-key", "stub-secret") as stub:
        yield stub


stream_stub = stream_stub_fixture
