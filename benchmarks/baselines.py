"""The yardsticks measured in the same run: etcd (watch, leases) and HAProxy (proxying).

Both are Debian's packages (``benchmarks/setup.sh`` installs them), run on loopback only,
with their data and configuration in the benchmark's scratch folder, and stopped (process
group) when the ``with`` block ends. Measured beside mwkit on the same machine in the same
run, their figures make mwkit's comparable across noisy machines.
"""

from __future__ import annotations

import base64
import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from mwkit.approaches.haproxy import haproxy_process
from mwkit.procs import free_port, running, wait_for_http


def need(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        raise RuntimeError(f"{binary} is not installed: run `bash benchmarks/setup.sh` "
                           "(installs etcd-server and haproxy from Debian)")
    return path


@contextlib.contextmanager
def etcd(scratch: Path) -> Iterator[str]:
    """A single-member etcd on loopback; yields its client URL (the gRPC gateway too).

    Its data folder is on tmpfs (``/dev/shm``) when there is one: the Directory keeps its
    state in memory, so etcd's write-ahead-log fsyncs should not be what is compared.
    """
    binary = need("etcd")
    tmpfs = Path("/dev/shm")
    data = Path(tempfile.mkdtemp(prefix="mwkit-bench-etcd-",
                                 dir=tmpfs if tmpfs.is_dir() else scratch))
    client, peer = free_port(), free_port()
    url = f"http://127.0.0.1:{client}"
    command = [binary, "--name", "bench", "--data-dir", str(data),
               "--listen-client-urls", url, "--advertise-client-urls", url,
               "--listen-peer-urls", f"http://127.0.0.1:{peer}",
               "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
               "--initial-cluster", f"bench=http://127.0.0.1:{peer}",
               "--log-level", "warn"]
    try:
        with running(command, ready_url=f"{url}/health", log_path=scratch / "etcd.log",
                     ready_timeout=20):
            yield url
    finally:
        shutil.rmtree(data, ignore_errors=True)


def b64(text: str) -> str:
    """etcd's JSON gateway carries keys and values as base64."""
    return base64.b64encode(text.encode()).decode()


HAPROXY_CONFIG = """\
global
    maxconn 4096
defaults
    mode http
    timeout connect 1s
    timeout client 10s
    timeout server 10s
frontend bench
    bind 127.0.0.1:{port}
    http-request set-path %[path,regsub(^/{service}/?,/)]
    default_backend {service}
backend {service}
    balance roundrobin
    http-reuse always
{servers}
"""


@contextlib.contextmanager
def haproxy(scratch: Path, service: str, backends: list[str]) -> Iterator[str]:
    """HAProxy as the original Sherlock used it: ``/<service>/rest`` -> a backend's
    ``/rest``, round robin. Yields its URL."""
    need("haproxy")
    port = free_port()
    servers = "\n".join(f"    server s{i} {address}" for i, address in enumerate(backends))
    config = scratch / "haproxy.cfg"
    config.write_text(HAPROXY_CONFIG.format(port=port, service=service, servers=servers))
    url = f"http://127.0.0.1:{port}"
    with haproxy_process(config, scratch / "haproxy.log"):
        wait_for_http(f"{url}/{service}/health", timeout=10)
        yield url
