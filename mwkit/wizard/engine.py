"""Finding the Docker engine, the way the ``docker`` command does.

The Docker SDK reads ``DOCKER_HOST`` (and ``DOCKER_TLS_VERIFY``, ``DOCKER_CERT_PATH``)
and otherwise uses the default socket ``unix:///var/run/docker.sock``. An engine that is
installed but not started, or absent, is the common case on a learner's laptop, so the
error says what to do about it, including the way around it: the process runtime.
"""

from __future__ import annotations

import os
import shutil

import docker
import docker.errors
from docker.constants import DEFAULT_TIMEOUT_SECONDS

from mwkit.errors import DockerUnavailable

PING_TIMEOUT = 3.0


def docker_client(timeout: float = PING_TIMEOUT) -> docker.DockerClient:
    """A client for the engine at ``DOCKER_HOST`` (or the default socket), pinged once.

    ``timeout`` bounds the ping; the client keeps the SDK's default timeout for the calls
    that follow (pulling a layer or building an image legitimately takes longer).
    """
    where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except (docker.errors.DockerException, OSError) as error:  # OSError: an unwrapped socket
        raise DockerUnavailable(_advice(where, error)) from error
    client.api.timeout = DEFAULT_TIMEOUT_SECONDS
    return client


def docker_available() -> bool:
    """True when a Docker engine answers a ping."""
    try:
        docker_client().close()
    except DockerUnavailable:
        return False
    return True


def _advice(where: str, error: Exception) -> str:
    """What went wrong, and the three ways forward."""
    if shutil.which("dockerd") is None and shutil.which("docker") is None:
        first = "Docker is not installed: install it (Debian: apt-get install docker.io)"
    else:
        first = (
            "start the Docker engine (Docker Desktop, 'systemctl start docker', or here: "
            "'bash .ci/start-docker.sh')"
        )
    return (
        f"no Docker engine answers at {where} ({type(error).__name__}: {error}). "
        f"Either {first}, or point DOCKER_HOST at a running engine, or do without Docker: "
        "set MWKIT_RUNTIME=process to run instances as local processes."
    )
