"""The Directory: where instances register and from where routers hear about them.

- :mod:`mwkit.directory.registry`: the state (instances, leases, versions), pure logic.
- :mod:`mwkit.directory.server`: the HTTP API and the push stream (aiohttp).
- :mod:`mwkit.directory.client`: the client that Watson, Sherlock and notebooks use.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from mwkit.directory.client import DirectoryClient, DirectoryError, Message
from mwkit.procs import free_port, python_command, running

__all__ = ["DirectoryClient", "DirectoryError", "Message", "run_directory"]


@contextlib.contextmanager
def run_directory(port: int | None = None, token: str | None = None,
                  log_path: Path | None = None, host: str = "127.0.0.1") -> Iterator[str]:
    """Run a Directory process for the ``with`` block; yields its URL."""
    port = port or free_port(host)
    command = python_command("-m", "mwkit", "directory", "--host", host, "--port", str(port))
    env = {"MWKIT_DIRECTORY_TOKEN": token or ""}
    url = f"http://{host}:{port}"
    with running(command, ready_url=f"{url}/health", log_path=log_path, env=env):
        yield url
