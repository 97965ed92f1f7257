"""The supervisor on its own: phases, exit codes, and deregister-then-drain-then-stop."""

from __future__ import annotations

import json
import signal
import sys

import pytest

from mwkit import procs
from mwkit.settings import KIT_ROOT
from mwkit.wizard.supervisor import CONFIG_FAILED, INIT_FAILED, InstanceEnvironment, watson_config
from tests.helpers.wizard import listed, make_service, wait_until

REPO = str(KIT_ROOT)


def start(tmp_path, directory, mode="ok", conf=None):
    """Run the supervisor like the process runtime does; return (process, state dir, log)."""
    folder = make_service(tmp_path / "svc", mode=mode)
    port = procs.free_port()
    conf_path = tmp_path / "datawire.conf"
    conf_path.write_text(conf or (
        f"[Datawire]\ndirectory_host = {directory}\n[Watson]\nservice_name = tiny\n"
        f"service_url = http://127.0.0.1:{port}\n"
        f"health_check_url = http://127.0.0.1:{port}/health\nperiod = 0.2\ndrain = 0.3\n"))
    env = {"MWKIT_SERVICE": "tiny", "MWKIT_INSTANCE_ID": "tiny-t-1", "MWKIT_TAG": "t",
           "MWKIT_STATE_DIR": str(tmp_path / "state"), "MWKIT_WATSON_CONFIG": str(conf_path),
           "MWKIT_METADATA": json.dumps({"tag": "t"}), "TINY_MODE": mode,
           "HOST": "127.0.0.1", "PORT": str(port), "PYTHON": sys.executable, "PYTHONPATH": REPO}
    log = tmp_path / "instance.log"
    proc = procs.spawn([sys.executable, "-m", "mwkit.wizard.supervisor"], log_path=log,
                       cwd=folder, env=env)
    return proc, tmp_path / "state", log


def phase(state_dir) -> dict:
    try:
        return json.loads((state_dir / "phase.json").read_text())
    except FileNotFoundError:
        return {}


def test_sigterm_deregisters_drains_then_stops_the_service(tmp_path, directory):
    proc, state_dir, log = start(tmp_path, directory)
    try:
        wait_until(lambda: phase(state_dir).get("phase") == "live", 15, "phase live")
        entry = listed(directory, "tiny")["tiny-t-1"]
        assert entry["metadata"] == {"tag": "t"}
        assert phase(state_dir)["address"] == entry["address"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        procs.stop_group(proc)
    assert phase(state_dir)["phase"] == "stopped"
    text = log.read_text()
    order = [text.index(marker) for marker in
             ("phase draining", "tiny-t-1: deregistered", "tiny: SIGTERM", "phase stopped")]
    assert order == sorted(order)
    assert listed(directory, "tiny") == {}


@pytest.mark.parametrize("mode, code, reason", [
    ("init-fails", INIT_FAILED, "mw.sh init exited with code 1"),
    ("exits", 7, "mw.sh run exited with code 7"),
])
def test_a_failing_service_ends_the_supervisor(tmp_path, directory, mode, code, reason):
    proc, state_dir, _ = start(tmp_path, directory, mode)
    try:
        assert proc.wait(timeout=15) == code
    finally:
        procs.stop_group(proc)
    assert phase(state_dir)["phase"] == "failed"
    assert phase(state_dir)["reason"] == reason


def test_a_stop_during_init_ends_init_and_the_supervisor(tmp_path, directory):
    proc, state_dir, log = start(tmp_path, directory, "slow-init")
    try:
        wait_until(lambda: "tiny: init in" in log.read_text(), 15, "init running")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0  # not after init's 30 s
    finally:
        procs.stop_group(proc)
    assert phase(state_dir)["phase"] == "stopped"
    assert phase(state_dir)["reason"] == "stopped during init"
    assert "mw.sh run" not in log.read_text()


def test_a_bad_watson_config_fails_before_anything_runs(tmp_path, directory):
    proc, state_dir, log = start(tmp_path, directory, conf="[Watson]\nservice_name = Bad Name\n")
    try:
        assert proc.wait(timeout=15) == CONFIG_FAILED
    finally:
        procs.stop_group(proc)
    assert phase(state_dir)["reason"].startswith("bad Watson configuration")
    assert "mw.sh init" not in log.read_text()


def test_missing_settings_are_named():
    with pytest.raises(SystemExit, match="MWKIT_INSTANCE_ID is not set"):
        InstanceEnvironment.from_env({"MWKIT_SERVICE": "tiny"})


def test_the_advertised_host_replaces_the_configured_one(tmp_path):
    conf = tmp_path / "datawire.conf"
    conf.write_text("[Datawire]\ndirectory_host = mwkit-directory:5353\n[Watson]\n"
                    "service_name = tiny\nservice_url = http://mwkit-tiny-v1-1:8080\n"
                    "health_check_url = http://127.0.0.1:8080/health\n")
    settings = InstanceEnvironment.from_env({
        "MWKIT_SERVICE": "tiny", "MWKIT_INSTANCE_ID": "tiny-v1-1", "MWKIT_STATE_DIR": "/x",
        "MWKIT_WATSON_CONFIG": str(conf), "MWKIT_ADVERTISE_HOST": "10.1.2.3",
        "MWKIT_METADATA": '{"published": "127.0.0.1:49000"}', "MWKIT_DIRECTORY_TOKEN": "s3"})
    config = watson_config(settings)
    assert config.service_url == "http://10.1.2.3:8080"
    assert config.health_check_url == "http://127.0.0.1:8080/health"
    assert (config.instance_id, config.token) == ("tiny-v1-1", "s3")
    assert config.metadata == {"published": "127.0.0.1:49000"}
