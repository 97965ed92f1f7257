"""Containers locked down (#10): what a kit container may do, seen from the engine and from
inside a real running instance.

Every instance (and the Directory) runs as an unprivileged user without capabilities, with
``no-new-privileges``, bounded memory and processes (``limits:`` in microwizard.yml, checked
before anything starts) and a read-only root file system; the checkout is read-only, also
the learner's working tree (UNCOMMITTED); and an instance's environment is what the
wizard planned, nothing of the host's.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from mwkit.errors import SpecError
from mwkit.wizard.runtimes import get_runtime
from mwkit.wizard.runtimes.docker import container_name, container_user
from mwkit.wizard.source import ServiceSource
from mwkit.wizard.wizard import Wizard
from tests.helpers.wizard import APP, make_repo, make_service

pytestmark = pytest.mark.docker

MB = 2**20


@pytest.fixture(scope="module")
def runtime():
    from mwkit.wizard import image

    runtime = get_runtime("docker")  # the docker mark skips this where no engine answers
    image.build("base", progress=lambda line: None, client=runtime.client)
    return runtime


def containers(runtime, workdir) -> list:
    return runtime.client.containers.list(ignore_removed=True, all=True,
                                          filters={"label": f"mwkit.workdir={workdir.resolve()}"})


@pytest.fixture
def workdir(runtime, tmp_path):
    workdir = tmp_path / "work"
    yield workdir
    runtime.cleanup(workdir, infrastructure=True)
    assert containers(runtime, workdir) == []


@pytest.fixture
def directory(runtime, workdir):
    started = runtime.start_directory(workdir)
    yield started
    runtime.kill(started.handle)


def limited(folder, limits: str):
    """The tiny service with a ``limits:`` line in its microwizard.yml."""
    make_service(folder, folder.name)
    with open(folder / "microwizard" / "microwizard.yml", "a") as yml:
        yml.write(f"limits: {limits}\n")
    return folder


@pytest.fixture
def wizard(tmp_path, workdir, directory):
    sources = {"tiny": ServiceSource(make_repo(tmp_path / "tiny")),
               "live": ServiceSource(make_service(tmp_path / "live", "live")),
               "small": ServiceSource(limited(tmp_path / "small",
                                              "{memory: 96m, pids: 64, read_only_root: false}")),
               "bad": ServiceSource(limited(tmp_path / "bad", "{memory: lots}"))}
    with Wizard(workdir, runtime="docker", directory_url=directory.url,
                sources=sources) as wizard:
        yield wizard


def the_container(runtime, wizard, instance_id: str):
    return runtime.client.containers.get(container_name(wizard.workdir, instance_id))


def run_in(container, *command: str, owner_of: Path | None = None) -> tuple[int, str]:
    """Run ``command`` in the container, as its user or as the host's owner of ``owner_of``
    (whom file permissions let write it: only the read-only mount stops them)."""
    user = f"{owner_of.stat().st_uid}" if owner_of else ""
    code, output = container.exec_run(list(command), user=user)
    return code, output.decode("utf-8", "replace").strip()


def assert_locked_down(container, memory: int, pids: int, read_only: bool = True) -> None:
    host = container.attrs["HostConfig"]
    uid, gid = container_user()
    assert container.attrs["Config"]["User"] == f"{uid}:{gid}" and uid != 0
    assert host["CapDrop"] == ["ALL"] and not host["CapAdd"]
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert (host["Memory"], host["MemorySwap"], host["PidsLimit"]) == (memory, memory, pids)
    assert host["ReadonlyRootfs"] is read_only
    assert "/tmp" in host["Tmpfs"] and not host["Privileged"]
    assert not any("docker.sock" in m["Source"] for m in container.attrs["Mounts"])


def test_an_instance_runs_unprivileged_bounded_and_read_only(wizard, runtime):
    instance = wizard.svrun("tiny", "v1", "v1")
    container = the_container(runtime, wizard, instance.id)
    assert_locked_down(container, memory=256 * MB, pids=256)
    uid, _ = container_user()
    assert run_in(container, "id", "-u") == (0, str(uid))
    code, output = run_in(container, "touch", "/var/tmp/x")  # a folder anyone may write
    assert code != 0 and "Read-only file system" in output
    code, output = run_in(container, "touch", "/usr/src/service/x",
                          owner_of=Path(instance.folder))
    assert code != 0 and "Read-only file system" in output  # a commit export, shared
    assert run_in(container, "touch", "/tmp/x", "/var/lib/mwkit/instance/x")[0] == 0
    # What the instance wrote in its bind-mounted state folder belongs to the container's
    # user: the host's own user unless that is root.
    state = Path(instance.instance_dir) / "state"
    assert {(p.stat().st_uid, p.stat().st_gid) for p in state.iterdir()} == {container_user()}


def test_the_working_tree_is_mounted_read_only(wizard, runtime):
    """UNCOMMITTED runs the learner's own files: the instance may not change them."""
    instance = wizard.svrun("live", "dev", "UNCOMMITTED")
    container = the_container(runtime, wizard, instance.id)
    mounts = {m["Destination"]: m for m in container.attrs["Mounts"]}
    assert mounts["/usr/src/service"]["Source"] == str(wizard.sources["live"].repo)
    assert mounts["/usr/src/service"]["RW"] is False
    assert run_in(container, "sh", "-c", "echo x >> /usr/src/service/app.py")[0] != 0
    code, output = run_in(container, "sh", "-c", "echo x >> /usr/src/service/app.py",
                          owner_of=wizard.sources["live"].repo / "app.py")
    assert code != 0 and "Read-only file system" in output
    assert (wizard.sources["live"].repo / "app.py").read_text() == APP
    assert_locked_down(container, memory=256 * MB, pids=256)


