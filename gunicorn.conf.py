"""gunicorn settings for this repository (``gunicorn wsgi:app`` reads this file).

They ship in the package, so a bot outside the checkout uses the same ones with
``gunicorn -c python:botkit.adapters.gunicorn_conf mybot:app``; see that module.
"""

from botkit.adapters.gunicorn_conf import *  # noqa: F403
