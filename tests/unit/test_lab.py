"""The lab's arithmetic on synthetic reloads: what a row counts, what a budget allows."""

from __future__ import annotations

import pytest

from mwkit import lab
from mwkit.traffic import Reload

T0 = 1_700_000_000.0


def reload(at: float, latency: float = 0.01, outcome: str = "ok", instance: str | None = "a",
           attempts: int = 1, hedged: bool = False, ejected: bool = False) -> Reload:
    return Reload(T0 + at, latency, "id", latency * 1000, outcome, 200, None, instance,
                  attempts, hedged, ejected)


def test_a_row_counts_slow_failed_extra_calls_and_ejections():
    records = [reload(0.0), reload(0.1, latency=1.5), reload(0.2, outcome="error", instance=None),
               reload(0.3, attempts=3, ejected=True), reload(0.4, attempts=2, hedged=True)]
    row = lab.row_of("peak_ewma", "slow", records, "b", {"policy": "peak_ewma"}, 10)
    assert row["reloads"] == 5
    assert row["within_1s"] == pytest.approx(60.0)  # the slow one and the failed one are not
    assert (row["failed"], row["extra_calls"], row["ejections"]) == (1, 3, 1)
    assert row["budget"] is None and row["instance"] == "b"


def test_the_budget_allows_its_share_of_the_calls_plus_one_a_second():
    records = [reload(0.1 * i) for i in range(31)]  # 3 s of reloads
    assert lab.budget_allows(0.2, 40, records) == int(0.2 * 40 + 1 * (3.0 + 10))
    row = lab.row_of("x", "slow", records, None, {"retry_budget": 0.2}, 40)
    assert row["budget"] == 21


def test_the_favourite_is_the_instance_that_answered_most():
    records = [reload(0, instance="b"), reload(1, instance="a"), reload(2, instance="b"),
               reload(3, outcome="error", instance=None)]
    assert lab.favourite(records) == "b"
    assert lab.favourite([reload(0, outcome="error", instance=None)]) is None


def test_names_and_the_table():
    assert lab.name_of({"policy": "peak_ewma", "outlier_5xx": 3}) == "peak_ewma outlier_5xx=3"
    rows = [lab.row_of("round_robin", "hang", [reload(0), reload(0.1, attempts=2)], "a",
                       {"policy": "round_robin", "retry_budget": 0.2}, 2)]
    table = lab.summary_table(rows).splitlines()
    assert table[0].split() == ["fault", "setting", "reloads", "<=", "1", "s", "failed",
                                "extra", "budget", "ejected"]
    assert table[2].split() == ["hang", "round_robin", "2", "100.0%", "0", "1", "10", "0"]


def test_an_unknown_setting_fails_before_anything_is_restarted():
    with pytest.raises(ValueError, match="not a Sherlock setting: retry"):
        lab.use(None, {"policy": "round_robin", "retry": 3})
