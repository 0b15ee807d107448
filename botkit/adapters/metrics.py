"""Prometheus metrics for a running bot (``pip install botkit[metrics]``).

Set ``BOTKIT_METRICS=1`` and the app serves ``GET /metrics`` in Prometheus' text format:

- ``botkit_webhooks_total{kind, name, outcome}``: every webhook answered, by kind
  (``command``, ``before_send``, ``push``), command or event type, and outcome
  (``ok``, ``replayed``, ``rejected-signature``, ``invalid-payload``, ``error``,
  ``late``, ...).
- ``botkit_webhook_latency_seconds{kind, name}``: a histogram of the time botkit took
  to answer, with buckets around Stream's deadlines.
- ``botkit_store_errors_total{kind}``: the idempotency store failed: a webhook's claim
  (``command``, ``before_send``, ``push``) or the ``/healthz`` check (``healthz``,
  a small write: a read-only file or a full disk shows there). Alert when it grows.

Under gunicorn every worker is a separate process: set ``PROMETHEUS_MULTIPROC_DIR`` to
an empty directory that all workers can write (``gunicorn.conf.py`` creates and empties
it at start-up), and ``/metrics`` adds up the counts of every worker. Without it, each
worker reports only its own counts.

Set ``BOTKIT_METRICS_TOKEN`` to require ``Authorization: Bearer <token>`` on ``/metrics``
when the endpoint is reachable from the internet.

The names are bounded: a command the bot does not have is counted as ``unknown``, an
event type no handler wants as ``other``, and a webhook refused before its payload was
read has an empty name.
"""

from __future__ import annotations

import hmac
import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..core import signals
from ..core.config import ConfigError

if TYPE_CHECKING:
    from flask import Flask

__all__ = ["LATENCY_BUCKETS", "init_metrics", "metrics_enabled", "render"]

#: Histogram buckets, in seconds: fine below Stream's ~1 s command deadline.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0)

_lock = threading.Lock()
_metrics: _Metrics | None = None


class _Metrics:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry()
        self.webhooks = Counter(
            "botkit_webhooks",
            "Webhooks answered, by kind, command or event type, and outcome.",
            ["kind", "name", "outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "botkit_webhook_latency_seconds",
            "Time botkit took to answer a webhook.",
            ["kind", "name"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.store_errors = Counter(
            "botkit_store_errors",
            "Failures of the idempotency store, by webhook kind or healthz.",
            ["kind"],
            registry=self.registry,
        )


def metrics_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``BOTKIT_METRICS`` asks for the ``/metrics`` endpoint."""
    env = os.environ if environ is None else environ
    return env.get("BOTKIT_METRICS", "").strip().lower() in ("1", "true", "yes", "on")


def _get() -> _Metrics:
    global _metrics
    if _metrics is None:
        with _lock:
            if _metrics is None:
                try:
                    import prometheus_client  # noqa: F401
                except ImportError:
                    raise ConfigError(
                        "BOTKIT_METRICS=1 needs the prometheus-client package: "
                        "pip install 'botkit[metrics]'"
                    ) from None
                _metrics = _Metrics()
                signals.webhook_handled.connect(_on_webhook)
                signals.store_unavailable.connect(_on_store_error)
    return _metrics


def _label(bot: Any, kind: str, name: str) -> str:
    """Keep label values to names the bot knows, so that no caller can grow them."""
    if not name:
        return ""
    if kind == "command":
        known = name in getattr(bot, "commands", {}) or name == "mml"
        return name if known else "unknown"
    if kind == "push":
        handlers_for = getattr(bot, "handlers_for", None)
        wanted = bool(handlers_for(name)) if handlers_for is not None else False
        return name if wanted else "other"
    return name


def _on_webhook(
    sender: Any,
    *,
    kind: str,
    name: str,
    outcome: str,
    latency: float,
    **_: Any,
) -> None:
    metrics = _metrics
    if metrics is None:
        return
    label = _label(sender, kind, name)
    metrics.webhooks.labels(kind, label, outcome).inc()
    metrics.latency.labels(kind, label).observe(latency)


def _on_store_error(sender: Any, *, kind: str, **_: Any) -> None:
    metrics = _metrics
    if metrics is not None:
        metrics.store_errors.labels(kind).inc()


def render() -> tuple[bytes, str]:
    """The metrics page and its content type, from every worker when multiprocess."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    metrics = _get()
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(metrics.registry), CONTENT_TYPE_LATEST


def init_metrics(app: Flask, *, token: str | None = None) -> None:
    """Count webhooks and serve ``GET /metrics`` on ``app``.

    ``create_app`` calls this when ``BOTKIT_METRICS=1``. ``token`` (default:
    ``BOTKIT_METRICS_TOKEN``) makes the endpoint require ``Authorization: Bearer <token>``.
    Raises :class:`~botkit.ConfigError` when prometheus-client is not installed or
    ``PROMETHEUS_MULTIPROC_DIR`` names a directory that does not exist.
    """
    from flask import Response, request

    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory and not os.path.isdir(directory):
        raise ConfigError(
            f"PROMETHEUS_MULTIPROC_DIR={directory!r} is not a directory: create it "
            "(gunicorn.conf.py does) or unset it"
        )
    _get()
    secret = token if token is not None else os.environ.get("BOTKIT_METRICS_TOKEN", "")

    def metrics_view() -> Response:
        if secret:
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {secret}".encode()):
                return Response(
                    '{"error":"unauthorized"}',
                    status=401,
                    mimetype="application/json",
                    headers={"WWW-Authenticate": "Bearer"},
                )
        body, content_type = render()
        return Response(body, status=200, content_type=content_type)

    app.add_url_rule("/metrics", "metrics", metrics_view, methods=["GET"])
