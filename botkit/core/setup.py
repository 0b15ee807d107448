"""``setupmethod``: registration that refuses to run once it would be lost.

As Flask's ``@setupmethod`` (``src/flask/sansio/scaffold.py``): each registration
method asks its object first, so the rule of when registering stops lives in one place
per class (:class:`~botkit.Bot`, :class:`~botkit.CommandGroup`, :class:`~botkit.Command`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Protocol, TypeVar, cast

__all__ = ["setupmethod"]

F = TypeVar("F", bound=Callable[..., Any])


class _Setup(Protocol):
    def _check_setup_finished(self, f_name: str) -> None: ...


def setupmethod(f: F) -> F:
    """Call ``self._check_setup_finished(name)`` before the method, which raises
    :class:`~botkit.SetupError` when registering now would be lost."""
    f_name = f.__name__

    def wrapper_func(self: _Setup, *args: Any, **kwargs: Any) -> Any:
        self._check_setup_finished(f_name)
        return f(self, *args, **kwargs)

    return cast(F, functools.update_wrapper(wrapper_func, f))
