"""Health and metrics: /healthz with the store's and queue's state (503 when the store is
down, with a real redis-server stopped), and the Prometheus /metrics endpoint, in-process
and under two gunicorn workers in multiprocess mode."""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from server import GunicornServer, signed_post
from services import RedisServer, redis_server, redis_url  # noqa: F401

from botkit import Bot, Config, Message
from botkit.core.signing import KeyRing
from botkit.testing import TestClient, command_payload, encode

PREFIX = "/webhooks/stream"


def sample(text: str, metric: str, /, **labels: str) -> float | None:
    """The value of one sample in a Prometheus text page, or None."""
    for line in text.splitlines():
        if not line.startswith(metric + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line[: line.index("}")]))
        if found == labels:
            return float(line.rsplit(" ", 1)[1])
    return None


# -- health -------------------------------------------------------------------------------------


def make_config(store_url: str) -> Config:
    return Config(keyring=KeyRing({"k": ("s",)}), store_url=store_url)


def test_healthz_reports_store_and_queue(tmp_path: Any) -> None:
    bot = Bot()
    for url in ("memory://", f"sqlite:///{tmp_path}/h.db"):
        app = bot.create_app(make_config(url))
        response = app.test_client().get("/healthz")
        assert response.status_code == 200
        data = response.get_json()
        assert data["status"] == "ok"
        assert data["store"]["ok"] is True and data["store"]["url"].startswith(url.split(":")[0])
        assert data["queue"]["url"] == "thread://" and data["queue"]["durable"] is False


def test_healthz_503_while_redis_is_down(redis_server: RedisServer, redis_url: str) -> None:
    client = Bot().create_app(make_config(redis_url)).test_client()
    up = client.get("/healthz")
    assert up.status_code == 200, up.get_json()
    assert up.get_json()["store"] == {"url": redis_url, "ok": True}

    redis_server.stop()
    try:
        down = client.get("/healthz")
        assert down.status_code == 503
        data = down.get_json()
        assert data["status"] == "unavailable"
        assert data["store"]["ok"] is False and data["store"]["error"]
        assert data["queue"]["ok"] is True
        # a password in the store URL never shows
        secret_url = redis_url.replace("redis://", "redis://:hunter2@")
        other = Bot().create_app(make_config(secret_url)).test_client().get("/healthz")
        assert other.status_code == 503
        assert "hunter2" not in other.get_data(as_text=True)
    finally:
        redis_server.start()
    assert client.get("/healthz").status_code == 200  # recovers with Redis


# -- metrics in-process ---------------------------------------------------------------------------


@pytest.fixture
def metrics_client(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TestClient, str]]:
    monkeypatch.setenv("BOTKIT_METRICS", "1")
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.delenv("BOTKIT_METRICS_TOKEN", raising=False)
    name = f"m{uuid.uuid4().hex[:8]}"  # counters are per process: a name of our own
    bot = Bot(help_command=False)

    @bot.command(name, description="Counted")
    def counted(ctx: Any) -> Message:
        return Message.ephemeral("ok")

    with bot.test_client() as client:
        yield client, name


def test_metrics_count_webhooks_by_kind_name_and_outcome(
    metrics_client: tuple[TestClient, str],
) -> None:
    client, name = metrics_client
    payload = command_payload(f"/{name}")
    for _ in range(2):
        assert (
            client.post(f"/custom-commands?type={name}", payload, webhook_id="same").status == 200
        )
    assert client.command(f"/{name} again").status == 200
    bad = client.post(f"/custom-commands?type={name}", payload, headers={"X-Signature": "0" * 64})
    assert bad.status == 401
    assert client.command("/no-such-command-xyz").status == 200

    page = client.app.test_client().get("/metrics")
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/plain")
    text = page.get_data(as_text=True)
    total = "botkit_webhooks_total"
    assert sample(text, total, kind="command", name=name, outcome="ok") == 2
    assert sample(text, total, kind="command", name=name, outcome="replayed") == 1
    assert (sample(text, total, kind="command", name="", outcome="rejected-signature") or 0) >= 1
    assert (
        sample(text, total, kind="command", name="unknown", outcome="unknown-command") or 0
    ) >= 1
    assert "no-such-command-xyz" not in text  # names outside the bot never become labels
    hist = "botkit_webhook_latency_seconds"
    assert sample(text, hist + "_count", kind="command", name=name) == 3
    assert sample(text, hist + "_bucket", kind="command", name=name, le="+Inf") == 3
    assert (sample(text, hist + "_sum", kind="command", name=name) or 0) > 0


def test_metrics_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOTKIT_METRICS", "1")
    monkeypatch.setenv("BOTKIT_METRICS_TOKEN", "let-me-in")
    app = Bot().create_app(make_config("memory://"))
    http = app.test_client()
    assert http.get("/metrics").status_code == 401
    assert http.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
    ok = http.get("/metrics", headers={"Authorization": "Bearer let-me-in"})
    assert ok.status_code == 200 and b"botkit_webhooks_total" in ok.data


def test_no_metrics_endpoint_unless_enabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BOTKIT_METRICS", raising=False)
    app = Bot().create_app(make_config("memory://"))
    assert app.test_client().get("/metrics").status_code == 404


def test_missing_multiprocess_dir_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from botkit import ConfigError

    monkeypatch.setenv("BOTKIT_METRICS", "1")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="PROMETHEUS_MULTIPROC_DIR"):
        Bot().create_app(make_config("memory://"))


# -- metrics under two gunicorn workers -------------------------------------------------------------


def test_metrics_add_up_across_two_gunicorn_workers(tmp_path: Any) -> None:
    metrics_dir = tmp_path / "prom"
    metrics_dir.mkdir()
    (metrics_dir / "counter_999999.db").write_bytes(b"stale")  # gunicorn.conf.py empties it
    env = {"BOTKIT_DEV": "1", "BOTKIT_METRICS": "1", "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    with GunicornServer("wsgi:app", env=env, workers=2, threads=2) as server:
        workers = server.wait_for_workers()
        sent = 0
        deadline = time.monotonic() + 60
        # fresh connections until both workers have answered some (the kernel picks)
        while True:
            conn = server.connection()
            body = encode(command_payload("/gif cats"))
            result = signed_post(conn, f"{PREFIX}/custom-commands?type=gif", body)
            conn.close()
            assert result.status == 200
            sent += 1
            pids = {int(m) for m in re.findall(r"_(\d+)\.db", " ".join(os.listdir(metrics_dir)))}
            if sent >= 6 and set(workers) <= pids:
                break
            assert time.monotonic() < deadline, f"one worker took every request: {pids}"
        # whichever worker answers /metrics, it reports every worker's counts
        for _ in range(4):
            page = server.get("/metrics")
            assert page.status == 200
            text = page.body.decode()
            assert (
                sample(text, "botkit_webhooks_total", kind="command", name="gif", outcome="ok")
                == sent
            )
            assert (
                sample(text, "botkit_webhook_latency_seconds_count", kind="command", name="gif")
                == sent
            )
        assert "counter_999999.db" not in os.listdir(metrics_dir)