def test_limits_from_microwizard_yml_are_applied(wizard, runtime):
    instance = wizard.svrun("small", "v1", "UNCOMMITTED")
    container = the_container(runtime, wizard, instance.id)
    assert_locked_down(container, memory=96 * MB, pids=64, read_only=False)
    assert run_in(container, "touch", "/var/tmp/x")[0] == 0  # read_only_root: false
    assert run_in(container, "sh", "-c", "cat /sys/fs/cgroup/pids.max 2>/dev/null || "
                  "cat /sys/fs/cgroup/pids/pids.max") == (0, "64")  # cgroup v2 or v1


def test_bad_limits_are_refused_before_anything_starts(wizard, runtime):
    with pytest.raises(SpecError, match=r"microwizard.yml: key 'limits.memory' must be a "
                                        r"size such as 256m or 1g .*got 'lots'"):
        wizard.svrun("bad", "v1", "UNCOMMITTED")
    assert [c.name for c in containers(runtime, wizard.workdir)
            if "mwkit.role" not in c.labels] == []
    assert wizard.state.instances() == []


def test_the_host_environment_does_not_reach_an_instance(wizard, runtime, monkeypatch):
    """Nothing of the launching process's environment; exactly what the wizard planned, the
    runtime's own names and the image's PATH and LANG."""
    monkeypatch.setenv("MWKIT_SECRET_PROBE", "x")
    monkeypatch.setenv("SOME_TOKEN", "x")
    instance = wizard.svrun("tiny", "v1", "v1")
    container = the_container(runtime, wizard, instance.id)
    code, output = run_in(container, "env")
    names = {line.partition("=")[0] for line in output.splitlines()}
    assert "MWKIT_SECRET_PROBE" not in names and "SOME_TOKEN" not in names
    assert names == {
        "PATH", "LANG", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "HOSTNAME",  # image
        "TINY_MODE",  # the spec's env:
        "MWKIT_SERVICE", "MWKIT_INSTANCE_ID", "MWKIT_TAG", "MWKIT_COMMIT", "MWKIT_METADATA",
        "MWKIT_STOP_GRACE", "MWKIT_DIRECTORY_URL",  # the wizard's plan
        "HOST", "PORT", "PYTHON", "PYTHONPATH", "HOME", "MWKIT_STATE_DIR",
        "MWKIT_WATSON_CONFIG", "MWKIT_ADVERTISE_HOST",  # where things are in the container
    }
    assert "HOME=/tmp" in output.splitlines()


