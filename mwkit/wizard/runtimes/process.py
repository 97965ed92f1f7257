"""The process runtime: every instance is a local process group (no Docker needed).

The supervisor runs in the checkout folder with ``HOST=127.0.0.1`` and a free ``PORT``,
the kit on ``PYTHONPATH`` and this interpreter as ``PYTHON``, and of this machine's
environment only ``PATH``, ``HOME``, ``LANG``, ``LC_*`` and ``TMPDIR`` (never a token the
host's shell holds: see :data:`HOST_ENV`); its output (and mw.sh's) goes
to ``<workdir>/instances/<id>/instance.log``. Everything this runtime starts is marked with
``MWKIT_RUNTIME_WORKDIR`` (and ``MWKIT_INSTANCE_ID`` or ``MWKIT_ROLE``) in its environment,
and its handle keeps the process's create time: that is how ``cleanup`` finds instances
after a crash lost the state file, and why a pid reused by another program is never
signalled. Processes are looked at through psutil, so this runs on Linux and macOS alike.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from mwkit import contract, procs
from mwkit.directory import start_directory
from mwkit.settings import KIT_ROOT
from mwkit.wizard.runtimes.base import Directory, Handle, LaunchPlan

MARK = "MWKIT_RUNTIME_WORKDIR"  # set only by this runtime, on everything it starts
ROLE = "MWKIT_ROLE"  # on the stack's infrastructure: directory, database
#: What an instance gets of this machine's environment; the rest (tokens, passwords, the
#: kit's own MWKIT_* settings) stays out. Its spec's ``env:`` and the contract add the rest.
HOST_ENV = frozenset({"PATH", "HOME", "LANG", "TMPDIR"})
HOST_ENV_PREFIX = "LC_"
#: The test suite's mark (see tests/conftest.py), passed on on purpose: its leak check finds
#: the processes a test session started by it, instances included.
TEST_SESSION = "MWKIT_TEST_SESSION"


def marks(workdir: Path, role: str | None = None) -> dict[str, str]:
    """The environment that lets ``cleanup`` find a process started for ``workdir``."""
    return {MARK: str(Path(workdir).resolve()), **({ROLE: role} if role else {})}


def groups_of(workdir: Path | str) -> dict[int, dict[str, str]]:
    """The process groups this runtime started for ``workdir``: pgid -> a member's env."""
    return procs.marked_groups(MARK, str(Path(workdir).resolve()))


def host_environment() -> dict[str, str]:
    """The allow-listed part of this machine's environment that an instance gets."""
    return {name: value for name, value in os.environ.items()
            if name in HOST_ENV or name.startswith(HOST_ENV_PREFIX) or name == TEST_SESSION}


