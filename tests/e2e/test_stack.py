"""The whole demo stack, end to end, on real processes and real containers."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time

import psutil
import pytest
import requests

from mwkit.demo import run_demo
from mwkit.procs import create_time
from mwkit.settings import Settings
from mwkit.stack import Stack, teardown
from mwkit.wizard.runtimes.process import groups_of

STACKS = [
    pytest.param("process", "sqlite", id="process-sqlite"),
    pytest.param("process", "mariadb", id="process-mariadb", marks=pytest.mark.mariadb),
    pytest.param("docker", "mariadb", id="docker-mariadb", marks=pytest.mark.docker),
]


def popular(stack) -> dict:
    return requests.get(f"{stack.monolith_url}/popular.json", timeout=5).json()


def leftovers(stack) -> list:
    """Whatever of this stack still runs: process groups, or containers."""
    if stack.runtime.name == "process":
        return list(groups_of(stack.workdir))
    return stack.runtime.client.containers.list(ignore_removed=True,
        all=True, filters={"label": f"mwkit.workdir={stack.workdir}"})


@pytest.mark.parametrize("runtime, database", STACKS)
def test_the_stack_from_no_service_to_three_and_a_hard_kill(tmp_path, runtime, database):
    with Stack(tmp_path / "work", runtime=runtime, database=database) as stack:
        page = requests.get(f"{stack.monolith_url}/popular", timeout=5)
        assert "NO SERVICES AVAILABLE" in page.text
        started = time.monotonic()
        assert popular(stack)["service_id"] is None
        assert time.monotonic() - started < 1.0  # fast, never a hang

        stack.scale(1)
        first = popular(stack)
        assert first["error"] is None and first["service_id"]
        assert [u["username"] for u in first["users"]][:1] and first["users"][0]["karma"] >= \
            first["users"][-1]["karma"]
        assert "The Most Popular Users" in requests.get(f"{stack.monolith_url}/popular",
                                                        timeout=5).text

        stack.scale(3)
        answered = {popular(stack)["instance"] for _ in range(12)}
        assert answered == {"popularity-v1-1", "popularity-v1-2", "popularity-v1-3"}

        with stack.reloads(rate=20, duration=4) as reloads:
            time.sleep(1)
            stack.wizard.svkill("v1", now=True)  # kill -9 under steady reloads
            reloads.wait(10)
        records = reloads.records()
        assert len(records) >= 60
        assert [r for r in records if not r.ok] == []  # a hard kill loses no reload
        assert {r.instance for r in records[-20:]} == {"popularity-v1-1", "popularity-v1-2"}

        with stack.reloads(rate=20, duration=4) as reloads:
            time.sleep(0.5)
            stack.scale(1)  # graceful: Watson deregisters, drains, then SIGTERM
            reloads.wait(10)
        records = reloads.records()
        assert [r for r in records if not r.ok] == []  # a graceful scale-down loses none
        assert {r.instance for r in records[-20:]} == {"popularity-v1-1"}
    assert leftovers(stack) == []
    assert not (stack.workdir / "stack.json").exists()


def test_the_demo_writes_its_picture_and_table(tmp_path):
    settings = Settings.from_env(workdir=tmp_path / "work", runtime="process")
    result = run_demo(settings, output=tmp_path / "out", pace=0.5, progress=lambda line: None)
    header = result.picture.read_bytes()[:8]
    assert header == b"\x89PNG\r\n\x1a\n" and result.picture.stat().st_size > 20_000
    assert "popularity-v2-1" in result.table and "popularity-v1-3" in result.table
    assert "| service |" in result.summary_path.read_text()
    assert result.reloads > 100
    assert list(groups_of((tmp_path / "work").resolve())) == []


def test_down_removes_a_stack_but_leaves_the_process_that_made_it(tmp_path):
    """A notebook kernel that made a stack is not signalled: only its stack goes."""
    workdir = tmp_path / "work"
    script = (f"from mwkit.stack import Stack, teardown; Stack({str(workdir)!r}).up(); "
              "print('up', flush=True); import time; time.sleep(120)")
    kernel = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                              text=True, start_new_session=True)
    try:
        assert kernel.stdout.readline().strip() == "up"
        assert groups_of(workdir.resolve())
        teardown(workdir, progress=lambda line: None)
        assert list(groups_of(workdir.resolve())) == []
        assert kernel.poll() is None  # still running: nobody killed it
    finally:
        os.killpg(kernel.pid, signal.SIGKILL)
        kernel.wait()


def assert_writes_need_the_token(info: dict, workdir) -> None:
    """``mwkit up`` made a token: the Watsons have it (their instance registered), a local
    process without it can neither add an instance nor remove one, reads stay open, and
    no command line of the stack shows it (``ps`` is readable by every user)."""
    token, directory = info["directory_token"], info["directory_url"]
    assert token and len(token) >= 24
    instances = f"{directory}/v1/services/popularity/instances"
    fake = requests.put(f"{instances}/fake", json={"address": "127.0.0.1:9"}, timeout=5)
    assert fake.status_code == 401
    assert requests.delete(f"{instances}/popularity-v1-1", timeout=5).status_code == 401
    listed = requests.get(f"{directory}/v1/services/popularity", timeout=5)
    assert [i["id"] for i in listed.json()["instances"]] == ["popularity-v1-1"]
    for pgid in groups_of(workdir.resolve()):
        for process in psutil.Process(pgid).children(recursive=True) + [psutil.Process(pgid)]:
            assert token not in " ".join(process.cmdline())


def test_mwkit_up_serves_until_mwkit_down_stops_it(tmp_path):
    env = {**os.environ, "MWKIT_WORKDIR": str(tmp_path / "work")}
    up = subprocess.Popen([sys.executable, "-m", "mwkit", "up", "--retries", "0", "--no-eject"],
                          env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          start_new_session=True)
    try:
        lines = []
        for line in up.stdout:
            lines.append(line)
            if "the stack is up" in line:
                break
        assert "the stack is up" in lines[-1], "".join(lines)
        assert "retries 0, no ejection" in "".join(lines)
        info = json.loads((tmp_path / "work" / "stack.json").read_text())
        assert (info["retries"], info["eject"]) == (0, False)
        # it holds the database URL (MariaDB's password, when there is one): owner only
        assert stat.S_IMODE((tmp_path / "work" / "stack.json").stat().st_mode) == 0o600

        def mwkit(*args):
            done = subprocess.run([sys.executable, "-m", "mwkit", *args], env=env,
                                  capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stdout + done.stderr
            return done.stdout

        assert "popularity-v1-1 is registered" in mwkit("svrun", "popularity", "v1", "v1")
        assert "registered" in mwkit("status")
        assert_writes_need_the_token(info, tmp_path / "work")
        mwkit("down")
        assert up.wait(timeout=30) == 0
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)
            up.wait()
    assert list(groups_of((tmp_path / "work").resolve())) == []


def test_a_stale_stack_file_never_gets_another_program_signalled(tmp_path):
    """After a crash the recorded pid may belong to another program by now: only the
    process with the recorded create time is ever asked to stop."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    bystander = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        started = create_time(bystander.pid)
        for recorded in (started - 30.0, None):  # another process's start, or none at all
            (workdir / "stack.json").write_text(json.dumps(
                {"runtime": "process", "up_pid": bystander.pid, "up_created": recorded,
                 "watchdog_pid": bystander.pid, "watchdog_created": recorded}))
            teardown(workdir, progress=lambda line: None)
            assert bystander.poll() is None, "teardown signalled a process it did not start"
        assert not (workdir / "stack.json").exists()
    finally:
        bystander.kill()
        bystander.wait()


