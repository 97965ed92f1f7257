"""A stack stops with its owner: kill -9 the program that made it, and it goes too.

Each test runs the owner as a separate Python process, as a notebook kernel would be, and
kills it as a dying kernel dies: SIGKILL, no clean-up code run.
"""

from __future__ import annotations

import functools
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from mwkit.procs import process_alive
from mwkit.stack import Stack, teardown
from mwkit.wizard.runtimes.process import groups_of

STACKS = [
    pytest.param("process", "sqlite", id="process-sqlite"),
    pytest.param("process", "mariadb", id="process-mariadb", marks=pytest.mark.mariadb),
    pytest.param("docker", "mariadb", id="docker-mariadb", marks=pytest.mark.docker),
]


@functools.cache
def docker():
    """A Docker client, or None without an engine."""
    from mwkit.wizard.engine import docker_available, docker_client

    return docker_client() if docker_available() else None


def containers(workdir: Path) -> list[str]:
    """The names of the containers labelled with ``workdir`` (none without Docker)."""
    if docker() is None:
        return []
    found = docker().containers.list(ignore_removed=True,
        all=True, filters={"label": f"mwkit.workdir={workdir.resolve()}"})
    return [c.name for c in found]


def leftovers(workdir: Path) -> list:
    """Whatever of ``workdir``'s stack still runs: process groups (the watchdog's too) and
    containers."""
    return [*groups_of(workdir), *containers(workdir)]


def watchdog_of(workdir: Path) -> tuple[int | None, float | None]:
    info = json.loads((workdir / "stack.json").read_text())
    return info["watchdog_pid"], info["watchdog_created"]


@pytest.fixture
def owner(tmp_path):
    """Start an owner process that makes a stack in ``tmp_path / 'work'``; kill -9 it and
    remove whatever is left after the test."""
    workdir = tmp_path / "work"
    started = []

    def start(runtime: str = "process", database: str = "sqlite",
              detach: bool = False) -> subprocess.Popen:
        script = (f"from mwkit.stack import Stack\n"
                  f"stack = Stack({str(workdir)!r}, runtime={runtime!r}, database={database!r},"
                  f" detach={detach!r}).up()\n"
                  f"stack.scale(1)\n"
                  f"print('up', flush=True)\n"
                  f"import time; time.sleep(300)\n")
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                                text=True, start_new_session=True)
        started.append(proc)
        assert proc.stdout.readline().strip() == "up"
        return proc

    start.workdir = workdir
    yield start
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    teardown(workdir, force=True, progress=lambda line: None)


