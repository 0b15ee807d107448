"""The benchmark script runs and prints its table. No timing is asserted: the numbers
belong to ``make bench`` and docs/benchmarks.md, not to the test suite."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks" / "bench.py"
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench  # noqa: E402

from botkit.core.schemas import load_before_send, load_command, load_event, parse_json  # noqa: E402


def _wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        if os.environ.get("BOTKIT_REQUIRE_SERVICES") == "1":
            pytest.fail("wrk not installed (BOTKIT_REQUIRE_SERVICES=1)", pytrace=False)
        pytest.skip("wrk not installed (apt-get install wrk)")
    return path


def test_bodies_have_the_sizes_and_shapes_the_bench_promises() -> None:
    loaders = {"command": load_command, "before_send": load_before_send, "push": load_event}
    for route in bench.ROUTES.values():
        body = bench.make_body(route)
        assert route.size <= len(body) < route.size + 1024, route.name
        loaders[route.kind](parse_json(body))  # valid for botkit, or this raises
    gif = json.loads(bench.make_body(bench.ROUTES["gif-1k"]))
    assert gif["message"]["command"] == "gif" and gif["message"]["args"] == "cats"


def test_missing_wrk_says_how_to_install_it() -> None:
    out = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--wrk", "/nonexistent/wrk"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "apt-get install wrk" in out.stderr


def test_bad_options_are_refused_with_a_message() -> None:
    out = subprocess.run(
        [sys.executable, str(BENCH), "--stores", "mongo"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "unknown store 'mongo'" in out.stderr


@pytest.mark.slow
def test_quick_bench_prints_one_table() -> None:
    wrk = _wrk()
    out = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--quick",
            "--wrk",
            wrk,
            "--routes",
            "gif-1k",
            "--baselines",
            "flask",
            "--connections",
            "4",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    table = [line for line in lines if line.startswith("|")]
    assert table[0].split("|")[1].strip() == "route"
    assert "vs flask" in table[0] and "RSS MB" in table[0]
    rows = {tuple(cell.strip() for cell in line.split("|")[1:3]) for line in table[2:]}
    assert rows == {("/gif 1 KB", "botkit memory"), ("/gif 1 KB", "flask")}
    flask_row = next(line for line in table[2:] if "| flask" in line)
    assert flask_row.split("|")[4].strip() == "1.00"  # the ratio column


@pytest.mark.slow
def test_push_latency_is_measured_before_the_queue_is_filled() -> None:
    # At the maximum rate a thread:// queue fills up and push answers 503; the paced
    # load that measures the acknowledgements' latency must come first.
    out = subprocess.run(
        [
            sys.executable, str(BENCH), "--quick", "--wrk", _wrk(), "--routes", "push-1k",
            "--baselines", "flask", "--connections", "4", "--verbose",
        ],
        capture_output=True, text=True, timeout=240, cwd=ROOT,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    log = out.stderr.splitlines()
    paced = [i for i, line in enumerate(log) if line.startswith("run 1 push-1k")]
    slices = [i for i, line in enumerate(log) if line.startswith("run 1.1 push-1k")]
    assert len(paced) == 2 and len(slices) == 3, log  # botkit and flask; flask twice
    assert max(paced) < min(slices)
    header, _, *rows = [line for line in out.stdout.splitlines() if line.startswith("|")]
    assert header.split("|")[-2].strip() == "errors (max / paced)"
    assert all(row.split("|")[-2].strip().endswith("/ 0") for row in rows), rows


def test_ratio_counts_the_slices_whose_flask_slices_agreed() -> None:
    args = bench.parse_args(["--quick"])
    route = bench.ROUTES["gif-1k"]
    sample = bench.Sample(rps=1000, p50_ms=1, p99_ms=2, errors=0)

    def cells(ratios: list[tuple[float, bool]]) -> list[str]:
        row = bench.Row(route, bench.Target("botkit", "bench_bot:app", "memory"))
        row.max, row.paced, row.ratios = [(0, sample)], [sample], ratios
        line = bench.table([row], args).splitlines()[2]
        return [cell.strip() for cell in line.split("|")[3:7]]

    # the two slices taken while the machine changed speed do not count
    mixed = [(0.4, False), (1.0, True), (1.2, True), (0.9, True), (2.5, False), (1.1, True)]
    assert cells(mixed) == ["1000", "1.05", "0.93-1.17", "4 of 6"]
    # too few steady slices to go on: every slice counts, and the table says so
    assert cells([(0.4, False), (1.0, True), (1.2, True)]) == ["1000", "1.00", "-", "all 3"]


def test_store_claims_script_runs_and_prints_its_numbers(tmp_path: Path) -> None:
    script = ROOT / "benchmarks" / "store_claims.py"
    out = subprocess.run(
        [sys.executable, str(script), "sqlite", "--seconds", "0.5", "--rounds", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    names = [line.split()[0] for line in out.stdout.splitlines()[1:]]
    assert names == ["claims/s", "CPU", "p99", "p99.9", "WAL"]


def test_paired_variants_are_read_as_documented(tmp_path: Path) -> None:
    import paired

    assert paired.parse_variant("sqlite") == ("sqlite", "sqlite", {}, None)
    assert paired.parse_variant("json=redis:BOTKIT_LOG_FORMAT=json,X=1") == (
        "json",
        "redis",
        {"BOTKIT_LOG_FORMAT": "json", "X": "1"},
        None,
    )
    assert paired.parse_variant(f"old=memory@{ROOT}") == ("old", "memory", {}, ROOT)
    for bad in ("postgres", "x=sqlite:NOVALUE", f"old=sqlite@{tmp_path}"):
        with pytest.raises(SystemExit):
            paired.parse_variant(bad)


def _script(tmp_path: Path, name: str, *args: str) -> list[str]:
    """The lines a script of benchmarks/ prints, run small (one worker, two threads, two
    connections); it leaves nothing behind in the temporary folder."""
    wrk_path = _wrk()
    small = ["--workers", "1", "--threads", "2", "--connections", "2"]
    path = f"{Path(wrk_path).parent}:{os.environ['PATH']}"
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / name), *args, *small],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "PATH": path, "TMPDIR": str(tmp_path)},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert list(tmp_path.iterdir()) == []  # the servers' logs and databases are removed
    return out.stdout.splitlines()


def test_paired_script_runs_and_prints_every_slice(tmp_path: Path) -> None:
    lines = _script(tmp_path, "paired.py", "memory", f"here=memory@{ROOT}", "--rounds", "2")
    assert lines[0].startswith("/gif 1 KB, 2 slices per variant")
    assert [line.split()[0] for line in lines[1:3]] == ["memory", "here"]
    for line in lines[1:3]:
        assert len(line.split("(")[1].rstrip(")").split()) == 2  # both slices printed
    assert lines[3].startswith("workers' CPU and context switches per request")
    usage = {line.split()[0]: line.split()[1:] for line in lines[4:]}
    assert set(usage) == {"flask", "memory", "here"}
    for name, (cpu_us, unit, _, switches, _) in usage.items():
        # a request costs a worker some CPU, and more than a few ms would be a unit slip
        assert unit == "us" and 10 < float(cpu_us) < 20_000, (name, cpu_us)
        assert float(switches) >= 0


def test_push_latency_script_reads_botkit_time_from_its_log_lines(tmp_path: Path) -> None:
    lines = _script(
        tmp_path, "push_latency.py", "memory", "--rounds", "1", "--seconds", "1", "--rate", "200"
    )
    assert lines[0].startswith("push 1 KB (1 s handler), 2 connections paced at 200 req/s")
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:] if line != "medians"}
    assert lines.count("medians") == 1 and set(rows) == {"flask", "memory"}
    # botkit's own time per webhook comes from its log lines; Flask logs none
    assert rows["flask"][-4:] == ["-", "-", "-", "0"]
    *logged, count = (float(cell) for cell in rows["memory"][-4:])
    assert logged == sorted(logged) and count >= 100  # 200 req/s for 1 s
    assert float(rows["memory"][1]) == 0  # no errors: every event queued
