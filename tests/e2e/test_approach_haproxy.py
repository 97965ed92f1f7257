"""HAProxy in front of real popularity instances, fed from a real Directory: reloaded on
change (2015) or kept live through its runtime API, under scale-up, scale-down and kill -9."""

from __future__ import annotations

import subprocess
import time

import pytest
import requests

from mwkit.approaches import Approach
from mwkit.approaches.haproxy import (
    HaproxyReload,
    HaproxyRuntime,
    Server,
    haproxy_binary,
    render_config,
)
from mwkit.approaches.scenario import ApproachCalls
from mwkit.stack import Stack
from mwkit.traffic import Reload
from tests.helpers.wizard import wait_until

pytestmark = pytest.mark.haproxy


class Calls(ApproachCalls):
    """Calls to an approach, 50 a second for at most 30 s, as a busy caller makes them
    (the scenario's own load), and what these tests ask of them."""

    def __init__(self, approach: Approach) -> None:
        super().__init__(approach, rate=50, duration=30)

    def answered_by(self, since: float = 0.0) -> set[str]:
        return {r.service_id for r in self.records() if r.ok and r.time >= since}

    def failed(self, since: float = 0.0) -> list[Reload]:
        return [r for r in self.records() if not r.ok and r.time >= since]


def lost_to_the_reload(failed: list[Reload]) -> int:
    """How many calls a reload lost, asserting each was lost the one way it may: a reload
    refuses no connection (HAProxy's master hands the listener over), but a call sent on a
    kept-alive connection just as the old worker closes it fails (about one reload in ten
    at the pace of :class:`Calls`; see HaproxyReload)."""
    assert all(r.status is None and "closed connection" in r.error for r in failed), failed
    return len(failed)


@pytest.fixture
def stack(tmp_path):
    with Stack(tmp_path / "work", runtime="process") as stack:
        yield stack


def test_the_reloaded_haproxy_takes_a_scale_up_in_one_debounced_reload(stack):
    stack.scale(1)
    with HaproxyReload(stack.directory_url, debounce=2.0, workdir=stack.workdir) as haproxy, \
            Calls(haproxy) as calls:
        assert isinstance(haproxy, Approach)
        wait_until(lambda: calls.answered_by(), 5, "a first answer")
        first_worker = haproxy.workers()
        old = calls.answered_by()
        scaled = time.time()
        stack.scale(3)  # two registrations, well within the debounce window
        wait_until(lambda: len(calls.answered_by()) == 3, 10, "three instances answering")
        assert haproxy.costs()["reloads"] == 1  # the burst made one reload
        assert haproxy.workers().isdisjoint(first_worker)  # ... by HAProxy's new worker
        # no call reached a new instance before the window (from the first change) was over
        first_new = min(r.time for r in calls.records() if r.ok and r.service_id not in old)
        assert first_new - scaled >= 2.0
        assert lost_to_the_reload(calls.failed()) <= 1
        made = calls.stop()  # first: a call still in flight has its hop counted but no record
        assert haproxy.costs()["extra hops"] == len(made)  # every call: its hop
    assert {r.instance for r in calls.records()} == {"popularity-v1-1", "popularity-v1-2",
                                                    "popularity-v1-3"}


def test_the_runtime_api_follows_scale_up_and_down_without_a_reload(stack):
    stack.scale(1)
    with HaproxyRuntime(stack.directory_url, slots=4, workdir=stack.workdir) as haproxy, \
            Calls(haproxy) as calls:
        wait_until(lambda: calls.answered_by(), 5, "a first answer")
        worker = haproxy.workers()
        started = time.monotonic()
        stack.scale(3)
        wait_until(lambda: len(calls.answered_by()) == 3, 5, "three instances answering")
        scale_up = time.monotonic() - started
        stack.scale(1)  # graceful: deregistered, drained, then stopped
        after = time.time()
        time.sleep(1.0)
        assert len(calls.answered_by(since=after + 0.5)) == 1
        assert calls.failed() == []
        assert haproxy.workers() == worker  # the same process: never reloaded
        rows = [line.split() for line in
                haproxy.command("show servers state popularity").splitlines()[2:]]
        # srv_admin_state's first bit: in maintenance (forced); s4 never left it
        assert {row[3] for row in rows if int(row[6]) & 1} == {"s2", "s3", "s4"}
        assert "reloads" not in haproxy.costs()
        # 2 for the first instance, 2 per new one, 1 per one that left
        assert haproxy.costs()["runtime commands"] == 2 + 2 * 2 + 2
        assert scale_up < 3


