"""gunicorn settings for a botkit app, shipped in the package.

Serve any bot with them, from any folder::

    gunicorn -c python:botkit.adapters.gunicorn_conf mybot:app

(the repository's ``gunicorn.conf.py`` is this module, re-exported). gthread-based
workers keep HTTP connections alive, as Stream asks; botkit keeps its own per-request
deadlines, since gunicorn's ``timeout`` is only a heartbeat for threaded workers. The
worker class, :class:`botkit.adapters.gunicorn_worker.BotkitWorker`, reads each request
in the event loop before a thread takes it, so slow clients cannot hold every thread.

This module imports neither Flask nor the app: gunicorn's master reads it before it
loads anything else. Every setting can be overridden on gunicorn's command line.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from typing import Any

from .gunicorn_worker import BotkitWorker, ReadLimits, check_gunicorn

__all__ = [
    "accesslog",
    "bind",
    "child_exit",
    "forwarded_allow_ips",
    "graceful_timeout",
    "keepalive",
    "max_requests",
    "max_requests_jitter",
    "on_starting",
    "post_worker_init",
    "reuse_port",
    "threads",
    "timeout",
    "when_ready",
    "worker_class",
    "workers",
]

bind = os.environ.get("BOTKIT_BIND") or f"0.0.0.0:{os.environ.get('PORT', '8000')}"
# gthread plus bounded request reads: a slow client waits in the event loop, not on a
# thread (see gunicorn_worker.py for the limits and their BOTKIT_* settings).
worker_class = "botkit.adapters.gunicorn_worker.BotkitWorker"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
# Heroku's router closes idle connections after 90 s: stay open a little longer than it.
keepalive = 95
# A listening socket per worker: the kernel spreads a burst of keep-alive connections, which
# one shared socket may hand all to one worker (docs/benchmarks.md). GUNICORN_REUSE_PORT=0: off.
reuse_port = sys.platform.startswith("linux") and os.environ.get("GUNICORN_REUSE_PORT") != "0"
timeout = 20
# Heroku sends SIGKILL 30 s after SIGTERM: finish in-flight requests before that.
graceful_timeout = 20
# No restarts after N requests by default: botkit bounds what a worker keeps (store,
# queue), and a restarting worker drops what waits on a thread:// queue. Set
# GUNICORN_MAX_REQUESTS if your own handlers leak.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "0"))
max_requests_jitter = max_requests // 10
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")

if os.environ.get("BOTKIT_TLS_CERT") and os.environ.get("BOTKIT_TLS_KEY"):
    # TLS straight from gunicorn: the worker reads handshakes and requests with deadlines;
    # a proxy in front still holds idle connections better (README, Deployment).
    certfile = os.environ["BOTKIT_TLS_CERT"]
    keyfile = os.environ["BOTKIT_TLS_KEY"]
    __all__ += ["certfile", "keyfile"]

# Prometheus (BOTKIT_METRICS=1): with PROMETHEUS_MULTIPROC_DIR set, every worker writes its
# counts there and /metrics adds them up. Start each run with an empty directory, and let
# prometheus-client know when a worker is gone.
_metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")


def _limit_malloc_arenas(arenas: int = 2) -> None:
    # glibc's arena per allocating thread keeps a worker's freed memory from being reused
    # by its other threads; two arenas keep peak RSS under 60 MB (docs/benchmarks.md).
    if os.environ.get("MALLOC_ARENA_MAX"):
        return  # read by glibc at start: it wins
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (macOS, musl): nothing to do
        return
    M_ARENA_MAX = -8
    libc.mallopt(M_ARENA_MAX, arenas)  # in the master, so the workers it forks inherit it


_limit_malloc_arenas()


def post_worker_init(worker: Any) -> None:
    # A botkit app built without Stream credentials (importing it needs none) must not
    # serve: the worker stops at boot with the reason, and so does the master (exit 3).
    web = sys.modules.get("botkit.adapters.web")  # loaded only when the app is botkit's
    if web is not None:
        from botkit.core.config import ConfigError

        try:
            web.check_startup(worker.app.wsgi())  # the app itself, not a worker's wrapper
        except ConfigError as exc:
            worker.log.error("botkit: %s", exc)
            sys.exit(3)  # gunicorn's WORKER_BOOT_ERROR
    # What the worker loaded so far (modules, the app) lives as long as the worker:
    # keep the garbage collector from walking it again on every full collection.
    import gc

    gc.freeze()


def _check_port_free(server: Any) -> None:
    # With reuse_port a second server on a taken port would bind too and quietly share its
    # traffic: bind once the plain way first, so a taken port stops the start.
    if not server.cfg.reuse_port:
        return
    if getattr(server, "master_pid", 0) or os.environ.get("LISTEN_FDS"):
        return  # a re-executed master (USR2) or systemd's sockets: the port is ours
    for address in server.cfg.address:
        if not isinstance(address, tuple):  # a unix socket or an inherited fd
            continue
        host, port = address[0], address[1]
        if port == 0:  # every worker would get a port of its own: one shared socket then
            server.cfg.set("reuse_port", False)
            return
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        probe = socket.socket(family, socket.SOCK_STREAM)
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
        try:
            probe.bind(address)
        except OSError as exc:
            raise SystemExit(f"botkit: cannot listen on {host}:{port}: {exc.strerror}") from None
        finally:
            probe.close()


def _reexec_without_listeners(server: Any) -> None:
    # Only with reuse_port: USR2's new master gets GUNICORN_FD="" (the old one holds no
    # sockets) and gunicorn 27 dies at int("") before any worker starts; the value is unread.
    if server.master_pid and server.cfg.reuse_port and os.environ.get("GUNICORN_FD") == "":
        os.environ["GUNICORN_FD"] = "-1"


class _NoBlankListening(logging.Filter):
    """Drops gunicorn's "Listening at:  (pid)" when it has no address (with reuse_port the
    master binds nothing): botkit's own line in ``when_ready`` says where it listens."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        blank = isinstance(args, tuple) and bool(args) and args[0] == ""
        return not (blank and record.msg == "Listening at: %s (%s)")


