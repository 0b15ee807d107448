"""The parts a running bot uses: store, thread pool, queue, Stream client.

One :class:`Runtime` per bot per process. Parts that hold threads or sockets are made
lazily and remade after a fork, so gunicorn's ``preload_app`` is safe.
"""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING, Any

from ..core.config import Config
from ..core.context import custom_fields, split_cid
from .deadlines import Watchdog
from .pool import HandlerPool
from .stores import Store, open_store
from .tasks import TaskQueue, ThreadQueue, task

if TYPE_CHECKING:
    from ..core.bot import Bot
    from .stream_api import StreamClient

log = logging.getLogger("botkit")

#: Fields a late result may carry when it is posted as a new message.
_POSTABLE = ("text", "attachments", "mml")


class Runtime:
    def __init__(
        self,
        bot: Bot,
        config: Config,
        *,
        instance_path: str = "instance",
        store: Store | None = None,
        queue: TaskQueue | None = None,
        stream: StreamClient | None = None,
    ) -> None:
        self.bot = bot
        self.config = config
        self.store = (
            store
            if store is not None
            else open_store(
                config.store_url,
                instance_path=instance_path,
                max_answer_bytes=config.store_max_answer_bytes,
                max_bytes=config.store_max_bytes,
            )
        )
        self.queue = queue if queue is not None else open_queue(config.queue_url, bot)
        self._stream = stream
        self._pool = HandlerPool(64)
        #: Answers at the deadline the calls that run in their request thread.
        self.watchdog = Watchdog(config.inline_calls)
        bot.runtime = self

    @property
    def executor(self) -> HandlerPool:
        """The pool handlers run in, so that their deadline can be kept."""
        return self._pool

    @property
    def stream(self) -> StreamClient | None:
        """A Stream REST client, when the app has real credentials."""
        if self._stream is None and not self.config.dev_credentials:
            from .stream_api import StreamClient

            key = self.config.keyring.default_key
            self._stream = StreamClient(
                key, self.config.keyring.secret_for(key), base_url=self.config.stream_base_url
            )
        return self._stream

    def post_late_result(self, payload: dict[str, Any]) -> None:
        """Send a result that missed the deadline to ``payload['cid']`` as the bot user."""
        message: dict[str, Any] = payload["message"]
        cid = payload.get("cid")
        channel_type, channel_id = split_cid(cid)
        user_id = self.config.bot_user_id
        client = self.stream
        if not (channel_type and channel_id and user_id and client):
            log.warning(
                "late result of /%s dropped: set STREAM_BOT_USER_ID and Stream credentials "
                "so botkit can post it to the channel (cid %s)",
                payload.get("command"),
                cid,
            )
            return
        body = {k: message[k] for k in _POSTABLE if message.get(k)}
        body.update(custom_fields(message))
        message_id = late_message_id(payload.get("webhook_id"))
        if message_id:
            body["id"] = message_id
        from .stream_api import StreamAPIError

        try:
            client.send_message(channel_type, channel_id, body, user_id)
        except StreamAPIError as exc:
            # A retry of a post whose answer was lost: Stream already has the message.
            if message_id and exc.status_code == 400 and "already exists" in exc.message:
                log.info("late result of /%s was already posted to %s", payload.get("command"), cid)
                return
            raise
        log.info("late result of /%s posted to %s", payload.get("command"), cid)

    def close(self) -> None:
        self._pool.shutdown()
        self.queue.close()
        self.store.close()


def late_message_id(webhook_id: str | None) -> str | None:
    """The id botkit gives the message carrying a late result, derived from the webhook
    id: however often the post is retried, Stream stores the result once."""
    if not webhook_id:
        return None
    return "botkit-late-" + hashlib.sha256(webhook_id.encode("utf-8")).hexdigest()[:40]


def runtime_for(bot: Bot) -> Runtime:
    """The bot's runtime in this process, made from the environment if it has none."""
    runtime = bot.runtime
    if not isinstance(runtime, Runtime):
        runtime = Runtime(bot, Config.from_env())
    return runtime


@task("late_result")
def deliver_late_result(bot: Bot, payload: dict[str, Any]) -> None:
    """Post a command result that missed its deadline to the channel, as the bot user."""
    runtime_for(bot).post_late_result(payload)


def open_queue(url: str | None, bot: Bot) -> TaskQueue:
    """The queue ``BOTKIT_QUEUE`` names; ``ValueError`` naming the URL if unusable."""
    if not url or url == "thread://":
        return ThreadQueue(bot)
    if url.startswith("huey+"):
        from .huey_queue import HueyQueue

        return HueyQueue(url, bot)
    raise ValueError(
        f"BOTKIT_QUEUE={url!r} is not a queue botkit knows: use thread://, "
        "huey+sqlite:///path/to/queue.db or huey+redis://host:6379/0"
    )
