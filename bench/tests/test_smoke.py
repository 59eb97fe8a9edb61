"""The bench smoke run (DESIGN section 10): 20 sockets through every scenario, asserting counts, never times.

It starts its own daphne (bench.asgi), Celery worker, clock and beat on free loopback ports, a private
redis-server and a throwaway PostgreSQL database, and stops and drops them all at the end.
"""

import copy
from datetime import datetime

import pytest

from bench import probe, redis_parsers, run
from testing.processes import RedisServer

pytestmark = pytest.mark.bench


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    return run.run(run.smoke_options(str(tmp_path_factory.mktemp("bench"))), command="bench smoke test")


def test_every_guess_reaches_every_connected_teammate(result):
    for kind in ("app", "bare"):
        fixed = result["scenarios"]["guesses"][kind]["fixed"]
        assert fixed["sent"] == 40, kind
        assert fixed["delivered"] == fixed["sent"], kind
        assert fixed["deliveries_seen"] == fixed["deliveries_expected"] == 4 * fixed["sent"], kind
        assert fixed["duplicates"] == fixed["stray"] == 0, kind
        assert fixed["error_frames"] == {}, kind
    assert result["scenarios"]["guesses"]["app"]["fixed"]["created"] == {"created": 40}


def test_the_timeline_holds_every_guess_from_a_start_in_unix_time(result):
    # The timeline's zero in Unix time lines the slow guesses up with the stack's logs (BENCHMARKS.md).
    fixed = result["scenarios"]["guesses"]["app"]["fixed"]
    assert len(fixed["timeline"]) == fixed["sent"]
    assert all(latency is not None for _, latency in fixed["timeline"])
    run_started = datetime.fromisoformat(result["started_at"]).timestamp()
    assert run_started <= fixed["started_at"] <= run_started + result["duration_s"]


def test_the_server_core_was_read_through_each_fixed_rate_run(result):
    for kind in ("app", "bare"):
        fixed = result["scenarios"]["guesses"][kind]["fixed"]
        core = fixed["server_core"]
        assert core["readings"] == len(core["busy"]) >= fixed["duration_s"] / core["every_s"] - 2, kind
        assert all(0 <= share <= 1 for _, share in core["busy"]), kind
        assert fixed["started_at"] <= core["busy"][0][0], kind
        assert core["slow_meeting_saturated"] <= core["slow"], kind
    assert "Server core through the app's fixed-rate run (read every 0.2 s)" in run.markdown(result)


def test_guesses_of_every_kind_were_sent(result):
    assert {"wrong", "partial", "correct", "judged"} <= set(result["guess_kinds_sent"])


def test_every_step_of_the_rate_search_is_delivered(result):
    for kind in ("app", "bare"):
        for step in result["scenarios"]["guesses"][kind]["sustained"]["steps"]:
            assert step["deliveries_seen"] == step["deliveries_expected"], (kind, step["rate"])


def test_every_socket_connects_in_every_storm_and_hears_the_announcement(result):
    for kind in ("app", "bare"):
        storm = result["scenarios"]["storm"][kind]
        assert len(storm["cycles"]) == 2
        for cycle in storm["cycles"]:
            assert cycle["storm"]["connected"] == cycle["storm"]["sockets"] == 20, kind
            assert cycle["storm"]["errors"] == 0, kind
            assert cycle["announcement"]["reached"] == cycle["announcement"]["sockets"] == 20, kind


def test_guesses_sent_during_the_first_storm_reach_every_teammate(result):
    # --storm-guesses (fix 51's figure): sockets opened before the storm guess while it connects.
    during = result["scenarios"]["storm"]["app"]["guesses_during"]
    assert (during["rate"], during["seconds"], during["sockets"]) == (5, 2, 20)
    assert during["sent"] == 10
    assert during["delivered"] == during["sent"] and during["undelivered"] == 0
    assert during["duplicates"] == 0 and during["error_frames"] == {}
    assert len(during["timeline"]) == 10 and all(latency is not None for _, latency in during["timeline"])
    assert "guesses_during" not in result["scenarios"]["storm"]["bare"]
    assert "Guesses during the first storm (informative" in run.markdown(result)
    assert "Guesses during" not in run.markdown({**result, "scenarios": {}})


def test_http_guesses_and_the_bare_view_answer_every_request(result):
    app, bare = result["scenarios"]["http"]["app"], result["scenarios"]["http"]["bare"]
    assert app["requests"] > 0 and set(app["statuses"]) == {"201"} and not app["failures"]
    assert bare["requests"] > 0 and set(bare["statuses"]) == {"200"} and not bare["failures"]


def test_the_report_has_every_figure_with_its_baseline(result):
    figures = [row["figure"] for row in result["figures"]]
    assert len(figures) == 14
    assert all(row["bare"] is not None for row in result["figures"])


def test_the_server_cores_cpu_per_guess_is_read_from_every_process_of_the_stack(result):
    # Which processes were read, not how much they used (a count of clock ticks, and no times are asserted).
    for kind in ("app", "bare"):
        load = result["load"][f"guesses {kind}"]
        assert set(load["stack_cpu_s"]) == {"daphne", "PostgreSQL", "Redis", "Celery"}, kind
        read = load["stack_processes"]
        assert read["daphne"] == read["Redis"] == 1, kind
        # The postmaster with its children; the judge's, the clock's and beat's processes.
        assert read["PostgreSQL"] >= 2 and read["Celery"] >= 3, kind
    assert "Server core's CPU per guess in the fixed-rate run, by process (ms): app daphne " in run.markdown(
        result
    )


def test_the_machine_probe_reached_both_servers_and_heads_the_report(result):
    found = result["probe"]
    assert set(found) == {
        "python_loop_ms",
        "thread_round_trip_us",
        "redis_round_trip_us",
        "postgresql_round_trip_us",
        "disk_sync_ms",
    }
    sync = found["disk_sync_ms"]
    assert sync["n"] == probe.DISK_SYNCS and 0 <= sync["slow"] <= probe.DISK_SYNCS
    assert 0 <= sync["p50"] <= sync["p99"] <= sync["max"]  # 0.00 ms on a disk in memory
    assert all(value > 0 for name, value in found.items() if name != "disk_sync_ms")
    assert probe.describe(found) in run.markdown(result)


def test_the_report_names_the_error_frames_of_the_fixed_rate_run_with_a_message(result):
    assert "Error frames" not in run.markdown(result)  # none in the smoke run (above)
    errored = copy.deepcopy(result)
    fixed = errored["scenarios"]["guesses"]["app"]["fixed"]
    fixed["error_frames"], fixed["error_messages"] = {"invalid": 3}, {"invalid": "Already solved"}
    assert 'Error frames the app sent in the fixed-rate run: invalid x3 ("Already solved").' in run.markdown(
        errored
    )


def test_the_parser_comparison_reads_every_message_with_both_parsers(monkeypatch, capsys, tmp_path):
    # bench.redis_parsers (fix 42), on a private redis-server: each round raises unless every published
    # message arrives.
    with RedisServer(tmp_path).running() as server:
        monkeypatch.setattr(redis_parsers, "URL", server.url(4))
        redis_parsers.main(["--rounds", "1"])
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines] == [
        ["pubsub", "python"],
        ["pubsub", "hiredis"],
        ["pipeline", "python"],
        ["pipeline", "hiredis"],
    ]
