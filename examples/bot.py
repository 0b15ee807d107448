"""The examples bot that ``wsgi.py`` serves: every example command on one bot."""

from botkit import Bot

from . import gif, ticket

bot = Bot()
bot.include(gif.group)
bot.include(ticket.group)
