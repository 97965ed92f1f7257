"""Starting and stopping the kit's own processes, so that nothing is left behind.

Every process mwkit starts runs in a process group of its own (``start_new_session``),
so stopping it also stops whatever it started (a ``mw.sh`` that ``exec``s Python, a shell
that forks). Stopping is graceful first (SIGTERM, then SIGKILL after a grace period).

Processes are looked at through psutil, the same way on Linux and macOS: nothing here
reads ``/proc``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import psutil
import requests

from mwkit.errors import ProgramMissing, StartFailed, StartTimeout

#: Where system packages put servers (Debian's /usr/sbin, Homebrew's), often not on a
#: user's PATH: dnsmasq and HAProxy are looked for there too.
SBIN = os.pathsep.join(["/usr/sbin", "/usr/local/sbin", "/opt/homebrew/sbin"])

#: Two readings of one process's create time may differ by rounding.
CREATE_TIME_SLACK = 0.05


def find_program(name: str, missing: str) -> str:
    """The path of program ``name``, on the PATH or in :data:`SBIN`; ProgramMissing with
    the sentence ``missing`` (what to install) when it is in neither."""
    found = shutil.which(name) or shutil.which(name, path=SBIN)
    if found is None:
        raise ProgramMissing(missing)
    return found


def free_port(host: str = "127.0.0.1") -> int:
    """Ask the kernel for a free TCP port on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def spawn(
    command: Sequence[str],
    *,
    log_path: Path | None = None,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    inherit_env: bool = True,
) -> subprocess.Popen:
    """Start ``command`` in a new process group, its output appended to ``log_path``; its
    environment is ours plus ``env``, or with ``inherit_env=False`` only ``env``."""
    full_env = dict(os.environ) if inherit_env else {}
    full_env["PYTHONUNBUFFERED"] = "1"
    if env:
        full_env.update(env)
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            return subprocess.Popen(
                list(command), cwd=cwd, env=full_env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
    return subprocess.Popen(
        list(command), cwd=cwd, env=full_env, stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def python_command(*args: str) -> list[str]:
    """The command that runs this same Python interpreter with ``args``."""
    return [sys.executable, *args]


def signal_group(pid: int, sig: int) -> bool:
    """Send ``sig`` to the process group led by ``pid``; False when it is already gone."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def process_alive(pid: int, created: float | None = None) -> bool:
    """True while process ``pid`` runs (a zombie, exited but not yet reaped, does not).

    With ``created`` (a :func:`create_time`), only while it is still *that* process: a pid
    reused by another program after a crash is not ours to signal.
    """
    try:
        proc = psutil.Process(pid)
        if created is not None and abs(proc.create_time() - created) > CREATE_TIME_SLACK:
            return False
        return proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def create_time(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), or None when it is gone."""
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def group_members(pgid: int) -> list[psutil.Process]:
    """The live processes of group ``pgid`` (zombies do not count: where nobody reaps them,
    as in a container without an init, they linger)."""
    members = []
    for proc in psutil.process_iter(["status"]):
        with contextlib.suppress(psutil.Error, OSError):
            if proc.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(proc.pid) == pgid:
                members.append(proc)
    return members


def group_alive(pgid: int) -> bool:
    """True while any process of group ``pgid`` still runs."""
    return signal_group(pgid, 0) and bool(group_members(pgid))


def environ_of(pid: int) -> dict[str, str]:
    """The environment of process ``pid`` ({} when it is gone or not ours to read)."""
    try:
        return psutil.Process(pid).environ()
    except (psutil.Error, OSError):
        return {}


def marked(name: str, value: str) -> dict[int, dict[str, str]]:
    """Processes of this user whose environment has ``name=value``: pid -> environment.

    This is how the kit finds what it started after its state file is lost: every process
    it starts carries such a mark, inherited by whatever that process starts in turn.
    """
    found = {}
    for proc in psutil.process_iter(["status"]):
        if proc.pid == os.getpid() or proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        env = environ_of(proc.pid)
        if env.get(name) == value:
            found[proc.pid] = env
    return found


def marked_groups(name: str, value: str) -> dict[int, dict[str, str]]:
    """Process groups with a member marked ``name=value``: pgid -> that member's environment."""
    groups = {}
    for pid, env in marked(name, value).items():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            groups.setdefault(os.getpgid(pid), env)
    return groups


def kill_group(pgid: int, timeout: float = 5.0) -> bool:
    """SIGKILL a process group and wait until none of it is left; False if it was gone."""
    if not signal_group(pgid, signal.SIGKILL):
        return False
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(ChildProcessError):  # our own child: reap it ourselves
            os.waitpid(pgid, os.WNOHANG)
        if not group_alive(pgid) or time.monotonic() > deadline:
            return True
        time.sleep(0.01)


def stop_group(proc: subprocess.Popen | int, grace: float = 5.0) -> None:
    """SIGTERM the process group, wait up to ``grace`` seconds, then SIGKILL what is left."""
    pid = proc if isinstance(proc, int) else proc.pid
    signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if isinstance(proc, subprocess.Popen):
            proc.poll()
        if not group_alive(pid):
            break
        time.sleep(0.02)
    signal_group(pid, signal.SIGKILL)
    if isinstance(proc, subprocess.Popen):
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)


def wait_for_http(
    url: str,
    timeout: float = 10.0,
    proc: subprocess.Popen | None = None,
    log_path: Path | None = None,
) -> None:
    """Wait until ``url`` answers 2xx; fail early, with the log's tail, if ``proc`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise StartFailed(
                f"process {' '.join(map(str, proc.args))!r} exited with code "
                f"{proc.returncode} before {url} answered{log_tail_text(log_path)}"
            )
        with contextlib.suppress(requests.RequestException):
            if requests.get(url, timeout=0.5).ok:
                return
        time.sleep(0.02)
    raise StartTimeout(f"{url} did not answer within {timeout:.0f} s{log_tail_text(log_path)}")


def log_tail(path: Path | None, lines: int = 20) -> str:
    """The last ``lines`` lines of a log file ('' when there is none)."""
    if path is None or not Path(path).exists():
        return ""
    with open(path, "rb") as log:
        log.seek(0, os.SEEK_END)
        log.seek(max(0, log.tell() - 16384))
        text = log.read().decode("utf-8", "replace")
    return "\n".join(text.splitlines()[-lines:])


def log_tail_text(path: Path | None) -> str:
    """``log_tail`` formatted for an error message."""
    tail = log_tail(path)
    return f"; last lines of {path}:\n{tail}" if tail else ""


@contextlib.contextmanager
def running(
    command: Sequence[str],
    *,
    ready_url: str | None = None,
    log_path: Path | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
    ready_timeout: float = 15.0,
    grace: float = 5.0,
) -> Iterator[subprocess.Popen]:
    """Run ``command`` for the duration of a ``with`` block, ready when ``ready_url`` answers."""
    proc = spawn(command, log_path=log_path, env=env, cwd=cwd)
    try:
        if ready_url:
            wait_for_http(ready_url, ready_timeout, proc=proc, log_path=log_path)
        yield proc
    finally:
        stop_group(proc, grace)
