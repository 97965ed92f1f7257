"""The Directory: where instances register and from where routers hear about them.

- :mod:`mwkit.directory.registry`: the state (instances, leases, versions), pure logic.
- :mod:`mwkit.directory.server`: the HTTP API and the push stream (aiohttp).
- :mod:`mwkit.directory.client`: the client that Watson, Sherlock and notebooks use.
- :mod:`mwkit.directory.etcd`: the same client over an etcd cluster (``etcd://`` URLs);
  :func:`directory_client` picks one by the URL.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from mwkit.contract import DIRECTORY_TOKEN
from mwkit.directory.client import DirectoryClient, DirectoryError, Message, ServiceTable
from mwkit.procs import free_port, spawn, stop_group, wait_for_http

__all__ = ["DIRECTORY_PORT", "DirectoryClient", "DirectoryError", "Message", "ServiceTable",
           "directory_client", "directory_command", "run_directory", "start_directory"]

#: The Directory's port where it has one of its own (``mwkit directory``, a container).
DIRECTORY_PORT = 5353


def directory_client(url: str, token: str | None = None, timeout: float = 2.0):
    """A client of the Directory at ``url``: the kit's own (``http://host:port`` or
    ``host:port``), or an etcd cluster (``etcd://host:port[,host:port...]``, see
    :mod:`mwkit.directory.etcd`). Both have the same methods."""
    from mwkit.directory.etcd import EtcdDirectoryClient, is_etcd_url

    if is_etcd_url(url):
        return EtcdDirectoryClient(url, token, timeout)
    return DirectoryClient(url, token, timeout)


def directory_command(host: str, port: int, python: str = sys.executable) -> list[str]:
    """The one command that runs a Directory, on every runtime (the token goes in the
    environment as ``MWKIT_DIRECTORY_TOKEN``, never on a command line that ``ps`` shows)."""
    return [python, "-m", "mwkit", "directory", "--host", host, "--port", str(port)]


def start_directory(port: int | None = None, token: str | None = None,
                    log_path: Path | None = None, host: str = "127.0.0.1",
                    env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """Start a Directory process and wait until it answers; ``(process, url)``.

    The process leads a process group of its own; stop it with ``procs.stop_group``.
    """
    port = port or free_port(host)
    url = f"http://{host}:{port}"
    proc = spawn(directory_command(host, port), log_path=log_path,
                 env={**(env or {}), DIRECTORY_TOKEN: token or ""})
    try:
        wait_for_http(f"{url}/health", 15, proc=proc, log_path=log_path)
    except BaseException:
        stop_group(proc, grace=1)
        raise
    return proc, url


@contextlib.contextmanager
def run_directory(port: int | None = None, token: str | None = None,
                  log_path: Path | None = None, host: str = "127.0.0.1",
                  env: dict[str, str] | None = None) -> Iterator[str]:
    """Run a Directory process for the ``with`` block; yields its URL.

    ``env`` is added to its environment: notebook 02 gives it its workdir's marks, so that
    ``teardown`` finds it should the kernel die inside the block."""
    proc, url = start_directory(port, token, log_path, host, env)
    try:
        yield url
    finally:
        stop_group(proc)
