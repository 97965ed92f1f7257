"""The Docker runtime: every instance is a container of ``mwkit/base:latest``.

What the original Microwizard did, without its flaws:

- the checkout is mounted read-only at ``/usr/src/service`` (also ``UNCOMMITTED``, the
  learner's working tree), the instance's own state folder read-write at
  ``/var/lib/mwkit/instance``, and mwkit's source read-only under ``/opt/mwkit``: the same
  supervisor as on the process runtime runs inside (``python3 -m mwkit.wizard.supervisor``);
- every container is locked down (:func:`locked_down`): the host's user, or uid 10001 when
  that is root, never root; no capabilities and ``no-new-privileges``; the memory and pids
  of the spec's ``limits:``; a read-only root file system with a tmpfs on ``/tmp``. Its
  environment is the wizard's plan and where things are inside, never the host's;
- the Docker socket is never mounted: no container can touch the others;
- each workdir's containers join a user-defined network of their own, ``mwkit-<id>``
  (``<id>``: a short hash of the workdir, in every name), so they reach each other and the
  Directory by name, and two learners on one engine never meet; an instance registers its
  IP on that network (reachable from other containers, and on Linux from the host), and its
  port is published on 127.0.0.1 only (``published`` in its Directory metadata);
- every container is labelled (``mwkit.managed``, ``mwkit.workdir``, ``mwkit.service``,
  ``mwkit.tag``, ``mwkit.commit``, ``mwkit.instance``): ``down`` finds them even after the
  state file is lost.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from mwkit import contract, procs
from mwkit.directory import DIRECTORY_PORT, directory_command
from mwkit.errors import DockerUnavailable, WizardError
from mwkit.settings import KIT_ROOT
from mwkit.wizard.database import MARIADB_IMAGE, mariadb_container
from mwkit.wizard.runtimes.base import Directory, Handle, LaunchPlan
from mwkit.wizard.spec import Limits

IMAGE = "mwkit/base:latest"
SERVICE_DIR = "/usr/src/service"
STATE_DIR = "/var/lib/mwkit/instance"
CONF_PATH = "/etc/mwkit/datawire.conf"
KIT_DIR = "/opt/mwkit"
MANAGED = {"mwkit.managed": "1"}
#: The stack's own parts (the Directory, etcd, MariaDB) come back when the engine restarts
#: (a laptop's Docker Desktop restarted); a container the kit stopped or killed stays so.
KEEP_RUNNING = {"Name": "unless-stopped"}
#: Who runs in the kit's containers when this machine's user is root: a fixed unprivileged
#: uid and gid (the image needs no entry for it in /etc/passwd).
CONTAINER_UID = 10001
#: The one writable place of a read-only root file system besides the state folder.
TMPFS = {"/tmp": "rw,nosuid,nodev,size=64m"}
#: The Directory keeps every instance of every service and a queue per subscriber.
DIRECTORY_LIMITS = Limits(memory=512 * 2**20)


def stack_id(workdir: Path) -> str:
    """A short id of a workdir, in the name of every container and network made for it."""
    return hashlib.sha256(str(Path(workdir).resolve()).encode()).hexdigest()[:8]


def network_name(workdir: Path) -> str:
    return f"mwkit-{stack_id(workdir)}"


def container_name(workdir: Path, what: str) -> str:
    """``mwkit-<id>-<what>``: an instance id, or directory / mariadb."""
    return f"mwkit-{stack_id(workdir)}-{what}"


def kit_mounts() -> dict[str, dict]:
    """mwkit's own source, read-only: Watson runs from it, and the monolith imports Sherlock."""
    return {str(KIT_ROOT / "mwkit"): {"bind": f"{KIT_DIR}/mwkit", "mode": "ro"}}


def sqlite_mount(database_url: str) -> dict[str, dict]:
    """A SQLite database's folder, mounted at the same path (its URL then works inside);
    the container's user may write there (SQLite adds its journal beside the file)."""
    if not database_url.startswith("sqlite:///"):
        return {}
    folder = Path(database_url.removeprefix("sqlite:///")).parent
    folder.mkdir(parents=True, exist_ok=True)  # else the engine would make it, root's
    give_to_container_user(folder, *folder.glob("*.db*"))
    return {str(folder): {"bind": str(folder), "mode": "rw"}}


