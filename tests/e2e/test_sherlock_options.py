"""Sherlock's options from modern balancers, on real echo instances over real HTTP.

Each instance is a real process registered in a real Directory by its own Watson; one of
them is made to misbehave by the path (``/fail/NAME``: 503 from NAME; ``/slow/NAME/S``:
NAME answers after S seconds; see tests/helpers/echo_service.py). The proxy runs on a
thread of this process so that its Sherlock's call log can be read.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from mwkit.directory import DirectoryClient
from mwkit.procs import free_port, python_command, running, stop_group, wait_for_http
from mwkit.sherlock import Sherlock
from mwkit.sherlock.attempts import DEADLINE_HEADER
from tests.e2e.test_sherlock_transparency import proxy_of


def echo_fleet(fleet, *names: str) -> None:
    for name in names:
        fleet.start(name)


def test_p2c_least_request_sends_most_calls_to_the_less_busy_instance(directory, fleet):
    """Eight callers at once, instance a holds each call 0.3 s: a has calls in flight
    nearly always, b nearly never, so two choices pick b (round robin would halve)."""
    echo_fleet(fleet, "a", "b")
    with Sherlock(directory, policy="p2c_least_request") as sherlock:
        sherlock.wait_for("echo", 2)
        session = sherlock.session()
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: session.get("http://echo/slow/a/0.3").json(),
                                    range(40)))
    by_b = sum(answer["instance"] == "b" for answer in answers)
    assert by_b >= 30, f"b answered {by_b} of 40"


def test_an_instance_answering_5xx_in_a_row_is_ejected_for_longer_each_time(directory, fleet):
    echo_fleet(fleet, "a", "b", "c", "d")
    with Sherlock(directory, retries=0, outlier_5xx=3) as sherlock:
        sherlock.wait_for("echo", 4)
        session = sherlock.session()
        statuses = [session.get("http://echo/fail/a").status_code for _ in range(12)]
        assert statuses.count(503) == 3  # round robin: a's third 503 ejected it
        ejecting = [r for r in sherlock.calls.records() if r.ejected]
        assert [(r.instance, r.status) for r in ejecting] == [("a", 503)]
        assert sherlock.counters()["a"]["ejected"] and sherlock.counters()["a"]["ejections"] == 1
        time.sleep(1.1)  # the first ejection lasts 1 s
        statuses = [session.get("http://echo/fail/a").status_code for _ in range(12)]
        assert statuses.count(503) == 3 and sherlock.counters()["a"]["ejections"] == 2
        time.sleep(1.1)  # the second lasts 2 s: still out
        assert all(session.get("http://echo/fail/a").ok for _ in range(8))


def test_without_outlier_ejection_a_failing_instance_keeps_its_share(directory, fleet):
    echo_fleet(fleet, "a", "b")
    with Sherlock(directory, retries=0) as sherlock:
        sherlock.wait_for("echo", 2)
        session = sherlock.session()
        statuses = [session.get("http://echo/fail/a").status_code for _ in range(20)]
    assert statuses.count(503) == 10


def test_retry_5xx_turns_a_failing_instances_answers_into_retries(directory, fleet):
    """Instance a answers every call with a 503: with retry_5xx (and no ejection, so a
    keeps its share) every call still succeeds, through the library and the proxy, and
    the calls a answered were retried on b; an a alone still gets its 503 back."""
    fleet.start("a")
    b = fleet.start("b")
    with Sherlock(directory, policy="round_robin", retry_5xx=True) as sherlock:
        sherlock.wait_for("echo", 2)
        session = sherlock.session()
        answers = [session.get("http://echo/fail/a") for _ in range(10)]
        assert [r.status_code for r in answers] == [200] * 10
        assert {r.instance for r in answers} == {"b"}
        retried = sum(r.sherlock["attempts"] == 2 for r in answers)
        by_a = [r for r in sherlock.calls.records() if r.instance == "a"]
        assert retried >= 5 and len(by_a) == retried  # each 503 of a, retried once on b
        assert {(r.status, r.outcome) for r in by_a} == {(503, "error")}
        with proxy_of(sherlock) as proxy:
            statuses = [requests.get(f"{proxy}/echo/fail/a", timeout=5).status_code
                        for _ in range(6)]
        assert statuses == [200] * 6
        stop_group(b.watson, grace=3)  # b deregisters
        sherlock.wait_for("echo", 1)
        alone = session.get("http://echo/fail/a")
        assert (alone.status_code, alone.instance, alone.sherlock["attempts"]) == (503, "a", 1)


def dead_and_live(directory, fleet) -> None:
    """echo: a live instance, and one that refuses every connection (registered by hand)."""
    fleet.start("live")
    DirectoryClient(directory).register("echo", "dead", f"127.0.0.1:{free_port()}", ttl=60)


@pytest.mark.parametrize("budget", [None, 0.2])
def test_a_retry_budget_caps_the_retries_that_a_dead_instance_causes(directory, fleet, budget):
    """Round robin over a dead and a live instance, ejection off: the dead one refuses
    many first attempts. Without a budget each is retried (and succeeds); with 20 %, at
    most 20 % of the calls + a floor of 1 a second over the 10 s window (10), the rest
    fail and say so."""
    dead_and_live(directory, fleet)
    calls = 100
    with Sherlock(directory, eject=False, retry_budget=budget) as sherlock:
        sherlock.wait_for("echo", 2)
        session = sherlock.session()
        failed = 0
        started = time.monotonic()
        for _ in range(calls):
            try:
                session.get("http://echo/")
            except requests.ConnectionError:
                failed += 1
        seconds = time.monotonic() - started
        records = sherlock.calls.records()
    refused = sum(r.outcome == "refused" for r in records)
    retries = sum(r.attempt == 2 for r in records)
    denied = sum(r.denied == "budget" for r in records)
    assert refused >= calls // 2 and refused == retries + denied
    if budget is None:
        assert (denied, failed) == (0, 0)
    else:
        assert retries <= 0.2 * calls + 1.0 * 10 and seconds < 10
        assert denied == failed > 0


def test_a_slow_call_is_hedged_on_another_instance_and_the_first_answer_wins(directory, fleet):
    echo_fleet(fleet, "a", "b")
    with Sherlock(directory, hedge=0.9) as sherlock, proxy_of(sherlock) as proxy:
        sherlock.wait_for("echo", 2)
        session = sherlock.session()
        for _ in range(30):  # fast answers: the hedge delay is the floor, 0.05 s
            assert session.get("http://echo/").ok
        assert sherlock.hedge_delay("echo") == 0.05
        assert all(not r.hedged for r in sherlock.calls.records())
        for way in ("adapter", "proxy"):
            sherlock.calls.clear()
            started = time.monotonic()
            for _ in range(2):  # one of the two starts on a, whichever comes first
                if way == "adapter":
                    response = session.get("http://echo/slow/a/1.5")
                    assert response.sherlock["hedged"] in (True, False)
                else:
                    response = requests.get(f"{proxy}/echo/slow/a/1.5", timeout=5)
                assert response.json()["instance"] == "b"
            assert time.monotonic() - started < 1.0, way  # neither waited for a's 1.5 s
            hedges = [r for r in sherlock.calls.records() if r.hedged]
            assert {(r.instance, r.attempt, r.outcome) for r in hedges} == {("b", 2, "ok")}
        time.sleep(1.6)  # a's answers came: read and dropped (adapter), cancelled (proxy)
        assert ("a", "cancelled") in [(r.instance, r.outcome) for r in sherlock.calls.records()]
        assert sherlock.counters()["a"]["outstanding"] == 0


def test_without_hedging_a_slow_instance_costs_its_whole_latency(directory, fleet):
    echo_fleet(fleet, "a", "b")
    with Sherlock(directory) as sherlock:
        sherlock.wait_for("echo", 2)
        session = sherlock.session()
        started = time.monotonic()
        instances = [session.get("http://echo/slow/a/0.6").json()["instance"] for _ in range(2)]
        assert sorted(instances) == ["a", "b"] and time.monotonic() - started >= 0.6


def test_the_deadline_goes_to_the_instance_and_bounds_each_attempt(directory, fleet):
    echo_fleet(fleet, "a", "b")
    with Sherlock(directory, deadline=2.0) as sherlock, proxy_of(sherlock) as proxy:
        sherlock.wait_for("echo", 2)
        session = sherlock.session()
        told = int(session.get("http://echo/").json()["deadline"])
        assert 1500 < told <= 2000
        told = int(requests.get(f"{proxy}/echo/", timeout=5).json()["deadline"])
        assert 1500 < told <= 2000
        # A caller's shorter deadline is kept, and passed on.
        shorter = {DEADLINE_HEADER: "400"}
        told = int(session.get("http://echo/", headers=shorter).json()["deadline"])
        assert 0 < told <= 400
        sherlock.calls.clear()
        started = time.monotonic()
        for _ in range(2):  # one of them reaches a first: it times out at the deadline
            status = requests.get(f"{proxy}/echo/slow/a/1.5", headers=shorter, timeout=5)
            if status.status_code != 200:
                assert status.status_code == 504
        assert time.monotonic() - started < 1.2  # not 1.5 s, nor Sherlock's 5 s timeout
        timed_out = [r for r in sherlock.calls.records() if r.outcome == "timeout"]
        assert [(r.instance, r.denied) for r in timed_out] == [("a", "deadline")]
        with pytest.raises(requests.exceptions.ReadTimeout):
            for _ in range(2):
                session.get("http://echo/slow/b/1.0", headers={DEADLINE_HEADER: "300"})
                session.get("http://echo/slow/a/1.0", headers={DEADLINE_HEADER: "300"})


def test_the_monolith_builds_its_sherlock_with_the_options_of_its_environment(directory,
                                                                                monkeypatch):
    import lobsters

    monkeypatch.setenv("MWKIT_SHERLOCK_POLICY", "p2c_least_request")
    monkeypatch.setenv("MWKIT_SHERLOCK_OUTLIER_5XX", "5")
    monkeypatch.setenv("MWKIT_SHERLOCK_RETRY_BUDGET", "0.2")
    monkeypatch.setenv("MWKIT_SHERLOCK_HEDGE", "0.95")
    monkeypatch.setenv("MWKIT_SHERLOCK_DEADLINE", "1.5")
    monkeypatch.setenv("MWKIT_SHERLOCK_RETRY_5XX", "1")
    sherlock = lobsters.start_sherlock(directory)
    try:
        assert (sherlock.policy_name, sherlock.outliers.consecutive, sherlock.retry_budget,
                sherlock.hedge, sherlock.deadline, sherlock.retry_5xx) == \
            ("p2c_least_request", 5, 0.2, 0.95, 1.5, True)
    finally:
        sherlock.close()


def test_mwkit_sherlock_takes_the_options_on_its_command_line(directory, fleet, tmp_path):
    fleet.start("a")
    port = free_port()
    proxy = python_command("-m", "mwkit", "sherlock", "--directory", directory,
                           "--listen", f"127.0.0.1:{port}", "--deadline", "1.5", "--hedge",
                           "0.9", "--outlier-5xx", "5", "--retry-budget", "0.2")
    with running(proxy, log_path=tmp_path / "proxy.log"):
        wait_for_http(f"http://127.0.0.1:{port}/echo/", timeout=10)
        told = int(requests.get(f"http://127.0.0.1:{port}/echo/", timeout=5).json()["deadline"])
    assert 1000 < told <= 1500
