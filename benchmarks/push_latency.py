"""Push acknowledgement latency, per store, against the Flask baseline: wrk's p50/p99 and
the time botkit itself logs per webhook, to tell what botkit adds from what the machine does.

``make bench`` gives each target's push p99 from one 2 s window a run, decided by its 20
slowest answers: one stall of the machine moves it. This paces the push route (every
handler sleeps 1 s) at a fixed rate for ``--seconds`` at a time, in rounds of ``flask,
memory, sqlite, redis`` (the order rotating), every server started afresh, and prints per
window wrk's p50/p99 and the p50/p90/p99 of the time on each webhook's log line (from
botkit reading the request to its answer: no socket, no gunicorn), then the medians:

    .venv/bin/python benchmarks/push_latency.py
    .venv/bin/python benchmarks/push_latency.py sqlite --rounds 10 --rate 800

Keep ``rate x (seconds + 1)`` well under the push queue's bound, 5,000 events a worker
with 8 handled a second (the kernel does not spread the connections evenly over the
workers, and a 1 s warm-up comes first): once a queue is full, push answers 503 and the
window measures the refusals. The ``errors`` column says so; 1,600 req/s for 5 s filled
one in about a window of three.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench  # noqa: E402
from bench import (  # noqa: E402
    PREFIX,
    ROUTES,
    Server,
    Target,
    server_env,
    wrk,
)

STORES = ("memory", "sqlite", "redis")
#: The time on a push webhook's log line (botkit's default text format).
LOGGED = re.compile(r" outcome=queued status=200 ([0-9.]+)ms$", re.MULTILINE)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("stores", nargs="*", default=list(STORES), help="memory, sqlite, redis")
    p.add_argument("--rounds", type=int, default=5, help="windows per target (default 5)")
    p.add_argument("--seconds", type=float, default=4.0, help="length of a window (default 4)")
    p.add_argument("--rate", type=float, default=1600, help="req/s over all connections")
    bench.add_server_options(p)
    args = p.parse_args(argv)
    for store in args.stores:
        if store not in STORES:
            p.error(f"the stores are {', '.join(STORES)}, not {store!r}")
    if args.rounds < 1 or args.seconds < 1 or args.rate <= 0:
        p.error("--rounds and --seconds must be at least 1, --rate above 0")
    delay_ms = max(1, round(args.connections * 1000 / args.rate))  # per connection, after each
    wrk_args = bench.server_args(args)
    route = ROUTES["push-1k"]
    names = ["flask", *dict.fromkeys(args.stores)]  # each store once
    rows: dict[str, list[tuple[float, ...]]] = {name: [] for name in names}
    print(
        f"push 1 KB (1 s handler), {args.connections} connections paced at {args.rate:.0f} req/s,"
        f" {args.seconds:g} s windows; ms"
    )
    print(f"{'target':8} {'req/s':>6} {'errors':>6} {'wrk p50':>8} {'p99':>6}  {LOGGED_HEAD}")
    with bench.workspace("botkit-push-latency-", args.keep, "redis" in names) as (workdir, redis):
        body_file, signature = bench.write_body(route, workdir)
        for r in range(args.rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                if name == "flask":
                    target = Target("flask", "flask_baseline:app")
                else:
                    target = Target(name, "bench_bot:app", name)
                urls = {
                    "memory": "memory://",
                    "sqlite": f"sqlite:///{workdir}/r{r}.sqlite3",
                    "redis": redis.url if redis else "",
                }
                logdir = workdir / f"{name}-{r}"
                logdir.mkdir()
                server = Server(target, server_env(target, urls), wrk_args, logdir)
                server.start()
                try:
                    server.wait_ready()
                    url = server.base + PREFIX + route.path
                    wrk(wrk_args, url, body_file, signature, True, 1, delay_ms)  # warm up
                    seen = server.log.stat().st_size
                    sample = wrk(wrk_args, url, body_file, signature, True, args.seconds, delay_ms)
                    with open(server.log, encoding="utf-8", errors="replace") as log:
                        log.seek(seen)
                        logged = [float(ms) for ms in LOGGED.findall(log.read())]
                finally:
                    server.stop()
                row = (
                    sample.rps,
                    sample.errors,
                    sample.p50_ms,
                    sample.p99_ms,
                    percentile(logged, 0.5),
                    percentile(logged, 0.9),
                    percentile(logged, 0.99),
                    len(logged),
                )
                rows[name].append(row)
                print(f"{name:8} {_cells(row)}", flush=True)
    print("medians")
    for name in names:
        medians = tuple(statistics.median(row[i] for row in rows[name]) for i in range(8))
        print(f"{name:8} {_cells(medians)}")
    return 0


LOGGED_HEAD = "logged p50   p90   p99  lines"


def _cells(row: tuple[float, ...]) -> str:
    rps, errors, p50, p99, l50, l90, l99, lines = row
    if lines:
        logged = f"{l50:10.1f} {l90:5.1f} {l99:5.1f} {lines:6.0f}"
    else:  # no log line read: the Flask baseline
        logged = f"{'-':>10} {'-':>5} {'-':>5} {0:6}"
    return f"{rps:6.0f} {errors:6.0f} {p50:8.2f} {p99:6.2f}  {logged}"


if __name__ == "__main__":
    sys.exit(main())
