"""A real etcd cluster on loopback: three members by default, from Debian's ``etcd-server``.

Three members are the smallest cluster that survives the loss of one: a write needs a
majority (two of three). :class:`EtcdCluster` starts them as local processes, each in a
process group of its own, and can kill and restart a member, so that a notebook or a test
can show a registry that keeps working while a member is down. Everything it keeps is in
its folder (``data-m0``, ... and a log per member): removing a stack's workdir removes it.

    with EtcdCluster(folder) as cluster:
        sherlock = Sherlock(cluster.url)          # etcd://127.0.0.1:P1,127.0.0.1:P2,...
        cluster.kill(0)                           # kill -9 one member: nothing fails
        cluster.restart(0)
"""

from __future__ import annotations

import shutil
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mwkit.errors import DirectoryError
from mwkit.procs import free_port, signal_group, spawn, stop_group, wait_for_http


def etcd_binary() -> str:
    """Where etcd is, or an error that says how to get it."""
    path = shutil.which("etcd")
    if path is None:
        raise DirectoryError("etcd is not installed: install Debian's etcd-server "
                             "(`apt-get install etcd-server`) or etcd's release binary")
    return path


@dataclass
class Member:
    """One etcd member: its name, the host port its clients use, its data folder, and what
    runs it (a process here; a container in :mod:`mwkit.wizard.runtimes.docker_etcd`)."""

    name: str
    client_port: int  # on 127.0.0.1 of this machine
    peer_port: int
    data: Path
    running: object | None = None

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"


class EtcdCluster:
    """``size`` etcd members as local processes; ``url`` is what the kit's clients take.

    Where a member runs and how its peers reach it are the only things a subclass changes
    (:meth:`_listen`, :meth:`_spawn`, :meth:`_signal_kill`, :meth:`_remove`).
    """

    def __init__(self, folder: Path | str, size: int = 3,
                 env: Mapping[str, str] | None = None) -> None:
        if size < 1:
            raise DirectoryError(f"an etcd cluster needs at least one member, not {size}")
        self.folder = Path(folder).resolve()
        self.env = dict(env or {})  # e.g. the runtime's marks, so that cleanup finds it
        self.members = [Member(f"m{i}", free_port(), free_port(), self.folder / f"data-m{i}")
                        for i in range(size)]

    @property
    def url(self) -> str:
        return "etcd://" + ",".join(m.client_url.removeprefix("http://") for m in self.members)

    def _listen(self, member: Member) -> tuple[str, str, str, str]:
        """Its client URLs (listen, advertise) and peer URLs (listen, advertise)."""
        peer = f"http://127.0.0.1:{member.peer_port}"
        return member.client_url, member.client_url, peer, peer

    def _command(self, member: Member, state: str, etcd: str) -> list[str]:
        listen_client, client, listen_peer, peer = self._listen(member)
        cluster = ",".join(f"{m.name}={self._listen(m)[3]}" for m in self.members)
        return [etcd, "--name", member.name, "--data-dir", str(member.data),
                "--listen-client-urls", listen_client, "--advertise-client-urls", client,
                "--listen-peer-urls", listen_peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", cluster, "--initial-cluster-state", state,
                "--initial-cluster-token", f"mwkit-{self.members[0].client_port}",
                "--log-level", "warn", "--logger", "zap"]

    def _spawn(self, member: Member, state: str) -> None:
        member.running = spawn(self._command(member, state, etcd_binary()), env=self.env,
                               log_path=self.folder / f"etcd-{member.name}.log")

    def _wait(self, member: Member, timeout: float) -> None:
        wait_for_http(f"{member.client_url}/health", timeout, proc=member.running,
                      log_path=self.folder / f"etcd-{member.name}.log")

    def _signal_kill(self, member: Member) -> None:
        signal_group(member.running.pid, signal.SIGKILL)
        member.running.wait()
        member.running = None

    def _remove(self, member: Member) -> None:
        stop_group(member.running, grace=5.0)
        member.running = None

    def start(self, timeout: float = 30.0) -> EtcdCluster:
        """Start every member at once (each waits for a majority), then wait for all."""
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            for member in self.members:
                shutil.rmtree(member.data, ignore_errors=True)  # a crashed cluster's, if any
                self._spawn(member, "new")
            for member in self.members:
                self._wait(member, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def kill(self, index: int) -> None:
        """kill -9 one member (its data stays: :meth:`restart` brings it back)."""
        member = self.members[index]
        if member.running is not None:
            self._signal_kill(member)

    def restart(self, index: int, timeout: float = 30.0) -> None:
        """Start a killed member again on its data: it catches up from the others."""
        member = self.members[index]
        self._spawn(member, "existing")
        self._wait(member, timeout)

    def stop(self) -> None:
        """Stop every member and remove its data."""
        for member in self.members:
            if member.running is not None:
                self._remove(member)
            shutil.rmtree(member.data, ignore_errors=True)

    def __enter__(self) -> EtcdCluster:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
