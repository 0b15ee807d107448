"""``make bench``: botkit against a hand-written Flask app and a bare WSGI callable.

Every target runs under gunicorn with the repository's ``gunicorn.conf.py`` and a fixed
worker count (``-w 2 --threads 8`` by default), on a free loopback port. Load comes from
``wrk`` (keep-alive, a fixed number of connections) with ``signed.lua``: pre-signed
bodies of about 1 KB and 20 KB, a new ``X-Webhook-Id`` on every request so the
idempotency store does real work.

For each run (``--runs``), every server is started afresh and every route measured:

1. a short warm-up of each target;
2. the maximum rate in slices of ``--duration`` seconds, in ``--rounds`` rounds of
   ``flask, t1, flask, t2, ..., flask`` (the targets' order rotating from round to
   round). A slice's ratio is its rate over the mean of the two Flask slices around it,
   which cancels the machine's drift. A slice counts only when the two Flask slices
   around it agree within ``--steady`` (20 %); with fewer than three such slices, all of
   them count. (Most of the jumps this guarded against were gunicorn's workers sharing
   one socket: a slice's connections could all land on one worker. The repository's
   ``gunicorn.conf.py`` now gives each worker its own socket, ``reuse_port``);
3. latency at a fixed fraction (``--rate-fraction``, default 0.5) of that maximum: wrk
   paced by its ``delay()`` hook (each connection waits after every response), since
   wrk has no constant-rate mode and wrk2 is not a Debian package.

Peak RSS per worker is the highest ``VmHWM`` in ``/proc/<pid>/status`` of the target's
gunicorn workers, sampled while the row is measured. The table shows medians: of the
counted slices' ratios, of all slices' rates, of the runs' latencies.

Usage: ``make bench`` or ``.venv/bin/python benchmarks/bench.py --help``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from botkit.core.config import DEV_API_KEY, DEV_API_SECRET  # noqa: E402
from botkit.testing import (  # noqa: E402
    before_send_payload,
    command_payload,
    encode,
    event_payload,
    message,
    signed_headers,
    user,
)

PREFIX = "/webhooks/stream"
GUNICORN = str(Path(sys.executable).with_name("gunicorn"))
WRK_HINT = (
    "wrk is not installed. Install it with `sudo apt-get install wrk` (Debian, Ubuntu) "
    "or `brew install wrk` (macOS), or point --wrk at it."
)


# -- what is measured ------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    name: str
    label: str
    path: str
    kind: str  # command | before_send | push
    size: int  # approximate body size in bytes
    dedup: bool = True
    botkit_only: bool = False


ROUTES = {
    r.name: r
    for r in (
        Route("gif-1k", "/gif 1 KB", "/custom-commands?type=gif", "command", 1024),
        Route(
            "gif-1k-nodedup",
            "/gif 1 KB, no id",
            "/custom-commands?type=gif",
            "command",
            1024,
            dedup=False,
            botkit_only=True,
        ),
        Route("before-send-1k", "before-send 1 KB", "/before-message-send", "before_send", 1024),
        Route("gif-20k", "/gif 20 KB", "/custom-commands?type=gif", "command", 20 * 1024),
        Route("push-1k", "push 1 KB (1 s handler)", "/push", "push", 1024),
    )
}


@dataclass(frozen=True)
class Target:
    name: str
    module: str
    store: str | None = None  # memory | sqlite | redis | redis+huey, for botkit

    @property
    def is_botkit(self) -> bool:
        return self.store is not None

    @property
    def label(self) -> str:
        return f"botkit {self.store}" if self.store else self.name


BASELINES = (Target("flask", "flask_baseline:app"), Target("wsgi", "wsgi_baseline:app"))
#: ``redis+huey``: the Redis store with push handlers on huey over Redis, run by a real
#: ``botkit worker`` (8 threads, as thread://): measured on the push route only.
STORES = ("memory", "sqlite", "redis", "redis+huey")
#: Fewer steady slices than this, and the ratio is the median of all of them.
MIN_STEADY = 3
HUEY = "redis+huey"


# -- request bodies (botkit.testing's factories, padded to a realistic size) ------------------


def _member(i: int) -> dict[str, Any]:
    return user(
        f"member-{i:04d}",
        image=f"https://getstream.io/random_png/?id=member-{i:04d}&name=Member+{i}",
        created_at="2024-03-01T09:30:00.000000Z",
        updated_at="2024-06-11T17:02:41.123456Z",
        last_active="2024-06-12T08:15:09.654321Z",
        online=i % 3 == 0,
        teams=["support"],
        language="en",
    )


def _padded(build: Any, size: int) -> bytes:
    """The smallest body of ``build(n)`` (n mentioned users) that is at least ``size``."""
    n = 0
    while True:
        body = encode(build(n))
        if len(body) >= size or n > 1000:
            return body
        n += 1


def make_body(route: Route, event: str = "message.new") -> bytes:
    author = user("alice", image="https://getstream.io/random_png/?id=alice&name=Alice")
    fixed = {"id": "alice-5b3e0c8c-2f4f-4c52-9a51-5d8f6f5c0a11"}
    if route.kind == "command":
        return _padded(
            lambda n: command_payload(
                "/gif cats",
                user=author,
                cid="messaging:general",
                mentioned_users=[_member(i) for i in range(n)],
                **fixed,
            ),
            route.size,
        )
    if route.kind == "before_send":
        text = "Here is my card 4242 4242 4242 4242, please charge the usual amount."
        return _padded(
            lambda n: before_send_payload(
                text, user=author, mentioned_users=[_member(i) for i in range(n)]
            ),
            route.size,
        )
    return _padded(
        lambda n: event_payload(
            event,
            user=author,
            message=message(
                "hello everyone", user=author, mentioned_users=[_member(i) for i in range(n)]
            ),
        ),
        route.size,
    )


def write_body(route: Route, directory: Path, event: str = "message.new") -> tuple[Path, str]:
    """``route``'s body written to a file in ``directory`` for wrk, and its ``X-Signature``
    (``signed.lua`` sends the same body every time, so it is signed once)."""
    body = make_body(route, event)
    path = directory / f"{route.name}.json"
    path.write_bytes(body)
    return path, signed_headers(body, api_key=DEV_API_KEY, secret=DEV_API_SECRET)["X-Signature"]


# -- processes --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields_after_name = stat.rsplit(")", 1)[-1].split()
        if len(fields_after_name) > 1 and int(fields_after_name[1]) == pid:
            out.append(int(entry))
    return out


def vm_hwm_kb(pid: int) -> int:
    """Peak resident set size of ``pid`` in kB (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Server:
    """One target under gunicorn, started with the repository's gunicorn.conf.py (or, with
    ``root``, another checkout's bot, botkit and gunicorn.conf.py)."""

    def __init__(
        self,
        target: Target,
        env: dict[str, str],
        args: argparse.Namespace,
        logdir: Path,
        root: Path = ROOT,
    ):
        self.target = target
        self.root = root
        self.env = env if root == ROOT else {**env, "PYTHONPATH": str(root)}
        self.args = args
        self.port = free_port()
        self.log = logdir / f"{target.name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.consumer: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        cmd = [
            GUNICORN, "-c", str(self.root / "gunicorn.conf.py"),
            "-w", str(self.args.workers), "--threads", str(self.args.threads),
            "--no-control-socket", "-b", f"127.0.0.1:{self.port}",
            "--pythonpath", str(self.root / "benchmarks"), self.target.module,
        ]  # fmt: skip
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                cmd, cwd=self.root, env=self.env, stdout=log, stderr=log, start_new_session=True
            )
            if self.target.store == HUEY:  # the consumer that runs the push handlers
                env = {**self.env, "BOTKIT_APP": "bench_bot:bot"}
                env["PYTHONPATH"] = os.pathsep.join([str(self.root / "benchmarks"), str(self.root)])
                self.consumer = subprocess.Popen(
                    [str(Path(GUNICORN).with_name("botkit")), "worker", "--workers", "8"],
                    cwd=self.root, env=env, stdout=log, stderr=log, start_new_session=True,
                )  # fmt: skip

    def wait_ready(self, timeout: float = 60.0) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.target.label} exited at start:\n{self.log_tail()}")
            if len(self.workers()) >= self.args.workers:
                try:
                    conn = HTTPConnection("127.0.0.1", self.port, timeout=2)
                    conn.request("GET", "/healthz")
                    conn.getresponse().read()
                    conn.close()
                    return
                except OSError:
                    pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.target.label} did not start:\n{self.log_tail()}")

    def workers(self) -> list[int]:
        return _children(self.process.pid) if self.process else []

    def peak_rss_kb(self) -> int:
        return max((vm_hwm_kb(pid) for pid in self.workers()), default=0)

    def stop(self) -> None:
        consumer, self.consumer = self.consumer, None
        if consumer is not None and consumer.poll() is None:
            os.killpg(consumer.pid, signal.SIGKILL)  # its backlog is flushed with Redis
            consumer.wait(timeout=10)
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        # gunicorn would wait up to graceful_timeout for queued push handlers: don't.
        process.send_signal(signal.SIGQUIT)
        try:
            process.wait(timeout=3)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(process.pid, signal.SIGKILL)  # its own session: gunicorn and workers
        except ProcessLookupError:
            pass
        process.wait(timeout=10)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "".join(self.log.read_text(errors="replace").splitlines(True)[-lines:])
        except OSError:
            return "(no log)"


