"""What each Swarm task runs: ``python3 -m mwkit.wizard.swarm_task`` (and ``--health``).

A task may run on a machine that has no file of the host: the Docker runtime's rendered
``datawire.conf`` is not there. So the task renders Watson's configuration itself, from
the ``microwizard/`` folder its image holds (the current folder) and its environment:
where the Directory is (:data:`WATSON_DIRECTORY`) and its own instance id (Swarm fills in
``{{.Task.ID}}``); the Directory's token comes from a Swarm secret (:data:`TOKEN_SECRET`).
Then the same supervisor as on every runtime runs: ``mw.sh init``, ``mw.sh run`` and
Watson beside it, registering the task's address on the overlay network
(``MWKIT_ADVERTISE_HOST=container-ip``: the address its hostname resolves to there).

``--health`` is the container's health check, which Swarm's rolling update waits for: the
service answers the check of ``microwizard.yml`` *and* Watson has registered it. A new
task counts as started only once Sherlock can find it, so the old one leaves only then.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from pathlib import Path

from mwkit import contract
from mwkit.contract import Phase

WATSON_DIRECTORY = "MWKIT_WATSON_DIRECTORY"  # the Directory's URL, as a task reaches it
TOKEN_SECRET = "mwkit-directory-token"  # the Swarm secret's file: the Directory's token
SECRETS = Path("/run/secrets")


def render_watson_config(folder: Path, env=os.environ) -> Path:
    """Watson's configuration for the task of service ``folder``, written into its state
    folder; its path."""
    from mwkit.wizard.spec import load_spec, render_datawire_conf

    spec = load_spec(folder)
    port = env[contract.PORT]
    path = Path(env[contract.STATE_DIR]) / "datawire.conf"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_datawire_conf(
        spec, directory_url=env[WATSON_DIRECTORY], service_url=f"http://0.0.0.0:{port}",
        health_check_url=f"http://127.0.0.1:{port}{spec.health_check.path}",
        instance_id=env[contract.INSTANCE_ID]), encoding="utf-8")
    return path


def healthy(folder: Path, env=os.environ) -> bool:
    """Registered by Watson, and answering the service's health check right now."""
    from mwkit.wizard.spec import load_spec

    try:
        phase = json.loads((Path(env[contract.STATE_DIR]) / contract.PHASE_FILE).read_text())
    except (OSError, ValueError):
        return False
    if phase.get("phase") != Phase.LIVE:
        return False
    check = load_spec(folder).health_check
    url = f"http://127.0.0.1:{env[contract.PORT]}{check.path}"
    try:
        with urllib.request.urlopen(url, timeout=check.timeout) as answer:  # noqa: S310
            return 200 <= answer.status < 300
    except OSError:  # refused, timed out, or an error status (HTTPError)
        return False


def main(argv: list[str]) -> int:
    if argv == ["--health"]:
        return 0 if healthy(Path.cwd()) else 1
    from mwkit.wizard import supervisor

    if (SECRETS / TOKEN_SECRET).is_file():  # what Watson's writes need, from a secret
        os.environ[contract.DIRECTORY_TOKEN] = (SECRETS / TOKEN_SECRET).read_text()
    os.environ[contract.WATSON_CONFIG] = str(render_watson_config(Path.cwd()))
    return supervisor.main()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
