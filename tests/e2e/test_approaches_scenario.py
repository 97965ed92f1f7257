"""The approaches lesson end to end: Sherlock as an approach, and the scripted scenario
against all four on real processes (dnsmasq, HAProxy, popularity, the Directory)."""

from __future__ import annotations

import time

import pytest
import requests

from mwkit.approaches import Approach
from mwkit.approaches.scenario import Phases, run_scenario, summarize, the_four
from mwkit.approaches.sherlock import SherlockApproach

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def stack(process_stack):
    return process_stack


def live(stack) -> list[str]:
    return [i.id for i in stack.wizard.state.instances() if i.service == "popularity"]


def test_sherlock_follows_the_push_stream_and_retries_a_dead_instance(stack):
    stack.scale(0, tag="v2")
    stack.scale(2)
    with SherlockApproach(stack.directory_url) as sherlock, requests.Session() as session:
        assert isinstance(sherlock, Approach)
        sherlock.router.wait_for("popularity", 2)
        calls = [sherlock.call(session) for _ in range(6)]
        assert all(call.ok for call in calls), [call.error for call in calls]
        assert {call.instance for call in calls} == set(live(stack))  # round robin: both
        assert len({call.service_id for call in calls}) == 2
        victim = live(stack)[0]
        stack.inject(victim, "crash")  # the Directory lists it until its lease runs out
        try:
            after = [sherlock.call(session) for _ in range(4)]
            assert all(call.ok for call in after), [call.error for call in after]
            assert any(call.retried for call in after)  # refused, tried on the other one
            assert victim not in {call.instance for call in after}
            costs = sherlock.costs()
            assert costs["retries"] >= 1 and costs["pushes received"] >= 1
        finally:
            stack.clear(victim)
    assert sherlock.costs()["pushes received"] >= 1  # still readable once closed
    failed = sherlock.call(requests.Session())
    assert failed.outcome == "error" and "enter the approach" in failed.error


@pytest.mark.dnsmasq
@pytest.mark.haproxy
def test_the_scenario_against_the_four_approaches_at_once(stack):
    approaches, missing = the_four(stack, ttl=5)
    assert missing == []
    began = time.monotonic()
    run = run_scenario(stack, approaches, Phases(), progress=lambda line: None)
    took = time.monotonic() - began
    rows = {row["approach"]: row for row in summarize(run)}
    assert list(rows) == ["pure DNS", "DNS with health", "HAProxy (reload)",
                          "HAProxy (runtime API)", "Sherlock (push)"]
    assert len(run.new) == 2 and run.canary is not None  # two new instances, one canary
    for name, row in rows.items():
        assert row["calls"] >= 0.8 * Phases().rate * Phases().total, name
        assert row["costs"], name
    sherlock, pure = rows["Sherlock (push)"], rows["pure DNS"]
    # push: a new instance gets calls at once, the dead one costs a retry, not a failure
    assert sherlock["first_new_s"] < 1.0 and sherlock["all_new_s"] is not None
    assert sherlock["failed_after_kill"] == 0 and sherlock["canary_share"] > 0
    assert sherlock["costs"]["retries"] >= 1
    # pure DNS keeps the dead instance's record: some of its calls fail after the kill
    assert pure["failed_after_kill"] > 0
    assert rows["HAProxy (reload)"]["costs"]["reloads"] >= 1
    assert took < 90, f"the scenario took {took:.0f} s"
    assert len(live(stack)) == 2  # the dead one's record and the canary are gone


@pytest.mark.dnsmasq
@pytest.mark.haproxy
def test_benchmark_figure_11_in_quick_mode(tmp_path):
    from benchmarks import markdown
    from benchmarks.fig11_approaches import run

    figure = run(True, tmp_path, png=tmp_path / "fig11.png")
    assert figure.error is None and figure.number == 11
    metrics = {metric.name: metric for metric in figure.metrics}
    for name in ("pure DNS", "DNS with health", "HAProxy (reload)", "HAProxy (runtime API)",
                 "Sherlock (push)"):
        for measure in ("first call on a new instance", "failed calls after the kill",
                        "calls the slow canary answered"):
            assert metrics[f"{name}: {measure}"].summary()["n"] >= 1, (name, measure)
    assert metrics["Sherlock (push): first call on a new instance"].summary()["n"] == 2
    assert metrics["Sherlock (push): failed calls after the kill"].met is True
    assert metrics["pure DNS: failed calls after the kill"].summary()["max"] > 0
    assert metrics["HAProxy (reload): reloads"].summary()["max"] >= 1
    assert (tmp_path / "fig11.png").read_bytes().startswith(b"\x89PNG")
    assert "Figure 11" in markdown.figure_table(figure)
