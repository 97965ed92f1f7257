"""The "break it" runs of notebooks 06 and 07: what Sherlock's retries, its ejection and
Watson's drain each prevent, shown by turning them off (real processes, real HTTP).

One stack for the module, on processes and SQLite. Its monolith's Sherlock starts with
``retries=0, eject=False`` (a router that only follows the Directory): a ``kill -9`` and a
scale-down without drain fail page reloads. Then ``use_sherlock`` gives it the kit's
defaults back, and neither fails a single reload.
"""

from __future__ import annotations

import json
import time

import pytest
import requests

from mwkit.stack import Stack

RATE, DURATION = 20, 4  # 80 reloads a run: bounded, and enough to hit every instance


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("break-it") / "work"
    with Stack(workdir, runtime="process", database="sqlite", policy="round_robin", retries=0,
               eject=False) as stack:  # round robin: the dead instance gets its share
        yield stack


def failed_reloads(stack, remove) -> tuple[int, int]:
    """Start steady reloads, ``remove()`` an instance under them; (failed, all) reloads."""
    stack.scale(3)
    with stack.reloads(rate=RATE, duration=DURATION) as reloads:
        time.sleep(0.5)
        remove()
        assert reloads.wait(DURATION + 20)
    records = reloads.records()
    assert len(records) >= RATE * DURATION * 0.75
    return len([r for r in records if not r.ok]), len(records)


def test_the_stack_runs_and_records_sherlocks_settings(stack):
    info = json.loads((stack.workdir / "stack.json").read_text())
    assert (info["policy"], info["retries"], info["eject"]) == ("round_robin", 0, False)
    assert (stack.retries, stack.eject) == (0, False)


def test_kill_9_without_retries_or_ejection_fails_reloads(stack):
    failed, _ = failed_reloads(stack, lambda: stack.wizard.svkill("v1", now=True))
    assert failed > 0  # calls go to the dead port until its lease runs out


def test_a_scale_down_without_drain_fails_reloads(stack):
    before = {i.id for i in stack.scale(3)}
    failed, _ = failed_reloads(stack, lambda: stack.scale(2, drain=False))
    assert failed > 0  # calls go to the closed port until Watson's checks fail `fall` times
    [gone] = before - {s.instance for s in stack.status()}
    log = (stack.workdir / "instances" / gone / "instance.log").read_text()
    assert "phase stopping" in log  # the naive order: the service first, still registered
    events = requests.get(f"{stack.directory_url}/v1/events", timeout=2).json()["events"]
    assert [e["kind"] for e in events if e["instance"] == gone][-1] == "deregistered"


def test_with_the_defaults_neither_fails_a_reload(stack):
    stack.use_sherlock(retries=1, eject=True)
    info = json.loads((stack.workdir / "stack.json").read_text())
    assert (info["policy"], info["retries"], info["eject"]) == ("round_robin", 1, True)
    failed, total = failed_reloads(stack, lambda: stack.wizard.svkill("v1", now=True))
    assert (failed, total) == (0, total)  # retried on another instance, then ejected
    failed, total = failed_reloads(stack, lambda: stack.scale(2))  # graceful: drained first
    assert (failed, total) == (0, total)


def test_the_monolith_takes_the_balancer_options_and_its_reloads_show_them(stack):
    """One of three instances answers every call with a 503 (a fault, #12): with outlier
    ejection after 3 in a row the monolith's Sherlock leaves it out, longer each time,
    and the reloads that got it ejected say so (the dashboard marks them)."""
    stack.use_sherlock(outlier_5xx=3, retry_budget=0.2, hedge=0.95, deadline=2.0)
    info = json.loads((stack.workdir / "stack.json").read_text())
    assert (info["outlier_5xx"], info["retry_budget"], info["hedge"], info["deadline"]) == \
        (3, 0.2, 0.95, 2.0)
    failing = stack.scale(3)[0].id
    stack.inject(failing, "errors", fraction=1.0, status=503)
    try:
        with stack.reloads(rate=RATE, duration=DURATION) as reloads:
            assert reloads.wait(DURATION + 20)
    finally:
        stack.clear()
        stack.use_sherlock(outlier_5xx=0, retry_budget=0, hedge=0, deadline=0)
    records = reloads.records()
    ejecting = [r for r in records if r.ejected]
    assert ejecting and all(r.outcome == "error" for r in ejecting)
    failed = [r for r in records if not r.ok]
    # ejected for 1 s, then 2 s, then 3 s: 3 failed reloads before each ejection at most
    assert len(failed) <= 3 * len(ejecting) + 3 and len(failed) < len(records) / 6
