"""``python -m bots.events_worker``: a huey worker for :mod:`bots.events`, as ``botkit worker`` runs it.

Reads ``BOTKIT_QUEUE`` (and ``SHUTDOWN_TIMEOUT``, seconds) from the environment.
"""

import logging
import os
import sys

from botkit.runtime.worker import run_consumer
from bots.events import bot

logging.basicConfig(
    level=logging.INFO, stream=sys.stderr, format="%(name)s %(levelname)s %(message)s"
)
run_consumer(bot, workers=2, shutdown_timeout=float(os.environ.get("SHUTDOWN_TIMEOUT", "20")))