def test_teardown_removes_what_notebook_02_starts_by_hand(tmp_path):
    """02's Directory and tiny server carry the workdir's marks: a dead kernel's leftovers
    are found by teardown, as the notebooks' first cell promises."""
    from mwkit.directory import run_directory
    from mwkit.procs import free_port, python_command, spawn, stop_group, wait_for_http
    from mwkit.wizard.runtimes.process import marks

    workdir = tmp_path / ".mwkit"
    workdir.mkdir()
    port = free_port()
    tiny = spawn(python_command("-m", "http.server", str(port), "--bind", "127.0.0.1"),
                 log_path=tmp_path / "tiny.log", env=marks(workdir, role="tiny-site"))
    try:
        wait_for_http(f"http://127.0.0.1:{port}/", proc=tiny)
        with run_directory(log_path=tmp_path / "directory.log",
                           env=marks(workdir, role="directory")) as url:
            assert len(groups_of(workdir)) == 2
            removed = teardown(workdir, progress=lambda line: None)
            assert sorted(line.split()[0] for line in removed) == ["directory", "tiny-site"]
            assert tiny.wait(timeout=10) is not None
            with pytest.raises(requests.ConnectionError):
                requests.get(f"{url}/health", timeout=2)
        assert groups_of(workdir) == {}
    finally:
        stop_group(tiny, grace=1)
