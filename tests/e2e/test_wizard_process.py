"""The wizard end to end on the process runtime: a real Directory, real tiny services."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests

from mwkit import procs
from mwkit.errors import SpecError
from mwkit.names import InvalidName
from mwkit.procs import group_alive
from mwkit.settings import KIT_ROOT
from mwkit.wizard.runtimes import WizardError, get_runtime
from mwkit.wizard.runtimes.process import MARK, TEST_SESSION
from mwkit.wizard.source import ServiceSource
from mwkit.wizard.state import StateError
from mwkit.wizard.wizard import Wizard
from tests.helpers.wizard import listed, make_repo, make_service, wait_until

REPO = str(KIT_ROOT)
GIT_IDENTITY = {"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t.invalid",
                "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}


def group_gone(pid: int) -> bool:
    """No process of the group runs any more (a zombie nobody reaps does not count)."""
    return not group_alive(pid)


@pytest.fixture
def wizard(tmp_path, directory):
    sources = {"tiny": ServiceSource(make_service(tmp_path / "tiny")),
               "broken": ServiceSource(make_service(tmp_path / "broken", "broken", "init-fails")),
               "quitter": ServiceSource(make_service(tmp_path / "quitter", "quitter", "exits")),
               "sick": ServiceSource(make_service(tmp_path / "sick", "sick", "sick"))}
    with Wizard(tmp_path / "work", runtime="process", directory_url=directory,
                sources=sources) as wizard:
        yield wizard
    assert not any(s.phase not in ("failed", "stopped") for s in wizard.status())


def pids(wizard: Wizard) -> list[int]:
    return [i.handle["pid"] for i in wizard.state.instances() if i.handle]


def test_svrun_registers_a_reachable_instance(wizard, directory):
    instance = wizard.svrun("tiny", "v1", "UNCOMMITTED")
    assert instance.id == "tiny-v1-1"
    entry = listed(directory, "tiny")["tiny-v1-1"]
    assert entry["address"] == instance.address
    assert entry["metadata"]["tag"] == "v1"
    assert requests.get(entry["url"], timeout=2).json()["instance"] == "tiny-v1-1"
    [row] = wizard.status()
    assert (row.instance, row.phase, row.runtime) == ("tiny-v1-1", "registered", "process")


def test_svrun_of_a_commit_uses_a_read_only_export(tmp_path, directory):
    repo = make_repo(tmp_path / "repo")
    with Wizard(tmp_path / "work", directory_url=directory,
                sources={"tiny": ServiceSource(repo)}) as wizard:
        instance = wizard.svrun("tiny", "stable", "v1")
        assert len(instance.commit) == 40
        assert instance.folder == str(tmp_path / "work" / "checkouts" / "tiny" / instance.commit)
        assert Path(instance.folder, "app.py").is_file()
        assert wizard.status()[0].commit == instance.commit[:10]


def test_scale_up_to_three_and_back_to_one(wizard, directory):
    wizard.svrun("tiny", "v1", "UNCOMMITTED")
    running = wizard.scale("tiny", "v1", 3)
    assert [i.id for i in running] == ["tiny-v1-1", "tiny-v1-2", "tiny-v1-3"]
    assert all(i.ref == "UNCOMMITTED" for i in running)  # the tag's ref is reused
    assert set(listed(directory, "tiny")) == {"tiny-v1-1", "tiny-v1-2", "tiny-v1-3"}
    removed = pids(wizard)[1:]
    assert [i.id for i in wizard.scale("tiny", "v1", 1)] == ["tiny-v1-1"]
    assert set(listed(directory, "tiny")) == {"tiny-v1-1"}
    assert all(group_gone(pid) for pid in removed)


def test_graceful_svkill_deregisters_before_the_service_stops(wizard, directory):
    wizard.svrun("tiny", "v1", "UNCOMMITTED")
    instance = wizard.svrun("tiny", "v1", "UNCOMMITTED")
    [pid] = pids(wizard)[1:]
    assert wizard.svkill("v1").id == instance.id  # the newest one
    assert group_gone(pid)
    assert set(listed(directory, "tiny")) == {"tiny-v1-1"}
    events = requests.get(f"{directory}/v1/events", timeout=2).json()["events"]
    [gone] = [e for e in events if e["instance"] == instance.id and e["kind"] != "registered"]
    assert gone["kind"] == "deregistered"
    sigterm = float(re.search(r"tiny: SIGTERM at ([\d.]+)", instance.log_path.read_text())[1])
    assert gone["time"] < sigterm  # first out of the Directory, then stopped


def test_svkill_without_drain_stops_the_service_while_it_is_registered(wizard, directory):
    """The 2015 order: SIGTERM first; Watson deregisters only after its checks failed."""
    wizard.svrun("tiny", "v1", "UNCOMMITTED")
    instance = wizard.svrun("tiny", "v1", "UNCOMMITTED")
    [pid] = pids(wizard)[1:]
    assert wizard.svkill("v1", drain=False).id == instance.id
    assert group_gone(pid)
    assert set(listed(directory, "tiny")) == {"tiny-v1-1"}  # by Watson, not left to its lease
    events = requests.get(f"{directory}/v1/events", timeout=2).json()["events"]
    [gone] = [e for e in events if e["instance"] == instance.id and e["kind"] != "registered"]
    assert gone["kind"] == "deregistered"
    log = instance.log_path.read_text()
    sigterm = float(re.search(r"tiny: SIGTERM at ([\d.]+)", log)[1])
    assert gone["time"] > sigterm  # first stopped, out of the Directory only afterwards
    assert "phase stopping" in log and "LIVE -> DEAD" in log  # Watson's checks failed


def test_svkill_now_kills_at_once_and_the_lease_expires(wizard, directory):
    instance = wizard.svrun("tiny", "v1", "UNCOMMITTED")
    [pid] = pids(wizard)
    wizard.svkill("v1", now=True)
    assert group_gone(pid)
    assert wizard.status() == []
    assert instance.id in listed(directory, "tiny")  # as after a crash: until its lease ends
    wait_until(lambda: not listed(directory, "tiny"), 10, "lease expiry")
    with pytest.raises(WizardError, match="no running instance tagged 'v1'"):
        wizard.svkill("v1")


@pytest.mark.parametrize("service, message", [
    ("broken", r"mw.sh init exited with code 1(.|\n)*tiny: init is broken"),
    ("quitter", r"mw.sh run exited with code 7(.|\n)*tiny: giving up"),
    ("sick", r"not registered within 3 s"),
])
def test_a_failing_instance_is_reported_and_leaves_nothing(wizard, directory, service,
                                                           message):
    """Issue #10, finding 7: no failed row, no instance folder, no process, no registration."""
    with pytest.raises(WizardError, match=message):
        wizard.svrun(service, "v1", "UNCOMMITTED", timeout=3)
    assert wizard.state.instances() == [] and wizard.status() == []
    assert list((wizard.workdir / "instances").iterdir()) == []
    assert ours(wizard) == {}
    assert listed(directory, service) == {}
    with wizard.state.edit() as table:
        assert table["counters"].get(f"{service}-v1", 0) == 0  # the next one is -1 again


