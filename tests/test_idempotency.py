"""Tests for botkit.runtime.stores against memory, SQLite and a real redis-server."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from services import RedisServer, hung, redis_server, redis_url  # noqa: F401

# The backends' classes come from their modules (botkit.runtime.stores re-exports only
# what a bot author needs). Some internals are checked here directly: the helpers the
# backends share (answers written by a thread, claims made together), Redis' value
# layout (what older workers read in a rolling deploy; checked without a server), the
# SQLite store's connections, and the memory store's idea of an entry's size. Each use says why a store's methods do not do.
from botkit.runtime.stores import (
    Entry,
    MemoryStore,
    Store,
    StoreConfigError,
    StoreUnavailable,
    open_store,
)
from botkit.runtime.stores import sqlite as sqlite_backend
from botkit.runtime.stores.base import Answer, AnswerWriter
from botkit.runtime.stores.memory import ENTRY_OVERHEAD
from botkit.runtime.stores.redis import RedisStore, decode_entry, encode_answer, encode_pending
from botkit.runtime.stores.sqlite import SQLiteStore

BODIES = [
    b"",
    b'{"message": {"text": "ok"}}',
    b"\x00",
    b"\x00\x01\x02 nul \x00 inside\x00",
    b"\xff\xfe\xfd not utf-8 \xc3\x28",
    bytes(range(256)) * 3,
    "caf\u00e9 \U0001f916".encode(),
]

# A claim TTL and a wait that outlasts it: instant with a fake clock, a real
# sleep for Redis (which expires keys with its own clock).
SHORT_TTL = 0.2
OUTLAST = 0.3


class FakeClock:
    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Harness:
    kind: str
    store: Store
    clock: FakeClock | None

    def wait(self, seconds: float) -> None:
        """Let ``seconds`` pass for the store's expiry."""
        if self.clock is not None:
            self.clock.advance(seconds)
        else:
            time.sleep(seconds)


@pytest.fixture(params=["memory", "sqlite", "redis"])
def harness(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Harness]:
    clock = FakeClock()
    if request.param == "memory":
        h = Harness("memory", open_store("memory://", clock=clock), clock)
    elif request.param == "sqlite":
        h = Harness("sqlite", open_store(f"sqlite:///{tmp_path}/idem.db", clock=clock), clock)
    else:
        url = request.getfixturevalue("redis_url")
        h = Harness("redis", open_store(url), None)
    try:
        yield h
    finally:
        h.store.close()


# ---------------------------------------------------------------------------
# Semantic suite, shared by all stores


@pytest.mark.parametrize("body", BODIES, ids=lambda b: f"{len(b)}B")
def test_claim_complete_replay_byte_for_byte(harness: Harness, body: bytes) -> None:
    store = harness.store
    assert store.claim("wh-1", "fp", 30) is None
    store.complete("wh-1", "fp", 403, body, 60)
    replay = store.claim("wh-1", "fp", 30)
    assert replay == Entry("fp", 403, body)
    assert replay is not None and replay.done
    assert type(replay.body) is bytes
    assert store.get("wh-1") == Entry("fp", 403, body)


def test_answers_stored_soon_are_seen_at_once_here_and_after_flush_elsewhere(
    harness: Harness, tmp_path: Any
) -> None:
    """What the pipeline does: reply first, store the answer a moment later. This store
    sees the answer at once; another worker's store (a second instance on the same file
    or server) sees it once it is written; a batch bigger than one SQLite statement
    (500 answers) is written whole."""
    store = harness.store
    keys = [f"soon-{i}" for i in range(1200)]
    for key in keys:
        assert store.claim(key, "fp", 30) is None
    for i, key in enumerate(keys):
        store.complete_soon(key, "fp", 200, f"answer {i}".encode(), 60)
    assert store.get("soon-7") == Entry("fp", 200, b"answer 7")
    assert store.claim("soon-7", "fp", 30) == Entry("fp", 200, b"answer 7")
    assert store.flush(10)
    if harness.kind == "memory":
        return  # one process only: there is no other worker's view
    url = store.url if harness.kind == "redis" else f"sqlite:///{tmp_path}/idem.db"
    other = open_store(url, clock=harness.clock) if harness.clock else open_store(url)
    try:
        for i, key in enumerate(keys):
            assert other.get(key) == Entry("fp", 200, f"answer {i}".encode()), key
    finally:
        other.close()


def test_large_body_round_trips(harness: Harness) -> None:
    body = os.urandom(512 * 1024)
    assert harness.store.claim("big", "fp", 30) is None
    harness.store.complete("big", "fp", 200, body, 60)
    got = harness.store.get("big")
    assert got is not None and got.body == body


def test_second_claim_returns_pending_entry(harness: Harness) -> None:
    store = harness.store
    assert store.claim("wh-1", "fp", 30) is None
    entry = store.claim("wh-1", "fp", 30)
    assert entry == Entry("fp", None, None)
    assert entry is not None and not entry.done
    assert store.get("wh-1") == entry


def test_get_missing_is_none(harness: Harness) -> None:
    assert harness.store.get("nope") is None


def test_keys_are_independent(harness: Harness) -> None:
    store = harness.store
    keys = ["a", "A", "a ", "ключ", "with:colons:*", "x" * 300, ""]
    for key in keys:
        assert store.claim(key, f"fp-{key}", 30) is None
    for key in keys:
        assert store.get(key) == Entry(f"fp-{key}", None, None)


def test_release_lets_a_retry_claim(harness: Harness) -> None:
    store = harness.store
    assert store.claim("wh-1", "fp", 30) is None
    store.release("wh-1", "fp")
    assert store.get("wh-1") is None
    assert store.claim("wh-1", "fp", 30) is None


def test_release_with_other_fingerprint_does_nothing(harness: Harness) -> None:
    store = harness.store
    assert store.claim("wh-1", "fp", 30) is None
    store.release("wh-1", "other")
    assert store.get("wh-1") == Entry("fp", None, None)
    assert store.claim("wh-1", "fp", 30) == Entry("fp", None, None)