def kill_9(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.mark.parametrize("runtime, database", STACKS)
def test_a_stack_stops_within_seconds_when_its_owner_is_killed(owner, runtime, database):
    kernel = owner(runtime, database)
    workdir = owner.workdir
    pid, created = watchdog_of(workdir)
    assert process_alive(pid, created)
    assert len(leftovers(workdir)) >= 4  # Directory, monolith, an instance, the watchdog

    kill_9(kernel)
    deadline = time.monotonic() + 10  # the stack goes first, then the watchdog ends itself
    while ((left := leftovers(workdir)) or process_alive(pid, created)) and \
            time.monotonic() < deadline:
        time.sleep(0.2)
    assert left == []
    assert not process_alive(pid, created)
    assert not (workdir / "stack.json").exists()
    log = (workdir / "watchdog.log").read_text()
    assert f"pid {kernel.pid} is gone" in log and log.rstrip().endswith("done"), log


def test_a_detached_stack_outlives_its_owner_until_teardown(owner):
    kernel = owner(detach=True)
    workdir = owner.workdir
    assert watchdog_of(workdir) == (None, None)
    monolith = json.loads((workdir / "stack.json").read_text())["monolith_url"]

    kill_9(kernel)
    time.sleep(2)  # four times the watchdog's period, had there been one
    assert requests.get(f"{monolith}/popular.json", timeout=5).json()["service_id"]
    assert len(groups_of(workdir)) == 3  # the Directory, the monolith, the instance

    teardown(workdir, progress=lambda line: None)
    assert leftovers(workdir) == []


def test_a_normal_exit_leaves_no_watchdog(tmp_path):
    workdir = tmp_path / "work"
    with Stack(workdir, runtime="process", database="sqlite") as stack:
        pid, created = watchdog_of(stack.workdir)
        assert process_alive(pid, created)
    assert not process_alive(pid, created)
    assert leftovers(workdir) == []
    log = (workdir / "watchdog.log").read_text()
    assert "stopped" in log and "taking its stack down" not in log, log


@pytest.mark.parametrize("database", ["sqlite", pytest.param("mariadb",
                                                             marks=pytest.mark.mariadb)])
def test_mwkit_up_detach_returns_and_the_stack_runs_until_mwkit_down(tmp_path, database):
    from mwkit.wizard.database import wait_for_mysql

    workdir = tmp_path / "work"
    env = {**os.environ, "MWKIT_WORKDIR": str(workdir), "MWKIT_RUNTIME": "process"}

    def mwkit(*args):
        done = subprocess.run([sys.executable, "-m", "mwkit", *args], env=env,
                              capture_output=True, text=True, timeout=90)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    try:
        assert "mwkit down" in mwkit("up", "--detach", "--db", database)
        info = json.loads((workdir / "stack.json").read_text())
        assert info["watchdog_pid"] is None
        page = requests.get(f"{info['monolith_url']}/popular", timeout=5)
        assert "NO SERVICES AVAILABLE" in page.text  # served after `mwkit up` has exited
        if database == "mariadb":  # still up after Python let go of it
            wait_for_mysql(info["database_url"], 5, lambda: None)
        mwkit("down")
        assert leftovers(workdir) == []
    finally:
        teardown(workdir, force=True, progress=lambda line: None)


def test_mwkit_up_owner_ties_a_detached_stack_to_another_process(tmp_path):
    """A notebook's ``!mwkit up --detach --owner {os.getpid()}``: the command returns at
    once, the stack serves, and it goes when the kernel (here a sleeping Python) is killed.
    As on a remote Jupyter (MWKIT_LINKS=proxy), the links it prints go through the proxy."""
    workdir = tmp_path / "work"
    env = {**os.environ, "MWKIT_WORKDIR": str(workdir), "MWKIT_RUNTIME": "process",
           "MWKIT_LINKS": "proxy"}
    kernel = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"],
                              start_new_session=True)

    def mwkit(*args):
        return subprocess.run([sys.executable, "-m", "mwkit", *args], env=env,
                              capture_output=True, text=True, timeout=90)

    try:
        done = mwkit("up", "--detach", "--owner", str(kernel.pid))
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"or until process {kernel.pid} ends" in done.stdout
        port = re.search(r"open /proxy/(\d+)/popular\n", done.stdout)
        assert port and f"the monolith answers at /proxy/{port[1]}/popular" in done.stdout
        pid, created = watchdog_of(workdir)
        assert process_alive(pid, created)
        monolith = json.loads((workdir / "stack.json").read_text())["monolith_url"]
        assert monolith == f"http://127.0.0.1:{port[1]}"
        page = requests.get(f"{monolith}/popular", timeout=5)
        assert "NO SERVICES AVAILABLE" in page.text  # served after `mwkit up` has exited

        kill_9(kernel)
        deadline = time.monotonic() + 10
        while (left := leftovers(workdir)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert left == []
        assert f"pid {kernel.pid} is gone" in (workdir / "watchdog.log").read_text()

        refused = mwkit("up", "--detach", "--owner", str(kernel.pid))  # a dead owner
        assert refused.returncode == 1
        assert f"process {kernel.pid} does not run" in refused.stderr
        assert leftovers(workdir) == []
    finally:
        if kernel.poll() is None:
            kill_9(kernel)
        teardown(workdir, force=True, progress=lambda line: None)
