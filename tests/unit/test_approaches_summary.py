"""The scenario's arithmetic on made-up calls: first calls, failures after the kill, the
canary's share, the table (mwkit.approaches.scenario)."""

from __future__ import annotations

import pytest

from mwkit.approaches import scenario
from mwkit.approaches.scenario import Phases, Run
from mwkit.traffic import Mark, Reload

T0 = 1_700_000_000.0


def call(at: float, answered_by: str | None = "old", outcome: str = "ok",
         attempts: int = 1) -> Reload:
    return Reload(T0 + at, 0.01, answered_by if outcome == "ok" else None, None, outcome,
                  200, None, None, attempts)


def test_first_calls_count_from_each_registration_and_say_never():
    records = [call(0.0), call(1.0, "b"), call(1.5, "a"), call(2.0, "b"),
               call(2.5, "c", outcome="error")]
    registered = {"a": T0 + 0.5, "b": T0 + 1.2, "c": T0 + 2.0}
    # b answered at 1.0, before its registration (an approach that does not wait): 0 s
    assert scenario.first_calls(records, registered) == {
        "a": pytest.approx(1.0), "b": 0.0, "c": None}


def test_failures_and_shares_count_only_their_window():
    records = [call(0.0, outcome="error"), call(1.0, outcome="timeout"), call(1.1),
               call(2.0, outcome="no_service"), call(3.0)]
    assert scenario.failed_between(records, T0 + 1.0, T0 + 3.0) == 2  # [start, end)
    assert scenario.failed_between(records, T0 + 3.0, T0 + 9.0) == 0
    canary = [call(0.0), call(1.0, "v2"), call(2.0), call(3.0, "v2"), call(4.0, "v2")]
    assert scenario.share_of(canary, "v2", T0 + 1.0, T0 + 4.0) == pytest.approx(200 / 3)
    assert scenario.share_of(canary, "v2", T0 + 10, T0 + 11) is None
    assert scenario.share_of(canary, None, T0, T0 + 5) == 0.0  # no canary: no share


def made_up_run() -> Run:
    fast = [call(0.0), call(2.1, "a"), call(2.2, "b"), call(5.0, outcome="error"),
            call(8.0, "v2"), call(8.5, "a")]
    slow = [call(0.0), call(2.0), call(4.0, "a"), call(5.0, outcome="error"),
            call(5.5, outcome="error"), call(8.0, "a"), call(8.5, "a"), call(12.0, "v2")]
    return Run(records={"fast": fast, "slow": slow},
               marks=[Mark(T0 + 1.0, scenario.SCALE)],
               labels={"old": "popularity-v1-1", "a": "popularity-v1-2",
                       "b": "popularity-v1-3", "v2": "popularity-v2-1"},
               new={"a": T0 + 2.0, "b": T0 + 2.0}, canary="v2",
               windows={"killed": (T0 + 4.5, T0 + 7.0), "canary": (T0 + 7.5, T0 + 10.0)},
               costs={"fast": {"pushes received": 6}, "slow": {"DNS queries": 12}})


def test_summarize_makes_one_row_per_approach_with_the_three_measures():
    rows = {row["approach"]: row for row in scenario.summarize(made_up_run())}
    fast, slow = rows["fast"], rows["slow"]
    assert (fast["calls"], fast["failed"], slow["calls"], slow["failed"]) == (6, 1, 8, 2)
    assert fast["first_new_s"] == pytest.approx(0.1) and fast["all_new_s"] == pytest.approx(0.2)
    assert slow["first_new_s"] == pytest.approx(2.0)
    assert slow["all_new_s"] is None  # b never answered it: not every new one got a call
    assert (fast["failed_after_kill"], slow["failed_after_kill"]) == (1, 2)
    assert fast["canary_share"] == pytest.approx(50.0)  # 8.0 and 8.5 in [7.5, 10)
    assert slow["canary_share"] == 0.0  # its canary call came after the removal
    assert slow["costs"] == {"DNS queries": 12}


def test_the_table_names_every_approach_and_says_never():
    table = scenario.format_summary(scenario.summarize(made_up_run()))
    lines = table.splitlines()
    assert lines[0].startswith("approach") and len(lines) == 4
    assert "never" in lines[3] and "DNS queries 12" in lines[3]
    assert "0.10 s" in lines[2] and "pushes received 6" in lines[2]


def test_the_default_phases_fit_a_notebook_cell():
    assert Phases().total <= 30


def test_the_figure_has_a_row_per_approach_and_the_three_bars():
    from mwkit import plots

    run = made_up_run()
    figure = plots.approaches(run.records, run.marks, scenario.summarize(run), run.labels)
    axes = figure.get_axes()
    assert len(axes) == 2 + len(plots.APPROACH_BARS)
    assert [ax.get_title(loc="left") for ax in axes[:2]] == ["fast", "slow"]
    legend = [text.get_text() for text in axes[0].get_legend().get_texts()]
    assert "v1-2 (2)" in legend  # instances by their short names
    first_call = [text.get_text() for text in axes[2].texts]
    assert first_call == ["0.1 s", "2.0 s"]
    all_bars = [text.get_text() for ax in axes[2:] for text in ax.texts]
    assert "50 %" in all_bars and "2" in all_bars
    assert figure._repr_png_().startswith(b"\x89PNG")


def test_an_approach_whose_program_is_missing_is_left_out_with_what_to_install(
        monkeypatch, tmp_path):
    from types import SimpleNamespace

    from mwkit.approaches import dns, haproxy
    from mwkit.errors import ProgramMissing

    def no_dnsmasq():
        raise ProgramMissing(dns.INSTALL)

    monkeypatch.setattr(dns, "dnsmasq_binary", no_dnsmasq)
    monkeypatch.setattr(haproxy, "haproxy_binary", lambda: "/usr/sbin/haproxy")  # any machine
    stack = SimpleNamespace(directory_url="http://127.0.0.1:9", workdir=tmp_path)
    approaches, missing = scenario.the_four(stack)  # makes them; starts nothing
    assert [approach.name for approach in approaches] == [
        "HAProxy (reload)", "HAProxy (runtime API)", "Sherlock (push)"]
    assert missing == [dns.INSTALL] and "apt-get install dnsmasq-base" in missing[0]
