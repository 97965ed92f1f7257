"""The wizard on the Docker runtime: the same lifecycle, in containers of mwkit/base."""

from __future__ import annotations

import re

import pytest
import requests

from mwkit.wizard.runtimes import WizardError, get_runtime
from mwkit.wizard.runtimes.docker import container_name, network_name
from mwkit.wizard.source import ServiceSource
from mwkit.wizard.wizard import Wizard
from tests.helpers.wizard import listed, make_repo, make_service, wait_until

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def runtime():
    """The Docker runtime with its base image (built offline when missing)."""
    from mwkit.wizard import image

    runtime = get_runtime("docker")  # the docker mark skips this where no engine answers
    image.build("base", progress=lambda line: None, client=runtime.client)
    return runtime


@pytest.fixture
def directory(runtime, workdir):
    """The Directory as a container of the stack: the host reaches it on a published
    loopback port, the instances by name on the network."""
    started = runtime.start_directory(workdir)
    yield started.url
    runtime.kill(started.handle)


def containers(runtime, workdir, infrastructure=False) -> list:
    """The workdir's instance containers (and the Directory's too, with infrastructure)."""
    found = runtime.client.containers.list(ignore_removed=True,
        all=True, filters={"label": f"mwkit.workdir={workdir.resolve()}"})
    return [c for c in found if infrastructure or "mwkit.role" not in c.labels]


@pytest.fixture
def workdir(runtime, tmp_path):
    workdir = tmp_path / "work"
    yield workdir
    assert containers(runtime, workdir, infrastructure=True) == []  # nothing is left behind
    runtime.cleanup(workdir, infrastructure=True)


@pytest.fixture
def wizard(tmp_path, workdir, directory):
    sources = {"tiny": ServiceSource(make_repo(tmp_path / "tiny")),
               "live": ServiceSource(make_service(tmp_path / "live", "live")),
               "broken": ServiceSource(make_service(tmp_path / "broken", "broken", "init-fails"))}
    with Wizard(workdir, runtime="docker", directory_url=directory, sources=sources) as wizard:
        yield wizard


def test_an_instance_is_a_labelled_container_without_the_docker_socket(wizard, runtime,
                                                                       directory):
    instance = wizard.svrun("tiny", "v1", "v1")
    [container] = containers(runtime, wizard.workdir)
    assert container.name == container_name(wizard.workdir, "tiny-v1-1")
    expected = {"mwkit.managed": "1", "mwkit.workdir": str(wizard.workdir),
                "mwkit.service": "tiny", "mwkit.tag": "v1", "mwkit.commit": instance.commit,
                "mwkit.instance": "tiny-v1-1"}
    assert {key: container.labels.get(key) for key in expected} == expected
    mounts = {m["Destination"]: m for m in container.attrs["Mounts"]}
    assert not any("docker.sock" in m["Source"] for m in mounts.values())
    assert mounts["/usr/src/service"]["RW"] is False  # a commit export is shared, read-only
    assert mounts["/opt/mwkit/mwkit"]["RW"] is False
    assert mounts["/var/lib/mwkit/instance"]["RW"] is True

    entry = listed(directory, "tiny")["tiny-v1-1"]
    ip = container.attrs["NetworkSettings"]["Networks"][network_name(wizard.workdir)]["IPAddress"]
    assert entry["address"] == f"{ip}:8080"
    published = entry["metadata"]["published"]
    assert published.startswith("127.0.0.1:")
    for url in (entry["url"], f"http://{published}"):
        assert requests.get(url, timeout=2).json()["instance"] == "tiny-v1-1"
    [row] = wizard.status()
    assert (row.phase, row.address, row.runtime) == ("registered", entry["address"], "docker")


def test_uncommitted_mounts_the_working_tree_read_only(wizard, runtime):
    """The learner's own files: the instance reads them and may not change them."""
    wizard.svrun("live", "dev", "UNCOMMITTED")
    [container] = containers(runtime, wizard.workdir)
    mounts = {m["Destination"]: m for m in container.attrs["Mounts"]}
    assert mounts["/usr/src/service"]["RW"] is False
    assert mounts["/usr/src/service"]["Source"] == str(wizard.sources["live"].repo)


