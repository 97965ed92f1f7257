"""The process runtime: every instance is a local process group (no Docker needed).

The supervisor runs in the checkout folder with ``HOST=127.0.0.1`` and a free ``PORT``,
the kit on ``PYTHONPATH`` and this interpreter as ``PYTHON``; its output (and mw.sh's) goes
to ``<workdir>/instances/<id>/instance.log``. Each group is marked with ``MWKIT_WORKDIR``
and ``MWKIT_INSTANCE_ID`` in its environment: that is how ``down`` finds instances after a
crash lost the state file, and how a stale pid (reused by another program) is never killed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mwkit
from mwkit import procs
from mwkit.wizard.runtimes.base import Handle, LaunchPlan

KIT_ROOT = Path(mwkit.__file__).resolve().parent.parent


MARK = "MWKIT_RUNTIME_WORKDIR"  # set only by this runtime, on everything it starts
ROLE = "MWKIT_ROLE"  # on the stack's infrastructure: directory, database


def environ_of(pid: int) -> dict[str, str]:
    """The environment of process ``pid`` ({} when it is gone or not ours to read)."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


def marked_groups(workdir: Path) -> dict[int, dict[str, str]]:
    """Process groups this runtime started for ``workdir``: pgid -> a member's environment."""
    groups = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        env = environ_of(int(entry.name))
        if env.get(MARK) == str(Path(workdir).resolve()):
            with contextlib.suppress(ProcessLookupError):
                groups.setdefault(os.getpgid(int(entry.name)), env)
    return groups


def kill_group(pgid: int, timeout: float = 5.0) -> bool:
    """SIGKILL a process group and wait until none of it is left; False if it was gone."""
    if not procs.signal_group(pgid, signal.SIGKILL):
        return False
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(ChildProcessError):  # our own child: reap it ourselves
            os.waitpid(pgid, os.WNOHANG)
        if not procs.group_alive(pgid) or time.monotonic() > deadline:
            return True
        time.sleep(0.01)


class ProcessRuntime:
    """Instances as process groups on this machine, reachable at 127.0.0.1."""

    name = "process"

    def __init__(self) -> None:
        self._children: dict[int, subprocess.Popen] = {}  # reaped by us, never zombies

    def start(self, plan: LaunchPlan) -> Handle:
        port = procs.free_port()
        service_url = f"http://127.0.0.1:{port}"
        plan.state_dir.mkdir(parents=True, exist_ok=True)
        plan.conf_path.write_text(plan.render_conf(service_url, service_url + plan.health_path))
        env = {
            **plan.env,
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "PYTHON": sys.executable,
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(KIT_ROOT), os.environ.get("PYTHONPATH")])),
            "MWKIT_STATE_DIR": str(plan.state_dir),
            "MWKIT_WATSON_CONFIG": str(plan.conf_path),
            MARK: str(plan.workdir.resolve()),
        }
        proc = procs.spawn([sys.executable, "-m", "mwkit.wizard.supervisor"],
                           log_path=plan.log_path, cwd=plan.folder, env=env)
        self._children[proc.pid] = proc
        return Handle(runtime=self.name, instance_id=plan.instance_id,
                      instance_dir=str(plan.instance_dir), pid=proc.pid,
                      address=f"127.0.0.1:{port}", extra={"workdir": env[MARK]})

    def _ours(self, handle: Handle) -> bool:
        """Some process of the group is still this instance (the pid was not reused)."""
        if handle.pid in self._children:
            return True
        env = marked_groups(Path(handle.extra["workdir"])).get(handle.pid, {})
        return handle.instance_id in (env.get("MWKIT_INSTANCE_ID"), env.get(ROLE))

    def is_running(self, handle: Handle) -> bool:
        """The supervisor (the group's leader) still runs."""
        child = self._children.get(handle.pid)
        if child is not None:
            return child.poll() is None
        return self._ours(handle) and procs.process_alive(handle.pid)

    def stop(self, handle: Handle, grace: float) -> None:
        """SIGTERM the supervisor only: it drains and stops the service in the right order."""
        if self.is_running(handle):
            os.kill(handle.pid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while self.is_running(handle) and time.monotonic() < deadline:
                time.sleep(0.02)
        self.kill(handle)  # whatever is left of the group (a service mw.sh did not exec)

    def kill(self, handle: Handle) -> None:
        if self._ours(handle):
            kill_group(handle.pid)
        self._children.pop(handle.pid, None)

    def logs(self, handle: Handle, lines: int = 50) -> str:
        return procs.log_tail(handle.log_path, lines)

    def cleanup_orphans(self, workdir: Path, infrastructure: bool = False) -> list[str]:
        """SIGKILL every process group started for ``workdir`` (found by its environment)."""
        removed = []
        for pgid, env in marked_groups(workdir).items():
            what = env.get("MWKIT_INSTANCE_ID") or (infrastructure and env.get(ROLE))
            if what and kill_group(pgid):
                removed.append(f"{what} (process group {pgid})")
        for pid, child in list(self._children.items()):
            if child.poll() is not None:
                del self._children[pid]
        return removed

    def start_directory(self, workdir: Path, token: str | None = None) -> tuple[str, str, Handle]:
        """A ``python -m mwkit directory`` process on a free 127.0.0.1 port."""
        workdir = Path(workdir)
        port = procs.free_port()
        url = f"http://127.0.0.1:{port}"
        folder = workdir / "directory"
        command = [sys.executable, "-m", "mwkit", "directory", "--host", "127.0.0.1",
                   "--port", str(port)] + (["--token", token] if token else [])
        log_path = folder / "directory.log"
        proc = procs.spawn(command, log_path=log_path, env={
            "PYTHONPATH": str(KIT_ROOT), **self.infrastructure_marks(workdir, "directory")})
        self._children[proc.pid] = proc
        handle = Handle(runtime=self.name, instance_id="directory", instance_dir=str(folder),
                        pid=proc.pid, address=f"127.0.0.1:{port}",
                        extra={"workdir": str(workdir.resolve())})
        try:
            procs.wait_for_http(url + "/health", 15, proc=proc, log_path=log_path)
        except (RuntimeError, TimeoutError):
            self.kill(handle)
            raise
        return url, url, handle

    def infrastructure_marks(self, workdir: Path, role: str) -> dict[str, str]:
        return {MARK: str(Path(workdir).resolve()), ROLE: role}

    def instance_url(self, url: str) -> str:
        return url  # instances run on this machine: the host's URLs work as they are