def test_release_does_not_delete_a_result(harness: Harness) -> None:
    store = harness.store
    assert store.claim("wh-1", "fp", 30) is None
    store.complete("wh-1", "fp", 200, b"ok", 60)
    store.release("wh-1", "fp")
    assert store.get("wh-1") == Entry("fp", 200, b"ok")


def test_release_of_missing_key_is_harmless(harness: Harness) -> None:
    harness.store.release("never-claimed", "fp")
    assert harness.store.get("never-claimed") is None


def test_claim_expiry_lets_a_retry_claim(harness: Harness) -> None:
    store = harness.store
    assert store.claim("wh-1", "fp-dead-worker", SHORT_TTL) is None
    assert store.claim("wh-1", "fp", SHORT_TTL) == Entry("fp-dead-worker", None, None)
    harness.wait(OUTLAST)
    assert store.get("wh-1") is None
    assert store.claim("wh-1", "fp", 30) is None
    assert store.get("wh-1") == Entry("fp", None, None)


def test_result_ttl_expiry(harness: Harness) -> None:
    store = harness.store
    assert store.claim("wh-1", "fp", 30) is None
    store.complete("wh-1", "fp", 200, b"ok", SHORT_TTL)
    assert store.get("wh-1") == Entry("fp", 200, b"ok")
    harness.wait(OUTLAST)
    assert store.get("wh-1") is None
    assert store.claim("wh-1", "fp", 30) is None


def test_result_outlives_claim_ttl(harness: Harness) -> None:
    store = harness.store
    assert store.claim("wh-1", "fp", SHORT_TTL) is None
    store.complete("wh-1", "fp", 200, b"ok", 60)
    harness.wait(OUTLAST)
    assert store.claim("wh-1", "fp", 30) == Entry("fp", 200, b"ok")


def test_fingerprint_is_kept(harness: Harness) -> None:
    store = harness.store
    assert store.claim("wh-1", "fp-first", 30) is None
    assert store.claim("wh-1", "fp-second", 30) == Entry("fp-first", None, None)
    store.complete("wh-1", "fp-first", 200, b"first", 60)
    assert store.claim("wh-1", "fp-second", 30) == Entry("fp-first", 200, b"first")
    store.release("wh-1", "fp-second")
    assert store.get("wh-1") == Entry("fp-first", 200, b"first")


def test_counters(harness: Harness) -> None:
    store = harness.store
    assert store.counters("messages") == {}
    assert store.incr("messages", "messaging:general") == 1
    assert store.incr("messages", "messaging:general") == 2
    assert store.incr("messages", "messaging:random", 5) == 5
    assert store.incr("messages", "messaging:random", -2) == 3
    assert store.incr("other", "messaging:general") == 1
    assert store.incr("messages", "caf\u00e9") == 1
    assert store.counters("messages") == {
        "messaging:general": 2,
        "messaging:random": 3,
        "caf\u00e9": 1,
    }
    assert store.counters("other") == {"messaging:general": 1}


def test_counters_do_not_expire(harness: Harness) -> None:
    harness.store.incr("n", "f")
    harness.wait(OUTLAST)
    assert harness.store.counters("n") == {"f": 1}


def test_concurrent_threads_single_owner(harness: Harness) -> None:
    store = harness.store
    owners: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(12)

    def worker(n: int) -> None:
        barrier.wait()
        try:
            for i in range(20):
                if store.claim(f"k{i}", "fp", 30) is None:
                    owners.append(i)
            store.incr("threads", "count")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors
    assert sorted(owners) == list(range(20))
    assert store.counters("threads") == {"count": 12}


def test_ping_close_and_url(harness: Harness) -> None:
    harness.store.ping()
    prefix = {"memory": "memory://", "sqlite": "sqlite:///", "redis": "redis://"}[harness.kind]
    assert harness.store.url.startswith(prefix)
    assert harness.store.url in repr(harness.store)
    harness.store.close()
    harness.store.close()


# ---------------------------------------------------------------------------
# Stateful comparison with a dict model


class StoreMachine(RuleBasedStateMachine):
    """Random claim/complete/release/get/incr sequences versus a dict model."""

    keys = st.sampled_from(["a", "b", "c"])
    fingerprints = st.sampled_from(["f1", "f2"])
    ttls = st.sampled_from([1.0, 2.5, 5.0])

    def __init__(self, make: Callable[[FakeClock | None], Store], uses_clock: bool) -> None:
        super().__init__()
        self.clock = FakeClock() if uses_clock else None
        self.store = make(self.clock)
        self.model: dict[str, tuple[Entry, float]] = {}
        self.counts: dict[str, dict[str, int]] = {}

    def now(self) -> float:
        return self.clock() if self.clock is not None else 0.0

    def live(self, key: str) -> Entry | None:
        item = self.model.get(key)
        if item is None or item[1] <= self.now():
            self.model.pop(key, None)
            return None
        return item[0]

    def ttl(self, ttl: float) -> float:
        # Without a fake clock (Redis) nothing may expire during an example.
        return ttl if self.clock is not None else 600.0

    @rule(key=keys, fp=fingerprints, ttl=ttls)
    def claim(self, key: str, fp: str, ttl: float) -> None:
        expected = self.live(key)
        got = self.store.claim(key, fp, self.ttl(ttl))
        assert got == expected
        if expected is None:
            self.model[key] = (Entry(fp, None, None), self.now() + self.ttl(ttl))

    @rule(
        key=keys,
        fp=fingerprints,
        status=st.sampled_from([200, 201, 403, 500]),
        body=st.binary(max_size=24),
        ttl=ttls,
    )
    def complete(self, key: str, fp: str, status: int, body: bytes, ttl: float) -> None:
        self.store.complete(key, fp, status, body, self.ttl(ttl))
        self.model[key] = (Entry(fp, status, body), self.now() + self.ttl(ttl))

    @rule(key=keys, fp=fingerprints)
    def release(self, key: str, fp: str) -> None:
        self.store.release(key, fp)
        entry = self.live(key)
        if entry is not None and not entry.done and entry.fingerprint == fp:
            del self.model[key]

    @rule(key=keys)
    def get(self, key: str) -> None:
        assert self.store.get(key) == self.live(key)

    @precondition(lambda self: self.clock is not None)
    @rule(seconds=st.sampled_from([0.5, 1.0, 2.5, 3.0]))
    def advance(self, seconds: float) -> None:
        assert self.clock is not None
        self.clock.advance(seconds)

    @precondition(lambda self: isinstance(self.store, SQLiteStore) and self.clock is not None)
    @rule()
    def maintain(self) -> None:
        # the answers' thread's housekeeping (expired rows, the size cap), at any moment
        assert isinstance(self.store, SQLiteStore)
        self.store.cleanup()
        self.store.enforce_size()

    @rule(
        name=st.sampled_from(["n1", "n2"]),
        field=st.sampled_from(["x", "y"]),
        amount=st.integers(-3, 3),
    )
    def incr(self, name: str, field: str, amount: int) -> None:
        group = self.counts.setdefault(name, {})
        group[field] = group.get(field, 0) + amount
        assert self.store.incr(name, field, amount) == group[field]

    @invariant()
    def counters_match(self) -> None:
        for name in ("n1", "n2"):
            assert self.store.counters(name) == self.counts.get(name, {})

    def teardown(self) -> None:
        self.store.close()


