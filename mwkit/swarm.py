"""Docker Swarm runs the instances: one Swarm service per service and tag, replicas its tasks.

On the Docker runtime the wizard starts each instance and decides when it goes. Here it
hands that to Swarm, the orchestrator built into the Docker engine: it says "2 replicas
of this image" and Swarm keeps that many tasks running, on any node that joined the swarm,
restarting the ones that die. So:

- a commit becomes an image (:mod:`mwkit.wizard.commit_image`, ``mwkit/<service>:<commit>``):
  another node has no checkout;
- :meth:`SwarmServices.deploy` creates the service ``mwkit-<id>-<service>-<tag>`` on the
  workdir's attachable overlay network, ``scale`` changes its replicas (the panel's slider),
  ``rollout`` is a rolling update to another commit, one task at a time, **start-first**
  (the new task must be healthy before an old one stops), and ``rollback`` the same update
  back to the commit it ran before;
- the health check Swarm waits for comes from ``microwizard.yml`` (its path, period,
  timeout, ``fall`` as retries) and also asks that Watson registered the task (see
  :mod:`mwkit.wizard.swarm_task`); an old task gets SIGTERM and its supervisor drains it:
  Watson deregisters first, so no call reaches a task that stops.

**Server-side against client-side balancing.** Swarm's own answer to "which replica?" is a
virtual IP per service and the ingress routing mesh, both in the kernel (IPVS): the client
calls one address, the server side spreads the calls. This machine's kernel has no IPVS,
and this kit teaches the other way: ``--endpoint-mode dnsrr`` (no virtual IP), each task's
Watson registers the task's own overlay address, and the monolith's Sherlock, a container
attached to the same overlay network, picks a task itself, retrying another when one
refuses. The host reaches the tasks only through the monolith's published port.

**The swarm.** If the engine is in no swarm, :func:`ensure_swarm` makes this node one
(``docker swarm init --advertise-addr 127.0.0.1``) and writes ``<workdir>/swarm.json``;
``mwkit down`` removes the workdir's services (found by their labels), its network, and
leaves the swarm only if the kit made it and nobody else uses it (see :func:`leave_if_made`).
A swarm that was there before is someone else's: the kit only adds and removes its own
services.

What Swarm cannot lock down as the Docker runtime does (Docker 20.10, API 1.41):
``no-new-privileges`` (no such field in a service), and the memory+swap limit (the memory
limit is applied, swap is the node's). The user, ``cap_drop ALL``, the read-only root with
a tmpfs on /tmp, the memory and pids limits are applied.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mwkit import contract
from mwkit.errors import WizardError
from mwkit.names import check_identifier, check_service_name
from mwkit.settings import KIT_ROOT, Settings
from mwkit.wizard.commit_image import SERVICE_DIR, build_commit_image
from mwkit.wizard.runtimes.docker import (
    MANAGED,
    TMPFS,
    container_user,
    network_name,
    sqlite_mount,
    stack_id,
)
from mwkit.wizard.swarm_task import TOKEN_SECRET, WATSON_DIRECTORY
from mwkit.wizard.wizard import SERVICE_GRACE, STOP_MARGIN, read_stack

STATE_FILE = "swarm.json"
TASK_STATE_DIR = "/tmp/mwkit-state"
UPDATE_DELAY = 2.0  # seconds between two tasks of a rolling update
START_PERIOD = 60.0  # seconds a new task may take (mw.sh init, Watson's rise) before it counts
#: Swarm restarts an unhealthy task; Watson only takes it out of the Directory until it
#: recovers. So Swarm waits for PATIENCE times as many failed checks in a row (as a
#: Kubernetes liveness probe beside the readiness probe), each with EXEC_TIME more seconds
#: to start the check's Python in the container: a busy machine must not kill its tasks.
PATIENCE = 3
EXEC_TIME = 2.0
NS = 1_000_000_000
FAILED = ("failed", "rejected")  # the states of a task that ended badly


# --- the swarm itself ----------------------------------------------------------------------


def ensure_swarm(client, workdir: Path) -> None:
    """Make this engine a one-node swarm unless it is in one; remember when the kit did."""
    import docker.errors

    swarm = client.info()["Swarm"]
    if swarm.get("LocalNodeState") == "active":
        if not swarm.get("ControlAvailable"):
            raise WizardError("this Docker engine is a swarm worker: run the kit on a manager "
                              "node of the swarm")
        return
    try:
        client.swarm.init(advertise_addr="127.0.0.1")
    except docker.errors.APIError as error:
        if "already part of a swarm" in str(error):
            return  # made meanwhile by someone else: theirs
        raise WizardError(f"docker swarm init failed: {error.explanation or error}") from None
    path = Path(workdir) / STATE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"initialized_by_kit": True,
                                "node": client.info()["Swarm"]["NodeID"]}))


def leave_if_made(client, workdir: Path) -> list[str]:
    """Leave the swarm if the kit made it for ``workdir`` and nobody else uses it: no
    service runs in it, and no other overlay network (another stack's containers may be
    attached to one: leaving would take it away from them)."""
    path = Path(workdir) / STATE_FILE
    if not path.is_file():
        return []
    path.unlink()
    if client.info()["Swarm"].get("LocalNodeState") != "active":
        return []
    others = [f"service {s.name}" for s in client.services.list()] + [
        f"network {n.name}" for n in client.networks.list(filters={"driver": "overlay"})
        if n.name not in ("ingress", network_name(workdir))]
    if others:
        return [f"the swarm (kept: in use by {', '.join(others)})"]
    client.swarm.leave(force=True)  # force: the last manager of a swarm leaves only so
    return ["the swarm (docker swarm leave: the kit had made it)"]


def _workdir_filter(workdir: Path, **labels: str) -> dict:
    wanted = {"mwkit.managed": "1", "mwkit.workdir": str(Path(workdir).resolve()), **labels}
    return {"label": [f"{key}={value}" for key, value in wanted.items()]}


def _services(client, workdir: Path, **labels: str) -> list:
    """The workdir's Swarm services (none when the engine is in no swarm).

    An engine error (a swarm being made or left at that moment answers "transport is
    closing") is the kit's :class:`WizardError`: ``mwkit down`` of a stack that does not
    use Swarm then skips this runtime instead of failing."""
    import docker.errors

    try:
        if client.info()["Swarm"].get("LocalNodeState") != "active":
            return []
        return client.services.list(filters=_workdir_filter(workdir, **labels))
    except docker.errors.APIError as error:
        raise WizardError(f"the engine's swarm did not answer: "
                          f"{error.explanation or error}") from None


def remove_services(client, workdir: Path, timeout: float = 30) -> list[str]:
    """Remove the workdir's services, wait until their tasks' containers are gone (the
    overlay network can go only then), and remove the workdir's secrets."""
    removed = []
    for service in _services(client, workdir):
        with contextlib.suppress(Exception):  # removed meanwhile
            service.remove()
        removed.append(f"{service.name} (Swarm service)")
    deadline = time.monotonic() + timeout
    while removed and time.monotonic() < deadline and client.containers.list(
            all=True, filters={"label": f"mwkit.swarm={stack_id(workdir)}"},
            ignore_removed=True):
        time.sleep(0.2)
    if client.info()["Swarm"].get("LocalNodeState") == "active":
        for secret in client.secrets.list(filters=_workdir_filter(workdir)):
            with contextlib.suppress(Exception):  # still used by a task that lingers
                secret.remove()
                removed.append(f"{secret.name} (Swarm secret)")
    return removed


# --- the services --------------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    """One task of a service, as ``docker service ps`` shows it, with its overlay address."""

    id: str
    slot: int | None
    commit: str
    state: str  # Swarm's: new, pending, starting, running, shutdown, failed, ...
    desired: str  # running or shutdown
    address: str | None  # ip:port on the overlay network
    error: str = ""


def service_name(workdir: Path, service: str, tag: str) -> str:
    """``mwkit-<id>-<service>-<tag>``: the workdir's id keeps two learners' services apart."""
    return re.sub(r"[^a-zA-Z0-9-]", "-", f"mwkit-{stack_id(workdir)}-{service}-{tag}")[:63]


class SwarmServices:
    """Deploy, scale, roll out and roll back the services of a workdir's stack on Swarm.

    The stack (``mwkit up --runtime swarm`` or ``Stack(runtime="swarm")``) runs the
    Directory and the monolith as containers on the workdir's overlay network; its
    ``stack.json`` says where the Directory and the database are.
    """

    def __init__(self, workdir: Path | str | None = None, sources: dict | None = None,
                 progress: Callable[[str], None] | None = None, runtime=None):
        from mwkit.wizard.runtimes.swarm import SwarmRuntime
        from mwkit.wizard.source import default_sources

        self.workdir = Settings.from_env(workdir=workdir).workdir
        self.stack = read_stack(self.workdir)
        if self.stack.get("runtime") != "swarm":
            raise WizardError(f"no stack on the swarm runtime in {self.workdir}: start one "
                              "with `mwkit up --runtime swarm` (or Stack(runtime='swarm'))")
        self.runtime = runtime or SwarmRuntime()
        self.client = self.runtime.client
        self.sources = default_sources(KIT_ROOT) if sources is None else sources
        self.progress = progress or (lambda line: None)

    # --- what a task needs -------------------------------------------------------------

    def _image(self, service: str, tag: str, ref: str):
        """(spec, commit, image) of ``ref`` of ``service``: checked out, built once."""
        from mwkit.wizard.source import UNCOMMITTED, UNCOMMITTED_COPY, checkout
        from mwkit.wizard.spec import load_spec

        check_service_name(service)
        check_identifier(tag, "tag")
        if service not in self.sources:
            raise WizardError(f"no source known for service {service!r}; known: "
                              f"{', '.join(sorted(self.sources))}")
        if ref in (UNCOMMITTED, UNCOMMITTED_COPY):
            raise WizardError(f"{ref} has no commit to tag an image with: commit it, then "
                              "deploy the commit (other nodes have no checkout)")
        done = checkout(self.sources[service], ref, service=service, tag=tag,
                        workdir=self.workdir, progress=self.progress)
        spec = load_spec(done.folder)
        image = build_commit_image(self.client, done.folder, service, done.commit,
                                   self.progress)
        return spec, done.commit, image

    def _task_template(self, spec, service: str, tag: str, ref: str, commit: str,
                       image: str) -> dict:
        """The task of a service: the image, its environment, the lockdown, the check."""
        import docker.types

        directory = self.runtime.instance_url(self.stack["directory_url"])
        drain = self._drain(spec, directory)
        metadata = {"tag": tag, "ref": ref, "commit": commit[:12], "runtime": "swarm"}
        env = {
            **spec.env,
            contract.SERVICE: service,
            contract.INSTANCE_ID: f"{service}-{commit[:7]}-{{{{.Task.ID}}}}",
            contract.TAG: tag,
            contract.COMMIT: commit,
            contract.METADATA: json.dumps(metadata),
            contract.STOP_GRACE: str(SERVICE_GRACE),
            contract.HOST: "0.0.0.0",
            contract.PORT: str(spec.port),
            contract.PYTHON: "python3",
            contract.STATE_DIR: TASK_STATE_DIR,
            contract.ADVERTISE_HOST: "container-ip",
            WATSON_DIRECTORY: directory,
        }
        if "directory" in spec.links:
            env[contract.DIRECTORY_URL] = directory
        mounts = [docker.types.Mount(target, None, type="tmpfs", tmpfs_size=64 * 2**20)
                  for target in TMPFS]
        database = self.stack.get("database_url")
        if "database" in spec.links and database:
            env[contract.DATABASE_URL] = self.runtime.instance_url(database)
            # SQLite: its folder, from this node (one node only; use MariaDB with several)
            mounts += [docker.types.Mount(bind["bind"], source, type="bind")
                       for source, bind in sqlite_mount(database).items()]
        check = spec.health_check
        uid, gid = container_user()
        container = docker.types.ContainerSpec(
            image, command=["python3", "-m", "mwkit.wizard.swarm_task"], workdir=SERVICE_DIR,
            env=env, user=f"{uid}:{gid}", cap_drop=["ALL"], read_only=spec.limits.read_only_root,
            mounts=mounts, init=True, secrets=self._token_secret(),
            labels={"mwkit.swarm": stack_id(self.workdir), "mwkit.service": service},
            stop_grace_period=int((drain + SERVICE_GRACE + STOP_MARGIN) * NS),
            healthcheck=docker.types.Healthcheck(
                test=["CMD", "python3", "-m", "mwkit.wizard.swarm_task", "--health"],
                interval=int(check.period * NS), timeout=int((check.timeout + EXEC_TIME) * NS),
                retries=check.fall * PATIENCE, start_period=int(START_PERIOD * NS)))
        resources = docker.types.Resources(mem_limit=spec.limits.memory)
        resources["Limits"]["Pids"] = spec.limits.pids  # API 1.41; docker-py has no argument
        return docker.types.TaskTemplate(container, resources=resources,
                                         networks=[network_name(self.workdir)])

    def _token_secret(self) -> list:
        """The Directory's token as a Swarm secret: a file in the task's ``/run/secrets``,
        sent only to the nodes that run a task, never in the service's environment (which
        ``docker service inspect`` shows and every manager keeps)."""
        import docker.types

        token = self.stack.get("directory_token")
        if not token:
            return []
        digest = hashlib.sha256(token.encode()).hexdigest()[:8]
        name = f"mwkit-{stack_id(self.workdir)}-token-{digest}"  # a secret never changes
        secret = next((s for s in self.client.secrets.list(filters={"name": name})
                       if s.name == name), None) or self.client.secrets.create(
            name=name, data=token.encode(), labels={
                **MANAGED, "mwkit.workdir": str(self.workdir.resolve())})
        uid, gid = container_user()
        return [docker.types.SecretReference(secret.id, name, filename=TOKEN_SECRET,
                                             uid=str(uid), gid=str(gid), mode=0o400)]

    @staticmethod
    def _drain(spec, directory: str) -> float:
        """Watson's drain for this service, from its datawire.conf rendered here as a task
        will (so a bad one fails now, before any task does); SIGKILL comes only after it."""
        from mwkit.watson import WatsonConfig
        from mwkit.wizard.spec import render_datawire_conf

        text = render_datawire_conf(spec, directory_url=directory, instance_id="check",
                                    service_url=f"http://0.0.0.0:{spec.port}",
                                    health_check_url=f"http://127.0.0.1:{spec.port}/")
        return WatsonConfig.from_text(text, spec.datawire_template).drain

    @staticmethod
    def _labels(service: str, tag: str, ref: str, commit: str, before: dict | None = None):
        """The service's labels: what it runs now, and (for ``rollback``) what it ran before."""
        labels = {"mwkit.service": service, "mwkit.tag": tag, "mwkit.ref": ref,
                  "mwkit.commit": commit}
        if before:
            labels.update({"mwkit.previous-ref": before["mwkit.ref"],
                           "mwkit.previous-commit": before["mwkit.commit"]})
        return labels

    # --- the API -----------------------------------------------------------------------

    def deploy(self, service: str, tag: str, ref: str | None = None, replicas: int = 1,
               timeout: float = 120) -> list[Task]:
        """Create the Swarm service of ``service`` ``tag`` running ``ref`` (default: the
        tag) with ``replicas`` tasks; return once each is healthy and registered."""
        import docker.types

        ref = ref or tag
        if self._service(service, tag, missing_ok=True) is not None:
            raise WizardError(f"{service} {tag} is deployed already: scale it, roll it out "
                              "to another ref, or remove it")
        spec, commit, image = self._image(service, tag, ref)
        name = service_name(self.workdir, service, tag)
        self.progress(f"{name}: creating the Swarm service ({replicas} replicas of {image})")
        update = dict(parallelism=1, delay=int(UPDATE_DELAY * NS), order="start-first",
                      failure_action="pause", monitor=int(5 * NS))
        self.client.api.create_service(
            self._task_template(spec, service, tag, ref, commit, image), name=name,
            labels={**MANAGED, "mwkit.workdir": str(self.workdir.resolve()),
                    **self._labels(service, tag, ref, commit)},
            mode=docker.types.ServiceMode("replicated", replicas=replicas),
            update_config=docker.types.UpdateConfig(**update),
            rollback_config=docker.types.RollbackConfig(**update),
            endpoint_spec=docker.types.EndpointSpec(mode="dnsrr"))
        try:
            return self._converge(service, tag, commit, replicas, timeout, set())
        except WizardError as error:  # a service that never ran must not restart forever
            logs = self._logs(service, tag)
            self.remove(service, tag)
            raise WizardError(f"{error}; the service is removed; its last lines:\n{logs}") \
                from None

    def scale(self, service: str, tag: str, replicas: int, timeout: float = 120) -> list[Task]:
        """Run ``replicas`` tasks (the panel's slider); extra tasks drain as they stop."""
        if replicas < 0:
            raise WizardError(f"cannot scale {service} {tag} to {replicas} replicas")
        found = self._service(service, tag)
        self.progress(f"{found.name}: scaling to {replicas}")
        known = {task["ID"] for task in found.tasks()}
        found.scale(replicas)
        return self._converge(service, tag, found.attrs["Spec"]["Labels"]["mwkit.commit"],
                              replicas, timeout, known)

    def set_replicas(self, service: str, tag: str, replicas: int, ref: str | None = None,
                     timeout: float = 120) -> list[Task]:
        """The panel's slider: ``replicas`` tasks of ``service`` ``tag``, deployed from
        ``ref`` (default: the tag) if it is not deployed yet, else scaled."""
        if self._service(service, tag, missing_ok=True) is None:
            return self.deploy(service, tag, ref, replicas, timeout)
        return self.scale(service, tag, replicas, timeout)

    def rollout(self, service: str, tag: str, ref: str, timeout: float = 180) -> list[Task]:
        """A rolling update to ``ref``: one task at a time, the new one started (healthy,
        registered) before an old one stops; returns once every task runs ``ref``."""
        found = self._service(service, tag)
        spec, commit, image = self._image(service, tag, ref)
        current = found.attrs["Spec"]
        labels = {**current["Labels"], **self._labels(service, tag, ref, commit,
                                                      before=current["Labels"])}
        self.progress(f"{found.name}: rolling update to {ref} ({image}), start-first")
        known = {task["ID"] for task in found.tasks()}
        self.client.api.update_service(
            found.id, found.version,
            task_template=self._task_template(spec, service, tag, ref, commit, image),
            name=current["Name"], labels=labels, mode=current["Mode"],
            update_config=current.get("UpdateConfig"),
            rollback_config=current.get("RollbackConfig"),
            endpoint_spec=current.get("EndpointSpec"))
        replicas = current["Mode"]["Replicated"]["Replicas"]
        return self._converge(service, tag, commit, replicas, timeout, known)

    def rollback(self, service: str, tag: str, timeout: float = 180) -> list[Task]:
        """Roll back to the commit (the image tag) the service ran before its last rollout,
        by the same rolling update, start-first. The commit, not the ref: a branch may have
        moved since."""
        labels = self._service(service, tag).attrs["Spec"]["Labels"]
        if "mwkit.previous-commit" not in labels:
            raise WizardError(f"{service} {tag} has not been rolled out: nothing to roll "
                              "back to")
        self.progress(f"rolling back to {labels['mwkit.previous-ref']} as it was: "
                      f"{labels['mwkit.previous-commit'][:12]}")
        return self.rollout(service, tag, labels["mwkit.previous-commit"], timeout)

    def remove(self, service: str, tag: str, timeout: float = 60) -> None:
        """Remove the service: every task drains (deregistered first) and stops."""
        found = self._service(service, tag)
        self.progress(f"{found.name}: removing")
        found.remove()
        deadline = time.monotonic() + timeout
        while self._containers(found.name) and time.monotonic() < deadline:
            time.sleep(0.2)

    def status(self, service: str, tag: str) -> list[Task]:
        """The service's tasks that Swarm wants running, oldest slot first."""
        found = self._service(service, tag)
        tasks = []
        for task in found.tasks(filters={"desired-state": "running"}):
            addresses = [address for attachment in task.get("NetworksAttachments", [])
                         if attachment["Network"]["Spec"]["Name"] == network_name(self.workdir)
                         for address in attachment.get("Addresses", [])]
            env = dict(item.split("=", 1) for item in
                       task["Spec"]["ContainerSpec"].get("Env", []))
            port = env.get(contract.PORT)
            tasks.append(Task(
                id=task["ID"], slot=task.get("Slot"), commit=env.get(contract.COMMIT, "")[:12],
                state=task["Status"]["State"], desired=task["DesiredState"],
                address=f"{addresses[0].split('/')[0]}:{port}" if addresses else None,
                error=task["Status"].get("Err", "")))
        return sorted(tasks, key=lambda t: (t.slot or 0, t.id))

    def registered(self, service: str, tag: str) -> list[dict]:
        """The Directory's instances of ``service`` tagged ``tag``."""
        from mwkit.directory import DirectoryError, directory_client

        with directory_client(self.stack["directory_url"], timeout=2.0) as client:
            try:
                instances = client.instances(service)
            except DirectoryError:
                return []
        return [i for i in instances if i.get("metadata", {}).get("tag") == tag]

    # --- helpers -----------------------------------------------------------------------

    def _service(self, service: str, tag: str, missing_ok: bool = False):
        found = _services(self.client, self.workdir, **{"mwkit.service": service,
                                                        "mwkit.tag": tag})
        if not found and not missing_ok:
            raise WizardError(f"{service} {tag} is not deployed on Swarm in {self.workdir} "
                              "(deploy it first)")
        return found[0] if found else None

    def _logs(self, service: str, tag: str, lines: int = 20) -> str:
        """The last lines of the service's tasks' output (what ``docker service logs``
        shows)."""
        found = self._service(service, tag)
        return b"".join(found.logs(stdout=True, stderr=True, tail=lines)).decode(
            "utf-8", "replace").rstrip("\n")

    def _containers(self, name: str) -> list:
        return self.client.containers.list(
            all=True, filters={"label": f"com.docker.swarm.service.name={name}"},
            ignore_removed=True)  # a task's container may go between the list and its read

    def _converge(self, service: str, tag: str, commit: str, replicas: int,
                  timeout: float, known: set[str]) -> list[Task]:
        """Wait until ``replicas`` tasks of ``commit`` run and the Directory lists exactly
        them; as many failed new tasks (not ``known`` before) as replicas, or an update
        that paused, end the wait with the reason."""
        deadline = time.monotonic() + timeout
        while True:
            found = self._service(service, tag)
            update = (found.attrs.get("UpdateStatus") or {})
            if update.get("State") in ("paused", "rollback_paused"):
                raise WizardError(f"{found.name}: the rolling update paused: "
                                  f"{update.get('Message')}")
            failed = [task["Status"].get("Err") or task["Status"]["State"]
                      for task in found.tasks() if task["Status"]["State"] in FAILED
                      and task["ID"] not in known]
            if len(failed) >= max(replicas, 1):
                raise WizardError(f"{found.name}: {len(failed)} tasks of {commit[:12]} failed "
                                  f"({failed[0]})")
            tasks = self.status(service, tag)
            running = [t for t in tasks if t.state == "running" and t.commit == commit[:12]]
            listed = self.registered(service, tag)
            if len(running) == len(tasks) == replicas and len(listed) == replicas and all(
                    i.get("metadata", {}).get("commit") == commit[:12] for i in listed):
                self.progress(f"{found.name}: {replicas} tasks of {commit[:12]} run and are "
                              "registered")
                return tasks
            if time.monotonic() > deadline:
                raise WizardError(
                    f"{found.name}: not {replicas} healthy registered tasks of {commit[:12]} "
                    f"within {timeout:.0f} s; tasks: "
                    + "; ".join(f"{t.id[:12]} {t.commit} {t.state} {t.error}" for t in tasks)
                    + f"; registered: {len(listed)}")
            time.sleep(0.5)
