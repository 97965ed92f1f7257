"""Sherlock's options from modern balancers, as pure logic on a clock the test moves."""

from __future__ import annotations

import random

import pytest

from mwkit.errors import InvalidInput
from mwkit.sherlock import policies
from mwkit.sherlock.attempts import DEADLINE_HEADER, Call, deadline_of
from mwkit.sherlock.endpoint import Endpoint
from mwkit.sherlock.guards import HedgeTimer, OutlierEjection, RetryBudget


def endpoints(count: int) -> list[Endpoint]:
    return [Endpoint("svc", f"i{n}", f"127.0.0.1:{5000 + n}", f"http://127.0.0.1:{5000 + n}",
                     {}, 0.0) for n in range(count)]


# --- power of two choices over least request ---------------------------------------------


def test_p2c_least_request_takes_the_less_busy_of_two_random_picks():
    """Of two picks the one with fewer calls in flight; the busiest is never taken while
    another has fewer (it can only be the less busy of a pair if both are as busy)."""
    fleet = endpoints(4)
    for endpoint, outstanding in zip(fleet, (0, 1, 2, 9), strict=True):
        endpoint.outstanding = outstanding
    pick = policies.POLICIES["p2c_least_request"](random.Random(1))
    chosen = [pick(fleet).id for _ in range(600)]
    assert chosen.count("i3") == 0
    # i0 is the less busy of every pair it is in: 3 of the 6 pairs, half the picks
    assert 250 < chosen.count("i0") < 350
    assert policies.make_policy("p2c_least_request")(fleet[:1]) is fleet[0]


# --- outlier ejection on consecutive 5xx --------------------------------------------------


def test_five_5xx_in_a_row_eject_and_any_other_answer_starts_again():
    fleet = endpoints(4)
    bad = fleet[0]
    outliers = OutlierEjection()  # Envoy's 5
    for status in (503, 500, 502, 503, 404):  # four, then a 4xx: the run ends
        assert not outliers.observe(bad, status, fleet, now=0.0)
    assert bad.consecutive_5xx == 0 and bad.available(0.0)
    assert [outliers.observe(bad, 503, fleet, now=1.0) for _ in range(5)] == [False] * 4 + [True]
    assert not bad.available(1.0) and bad.available(2.0) and bad.ejections == 1


def test_each_ejection_lasts_longer_up_to_the_longest():
    fleet = endpoints(2)
    bad, now = fleet[0], 0.0
    outliers = OutlierEjection(consecutive=1, base=1.0, longest=3.5)
    lengths = []
    for _ in range(5):
        assert outliers.observe(bad, 500, fleet, now)
        lengths.append(bad.ejected_until - now)
        now = bad.ejected_until
    assert lengths == [1.0, 2.0, 3.0, 3.5, 3.5]


def test_never_more_than_the_max_share_is_ejected_but_one_always_may_be():
    fleet = endpoints(4)
    outliers = OutlierEjection(consecutive=1)  # at most half: two of four
    ejected = [outliers.observe(endpoint, 503, fleet, now=0.0) for endpoint in fleet]
    assert ejected == [True, True, False, False]
    pair = endpoints(2)  # half of two is one
    assert [outliers.observe(e, 503, pair, now=0.0) for e in pair] == [True, False]
    alone = endpoints(1)  # at least one may always be ejected
    assert outliers.observe(alone[0], 503, alone, now=0.0)
    strict = OutlierEjection(consecutive=1, max_share=0.1)  # Envoy's 10 %: still one
    pair = endpoints(2)
    assert [strict.observe(e, 503, pair, now=0.0) for e in pair] == [True, False]


def test_outlier_ejection_needs_a_run_of_at_least_one():
    with pytest.raises(InvalidInput, match="1 or more consecutive 5xx, not 0"):
        OutlierEjection(consecutive=0)


# --- the retry budget -----------------------------------------------------------------------


def test_retries_stay_within_a_share_of_the_calls_plus_a_floor():
    """Finagle's arithmetic: over a 10 s window, 20 % of 100 calls + 1/s x 10 s = 30."""
    budget = RetryBudget(0.2, window=10.0, min_per_second=1.0)
    for n in range(100):
        budget.called(now=n * 0.05)
    granted = sum(budget.try_retry(now=5.0) for _ in range(100))
    assert granted == 30


def test_the_budget_forgets_calls_and_retries_older_than_its_window():
    budget = RetryBudget(0.5, window=10.0, min_per_second=0.0)
    for _ in range(10):
        budget.called(now=0.0)
    assert sum(budget.try_retry(now=1.0) for _ in range(10)) == 5
    assert not budget.try_retry(now=9.9)
    assert not budget.try_retry(now=10.5)  # the calls are forgotten too: nothing to share
    for _ in range(4):
        budget.called(now=11.5)  # the retries of 1.0 are forgotten now
    assert [budget.try_retry(now=11.5) for _ in range(3)] == [True, True, False]


@pytest.mark.parametrize("share", [0, -0.1, 1.5])
def test_a_budget_is_a_share_above_0_and_at_most_1(share):
    with pytest.raises(InvalidInput, match="above 0 and at most 1"):
        RetryBudget(share)