STATEFUL_SETTINGS = settings(
    max_examples=40,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.mark.parametrize("kind", ["memory", "sqlite", "redis"])
def test_store_matches_model(
    kind: str, request: pytest.FixtureRequest, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    counter = iter(range(10**9))
    make: Callable[[FakeClock | None], Store]
    if kind == "memory":

        def make(clock: FakeClock | None) -> Store:
            assert clock is not None
            return open_store("memory://?max_entries=100", clock=clock)

    elif kind == "sqlite":

        def make(clock: FakeClock | None) -> Store:
            assert clock is not None
            return SQLiteStore(str(tmp_path / f"model-{next(counter)}.db"), clock=clock)

    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        url = request.getfixturevalue("redis_url")

        def make(clock: FakeClock | None) -> Store:
            server.flushall()
            return open_store(url)

    # Hypothesis documents that any factory returning a machine is accepted.
    run_state_machine_as_test(
        lambda: StoreMachine(make, uses_clock=kind != "redis"),  # type: ignore[arg-type]
        settings=STATEFUL_SETTINGS,
    )


# ---------------------------------------------------------------------------
# Many processes x many threads claiming the same keys

N_PROCESSES = 8
N_THREADS = 4
N_KEYS = 25


def _race_in_child(store: Store, barrier: Any, results: Any, done: Any) -> None:
    """Run in a forked child: N_THREADS threads (main thread included) claim every
    key; a barrier shared by all processes lines every contender up on each key. The
    child reports, then lives on holding its claims until ``done`` is set."""
    owned: list[str] = []
    errors: list[str] = []
    lock = threading.Lock()

    def run() -> None:
        for i in range(N_KEYS):
            try:
                barrier.wait(timeout=30)
                if store.claim(f"race-{i}", f"fp-{os.getpid()}", 30) is None:
                    with lock:
                        owned.append(f"race-{i}")
                store.incr("race", "claims")
            except Exception as exc:
                with lock:
                    errors.append(repr(exc))

    threads = [threading.Thread(target=run) for _ in range(N_THREADS - 1)]
    for t in threads:
        t.start()
    run()
    for t in threads:
        t.join()
    results.put((os.getpid(), owned, errors))
    done.wait(timeout=60)


def _race(store: Store) -> None:
    # Use the store in the parent first, so that children inherit open
    # connections they must not reuse.
    assert store.claim("warmup", "fp", 30) is None
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(N_PROCESSES * N_THREADS)
    results = ctx.Queue()
    done = ctx.Event()
    procs = [
        ctx.Process(target=_race_in_child, args=(store, barrier, results, done))
        for _ in range(N_PROCESSES)
    ]
    for p in procs:
        p.start()
    try:
        outcomes = [results.get(timeout=60) for _ in procs]
        errors = [e for _, _, errs in outcomes for e in errs]
        assert errors == []
        owned = sorted(key for _, keys, _ in outcomes for key in keys)
        assert owned == sorted(f"race-{i}" for i in range(N_KEYS))
        # While the children live, their claims hold, with the body each is for: a copy
        # can be told from a different body while the first delivery runs.
        for pid, keys, _ in outcomes:
            for key in keys:
                assert store.get(key) == Entry(f"fp-{pid}", None, None)
                assert store.claim(key, "parent", 30) == Entry(f"fp-{pid}", None, None)
    finally:
        done.set()
    for p in procs:
        p.join(timeout=10)
        assert p.exitcode == 0
    for _, keys, _ in outcomes:
        for key in keys:  # expire after claim_ttl
            assert store.get(key) is not None
    assert store.counters("race") == {"claims": N_PROCESSES * N_THREADS * N_KEYS}
    # The parent's own connection still works.
    assert store.claim("warmup", "fp", 30) == Entry("fp", None, None)


@pytest.mark.skipif(sys.platform == "win32", reason="needs fork")
def test_sqlite_many_processes_single_owner(tmp_path: Any) -> None:
    store = open_store(f"sqlite:///{tmp_path}/race.db")
    try:
        _race(store)
    finally:
        store.close()


@pytest.mark.skipif(sys.platform == "win32", reason="needs fork")
def test_redis_many_processes_single_owner(redis_server: RedisServer, redis_url: str) -> None:
    store = open_store(redis_url)
    try:
        _race(store)
    finally:
        store.close()


# ---------------------------------------------------------------------------
# Outages


def _all_calls(store: Store) -> dict[str, Callable[[], object]]:
    return {
        "claim": lambda: store.claim("k", "fp", 30),
        "complete": lambda: store.complete("k", "fp", 200, b"ok", 60),
        "release": lambda: store.release("k", "fp"),
        "get": lambda: store.get("k"),
        "ping": store.ping,
        "incr": lambda: store.incr("n", "f"),
        "counters": lambda: store.counters("n"),
    }


def test_redis_outage_fails_fast_and_recovers(redis_server: RedisServer, redis_url: str) -> None:
    server = redis_server
    store = open_store(redis_url)
    try:
        assert store.claim("k", "fp", 30) is None
        server.stop()
        for name, call in _all_calls(store).items():
            started = time.monotonic()
            with pytest.raises(StoreUnavailable) as info:
                call()
            elapsed = time.monotonic() - started
            assert elapsed < 1.0, f"{name} took {elapsed:.2f}s"
            assert info.value.__cause__ is not None, name
        server.start()
        store.ping()
        assert store.get("k") is None  # no persistence: the restart lost the claim
        assert store.claim("k", "fp", 30) is None
        store.complete("k", "fp", 200, b"\x00ok", 60)
        assert store.get("k") == Entry("fp", 200, b"\x00ok")
        assert store.incr("n", "f") == 1
    finally:
        server.start()
        store.close()


def test_redis_blackholed_host_fails_fast() -> None:
    # A listening socket that never answers: the read timeout must kick in.
    with _silent_server() as port:
        store = open_store(f"redis://127.0.0.1:{port}/0")
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            store.get("k")
        assert time.monotonic() - started < 1.0
        store.close()


class _silent_server:
    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        return int(self.sock.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


def test_redis_boots_while_server_is_down() -> None:
    from services import find_free_port

    url = f"redis://:s3cret@127.0.0.1:{find_free_port()}/0"
    store = open_store(url)  # must not raise
    assert "s3cret" not in store.url
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as info:
        store.ping()
    assert time.monotonic() - started < 1.0
    assert "s3cret" not in str(info.value)


def test_redis_unreadable_value_is_unavailable(redis_server: RedisServer, redis_url: str) -> None:
    redis_server.command("SET", "botkit:idem:k", "garbage")
    store = open_store(redis_url)
    with pytest.raises(StoreUnavailable):
        store.get("k")
    store.close()


def test_redis_error_reply_is_unavailable(redis_server: RedisServer, redis_url: str) -> None:
    store = open_store(redis_url)
    try:
        assert store.claim("before", "fp", 30) is None
        redis_server.command("CONFIG", "SET", "maxmemory", "1")  # every write: -OOM
        try:
            for call in (
                lambda: store.claim("k", "fp", 30),
                lambda: store.complete("k", "fp", 200, b"ok", 60),
            ):
                with pytest.raises(StoreUnavailable, match="maxmemory"):
                    call()
        finally:
            redis_server.command("CONFIG", "SET", "maxmemory", "0")
        assert store.claim("k", "fp", 30) is None
        assert store.claim("k", "fp2", 30) == Entry("fp", None, None)
    finally:
        store.close()


def _calls_of(server: RedisServer, command: str) -> int:
    """How many times redis-server ran ``command`` since its last CONFIG RESETSTAT."""
    import redis

    info = redis.Redis(host=server.host, port=server.port).info("commandstats")
    return int(info.get(f"cmdstat_{command}", {}).get("calls", 0))


def test_redis_hung_costs_one_socket_timeout_and_no_retry(
    redis_server: RedisServer, redis_url: str
) -> None:
    # redis-py 6+ retries a timed-out command (3 times, 10 in 8.x, with backoff): a hung
    # Redis must cost one timeout, and a command must reach Redis once.
    store = open_store(redis_url)
    try:
        assert store.claim("warm", "fp", 30) is None  # a connection in the pool
        redis_server.command("CONFIG", "RESETSTAT")
        with hung(redis_server):
            for name in ("claim", "get"):
                started = time.monotonic()
                with pytest.raises(StoreUnavailable):
                    _all_calls(store)[name]()
                elapsed = time.monotonic() - started
                assert elapsed < 0.6, f"{name} took {elapsed:.2f}s (timeout 0.25 s)"
        deadline = time.monotonic() + 5
        while _calls_of(redis_server, "set") < 1 and time.monotonic() < deadline:
            time.sleep(0.02)  # the commands sent while it was stopped run now
        time.sleep(0.3)  # (and a retry sent after the first, if there were one)
        assert _calls_of(redis_server, "set") == 1
        # the GET went on a new connection, whose handshake timed out first
        assert _calls_of(redis_server, "get") <= 1
    finally:
        store.close()


def test_redis_hung_requests_do_not_wait_for_each_other(
    redis_server: RedisServer, redis_url: str
) -> None:
    # Each thread pays its own timeout, in parallel: none queues behind another's
    # (a pool that blocks for a free connection, claims batched behind a stuck one);
    # once one has timed out, the others do not wait out theirs.
    store = open_store(redis_url)
    try:
        assert store.claim("warm", "fp", 30) is None
        times: list[float] = []
        lock = threading.Lock()

        def claim(i: int) -> None:
            started = time.monotonic()
            with pytest.raises(StoreUnavailable):
                store.claim(f"k{i}", "fp", 30)
            with lock:
                times.append(time.monotonic() - started)

        with hung(redis_server):
            threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(10)
            assert len(times) == 8
            assert max(times) < 0.6, f"slowest claim {max(times):.2f}s (timeout 0.25 s)"
            # Now Redis is known to be silent: one claim at a time asks it again (and
            # waits out its timeout), the others fail at once.
            times.clear()
            threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(10)
            assert len(times) == 8
            assert sorted(times)[-2] < 0.1, f"claims took {sorted(times)}"
        deadline = time.monotonic() + 2
        while True:  # back within one probe of it resuming
            try:
                assert store.claim("after", "fp", 30) is None
                break
            except StoreUnavailable:
                assert time.monotonic() < deadline
                time.sleep(0.02)
    finally:
        store.close()


def test_redis_claim_sent_to_a_hung_redis_is_released_after(
    redis_server: RedisServer, redis_url: str
) -> None:
    # Redis runs the SET NX sent while it was stopped once it resumes. That claim must
    # not hold off Stream's retry of the webhook (push: 503 "in flight" until it
    # expired), whichever worker the retry reaches: the store releases it by itself.
    store = open_store(redis_url)
    other = open_store(redis_url)  # another worker
    try:
        assert store.claim("warm", "fp", 30) is None
        assert other.claim("theirs", "fp", 30) is None  # a claim of another worker
        redis_server.command("CONFIG", "RESETSTAT")
        with hung(redis_server):
            for key in ("k", "theirs"):
                with pytest.raises(StoreUnavailable):
                    store.claim(key, "fp", 30)
        deadline = time.monotonic() + 5
        while _calls_of(redis_server, "evalsha") < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.1)
        assert _calls_of(redis_server, "set") >= 1  # Redis did make the claim of "k"
        assert other.claim("k", "fp", 30) is None  # and it is gone: the retry runs
        # a claim with the same body, but another delivery's, is left alone
        assert other.get("theirs") == Entry("fp", None, None)
    finally:
        store.close()
        other.close()


class _ReplyDropper:
    """A TCP proxy to Redis that, when ``drop`` is set, closes the connection instead of
    passing on the next reply: what was sent ran, the client never hears of it."""

    def __init__(self, server: RedisServer) -> None:
        import socket

        self.target = (server.host, server.port)
        self.drop = False
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.sockets: list[Any] = [self.listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket

        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, True), daemon=True).start()

    def _pipe(self, source: Any, sink: Any, replies: bool) -> None:
        import socket

        try:
            while data := source.recv(65536):
                if replies and self.drop:
                    self.drop = False
                    for sock in (source, sink):  # (shutdown: the other thread is in recv)
                        sock.shutdown(socket.SHUT_RDWR)
                    return
                sink.sendall(data)
        except OSError:
            pass

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()


def test_redis_claim_whose_reply_was_lost_is_still_ours(
    redis_server: RedisServer, redis_url: str
) -> None:
    # The SET NX landed, the connection dropped before its reply, and the claim is sent
    # again on a new connection: it finds its own pending value (its token). Taking that
    # for a copy in flight would leave the webhook unanswered until the claim expired.
    proxy = _ReplyDropper(redis_server)
    # (timeouts of 2 s: the proxy is Python threads on a busy machine)
    store = open_store(
        f"redis://127.0.0.1:{proxy.port}/0?socket_timeout=2&socket_connect_timeout=2"
    )
    try:
        assert store.claim("before", "fp", 30) is None  # connected
        proxy.drop = True
        assert store.claim("k", "fp", 30) is None
        assert store.get("k") == Entry("fp", None, None)  # made once, pending
        assert store.claim("k", "fp", 30) == Entry("fp", None, None)  # a copy waits
    finally:
        store.close()
        proxy.close()


def test_sqlite_lock_error_is_unavailable(tmp_path: Any) -> None:
    store = open_store(f"sqlite:///{tmp_path}/locked.db?busy_timeout=50")
    blocker = sqlite3.connect(str(tmp_path / "locked.db"), isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        started = time.monotonic()
        for name in ("claim", "complete", "incr"):
            with pytest.raises(StoreUnavailable) as info:
                _all_calls(store)[name]()
            assert isinstance(info.value.__cause__, sqlite3.Error), name
        assert time.monotonic() - started < 2.0
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    store.complete("k", "fp", 200, b"ok", 60)  # works again once the lock is gone
    assert store.claim("k", "fp", 30) == Entry("fp", 200, b"ok")
    store.close()


def test_sqlite_file_removed_under_running_store(tmp_path: Any) -> None:
    import shutil

    directory = tmp_path / "gone"
    store = open_store(f"sqlite:///{directory}/x.db")
    store.close()
    shutil.rmtree(directory)
    (tmp_path / "gone").write_text("now a file")
    with pytest.raises(StoreUnavailable):
        store.claim("k", "fp", 30)


# ---------------------------------------------------------------------------
# Store-specific behaviour


def test_memory_lru_is_bounded() -> None:
    clock = FakeClock()
    store = open_store("memory://?max_entries=3", clock=clock)
    assert isinstance(store, MemoryStore)
    for key in "abc":
        assert store.claim(key, "fp", 30) is None
    assert store.get("a") is not None  # touch "a": "b" is now the oldest
    assert store.claim("d", "fp", 30) is None
    assert len(store) == 3
    assert store.get("b") is None
    assert {k for k in "acd" if store.get(k) is not None} == {"a", "c", "d"}


def test_memory_store_is_bounded_in_bytes_too() -> None:
    clock = FakeClock()
    store = open_store("memory://?max_bytes=5000", clock=clock)
    assert isinstance(store, MemoryStore)
    for key in "abcdef":
        assert store.claim(key, "fp", 30) is None
        store.complete(key, "fp", 200, b"x" * 1000, 60)
    # six answers of about 1400 bytes do not fit in 5000: the oldest went first
    assert store.get("a") is None and store.get("b") is None
    assert all(store.get(k) is not None for k in "def")
    assert store._bytes <= 5000
    # replacing and releasing keep the count right
    store.complete("f", "fp", 200, b"y", 60)
    assert store.claim("g", "fp2", 30) is None
    store.release("g", "fp2")
    overhead = ENTRY_OVERHEAD
    assert store._bytes == sum(overhead + len(item[2] or b"") for item in store._entries.values())


def test_sqlite_is_wal_and_cleans_up(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    store = open_store(f"sqlite:///{tmp_path}/c.db", clock=clock)
    assert isinstance(store, SQLiteStore)
    db = sqlite3.connect(str(tmp_path / "c.db"))
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # A cleanup every 10 claims instead of 1000: a setting of the backend, not of the URL.
    monkeypatch.setattr(sqlite_backend, "SQLITE_CLEANUP_EVERY", 10)
    for i in range(9):
        assert store.claim(f"old-{i}", "fp", 1) is None
    store.complete("old-0", "fp", 200, b"done", 2)
    store.complete("kept", "fp", 200, b"kept", 60)

    def rows() -> list[tuple[str, str, int | None]]:
        return sorted(db.execute("SELECT key, fingerprint, status FROM botkit_idempotency"))

    # a claim is a pending row with its body's fingerprint; the answer replaces it
    assert rows() == sorted(
        [("kept", "fp", 200), ("old-0", "fp", 200)]
        + [(f"old-{i}", "fp", None) for i in range(1, 9)]
    )
    clock.advance(5)
    assert store.claim("new", "fp", 30) is None  # 10th claim asks for the cleanup
    assert store.flush(5)  # which runs on the store's own thread
    assert rows() == [("kept", "fp", 200), ("new", "fp", None)]
    db.close()
    store.close()


# The schema of the store of fcntl claim locks (before issue 20), as it wrote it.
_OLD_SCHEMA = """
CREATE TABLE botkit_idempotency (
    key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, status INTEGER, body BLOB,
    expires_at REAL NOT NULL
);
CREATE INDEX botkit_idempotency_expires ON botkit_idempotency (expires_at);
CREATE TABLE botkit_claims (
    key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, expires_at REAL NOT NULL
) WITHOUT ROWID;
CREATE TRIGGER botkit_claim_answered AFTER INSERT ON botkit_idempotency
BEGIN
    DELETE FROM botkit_claims WHERE key = NEW.key;
END;
"""


def test_sqlite_file_of_the_old_store_is_taken_over(tmp_path: Any) -> None:
    """A file written by the store of claim locks: its answers are still replayed, and
    what only that store used (a trigger run on every insert, a table, the mmap'd
    ``-claims`` file) is removed."""
    path = tmp_path / "old.db"
    db = sqlite3.connect(str(path))
    db.executescript(_OLD_SCHEMA)
    db.execute(
        "INSERT INTO botkit_idempotency VALUES ('done', 'fp', 200, ?, ?)",
        (b"stored answer", time.time() + 60),
    )
    db.commit()
    (tmp_path / "old.db-claims").write_bytes(b"\0" * 4096)
    store = open_store(f"sqlite:///{path}")
    try:
        assert store.claim("done", "fp", 30) == Entry("fp", 200, b"stored answer")
        assert store.claim("new", "fp", 30) is None
        names = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        assert "botkit_claims" not in names and "botkit_claim_answered" not in names
        assert not (tmp_path / "old.db-claims").exists()
    finally:
        db.close()
        store.close()


def test_sqlite_connection_per_thread(tmp_path: Any) -> None:
    store = open_store(f"sqlite:///{tmp_path}/t.db")
    assert isinstance(store, SQLiteStore)
    conns: list[sqlite3.Connection] = []

    def grab() -> None:
        conns.append(store._connect())

    grab()
    t = threading.Thread(target=grab)
    t.start()
    t.join()
    assert conns[0] is not conns[1]
    assert store._connect() is conns[0]
    store.close()
    assert store.claim("k", "fp", 30) is None  # reopens lazily after close()
    store.close()


_RETAINED_SCRIPT = """
import sys, time
from botkit.runtime.stores import open_store
from botkit.runtime.stores.base import Answer

def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) // 1024

store = open_store("sqlite:///" + sys.argv[1])
store.claim("warm", "fp", 30)
before = rss_mb()
body = b"b" * 65536
for n in range(1, 65):  # 64 batch sizes, 130 MB of bodies in all
    store._write_answers([Answer(f"k{n}-{i}", "fp", 200, body, time.time() + 60) for i in range(n)])
assert store.get("k64-63").body == body
print(rss_mb() - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def _blocked_writer(max_wait: float) -> tuple[AnswerWriter, threading.Event, list[int]]:
    """An answer writer whose writes wait for the event it returns; 100 bytes of queued
    bodies at most."""
    go_on = threading.Event()
    written: list[int] = []

    def write(batch: list[Any]) -> None:
        assert go_on.wait(10)
        written.append(len(batch))

    writer = AnswerWriter(write, "test-answers")
    writer.max_waiting_bytes = 100
    writer.max_wait = max_wait
    return writer, go_on, written


def _answer(key: str) -> Any:
    return Answer(key, "fp", 200, b"x" * 60, 1e12)


def test_answers_piling_up_behind_a_slow_write_hold_the_requests_back() -> None:
    writer, go_on, written = _blocked_writer(max_wait=10)
    writer.put(_answer("a"))
    deadline = time.monotonic() + 5
    while writer._queued:  # the thread took "a", and its write waits
        assert time.monotonic() < deadline
        time.sleep(0.001)
    writer.put(_answer("b"))
    writer.put(_answer("c"))  # 120 bytes queued: past the bound
    fourth = threading.Thread(target=writer.put, args=(_answer("d"),))
    fourth.start()
    fourth.join(0.2)
    assert fourth.is_alive()  # waits for room
    assert writer.unwritten_entry("d") is None
    go_on.set()
    fourth.join(5)
    assert not fourth.is_alive()
    assert writer.flush(5)
    assert sum(written) == 4


def test_an_answer_waits_for_room_at_most_max_wait_then_is_queued_anyway() -> None:
    writer, go_on, _ = _blocked_writer(max_wait=0.05)
    writer.put(_answer("a"))
    deadline = time.monotonic() + 5
    while writer._queued:
        assert time.monotonic() < deadline
        time.sleep(0.001)
    for key in "bcd":
        writer.put(_answer(key))
    assert writer.unwritten_entry("d") == Entry("fp", 200, b"x" * 60)
    go_on.set()
    assert writer.flush(5)


def test_sqlite_answer_batches_do_not_keep_their_bodies(tmp_path: Any) -> None:
    """A statement cache keeps the values last bound to each statement: with one
    statement per batch size, it kept every body of the last batch of each size."""
    import subprocess

    out = subprocess.run(
        [sys.executable, "-c", _RETAINED_SCRIPT, str(tmp_path / "r.db")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) < 40  # 130 when the bodies were kept


@pytest.mark.skipif(sys.platform == "win32", reason="needs fork")
def test_sqlite_child_never_reuses_parent_connection(tmp_path: Any) -> None:
    store = open_store(f"sqlite:///{tmp_path}/fork.db")
    assert isinstance(store, SQLiteStore)
    parent_conn = store._connect()
    assert store.claim("parents", "parent", 30) is None
    pid = os.fork()
    if pid == 0:  # child: report through the exit code only
        ok = False
        try:
            child_conn = store._connect()
            ok = (
                child_conn is not parent_conn
                # parked, never closed: SQLite says not to use or close it in a child
                and parent_conn in sqlite_backend._INHERITED_CONNECTIONS
                # the parent's claim, with the body it is for
                and store.claim("parents", "child", 30) == Entry("parent", None, None)
                and store.claim("k", "child", 30) is None
                and store.claim("left", "child", 30) is None
            )
            store.complete("k", "child", 200, b"from the child", 60)
        finally:
            os._exit(0 if ok else 1)  # without answering "left"
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert store._connect() is parent_conn
    assert store.get("k") == Entry("child", 200, b"from the child")
    # the claim the child left unanswered holds until its TTL (BOTKIT_CLAIM_TTL)
    assert store.get("left") == Entry("child", None, None)
    assert store.get("parents") == Entry("parent", None, None)
    store.close()


@given(
    fingerprint=st.text(max_size=40),
    status=st.integers(-(2**31), 2**31 - 1),
    body=st.binary(max_size=200),
)
def test_redis_encoding_round_trips(fingerprint: str, status: int, body: bytes) -> None:
    answer = encode_answer(fingerprint, status, body)
    assert decode_entry(answer) == Entry(fingerprint, status, body)
    assert decode_entry(encode_pending(fingerprint)) == Entry(fingerprint, None, None)


def test_redis_encoding_is_compact() -> None:
    assert encode_pending("abc", b"0123456789abcdef") == b"P0123456789abcdefabc"
    assert encode_pending("abc") != encode_pending("abc")  # a token per claim
    assert encode_answer("abc", 200, b"{}") == b"D\x00\x00\x00\xc8\x00\x00\x00\x03abc{}"


# ---------------------------------------------------------------------------
# open_store configuration


def test_default_is_sqlite_in_instance_path(tmp_path: Any) -> None:
    instance = tmp_path / "instance-dir"
    store = open_store(None, instance_path=str(instance))
    assert isinstance(store, SQLiteStore)
    assert (instance / "botkit.sqlite3").exists()
    assert store.url == f"sqlite:///{instance}/botkit.sqlite3"
    store.close()


def test_default_relative_instance_path(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store(None)
    assert store.url == "sqlite:///instance/botkit.sqlite3"
    assert (tmp_path / "instance" / "botkit.sqlite3").exists()
    store.close()


def test_sqlite_relative_and_absolute_paths(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    rel = open_store("sqlite:///data/rel.db")
    assert (tmp_path / "data" / "rel.db").exists()
    absolute = open_store(f"sqlite:////{str(tmp_path).lstrip('/')}/abs/abs.db")
    assert (tmp_path / "abs" / "abs.db").exists()
    rel.close()
    absolute.close()


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/x",
        "postgres://user:s3cret@db.example.com/bot",
        "sqlite://host/x.db",
        "sqlite:///:memory:",
        "sqlite://",
        "sqlite:///x.db?busy_timeout=soon",
        "sqlite:///x.db?journal=off",
        "memory://host",
        "memory://?max_entries=0",
        "memory://?max_entries=lots",
        "memory://?size=3",
        "redis://localhost:notaport/0",
        "redis://localhost:99999/0",
        "redis://:s3cret@localhost/notadb",
        "redis://localhost/0?socket_timeout=fast",
        "redis://localhost/0?socket_timeout=-1",
        "redis://localhost/0?no_such_option=1",
        "unix://",
    ],
)
def test_bad_urls_are_config_errors(
    url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StoreConfigError) as info:
        open_store(url)
    message = str(info.value)
    assert "s3cret" not in message
    assert url.split("://")[0] in message
    if "s3cret" in url:
        assert "***" in message
    if url.startswith(("ftp", "postgres")):
        assert "memory://" in message and "sqlite:///" in message and "redis://" in message


def test_unwritable_sqlite_path_is_config_error(tmp_path: Any) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory")
    url = f"sqlite:///{a_file}/sub/botkit.sqlite3"
    with pytest.raises(StoreConfigError, match="a-file/sub"):
        open_store(url)
    with pytest.raises(StoreConfigError):
        open_store(f"sqlite:///{tmp_path}")  # a directory, not a file


def test_redis_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(StoreConfigError, match=r"pip install botkit\[redis\]"):
        open_store("redis://localhost:6379/0")


def test_redis_url_forms_accepted() -> None:
    for url in (
        "redis://localhost",
        "redis://localhost:6379",
        "redis://localhost:6379/",
        "redis://user:pw@localhost:6379/2?socket_timeout=0.5",
        "rediss://localhost:6380/0",
        "unix:///run/redis/redis.sock?db=1",
    ):
        store = open_store(url)
        assert isinstance(store, RedisStore)
        assert "pw@" not in store.url
        store.close()


# ---------------------------------------------------------------------------
# Bounded storage: BOTKIT_STORE_MAX_ANSWER_BYTES and BOTKIT_STORE_MAX_BYTES


@pytest.mark.parametrize("kind", ["memory", "sqlite", "redis"])
def test_an_answer_over_the_cap_is_kept_without_its_body(
    kind: str, tmp_path: Any, request: pytest.FixtureRequest
) -> None:
    urls = {"memory": "memory://", "sqlite": f"sqlite:///{tmp_path}/cap.db"}
    url = request.getfixturevalue("redis_url") if kind == "redis" else urls[kind]
    store = open_store(url, max_answer_bytes=100)
    try:
        for key, complete in (("now", store.complete), ("soon", store.complete_soon)):
            assert store.claim(key, "fp", 30) is None
            complete(key, "fp", 200, b"x" * 101, 60)
            assert store.flush(5)
            # answered, without its body: a copy gets the in-flight answer, and the
            # handler does not run again
            assert store.get(key) == Entry("fp", 200, None)
            assert store.claim(key, "fp", 30) == Entry("fp", 200, None)
        assert store.claim("small", "fp", 30) is None
        store.complete("small", "fp", 200, b"x" * 100, 60)
        assert store.get("small") == Entry("fp", 200, b"x" * 100)
    finally:
        store.close()


def test_a_copy_of_an_answer_over_the_cap_gets_the_placeholder(tmp_path: Any) -> None:
    from botkit import Bot, CommandContext, Config
    from botkit.core.signing import KeyRing
    from botkit.testing import TestClient, command_payload, encode

    bot = Bot()
    runs: list[str] = []

    @bot.command("big", placeholder="still on it")
    def big(ctx: CommandContext) -> str:
        runs.append(ctx.args)
        return "y" * 2000

    config = Config(
        keyring=KeyRing({"k": ("s",)}),
        store_url=f"sqlite:///{tmp_path}/s.db",
        store_max_answer_bytes=1000,
    )
    body = encode(command_payload("/big once"))
    with TestClient(bot, config=config, api_key="k", secret="s") as client:
        first = client.post("/custom-commands?type=big", body, webhook_id="w1")
        assert first.status == 200 and first.json["message"]["text"] == "y" * 2000
        client.app.extensions["botkit"].runtime.store.flush(5)
        again = client.post("/custom-commands?type=big", body, webhook_id="w1", attempt=2)
    assert again.status == 200
    assert again.json["message"]["text"] == "still on it"
    assert runs == ["once"]


def test_sqlite_size_cap_evicts_expired_then_oldest_answers(tmp_path: Any) -> None:
    clock = FakeClock()
    store = SQLiteStore(str(tmp_path / "size.db"), clock=clock, max_bytes=300 * 1024)
    try:
        assert store.claim("pending", "fp", 3600) is None  # a claim in flight stays
        for i in range(20):
            store.complete(f"expiring-{i}", "fp", 200, b"e" * 4096, 5)
        clock.advance(10)  # those have expired, none cleaned up yet
        for i in range(100):
            store.complete(f"answer-{i:03}", "fp", 200, b"a" * 4096, 3600)
            clock.advance(1)
        assert store.data_bytes() > 300 * 1024
        assert store.enforce_size() > 20
        assert store.data_bytes() <= 300 * 1024
        db = sqlite3.connect(str(tmp_path / "size.db"))
        keys = {key for (key,) in db.execute("SELECT key FROM botkit_idempotency")}
        db.close()
        assert not any(key.startswith("expiring-") for key in keys)
        kept = sorted(key for key in keys if key.startswith("answer-"))
        assert kept == [f"answer-{i:03}" for i in range(100 - len(kept), 100)]  # the newest
        assert 30 < len(kept) < 100
        assert "pending" in keys
        assert store.enforce_size() == 0  # under the cap: nothing to do
    finally:
        store.close()


def test_sqlite_size_cap_is_kept_by_the_answers_thread(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_backend, "SIZE_CHECK_EVERY", 0.0)
    store = open_store(f"sqlite:///{tmp_path}/auto.db", max_bytes=200 * 1024)
    assert isinstance(store, SQLiteStore)
    try:
        for i in range(300):
            store.complete_soon(f"k{i}", "fp", 200, b"z" * 4096, 3600)
            if i % 50 == 49:
                assert store.flush(5)
        assert store.flush(5)
        assert store.data_bytes() <= 200 * 1024 + 64 * 4096  # at most a batch over it
        assert store.get("k299") == Entry("fp", 200, b"z" * 4096)
        assert store.get("k0") is None
    finally:
        store.close()


def test_store_caps_are_settings() -> None:
    from botkit import Config, ConfigError

    env = {"BOTKIT_DEV": "1"}
    config = Config.from_env(env)
    assert (config.store_max_answer_bytes, config.store_max_bytes) == (256 * 1024, 256 << 20)
    config = Config.from_env(
        {**env, "BOTKIT_STORE_MAX_ANSWER_BYTES": "4096", "BOTKIT_STORE_MAX_BYTES": "1000000"}
    )
    assert (config.store_max_answer_bytes, config.store_max_bytes) == (4096, 1_000_000)
    with pytest.raises(ConfigError, match="BOTKIT_STORE_MAX_BYTES"):
        Config.from_env({**env, "BOTKIT_STORE_MAX_BYTES": "lots"})


def test_sqlite_file_that_is_not_a_database_is_unavailable_until_it_is_one(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_backend, "FILE_CHECK_EVERY", 0.0)  # look at every call
    path = tmp_path / "s.db"
    path.write_bytes(b"not a database at all" * 100)
    store = open_store(f"sqlite:///{path}")  # boots: the workers start, /healthz says why
    try:
        for _ in range(3):  # each call tries again, none raises anything but this
            with pytest.raises(StoreUnavailable, match="not a database"):
                store.claim("during", "fp", 30)
        with pytest.raises(StoreUnavailable):
            store.ping()
        path.unlink()  # the operator removes it: the store makes a new one
        assert store.claim("after", "fp", 30) is None
        assert store.get("after") == Entry("fp", None, None)
    finally:
        store.close()