def test_scale_and_graceful_svkill(wizard, runtime, directory):
    wizard.scale("tiny", "v1", 3)
    assert set(listed(directory, "tiny")) == {"tiny-v1-1", "tiny-v1-2", "tiny-v1-3"}
    assert len(containers(runtime, wizard.workdir)) == 3
    gone = wizard.svkill("v1")
    assert gone.id == "tiny-v1-3"
    assert {c.name for c in containers(runtime, wizard.workdir)} == {
        container_name(wizard.workdir, "tiny-v1-1"), container_name(wizard.workdir, "tiny-v1-2")}
    events = requests.get(f"{directory}/v1/events", timeout=2).json()["events"]
    [event] = [e for e in events if e["instance"] == gone.id and e["kind"] != "registered"]
    assert event["kind"] == "deregistered"
    sigterm = float(re.search(r"tiny: SIGTERM at ([\d.]+)", gone.log_path.read_text())[1])
    assert event["time"] < sigterm  # the log was kept when the container was removed
    assert [i.id for i in wizard.scale("tiny", "v1", 1)] == ["tiny-v1-1"]
    assert len(containers(runtime, wizard.workdir)) == 1


def test_svkill_without_drain_reaches_the_supervisor_in_its_container(wizard, runtime,
                                                                      directory):
    """The stop order is a file in the mounted state dir: the naive order runs in there."""
    wizard.svrun("tiny", "v1", "v1")
    log = wizard.svkill("v1", drain=False).log_path.read_text()
    assert containers(runtime, wizard.workdir) == []
    assert listed(directory, "tiny") == {}
    assert "phase stopping" in log and "phase draining" not in log
    assert "LIVE -> DEAD" in log  # deregistered by Watson, once its checks had failed


def test_svkill_now_removes_the_container_at_once(wizard, runtime, directory):
    wizard.svrun("tiny", "v1", "v1")
    wizard.svkill("v1", now=True)
    assert containers(runtime, wizard.workdir) == []
    assert "tiny-v1-1" in listed(directory, "tiny")  # until its lease runs out
    wait_until(lambda: not listed(directory, "tiny"), 10, "lease expiry")


def test_a_failing_init_leaves_no_container(wizard, runtime, directory):
    with pytest.raises(WizardError, match=r"mw.sh init exited with code 1(.|\n)*init is broken"):
        wizard.svrun("broken", "v1", "UNCOMMITTED", timeout=15)
    assert containers(runtime, wizard.workdir) == []
    assert listed(directory, "broken") == {}
    # The error carried the log's last lines (matched above); nothing of it is left.
    assert [i.id for i in wizard.state.instances()] == []
    assert not (wizard.workdir / "instances" / "broken-v1-1").exists()


def test_down_after_a_crash_removes_the_containers(tmp_path, workdir, runtime, directory):
    sources = {"tiny": ServiceSource(make_repo(tmp_path / "tiny"))}
    crashed = Wizard(workdir, runtime="docker", directory_url=directory, sources=sources)
    crashed.scale("tiny", "v1", 2)
    del crashed
    (workdir / "state.json").unlink()
    assert len(containers(runtime, workdir)) == 2
    removed = Wizard(workdir, runtime="docker").down()
    assert len(removed) == 2
    assert not (workdir / "instances").exists()  # the host could remove the state folders


def test_the_directory_container_serves_host_and_instances(tmp_path, workdir, runtime):
    started = runtime.start_directory(workdir)
    url, name = started.url, container_name(workdir, "directory")
    assert started.instance_url == f"http://{name}:5353"
    assert runtime.instance_url(url) == started.instance_url
    sources = {"tiny": ServiceSource(make_repo(tmp_path / "tiny"))}
    with Wizard(workdir, runtime="docker", directory_url=url, sources=sources) as wizard:
        wizard.svrun("tiny", "v1", "v1")
        assert "tiny-v1-1" in listed(url, "tiny")
    removed = runtime.cleanup(workdir, infrastructure=True)
    assert any(name in line for line in removed)


def test_a_loopback_directory_is_refused_with_advice(runtime):
    with pytest.raises(WizardError, match="containers cannot reach"):
        runtime.instance_url("http://127.0.0.1:1")


def test_auto_takes_docker_only_once_its_images_are_built(runtime, monkeypatch):
    """``auto`` asks the real engine: with the images there it is Docker; with one missing,
    processes, and the reason says what to run."""
    from mwkit.wizard.runtimes import choose_runtime, docker

    assert docker.DockerRuntime.not_ready() is None
    assert choose_runtime("auto")[0].name == "docker"
    monkeypatch.setattr(docker, "IMAGE", "mwkit/never-built:latest")
    chosen, why = choose_runtime("auto")
    assert chosen.name == "process"
    assert "mwkit/never-built:latest" in why and "run `mwkit image build`" in why
