"""The collection benchmark's own arithmetic: on a tiny generated tenant, a full collection of every
section the built-in controls need makes exactly the minimum number of calls the benchmark computes
from the tenant (nothing fetched twice, no avoidable page), with no failed section."""

from __future__ import annotations

import pathlib

BENCHMARKS = pathlib.Path(__file__).resolve().parent.parent / "benchmarks"


def test_a_full_collection_makes_exactly_the_minimum_calls(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # the emulator child process imports it too
    import collection_scale

    # no latency, no effective rate limit: this is about counting, not pacing (test_throttle.py)
    res = collection_scale.run(0.002, workspaces=2, latency_ms=0, rate=100000, workers=4)
    assert res["failed_sections"] == 0, res["section_errors"]
    assert res["throttled_429"] == 0
    assert res["calls_by_host"] == res["minimum_by_host"]
    assert res["calls"] == res["calls_minimum"] > 0
    # the tenant really has the shape the benchmark claims, scaled
    assert res["objects"]["jobs"] == 2 * 10 and res["objects"]["clusters"] == 2 * 4
    assert {"workspace/acls_jobs", "workspace/acls_clusters", "workspace/uc", "account/account_identities"} <= set(res["sections"])
    # the sections' call logs account for every request but the SDK's one host-metadata read per client
    assert res["calls_recorded_by_sections"] == res["calls"] - (2 + 1)
    # the timeline accounts for every request the server saw, per host and rate-limit route
    tl = res["emulator"]["timeline"]["hosts"]
    assert {h: sum(r["requests"] for r in routes.values()) for h, routes in tl.items()} == res["calls_by_host"]
    perms = tl["ws0"]["/api/2.0/permissions"]  # jobs and clusters (and the other ACL types) share it
    assert perms["requests"] >= 10 + 4 and perms["answered_429"] == 0
    assert perms["first_s"] <= perms["last_s"] and sum(perms["per_s_by_step"]) > 0


def test_repeated_runs_report_each_and_the_median(monkeypatch, capsys):
    """``--repeat N``: this machine's speed drifts, so results are a median of several runs."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import collection_scale

    rc = collection_scale.main(["--scale", "0.002", "--workspaces", "1", "--latency-ms", "5", "--rate", "100000",
                                "--workers", "4", "--processes", "1", "--repeat", "3"])
    out = capsys.readouterr().out
    assert rc == 0
    ratios = [float(line.split("-> ")[1].split("x")[0]) for line in out.splitlines() if line.startswith("wall: ")]
    assert len(ratios) == 3 and out.count("-- run ") == 3
    last = out.strip().splitlines()[-1]
    assert last.startswith("wall / bound over 3 runs: ") and last.endswith(f"median {sorted(ratios)[1]:.2f}x")
    assert "CPU: collector" in out and "process(es) (" in out  # CPU per collector process


def test_the_request_cost_benchmark_reads_through_the_recorded_client(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import request_cost

    res = request_cost.run(20)  # asserts inside: every request recorded, every answer 200
    assert res["requests"] == 20
    assert res["cpu_ms_per_request"] > 0 and res["wall_ms_per_request"] > 0  # measured, not judged
    # as a collection sends: more threads than the window, each answer late
    res = request_cost.run(24, threads=6, latency_ms=20, window=2)
    assert res["requests"] == 24 and res["threads"] == 6
    # two in flight at a time, 20 ms each: the window held (no faster than 2 / 20 ms)
    assert res["requests_per_s"] <= 2 / 0.020 * 1.1