class RSSSampler(threading.Thread):
    """Reads the workers' VmHWM every 0.2 s, so recycled workers are seen too."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.server: Server | None = None
        self.peak = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()

    @contextmanager
    def watch(self, server: Server) -> Iterator[None]:
        with self._lock:
            self.server, self.peak = server, server.peak_rss_kb()
        try:
            yield
        finally:
            with self._lock:
                self.peak = max(self.peak, server.peak_rss_kb())
                self.server = None

    def run(self) -> None:
        while not self._stop.wait(0.2):
            with self._lock:
                if self.server is not None:
                    self.peak = max(self.peak, self.server.peak_rss_kb())

    def stop(self) -> None:
        self._stop.set()


def start_redis() -> Any:
    """A throwaway redis-server (tests/services.py's RedisServer), or None if missing."""
    binary = shutil.which("redis-server")
    if binary is None:
        return None
    sys.path.insert(0, str(ROOT / "tests"))
    from services import RedisServer

    server = RedisServer(binary=binary)
    server.start()
    return server


# -- for the scripts that measure one route (paired.py, push_latency.py) ---------------------


def add_server_options(p: argparse.ArgumentParser) -> None:
    """The counts of gunicorn and wrk, with ``make bench``'s defaults, and ``--keep``."""
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--keep", action="store_true", help="keep the work folder (server logs)")


def server_args(args: argparse.Namespace) -> argparse.Namespace:
    """``make bench``'s options with the counts of ``args``: what Server and wrk take."""
    ours = parse_args(["--connections", str(args.connections)])
    ours.workers, ours.threads = args.workers, args.threads
    return ours


@contextmanager
def workspace(prefix: str, keep: bool, redis: bool) -> Iterator[tuple[Path, Any]]:
    """A work folder, and a throwaway redis-server if ``redis``; on the way out Redis is
    stopped and the folder removed (the servers' logs and databases: tens of MB a minute
    of load) unless ``keep``."""
    server = start_redis() if redis else None
    if redis and server is None:
        raise SystemExit("redis-server not found (apt-get install redis-server)")
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield workdir, server
    finally:
        if server is not None:
            server.cleanup()
        if keep:
            print(f"work folder: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


# -- load -------------------------------------------------------------------------------------


@dataclass
class Sample:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def wrk(
    args: argparse.Namespace,
    url: str,
    body_file: Path,
    signature: str,
    dedup: bool,
    duration: float,
    delay_ms: int = 0,
) -> Sample:
    env = dict(os.environ)
    env.pop("BENCH_DELAY_MS", None)
    if delay_ms > 0:
        env["BENCH_DELAY_MS"] = str(delay_ms)
    cmd = [
        args.wrk, "-t1", f"-c{args.connections}", f"-d{max(1, round(duration))}s", "--timeout", "5s",
        "-s", str(HERE / "signed.lua"), url,
        "--", str(body_file), signature, DEV_API_KEY, "1" if dedup else "0", uuid.uuid4().hex,
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=duration + 30)
    for line in out.stdout.splitlines():
        if line.startswith("BENCH-JSON "):
            r = json.loads(line[len("BENCH-JSON ") :])
            seconds = r["duration_us"] / 1e6 or 1.0
            errors = r["connect"] + r["read"] + r["write"] + r["status"] + r["timeout"]
            return Sample(r["requests"] / seconds, r["p50"] / 1000, r["p99"] / 1000, errors)
    raise RuntimeError(f"wrk failed ({out.returncode}): {out.stderr.strip() or out.stdout.strip()}")


def post_once(server: Server, route: Route, body: bytes) -> tuple[int, Any]:
    headers = signed_headers(
        body, api_key=DEV_API_KEY, secret=DEV_API_SECRET, webhook_id=uuid.uuid4().hex
    )
    if not route.dedup:
        del headers["X-Webhook-Id"]
    conn = HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("POST", PREFIX + route.path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
    finally:
        conn.close()
    try:
        return response.status, json.loads(data)
    except ValueError:
        return response.status, data.decode(errors="replace")


# -- the run ----------------------------------------------------------------------------------


@dataclass
class Row:
    route: Route
    target: Target
    max: list[tuple[int, Sample]] = field(default_factory=list)  # (run, slice)
    # (slice / mean of the flask slices around it, whether those two agreed: see --steady)
    ratios: list[tuple[float, bool]] = field(default_factory=list)
    paced: list[Sample] = field(default_factory=list)
    rss_kb: int = 0
    skipped: str = ""


def server_env(target: Target, store_urls: dict[str, str]) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("STREAM_", "BOTKIT_", "GUNICORN_", "GIPHY_", "MODERATION_"))
        and k not in ("WEB_CONCURRENCY", "PORT")
    }
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if target.store:
        env["BOTKIT_DEV"] = "1"
        env["BOTKIT_STORE"] = store_urls[target.store]
    if target.store == HUEY:
        env["BOTKIT_QUEUE"] = "huey+" + store_urls[HUEY].rsplit("/", 1)[0] + "/1"
    return env


def check_replies(servers: list[Server], routes: list[Route], bodies: dict[str, bytes]) -> None:
    """Every target must answer 200, and the baselines exactly what botkit answers."""
    for route in routes:
        expected: Any = None
        for server in servers:
            if route.botkit_only and not server.target.is_botkit:
                continue
            status, reply = post_once(server, route, bodies[route.name])
            # Replies link the pictures the bot serves at its own address: each server's
            # is another port, which is not different work.
            reply = json.loads(json.dumps(reply).replace(server.base, "http://SERVER"))
            if status != 200:
                raise SystemExit(
                    f"{server.target.label} answered {status} to {route.name}: {reply}\n"
                    f"{server.log_tail()}"
                )
            if expected is None:
                expected = reply
            elif reply != expected:
                raise SystemExit(
                    f"{server.target.label} does not answer {route.name} like "
                    f"{servers[0].target.label}: the benchmark would compare different work.\n"
                    f"  expected: {json.dumps(expected)[:2000]}\n  got:      {json.dumps(reply)[:2000]}"
                )


def throughput(
    args: argparse.Namespace,
    server: Server,
    route: Route,
    files: dict[str, tuple[Path, str]],
    sampler: RSSSampler,
    row: Row | None,
    warmup: bool,
) -> Sample:
    """One slice of the maximum rate (kept in ``row`` unless None)."""
    path, signature = files[route.name]
    url = server.base + PREFIX + route.path
    with sampler.watch(server):
        if warmup and args.warmup > 0:
            wrk(args, url, path, signature, route.dedup, args.warmup)
        sample = wrk(args, url, path, signature, route.dedup, args.duration)
    if row is not None:
        row.rss_kb = max(row.rss_kb, sampler.peak)
    return sample


def latency(
    args: argparse.Namespace,
    server: Server,
    route: Route,
    files: dict[str, tuple[Path, str]],
    sampler: RSSSampler,
    row: Row,
    run: int,
    top: float,
) -> None:
    """Latency at ``rate_fraction`` of the maximum rate ``top``."""
    path, signature = files[route.name]
    url = server.base + PREFIX + route.path
    rate = max(top * args.rate_fraction, 1.0)
    delay_ms = max(1, round(args.connections * 1000 / rate))
    with sampler.watch(server):
        p = wrk(args, url, path, signature, route.dedup, args.paced_duration, delay_ms)
    row.paced.append(p)
    row.rss_kb = max(row.rss_kb, sampler.peak)
    if args.verbose:
        print(
            f"run {run + 1} {route.name:16} {server.target.label:15} "
            f"p50 {p.p50_ms:.2f} ms  p99 {p.p99_ms:.2f} ms at {p.rps:.0f} req/s, "
            f"{p.errors} errors",
            file=sys.stderr,
            flush=True,
        )


def push_pace(
    args: argparse.Namespace,
    rows: dict[tuple[str, str], Row],
    routes: list[Route],
    route: Route,
    server: Server,
    files: dict[str, tuple[Path, str]],
    sampler: RSSSampler,
    run: int,
) -> float:
    """The maximum rate push latency is paced from, taken before this run's push slices:
    the target's push maximum in earlier runs; in the first run, its maximum on this
    run's first route; with push alone, one slice of an event no handler takes (answered,
    never queued). A slice of the route itself would queue its events, and the kernel
    may give one worker most of a few connections: past its 5,000 waiting events the
    paced load after it would be answered 503."""
    name = server.target.name
    earlier = [s.rps for r, s in rows[(route.name, name)].max if r < run]
    if earlier:
        return _median(earlier)
    first = rows.get((routes[0].name, name))
    same_run = [s.rps for r, s in first.max if r == run] if first is not None else []
    if same_run:
        return _median(same_run)
    probe = Route("push-probe", route.label, route.path, route.kind, route.size)
    if probe.name not in files:
        files[probe.name] = write_body(probe, files[route.name][0].parent, "channel.visible")
    return throughput(args, server, probe, files, sampler, None, False).rps


def run_bench(args: argparse.Namespace) -> list[Row]:
    routes = [ROUTES[name] for name in args.routes]
    targets = [Target(f"botkit-{s}", "bench_bot:app", s) for s in args.stores]
    targets += [t for t in BASELINES if t.name in args.baselines]
    workdir = Path(tempfile.mkdtemp(prefix="botkit-bench-"))
    bodies: dict[str, bytes] = {}
    files: dict[str, tuple[Path, str]] = {}
    for route in routes:
        files[route.name] = write_body(route, workdir)
        bodies[route.name] = files[route.name][0].read_bytes()

    redis = None
    rows = {(r.name, t.name): Row(r, t) for r in routes for t in targets}
    if "redis" in args.stores or HUEY in args.stores:
        redis = start_redis()
        if redis is None:
            print(
                "redis-server not found (apt-get install redis-server): no Redis rows",
                file=sys.stderr,
            )
            for row in rows.values():
                if row.target.store in ("redis", HUEY):
                    row.skipped = "no redis-server"
            targets = [t for t in targets if t.store not in ("redis", HUEY)]
    sampler = RSSSampler()
    sampler.start()
    try:
        for run in range(args.runs):
            rundir = workdir / f"run{run}"
            rundir.mkdir()
            store_urls = {"memory": "memory://", "sqlite": f"sqlite:///{rundir}/store.sqlite3"}
            if redis is not None:
                redis.flushall()
                store_urls["redis"] = store_urls[HUEY] = redis.url
            order = targets[run % len(targets) :] + targets[: run % len(targets)]
            servers = [Server(t, server_env(t, store_urls), args, rundir) for t in order]
            try:
                for server in servers:
                    server.start()
                for server in servers:
                    server.wait_ready()
                check_replies(servers, routes, bodies)
                for route in routes:
                    measured = [
                        server
                        for server in servers
                        if (
                            not route.botkit_only
                            or (server.target.is_botkit and server.target.store == args.stores[0])
                        )  # dedup off: the store is not used, one row is enough
                        and (server.target.store != HUEY or route.kind == "push")
                    ]
                    if route.kind == "push":
                        # At the maximum rate a thread:// queue (8 one-second handlers at a
                        # time, 5,000 events waiting per worker) is full within seconds, and
                        # from then on push answers 503: measured after the maximum-rate
                        # slices, its latency would be the refusals'. So push latency is
                        # measured first, while every event is still queued and acknowledged.
                        for server in measured:
                            row = rows[(route.name, server.target.name)]
                            top = push_pace(args, rows, routes, route, server, files, sampler, run)
                            latency(args, server, route, files, sampler, row, run, top)
                    # The maximum rate in short slices, every target between two slices
                    # of the hand-written Flask app: a slice's ratio is over the mean of
                    # the two around it, so the machine's drift cancels out.
                    flask = next((v for v in servers if v.target.name == "flask"), None)
                    others = [v for v in measured if v is not flask]
                    for rnd in range(args.rounds):
                        turn = rnd % len(others)
                        seq = [flask] if flask else []
                        for server in others[turn:] + others[:turn]:
                            seq += [server, flask] if flask else [server]
                        samples: list[Sample] = []
                        for server in seq:
                            assert server is not None
                            row = rows.get((route.name, server.target.name))
                            if route.botkit_only and server is flask:
                                row = None  # measured for the ratio only, not shown
                            sample = throughput(args, server, route, files, sampler, row, rnd == 0)
                            samples.append(sample)
                            if row is not None:
                                row.max.append((run, sample))
                            if args.verbose:
                                print(
                                    f"run {run + 1}.{rnd + 1} {route.name:16} "
                                    f"{server.target.label:15} {sample.rps:8.0f} req/s",
                                    file=sys.stderr,
                                    flush=True,
                                )
                        if flask:
                            for i in range(1, len(seq), 2):
                                row = rows[(route.name, seq[i].target.name)]
                                before, after = samples[i - 1].rps, samples[i + 1].rps
                                steady = abs(before - after) <= args.steady * max(before, after)
                                row.ratios.append((samples[i].rps / ((before + after) / 2), steady))
                    if route.kind != "push":
                        for server in measured:
                            row = rows[(route.name, server.target.name)]
                            top = _median([s.rps for r, s in row.max if r == run])
                            latency(args, server, route, files, sampler, row, run, top)
            finally:
                for server in servers:
                    server.stop()
    finally:
        sampler.stop()
        if redis is not None:
            redis.cleanup()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return [row for row in rows.values() if row.max or row.skipped]


# -- the table --------------------------------------------------------------------------------


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def table(rows: list[Row], args: argparse.Namespace) -> str:
    head = (
        "route", "target", "req/s", "vs flask", "middle half", "slices", "p50 ms", "p99 ms",
        "at req/s", "RSS MB", "errors (max / paced)",
    )  # fmt: skip
    lines: list[tuple[str, ...]] = [head]
    for row in rows:
        if row.skipped:
            lines.append((row.route.label, row.target.label, *["-"] * (len(head) - 3), row.skipped))
            continue
        rps = [s.rps for _, s in row.max]
        spread = used = "-"
        if row.target.name == "flask":
            ratio = "1.00"
        elif row.ratios:
            ratios = [r for r, steady in row.ratios if steady]
            if len(ratios) < MIN_STEADY:  # too few to go on: all of them, and say so
                ratios = [r for r, _ in row.ratios]
                used = f"all {len(ratios)}"
            else:
                used = f"{len(ratios)} of {len(row.ratios)}"
            ratio = f"{_median(ratios):.2f}"
            if len(ratios) >= 4:  # where the middle half of the slice ratios lie
                q1, _, q3 = statistics.quantiles(ratios, n=4)
                spread = f"{q1:.2f}-{q3:.2f}"
        else:
            ratio = "-"
        errors = f"{sum(s.errors for _, s in row.max)} / {sum(s.errors for s in row.paced)}"
        lines.append(
            (
                row.route.label,
                row.target.label,
                f"{_median(rps):.0f}",
                ratio,
                spread,
                used,
                f"{_median([s.p50_ms for s in row.paced]):.2f}",
                f"{_median([s.p99_ms for s in row.paced]):.2f}",
                f"{_median([s.rps for s in row.paced]):.0f}",
                f"{row.rss_kb / 1024:.1f}",
                errors,
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = []
    for n, line in enumerate(lines):
        cells = [
            cell.ljust(widths[i]) if i < 2 else cell.rjust(widths[i]) for i, cell in enumerate(line)
        ]
        out.append("| " + " | ".join(cells) + " |")
        if n == 0:
            out.append(
                "|"
                + "|".join(
                    "-" * (w + 1) + ":" if i >= 2 else "-" * (w + 2) for i, w in enumerate(widths)
                )
                + "|"
            )
    return "\n".join(out)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--duration",
        type=int,
        default=1,
        help="seconds per slice of maximum rate, whole (default 1)",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="slices of maximum rate per target, route and run, taken in turn (default 3)",
    )
    p.add_argument(
        "--paced-duration",
        type=int,
        default=2,
        help="seconds of the latency measurement, whole (default 2)",
    )
    p.add_argument(
        "--runs",
        type=int,
        default=3,
        help="runs (every server started afresh); medians are reported (default 3)",
    )
    p.add_argument(
        "--connections", type=int, default=16, help="wrk connections, keep-alive (default 16)"
    )
    p.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="seconds of warm-up of each target before its first slice of a route, 0 for none (default 1)",
    )
    p.add_argument(
        "--rate-fraction",
        type=float,
        default=0.5,
        help="latency is measured at this fraction of the max rate (default 0.5)",
    )
    p.add_argument(
        "--steady",
        type=float,
        default=0.2,
        help="a slice's ratio counts only when the two flask slices around it differ by at"
        " most this fraction of the larger (default 0.2; 1 counts every slice)",
    )
    p.add_argument("--workers", type=int, default=2, help="gunicorn workers per target (default 2)")
    p.add_argument("--threads", type=int, default=8, help="gunicorn threads per worker (default 8)")
    p.add_argument(
        "--stores",
        default=",".join(STORES),
        help="botkit stores to measure (default memory,sqlite,redis,redis+huey)",
    )
    p.add_argument(
        "--baselines", default="flask,wsgi", help="baselines to measure (default flask,wsgi)"
    )
    p.add_argument(
        "--routes", default=",".join(ROUTES), help=f"routes (default {','.join(ROUTES)})"
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="one short run with the memory store: checks that the bench works",
    )
    p.add_argument("--wrk", default=shutil.which("wrk") or "/usr/bin/wrk", help="path to wrk")
    p.add_argument("--keep", action="store_true", help="keep the work folder (bodies, server logs)")
    p.add_argument(
        "-v", "--verbose", action="store_true", help="print every measurement as it is taken"
    )
    args = p.parse_args(argv)
    if args.quick:
        args.runs, args.rounds, args.duration, args.paced_duration, args.warmup = 1, 1, 1, 1, 0
        if "--stores" not in (argv if argv is not None else sys.argv[1:]):
            args.stores = "memory"
    args.stores = [s for s in args.stores.split(",") if s]
    args.baselines = [b for b in args.baselines.split(",") if b]
    args.routes = [r for r in args.routes.split(",") if r]
    for s in args.stores:
        if s not in STORES:
            p.error(f"unknown store {s!r}: choose from {', '.join(STORES)}")
    for r in args.routes:
        if r not in ROUTES:
            p.error(f"unknown route {r!r}: choose from {', '.join(ROUTES)}")
    for b in args.baselines:
        if b not in ("flask", "wsgi"):
            p.error(f"unknown baseline {b!r}: choose from flask, wsgi")
    if not args.stores:
        p.error("--stores needs at least one store")
    if (
        args.runs < 1
        or args.rounds < 1
        or min(args.duration, args.paced_duration) <= 0
        or args.connections < 1
    ):
        p.error("--runs, --duration and --connections must be positive")
    if not 0 < args.rate_fraction <= 1:
        p.error("--rate-fraction must be in (0, 1]")
    if not 0 <= args.steady <= 1:
        p.error("--steady must be in [0, 1]")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not (os.path.isfile(args.wrk) and os.access(args.wrk, os.X_OK)):
        print(WRK_HINT, file=sys.stderr)
        return 2
    started = time.monotonic()
    rows = run_bench(args)
    print(
        f"botkit benchmark: gunicorn -w {args.workers} --threads {args.threads} (gunicorn.conf.py), "
        f"wrk -c{args.connections}, {args.runs} run(s) x {args.rounds} round(s) of "
        f"{args.duration:g} s per target, each between two slices of flask (ratio: median "
        f"over the slices of slice / mean of the flask slices around it, counting the slices"
        f" whose flask slices differ by at most {args.steady:.0%}), latency over {args.paced_duration:g} s at {args.rate_fraction:.0%} of "
        f"each target's max rate; medians; "
        f"{os.cpu_count()} CPUs; {time.monotonic() - started:.0f} s"
    )
    print(table(rows, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