def on_starting(server: Any) -> None:
    # Stop the start with the reason, rather than fail every worker's boot.
    if isinstance(server.worker_class, type) and issubclass(server.worker_class, BotkitWorker):
        try:
            check_gunicorn()
            ReadLimits.from_environ(os.environ)
        except (RuntimeError, ValueError) as exc:
            raise SystemExit(f"botkit: {exc}") from None
    _reexec_without_listeners(server)
    _check_port_free(server)
    logging.getLogger("gunicorn.error").addFilter(_NoBlankListening())
    if _metrics_dir:
        os.makedirs(_metrics_dir, exist_ok=True)
        for name in os.listdir(_metrics_dir):
            if name.endswith(".db"):
                os.remove(os.path.join(_metrics_dir, name))


def listening_on(server: Any) -> str:
    """The addresses the server answers on, as URLs (``http://127.0.0.1:8000``)."""
    if server.LISTENERS:  # the master bound them: gunicorn's own names, real ports included
        return ", ".join(str(listener) for listener in server.LISTENERS)
    # reuse_port: each worker binds its own socket, so the master holds none to name
    scheme = "https" if server.cfg.is_ssl else "http"
    urls = []
    for address in server.cfg.address:
        if isinstance(address, tuple):
            host = f"[{address[0]}]" if ":" in address[0] else address[0]
            urls.append(f"{scheme}://{host}:{address[1]}")
        else:
            urls.append(f"unix:{address}")
    return ", ".join(urls)


def when_ready(server: Any) -> None:
    # gunicorn's own line is blank with reuse_port (see _NoBlankListening).
    count = server.num_workers
    server.log.info(
        "botkit listening on %s (%d worker%s)", listening_on(server), count, "s"[: count != 1]
    )


def child_exit(server: Any, worker: Any) -> None:
    if _metrics_dir:
        try:
            from prometheus_client import multiprocess
        except ImportError:
            return
        multiprocess.mark_process_dead(worker.pid, _metrics_dir)  # type: ignore[no-untyped-call]
