"""``/stats``: messages counted per channel by a push handler.

The ``message.new`` handler runs on the task queue (off the request) and counts in the
bot's store: the SQLite file by default, Redis when ``BOTKIT_STORE`` is a Redis URL, so
every worker and machine adds to the same numbers.
"""

from __future__ import annotations

from botkit import CommandContext, CommandGroup, Event, Message

group = CommandGroup()

COUNTER = "messages_per_channel"


@group.on("message.new")
def count_message(event: Event) -> None:
    if event.bot is None or event.cid is None:
        return
    event.bot.store.incr(COUNTER, event.cid)


@group.command("stats", description="How many messages this channel has seen")
def stats(ctx: CommandContext) -> Message:
    cid = ctx.cid or "?"
    counts = ctx.bot.store.counters(COUNTER)
    mine = counts.get(cid, 0)
    busiest = sorted(counts.items(), key=lambda kv: -kv[1])[:3]
    lines = [f"{mine} message{'s' if mine != 1 else ''} in {cid} since the bot started counting."]
    if busiest:
        lines.append("Busiest: " + ", ".join(f"{c} ({n})" for c, n in busiest))
    return Message.ephemeral("\n".join(lines))
