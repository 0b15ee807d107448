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
# Each worker listens on a socket of its own (SO_REUSEPORT) and the kernel spreads new
# connections over them. On one shared socket, whichever worker wakes first accepts: a
# burst of keep-alive connections (Stream's, a load test's) can all land on one worker,
# which serves them under one GIL while the others idle. Measured with wrk's 16
# connections and two workers: all 16 on one worker in about half the runs, at half the
# throughput. The cost: connections still queued at a worker when it stops are reset,
# and their clients retry (Stream retries webhooks). Linux only, where the kernel
# balances; GUNICORN_REUSE_PORT=0 turns it off. See on_starting for a taken port.
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
    # glibc gives each thread that allocates a memory arena of its own, up to 8 per core,
    # and memory freed in one arena is not reused by another: with 8 request threads and
    # the push queue's threads, that is 4-8 MB more per worker. Under the GIL threads
    # seldom allocate at the same time, so two arenas cost nothing measurable. Set here,
    # in the master, so the workers it forks inherit it; MALLOC_ARENA_MAX, when set,
    # was read by glibc at start and wins.
    if os.environ.get("MALLOC_ARENA_MAX"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (macOS, musl): nothing to do
        return
    M_ARENA_MAX = -8
    libc.mallopt(M_ARENA_MAX, arenas)


_limit_malloc_arenas()


def post_worker_init(worker):
    # What the worker loaded so far (modules, the app) lives as long as the worker:
    # keep the garbage collector from walking it again on every full collection.
    import gc

    gc.freeze()


def _check_port_free(server):
    # With reuse_port the master binds nothing and every worker binds with SO_REUSEPORT,
    # so a second server started on a port in use would bind too, and quietly take part
    # of the first one's traffic. Bind once the ordinary way first: a taken port stops
    # the start, as it does without reuse_port. Port 0 (any free port) would give every
    # worker a port of its own: one shared socket then.
    if not server.cfg.reuse_port:
        return
    if getattr(server, "master_pid", 0) or os.environ.get("LISTEN_FDS"):
        return  # a re-executed master (USR2) or systemd's sockets: the port is ours
    for address in server.cfg.address:
        if not isinstance(address, tuple):  # a unix socket or an inherited fd
            continue
        host, port = address[0], address[1]
        if port == 0:
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
    # USR2 starts a new master with GUNICORN_FD, the old master's sockets. With reuse_port
    # the old master has none, and gunicorn 27 then sets it to "" and fails at int("") in
    # the new master, before any worker starts: the upgrade never happens. Those fds are
    # only read to make the master's sockets, which with reuse_port it does not make.
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
