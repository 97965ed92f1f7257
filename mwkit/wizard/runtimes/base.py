"""What every runtime offers the wizard: start, stop and inspect one instance.

A runtime is *where* an instance runs (a local process group, a Docker container, ...).
The wizard decides *what* runs (a checkout, a service spec, a Directory to register with)
and hands the runtime a :class:`LaunchPlan`; the runtime answers with a :class:`Handle`
it can later find the instance again by, even from another Python process (the handle is
stored in the workdir's state file). Inside the instance the same supervisor
(``python -m mwkit.wizard.supervisor``) runs on every runtime, so the lifecycle
(init, run, Watson beside it, draining) is the same everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

from mwkit.contract import PHASE_FILE, STOP_FILE
from mwkit.wizard.spec import Limits


@dataclass(frozen=True)
class LaunchPlan:
    """Everything a runtime needs to start one instance.

    ``render_conf(service_url, health_check_url)`` returns the instance's
    ``datawire.conf``: the runtime knows the addresses, the wizard knows the template.
    """

    instance_id: str
    service: str
    tag: str
    commit: str
    folder: Path  # the checked-out service folder (holds microwizard/)
    instance_dir: Path  # <workdir>/instances/<id>: log, datawire.conf, state/
    workdir: Path
    service_port: int  # the port the service listens on inside a container
    health_path: str
    env: dict[str, str]  # the service's environment (spec env, links, MWKIT_*)
    render_conf: Callable[[str, str], str]
    limits: Limits = Limits()  # what a container may use (microwizard.yml's limits:)
    restart: str = "no"  # microwizard.yml's restart: "unless-stopped" survives an engine restart

    @property
    def state_dir(self) -> Path:
        return self.instance_dir / "state"

    @property
    def log_path(self) -> Path:
        return self.instance_dir / "instance.log"

    @property
    def conf_path(self) -> Path:
        return self.instance_dir / "datawire.conf"


@dataclass
class Handle:
    """How a runtime finds an instance again; plain data, stored in the state file."""

    runtime: str
    instance_id: str
    instance_dir: str
    pid: int | None = None  # process runtime: the supervisor's process group
    container: str | None = None  # docker runtime: the container id
    address: str | None = None  # host:port the instance is expected to register
    published: str | None = None  # host:port reachable from the host, when it differs
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Handle:
        return cls(**data)

    @property
    def log_path(self) -> Path:
        return Path(self.instance_dir) / "instance.log"

    @property
    def phase_path(self) -> Path:
        return Path(self.instance_dir) / "state" / PHASE_FILE

    @property
    def stop_path(self) -> Path:
        """Where the wizard leaves a stop order for the supervisor (see ``contract``)."""
        return Path(self.instance_dir) / "state" / STOP_FILE


@dataclass(frozen=True)
class Directory:
    """A Directory a runtime started: the URL this machine uses, the one instances use."""

    url: str
    instance_url: str
    handle: Handle


class Runtime(Protocol):
    """Everything the wizard and the stack need from a place to run things.

    Instances: ``start`` / ``stop`` / ``kill`` / ``is_running`` / ``logs``. The stack beside
    them: ``start_directory`` and ``database``. After a crash: ``cleanup`` finds and removes
    whatever this runtime started for a workdir, by marks it left on it (never by a bare
    pid or a bare name). ``process`` and ``docker`` implement it.
    """

    name: str

    @classmethod
    def not_ready(cls) -> str | None:
        """Why this runtime cannot run here (one line, with what to do), or None if it can."""

    def start(self, plan: LaunchPlan) -> Handle:
        """Start the instance's supervisor; return at once (readiness is the wizard's job)."""

    def stop(self, handle: Handle, grace: float) -> None:
        """SIGTERM the supervisor (it follows its stop order: deregister, drain, stop the
        service; or with ``stop.json`` the naive order); SIGKILL after ``grace`` seconds;
        remove what the runtime created."""

    def kill(self, handle: Handle) -> None:
        """SIGKILL everything of the instance at once and remove it."""

    def is_running(self, handle: Handle) -> bool:
        """True while the instance's supervisor runs."""

    def logs(self, handle: Handle, lines: int = 50) -> str:
        """The last ``lines`` lines of the instance's output."""

    def start_directory(self, workdir: Path, token: str | None = None) -> Directory:
        """Start a Directory (``python -m mwkit directory``) that this runtime's instances
        can reach; remove it with ``kill(directory.handle)``."""

    def database(self, workdir: Path) -> AbstractContextManager[str]:
        """A private MariaDB server for the ``with`` block; yields the URL this machine uses
        (``instance_url`` translates it for instances)."""

    def cleanup(self, workdir: Path, infrastructure: bool = False) -> list[str]:
        """Remove every instance of ``workdir`` this runtime can still find (also without a
        state file, after a crash), and with ``infrastructure`` also what the stack runs
        beside them (the Directory, the database); return what was removed."""

    def instance_url(self, url: str) -> str:
        """Translate a URL this machine uses (the Directory's) into one instances can reach."""
