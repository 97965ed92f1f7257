"""Faults on purpose (mwkit.faults), seen from outside: real instances, real HTTP calls.

One stack on processes serves the process tests (each starts from two popularity
instances and leaves no fault behind); Docker gets a smaller set on a stack of its own.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

import pytest
import requests

from mwkit.errors import InvalidFault
from mwkit.faults import STACK_FAULTS_FILE, FaultInjector
from mwkit.settings import KIT_ROOT
from mwkit.stack import SERVICE, Stack
from mwkit.widgets import render
from mwkit.wizard.wizard import Wizard

LEASE = 3.0  # popularity's lease: max(3 x period 1 s, 2 s)
#: The waits below allow for 2 shared CPUs under load (a lease ends within LEASE s of the
#: fault and the Directory sweeps every 0.1 s; the margin is for a busy machine).


@pytest.fixture
def stack(process_stack):
    process_stack.scale(2)
    yield process_stack
    process_stack.clear()
    assert process_stack.faults() == []


def instances(stack) -> list:
    return [row for row in stack.status() if row.service == SERVICE]


def url_of(row) -> str:
    return f"http://{row.address}/"


def calls(url: str, n: int, timeout: float = 3.0) -> list[tuple[float, int]]:
    """``n`` calls one after the other: (seconds, status) each."""
    out = []
    with requests.Session() as session:
        for _ in range(n):
            started = time.perf_counter()
            status = session.get(url, timeout=timeout).status_code
            out.append((time.perf_counter() - started, status))
    return out


def p50(results) -> float:
    return statistics.median(seconds for seconds, _ in results)


def listed(stack) -> set[str]:
    with stack.directory() as client:
        return {i["id"] for i in client.instances(SERVICE)}


def within(bound: float, what: str, condition) -> float:
    """Seconds until ``condition()`` held; fails the test, naming ``what``, after ``bound``."""
    started = time.monotonic()
    while time.monotonic() - started < bound:
        if condition():
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"not within {bound:g} s: {what}")


def refused_or_timed_out(url: str, timeout: float = 0.5) -> bool:
    try:
        requests.get(url, timeout=timeout)
    except requests.RequestException:
        return True
    return False


def mwkit(workdir, *argv) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(KIT_ROOT), "MWKIT_WORKDIR": str(workdir)}
    return subprocess.run([sys.executable, "-m", "mwkit", *argv], env=env, text=True,
                          capture_output=True, timeout=60)


# --- processes --------------------------------------------------------------------------

def test_latency_fixed_then_for_a_fraction_of_calls_then_cleared(stack):
    slow, other = instances(stack)
    stack.inject(slow.instance, "latency", seconds=0.3)
    assert p50(calls(url_of(slow), 5)) >= 0.3
    assert p50(calls(url_of(other), 5)) < 0.1  # per instance: the other one is untouched

    stack.inject(slow.instance, "latency", seconds=0.2, fraction=0.5)  # replaces the first
    delayed = sum(seconds >= 0.2 for seconds, _ in calls(url_of(slow), 30))
    assert 5 <= delayed <= 25  # binomial(30, 0.5): outside this about once in 3,000 runs
    assert [f.id for f in stack.faults()] == [f"{slow.instance}/latency"]

    stack.clear(slow.instance)
    assert p50(calls(url_of(slow), 5)) < 0.1


def test_5xx_for_a_fraction_of_calls(stack):
    failing = instances(stack)[0]
    fault = stack.inject(failing.instance, "errors", fraction=0.3, status=502)
    assert fault.sentence == ("30% of calls are answered 502 by the fault filter, without "
                              "reaching the service.")
    statuses = [status for _, status in calls(url_of(failing), 100)]
    assert set(statuses) == {200, 502}
    assert 15 <= statuses.count(502) <= 45  # binomial(100, 0.3) +- 3.3 sd
    stack.clear(failing.instance, "errors")
    assert {status for _, status in calls(url_of(failing), 20)} == {200}


def test_a_fast_failing_instance_answers_503_at_once_and_stays_listed(stack):
    failing, _ = instances(stack)
    stack.inject(failing.instance, "fast-fail")
    results = calls(url_of(failing), 20)
    assert {status for _, status in results} == {503}
    assert p50(results) < 0.020
    time.sleep(2.5)  # two health-check periods: its checks go to the service and pass
    assert failing.instance in listed(stack)
    popular = requests.get(f"{stack.monolith_url}/popular.json", timeout=5)
    assert popular.status_code == 200  # Sherlock tried the other instance


def test_a_hang_times_calls_out_and_sigcont_brings_it_back(stack):
    hung, _ = instances(stack)
    stack.inject(hung.instance, "hang")
    assert refused_or_timed_out(url_of(hung))
    # Watson's checks (timeout 0.5 s, fall 2) deregister it: within about 3 s.
    within(8, "the hung instance leaves the Directory", lambda: hung.instance not in listed(stack))
    stack.clear(hung.instance)
    assert {status for _, status in calls(url_of(hung), 3)} == {200}
    within(8, "it is listed again", lambda: hung.instance in listed(stack))


def test_a_hung_instance_still_stops_in_order(stack):
    newest = instances(stack)[-1]
    stack.inject(newest.instance, "hang")
    started = time.monotonic()
    stack.scale(1)  # removes the newest: SIGCONT first, or SIGTERM waits for the 5 s grace
    assert time.monotonic() - started < 4
    log = (stack.workdir / "instances" / newest.instance / "instance.log").read_text()
    assert "SIGKILL" not in log


def test_a_lease_that_expires_while_the_service_still_answers(stack):
    quiet, _ = instances(stack)
    fault = stack.inject(quiet.instance, "lease")
    assert "no longer renews its lease" in fault.sentence
    within(LEASE + 2.5, "the lease runs out", lambda: quiet.instance not in listed(stack))
    assert requests.get(f"{url_of(quiet)}health", timeout=1).status_code == 200
    assert {status for _, status in calls(url_of(quiet), 3)} == {200}
    time.sleep(1.5)  # and it does not register again by itself
    assert quiet.instance not in listed(stack)
    stack.clear(quiet.instance)
    within(6, "it is listed again", lambda: quiet.instance in listed(stack))


def test_a_crash_is_kill_9_and_clear_removes_its_record(stack):
    crashed, _ = instances(stack)
    stack.inject(crashed.instance, "crash")
    assert refused_or_timed_out(url_of(crashed))
    assert crashed.instance in listed(stack)  # until its lease runs out
    row = next(r for r in stack.status() if r.instance == crashed.instance)
    assert row.phase == "failed" and [f.kind for f in row.faults] == ["crash"]
    stack.clear(crashed.instance)
    assert crashed.instance not in {r.instance for r in stack.status()}
    assert crashed.instance not in listed(stack)


def test_the_directory_stopped_then_started_again(stack):
    running = {row.instance for row in instances(stack)}
    stack.inject(None, "directory")
    assert refused_or_timed_out(f"{stack.directory_url}/health")
    popular = requests.get(f"{stack.monolith_url}/popular.json", timeout=5)
    assert popular.status_code == 200 and popular.json()["instance"] in running  # its table
    with pytest.raises(InvalidFault, match="stopped already"):
        stack.inject(None, "directory")
    stack.clear(fault="directory")
    assert requests.get(f"{stack.directory_url}/health", timeout=2).ok
    within(8, "every instance registered again", lambda: listed(stack) == running)


@pytest.mark.parametrize("instance, kind, params, message", [
    ("first", "slow", {}, "unknown fault 'slow'"),
    ("first", "errors", {"fraction": 1.5}, "fraction must be between 0 and 1"),
    ("first", "latency", {"seconds": -0.1}, "seconds must be between 0 and 60"),
    ("first", "latency", {}, "needs seconds="),
    ("first", "latency", {"seconds": 1, "status": 500}, "takes seconds, fraction, not status"),
    ("first", "errors", {"fraction": 0.5, "status": 404}, "status must be a whole number from"),
    ("popularity-v9-9", "hang", {}, "no instance 'popularity-v9-9'"),
    (None, "hang", {}, "the hang fault needs an instance"),
    ("first", "directory", {}, "give no instance"),
])
def test_bad_input_is_refused_and_changes_nothing(stack, instance, kind, params, message):
    first = instances(stack)[0]
    target = first.instance if instance == "first" else instance
    orders = stack.workdir / "instances" / first.instance / "state" / "faults.json"
    before = orders.read_bytes() if orders.exists() else None
    with pytest.raises(InvalidFault, match=message):
        stack.inject(target, kind, **params)
    assert stack.faults() == []
    assert (orders.read_bytes() if orders.exists() else None) == before
    assert p50(calls(url_of(first), 3)) < 0.1


def test_status_and_the_cli_show_each_fault_with_its_sentence(stack):
    first, second = instances(stack)
    added = mwkit(stack.workdir, "fault", "add", "latency", first.instance, "--seconds", "0.2",
                  "--fraction", "0.5")
    assert added.returncode == 0, added.stderr
    assert mwkit(stack.workdir, "fault", "add", "fast-fail", second.instance).returncode == 0
    status = mwkit(stack.workdir, "status").stdout
    assert (f"{first.instance}: latency: 50% of calls wait 0.2 s more in the instance's fault "
            "filter before reaching the service.") in status
    assert f"{second.instance}: fast-fail: every call is answered 503 at once" in status
    assert {status for _, status in calls(url_of(second), 3)} == {503}

    wrong = mwkit(stack.workdir, "fault", "add", "errors", first.instance, "--fraction", "2")
    assert wrong.returncode == 1
    assert wrong.stderr.strip() == ("mwkit fault: error: errors: fraction must be between 0 "
                                    "and 1, not 2.0")

    cleared = mwkit(stack.workdir, "fault", "clear", second.instance)
    assert cleared.returncode == 0 and "cleared 1 fault(s)" in cleared.stdout
    assert {status for _, status in calls(url_of(second), 3)} == {200}
    listing = mwkit(stack.workdir, "fault", "list").stdout
    assert f"{first.instance}: latency" in listing and "fast-fail" not in listing


def test_the_panel_injects_shows_and_removes_a_fault_with_one_click(stack):
    from mwkit.widgets import ControlPanel, ControlPanelModel

    first, _ = instances(stack)
    panel = ControlPanel(ControlPanelModel(stack, rate=5), refresh_seconds=0.2)
    try:
        assert panel.fault_list.children == ()  # no fault, no list
        assert first.instance in panel.fault_instance.options
        panel.fault_instance.value = first.instance
        panel.fault_kind.value = "errors"
        panel.fault_fraction.value = 1.0
        panel.inject.click()
        assert panel.model.last_error is None
        assert {status for _, status in calls(url_of(first), 5)} == {500}
        shown = " ".join(child.children[1].value for child in panel.fault_list.children[1:-1])
        assert "every call is answered 500 by the fault filter" in shown
        assert render.short(first.instance) in shown

        panel.fault_kind.value = "latency"
        panel.fault_fraction.value = 1.5  # the slider keeps it within 0..1
        assert panel.fault_fraction.value == 1.0
        panel.model.inject(first.instance, "latency", seconds=0.1)
        assert len(panel._fault_buttons()) == 2
        panel._fault_buttons()[0].click()  # remove: the errors fault, the first listed
        assert [f.kind for f in panel.model.faults] == ["latency"]
        assert {status for _, status in calls(url_of(first), 5)} == {200}
        panel.clear_all.click()
        assert panel.model.faults == [] and panel.fault_list.children == ()
        with pytest.raises(InvalidFault):
            panel.model.inject(first.instance, "errors", fraction=2)

        panel.model.inject(first.instance, "crash")  # the slider shows what still runs
        assert panel.model.counts["v1"] == 1 and panel.slider.value == 1
        panel.model.clear_fault(f"{first.instance}/crash")
        assert first.instance not in [row.instance for row in panel.model.snapshot]
    finally:
        panel.close()
    assert panel.inject.disabled


def test_down_removes_every_fault(tmp_path):
    workdir = tmp_path / "work"
    stack = Stack(workdir, runtime="process").up()
    try:
        stack.scale(1)
        stack.inject(instances(stack)[0].instance, "hang")
        stack.inject(None, "directory")
        assert len(stack.faults()) == 2
        status = mwkit(workdir, "status").stdout
        assert "the stack: directory: the Directory is stopped: nothing registers" in status
        assert ": hang: its service is stopped (SIGSTOP)" in status
    finally:
        down = mwkit(workdir, "down")
    assert down.returncode == 0, down.stderr
    assert FaultInjector(Wizard(workdir)).faults() == []
    assert not (workdir / STACK_FAULTS_FILE).exists()
    assert "active faults" not in mwkit(workdir, "status").stdout


# --- Docker -----------------------------------------------------------------------------

@pytest.mark.docker
def test_faults_on_docker(tmp_path):
    """The same order file and filter inside a container: latency, fast 503, the lease."""
    with Stack(tmp_path / "work", runtime="docker") as stack:
        stack.scale(2)
        first, second = instances(stack)
        stack.inject(first.instance, "latency", seconds=0.3)
        assert p50(calls(url_of(first), 5)) >= 0.3
        assert p50(calls(url_of(second), 5)) < 0.1
        stack.inject(second.instance, "fast-fail")
        results = calls(url_of(second), 10)
        assert {status for _, status in results} == {503} and p50(results) < 0.020
        stack.inject(first.instance, "lease")
        within(LEASE + 3, "the lease runs out", lambda: first.instance not in listed(stack))
        assert requests.get(f"{url_of(first)}health", timeout=1).status_code == 200
        stack.inject(first.instance, "hang")  # SIGSTOP inside the container, Watson goes on
        assert refused_or_timed_out(url_of(first), timeout=1.0)
        state = json.loads((stack.workdir / "instances" / first.instance / "state" /
                            "faults.json").read_text())
        assert set(state["faults"]) == {"latency", "lease", "hang"}
        assert len(stack.clear()) == 4
        assert {status for _, status in calls(url_of(second), 3)} == {200}
        assert p50(calls(url_of(first), 3)) < 0.1
        within(8, "both listed again after the clear",
               lambda: listed(stack) == {first.instance, second.instance})

        stack.inject(None, "directory")  # the container killed, then started again
        assert refused_or_timed_out(f"{stack.directory_url}/health")
        stack.clear(fault="directory")
        within(10, "both registered in the restarted Directory",
               lambda: listed(stack) == {first.instance, second.instance})
        stack.inject(second.instance, "crash")
        assert refused_or_timed_out(url_of(second))
        stack.clear(second.instance)
        assert second.instance not in {row.instance for row in stack.status()}
        left = stack.runtime.client.containers.list(all=True, filters={"label": [
            f"mwkit.instance={second.instance}", f"mwkit.workdir={stack.workdir.resolve()}"]})
        assert not left, [(c.name, c.status, c.attrs["State"]) for c in left]


def test_the_directory_fault_is_refused_on_etcd(tmp_path):
    wizard = Wizard(tmp_path, runtime="process", directory_url="etcd://127.0.0.1:2379")
    with pytest.raises(InvalidFault, match="registers in etcd"):
        FaultInjector(wizard).inject(None, "directory")
    assert not (tmp_path / STACK_FAULTS_FILE).exists()