def ours(wizard: Wizard) -> dict[int, dict]:
    """Processes that carry the process runtime's mark for this wizard's workdir."""
    return procs.marked(MARK, str(wizard.workdir.resolve()))


def test_a_process_that_left_the_group_dies_with_its_failed_launch(tmp_path, directory):
    """mw.sh run puts a helper in a session of its own (setsid), then the service never
    gets healthy: the failed launch kills the helper too (found by the instance's mark)."""
    folder = make_service(tmp_path / "sick", "sick", "sick")
    mw_sh = folder / "microwizard" / "mw.sh"
    mw_sh.write_text(mw_sh.read_text().replace(
        'exec "${PYTHON:-python3}" app.py',
        'setsid "$PYTHON" -c "import time; time.sleep(300)" mwkit-escaped </dev/null &\n'
        '        exec "${PYTHON:-python3}" app.py'))
    with Wizard(tmp_path / "work", runtime="process", directory_url=directory,
                sources={"sick": ServiceSource(folder)}) as wizard:
        with pytest.raises(WizardError, match="not registered within 3 s"):
            wizard.svrun("sick", "v1", "UNCOMMITTED", timeout=3)
        assert ours(wizard) == {}


def test_a_broken_commit_leaves_no_export_and_a_used_one_stays(tmp_path, directory):
    """A launch that fails removes the checkout it exported for itself, not one that a
    running instance uses."""
    repo = make_repo(tmp_path / "repo")
    conf = repo / "microwizard" / "datawire.conf"
    conf.write_text(conf.read_text().replace("${SERVICE_NAME}", "tiny2"))
    subprocess.run(["git", "commit", "-qam", "a literal name", "--author", "t <t@t.invalid>"],
                   cwd=repo, check=True, env={**os.environ, **GIT_IDENTITY})
    checkouts = tmp_path / "work" / "checkouts" / "tiny"
    with Wizard(tmp_path / "work", runtime="process", directory_url=directory,
                sources={"tiny": ServiceSource(repo)}) as wizard:
        with pytest.raises(SpecError, match=r"datawire.conf: \[Watson\] service_name is "
                                            r"'tiny2'.*\$\{SERVICE_NAME\}"):
            wizard.svrun("tiny", "v2", "main")
        assert wizard.status() == [] and ours(wizard) == {}
        assert not checkouts.exists() or list(checkouts.iterdir()) == []
        good = wizard.svrun("tiny", "v1", "v1")
        with pytest.raises(WizardError, match="not registered within 0 s"):
            wizard.svrun("tiny", "v1", "v1", timeout=0.01)
        assert [i.id for i in wizard.state.instances()] == [good.id]
        assert Path(good.folder, "app.py").is_file()


