"""``/gif cats``: Stream's built-in /giphy, rebuilt as a custom command.

An ephemeral preview with Send / Shuffle / Cancel. With ``GIPHY_API_KEY`` set it searches
Giphy; otherwise it picks from a small catalog of pictures the bot serves itself, so the
demo runs offline. (The name ``giphy`` itself is Stream's and cannot be a custom command.)

Stream's client shows only ``http(s)`` pictures (a ``data:`` URL becomes a grey
placeholder), so the offline pictures are served by :data:`pictures`, a Flask blueprint
the group registers on every app made from the bot, at absolute URLs built from
``ctx.public_url``.
Users' browsers load them, so the bot must be reachable at that address: set
``BOTKIT_PUBLIC_URL`` when the address Stream calls is not the public one.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, abort

from botkit import Action, Attachment, CommandContext, CommandGroup, Message

log = logging.getLogger(__name__)

group = CommandGroup()

#: Serves the offline catalog's pictures at ``/examples/gif/<name>.svg``.
pictures = Blueprint("gif_pictures", __name__, url_prefix="/examples/gif")


def giphy_url() -> str:
    return os.environ.get("GIPHY_API_URL", "https://api.giphy.com/v1/gifs/search")


class GiphyError(Exception):
    pass


@dataclass(frozen=True)
class Gif:
    url: str
    page: str
    width: int = 200
    height: int = 150


def _card(label: str, color: str) -> bytes:
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="200" height="150">'
        f'<rect width="200" height="150" fill="{color}"/>'
        '<text x="100" y="85" font-family="sans-serif" font-size="22" fill="white" '
        f'text-anchor="middle">{label}</text></svg>'
    ).encode()


_COLORS = ["#e4572e", "#29335c", "#f3a712", "#669bbc", "#a8c686", "#7b2cbf"]
_TOPICS = ["cats", "dogs", "wave", "party", "coffee", "rain"]
#: The offline catalog: picture name -> SVG, a few per topic, made here so nothing is fetched.
CATALOG: dict[str, bytes] = {
    f"{topic}-{n}": _card(f"{topic} #{n}", _COLORS[(i + n) % len(_COLORS)])
    for i, topic in enumerate(_TOPICS)
    for n in range(1, 4)
}


@pictures.get("/<name>.svg")
def picture(name: str) -> Response:
    svg = CATALOG.get(name)
    if svg is None:
        abort(404)
    response = Response(svg, mimetype="image/svg+xml")
    response.headers["Cache-Control"] = "public, max-age=86400"
    # Opened on its own, an SVG is a page of the bot's origin: let it run nothing.
    response.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


group.register_blueprint(pictures)


def _topic(name: str) -> str:
    return name.rsplit("-", 1)[0]


def _offline(query: str, pick: int, public_url: str) -> Gif:
    words = query.lower().split()
    names = [n for n in CATALOG if any(w in _topic(n) or _topic(n) in w for w in words)]
    names = names or list(CATALOG)
    name = names[pick % len(names)]
    return Gif(f"{public_url}/examples/gif/{name}.svg", f"https://giphy.com/search/{_topic(name)}")


def search(query: str, pick: int, public_url: str) -> Gif | None:
    """The ``pick``-th GIF for ``query`` (wrapping around), or None if there is none.

    Offline pictures are served by this bot at ``public_url``.
    """
    api_key = os.environ.get("GIPHY_API_KEY")
    if api_key:
        return _search_giphy(api_key, query, pick)
    return _offline(query, pick, public_url)


def _search_giphy(api_key: str, query: str, pick: int) -> Gif | None:
    import requests  # here, so that a bot without a Giphy key does not load it

    params: dict[str, str | int] = {
        "api_key": api_key,
        "q": query,
        "limit": 1,
        "offset": pick % 50,
        "rating": "g",
    }
    try:
        response = requests.get(giphy_url(), params=params, timeout=0.5)
        response.raise_for_status()
        data = response.json()["data"]
    except (requests.RequestException, ValueError, KeyError) as exc:
        log.warning("Giphy search failed: %s", exc)
        raise GiphyError(str(exc)) from None
    if not data:
        return None
    images = data[0]["images"]["fixed_height"]
    return Gif(images["url"], data[0].get("url", ""), int(images["width"]), int(images["height"]))


def preview(ctx: CommandContext, query: str, pick: int) -> Message:
    gif = search(query, pick, ctx.public_url)
    if gif is None:
        return Message.error(f"No GIFs found for “{query}”.")
    rendition: dict[str, Any] = {"url": gif.url, "width": str(gif.width), "height": str(gif.height)}
    attachment = Attachment(
        type="giphy",
        title=query,
        title_link=gif.page,
        thumb_url=gif.url,
        image_url=gif.url,
        giphy={"original": rendition, "fixed_height": rendition},
        actions=[
            Action.button("image_action", "send", "Send", style="primary"),
            Action.button("image_action", "shuffle", "Shuffle"),
            Action.button("image_action", "cancel", "Cancel"),
        ],
    )
    return Message.ephemeral(attachments=[attachment], state={"gif_query": query, "gif_pick": pick})


@group.command("gif", description="Post a GIF", args="[search terms]")
def gif(ctx: CommandContext) -> Message:
    query = ctx.args.strip()
    if not query:
        return Message.error("Usage: /gif [search terms]")
    try:
        return preview(ctx, query, 0)
    except GiphyError:
        return Message.error("Sorry, Giphy is not answering right now. Try again in a moment.")


@gif.action("image_action", "shuffle")
def shuffle(ctx: CommandContext) -> Message:
    query = str(ctx.state.get("gif_query") or ctx.args)
    try:
        return preview(ctx, query, int(ctx.state.get("gif_pick", 0)) + 1)
    except GiphyError:
        return Message.error("Sorry, Giphy is not answering right now. Try again in a moment.")


@gif.action("image_action", "send")
def send(ctx: CommandContext) -> Message:
    return Message.publish(text="")


@gif.action("image_action", "cancel")
def cancel(ctx: CommandContext) -> Message:
    return Message.delete()