def container_user() -> tuple[int, int]:
    """(uid, gid) that runs in the kit's containers: this machine's user, so the files an
    instance leaves in its bind-mounted state folder are the user's; never root (when the
    user is root, :data:`CONTAINER_UID`)."""
    uid = getattr(os, "getuid", lambda: 0)()
    return (uid, os.getgid()) if uid != 0 else (CONTAINER_UID, CONTAINER_UID)


def give_to_container_user(*paths: Path) -> None:
    """Let the container's user write ``paths`` (only needed, and only possible, when this
    machine's user is root: otherwise the container runs as their owner already)."""
    if getattr(os, "getuid", lambda: 1)() == 0:
        for path in paths:
            os.chown(path, *container_user())


def locked_down(limits: Limits) -> dict:
    """The ``containers.run`` options of every kit container: not root, no capabilities,
    no privilege gained through setuid files, bounded memory (no swap beyond it) and
    processes, and a read-only root file system with a small tmpfs on /tmp unless the
    service's ``limits: {read_only_root: false}`` says otherwise."""
    uid, gid = container_user()
    return {"user": f"{uid}:{gid}", "cap_drop": ["ALL"], "security_opt": ["no-new-privileges"],
            "mem_limit": limits.memory, "memswap_limit": limits.memory,
            "pids_limit": limits.pids, "read_only": limits.read_only_root, "tmpfs": TMPFS}


