"""What a Swarm task runs by itself (#11): Watson's configuration rendered from the image's
``microwizard/`` and the task's environment, and the health check Swarm's rolling update
waits for (the service's check answered *and* Watson registered). Real files, a real HTTP
server; and the names Swarm and the Kubernetes export give a commit's image and service."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mwkit import contract
from mwkit.kubernetes import manifests
from mwkit.swarm import service_name
from mwkit.watson import WatsonConfig
from mwkit.wizard.commit_image import image_reference
from mwkit.wizard.spec import load_spec
from mwkit.wizard.swarm_task import WATSON_DIRECTORY, healthy, render_watson_config
from tests.helpers.wizard import make_service


class Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):
        self.send_response(self.status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def service(tmp_path):
    """The tiny service on a real port: its folder, and the task's environment."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    folder = make_service(tmp_path / "tiny", port=server.server_port)
    env = {contract.PORT: str(server.server_port), contract.STATE_DIR: str(tmp_path / "state"),
           contract.INSTANCE_ID: "tiny-abc1234-task1", WATSON_DIRECTORY: "http://dir:5353"}
    yield folder, env
    server.shutdown()
    server.server_close()
    Health.status = 200


def test_watson_config_from_the_image_folder_and_the_task_environment(service):
    folder, env = service
    config = WatsonConfig.from_file(render_watson_config(folder, env))
    assert config.instance_id == "tiny-abc1234-task1"
    assert config.directory_url == "http://dir:5353"
    assert config.health_check_url == f"http://127.0.0.1:{env[contract.PORT]}/health"


def write_phase(env, phase: str) -> None:
    """What the task's supervisor writes."""
    state = Path(env[contract.STATE_DIR])
    state.mkdir(parents=True, exist_ok=True)
    (state / contract.PHASE_FILE).write_text(json.dumps({"phase": phase}))


def test_healthy_only_when_registered_and_answering(service):
    folder, env = service
    assert not healthy(folder, env)  # nothing written yet: the supervisor is starting
    write_phase(env, "starting")
    assert not healthy(folder, env)  # answers, but Watson has not registered it
    write_phase(env, "live")
    assert healthy(folder, env)
    Health.status = 503
    assert not healthy(folder, env)  # registered, but its check fails now


def test_swarm_and_kubernetes_name_a_commit_s_image_alike(tmp_path):
    commit = "0123456789abcdef0123456789abcdef01234567"
    spec = load_spec(make_service(tmp_path / "tiny"))
    deployment = manifests(spec, commit, tag="v1")[0]
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == image_reference("tiny", commit) == "mwkit/tiny:0123456789ab"


def test_a_swarm_service_name_is_a_dns_label_of_the_workdir(tmp_path):
    one, other = tmp_path / "a", tmp_path / "b"
    name = service_name(one, "popularity", "v1.2_beta")
    assert name.startswith("mwkit-") and name.endswith("-popularity-v1-2-beta")
    assert name != service_name(other, "popularity", "v1.2_beta")
    assert len(service_name(one, "s" * 60, "t" * 60)) <= 63
