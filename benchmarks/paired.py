"""Paired slices: botkit variants against the Flask baseline, for A/B of a change.

``make bench`` measures every target, route and store; this measures a few variants of
one route, in the same way (gunicorn with the checkout's ``gunicorn.conf.py``, ``wrk``
with ``signed.lua``, 1 s slices in rounds of ``flask, v1, flask, v2, ..., flask``, the
order rotating), and prints each variant's median ratio to the Flask slices around its
own, the quartiles, and every slice; then the CPU time its gunicorn workers spent per
request and their context switches per request (medians of the slices, from ``/proc``):
throughput says how much, these say where a difference comes from. A variant is ``NAME=STORE[:ENV=VALUE,...][@CHECKOUT]``:

    .venv/bin/python benchmarks/paired.py sqlite redis
    .venv/bin/python benchmarks/paired.py before=sqlite@/tmp/old after=sqlite --rounds 8
    .venv/bin/python benchmarks/paired.py sqlite json=sqlite:BOTKIT_LOG_FORMAT=json

``STORE`` is memory, sqlite or redis (a throwaway ``redis-server``); ``ENV`` goes to that
variant's server; ``CHECKOUT`` is another checkout of botkit (``git worktree add /tmp/old
HEAD~1``), whose bot, app and ``gunicorn.conf.py`` that variant runs. The Flask baseline
is always this checkout's.
"""

from __future__ import annotations

import argparse
import os
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


def parse_variant(spec: str) -> tuple[str, str, dict[str, str], Path | None]:
    """``NAME=STORE[:ENV=VALUE,...][@CHECKOUT]`` (NAME defaults to the rest)."""
    name, _, rest = spec.partition("=") if "=" in spec.split(":", 1)[0] else ("", "", spec)
    rest, _, checkout = rest.partition("@")
    store, _, envs = rest.partition(":")
    if store not in ("memory", "sqlite", "redis"):
        raise SystemExit(f"{spec}: the store is memory, sqlite or redis, not {store!r}")
    env = {}
    for pair in filter(None, envs.split(",")):
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"{spec}: {pair!r} is not ENV=VALUE")
        env[key] = value
    path = Path(checkout).resolve() if checkout else None
    if path is not None and not (path / "benchmarks" / "bench_bot.py").is_file():
        raise SystemExit(f"{spec}: {path} is not a checkout of botkit with benchmarks/")
    return name or spec, store, env, path


def worker_usage(pids: list[int]) -> tuple[float, int]:
    """CPU seconds (user and system) and context switches, summed over ``pids`` and
    all their threads."""
    ticks = os.sysconf("SC_CLK_TCK")
    cpu, switches = 0.0, 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            cpu += (int(fields[11]) + int(fields[12])) / ticks
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/status") as f:
                    switches += sum(int(line.split()[1]) for line in f if "ctxt_switches" in line)
        except (OSError, ValueError):  # a worker or thread that just went
            continue
    return cpu, switches


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("variants", nargs="+", help="NAME=STORE[:ENV=VALUE,...][@CHECKOUT]")
    p.add_argument("--route", default="gif-1k", choices=sorted(ROUTES))
    p.add_argument("--rounds", type=int, default=6, help="slices per variant (default 6)")
    bench.add_server_options(p)
    args = p.parse_args(argv)
    variants = [parse_variant(spec) for spec in args.variants]
    wrk_args = bench.server_args(args)
    route = ROUTES[args.route]
    with_redis = any(store == "redis" for _, store, _, _ in variants)
    with bench.workspace("botkit-paired-", args.keep, with_redis) as (workdir, redis):
        body_file, signature = bench.write_body(route, workdir)
        flask_target = Target("flask", "flask_baseline:app")
        servers = [Server(flask_target, server_env(flask_target, {}), wrk_args, workdir)]
        for i, (name, store, env, checkout) in enumerate(variants):
            target = Target(f"v{i}-{name}".replace("/", "_"), "bench_bot:app", store)
            urls = {
                "memory": "memory://",
                "sqlite": f"sqlite:///{workdir}/v{i}.sqlite3",
                "redis": redis.url if redis else "",
            }
            variant_env = {**server_env(target, urls), **env}
            servers.append(
                Server(target, variant_env, wrk_args, workdir, root=checkout or bench.ROOT)
            )
        try:
            for server in servers:
                server.start()
            for server in servers:
                server.wait_ready()

            usage: dict[str, list[tuple[float, float]]] = {s.target.name: [] for s in servers}

            def rate(server: Server) -> float:
                url = server.base + PREFIX + route.path
                pids = server.workers()
                cpu, switches = worker_usage(pids)
                rps = wrk(wrk_args, url, body_file, signature, route.dedup, 1).rps
                cpu_after, switches_after = worker_usage(pids)
                if rps > 0:
                    usage[server.target.name].append(
                        ((cpu_after - cpu) / rps * 1e6, (switches_after - switches) / rps)
                    )
                return rps

            for server in servers:  # warm up
                rate(server)
            flask, others = servers[0], list(enumerate(servers[1:]))
            ratios: list[list[float]] = [[] for _ in variants]
            for r in range(args.rounds):
                order = others[r % len(others) :] + others[: r % len(others)]
                before = rate(flask)
                for i, server in order:
                    value, after = rate(server), rate(flask)
                    ratios[i].append(value / ((before + after) / 2))
                    before = after
        finally:
            for server in servers:
                server.stop()
    print(f"{route.label}, {args.rounds} slices per variant, ratio to the flask slices around it")
    width = max(len(name) for name, *_ in variants)
    for (name, *_), values in zip(variants, ratios, strict=True):
        q = statistics.quantiles(values, n=4) if len(values) > 1 else values * 3
        print(
            f"  {name:{width}}  median {statistics.median(values):.3f}"
            f"  middle half {q[0]:.2f}-{q[2]:.2f}  ({' '.join(f'{v:.2f}' for v in values)})"
        )
    print("workers' CPU and context switches per request (medians of the slices)")
    width = max(width, len("flask"))
    for name, server in zip(["flask"] + [n for n, *_ in variants], servers, strict=True):
        samples = usage[server.target.name]
        if samples:
            cpu_us = statistics.median(s[0] for s in samples)
            switches = statistics.median(s[1] for s in samples)
            print(f"  {name:{width}}  {cpu_us:6.0f} us CPU  {switches:5.1f} switches")
    return 0


if __name__ == "__main__":
    sys.exit(main())
