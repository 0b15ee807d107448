"""Moderation with a before-send hook: mask card numbers, refuse blocked words.

``4242 4242 4242 4242`` becomes ``**** **** **** 4242``. Words in ``MODERATION_BLOCKLIST``
(comma-separated; a small default list otherwise) get the message refused, with an error
telling the sender why.
"""

from __future__ import annotations

import os
import re

from botkit import BeforeSendContext, CommandGroup, Message

group = CommandGroup()

DEFAULT_BLOCKLIST = ("badword", "spamlink")
# 13 to 19 digits, optionally grouped by single spaces or dashes.
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")


def blocklist() -> tuple[str, ...]:
    raw = os.environ.get("MODERATION_BLOCKLIST")
    if raw is None:
        return DEFAULT_BLOCKLIST
    return tuple(w.strip().lower() for w in raw.split(",") if w.strip())


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2 == 1:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def mask_cards(text: str) -> str:
    """Replace every digit but the last four of card-like numbers with ``*``."""

    def mask(match: re.Match[str]) -> str:
        number = match.group(0)
        digits = re.sub(r"\D", "", number)
        if not luhn_ok(digits):
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

    return _CARD.sub(mask, text)


@group.before_send
def refuse_blocked_words(ctx: BeforeSendContext) -> Message | None:
    words = set(re.findall(r"[\w']+", ctx.text.lower()))
    for word in blocklist():
        if word in words:
            return ctx.reject(f"Your message was not sent: “{word}” is not allowed here.")
    return None


@group.before_send
def hide_card_numbers(ctx: BeforeSendContext) -> Message | None:
    masked = mask_cards(ctx.text)
    if masked != ctx.text:
        return Message(text=masked)
    return None
