"""``Wizard(standby=True)``: the next instance started ahead, and taken by the next launch.

Real Directory, real tiny services, on processes (and once in Docker containers): the
standby waits before ``mw.sh init`` without being registered or listed, a launch takes it
(the same process or container, now with its own id and labels), the wizard then starts the
next one, and scaling to 0, ``close()`` or a standby that died leave nothing behind.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import requests

from mwkit.procs import group_alive
from mwkit.wizard.source import ServiceSource
from mwkit.wizard.wizard import Wizard
from tests.helpers.wizard import listed, make_repo, wait_until


def standbys(wizard: Wizard) -> list:
    return [i for i in wizard.state.instances() if i.phase == "standby"]


def ready_standby(wizard: Wizard):
    """The one standby of tiny v1, once its supervisor waits."""
    wait_until(lambda: wizard.standby_ready("tiny", "v1"), 30, "a standby waiting")
    [standby] = standbys(wizard)
    return standby


@pytest.fixture
def wizard(tmp_path, directory):
    sources = {"tiny": ServiceSource(make_repo(tmp_path / "tiny"))}
    with Wizard(tmp_path / "work", runtime="process", directory_url=directory,
                sources=sources, standby=True) as wizard:
        yield wizard
    assert wizard.state.instances() == []  # close() removed the standby too


def test_a_launch_takes_the_standby_and_the_next_one_is_started(wizard, directory):
    first = wizard.svrun("tiny", "v1", "v1")
    standby = ready_standby(wizard)
    assert standby.id == "tiny-v1-2"
    assert [row.instance for row in wizard.status()] == [first.id]  # not an instance yet
    assert set(listed(directory, "tiny")) == {first.id}  # nor registered
    assert "mw.sh init" not in Path(standby.log_path).read_text()  # it waits before init

    said = []
    wizard.progress = said.append
    second = wizard.svrun("tiny", "v1", "v1")
    assert (second.id, second.handle["pid"]) == (standby.id, standby.handle["pid"])
    assert any("its standby, started ahead" in line for line in said), said
    entry = listed(directory, "tiny")[second.id]
    assert entry["metadata"]["tag"] == "v1"
    assert requests.get(entry["url"], timeout=2).json()["instance"] == second.id
    assert [row.instance for row in wizard.status()] == [first.id, second.id]

    following = ready_standby(wizard)
    assert following.id == "tiny-v1-3"
    wizard.scale("tiny", "v1", 0)
    assert wizard.state.instances() == []
    wait_until(lambda: not group_alive(following.handle["pid"]), 10, "the standby gone")


def test_close_stops_a_waiting_standby(tmp_path, directory):
    with Wizard(tmp_path / "work", runtime="process", directory_url=directory,
                sources={"tiny": ServiceSource(make_repo(tmp_path / "tiny"))},
                standby=True) as wizard:
        wizard.svrun("tiny", "v1", "v1")
        standby = ready_standby(wizard)
    assert wizard.state.instances() == []
    wait_until(lambda: not group_alive(standby.handle["pid"]), 10, "the standby gone")
    phase = json.loads((Path(standby.instance_dir) / "state" / "phase.json").read_text())
    assert (phase["phase"], phase["reason"]) == ("stopped", "stopped in standby")


def test_a_standby_that_died_is_dropped_and_the_launch_starts_one(wizard, directory):
    wizard.svrun("tiny", "v1", "v1")
    standby = ready_standby(wizard)
    os.killpg(standby.handle["pid"], signal.SIGKILL)
    wait_until(lambda: not group_alive(standby.handle["pid"]), 10, "the standby dead")
    launched = wizard.svrun("tiny", "v1", "v1")
    assert launched.id == "tiny-v1-3" and launched.id in listed(directory, "tiny")
    assert standby.id not in [i.id for i in wizard.state.instances()]


def test_a_launch_with_its_own_environment_starts_cold(wizard, directory):
    wizard.svrun("tiny", "v1", "v1")
    standby = ready_standby(wizard)
    launched = wizard.svrun("tiny", "v1", "v1", env={"TINY_GREETING": "hello"})
    assert launched.id != standby.id  # the standby's environment was planned without it
    assert [i.id for i in standbys(wizard)] == [standby.id]


@pytest.mark.docker
def test_a_standby_container_is_taken_with_its_name_and_labels(tmp_path):
    from mwkit.wizard import image
    from mwkit.wizard.runtimes import get_runtime
    from mwkit.wizard.runtimes.docker import container_name

    runtime = get_runtime("docker")
    image.build("base", progress=lambda line: None, client=runtime.client)
    workdir = tmp_path / "work"
    directory = runtime.start_directory(workdir)
    try:
        with Wizard(workdir, runtime=runtime, directory_url=directory.url, standby=True,
                    sources={"tiny": ServiceSource(make_repo(tmp_path / "tiny"))}) as wizard:
            wizard.svrun("tiny", "v1", "v1")
            standby = ready_standby(wizard)
            second = wizard.svrun("tiny", "v1", "v1")
            assert second.handle["container"] == standby.handle["container"]
            container = runtime.client.containers.get(second.handle["container"])
            assert container.name == container_name(workdir, second.id)
            assert container.labels["mwkit.instance"] == second.id
            assert second.id in listed(directory.url, "tiny")
            ready_standby(wizard)  # the next one, in a container of its own
        assert runtime.client.containers.list(all=True, filters={"label": [
            f"mwkit.workdir={workdir.resolve()}", "mwkit.service=tiny"]}) == []
    finally:
        runtime.kill(directory.handle)
        runtime.cleanup(workdir, infrastructure=True)
