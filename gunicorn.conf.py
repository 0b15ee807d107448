"""gunicorn settings for a botkit app (``gunicorn wsgi:app`` reads this file).

gthread workers keep HTTP connections alive, as Stream asks; botkit keeps its own
per-request deadlines, since gunicorn's ``timeout`` is only a heartbeat for gthread.
"""

import os
import socket
import sys

bind = os.environ.get("BOTKIT_BIND") or f"0.0.0.0:{os.environ.get('PORT', '8000')}"
worker_class = "gthread"
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
    certfile = os.environ["BOTKIT_TLS_CERT"]
    keyfile = os.environ["BOTKIT_TLS_KEY"]

# Prometheus (BOTKIT_METRICS=1): with PROMETHEUS_MULTIPROC_DIR set, every worker writes its
# counts there and /metrics adds them up. Start each run with an empty directory, and let
# prometheus-client know when a worker is gone.
_metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")


def _limit_malloc_arenas(arenas=2):
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


def post_worker_init(worker):
    # What the worker loaded so far (modules, the app) lives as long as the worker:
    # keep the garbage collector from walking it again on every full collection.
    import gc

    gc.freeze()


def _check_port_free(server):
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


def _reexec_without_listeners(server):
    # Only with reuse_port: USR2's new master gets GUNICORN_FD="" (the old one holds no
    # sockets) and gunicorn 27 dies at int("") before any worker starts; the value is unread.
    if server.master_pid and server.cfg.reuse_port and os.environ.get("GUNICORN_FD") == "":
        os.environ["GUNICORN_FD"] = "-1"


def on_starting(server):
    _reexec_without_listeners(server)
    _check_port_free(server)
    if _metrics_dir:
        os.makedirs(_metrics_dir, exist_ok=True)
        for name in os.listdir(_metrics_dir):
            if name.endswith(".db"):
                os.remove(os.path.join(_metrics_dir, name))


def child_exit(server, worker):
    if _metrics_dir:
        try:
            from prometheus_client import multiprocess
        except ImportError:
            return
        multiprocess.mark_process_dead(worker.pid, _metrics_dir)