# --- hedging after a latency quantile ---------------------------------------------------------


def test_the_hedge_delay_is_the_quantile_of_recent_answers_with_a_floor():
    timer = HedgeTimer(0.95, floor=0.05, samples=100)
    for _ in range(19):
        timer.record(0.2)
    assert timer.delay() is None  # too few answers to know the tail
    timer.record(0.2)
    assert timer.delay() == 0.2
    for n in range(100):  # the window now holds 0.01 .. 1.00 s
        timer.record((n + 1) / 100)
    assert timer.delay() == pytest.approx(0.95)
    fast = HedgeTimer(0.5, floor=0.05)
    for _ in range(30):
        fast.record(0.001)
    assert fast.delay() == 0.05  # a 1 ms service is not called twice for a 2 ms answer


def test_the_window_forgets_old_latencies():
    timer = HedgeTimer(0.9, floor=0.0, samples=20)
    for _ in range(20):
        timer.record(5.0)
    for _ in range(20):
        timer.record(0.1)
    assert timer.delay() == 0.1


@pytest.mark.parametrize("quantile", [0, 1, 95])
def test_a_hedge_quantile_is_between_0_and_1(quantile):
    with pytest.raises(InvalidInput, match="between 0 and 1"):
        HedgeTimer(quantile)


# --- the shared retry loop with a budget, a deadline, a hedge ------------------------------


class Router:
    """Sherlock's routing steps over fixed instances; ``budget`` retries allowed."""

    timeout, connect_timeout = 5.0, 0.5

    def __init__(self, *ids, retries=1, budget=None, deadline=None, hedge_after=None,
                 retry_5xx=False):
        self.endpoints = endpoints(len(ids))
        for endpoint, name in zip(self.endpoints, ids, strict=True):
            endpoint.id = name
        self.retries, self.budget, self.deadline = retries, budget, deadline
        self.retry_5xx = retry_5xx
        self.hedge_after = hedge_after
        self.released = []

    def acquire(self, service, exclude=frozenset()):
        for endpoint in self.endpoints:
            if endpoint.id not in exclude:
                return endpoint
        from mwkit.errors import NoInstances
        raise NoInstances(service)

    def release(self, endpoint, started_wall, began, outcome, status, attempt, *,
                hedged=False, denied=None):
        self.released.append((endpoint.id, outcome, attempt, hedged, denied))
        return False

    def record_no_instances(self, service, started_wall):
        pass

    def call_started(self, service):
        pass

    def try_retry(self, service):
        if self.budget is None:
            return True
        self.budget -= 1
        return self.budget >= 0

    def hedge_delay(self, service):
        return self.hedge_after


def test_a_retry_the_budget_denies_is_not_made_and_says_so():
    router = Router("a", "b", budget=0)
    call = Call(router, "svc", "GET")
    for _ in call:
        call.refused()
    assert router.released == [("a", "refused", 1, False, "budget")]


def test_a_spent_deadline_stops_retries_and_attempts_wait_what_is_left():
    router = Router("a", "b", deadline=0.5)
    call = Call(router, "svc", "GET", deadline=0.2)  # the caller's is shorter: it wins
    for _ in call:
        assert call.current.timeout(5.0) <= 0.2
        assert 0 < int(call.current.headers()[DEADLINE_HEADER]) <= 200
        call.started_monotonic -= 1.0  # as if the attempt had taken a second
        call.timed_out()
    assert router.released == [("a", "timeout", 1, False, "deadline")]
    assert Call(Router("a"), "svc", "GET").current is None
    assert Call(Router("a"), "svc", "GET").time_left() is None


def test_a_hedge_goes_to_another_instance_once_and_only_for_idempotent_calls():
    router = Router("a", "b", "c", hedge_after=0.05)
    call = Call(router, "svc", "GET")
    for _ in call:
        assert call.hedge_delay() == 0.05
        hedge = call.hedge()
        assert (hedge.endpoint.id, hedge.number, hedge.hedged) == ("b", 2, True)
        assert call.hedge_delay() is None  # one hedge a call
        call.answered(200, hedge)
        call.answered(200)
        break
    assert sorted(router.released) == [("a", "ok", 1, False, None), ("b", "ok", 2, True, None)]
    assert call.summary() == {"attempts": 2, "hedged": True, "ejected": False}
    post = Call(router, "svc", "POST")
    assert post.hedge_delay() is None
    hurried = Call(router, "svc", "GET", deadline=0.04)  # no time left to hedge in
    assert hurried.hedge_delay() is None
    assert Call(Router("a", "b", budget=0, hedge_after=0.05), "svc", "GET").hedge() is None


def answer_all(call: Call, statuses: dict[str, int]) -> list[bool]:
    """Answer each attempt of ``call`` with its instance's status; what answered() said."""
    finals = []
    for endpoint in call:
        finals.append(call.answered(statuses[endpoint.id]))
        if finals[-1]:
            break
        call.set_aside(endpoint.id)
    return finals


