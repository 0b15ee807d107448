"""MML builders (``botkit.mml``): the public path of :mod:`botkit.core.mml`."""

from .core.mml import *  # noqa: F403
from .core.mml import __all__ as __all__
