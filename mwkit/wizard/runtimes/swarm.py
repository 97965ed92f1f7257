"""The Swarm runtime: the Docker runtime on a swarm's overlay network, plus Swarm services.

``--runtime swarm`` runs the stack's Directory, database and monolith (and whatever
``svrun`` launches) as the Docker runtime does: locked-down containers of ``mwkit/base``.
One thing differs: the workdir's network ``mwkit-<id>`` is an *attachable overlay*
network of a swarm (the engine joins one first, see :func:`mwkit.swarm.ensure_swarm`),
so those containers reach the tasks of the Swarm services that :class:`mwkit.swarm.SwarmServices`
deploys, by their overlay addresses: the monolith's Sherlock balances over them itself.

``cleanup`` (``mwkit down``) also removes the workdir's Swarm services (found by their
labels), the overlay network, and leaves the swarm if the kit made it.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from mwkit.errors import WizardError
from mwkit.wizard.runtimes.docker import MANAGED, DockerRuntime, network_name


class SwarmRuntime(DockerRuntime):
    """Containers on the swarm's attachable overlay network of the workdir."""

    name = "swarm"

    def _network(self, workdir: Path) -> str:
        """The workdir's attachable overlay network (the swarm made first if needed)."""
        import docker.errors

        from mwkit.swarm import ensure_swarm

        name = network_name(workdir)
        found = self._networks(workdir)
        if found and found[0].attrs.get("Driver") != "overlay":
            raise WizardError(f"the network {name} of {workdir} is a {found[0].attrs.get('Driver')}"
                              " network, from the docker runtime: run `mwkit down` first")
        if not found:
            ensure_swarm(self.client, workdir)
            with contextlib.suppress(docker.errors.APIError):  # created meanwhile
                self.client.networks.create(
                    name, driver="overlay", attachable=True,
                    labels={**MANAGED, "mwkit.workdir": str(Path(workdir).resolve())})
        return name

    def services(self, workdir: Path, sources: dict | None = None, progress=None):
        """The workdir's Swarm services (:class:`mwkit.swarm.SwarmServices`): what a stack
        on this runtime scales, rolls out and rolls back."""
        from mwkit.swarm import SwarmServices

        return SwarmServices(workdir, sources=sources, progress=progress, runtime=self)

    def cleanup(self, workdir: Path, infrastructure: bool = False) -> list[str]:
        """The workdir's Swarm services, then its containers; with ``infrastructure`` also
        the overlay network, and the swarm itself if the kit made it."""
        from mwkit.swarm import leave_if_made, remove_services

        removed = remove_services(self.client, workdir)
        removed += super().cleanup(workdir, infrastructure)
        if infrastructure:
            if self._networks(workdir):
                removed.append(f"network {network_name(workdir)} (still in use: kept)")
            removed += leave_if_made(self.client, workdir)
        return removed
