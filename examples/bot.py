"""The examples bot that ``wsgi.py`` serves: every example command on one bot."""

from __future__ import annotations

from botkit import Bot

from . import gif, moderation, remind, stats, ticket

bot = Bot()
bot.include(gif.group)
bot.include(ticket.group)
bot.include(remind.group)
bot.include(moderation.group)
bot.include(stats.group)