def test_an_instance_gets_an_allow_listed_environment(wizard, monkeypatch):
    """Issue #10, finding 9: not the host's whole environment (a secret in the shell that
    ran the wizard stays out); PATH and the test session's mark get through."""
    monkeypatch.setenv("HOST_ONLY_SECRET", "s3cret")
    monkeypatch.setenv("MWKIT_SOME_HOST_SETTING", "x")
    wizard.svrun("tiny", "v1", "UNCOMMITTED")
    envs = list(ours(wizard).values())
    assert len(envs) >= 2  # the supervisor and the service at least
    for env in envs:
        assert "HOST_ONLY_SECRET" not in env and "MWKIT_SOME_HOST_SETTING" not in env
        assert env["PATH"] == os.environ["PATH"] and env["MWKIT_INSTANCE_ID"] == "tiny-v1-1"
        assert env[TEST_SESSION] == os.environ[TEST_SESSION]


def test_the_state_file_is_private(wizard):
    wizard.svrun("tiny", "v1", "UNCOMMITTED")
    assert stat.S_IMODE((wizard.workdir / "state.json").stat().st_mode) == 0o600


def test_down_after_a_crash_leaves_nothing(tmp_path, directory):
    sources = {"tiny": ServiceSource(make_service(tmp_path / "tiny"))}
    crashed = Wizard(tmp_path / "work", directory_url=directory, sources=sources)
    crashed.scale("tiny", "v1", 2, ref="UNCOMMITTED")
    started = pids(crashed)
    del crashed  # no close(): the instances outlive it, as after a crash of the notebook
    assert not any(group_gone(pid) for pid in started)
    (tmp_path / "work" / "state.json").unlink()  # even the state file is lost
    removed = Wizard(tmp_path / "work", directory_url=directory).down()
    assert len(removed) == 2
    assert all(group_gone(pid) for pid in started)
    assert Wizard(tmp_path / "work").status() == []


def test_a_damaged_state_file_says_how_to_reset(tmp_path):
    (tmp_path / "state.json").write_text("{not json")
    wizard = Wizard(tmp_path)
    with pytest.raises(StateError, match=r"state.json is damaged.*mwkit down --force"):
        wizard.status()
    wizard.down(force=True)
    assert wizard.status() == []


@pytest.mark.parametrize("service, tag, ref", [
    ("tiny", "a..b", "v1"), ("tiny", "v1", "../v1"), ("../tiny", "v1", "v1"), ("tiny", "v/1", "v1"),
])
def test_unsafe_names_are_refused(wizard, service, tag, ref):
    with pytest.raises(InvalidName):
        wizard.svrun(service, tag, ref)
    assert wizard.status() == []


def test_an_unknown_runtime_names_the_known_ones():
    with pytest.raises(WizardError, match="unknown runtime 'kubernetes'.*docker, process"):
        get_runtime("kubernetes")


def test_the_cli(tmp_path, directory):
    make_service(tmp_path / "tiny")
    env = {**os.environ, "PYTHONPATH": REPO, "MWKIT_WORKDIR": str(tmp_path / "work"),
           "MWKIT_DIRECTORY_URL": directory}

    def mwkit(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "mwkit", *args], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    try:
        out = mwkit("svrun", "tiny", "v1", "UNCOMMITTED", "--source", str(tmp_path / "tiny"))
        assert "tiny-v1-1 is registered" in out
        assert "tiny-v1-1" in listed(directory, "tiny")
        assert re.search(r"tiny-v1-1\s+tiny\s+v1\s+UNCOMMITTED\s+process\s+127.0.0.1:\d+\s+"
                         r"registered", mwkit("status"))
        assert "tiny: listening" in mwkit("logs", "tiny-v1-1", "-n", "20")
        mwkit("svrun", "tiny", "v1", "UNCOMMITTED", "--source", str(tmp_path / "tiny"))
        assert "stopping without draining" in mwkit("svkill", "v1", "--no-drain")
        assert set(listed(directory, "tiny")) == {"tiny-v1-1"}
        mwkit("scale", "tiny", "v1", "2", "--source", str(tmp_path / "tiny"))
        assert "stopping without draining" in mwkit("scale", "tiny", "v1", "1", "--no-drain")
    finally:
        out = mwkit("down")
    assert "removed tiny-v1-1" in out
    assert listed(directory, "tiny") == {}
    assert "no instances" in mwkit("status")


def test_scale_from_two_threads_at_once(wizard, directory):
    """A notebook slider scales from a background thread while the main thread does too."""
    slider = threading.Thread(target=wizard.scale, args=("tiny", "v1", 3, "UNCOMMITTED"))
    slider.start()
    wizard.scale("tiny", "v1", 2, ref="UNCOMMITTED")
    slider.join(timeout=60)
    running = {i.id for i in wizard.scale("tiny", "v1", 2)}
    assert len(running) == 2
    assert set(listed(directory, "tiny")) == running
    assert [s.phase for s in wizard.status()] == ["registered", "registered"]
