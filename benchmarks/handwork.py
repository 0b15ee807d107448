"""The bot's own work, written without botkit, for the two baselines of the benchmark.

``flask_baseline.py`` and ``wsgi_baseline.py`` must do the same work as the examples
bot: the offline /gif catalog (copied from ``examples/gif.py``) and the card masking and
block list (copied from ``examples/moderation.py``). They are copies, not imports, so the
baselines load neither botkit nor marshmallow. ``bench.py`` checks before every run that
each baseline answers exactly what botkit answers, so a copy that drifts is caught there.

Only the standard library is used here.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

# botkit's development credentials (botkit.core.config.DEV_API_KEY / DEV_API_SECRET), which
# the examples bot uses under BOTKIT_DEV=1; the baselines accept the same key.
API_KEY = os.environ.get("STREAM_API_KEY") or "botkit-dev-key"
SECRET = (os.environ.get("STREAM_API_SECRET") or "botkit-dev-secret-for-local-use-only").encode()

PREFIX = "/webhooks/stream"
MAX_BODY = 1024 * 1024

#: Message fields Stream defines; every other top-level key is a custom field.
MESSAGE_FIELDS = frozenset(
    {
        "id", "text", "html", "type", "command", "args", "cid", "created_at", "updated_at",
        "deleted_at", "attachments", "mml", "user", "latest_reactions", "own_reactions",
        "reaction_counts", "reaction_scores", "reaction_groups", "reply_count",
        "mentioned_users", "silent", "parent_id", "show_in_channel", "i18n",
        "command_info", "shadowed", "pinned", "pinned_at", "pinned_by", "pin_expires",
        "quoted_message_id", "quoted_message", "thread_participants", "restricted_visibility",
        "before_message_send_failed", "poll_id", "poll", "member", "deleted_reply_count",
        "message_text_updated_at", "image_labels", "channel",
    }
)  # fmt: skip
REWRITABLE = ("text", "i18n", "show_in_channel", "silent", "type", "attachments")


def signature_ok(api_key: str | None, signature: str | None, body: bytes) -> bool:
    """HMAC-SHA256 of the raw body under the app's secret, compared in constant time."""
    if api_key != API_KEY or not signature:
        return False
    expected = hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), signature.strip().lower().encode())


def parse(body: bytes) -> dict[str, Any] | None:
    """The body as a JSON object, or None."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode("ascii")


def valid_user(user: Any) -> bool:
    return isinstance(user, dict) and isinstance(user.get("id"), str) and bool(user["id"])


# -- /gif (examples/gif.py, offline catalog) ------------------------------------------------


_TOPICS = ["cats", "dogs", "wave", "party", "coffee", "rain"]
#: The offline catalog's picture names; the pictures are served at /examples/gif/<name>.svg.
NAMES = [f"{topic}-{n}" for topic in _TOPICS for n in range(1, 4)]


def _search(query: str, pick: int) -> str:
    words = query.lower().split()
    names = [
        n for n in NAMES if any(w in n.rsplit("-", 1)[0] or n.rsplit("-", 1)[0] in w for w in words)
    ]
    names = names or NAMES
    return names[pick % len(names)]


def _button(name: str, value: str, text: str, style: str = "default") -> dict[str, str]:
    return {"name": name, "text": text, "type": "button", "style": style, "value": value}


def gif_reply(message: dict[str, Any], public_url: str) -> dict[str, Any]:
    """The /gif preview: the incoming message with the ephemeral card merged in; the
    pictures are at ``public_url`` (``scheme://host`` the webhook came in on)."""
    args = message.get("args")
    if args is None:
        text = message.get("text") or ""
        args = text.split(None, 1)[1] if text.startswith("/") and " " in text else ""
    query = str(args).strip()
    out = dict(message)
    if not query:
        out.update(type="error", text="Usage: /gif [search terms]", attachments=[], mml="")
        return out
    name = _search(query, 0)
    url = f"{public_url}/examples/gif/{name}.svg"
    page = f"https://giphy.com/search/{name.rsplit('-', 1)[0]}"
    rendition = {"url": url, "width": "200", "height": "150"}
    out["gif_query"] = query
    out["gif_pick"] = 0
    out["type"] = "ephemeral"
    out["attachments"] = [
        {
            "type": "giphy",
            "title": query,
            "title_link": page,
            "image_url": url,
            "thumb_url": url,
            "giphy": {"original": rendition, "fixed_height": rendition},
            "actions": [
                _button("image_action", "send", "Send", "primary"),
                _button("image_action", "shuffle", "Shuffle"),
                _button("image_action", "cancel", "Cancel"),
            ],
        }
    ]
    return out


# -- before-send (examples/moderation.py) ---------------------------------------------------

BLOCKLIST = ("badword", "spamlink")
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_WORDS = re.compile(r"[\w']+")


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2 == 1:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def _mask(match: re.Match[str]) -> str:
    number = match.group(0)
    digits = re.sub(r"\D", "", number)
    if not _luhn_ok(digits):
        return number
    keep = len(digits) - 4
    out, seen = [], 0
    for ch in number:
        if ch.isdigit():
            out.append("*" if seen < keep else ch)
            seen += 1
        else:
            out.append(ch)
    return "".join(out)


def before_send_reply(message: dict[str, Any]) -> dict[str, Any]:
    """Refuse blocked words, mask card numbers; answer only the fields a hook may set."""
    text = message.get("text") or ""
    words = set(_WORDS.findall(text.lower()))
    for word in BLOCKLIST:
        if word in words:
            return {
                "type": "error",
                "text": f"Your message was not sent: “{word}” is not allowed here.",
            }
    current = dict(message)
    masked = _CARD.sub(_mask, text)
    if masked != text:
        current["text"] = masked
    out = {k: current[k] for k in REWRITABLE if k in current}
    out.update({k: v for k, v in current.items() if k not in MESSAGE_FIELDS})
    return out


# -- push: hand the event to a thread pool, answer at once ------------------------------------

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _slow_handler(event: dict[str, Any]) -> None:
    time.sleep(1.0)  # the benchmark's push handler: every event takes a second


def queue_event(event: dict[str, Any]) -> None:
    """Run the slow handler off the request, in 8 threads (as botkit's ThreadQueue)."""
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(8, "baseline-task")
    _pool.submit(_slow_handler, event)
