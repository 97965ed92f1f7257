"""A tiny real service for the wizard's tests, and waiting helpers.

The service is a folder with a ``microwizard/`` folder, like any service the wizard runs:
``mw.sh init`` and ``mw.sh run`` start a ``http.server`` app with a ``/health`` endpoint.
``mode`` makes it misbehave in one way: ``init-fails`` (mw.sh init exits 1), ``slow-init``
(mw.sh init takes 30 s), ``exits`` (mw.sh run exits at once with code 7) or ``sick``
(/health always answers 500).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import requests

APP = '''\
import json, os, signal, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SICK = os.environ.get("TINY_MODE") == "sick"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        code = 500 if SICK and self.path == "/health" else 200
        body = json.dumps({"instance": os.environ["MWKIT_INSTANCE_ID"],
                           "tag": os.environ["MWKIT_TAG"], "path": self.path}).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def on_sigterm(*_):
    print(f"tiny: SIGTERM at {time.time():.3f}", flush=True)
    sys.exit(0)


signal.signal(signal.SIGTERM, on_sigterm)
server = ThreadingHTTPServer((os.environ["HOST"], int(os.environ["PORT"])), Handler)
print(f"tiny: listening on {os.environ['HOST']}:{os.environ['PORT']}", flush=True)
server.serve_forever()
'''

MW_SH = '''\
#!/usr/bin/env bash
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
    init)
        echo "tiny: init in $PWD"
        if [ "${TINY_MODE:-ok}" = init-fails ]; then echo "tiny: init is broken" >&2; exit 1; fi
        if [ "${TINY_MODE:-ok}" = slow-init ]; then sleep 30; fi
        ;;
    run)
        if [ "${TINY_MODE:-ok}" = exits ]; then echo "tiny: giving up"; exit 7; fi
        exec "${PYTHON:-python3}" app.py
        ;;
esac
'''

CONF = '''\
[Datawire]
directory_host = ${DIRECTORY_URL}

[Watson]
service_name = ${SERVICE_NAME}
service_url = ${SERVICE_URL}
health_check_url = ${HEALTH_CHECK_URL}
instance_id = ${INSTANCE_ID}
period = ${PERIOD}
timeout = ${TIMEOUT}
rise = ${RISE}
fall = ${FALL}
drain = 0.5
'''


def make_service(folder: Path, name: str = "tiny", mode: str = "ok", port: int = 8080) -> Path:
    """Write the tiny service into ``folder`` and return it."""
    (folder / "microwizard").mkdir(parents=True, exist_ok=True)
    (folder / "app.py").write_text(APP)
    (folder / "microwizard" / "mw.sh").write_text(MW_SH)
    (folder / "microwizard" / "datawire.conf").write_text(CONF)
    (folder / "microwizard" / "microwizard.yml").write_text(
        f"service_name: {name}\nservice_port: {port}\nservice_links: [directory]\n"
        f"health_check: {{period: 0.2, timeout: 0.5}}\nenv: {{TINY_MODE: {mode}}}\n")
    return folder


def make_repo(folder: Path, name: str = "tiny") -> Path:
    """The tiny service as a Git repository with one commit, tagged v1."""
    make_service(folder, name)
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid",
           "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1", "PATH": "/usr/bin:/bin"}
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "v1"],
                 ["tag", "v1"]):
        subprocess.run(["git", *args], cwd=folder, env=env, check=True)
    return folder


def listed(directory_url: str, service: str) -> dict[str, dict]:
    """The Directory's instances of ``service``, by id."""
    response = requests.get(f"{directory_url}/v1/services", timeout=2)
    response.raise_for_status()
    return {i["id"]: i for i in response.json()["services"].get(service, [])}


def wait_until(predicate, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached within {timeout} s")