def crash_one(stack, calls: Calls) -> tuple[str, float]:
    """kill -9 one of the stack's instances while ``calls`` run; (its id, when)."""
    wait_until(lambda: len(calls.answered_by()) == 2, 5, "both instances answering")
    victim = next(s.instance for s in stack.status() if s.service == "popularity")
    killed = time.time()
    stack.inject(victim, "crash")
    return victim, killed


def test_kill_9_loses_no_call_while_haproxy_checks_its_servers(stack):
    stack.scale(2)
    with HaproxyReload(stack.directory_url, debounce=0.5) as reloaded, \
            HaproxyRuntime(stack.directory_url, slots=2) as live, \
            Calls(reloaded) as reloaded_calls, Calls(live) as live_calls:
        wait_until(lambda: len(reloaded_calls.answered_by()) == 2, 5, "both instances answering")
        slots = {s.instance: s.name for s in live.slots}
        victim, killed = crash_one(stack, live_calls)
        time.sleep(3.0)  # HAProxy's checks, and the Directory's lease running out
        logs = {approach.name: (approach.scratch / "haproxy.log").read_text()
                for approach in (reloaded, live)}
    assert live_calls.failed(since=killed) == []
    # the reload that follows the Directory dropping it
    assert lost_to_the_reload(reloaded_calls.failed(since=killed)) <= 1
    for calls in (reloaded_calls, live_calls):
        assert len(calls.answered_by(since=killed + 0.5)) == 1
    # HAProxy's own checks took it out (before the Directory dropped it)
    assert f"popularity/{slots[victim]} is DOWN, reason: Layer4" in logs[live.name]
    assert f"popularity/{victim} is DOWN, reason: Layer4" in logs[reloaded.name]


def test_kill_9_fails_calls_without_haproxys_checks(stack):
    stack.scale(2)
    with HaproxyRuntime(stack.directory_url, slots=2, check=False) as live, \
            Calls(live) as calls:
        victim, killed = crash_one(stack, calls)
        time.sleep(1.0)  # well within the lease the Directory still keeps it for
    failed = calls.failed(since=killed)
    assert failed, "calls to the killed instance should fail"
    assert {r.outcome for r in failed} == {"error"}
    # refused by the dead instance: HAProxy's 503 names it; a call it had in flight when it
    # died gets no answer at all (HAProxy closes the caller's connection)
    assert {(r.status, r.instance) for r in failed if r.status is not None} == {(503, victim)}


def test_no_server_is_no_service_and_a_rendered_config_is_valid(tmp_path, directory):
    """With nothing registered HAProxy answers its own 503, which the caller tells from
    popularity's; and what render_config writes is a configuration HAProxy accepts."""
    with HaproxyReload(directory) as reloaded, HaproxyRuntime(directory, slots=3) as live:
        session = requests.Session()
        for approach in (reloaded, live):
            answer = approach.call(session)
            assert (answer.outcome, answer.status, answer.service_id) == \
                ("no_service", 503, None)
        config = tmp_path / "check.cfg"
        config.write_text(render_config(8080, "popularity",
                                        [Server("a", "127.0.0.1:1", "a")], slots=2,
                                        admin_socket=tmp_path / "s.sock"))
        checked = subprocess.run([haproxy_binary(), "-c", "-f", str(config)],
                                 capture_output=True, text=True, timeout=10)
        assert checked.returncode == 0, checked.stdout + checked.stderr