class ProcessRuntime:
    """Instances as process groups on this machine, reachable at 127.0.0.1."""

    name = "process"

    def __init__(self) -> None:
        self._children: dict[int, subprocess.Popen] = {}  # reaped by us, never zombies

    @classmethod
    def not_ready(cls) -> str | None:
        return None  # this machine's Python is all it needs

    def _handle(self, proc: subprocess.Popen, instance_id: str, instance_dir: Path,
                workdir: Path, address: str) -> Handle:
        self._children[proc.pid] = proc
        return Handle(runtime=self.name, instance_id=instance_id,
                      instance_dir=str(instance_dir), pid=proc.pid, address=address,
                      extra={"workdir": str(workdir.resolve()),
                             "created": procs.create_time(proc.pid)})

    def start(self, plan: LaunchPlan) -> Handle:
        port = procs.free_port()
        service_url = f"http://127.0.0.1:{port}"
        plan.state_dir.mkdir(parents=True, exist_ok=True)
        plan.conf_path.write_text(plan.render_conf(service_url, service_url + plan.health_path))
        env = {
            **host_environment(),
            **plan.env,
            contract.HOST: "127.0.0.1",
            contract.PORT: str(port),
            contract.PYTHON: sys.executable,
            "PYTHONPATH": str(KIT_ROOT),
            contract.STATE_DIR: str(plan.state_dir),
            contract.WATSON_CONFIG: str(plan.conf_path),
            **marks(plan.workdir),
        }
        proc = procs.spawn([sys.executable, "-m", "mwkit.wizard.supervisor"],
                           log_path=plan.log_path, cwd=plan.folder, env=env, inherit_env=False)
        return self._handle(proc, plan.instance_id, plan.instance_dir, plan.workdir,
                            f"127.0.0.1:{port}")

    def _ours(self, handle: Handle) -> bool:
        """The group's leader is still the process this handle was made for: the same
        create time, and this runtime's mark for the same workdir in its environment."""
        if handle.pid in self._children:
            return True
        return procs.process_alive(handle.pid, handle.extra.get("created")) and \
            procs.environ_of(handle.pid).get(MARK) == handle.extra["workdir"]

    def is_running(self, handle: Handle) -> bool:
        """The supervisor (the group's leader) still runs."""
        child = self._children.get(handle.pid)
        if child is not None:
            return child.poll() is None
        return self._ours(handle)

    def stop(self, handle: Handle, grace: float) -> None:
        """SIGTERM the supervisor only: it drains and stops the service in the right order."""
        if self.is_running(handle):
            os.kill(handle.pid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while self.is_running(handle) and time.monotonic() < deadline:
                time.sleep(0.02)
        self.kill(handle)  # whatever is left of the group (a service mw.sh did not exec)

    def kill(self, handle: Handle) -> None:
        """SIGKILL the instance's process group, and every group that holds a process of
        the instance that left it (a ``setsid`` in mw.sh): they all carry its marks."""
        if self._ours(handle):
            procs.kill_group(handle.pid)
        workdir = handle.extra.get("workdir")
        for pgid, env in (groups_of(workdir) if workdir else {}).items():
            if env.get(contract.INSTANCE_ID) == handle.instance_id:
                procs.kill_group(pgid)
        self._children.pop(handle.pid, None)

    def logs(self, handle: Handle, lines: int = 50) -> str:
        return procs.log_tail(handle.log_path, lines)

    def cleanup(self, workdir: Path, infrastructure: bool = False) -> list[str]:
        """SIGKILL every process group started for ``workdir`` (found by its environment)."""
        removed = []
        for pgid, env in groups_of(workdir).items():
            what = env.get(contract.INSTANCE_ID) or (infrastructure and env.get(ROLE))
            if what and procs.kill_group(pgid):
                removed.append(f"{what} (process group {pgid})")
        for pid, child in list(self._children.items()):
            if child.poll() is not None:
                del self._children[pid]
        return removed

    def start_directory(self, workdir: Path, token: str | None = None) -> Directory:
        """A ``python -m mwkit directory`` process on a free 127.0.0.1 port."""
        folder = Path(workdir) / "directory"
        proc, url = start_directory(token=token, log_path=folder / "directory.log",
                                    env={"PYTHONPATH": str(KIT_ROOT),
                                         **marks(workdir, "directory")})
        handle = self._handle(proc, "directory", folder, Path(workdir),
                              url.removeprefix("http://"))
        return Directory(url=url, instance_url=url, handle=handle)

    def start_etcd(self, workdir: Path, size: int = 3):
        """An etcd cluster of ``size`` members as the stack's Directory (not started: use it
        as a context manager), marked so that ``cleanup`` finds its members after a crash."""
        from mwkit.directory.etcd_cluster import EtcdCluster

        return EtcdCluster(Path(workdir) / "etcd", size, env=marks(workdir, "etcd"))

    @contextlib.contextmanager
    def database(self, workdir: Path) -> Iterator[str]:
        """A private MariaDB server, a local process in a folder of ``workdir``."""
        from mwkit.wizard.database import local_mariadb

        with local_mariadb(workdir, env=marks(workdir, "database")) as url:
            yield url

    def instance_url(self, url: str) -> str:
        return url  # instances run on this machine: the host's URLs work as they are
