"""Claims and answers of the idempotency store in a loop, from several processes.

What a store costs per webhook without HTTP, Flask or botkit's pipeline around it: each
thread claims a new key and queues its answer (``complete_soon``), as the dispatcher does,
until ``--seconds`` are up. Prints claims per second, CPU per claim (all processes), the
claim-plus-answer latency's p99 and p99.9, and for SQLite the WAL's size at the end; the
medians of ``--rounds`` trials, each on a new store.

    .venv/bin/python benchmarks/store_claims.py sqlite
    .venv/bin/python benchmarks/store_claims.py sqlite --pace 0.006 --seconds 6
    .venv/bin/python benchmarks/store_claims.py redis://127.0.0.1:6379/15

``--src`` runs another checkout's botkit (a ``git worktree`` of an older commit) to compare.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path


def _trial(url: str, args: argparse.Namespace, results: multiprocessing.Queue) -> None:
    sys.path.insert(0, args.src)
    import gc

    from botkit.runtime.stores import open_store

    gc.freeze()
    store = open_store(url)
    stop = time.monotonic() + args.seconds
    counts: list[int] = []
    latencies: list[float] = []
    body = b"x" * args.body

    def loop() -> None:
        n = 0
        while time.monotonic() < stop:
            key = uuid.uuid4().hex
            started = time.perf_counter()
            store.claim(key, "fp", 30)
            store.complete_soon(key, "fp", 200, body, 3600)
            latencies.append(time.perf_counter() - started)
            n += 1
            if args.pace:
                time.sleep(args.pace)
        counts.append(n)

    threads = [threading.Thread(target=loop) for _ in range(args.threads)]
    cpu = time.process_time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store.flush(5)
    wal = Path(str(getattr(store, "path", "")) + "-wal")
    size = wal.stat().st_size / 1e6 if wal.is_file() else 0.0  # before close() removes it
    results.put((sum(counts), time.process_time() - cpu, latencies, size))
    store.close()


def trial(args: argparse.Namespace) -> tuple[float, float, float, float, float]:
    folder = tempfile.mkdtemp(prefix="botkit-claims-")
    path = os.path.join(folder, "store.sqlite3")
    url = f"sqlite:///{path}" if args.store == "sqlite" else args.store
    results: multiprocessing.Queue = multiprocessing.Queue()
    procs = [
        multiprocessing.Process(target=_trial, args=(url, args, results))
        for _ in range(args.processes)
    ]
    for proc in procs:
        proc.start()
    got = [results.get() for _ in procs]
    for proc in procs:
        proc.join()
    for name in os.listdir(folder):
        os.remove(os.path.join(folder, name))
    os.rmdir(folder)
    claims = sum(n for n, _, _, _ in got)
    latencies = sorted(x for _, _, lat, _ in got for x in lat)
    return (
        claims / args.seconds,
        sum(cpu for _, cpu, _, _ in got) / claims * 1e6,
        latencies[int(len(latencies) * 0.99)] * 1000,
        latencies[int(len(latencies) * 0.999)] * 1000,
        max(size for _, _, _, size in got),
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("store", help="sqlite (a new file per trial) or a redis:// URL")
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--threads", type=int, default=4, help="threads per process (default 4)")
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--pace", type=float, default=0.0, help="seconds each thread sleeps per claim")
    p.add_argument("--body", type=int, default=900, help="answer size in bytes (default 900)")
    p.add_argument("--src", default=str(Path(__file__).resolve().parent.parent))
    args = p.parse_args()
    rows = [trial(args) for _ in range(args.rounds)]
    names = ("claims/s", "CPU µs/claim", "p99 ms", "p99.9 ms", "WAL MB")
    names = names if args.store == "sqlite" else names[:-1]
    print(f"{args.store} from {args.src}: {args.processes} processes x {args.threads} threads")
    for i, name in enumerate(names):
        values = [row[i] for row in rows]
        print(
            f"  {name:13} {statistics.median(values):9.1f}   ({', '.join(f'{v:.1f}' for v in values)})"
        )


if __name__ == "__main__":
    main()
