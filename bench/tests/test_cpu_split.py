"""bench.run's server-core CPU per guess, by process: how it reads the processes and what the report says."""

import os
import subprocess
import sys
import time

import pytest

from bench import run


def test_a_process_started_in_between_counts_from_zero_and_one_ended_counts_in_its_parent():
    before = {"daphne": {10: 5.0}, "PostgreSQL": {20: 1.0, 21: 2.0}}
    # Backend 21 used 0.5 s more and ended; the postmaster (20) waited for it, so its children's time grew
    # by the backend's 2.5 s in all. Backend 22 started in between and used 0.25 s.
    after = {"daphne": {10: 7.5}, "PostgreSQL": {20: 3.5, 22: 0.25}}
    assert run.cpu_by_kind(before, after) == {"daphne": 2.5, "PostgreSQL": 0.75}


def test_a_childs_time_joins_its_parents_once_waited_for():
    before = sum(run.process_cpu(os.getpid(), children=True))
    child = subprocess.run(
        [sys.executable, "-c", "import time\nwhile time.process_time() < 0.3: pass"], check=True, timeout=60
    )
    assert child.returncode == 0
    assert (
        sum(run.process_cpu(os.getpid(), children=True)) - before >= 0.25
    )  # the child's 0.3 s of CPU, in clock ticks


def test_services_that_cannot_be_found_here_are_left_out_unless_pinning_needs_them(monkeypatch):
    nowhere = ("postgres://nobody@127.0.0.1:1/none", "redis://127.0.0.1:1/0")  # nothing listens on port 1
    assert run.local_services(*nowhere, required=False) == (None, None)
    with pytest.raises(Exception):  # noqa: B017 (whichever error the first lookup meets goes on)
        run.local_services(*nowhere, required=True)
    # A pid that is not the server's process (a server in a container answers with its own namespace's).
    monkeypatch.setattr(run, "postmaster_pid", lambda url: os.getpid())
    monkeypatch.setattr(run, "redis_pid", lambda url: os.getpid())
    assert run.local_services(*nowhere, required=False) == (None, None)


def test_the_stack_is_read_from_proc_and_a_process_that_is_gone_is_skipped():
    gone = 2**22 + 1  # above Linux's highest pid
    found = run.stack_cpu({"daphne": [os.getpid(), gone], "Redis": [gone]})
    assert set(found) == {"daphne", "Redis"}
    assert list(found["daphne"]) == [os.getpid()] and found["daphne"][os.getpid()] > 0
    assert found["Redis"] == {}


def fixed(sent: int, p99: float) -> dict:
    return {
        "sent": sent,
        "delivered": sent,
        "undelivered": 0,
        "latency_ms": {"p50": p99 / 4, "p99": p99},
        "error_frames": {},
    }


def result_with(loads: dict) -> dict:
    return {
        "started_at": "2026-11-27T00:00:00+00:00",
        "mode": "production",
        "command": "test",
        "duration_s": 60.0,
        "loadavg_before": [0.5, 0.5, 0.5],
        "loadavg_after": [1.0, 1.0, 1.0],
        "options": {
            "sockets": 2000,
            "rate": 200.0,
            "storm": 5000,
            "cycles": 5,
            "ping_interval": 10.0,
            "smoke": False,
        },
        "scenarios": {
            "guesses": {
                "app": {"fixed": fixed(4000, 30.0), "sustained": None},
                "bare": {"fixed": fixed(4000, 4.0), "sustained": None},
            }
        },
        "load": loads,
    }


def load(**seconds) -> dict:
    return {
        "start": [1.0],
        "end": [2.0],
        "cpu": {"cpu0": 0.9, "cpu1": 0.2, "daphne": 0.6},
        "stack_cpu_s": seconds,
    }


def test_the_report_gives_the_cpu_per_guess_beside_the_bare_consumers_and_its_split():
    result = result_with(
        {
            "guesses app": load(daphne=11.8, PostgreSQL=4.68, Redis=0.48, Celery=0.28),
            "guesses bare": load(daphne=2.4, PostgreSQL=0.2, Redis=0.6, Celery=0.28),
        }
    )
    result["figures"] = run.figures(result)
    [row] = [r for r in result["figures"] if r["figure"].startswith("server core's CPU per guess")]
    assert (row["app"], row["bare"], row["ratio"]) == (4.31, 0.87, 4.95)
    assert (
        "Server core's CPU per guess in the fixed-rate run, by process (ms): app daphne 2.95, "
        "PostgreSQL 1.17, Redis 0.12, Celery 0.07; bare daphne 0.6, PostgreSQL 0.05, Redis 0.15, Celery 0.07."
    ) in run.markdown(result)


def test_without_the_processes_readings_the_report_leaves_the_figure_out():
    result = result_with({"guesses app": {**load(), "stack_cpu_s": {}}, "guesses bare": load(daphne=1.0)})
    result["figures"] = run.figures(result)
    assert not [r for r in result["figures"] if r["figure"].startswith("server core's CPU")]
    assert "Server core's CPU per guess" not in run.markdown(result)


def test_the_micro_bench_counts_the_servers_cpu_per_operation(monkeypatch):
    from bench import micro

    # A "server" that is this process: the CPU the block burns is the server's, divided by the operations.
    monkeypatch.setattr(micro, "servers", lambda: {"PostgreSQL": [os.getpid()], "Redis": []})
    with micro.Timer(10) as timer:
        start = time.process_time()
        while time.process_time() - start < 0.3:
            pass
    figures = timer.figures()
    assert set(figures) == {"cpu_ms", "postgresql_ms", "redis_ms", "wall_ms"}
    assert figures["postgresql_ms"] >= 25  # 0.3 s over 10 operations, read in clock ticks
    assert figures["redis_ms"] == 0