def test_without_retry_5xx_an_answered_5xx_is_the_calls_answer():
    router = Router("a", "b")
    assert answer_all(Call(router, "svc", "GET"), {"a": 503, "b": 200}) == [True]
    assert router.released == [("a", "error", 1, False, None)]


def test_retry_5xx_asks_another_instance_for_an_idempotent_call_only():
    router = Router("a", "b", retry_5xx=True)
    call = Call(router, "svc", "GET")
    assert answer_all(call, {"a": 503, "b": 200}) == [False, True]
    assert router.released == [("a", "error", 1, False, None), ("b", "ok", 2, False, None)]
    assert call.summary()["attempts"] == 2
    post = Router("a", "b", retry_5xx=True)  # the instance did the work: not sent twice
    assert answer_all(Call(post, "svc", "POST"), {"a": 503, "b": 200}) == [True]


def test_retry_5xx_keeps_the_last_5xx_when_no_retry_is_left_or_allowed():
    """Two 5xx with retries=1: the second is the answer. One instance only: the loop ends
    and the caller gets the 5xx set aside. A budget that says no: the 5xx, denied."""
    both = Router("a", "b", retry_5xx=True)
    assert answer_all(Call(both, "svc", "GET"), {"a": 503, "b": 502}) == [False, True]
    alone = Call(Router("a", retry_5xx=True), "svc", "GET")
    assert answer_all(alone, {"a": 503}) == [False] and alone.kept == "a"
    broke = Router("a", "b", retry_5xx=True, budget=0)
    assert answer_all(Call(broke, "svc", "GET"), {"a": 503, "b": 200}) == [True]
    assert broke.released == [("a", "error", 1, False, "budget")]


@pytest.mark.parametrize("header, seconds", [("1500", 1.5), ("0", 0.0), ("-3", 0.0),
                                             (None, None), ("soon", None)])
def test_a_deadline_header_in_milliseconds(header, seconds):
    assert deadline_of(header) == seconds


# --- the same options from the environment and the command line -------------------------


def test_the_options_come_from_the_environment_off_by_default():
    from mwkit.settings import Settings

    assert {k: v for k, v in Settings.from_env({}).sherlock_options().items()
            if k in ("outlier_5xx", "retry_budget", "hedge", "deadline", "retry_5xx")} == \
        {"outlier_5xx": 0, "retry_budget": 0.0, "hedge": 0.0, "deadline": 0.0,
         "retry_5xx": False}
    env = {"MWKIT_SHERLOCK_OUTLIER_5XX": "5", "MWKIT_SHERLOCK_RETRY_BUDGET": "0.2",
           "MWKIT_SHERLOCK_HEDGE": "0.95", "MWKIT_SHERLOCK_DEADLINE": "1.5",
           "MWKIT_SHERLOCK_RETRY_5XX": "1", "MWKIT_SHERLOCK_POLICY": "p2c_least_request"}
    settings = Settings.from_env(env)
    assert settings.sherlock_options() == {
        "policy": "p2c_least_request", "retries": 1, "eject": True, "outlier_5xx": 5,
        "retry_budget": 0.2, "hedge": 0.95, "deadline": 1.5, "retry_5xx": True}
    assert Settings.from_env(settings.sherlock_env()) == settings  # what the monolith reads


@pytest.mark.parametrize("variable, value, message", [
    ("MWKIT_SHERLOCK_HEDGE", "95", r"hedge \(MWKIT_SHERLOCK_HEDGE or --hedge\) is a quantile"),
    ("MWKIT_SHERLOCK_RETRY_BUDGET", "2", r"retry_budget .* is a share, 0.2 for 20 %"),
    ("MWKIT_SHERLOCK_DEADLINE", "-1", r"deadline .* is seconds, 0 for off, not -1.0"),
    ("MWKIT_SHERLOCK_DEADLINE", "soon", r"MWKIT_SHERLOCK_DEADLINE must be a number"),
    ("MWKIT_SHERLOCK_OUTLIER_5XX", "2.5", r"MWKIT_SHERLOCK_OUTLIER_5XX must be a whole"),
])
def test_a_wrong_option_is_named(variable, value, message):
    from mwkit.errors import SettingsError
    from mwkit.settings import Settings

    with pytest.raises(SettingsError, match=message):
        Settings.from_env({variable: value})


def test_mwkit_up_and_mwkit_sherlock_take_the_options(monkeypatch):
    from mwkit.cli import build_parser, settings_of
    from mwkit.sherlock.commands import guarded

    for variable in ("MWKIT_SHERLOCK_HEDGE", "MWKIT_SHERLOCK_DEADLINE"):
        monkeypatch.delenv(variable, raising=False)
    for command in ("up", "sherlock"):
        args = build_parser().parse_args([command, "--outlier-5xx", "3", "--retry-budget",
                                          "0.1", "--hedge", "0.9", "--retry-5xx"])
        settings = guarded(settings_of(args), args)
        assert (settings.outlier_5xx, settings.retry_budget, settings.hedge,
                settings.deadline, settings.retry_5xx) == (3, 0.1, 0.9, 0.0, True)
