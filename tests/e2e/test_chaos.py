"""The chaos suite (mwkit/chaos.py) on real stacks, and the kit fixes it led to."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from mwkit import procs
from mwkit.chaos import FAULTS, Report, Row, report_json, run_chaos
from mwkit.cli import main
from mwkit.settings import KIT_ROOT
from mwkit.stack import Stack
from tests.e2e.test_supervisor import phase, start
from tests.helpers.wizard import wait_until


def test_a_killed_supervisor_takes_its_service_with_it(tmp_path, directory):
    """kill -9 of an instance's supervisor (and so of its Watson, a thread in it) must not
    leave the service running unseen: nobody would renew its lease or ever stop it."""
    proc, state_dir, _ = start(tmp_path, directory)
    try:
        wait_until(lambda: phase(state_dir).get("phase") == "live", 15, "phase live")
        service = phase(state_dir)["service_pid"]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
        wait_until(lambda: not procs.process_alive(service), 3, "the service gone")
    finally:
        procs.stop_group(proc, grace=1)


# --- the report ----------------------------------------------------------------------------


def test_the_report_prints_as_a_table_and_says_what_missed():
    report = Report("process", [
        Row("kill-instance", 56, 0, whole_after=2.66, note="killed popularity-v1-1"),
        Row("stop-instance", 73, 3, whole_after=None),
        Row("engine-restart", 90, 40, live_floor=0, whole_after=12.0,
            left_behind=["container mwkit-x-popularity-v1-2, which the kit counts gone"]),
    ])
    lines = report.table().splitlines()
    assert lines[0] == "chaos on the process runtime"
    assert lines[1].split() == ["fault", "calls", "failed", "whole", "after", "s", "left",
                                "behind", "target"]
    assert lines[3].split() == ["kill-instance", "56", "0", "2.7", "0", "met"]
    assert lines[4].split() == ["stop-instance", "73", "3", "never", "0", "MISSED"]
    assert lines[5].split() == ["engine-restart", "90", "40", "12.0", "1", "MISSED"]
    assert "kill-instance: killed popularity-v1-1" in lines
    assert "engine-restart left: container mwkit-x-popularity-v1-2, which the kit counts " \
           "gone" in lines
    assert not report.met
    assert Row("engine-restart", 90, 40, live_floor=0, whole_after=12.0).met  # none live
    assert json.loads(report_json(report))["rows"][0]["met"] is True


# --- the suite on real stacks -----------------------------------------------------------


def run_suite(tmp_path, runtime: str, faults=None, engine_restart=None):
    lines = []
    with Stack(workdir=tmp_path / "wd", runtime=runtime, progress=lines.append) as stack:
        report = run_chaos(stack, faults, rate=10, seconds=15, n=3, seed=10,
                           engine_restart=engine_restart, progress=lines.append)
    print(report.table())
    return report, lines


def assert_met(report, faults):
    assert [row.fault for row in report.rows] == list(faults)
    for row in report.rows:
        assert row.attempted > 10, row  # steady reloads ran through every fault
        if row.live_floor >= 2:
            assert row.failed == 0, row
        assert row.left_behind == [], row
        assert row.whole_after is not None and row.whole_after < 15, row
    assert report.met


def test_chaos_on_processes(tmp_path):
    started = time.monotonic()
    report, lines = run_suite(tmp_path, "process")
    assert_met(report, FAULTS)
    assert "took port" in "\n".join(lines)  # the race was won: the port was really taken
    assert "launch failed" in report.rows[FAULTS.index("take-port")].note or \
        "launch succeeded" in report.rows[FAULTS.index("take-port")].note
    assert time.monotonic() - started < 90


DOCKER_FAULTS = ("kill-instance", "stop-instance", "kill-directory", "kill-watson")
PIDFILE = Path("/var/run/mwkit-dockerd.pid")  # where .ci/start-docker.sh keeps dockerd's pid
#: Stop the engine .ci/start-docker.sh started, and wait until it has exited.
STOP_ENGINE = (f"sh -c 'pid=$(cat {PIDFILE}) && kill $pid && while [ -e /proc/$pid ] && "
               f"! grep -q \"^State:.*Z\" /proc/$pid/status; do sleep 0.2; done'")
START_ENGINE = f"bash {KIT_ROOT / '.ci' / 'start-docker.sh'}"


def engine_restart_allowed() -> bool:
    """Only in CI or when asked (CHAOS_ENGINE_RESTART=1): it stops every container."""
    return os.environ.get("CI") == "true" or os.environ.get("CHAOS_ENGINE_RESTART") == "1"


@pytest.mark.docker
def test_chaos_on_docker(tmp_path):
    restart = None
    if engine_restart_allowed():
        assert PIDFILE.is_file(), f"no {PIDFILE}: dockerd was not started by " \
                                  ".ci/start-docker.sh, and cannot be restarted here"
        restart = (STOP_ENGINE, START_ENGINE)
    report, _ = run_suite(tmp_path, "docker", DOCKER_FAULTS, engine_restart=restart)
    assert_met(report, DOCKER_FAULTS + (("engine-restart",) if restart else ()))


def test_mwkit_chaos_refuses_a_wrong_fault_before_starting_anything(capsys):
    assert main(["chaos", "--faults", "kill-instance,kill-everything"]) == 1
    assert main(["chaos", "--runtime", "docker", "--faults", "take-port"]) == 1
    assert main(["chaos", "--runtime", "process", "--engine-restart", "true", "true"]) == 1
    errors = capsys.readouterr().err.splitlines()
    assert errors == [
        "mwkit chaos: error: unknown fault(s) kill-everything; known: kill-instance, "
        "stop-instance, kill-directory, kill-watson, take-port, kill-up",
        "mwkit chaos: error: take-port: on the process runtime only",
        "mwkit chaos: error: the engine restart is for the Docker runtime only"]