def test_the_directory_container_is_locked_down(directory, runtime):
    container = runtime.client.containers.get(directory.handle.container)
    assert_locked_down(container, memory=512 * MB, pids=256)
    code, output = run_in(container, "touch", "/var/tmp/x")
    assert code != 0 and "Read-only file system" in output


def test_mariadb_keeps_only_the_capabilities_its_entrypoint_needs(runtime, workdir):
    """Its entrypoint prepares folders as root, then the server drops to the mysql user."""
    with runtime.database(workdir):
        [container] = containers(runtime, workdir)
        host = container.attrs["HostConfig"]
        assert host["CapDrop"] == ["ALL"]
        assert sorted(host["CapAdd"]) == ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID",
                                          "SETUID"]
        assert host["SecurityOpt"] == ["no-new-privileges"]
        assert (host["Memory"], host["PidsLimit"]) == (512 * MB, 256)
        assert run_in(container, "sh", "-c", "stat -c %U /proc/1") == (0, "mysql")


def test_an_instance_may_write_its_sqlite_folder(tmp_path, workdir, directory, runtime):
    """A SQLite database's folder is the one bind mount besides the state folder that an
    instance writes (the file and its journal); made for the container's user if missing."""
    folder = make_service(tmp_path / "db", "db")
    spec = folder / "microwizard" / "microwizard.yml"
    spec.write_text(spec.read_text().replace("service_links: [directory]",
                                             "service_links: [directory, database]"))
    database = tmp_path / "data" / "lobsters.db"  # its folder does not exist yet
    with Wizard(workdir, runtime="docker", directory_url=directory.url,
                database_url=f"sqlite:///{database}",
                sources={"db": ServiceSource(folder)}) as wizard:
        instance = wizard.svrun("db", "v1", "UNCOMMITTED")
        container = the_container(runtime, wizard, instance.id)
        assert run_in(container, "sh", "-c", f"echo x > {database} && echo x > "
                                             f"{database}-journal") == (0, "")
    assert {p.stat().st_uid for p in database.parent.iterdir()} == {container_user()[0]}


def restart_policy(container) -> str:
    return container.attrs["HostConfig"]["RestartPolicy"]["Name"]


def test_the_stacks_own_parts_come_back_with_the_engine_and_instances_do_not(
        wizard, runtime, directory, tmp_path):
    """After an engine restart (Docker Desktop restarted), the Directory, the database and
    a service whose microwizard.yml says ``restart: unless-stopped`` (the monolith) are
    started again by the engine; an ordinary instance is not: the wizard decides."""
    keeper = make_service(tmp_path / "keeper", "keeper")
    with open(keeper / "microwizard" / "microwizard.yml", "a") as yml:
        yml.write("restart: unless-stopped\n")
    wizard.add_source("keeper", ServiceSource(keeper))
    kept = the_container(runtime, wizard, wizard.svrun("keeper", "v1", "UNCOMMITTED").id)
    ordinary = the_container(runtime, wizard, wizard.svrun("tiny", "v1", "v1").id)
    assert restart_policy(kept) == "unless-stopped"
    assert restart_policy(ordinary) == "no"
    assert restart_policy(runtime.client.containers.get(directory.handle.container)) == \
        "unless-stopped"
    with runtime.database(wizard.workdir):
        [mariadb] = [c for c in containers(runtime, wizard.workdir)
                     if c.labels.get("mwkit.service") == "mariadb"]
        assert restart_policy(mariadb) == "unless-stopped"
    kept.kill()  # killed by the kit (svkill --now, a chaos fault): it stays down
    time.sleep(2)
    kept.reload()
    assert kept.status == "exited"