class DockerRuntime:
    """Instances as containers, each workdir on a network of its own."""

    name = "docker"

    def __init__(self) -> None:
        self._client = None

    @classmethod
    def not_ready(cls) -> str | None:
        """Why containers cannot run here: no engine answers, or the images are not built."""
        from mwkit.wizard.engine import docker_client

        try:
            client = docker_client(timeout=2.0)
        except DockerUnavailable:
            return "no Docker engine answers (start Docker, or use processes)"
        with contextlib.closing(client):
            missing = [image for image in (IMAGE, MARIADB_IMAGE) if not _has_image(client, image)]
        if missing:
            return (f"Docker answers but the images are not built ({', '.join(missing)}); "
                    "run `mwkit image build`")
        return None

    @property
    def client(self):
        """The Docker client, made on first use (the SDK is imported only here)."""
        if self._client is None:
            from mwkit.wizard.engine import docker_client

            self._client = docker_client()
        return self._client

    def _image(self, image: str = IMAGE) -> str:
        if not _has_image(self.client, image):
            raise WizardError(f"the image {image} is missing: build it (offline, about a "
                              f"minute) with `mwkit image build`")
        return image

    def _network(self, workdir: Path) -> str:
        """The workdir's user-defined network, created (labelled) when missing; its name."""
        import docker.errors

        name = network_name(workdir)
        if not self._networks(workdir):
            with contextlib.suppress(docker.errors.APIError):  # created meanwhile
                self.client.networks.create(name, driver="bridge", labels={
                    **MANAGED, "mwkit.workdir": str(Path(workdir).resolve())})
        return name

    def _networks(self, workdir: Path) -> list:
        """The workdir's network, if any (Docker's name filter also matches longer names)."""
        name = network_name(workdir)
        return [n for n in self.client.networks.list(names=[name]) if n.name == name]

    def _run(self, name: str, workdir: Path, labels: dict, image: str = IMAGE, **options):
        """Start a labelled container on the network; a stale one of this workdir goes first."""
        import docker.errors

        workdir = Path(workdir).resolve()
        with contextlib.suppress(docker.errors.NotFound):
            old = self.client.containers.get(name)
            if old.labels.get("mwkit.workdir") != str(workdir):
                raise WizardError(f"a container named {name} already exists and is not one of "
                                  f"{workdir}'s: remove it (`docker rm -f {name}`) or use it")
            old.remove(force=True)
        network = self._network(workdir)
        labels = {**MANAGED, "mwkit.workdir": str(workdir), **labels}
        return self.client.containers.run(self._image(image), name=name, labels=labels,
                                          network=network, detach=True, init=True, **options)

    def start(self, plan: LaunchPlan) -> Handle:
        port, host_port = plan.service_port, procs.free_port()
        name = container_name(plan.workdir, plan.instance_id)
        plan.state_dir.mkdir(parents=True, exist_ok=True)
        # The supervisor replaces the host with its own IP (MWKIT_ADVERTISE_HOST); Watson
        # checks the service from inside the same container.
        plan.conf_path.write_text(plan.render_conf(
            f"http://{name}:{port}", f"http://127.0.0.1:{port}{plan.health_path}"))
        give_to_container_user(plan.state_dir, plan.conf_path)
        metadata = {**json.loads(plan.env.get(contract.METADATA, "{}")),
                    "published": f"127.0.0.1:{host_port}"}
        # Only what the wizard planned (the spec's env:, the contract) and where things are
        # in here; nothing of this machine's environment. The image adds PATH and LANG.
        env = {
            **plan.env,
            contract.HOST: "0.0.0.0",
            contract.PORT: str(port),
            contract.PYTHON: "python3",
            "PYTHONPATH": KIT_DIR,
            "PYTHONDONTWRITEBYTECODE": "1",  # the checkout is read-only: no __pycache__
            "HOME": "/tmp",  # the user has no home; the tmpfs is writable
            contract.STATE_DIR: STATE_DIR,
            contract.WATSON_CONFIG: CONF_PATH,
            contract.ADVERTISE_HOST: "container-ip",
            contract.METADATA: json.dumps(metadata),
        }
        # The checkout is read-only also for UNCOMMITTED (the learner's working tree): an
        # instance writes only to its state folder (and /tmp).
        volumes = {
            str(plan.folder): {"bind": SERVICE_DIR, "mode": "ro"},
            str(plan.state_dir): {"bind": STATE_DIR, "mode": "rw"},
            str(plan.conf_path): {"bind": CONF_PATH, "mode": "ro"},
            **kit_mounts(),
            **sqlite_mount(plan.env.get(contract.DATABASE_URL, "")),
        }
        labels = {"mwkit.service": plan.service, "mwkit.tag": plan.tag,
                  "mwkit.commit": plan.commit, "mwkit.instance": plan.instance_id}
        container = self._run(
            name, plan.workdir, labels, command=["python3", "-m", "mwkit.wizard.supervisor"],
            working_dir=SERVICE_DIR, environment=env, volumes=volumes,
            ports={f"{port}/tcp": ("127.0.0.1", host_port)}, **locked_down(plan.limits),
            restart_policy={"Name": plan.restart})
        container.reload()
        networks = container.attrs["NetworkSettings"]["Networks"]
        ip = networks[network_name(plan.workdir)]["IPAddress"]
        return Handle(runtime=self.name, instance_id=plan.instance_id,
                      instance_dir=str(plan.instance_dir), container=container.id,
                      address=f"{ip}:{port}", published=f"127.0.0.1:{host_port}")

    def _container(self, handle: Handle):
        import docker.errors

        try:
            return self.client.containers.get(handle.container)
        except docker.errors.NotFound:
            return None

    def is_running(self, handle: Handle) -> bool:
        container = self._container(handle)
        return container is not None and container.status in ("created", "running")

    def stop(self, handle: Handle, grace: float) -> None:
        """``docker stop``: SIGTERM to the supervisor (via the container's init), SIGKILL
        after ``grace`` seconds; the log is kept in the instance folder."""
        container = self._container(handle)
        if container is not None:
            container.stop(timeout=int(grace + 0.999))
            self._remove(container, handle)

    def kill(self, handle: Handle) -> None:
        container = self._container(handle)
        if container is not None:
            with contextlib.suppress(Exception):
                container.kill()
            self._remove(container, handle)

    def _remove(self, container, handle: Handle) -> None:
        with contextlib.suppress(OSError):
            handle.log_path.parent.mkdir(parents=True, exist_ok=True)
            handle.log_path.write_bytes(container.logs())
        container.remove(force=True)

    def logs(self, handle: Handle, lines: int = 50) -> str:
        container = self._container(handle) if handle.container else None
        if container is None:
            return procs.log_tail(handle.log_path, lines)
        return container.logs(tail=lines).decode("utf-8", "replace").rstrip("\n")

    def cleanup(self, workdir: Path, infrastructure: bool = False) -> list[str]:
        """Remove every container labelled with ``workdir`` (the Directory and the database
        too when asked, and then the workdir's network)."""
        import docker.errors

        filters = {"label": ["mwkit.managed=1", f"mwkit.workdir={Path(workdir).resolve()}"]}
        removed = []
        # The stack's watchdog or a teardown may remove a container at the same time:
        # one gone between the list and its read, or before its removal, is simply gone.
        for container in self.client.containers.list(all=True, filters=filters,
                                                     ignore_removed=True):
            if container.labels.get("mwkit.role") and not infrastructure:
                continue
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)
            removed.append(f"{container.labels.get('mwkit.instance', container.name)} "
                           f"(container {container.name})")
        for network in self._networks(workdir) if infrastructure else []:  # a full teardown
            with contextlib.suppress(docker.errors.APIError):  # in use: the engine keeps it
                network.remove()
        return removed

    def start_directory(self, workdir: Path, token: str | None = None) -> Directory:
        """The Directory as container ``mwkit-<id>-directory`` on the workdir's network."""
        workdir = Path(workdir)
        name = container_name(workdir, "directory")
        host_port = procs.free_port()
        container = self._run(
            name, workdir, {"mwkit.role": "directory"},
            command=directory_command("0.0.0.0", DIRECTORY_PORT, python="python3"),
            environment={"PYTHONPATH": KIT_DIR, contract.DIRECTORY_TOKEN: token or ""},
            volumes=kit_mounts(), ports={f"{DIRECTORY_PORT}/tcp": ("127.0.0.1", host_port)},
            **locked_down(DIRECTORY_LIMITS), restart_policy=KEEP_RUNNING)
        url = f"http://127.0.0.1:{host_port}"
        handle = Handle(runtime=self.name, instance_id="directory",
                        instance_dir=str(workdir / "directory"), container=container.id,
                        address=f"{name}:{DIRECTORY_PORT}", published=f"127.0.0.1:{host_port}")
        deadline = time.monotonic() + 20
        while not _answers(url + "/health"):
            container.reload()
            if container.status != "running" or time.monotonic() > deadline:
                logs = container.logs(tail=20).decode("utf-8", "replace")
                self.kill(handle)
                raise WizardError(f"the Directory container {name} did not answer at "
                                  f"{url} (it is {container.status}); its log:\n{logs}")
            time.sleep(0.1)
        return Directory(url=url, instance_url=f"http://{name}:{DIRECTORY_PORT}", handle=handle)

    @contextlib.contextmanager
    def database(self, workdir: Path) -> Iterator[str]:
        """MariaDB as container ``mwkit-<id>-mariadb`` on the workdir's network."""
        labels = {**MANAGED, "mwkit.workdir": str(Path(workdir).resolve()),
                  "mwkit.role": "database"}
        with mariadb_container(self.client, self._network(workdir),
                               container_name(workdir, "mariadb"), labels=labels) as urls:
            yield urls.host

    def start_etcd(self, workdir: Path, size: int = 3):
        """An etcd cluster of ``size`` member containers as the stack's Directory (not
        started: use it as a context manager); see :mod:`.docker_etcd`."""
        from mwkit.wizard.runtimes.docker_etcd import DockerEtcdCluster

        return DockerEtcdCluster(self, workdir, size)

    def instance_url(self, url: str) -> str:
        """A host loopback URL of a kit container published on 127.0.0.1 becomes the
        container's name and port on its network (for an ``etcd://`` URL, each member's);
        other loopback URLs cannot be reached from containers."""
        from mwkit.directory.etcd import SCHEME, endpoints_of, is_etcd_url

        if is_etcd_url(url):
            members = [self.instance_url(member) for member in endpoints_of(url)]
            return SCHEME + ",".join(member.removeprefix("http://") for member in members)
        parts = urlsplit(url)
        if parts.hostname not in ("127.0.0.1", "localhost"):
            return url
        # The ports it has now, and those it was started with: a stopped container (an
        # etcd member killed a moment ago) has none now, but keeps its name and bindings.
        for container in self.client.containers.list(all=True, ignore_removed=True,
                                                     filters={"label": "mwkit.managed=1"}):
            asked = container.attrs.get("HostConfig", {}).get("PortBindings") or {}
            for inside, bindings in [*asked.items(), *(container.ports or {}).items()]:
                if any(str(b.get("HostPort")) == str(parts.port) for b in bindings or []):
                    userinfo = parts.netloc.rpartition("@")[0]
                    netloc = f"{container.name}:{inside.split('/')[0]}"
                    return urlunsplit(parts._replace(
                        netloc=f"{userinfo}@{netloc}" if userinfo else netloc))
        raise WizardError(
            f"{url} is on the host's loopback, which containers cannot reach: run it as a "
            f"container (`mwkit up --runtime docker` starts the Directory in one), or give "
            f"an address containers can reach"
        )


def _has_image(client, image: str) -> bool:
    import docker.errors

    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        return False
    return True


def _answers(url: str) -> bool:
    import requests

    try:
        return requests.get(url, timeout=0.5).ok
    except requests.RequestException:
        return False
