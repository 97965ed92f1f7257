"""Sherlock's HAProxy data plane (``mwkit sherlock --data-plane haproxy``) in front of real
popularity instances, fed from a real Directory: scale-up, graceful scale-down and kill -9
with calls running, none failed and HAProxy never reloaded; what it refuses; its command."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

import psutil
import pytest
import requests

from mwkit.approaches.haproxy import haproxy_binary
from mwkit.approaches.scenario import ApproachCalls
from mwkit.errors import InvalidInput, StartFailed
from mwkit.procs import free_port, python_command
from mwkit.sherlock.haproxy_plane import BALANCE, HaproxyPlane, render_plane
from mwkit.wizard.runtimes.process import groups_of
from tests.helpers.wizard import wait_until

pytestmark = pytest.mark.haproxy


def answered_by(calls: ApproachCalls, since: float = 0.0) -> set[str]:
    return {r.service_id for r in calls.records() if r.ok and r.time >= since}


def in_maintenance(plane: HaproxyPlane, service: str = "popularity") -> set[str]:
    """The slots HAProxy has in maintenance (``srv_admin_state``'s first bit: forced)."""
    rows = [line.split() for line in
            plane.command(f"show servers state {service}").splitlines()[2:]]
    return {row[3] for row in rows if int(row[6]) & 1}


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_the_command_routes_through_haproxy_and_stops_it_on_sigterm(process_stack):
    process_stack.scale(1)
    port = free_port()
    command = subprocess.Popen(
        python_command("-m", "mwkit", "sherlock", "--data-plane", "haproxy", "--directory",
                       process_stack.directory_url, "--listen", f"127.0.0.1:{port}",
                       "--service", "popularity", "--slots", "4"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "HAProxy data plane on" in command.stdout.readline()
        children = psutil.Process(command.pid).children(recursive=True)
        assert {c.name() for c in children} == {"haproxy"}
        answer = requests.get(f"http://127.0.0.1:{port}/popularity/?page=1", timeout=5)
        assert answer.status_code == 200 and answer.json()["service_id"]
        assert answer.headers["X-Mwkit-Server"] == "s1"
        unrouted = requests.get(f"http://127.0.0.1:{port}/elsewhere/", timeout=5)
        assert unrouted.status_code == 503 and "routes popularity" in unrouted.text
        command.send_signal(signal.SIGTERM)
        assert command.wait(10) == 0, command.stderr.read()
    finally:
        command.kill()
    psutil.wait_procs(children, timeout=5)
    assert not any(c.is_running() for c in children)  # HAProxy's master and worker
    assert not listening(port)


def test_options_it_cannot_honour_are_refused_before_anything_starts(process_stack, tmp_path):
    workdir = tmp_path / "work"
    port = free_port()
    for options, said in ((["--hedge", "0.9"], "--hedge"),
                          (["--policy", "peak_ewma"], "--policy peak_ewma"),
                          (["--retry-5xx"], "--retry-5xx")):
        refused = subprocess.run(
            python_command("-m", "mwkit", "sherlock", "--data-plane", "haproxy",
                           "--directory", process_stack.directory_url, "--listen",
                           f"127.0.0.1:{port}", *options),
            capture_output=True, text=True, timeout=30,
            env={**os.environ, "MWKIT_WORKDIR": str(workdir)})
        assert refused.returncode == 1
        assert f"only the Python data plane has {said}" in refused.stderr
        assert "Traceback" not in refused.stderr
    python_only = subprocess.run(
        python_command("-m", "mwkit", "sherlock", "--service", "popularity", "--listen",
                       f"127.0.0.1:{port}"), capture_output=True, text=True, timeout=30)
    assert python_only.returncode == 1 and "--data-plane haproxy" in python_only.stderr
    with pytest.raises(InvalidInput, match="peak_ewma"):
        HaproxyPlane(process_stack.directory_url, policy="peak_ewma", workdir=workdir)
    assert groups_of(workdir) == {} and not listening(port)


def test_scale_up_graceful_scale_down_and_kill_9_lose_no_call(process_stack):
    stack = process_stack
    stack.scale(1)
    with HaproxyPlane(stack.directory_url, slots=4, workdir=stack.workdir) as plane, \
            ApproachCalls(plane, rate=50, duration=30) as calls:
        wait_until(lambda: answered_by(calls), 5, "a first answer")
        worker = plane.workers()
        stack.scale(3)
        wait_until(lambda: len(answered_by(calls)) == 3, 5, "three instances answering")
        stack.scale(2)  # graceful: deregistered, drained, then stopped
        wait_until(lambda: len(in_maintenance(plane)) == 2, 5, "one slot drained")
        assert "s4" in in_maintenance(plane)  # never used
        after = time.time()
        time.sleep(1.0)
        assert len(answered_by(calls, since=after + 0.5)) == 2
        victim = next(s.instance for s in stack.status() if s.service == "popularity")
        killed = time.time()
        stack.inject(victim, "crash")
        # HAProxy's own checks take it out first ("is DOWN"); the Directory's delete comes
        # when its lease runs out, and then its slot goes to maintenance. Calls flow all along.
        wait_until(lambda: len(in_maintenance(plane)) == 3, 10, "the dead one's slot freed")
        time.sleep(0.5)  # and on, after that change
        records = calls.stop()
        log = (plane.scratch / "haproxy.log").read_text()
        assert plane.workers() == worker  # the same process: never reloaded
    assert [r for r in records if not r.ok] == []
    assert len(answered_by(calls, since=killed + 0.5)) == 1
    assert "is DOWN" in log  # HAProxy's own checks took the dead one out
    assert len(records) > 200


@pytest.mark.parametrize("policy", sorted(BALANCE))
def test_every_policy_renders_a_configuration_haproxy_accepts(tmp_path, policy):
    config = tmp_path / "plane.cfg"
    config.write_text(render_plane("127.0.0.1", 8080, ["popularity", "other"], 3,
                                   tmp_path / "s.sock", balance=BALANCE[policy],
                                   retries=2, timeout=2.5))
    checked = subprocess.run([haproxy_binary(), "-c", "-f", str(config)],
                             capture_output=True, text=True, timeout=10)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "timeout server 2500ms" in config.read_text()


def test_an_instance_beyond_the_slots_gets_none_until_one_is_freed(process_stack, caplog):
    """(Last: it leaves a killed instance behind.)"""
    process_stack.scale(1)
    with HaproxyPlane(process_stack.directory_url, slots=1) as plane:
        first = plane.slots[0].instance
        process_stack.scale(2)
        wait_until(lambda: plane.left_out, 5, "an instance left out")
        assert "all 1 slots of popularity are taken" in caplog.text
        assert plane.slots[0].instance == first
        process_stack.inject(first, "crash")  # its slot is freed once its lease runs out
        wait_until(lambda: not plane.left_out, 8, "no instance left out")
        assert plane.slots[0].instance != first
    plane = HaproxyPlane(process_stack.directory_url, slots=1)
    process_stack.scale(2)
    with pytest.raises(StartFailed, match="--slots 2 or more"):
        plane.__enter__()
    assert plane.process is None
