"""An etcd cluster as containers, for a Docker stack whose Directory is etcd.

The members run in the kit's base image (it has Debian's etcd) on the workdir's network,
locked down as every kit container is, named ``mwkit-<id>-etcd-m0``, ``-m1``, ...: the
instances reach them by those names, and this machine through each member's client port,
published on 127.0.0.1. Each member's data is a folder of the workdir, mounted at the same
path, so a member killed with ``kill -9`` starts again on its data and catches up, as a
process would.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

from mwkit.directory.etcd_cluster import EtcdCluster, Member
from mwkit.procs import wait_for_http
from mwkit.wizard.spec import Limits

CLIENT_PORT, PEER_PORT = 2379, 2380  # inside each member's container


class DockerEtcdCluster(EtcdCluster):
    """``size`` etcd members as containers of ``runtime`` (a DockerRuntime) for ``workdir``."""

    def __init__(self, runtime, workdir: Path | str, size: int = 3) -> None:
        super().__init__(Path(workdir) / "etcd", size)
        self.runtime = runtime
        self.workdir = Path(workdir).resolve()

    def container(self, member: Member) -> str:
        from mwkit.wizard.runtimes.docker import container_name

        return container_name(self.workdir, f"etcd-{member.name}")

    def _listen(self, member: Member) -> tuple[str, str, str, str]:
        name = self.container(member)
        return (f"http://0.0.0.0:{CLIENT_PORT}", f"http://{name}:{CLIENT_PORT}",
                f"http://0.0.0.0:{PEER_PORT}", f"http://{name}:{PEER_PORT}")

    def _spawn(self, member: Member, state: str) -> None:
        from mwkit.wizard.runtimes.docker import (
            KEEP_RUNNING,
            give_to_container_user,
            locked_down,
        )

        member.data.mkdir(parents=True, exist_ok=True, mode=0o700)
        give_to_container_user(member.data)
        member.running = self.runtime._run(
            self.container(member), self.workdir, {"mwkit.role": "etcd"},
            command=self._command(member, state, "etcd"),
            volumes={str(member.data): {"bind": str(member.data), "mode": "rw"}},
            ports={f"{CLIENT_PORT}/tcp": ("127.0.0.1", member.client_port)},
            **locked_down(Limits()), restart_policy=KEEP_RUNNING)

    def _wait(self, member: Member, timeout: float) -> None:
        try:
            wait_for_http(f"{member.client_url}/health", timeout)
        except BaseException:
            with contextlib.suppress(Exception):
                logs = member.running.logs(tail=20).decode("utf-8", "replace")
                (self.folder / f"etcd-{member.name}.log").write_text(logs)
            raise

    def _signal_kill(self, member: Member) -> None:
        member.running.kill()  # SIGKILL; the container stays, with its data folder
        member.running = None

    def restart(self, index: int, timeout: float = 30.0) -> None:
        """Start the killed member's container again: same command, same data."""
        member = self.members[index]
        container = self.runtime.client.containers.get(self.container(member))
        container.start()
        member.running = container
        self._wait(member, timeout)

    def stop(self) -> None:
        """Remove every member's container (also a killed one) and its data."""
        import docker.errors

        for member in self.members:
            with contextlib.suppress(docker.errors.NotFound):
                self.runtime.client.containers.get(self.container(member)).remove(force=True)
            member.running = None
            shutil.rmtree(member.data, ignore_errors=True)
